"""How close does the gateway come to its ceilings? Measure its cache-hit and cache-miss paths.

One run, on 127.0.0.1, starts:

* the ``generic`` sandbox vendor as the upstream (``python -m gateway.cli sandbox``);
* the gateway itself (``python -m gateway.cli serve``, 1 worker) with a bench config written to a
  temporary directory: one tenant, one key, one ``vendor: generic`` connection to that sandbox,
  the in-memory cache with a long TTL;
* a cache-hit ceiling: a minimal Starlette app returning the gateway's exact answer bytes from
  memory (``bench/_servers.py static``);
* a proxy ceiling: a minimal Starlette proxy forwarding GET to the sandbox with aiohttp, parsing
  each body with orjson and returning it unchanged (``bench/_servers.py proxy --client aiohttp``).

It creates one campaign through the gateway, then drives each path with wrk (``--latency``, a
warm-up before every measured run) at several concurrencies:

* ``gateway-hit``     GET /v1/campaigns/{id} with the key, answered from the gateway's cache;
* ``gateway-miss``    the same with ``Cache-Control: no-cache``, which skips the cache lookup; the
  gateway's single flight still merges concurrent reads of one entry into one upstream call, so
  at c > 1 most of these requests do not reach the vendor (see the "up calls/req" column);
* ``gateway-miss-spread`` (extra) the same no-cache GET spread round-robin over ``--spread``
  campaigns (a wrk Lua script), so that concurrent requests name different entries and each one
  goes upstream: the gateway's real per-request miss cost;
* ``ceiling``         the static app, same path, same body;
* ``proxy-ceiling``   the aiohttp proxy, GET /campaigns/{id} (forwarded to the sandbox);
* ``upstream-direct`` the sandbox itself, GET /campaigns/{id}.

For every run it records the CPU time of the process wrk talks to and how many upstream calls the
sandbox counted (``GET /_sandbox/calls``). The gateway's per-request access log stays on (its stderr
goes to a file). Servers are pinned to core 1 and wrk to core 0 when ``taskset`` and two CPUs are
available. Every process started here is stopped on exit, error or signal (SIGTERM, then kill).

Run: ``.venv/bin/python bench/overhead.py [--duration 5] [--warmup 1] [--concurrency 1 16 64]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

# The helpers of the transport benchmark next to this file (bench/ is sys.path[0] when run as a
# script); this file never imports the ``gateway`` package, which its own name would shadow.
from transports import (
    LOAD_CPU,
    SERVER_CPU,
    START_TIMEOUT_S,
    Server,
    WrkResult,
    can_pin,
    cpu_seconds,
    exit_on_sigterm,
    parse_wrk,
    pinned,
    server_process,
    stop,
    tail,
    wait_until_serving,
)

ROOT = Path(__file__).resolve().parent.parent
LONG_TTL_S = 86_400
TENANT, CONNECTION, VENDOR_KEY = "bench", "generic-bench", "bench"
CAMPAIGN = {
    "name": "Bench campaign",
    "agent_id": "agt_bench01",
    "from_number": "+14155550100",
    "max_concurrent_calls": 5,
    "retry": {"max_attempts": 3, "interval_minutes": 30},
}


@dataclass(frozen=True)
class Target:
    name: str
    server: str  # key into the dict of running servers
    path: str
    headers: tuple[str, ...]
    reference: str | None = None  # the ceiling this path is compared with
    spread: tuple[str, ...] = ()  # paths wrk cycles through instead of ``path`` (Lua script)
    upstream_calls: bool = True  # whether the sandbox sees this path's requests


@dataclass(frozen=True)
class Measured:
    target: Target
    concurrency: int
    result: WrkResult
    upstream_calls: int


@dataclass(frozen=True)
class Settings:
    concurrencies: tuple[int, ...]
    duration_s: int
    warmup_s: int
    pin: bool
    spread: int
    log_level: str = "both"
    workers: int = 1
    workdir: Path = Path()


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the CLI takes --port, not a socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cli_process(name: str, args: list[str], port: int, workdir: Path, pin: bool, root: Path = ROOT) -> Iterator[Server]:
    """``python -m gateway.cli ARGS`` from ``root`` (the project's, or another checkout's: its own
    ``gateway`` package comes first on the path); stdout and stderr go to NAME.log."""
    log = workdir / f"{name}.log"
    cmd = [sys.executable, "-m", "gateway.cli", *args]
    with log.open("wb") as log_fh:
        process = subprocess.Popen(
            pinned(cmd, SERVER_CPU, pin),
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C reaches only us; we stop it ourselves
        )
    try:
        yield Server(name, process, f"http://127.0.0.1:{port}", log)
    finally:
        stop(process)


def sandbox_and_gateway(
    stack: ExitStack, workdir: Path, config: Path, ports: tuple[int, int], pin: bool, extra: Sequence[str] = ()
) -> tuple[Server, Server]:
    """The generic sandbox and `gateway serve --config CONFIG EXTRA` on ``ports``, serving until ``stack`` closes."""
    sandbox_port, gateway_port = ports
    sandbox_args = ["sandbox", "--vendor", "generic", "--port", str(sandbox_port)]
    sandbox = stack.enter_context(cli_process("sandbox", sandbox_args, sandbox_port, workdir, pin))
    wait_until_serving(sandbox, "/_sandbox/calls")
    gateway_args = ["serve", "--config", str(config), "--port", str(gateway_port), *extra]
    gateway = stack.enter_context(cli_process("gateway", gateway_args, gateway_port, workdir, pin))
    wait_until_serving(gateway, "/healthz")
    return sandbox, gateway


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


# --------------------------------------------------------------------------- HTTP


def call(
    method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def expect(
    method: str, url: str, status: int, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> tuple[dict[str, str], bytes]:
    got, answer_headers, answer = call(method, url, headers, body)
    if got != status:
        raise RuntimeError(f"{method} {url}: expected {status}, got {got}: {answer[:500]!r}")
    return answer_headers, answer


def sandbox_gets(sandbox: Server) -> int:
    return int(json.loads(expect("GET", sandbox.url + "/_sandbox/calls", 200)[1]).get("get", 0))


# --------------------------------------------------------------------------- setup


def new_key() -> str:
    """A gateway key for one bench run."""
    return "cgw_" + secrets.token_urlsafe(32)


def write_config(workdir: Path, upstream_port: int, log_level: str, key: str) -> Path:
    """A bench config (named by its log level) accepting ``key``."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    config = workdir / f"config-{log_level}.yaml"
    config.write_text(
        f"""\
mappings_dir: {json.dumps(str(ROOT / "mappings"))}
logging: {{level: {log_level}, format: json}}
cache:
  backend: memory
  ttl_seconds: {LONG_TTL_S}
  ttl_by_operation: {{get: {LONG_TTL_S}}}
  max_entries: 10000
tenants:
  - id: {TENANT}
    keys:
      - id: bench-key
        hash: "sha256:{digest}"
        scopes: [campaigns:read, campaigns:write]
    default_connection: {CONNECTION}
    connections:
      - name: {CONNECTION}
        vendor: generic
        base_url: http://127.0.0.1:{upstream_port}
        credentials: {{api_key: {VENDOR_KEY}}}
"""
    )
    return config


