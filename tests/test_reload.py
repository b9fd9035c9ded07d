"""Live reload: a config edit (or SIGHUP) takes effect without a restart; a broken config never does.

In process, through ``GatewayApp.watcher``: ``reload()`` swaps an edited config in and refuses a
broken one (config or map) with `gateway check`'s messages, keeping the running one; the watcher's
own loop notices a file edit within 2 s and SIGHUP forces a reload the file watch cannot see; a
request that started before a reload finishes on the config it started with.

Then real `gateway serve --workers 2` processes (as tests/test_serve_e2e.py starts them): keep-alive
connections are pinned to each worker (the worker owning each accepted socket is read from /proc),
so that "every worker" is checked, not assumed:

* a key removed from the file is 401 on every worker within 2 s, and stays 401;
* SIGHUP to the master reloads every worker in place (same worker processes), even for an edit the
  file watch cannot see (same size, same mtime);
* a broken config is refused by every worker (and logged), the old one keeps serving, also on
  SIGHUP; once fixed, it is applied.

Every wait is bounded; every process is stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from gateway import reload
from gateway.config import load_config
from gateway.keys import key_hash
from tests.conftest import MAPPINGS, free_port
from tests.fakes import FakeVendor, SentRequest, json_answer
from tests.processes import start_gateway, stop, wait_until
from tests.test_tenants import (
    CAMPAIGN_ID,
    TenantVendor,
    client,
    error_of,
    gateway,
    generic_connection,
    key_entry,
    tenant_entry,
    write_tenants,
)

OLD_KEY = "cgw_reload_old_key_0000000000000000000000000000000"
NEW_KEY = "cgw_reload_new_key_1111111111111111111111111111111"
THIRD_KEY = "cgw_reload_third_key_22222222222222222222222222222"
VENDOR_SECRET = "reload-vendor-credential-123"
STARTUP_SECONDS = 30
RELOAD_SECONDS = 2.0
LOAD_HELD_SECONDS = 10.0


# --- real `gateway serve` processes ---------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Pinned:
    """One HTTP/1.1 keep-alive connection, and the worker process that accepted it.

    uvicorn closes a connection idle for 5 s: users keep it busy (see ``hold``).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.local_port = self.conn.sock.getsockname()[1]
        self.worker: int | None = None

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Answer:
        payload = None if body is None else orjson.dumps(body)
        sent = dict(headers or {})
        if payload is not None:
            sent["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        assert not response.will_close, "the server closed a pinned connection"
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def close(self) -> None:
        self.conn.close()


def one_shot(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Answer:
    """A request on a connection of its own: whichever worker accepts it answers."""
    pinned = Pinned(port)
    try:
        pinned.conn.request(method, path, body=None if body is None else orjson.dumps(body), headers=headers or {})
        response = pinned.conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        pinned.close()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _socket_owner(server_port: int, client_port: int, candidates: Iterable[int]) -> int | None:
    """The process holding the server side of the loopback connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = parts[1], parts[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = parts[9]
    if inode in (None, "0"):
        return None
    wanted = f"socket:[{inode}]"
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == wanted:
                        return pid
    return None


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    worker_count: int
    opened: list[Pinned] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        """The worker processes: the master's children running multiprocessing's spawn_main."""
        if self.worker_count == 1:
            return {self.process.pid}
        return {pid for pid in _children(self.process.pid) if "spawn_main" in _cmdline(pid)}

    def pin(self, per_worker: int = 2, timeout: float = 15) -> dict[int, list[Pinned]]:
        """Keep-alive connections, at least ``per_worker`` accepted by each worker (bounded)."""
        workers = self.workers()
        assert len(workers) == self.worker_count, (workers, self.stderr())
        pinned: dict[int, list[Pinned]] = {pid: [] for pid in workers}
        deadline = time.monotonic() + timeout
        while any(len(conns) < per_worker for conns in pinned.values()):
            assert time.monotonic() < deadline, (
                f"could not reach every worker: { {p: len(c) for p, c in pinned.items()} }"
            )
            for conns in pinned.values():  # keep the ones already pinned from idling out
                for conn in conns:
                    assert conn.request("GET", "/healthz").status == 200
            batch = [Pinned(self.port) for _ in range(8)]  # opened together, so both workers accept some
            for conn in batch:
                assert conn.request("GET", "/healthz").status == 200
                owner = _socket_owner(self.port, conn.local_port, workers)
                if owner is not None and len(pinned[owner]) < per_worker:
                    conn.worker = owner
                    pinned[owner].append(conn)
                    self.opened.append(conn)
                else:
                    conn.close()
        return pinned


@contextmanager
def serve(directory: Path, config_path: Path, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`gateway serve --config <path> --port <free> --workers N` from the repo root, until /healthz answers."""
    port = free_port()
    stdout_path, stderr_path = directory / "serve.stdout", directory / "serve.stderr"
    process = start_gateway(
        *("serve", "--config", str(config_path), "--port", str(port), "--workers", str(workers)),
        log_path=stderr_path,
        stdout_path=stdout_path,
        env=env,
    )
    served = Served(process, port, stdout_path, stderr_path, workers)
    try:

        def ready() -> bool:  # every worker has started its app (and so its config watcher), not just spawned
            started = served.stderr().count("Application startup complete") >= workers
            return started and one_shot(port, "GET", "/healthz").status == 200 and len(served.workers()) == workers

        wait_until(ready, process, stderr_path, STARTUP_SECONDS, "gateway serve")
        yield served
    finally:
        for conn in served.opened:
            conn.close()
        stop(process)


def hold(pinned: dict[int, list[Pinned]], seconds: float) -> None:
    """Wait ``seconds`` while keeping every pinned connection busy (uvicorn drops idle ones after 5 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for conns in pinned.values():
            for conn in conns:
                assert conn.request("GET", "/healthz").status == 200
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def statuses(pinned: dict[int, list[Pinned]], key: str, path: str = "/v1/connections") -> dict[int, set[int]]:
    """Each worker's answers to ``key``, over every connection pinned to it."""
    return {pid: {conn.request("GET", path, bearer(key)).status for conn in conns} for pid, conns in pinned.items()}


def sandbox_config(path: Path, key_entries: list[dict[str, Any]], **extra: Any) -> Path:
    """One tenant with the given keys and a sandboxed generic connection (its key from $CGW_RELOAD_VENDOR_KEY)."""
    connection = {
        "name": "nexa",
        "vendor": "generic",
        "base_url": "sandbox",
        "credentials": {"api_key": "${CGW_RELOAD_VENDOR_KEY}"},
    }
    return write_tenants(path, [tenant_entry("acme", key_entries, [connection])], **extra)


SERVE_ENV = {"CGW_RELOAD_VENDOR_KEY": VENDOR_SECRET}


def replace_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """Edit ``path`` so that a size+mtime watch cannot tell: same length, mtime restored, atomic rename."""
    assert len(old) == len(new)
    before = path.stat()
    text = path.read_text()
    assert text.count(old) == 1
    staged = path.with_name(path.name + ".staged")
    staged.write_text(text.replace(old, new))
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(staged, path)
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


# --- in process ------------------------------------------------------------------------------------


def acme_config(path: Path, *entries: dict[str, Any], mappings_dir: Path = MAPPINGS, **extra: Any) -> Path:
    return write_tenants(
        path,
        [tenant_entry("acme", list(entries), [generic_connection("acme-nexa", "acme.test", VENDOR_SECRET)])],
        mappings_dir=str(mappings_dir),
        **extra,
    )


def vendors() -> dict[str, TenantVendor]:
    return {"acme.test": TenantVendor("Acme", VENDOR_SECRET, (CAMPAIGN_ID,))}


async def test_reload_swaps_in_the_edited_config(tmp_path: Path) -> None:
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), key_entry("new", NEW_KEY))
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old, client(app, NEW_KEY) as new:
        assert (await old.get("/v1/connections")).status_code == 200
        running = app.config
        acme_config(path, key_entry("new", NEW_KEY))
        assert await app.watcher.reload() is True
        assert app.config is not running
        error_of(await old.get("/v1/connections"), 401, "unauthorized")
        assert (await new.get("/v1/connections")).status_code == 200


