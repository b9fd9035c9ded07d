"""Events on one core: vendor webhooks in to stored (per second), and stored events out to delivered.

* **in**: ``gateway serve`` (1 worker, pinned to core 1) with one Sarvam sandbox connection with
  events and its signing secret; wrk (core 0, one thread) POSTs distinct signed Sarvam webhooks
  (the documented 'not connected' example, a fresh attempt_id each, signed beforehand) to the
  connection's hook URL for ``--duration`` seconds. Rate = events stored (the gateway's own
  counter) / seconds; CPU = the gateway's CPU time / webhooks.
* **out**: this process (pinned to core 1) fills an outbox with ``--events`` events addressed to a
  receiver (uvicorn on core 0, answering 204), then runs the gateway's delivery loop until the
  receiver has them all: spread over ``--campaigns`` campaigns, and all in one campaign (whose
  deliveries go one at a time, in order). CPU = this process's CPU time / deliveries.

Each for the SQLite outbox and, when ``redis-server`` is installed, the Redis one.
Run: ``.venv/bin/python bench/events.py [--duration 5] [--events 5000] [--campaigns 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml
from transports import LOAD_CPU, SERVER_CPU, can_pin, cpu_seconds, pinned, stop, wait_for_port

from gateway.config import load_config
from gateway.events.delivery import Deliverer
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import NewEvent, new_event_id
from gateway.events.service import open_outbox
from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
KEY = "cgw_bench_events_0000000000000000000000000000"
SIGNING = "bench-sarvam-signing-secret"
SECRET = "whsec_ZGVtby1vbmx5LXdlYmhvb2stc2lnbmluZy1rZXktMzI="
SARVAM = json.loads((ROOT / "tests/golden/sarvam/events/not_connected.json").read_text())["vendor_payload"]
WRK_SCRIPT = """
local items, n = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local stamp, signature, body = line:match("^(%d+)\\t(%x+)\\t(.*)$")
    n = n + 1
    items[n] = wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Sarvam-Timestamp"] = stamp,
      ["Sarvam-Signature"] = signature}, body)
  end
end
local i = 0
function request() i = i % n + 1; return items[i] end
"""
RECEIVER = """
import sys, uvicorn
count = 0
async def app(scope, receive, send):
    global count
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = str(count).encode() if scope["method"] == "GET" else b""
    count += scope["method"] == "POST"
    await send({"type": "http.response.start", "status": 200 if body else 204, "headers": []})
    await send({"type": "http.response.body", "body": body})