def create_campaign(gateway: Server, key: str) -> str:
    _, created = expect(
        "POST",
        gateway.url + "/v1/campaigns",
        201,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        json.dumps(CAMPAIGN).encode(),
    )
    return json.loads(created)["id"]


def canonical_answer(gateway: Server, key: str, campaign_id: str) -> bytes:
    """The gateway's answer to GET the campaign: a MISS, then the same bytes as a HIT and as no-cache."""
    auth = {"Authorization": f"Bearer {key}"}
    path = f"/v1/campaigns/{campaign_id}"
    first_headers, first = expect("GET", gateway.url + path, 200, auth)
    hit_headers, hit = expect("GET", gateway.url + path, 200, auth)
    if first_headers.get("x-cache") != "MISS" or hit_headers.get("x-cache") != "HIT" or hit != first:
        raise RuntimeError(f"expected MISS then HIT with one body, got {first_headers} / {hit_headers}")
    miss_headers, miss = expect("GET", gateway.url + path, 200, {**auth, "Cache-Control": "no-cache"})
    if miss_headers.get("x-cache") != "BYPASS" or miss != hit:
        raise RuntimeError(f"no-cache did not go upstream for the same body: {miss_headers}")
    return hit


def check_body(server: Server, path: str, headers: Sequence[str], expected: bytes) -> None:
    """Wait until ``server`` answers ``path`` (it may not listen yet), then compare the bytes."""
    sent = dict(h.split(": ", 1) for h in headers)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            _, body = expect("GET", server.url + path, 200, sent)
            break
        except urllib.error.URLError:  # not an HTTPError: call() answers those
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} is not serving:\n{tail(server.log)}") from None
            time.sleep(0.05)
    if body != expected:
        raise RuntimeError(f"{server.name}{path} answers other bytes than expected:\n{body[:300]!r}")