BROKEN_CONFIGS = ["yaml syntax", "unknown key", "missing environment variable", "unknown vendor"]


def _broken(kind: str, path: Path) -> str:
    """Write a config `gateway check` rejects, that would also drop OLD_KEY if it were applied."""
    if kind == "yaml syntax":
        path.write_text("tenants: [\n  {id: acme\n")
        return "invalid YAML"
    if kind == "unknown key":
        acme_config(path, key_entry("new", NEW_KEY), colour="blue")
        return "unknown key 'colour'"
    document = yaml.safe_load(acme_config(path, key_entry("new", NEW_KEY)).read_text())
    connection = document["tenants"][0]["connections"][0]
    if kind == "missing environment variable":
        connection["credentials"] = {"api_key": "${CGW_SURELY_NOT_SET_VAR}"}
        expected = "CGW_SURELY_NOT_SET_VAR"
    else:
        connection["vendor"] = "nosuchvendor"
        expected = "nosuchvendor"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return expected


@pytest.mark.parametrize("kind", BROKEN_CONFIGS)
async def test_a_broken_config_is_refused_and_the_running_one_keeps_serving(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY))
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old, client(app, NEW_KEY) as new:
        running = app.config
        expected = _broken(kind, path)
        _config, problems = load_config(path)
        assert problems, "the edit must be one `gateway check` rejects"
        with caplog.at_level(logging.ERROR, logger="gateway.reload"):
            assert await app.watcher.reload() is False
        assert app.config is running
        answer = await old.get(f"/v1/campaigns/{CAMPAIGN_ID}")
        assert answer.status_code == 200, answer.text
        error_of(await new.get("/v1/connections"), 401, "unauthorized")
    refusals = [r.getMessage() for r in caplog.records if r.name == "gateway.reload" and r.levelno >= logging.ERROR]
    assert refusals, caplog.text
    # the same FILE:LINE: message lines `gateway check` prints
    assert [f"reload refused: {problem}" for problem in problems] == refusals
    assert all(str(path) in line for line in refusals)
    assert any(expected.lower() in line.lower() for line in refusals), refusals