import socket
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(1024)
open(sys.argv[1], "w").write(str(sock.getsockname()[1]))
config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning", access_log=False)
uvicorn.Server(config).run(sockets=[sock])
"""


def write_config(workdir: Path, backend: str, receiver: str | None = None) -> Path:
    from gateway.keys import key_hash

    connection = {"name": "sarvam", "vendor": "sarvam", "base_url": "sandbox", "events": True,
                  "credentials": {"api_key": "k", "webhook_secret": SIGNING},
                  "params": {"org_id": "o", "workspace_id": "w", "connection_id": "c"}}  # fmt: skip
    webhooks = {"secret": SECRET, **({"url": receiver} if receiver else {})}
    document = {
        "mappings_dir": str(ROOT / "mappings"),
        "logging": {"level": "warning"},
        "cache": {"backend": backend},
        "events": {"store": str(workdir / "events.sqlite3"), "concurrency": 64},
        "tenants": [{"id": "bench", "keys": [{"id": "bench", "hash": key_hash(KEY)}], "webhooks": webhooks,
                     "default_connection": "sarvam", "connections": [connection]}],
    }  # fmt: skip
    path = workdir / f"config-{len(list(workdir.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def signed_bodies(path: Path, count: int) -> None:
    """``count`` distinct Sarvam webhooks, each signed as Sarvam signs, one per line for wrk."""
    stamp = str(int(time.time()))
    with path.open("w") as out:
        for _ in range(count):
            body = json.dumps({**SARVAM, "attempt_id": str(uuid.uuid4())}, separators=(",", ":"))
            digest = hmac.new(SIGNING.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
            out.write(f"{stamp}\t{digest}\t{body}\n")


@contextlib.contextmanager
def process(cmd: list[str], cpu: int, pin: bool, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        started = subprocess.Popen(pinned(cmd, cpu, pin), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield started
    finally:
        stop(started)


def stored(client: httpx.Client) -> float:
    """Vendor webhooks the gateway stored so far (its own counter: duplicates and refusals excluded)."""
    lines = client.get("/metrics").text.splitlines()
    prefix = 'gateway_events_received_total{result="stored"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def inbound(workdir: Path, backend: str, name: str, duration: int, pin: bool) -> str:
    config, port = write_config(workdir, backend), _free_port()
    bodies, script = workdir / "bodies.tsv", workdir / "hooks.lua"
    signed_bodies(bodies, 30_000 * duration)
    script.write_text(WRK_SCRIPT)
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", str(port)]
    with (
        process(cmd, SERVER_CPU, pin, workdir / "gateway.log") as gateway,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        hook = _when_up(client, gateway)
        before, cpu = stored(client), cpu_seconds(gateway.pid)
        wrk = ["wrk", "-t1", "-c16", f"-d{duration}s", "--latency", "-s", str(script), hook, "--", str(bodies)]
        done = subprocess.run(pinned(wrk, LOAD_CPU, pin), capture_output=True, text=True, check=True)
        count, cpu = stored(client) - before, cpu_seconds(gateway.pid) - cpu
    latency = " ".join(line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith(("50%", "99%")))
    rate, each = count / duration, cpu * 1e6 / count
    return f"in  {name:6} {rate:8.0f} webhooks stored/s   p50/p99 {latency}   {each:5.0f} us CPU each"


async def outbound(workdir: Path, backend: str, name: str, events: int, campaigns: int) -> str:
    port_file = workdir / "receiver.port"
    port_file.unlink(missing_ok=True)
    with process(
        [sys.executable, "-c", RECEIVER, str(port_file)], LOAD_CPU, can_pin(), workdir / "receiver.log"
    ) as rec:
        receiver = f"http://127.0.0.1:{wait_for_port(rec, port_file, workdir / 'receiver.log')}/in"
        config, _ = load_config(write_config(workdir, backend, receiver))
        assert config is not None
        outbox = open_outbox(config)
        now = time.time()
        for chunk in range(0, events, 1000):
            await asyncio.gather(
                *(outbox.add(_event(i, campaigns, receiver, now)) for i in range(chunk, min(events, chunk + 1000)))
            )
        deliverer = Deliverer(outbox, lambda: config, EventMetrics(Metrics([])))
        started, cpu = time.monotonic(), time.process_time()
        deliverer.start()
        async with httpx.AsyncClient(base_url=receiver.removesuffix("/in")) as client:
            while int((await client.get("/count")).text) < events:
                await asyncio.sleep(0.02)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        await deliverer.close()
        await outbox.close()
    rate, each = events / seconds, cpu * 1e6 / events
    return f"out {name:6} {rate:8.0f} delivered/s over {campaigns} campaign(s)   {each:5.0f} us CPU each"


def _event(i: int, campaigns: int, receiver: str, now: float) -> NewEvent:
    event_id = new_event_id(now)
    body = json.dumps({"id": event_id, "type": "call.failed", "data": SARVAM}).encode()
    return NewEvent(event_id, "bench", "sarvam", f"c{i % campaigns}", "call.failed", event_id, body, now, receiver)


def _when_up(client: httpx.Client, gateway: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and gateway.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            return client.get("/v1/connections").json()["data"][0]["hook_url"]
        time.sleep(0.1)
    raise RuntimeError("the gateway did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def backends() -> Iterator[list[str]]:
    """memory (the SQLite outbox), and a throwaway redis-server when one is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield ["memory"]
        return
    port = _free_port()
    with process([binary, "--port", str(port), "--save", "", "--appendonly", "no"], LOAD_CPU, False, Path(os.devnull)):
        time.sleep(0.3)
        yield ["memory", f"redis://127.0.0.1:{port}/0"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--campaigns", type=int, default=200)
    args = parser.parse_args()
    pin = can_pin()
    if pin:
        os.sched_setaffinity(0, {SERVER_CPU})  # the delivery loop runs here
    with tempfile.TemporaryDirectory(prefix="bench-events-") as temp, backends() as found:
        for backend in found:
            name = "sqlite" if backend == "memory" else "redis"
            workdir = Path(temp) / name
            workdir.mkdir()
            print(inbound(workdir, backend, name, args.duration, pin), flush=True)
            for campaigns in (args.campaigns, 1):
                print(asyncio.run(outbound(workdir, backend, name, args.events, campaigns)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
