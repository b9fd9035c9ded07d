"""Does a live reload stall the requests a worker is serving? Measure it.

One run, on 127.0.0.1, starts the ``generic`` sandbox as the upstream and the gateway (1 worker,
the bench config of bench/overhead.py: every map in mappings/ is parsed and compiled on each
reload), creates a campaign and fills the cache, then:

* **stall**: one client sends cache-hit GETs back to back for ``--duration`` seconds, first with no
  reload, then while ``SIGHUP`` forces a reload every ``--interval`` seconds; the slowest answer
  of each run, less the typical one, is what a reload held every request up for;
* **under wrk**: wrk at ``--concurrency`` on the same GET, without and then with the reloads,
  ``--rounds`` times interleaved; p50 / p99 / max of each, and the median p99 of each kind.

Reloads are counted from the gateway's ``config reloaded`` log lines, so a run proves they happened.
Servers are pinned to core 1 and the load to core 0 when ``taskset`` and two CPUs are available.

Run: ``.venv/bin/python bench/reload.py [--duration 10] [--interval 0.5] [--concurrency 16] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from overhead import canonical_answer, create_campaign, free_port, new_key, sandbox_and_gateway, write_config
from transports import (
    LOAD_CPU,
    SERVER_CPU,
    Server,
    WrkResult,
    can_pin,
    exit_on_sigterm,
    parse_wrk,
    pinned,
)
from transports import wrk_command as plain_wrk_command


@dataclass(frozen=True)
class Probe:
    """Latencies of back-to-back requests on one keep-alive connection, in ms."""

    samples: list[float]

    @property
    def typical(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.samples, n=100)[98]

    @property
    def worst(self) -> float:
        return max(self.samples)


@contextmanager
def reloading(pid: int, interval: float | None) -> Iterator[None]:
    """SIGHUP to ``pid`` every ``interval`` seconds until the block ends (no reloads when None)."""
    done = threading.Event()

    def send() -> None:
        while not done.wait(interval):
            os.kill(pid, signal.SIGHUP)

    thread = threading.Thread(target=send, daemon=True) if interval else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()


def probe(url: str, path: str, key: str, seconds: float) -> Probe:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    samples = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return Probe(samples)


def reloads_logged(gateway: Server) -> int:
    return gateway.log.read_text(errors="replace").count("config reloaded")


def run(settings: argparse.Namespace, workdir: Path, pin: bool) -> None:
    sandbox_port, gateway_port = free_port(), free_port()
    # Log level info: reloads are counted from the log (access lines go there too, in both runs alike).
    key = new_key()
    config = write_config(workdir, sandbox_port, "info", key)
    with ExitStack() as stack:
        _sandbox, gateway = sandbox_and_gateway(stack, workdir, config, (sandbox_port, gateway_port), pin)
        campaign_id = create_campaign(gateway, key)
        canonical_answer(gateway, key, campaign_id)
        path = f"/v1/campaigns/{campaign_id}"
        pid = gateway.process.pid
        print(f"gateway pid {pid}; GET {path} (a cache hit); reload = SIGHUP every {settings.interval} s", flush=True)

        probes = {}
        for label, interval in (("no reloads", None), ("reloading", settings.interval)):
            before = reloads_logged(gateway)
            with reloading(pid, interval):
                probes[label] = probe(gateway.url, path, key, settings.duration)
            count = reloads_logged(gateway) - before
            p = probes[label]
            print(
                f"  stall probe, {label:<10}: {len(p.samples):6d} requests, typical {p.typical:6.2f} ms, "
                f"p99 {p.p99:6.2f} ms, slowest {p.worst:7.2f} ms, reloads {count}",
                flush=True,
            )
        stall = probes["reloading"].worst - probes["no reloads"].typical
        print(f"  a reload held a request up by at most {stall:.1f} ms", flush=True)

        p99s: dict[str, list[float]] = {"no reloads": [], "reloading": []}
        for _round in range(settings.rounds):
            for label, interval in (("no reloads", None), ("reloading", settings.interval)):
                result, worst, count = wrk_run(gateway, path, key, settings, interval, pin)
                p99s[label].append(result.p99_ms)
                print(
                    f"  wrk c={settings.concurrency}, {label:<10}: {result.rps:8.0f} req/s, "
                    f"p50 {result.p50_ms:6.2f} ms, p99 {result.p99_ms:7.2f} ms, max {worst:7.2f} ms, "
                    f"errors {result.errors}, reloads {count}",
                    flush=True,
                )
        without, with_reloads = statistics.median(p99s["no reloads"]), statistics.median(p99s["reloading"])
        print(
            f"  median p99 of {settings.rounds} rounds: {without:.2f} ms without reloads, {with_reloads:.2f} ms with: "
            f"{with_reloads / without:.2f}x (target <= 2x)"
        )


def wrk_run(
    gateway: Server, path: str, key: str, settings: argparse.Namespace, interval: float | None, pin: bool
) -> tuple[WrkResult, float, int]:
    """One wrk run on ``path`` (reloading every ``interval`` s, or not): its result, max latency, reloads made."""
    command = plain_wrk_command(gateway.url + path, settings.concurrency, settings.duration)
    command[-1:-1] = ["-H", f"Authorization: Bearer {key}"]
    before = reloads_logged(gateway)
    with reloading(gateway.process.pid, interval):
        done = subprocess.run(
            pinned(command, LOAD_CPU, pin), capture_output=True, text=True, timeout=settings.duration + 30, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, 0.0), _max_latency(done.stdout), reloads_logged(gateway) - before


def _max_latency(wrk_output: str) -> float:
    """The Max column of wrk's Latency line, in ms."""
    for line in wrk_output.splitlines():
        if line.strip().startswith("Latency"):
            value = line.split()[3]
            for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
                if value.endswith(unit):
                    return float(value.removesuffix(unit)) * factor
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between reloads")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of each kind, interleaved")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    settings = parser.parse_args(argv)
    pin = not settings.no_pin and can_pin()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    print(f"servers pinned to CPU {SERVER_CPU}, load to CPU {LOAD_CPU}: {pin}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as workdir:
        run(settings, Path(workdir), pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