async def test_a_broken_map_is_refused_too_and_a_fixed_one_is_applied(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    shutil.copytree(MAPPINGS, maps)
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), mappings_dir=maps)
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old:
        generic = maps / "generic.yaml"
        good = generic.read_text()
        generic.write_text(good.replace("    name: name\n", "    name: {from: name, pipe: [nosuchtransform]}\n", 1))
        assert load_config(path)[0] is None
        assert await app.watcher.reload() is False
        first = await old.get(f"/v1/campaigns/{CAMPAIGN_ID}")
        assert (first.status_code, first.json()["name"]) == (200, f"Acme {CAMPAIGN_ID}")

        # fixed: a map edit that changes what `name` reads is applied
        generic.write_text(good.replace("    name: name\n", "    name: {from: name, pipe: [upper]}\n", 1))
        assert await app.watcher.reload() is True
        fresh = await old.get(f"/v1/campaigns/{CAMPAIGN_ID}", headers={"Cache-Control": "no-cache"})
        assert (fresh.status_code, fresh.json()["name"]) == (200, f"ACME {CAMPAIGN_ID}".upper())


async def test_a_reloaded_map_changes_how_vendor_errors_are_read(tmp_path: Path) -> None:
    """A map edit is part of the config: after a reload its `errors:` block applies too.

    The edit adds ``errors.codes: {404: validation_error}`` to generic.yaml. The connection itself
    (name, URL, credentials) is unchanged, so the running gateway keeps its pooled upstream client.
    """
    maps = tmp_path / "maps"
    shutil.copytree(MAPPINGS, maps)
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), mappings_dir=maps)
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old:
        error_of(await old.get("/v1/campaigns/cmp_missing"), 404, "not_found")
        generic = maps / "generic.yaml"
        text = generic.read_text()
        assert text.count("errors:\n  message: [error.message, message]\n") == 1
        generic.write_text(
            text.replace(
                "errors:\n  message: [error.message, message]\n",
                "errors:\n  message: [error.message, message]\n  codes: {404: validation_error}\n",
            )
        )
        fresh, problems = load_config(path)
        assert fresh is not None, problems
        assert fresh.tenants["acme"].connections["acme-nexa"].map.error_codes == {404: "validation_error"}
        assert await app.watcher.reload() is True
        assert app.config.tenants["acme"].connections["acme-nexa"].map.error_codes == {404: "validation_error"}
        answer = await old.get("/v1/campaigns/cmp_missing")
        error_of(answer, 422, "validation_error")


