"""Which upstream HTTP client should the gateway use? Measure it.

Starts one upstream (uvicorn, 1 worker, uvloop + httptools, Starlette route with a fixed ~2 KB JSON
body) and, one at a time, a minimal Starlette proxy in its own uvicorn process per client variant:

* ``upstream-direct``   wrk hits the upstream itself (no proxy);
* ``aiohttp-direct``    proxy on ``aiohttp.ClientSession`` (the baseline for the ratio column);
* ``httpx-aiohttp``     proxy on ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())``;
* ``httpx-default``     proxy on ``httpx.AsyncClient()`` (httpcore pool, library defaults);
* ``*/no-sniffio``      the same with ``import sniffio`` failing, as if it were not installed.

Each is driven by wrk at several concurrencies (``--latency``, ``--timeout 10s`` so slow requests
are measured instead of dropped). Servers are pinned to core 1 and wrk to core 0 when ``taskset``
and two CPUs are available. Variants are interleaved over ``--rounds`` rounds and the table shows
the per-cell median. Every process started here is stopped on exit, error or signal.

Run: ``.venv/bin/python bench/transports.py [--duration 5] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

SERVERS_SCRIPT = Path(__file__).with_name("_servers.py")
UPSTREAM_PATH = "/v1/campaigns/42"  # must match _servers.UPSTREAM_PATH
BASELINE = "aiohttp-direct"
SERVER_CPU = 1
LOAD_CPU = 0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Variant:
    name: str
    client: str | None  # None: no proxy, wrk talks to the upstream
    hide_sniffio: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("upstream-direct", None),
    Variant("aiohttp-direct", "aiohttp"),
    Variant("httpx-aiohttp", "httpx-aiohttp"),
    Variant("httpx-aiohttp/no-sniffio", "httpx-aiohttp", hide_sniffio=True),
    Variant("httpx-default", "httpx"),
    Variant("httpx-default/no-sniffio", "httpx", hide_sniffio=True),
)


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses
    cpu_us_per_req: float  # CPU of the process wrk talks to (proxy, or upstream when direct)


@dataclass(frozen=True)
class Cell:
    variant: str
    concurrency: int
    runs: tuple[WrkResult, ...]

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def spread_pct(self) -> float:
        rates = [r.rps for r in self.runs]
        return 100 * (max(rates) - min(rates)) / 2 / self.rps if self.rps else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def cpu_us(self) -> float:
        return statistics.median(r.cpu_us_per_req for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path


# --------------------------------------------------------------------------- process handling


def can_pin() -> bool:
    return shutil.which("taskset") is not None and {LOAD_CPU, SERVER_CPU} <= os.sched_getaffinity(0)


def pinned(cmd: list[str], cpu: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if pin else cmd


def wait_for_port(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        if port_file.exists():
            return int(port_file.read_text())
        time.sleep(0.05)
    raise TimeoutError(f"server did not report its port in {START_TIMEOUT_S}s:\n{tail(log)}")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_until_serving(server: Server, path: str) -> bytes:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return http_get(server.url + path)
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} is not serving:\n{tail(server.log)}") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def server_process(name: str, args: list[str], workdir: Path, pin: bool) -> Iterator[Server]:
    port_file = workdir / f"{name.replace('/', '_')}.port"
    log = port_file.with_suffix(".log")
    port_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(SERVERS_SCRIPT), *args, "--port-file", str(port_file)]
    with log.open("wb") as log_fh:
        process = subprocess.Popen(
            pinned(cmd, SERVER_CPU, pin),
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C reaches only us; we stop it ourselves
        )
    try:
        port = wait_for_port(process, port_file, log)
        yield Server(name, process, f"http://127.0.0.1:{port}", log)
    finally:
        stop(process)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------- wrk


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(text: str, cpu_s: float) -> WrkResult:
    percentiles = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _PERCENTILE.findall(text)}
    rps, total = _RPS.search(text), _TOTAL.search(text)
    if rps is None or total is None or not {50, 99} <= percentiles.keys():
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    errors = sum(int(n) for n in _SOCKET_ERRORS.findall(text)[0]) if "Socket errors" in text else 0
    non_2xx = _NON_2XX.search(text)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    requests = int(total.group(1))
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=requests,
        errors=errors,
        cpu_us_per_req=1e6 * cpu_s / requests if requests else float("nan"),
    )


def wrk_command(url: str, concurrency: int, duration_s: int) -> list[str]:
    threads = min(2, concurrency)  # wrk needs connections >= threads
    return [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]


def run_wrk(url: str, concurrency: int, duration_s: int, pin: bool, pid: int) -> WrkResult:
    cmd = pinned(wrk_command(url, concurrency, duration_s), LOAD_CPU, pin)
    cpu_before = cpu_seconds(pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    cpu_used = cpu_seconds(pid) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, cpu_used)


# --------------------------------------------------------------------------- benchmark


@dataclass(frozen=True)
class Settings:
    concurrencies: tuple[int, ...]
    duration_s: int  # wrk takes whole seconds
    warmup_s: int
    rounds: int
    variants: tuple[Variant, ...]
    pin: bool


def proxy_args(variant: Variant, upstream: Server) -> list[str]:
    assert variant.client is not None
    args = ["proxy", "--client", variant.client, "--upstream", upstream.url]
    return [*args, "--hide-sniffio"] if variant.hide_sniffio else args


def measure(target: Server, variant: Variant, settings: Settings) -> list[Cell]:
    url = target.url + UPSTREAM_PATH
    cells = []
    for concurrency in settings.concurrencies:
        if settings.warmup_s > 0:
            run_wrk(url, concurrency, settings.warmup_s, settings.pin, target.process.pid)
        result = run_wrk(url, concurrency, settings.duration_s, settings.pin, target.process.pid)
        print(
            f"  {variant.name:<26} c={concurrency:<3} {result.rps:>9.0f} req/s "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms  "
            f"{result.cpu_us_per_req:6.0f} us CPU/req  errors {result.errors}",
            flush=True,
        )
        cells.append(Cell(variant.name, concurrency, (result,)))
    return cells


def bench_variant(variant: Variant, upstream: Server, expected: bytes, workdir: Path, settings: Settings) -> list[Cell]:
    if variant.client is None:
        return measure(upstream, variant, settings)
    args = proxy_args(variant, upstream)
    with server_process(variant.name, args, workdir, settings.pin) as proxy:
        body = wait_until_serving(proxy, UPSTREAM_PATH)
        if body != expected:
            raise RuntimeError(f"{variant.name} returned a different body than the upstream")
        cells = measure(proxy, variant, settings)
    hidden = re.search(r"hidden-import-attempts sniffio (\d+)", tail(proxy.log))
    if hidden:
        print(f"  ({variant.name}: {hidden.group(1)} failed `import sniffio` attempts)")
    return cells


def rotated(variants: Sequence[Variant], by: int) -> list[Variant]:
    by %= len(variants)
    return [*variants[by:], *variants[:by]]


def merge(cells: list[Cell]) -> dict[tuple[str, int], Cell]:
    merged: dict[tuple[str, int], Cell] = {}
    for cell in cells:
        key = (cell.variant, cell.concurrency)
        runs = merged[key].runs + cell.runs if key in merged else cell.runs
        merged[key] = Cell(cell.variant, cell.concurrency, runs)
    return merged


def run_benchmark(settings: Settings, workdir: Path) -> dict[tuple[str, int], Cell]:
    cells: list[Cell] = []
    with server_process("upstream", ["upstream"], workdir, settings.pin) as upstream:
        expected = wait_until_serving(upstream, UPSTREAM_PATH)
        print(f"upstream {upstream.url}{UPSTREAM_PATH}: {len(expected)} byte JSON body", flush=True)
        for round_no in range(settings.rounds):
            print(f"round {round_no + 1}/{settings.rounds}", flush=True)
            for variant in rotated(settings.variants, round_no):
                cells += bench_variant(variant, upstream, expected, workdir, settings)
    return merge(cells)


# --------------------------------------------------------------------------- report


def print_table(cells: dict[tuple[str, int], Cell], settings: Settings) -> None:
    header = (
        f"{'variant':<26} {'c':>3} {'req/s':>8} {'±%':>4} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs aiohttp':>10} {'CPU us/req':>10} {'errors':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for concurrency in settings.concurrencies:
        base = cells.get((BASELINE, concurrency))
        for variant in settings.variants:
            cell = cells[(variant.name, concurrency)]
            ratio = f"{cell.rps / base.rps:.2f}x" if base and base.rps else "n/a"
            print(
                f"{variant.name:<26} {concurrency:>3} {cell.rps:>8.0f} {cell.spread_pct:>4.0f} "
                f"{cell.p50_ms:>8.2f} {cell.p99_ms:>8.2f} {ratio:>10} {cell.cpu_us:>10.0f} "
                f"{cell.errors:>6}"
            )
        print()


def ratio_line(cells: dict[tuple[str, int], Cell], name: str, base: str, c: int) -> str | None:
    a, b = cells.get((name, c)), cells.get((base, c))
    if not (a and b and b.rps):
        return None
    return f"  c={c:<3} {name} / {base}: {a.rps / b.rps:.2f}x req/s, CPU {a.cpu_us:.0f} vs {b.cpu_us:.0f} us/req"


def print_summary(cells: dict[tuple[str, int], Cell], settings: Settings) -> None:
    pairs = [
        ("httpx-aiohttp", BASELINE),
        ("httpx-default", "httpx-default/no-sniffio"),
        ("httpx-aiohttp", "httpx-aiohttp/no-sniffio"),
    ]
    print("ratios (req/s; >1 means the first is faster):")
    for name, base in pairs:
        for c in settings.concurrencies:
            line = ratio_line(cells, name, base, c)
            if line:
                print(line)
    verdict = gate(cells, "httpx-aiohttp", BASELINE, (16, 64), 0.85)
    if verdict is not None:
        answer = "yes" if verdict else "NO"
        print(f"httpx + AiohttpTransport >= 85% of aiohttp req/s at c=16 and c=64: {answer}")


def gate(
    cells: dict[tuple[str, int], Cell],
    name: str,
    base: str,
    concurrencies: Sequence[int],
    threshold: float,
) -> bool | None:
    """Whether ``name`` reaches ``threshold`` x ``base`` req/s at every concurrency given."""
    verdicts = []
    for c in concurrencies:
        a, b = cells.get((name, c)), cells.get((base, c))
        if a is None or b is None:
            return None
        verdicts.append(a.rps >= threshold * b.rps)
    return all(verdicts)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> Settings:
    names = [v.name for v in VARIANTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--variants", nargs="+", choices=names, default=names)
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk not found: apt-get install -y wrk")
    pin = not args.no_pin and can_pin()
    if not pin:
        print("note: not pinning (no taskset, fewer than 2 CPUs, or --no-pin)", file=sys.stderr)
    return Settings(
        concurrencies=tuple(args.concurrency),
        duration_s=args.duration,
        warmup_s=args.warmup,
        rounds=max(1, args.rounds),
        variants=tuple(v for v in VARIANTS if v.name in args.variants),
        pin=pin,
    )


def exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    print(f"signal {signum}: stopping servers", file=sys.stderr)
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-transports-") as workdir:
        cells = run_benchmark(settings, Path(workdir))
    print_table(cells, settings)
    print_summary(cells, settings)
    print(
        f"\n(wrk -t2 --latency, {settings.duration_s:g}s per run, median of {settings.rounds} "
        f"rounds; servers on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}: {settings.pin}; "
        f"total {time.monotonic() - started:.0f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
