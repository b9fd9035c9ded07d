"""How long does `gateway serve --workers N` take to be ready, and where does a worker spend it?

For each worker count, ``--rounds`` times: start `gateway serve` on the shipped config.yaml (four
sandboxed vendors; with N > 1 the serve process also runs the shared sandbox hub), and time until
every worker has logged ``Application startup complete`` and ``/healthz`` answers; then stop it.
Then, in one fresh interpreter, the pieces of one worker's start: importing the app module, and
building the app (loading and compiling the config and every map).

Run: ``.venv/bin/python bench/startup.py [--workers 1 2] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from transports import stop, tail

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
STARTED = "Application startup complete"
PIECES = """
import time
started = time.perf_counter()
import gateway.server
imported = time.perf_counter()
gateway.server.app_from_environment()
built = time.perf_counter()
print(f"{imported - started:.3f} {built - imported:.3f}")
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready_after(workers: int, workdir: Path) -> float:
    """Seconds from spawning `gateway serve --workers N` until all N workers started and /healthz is 200."""
    port = free_port()
    log = workdir / f"serve-{workers}.log"
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", str(workers)]
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            elapsed = time.monotonic() - started
            if process.poll() is not None or elapsed > READY_TIMEOUT_S:
                raise RuntimeError(f"not ready after {elapsed:.1f} s:\n{tail(log)}")
            if log.read_text(errors="replace").count(STARTED) >= workers and _healthy(port):
                return time.monotonic() - started
            time.sleep(0.01)
    finally:
        stop(process)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def pieces() -> tuple[float, float]:
    """Seconds one fresh interpreter spends importing the app module, then building the app."""
    done = subprocess.run(
        [sys.executable, "-c", PIECES], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    imported, built = done.stdout.split()
    return float(imported), float(built)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as workdir:
        for workers in args.workers:
            times = [ready_after(workers, Path(workdir)) for _ in range(args.rounds)]
            print(
                f"serve --workers {workers}: ready after {statistics.median(times):.2f} s "
                f"(median of {args.rounds}; {', '.join(f'{t:.2f}' for t in times)})",
                flush=True,
            )
    runs = [pieces() for _ in range(args.rounds)]
    print(
        f"one worker, fresh interpreter: import {statistics.median(r[0] for r in runs):.2f} s, "
        f"build the app (config + maps) {statistics.median(r[1] for r in runs):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