async def _until(condition, timeout: float, interval: float = 0.05) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``await condition()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def test_the_watcher_notices_an_edit_within_two_seconds(tmp_path: Path) -> None:
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), key_entry("new", NEW_KEY))
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old, client(app, NEW_KEY) as new:
        app.watcher.start()
        assert (await old.get("/v1/connections")).status_code == 200
        acme_config(path, key_entry("new", NEW_KEY))

        async def old_refused() -> bool:
            return (await old.get("/v1/connections")).status_code == 401

        await _until(old_refused, RELOAD_SECONDS)
        assert (await new.get("/v1/connections")).status_code == 200
        # and a broken edit after that is refused by the loop too
        _broken("unknown key", path)
        await asyncio.sleep(1.5)
        assert (await new.get("/v1/connections")).status_code == 200
        error_of(await old.get("/v1/connections"), 401, "unauthorized")


async def test_sighup_reloads_an_edit_the_file_watch_cannot_see(tmp_path: Path) -> None:
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY))
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old, client(app, THIRD_KEY) as third:
        app.watcher.start()
        handler = signal.getsignal(signal.SIGHUP)
        assert handler not in (signal.SIG_DFL, signal.SIG_IGN, None), "no SIGHUP handler: sending one would kill pytest"
        signature = reload.files_signature(path, app.config.mappings_dir)
        replace_keeping_size_and_mtime(path, key_hash(OLD_KEY), key_hash(THIRD_KEY))
        assert reload.files_signature(path, app.config.mappings_dir) == signature
        await asyncio.sleep(1.5)  # more than one polling interval: the watch saw nothing
        assert (await old.get("/v1/connections")).status_code == 200
        os.kill(os.getpid(), signal.SIGHUP)

        async def swapped() -> bool:
            return (await third.get("/v1/connections")).status_code == 200

        await _until(swapped, 1.0)
        error_of(await old.get("/v1/connections"), 401, "unauthorized")
    assert signal.getsignal(signal.SIGHUP) is not handler, "the watcher's SIGHUP handler outlived it"