# --------------------------------------------------------------------------- wrk


WRK_THREADS = 2

# Round-robin over many paths; each wrk thread starts its own stretch of the list, so the requests in
# flight at once (at most connections / threads per thread) name different paths.
_SPREAD_LUA = """\
local paths = {%s}
local threads = %d
local counter = 0
function setup(thread)
  thread:set("first", counter * math.floor(#paths / threads))
  counter = counter + 1
end
function init(args)
  i = first
end
function request()
  i = i + 1
  return wrk.format(nil, paths[(i %% #paths) + 1])
end
"""


def wrk_command(
    url: str, headers: Sequence[str], concurrency: int, duration_s: int, script: Path | None = None
) -> list[str]:
    threads = min(WRK_THREADS, concurrency)  # wrk needs connections >= threads
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration_s}s", "--timeout", "10s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    return [*cmd, url]


def spread_script(paths: Sequence[str], workdir: Path) -> Path:
    script = workdir / "spread.lua"
    script.write_text(_SPREAD_LUA % (", ".join(json.dumps(p) for p in paths), WRK_THREADS))
    return script


def run_wrk(server: Server, target: Target, concurrency: int, duration_s: int, settings: Settings) -> WrkResult:
    script = spread_script(target.spread, settings.workdir) if target.spread else None
    cmd = wrk_command(server.url + target.path, target.headers, concurrency, duration_s, script)
    cmd = pinned(cmd, LOAD_CPU, settings.pin)
    cpu_before = cpu_seconds(server.process.pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    cpu_used = cpu_seconds(server.process.pid) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited during the run:\n{tail(server.log)}")
    return parse_wrk(done.stdout, cpu_used)


def measure(servers: dict[str, Server], target: Target, concurrency: int, settings: Settings) -> Measured:
    server, sandbox = servers[target.server], servers["sandbox"]
    if settings.warmup_s > 0:
        run_wrk(server, target, concurrency, settings.warmup_s, settings)
    calls_before = sandbox_gets(sandbox)
    result = run_wrk(server, target, concurrency, settings.duration_s, settings)
    measured = Measured(target, concurrency, result, sandbox_gets(sandbox) - calls_before)
    print(
        f"  {target.name:<25} c={concurrency:<3} {result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  {result.cpu_us_per_req:5.0f} us CPU/req  "
        f"upstream calls/req {per_request(measured):.2f}  errors {result.errors}",
        flush=True,
    )
    return measured


def per_request(m: Measured) -> float:
    return m.upstream_calls / m.result.requests if m.result.requests else float("nan")


# --------------------------------------------------------------------------- report


def machine() -> list[str]:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    versions = ", ".join(f"{name} {version(name)}" for name in ("uvicorn", "starlette", "aiohttp", "orjson", "uvloop"))
    return [
        f"nproc: {nproc} (os.cpu_count {os.cpu_count()})",
        f"CPU: {models[0] if models else 'unknown'}" + (f" x{len(models)}" if len(models) > 1 else ""),
        f"python: {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
        f"{platform.release()}",
        f"packages: {versions}",
        f"wrk: {(wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else 'unknown'}",
    ]


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


COMPARED = (
    ("gateway-hit", "ceiling"),
    ("gateway-hit-quiet", "ceiling"),
    ("gateway-miss", "proxy-ceiling"),
    ("gateway-miss-spread", "proxy-ceiling"),
    ("gateway-miss-spread-quiet", "proxy-ceiling"),
)
# (path, its ceiling, the least req/s ratio at c=16, the most p50 at c=1 in ms: of its own, or added to the ceiling's)
GOALS = (
    ("gateway-hit", "ceiling", 0.80, 0.2, False),
    ("gateway-miss-spread", "proxy-ceiling", 0.70, 1.0, True),
)


def print_table(results: list[Measured], settings: Settings) -> None:
    by_key = {(m.target.name, m.concurrency): m for m in results}
    header = (
        f"{'path':<25} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>14} "
        f"{'CPU us/req':>10} {'up calls/req':>12} {'errors':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for concurrency in settings.concurrencies:
        for m in (r for r in results if r.concurrency == concurrency):
            ratio = ""
            ref = by_key.get((m.target.reference, concurrency)) if m.target.reference else None
            if ref is not None and ref.result.rps:
                ratio = f"{m.result.rps / ref.result.rps:.2f}x {m.target.reference.split('-')[0]}"
            print(
                f"{m.target.name:<25} {concurrency:>3} {m.result.rps:>8.0f} {m.result.p50_ms:>8.2f} "
                f"{m.result.p99_ms:>8.2f} {ratio:>14} {m.result.cpu_us_per_req:>10.0f} "
                f"{per_request(m):>12.2f} {m.result.errors:>6}"
            )
        print()
    print("ratios (req/s, same concurrency, measured back to back):")
    for name, reference in COMPARED:
        cells = []
        for c in settings.concurrencies:
            a, b = by_key.get((name, c)), by_key.get((reference, c))
            if a and b and b.result.rps:
                cells.append(f"c={c}: {a.result.rps / b.result.rps:.2f}x")
        print(f"  {name} / {reference}: {', '.join(cells)}")
    lowest = min(settings.concurrencies)
    for name, reference in COMPARED:
        a, b = by_key.get((name, lowest)), by_key.get((reference, lowest))
        if a and b:
            added = (a.result.p50_ms - b.result.p50_ms) * 1000
            print(f"  added p50 at c={lowest}, {name} vs {reference}: {added:+.0f} us")
    print_goals(by_key)


def print_goals(by_key: dict[tuple[str, int], Measured]) -> None:
    """Each target against its figure, with the access line on (as deployed) and off (-quiet)."""
    print("targets:")
    for base, reference, least_ratio, most_p50, added in GOALS:
        for name in (base, f"{base}-quiet"):
            busy, ceiling = by_key.get((name, 16)), by_key.get((reference, 16))
            if busy and ceiling and ceiling.result.rps:
                ratio = busy.result.rps / ceiling.result.rps
                goal = f"target >= {least_ratio:.2f}x"
                print(f"  {name} c=16: {ratio:.2f}x {reference} ({goal}) {_mark(ratio >= least_ratio)}")
            alone, alone_ceiling = by_key.get((name, 1)), by_key.get((reference, 1))
            if alone and alone_ceiling:
                p50 = alone.result.p50_ms - (alone_ceiling.result.p50_ms if added else 0.0)
                what = "added p50" if added else "p50"
                print(f"  {name} c=1: {what} {p50:.3f} ms (target <= {most_p50} ms) {_mark(p50 <= most_p50)}")


def _mark(met: bool) -> str:
    return "met" if met else "MISSED"


# --------------------------------------------------------------------------- benchmark


def targets(campaign_id: str, key: str, others: Sequence[str], gateways: Sequence[str]) -> list[Target]:
    """In run order: each gateway path right after its ceiling, so a ratio's two runs are adjacent.

    ``gateways``: the gateway servers measured, "gateway" (as configured) and maybe "gateway-quiet"
    (no access line), whose paths are named with a -quiet suffix.
    """
    auth = f"Authorization: Bearer {key}"
    vendor_auth = f"Authorization: Bearer {VENDOR_KEY}"
    item, vendor_item = f"/v1/campaigns/{campaign_id}", f"/campaigns/{campaign_id}"
    miss = (auth, "Cache-Control: no-cache")
    spread = tuple(f"/v1/campaigns/{other}" for other in others)
    suffix = {name: name.removeprefix("gateway") for name in gateways}
    return [
        Target("ceiling", "ceiling", item, (), upstream_calls=False),
        *(Target(f"gateway-hit{suffix[g]}", g, item, (auth,), "ceiling", upstream_calls=False) for g in gateways),
        Target("proxy-ceiling", "proxy", vendor_item, ()),
        Target("gateway-miss", "gateway", item, miss, reference="proxy-ceiling"),
        *(Target(f"gateway-miss-spread{suffix[g]}", g, item, miss, "proxy-ceiling", spread=spread) for g in gateways),
        Target("upstream-direct", "sandbox", vendor_item, (vendor_auth,)),
    ]


def run(settings: Settings) -> None:
    workdir = settings.workdir
    sandbox_port, gateway_port = free_port(), free_port()
    key = new_key()
    levels = {"gateway": "warning" if settings.log_level == "warning" else "info"}
    if settings.log_level == "both":
        levels["gateway-quiet"] = "warning"
    with ExitStack() as stack:
        config = write_config(workdir, sandbox_port, levels["gateway"], key)
        workers = ("--workers", str(settings.workers))
        sandbox, gateway = sandbox_and_gateway(
            stack, workdir, config, (sandbox_port, gateway_port), settings.pin, workers
        )
        gateways = {"gateway": gateway}
        if "gateway-quiet" in levels:
            port = free_port()
            quiet = write_config(workdir, sandbox_port, levels["gateway-quiet"], key)
            args = ["serve", "--config", str(quiet), "--port", str(port), *workers]
            gateways["gateway-quiet"] = stack.enter_context(
                cli_process("gateway-quiet", args, port, workdir, settings.pin)
            )
            wait_until_serving(gateways["gateway-quiet"], "/healthz")

        campaign_id = create_campaign(gateway, key)
        canonical = canonical_answer(gateway, key, campaign_id)
        others = [campaign_id, *(create_campaign(gateway, key) for _ in range(settings.spread - 1))]
        body_file = workdir / "canonical.json"
        body_file.write_bytes(canonical)
        _, upstream_body = expect(
            "GET", f"{sandbox.url}/campaigns/{campaign_id}", 200, {"Authorization": f"Bearer {VENDOR_KEY}"}
        )
        item = f"/v1/campaigns/{campaign_id}"
        static_args = ["static", "--path", item, "--body-file", str(body_file)]
        ceiling = stack.enter_context(server_process("ceiling", static_args, workdir, settings.pin))
        proxy_args = ["proxy", "--client", "aiohttp", "--upstream", sandbox.url]
        proxy_args += ["--header", f"Authorization: Bearer {VENDOR_KEY}", "--decode-json"]
        proxy = stack.enter_context(server_process("proxy", proxy_args, workdir, settings.pin))
        servers = {"sandbox": sandbox, **gateways, "ceiling": ceiling, "proxy": proxy}

        plan = targets(campaign_id, key, others, list(gateways))
        expected = {"ceiling": canonical, "proxy": upstream_body, "sandbox": upstream_body}
        expected |= dict.fromkeys(gateways, canonical)
        for target in plan:
            check_body(servers[target.server], target.path, target.headers, expected[target.server])

        log_lines_before = count_lines(gateway.log)
        print(
            f"campaign {campaign_id}: gateway answer {len(canonical)} bytes, vendor answer {len(upstream_body)} bytes"
        )
        print(f"gateway pid {gateway.process.pid}, sandbox pid {sandbox.process.pid}")
        print(f"gateway-miss-spread cycles over {len(others)} campaigns created through the gateway")
        for name, level in levels.items():
            access = "ON (one JSON line per request, to a file)" if level == "info" else "OFF (level warning)"
            print(f"{name} access log: {access}", flush=True)
        rss_before = rss_kib(gateway.process.pid)
        results = []
        started = time.monotonic()
        for concurrency in settings.concurrencies:
            for target in plan:
                results.append(measure(servers, target, concurrency, settings))
        rss_after = rss_kib(gateway.process.pid)
        log_lines = count_lines(gateway.log) - log_lines_before
        log_bytes = gateway.log.stat().st_size
        measured_s = time.monotonic() - started

    print_table(results, settings)
    print()
    print(
        f"gateway RSS before the runs {rss_before['VmRSS'] / 1024:.1f} MiB, after {rss_after['VmRSS'] / 1024:.1f} MiB "
        f"(peak {rss_after['VmHWM'] / 1024:.1f} MiB)"
    )
    print(f"gateway access log: {log_lines} lines written during the runs ({log_bytes / 1e6:.1f} MB in total)")
    print(f"measured runs took {measured_s:.0f}s")


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each run")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--spread", type=int, default=256, help="campaigns gateway-miss-spread cycles over")
    parser.add_argument(
        "--log-level",
        default="both",
        choices=["both", "info", "warning"],
        help="info: the access line on (as deployed); warning: off; both: a gateway of each, side by side",
    )
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk not found: apt-get install -y wrk")
    pin = not args.no_pin and can_pin()
    if not pin:
        print("note: not pinning (no taskset, fewer than 2 CPUs, or --no-pin)", file=sys.stderr)
    return Settings(
        tuple(args.concurrency), args.duration, args.warmup, pin, max(1, args.spread), args.log_level, args.workers
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    print("machine:")
    for line in machine():
        print(f"  {line}")
    print(
        f"servers pinned to CPU {SERVER_CPU}, wrk to CPU {LOAD_CPU}: {settings.pin}; wrk -t2 (-t1 at c=1) "
        f"--latency --timeout 10s, {settings.warmup_s}s warm-up + {settings.duration_s}s per run",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as workdir:
        run(replace(settings, workdir=Path(workdir)))
    print(f"(total {time.monotonic() - started:.0f}s; all servers stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