class GatedVendor(FakeVendor):
    """Holds every answer until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__(lambda _r: json_answer(200, {"id": CAMPAIGN_ID, "name": "Held", "status": "active"}))
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    async def send(self, method, url, headers, body):  # type: ignore[no-untyped-def]
        self.sent.append(SentRequest(method, url, dict(headers), body))
        self.arrived.set()
        await asyncio.wait_for(self.gate.wait(), 10)
        return self.handler(self.sent[-1])


async def test_a_request_in_flight_finishes_on_the_config_it_started_with(tmp_path: Path) -> None:
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY))
    vendor = GatedVendor()
    async with gateway(path, {"acme.test": vendor}) as app, client(app, OLD_KEY) as old:
        pending = asyncio.create_task(old.get(f"/v1/campaigns/{CAMPAIGN_ID}"))
        await asyncio.wait_for(vendor.arrived.wait(), 5)
        acme_config(path, key_entry("new", NEW_KEY))
        assert await app.watcher.reload() is True
        error_of(await old.get("/v1/connections"), 401, "unauthorized")
        vendor.gate.set()
        answer = await asyncio.wait_for(pending, 5)
    assert (answer.status_code, answer.json()["name"]) == (200, "Held")


async def test_a_reload_compiles_only_the_maps_whose_files_changed(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    shutil.copytree(MAPPINGS, maps)
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), mappings_dir=maps)
    async with gateway(path, vendors()) as app:
        before = dict(app.config.maps)
        assert await app.watcher.reload() is True
        assert all(app.config.maps[name] is compiled for name, compiled in before.items())

        generic = maps / "generic.yaml"
        generic.write_text(generic.read_text() + "\n# edited\n")
        assert await app.watcher.reload() is True
        changed = {name for name, compiled in before.items() if app.config.maps[name] is not compiled}
        assert changed == {"generic", *before["generic"].aliases}


async def test_a_request_is_answered_while_a_reload_is_still_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading, validating and compiling a new config run off the event loop.

    The load is held (in its thread) until a request made meanwhile has been answered: had the load
    run on the loop, no request could be answered before it ended, and the request would meet the
    new config. ``LOAD_HELD_SECONDS`` only bounds the test if that ever breaks.
    """
    path = acme_config(tmp_path / "config.yaml", key_entry("old", OLD_KEY), key_entry("new", NEW_KEY))
    loading, release = threading.Event(), threading.Event()

    def held_load(*arguments: Any):  # type: ignore[no-untyped-def]
        loading.set()
        release.wait(LOAD_HELD_SECONDS)
        return load_config(*arguments)

    monkeypatch.setattr(reload, "load_config", held_load)
    async with gateway(path, vendors()) as app, client(app, OLD_KEY) as old:
        acme_config(path, key_entry("new", NEW_KEY))
        reloading = asyncio.create_task(app.watcher.reload())
        assert await asyncio.to_thread(loading.wait, LOAD_HELD_SECONDS)
        answer = await old.get("/v1/connections")
        assert (answer.status_code, reloading.done(), release.is_set()) == (200, False, False), answer.text
        release.set()
        assert await reloading is True
        error_of(await old.get("/v1/connections"), 401, "unauthorized")


# --- real processes, two workers -----------------------------------------------------------------


def test_a_removed_key_is_refused_by_every_worker_within_two_seconds(tmp_path: Path) -> None:
    path = sandbox_config(tmp_path / "config.yaml", [key_entry("acme-old", OLD_KEY), key_entry("acme-new", NEW_KEY)])
    with serve(tmp_path, path, workers=2, env=SERVE_ENV) as served:
        workers = served.workers()
        pinned = served.pin(per_worker=2)
        assert statuses(pinned, OLD_KEY) == statuses(pinned, NEW_KEY) == {pid: {200} for pid in workers}

        sandbox_config(path, [key_entry("acme-new", NEW_KEY)])
        edited = time.monotonic()
        refused_at: dict[int, float] = {}
        while time.monotonic() - edited < RELOAD_SECONDS:
            for pid, seen in statuses(pinned, OLD_KEY).items():
                assert seen <= {200, 401}, seen
                if pid in refused_at:
                    assert seen == {401}, f"worker {pid} took the removed key again after refusing it"
                elif seen == {401}:
                    refused_at[pid] = time.monotonic() - edited
            time.sleep(0.05)
        assert set(refused_at) == workers, f"not every worker refused the key within {RELOAD_SECONDS} s: {refused_at}"

        # now every request with it is 401, on every worker, pinned or not; the new key works everywhere
        for _ in range(10):
            assert statuses(pinned, OLD_KEY) == {pid: {401} for pid in workers}
        fresh = [one_shot(served.port, "GET", "/v1/connections", bearer(OLD_KEY)).status for _ in range(30)]
        assert set(fresh) == {401}
        assert statuses(pinned, NEW_KEY) == {pid: {200} for pid in workers}
        campaigns = pinned[min(workers)][0].request("POST", "/v1/campaigns", bearer(OLD_KEY), {"name": "x"})
        assert campaigns.status == 401
        assert served.workers() == workers, "the workers were replaced instead of reloading in place"
    assert served.stderr().count("config reloaded") >= 2, served.stderr()


def test_sighup_to_the_master_reloads_every_worker_in_place(tmp_path: Path) -> None:
    path = sandbox_config(tmp_path / "config.yaml", [key_entry("acme-a", OLD_KEY), key_entry("acme-b", NEW_KEY)])
    with serve(tmp_path, path, workers=2, env=SERVE_ENV) as served:
        workers = served.workers()
        pinned = served.pin(per_worker=1)
        everywhere_200 = {pid: {200} for pid in workers}
        everywhere_401 = {pid: {401} for pid in workers}
        assert statuses(pinned, OLD_KEY) == everywhere_200
        assert statuses(pinned, THIRD_KEY) == everywhere_401

        # an edit the 1 s file watch cannot see: only SIGHUP can make the workers read it
        replace_keeping_size_and_mtime(path, key_hash(OLD_KEY), key_hash(THIRD_KEY))
        hold(pinned, 2.0)
        assert statuses(pinned, OLD_KEY) == everywhere_200, "the file watch was expected not to notice"
        assert "config reloaded" not in served.stderr()

        os.kill(served.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not (statuses(pinned, THIRD_KEY) == everywhere_200 and statuses(pinned, OLD_KEY) == everywhere_401):
            assert time.monotonic() < deadline, "SIGHUP did not reload every worker within 5 s"
            time.sleep(0.05)
        assert statuses(pinned, NEW_KEY) == everywhere_200
        assert served.workers() == workers, "SIGHUP replaced the workers instead of reloading them in place"
        assert served.process.poll() is None
    assert served.stderr().count("config reloaded") >= 2, served.stderr()


def test_a_broken_config_is_refused_by_every_worker_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    path = sandbox_config(tmp_path / "config.yaml", [key_entry("acme-old", OLD_KEY)])
    with serve(tmp_path, path, workers=2, env=SERVE_ENV) as served:
        workers = served.workers()
        pinned = served.pin(per_worker=1)
        everywhere_200 = {pid: {200} for pid in workers}
        everywhere_401 = {pid: {401} for pid in workers}

        # broken: it would drop OLD_KEY and add NEW_KEY, but it names a vendor with no map
        document = yaml.safe_load(sandbox_config(path, [key_entry("acme-new", NEW_KEY)]).read_text())
        document["tenants"][0]["connections"][0]["vendor"] = "nosuchvendor"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        edited = time.monotonic()
        while time.monotonic() - edited < RELOAD_SECONDS + 0.5:
            assert statuses(pinned, OLD_KEY) == everywhere_200
            assert statuses(pinned, NEW_KEY) == everywhere_401
            time.sleep(0.1)
        deadline = time.monotonic() + 5
        while served.stderr().count("reload refused") < 2:
            assert time.monotonic() < deadline, served.stderr()
            time.sleep(0.05)
        refusals = [line for line in served.stderr().splitlines() if "reload refused" in line]
        assert all("nosuchvendor" in line and str(path) in line for line in refusals), refusals

        # SIGHUP does not force it in either
        os.kill(served.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while served.stderr().count("reload refused") < 4:
            assert time.monotonic() < deadline, served.stderr()
            time.sleep(0.05)
        assert statuses(pinned, OLD_KEY) == everywhere_200
        assert statuses(pinned, NEW_KEY) == everywhere_401
        assert all(one_shot(served.port, "GET", "/v1/connections", bearer(OLD_KEY)).status == 200 for _ in range(10))
        assert served.workers() == workers and served.process.poll() is None

        # fixed: applied by every worker within 2 s
        sandbox_config(path, [key_entry("acme-new", NEW_KEY)])
        fixed = time.monotonic()
        while not (statuses(pinned, OLD_KEY) == everywhere_401 and statuses(pinned, NEW_KEY) == everywhere_200):
            assert time.monotonic() - fixed < RELOAD_SECONDS, "the fixed config was not applied within 2 s"
            time.sleep(0.05)
        assert served.workers() == workers
