"""Hostile clients against one gateway worker: what they cost it, and whether others are still served.

One run, on 127.0.0.1, starts the ``generic`` sandbox and the gateway (1 worker, the bench config
of bench/overhead.py, the server limits at their defaults unless ``--server`` gives some), then,
one scenario after the other:

* ``stalled-bodies``: ``--bodies`` clients (500) each declare a 1 MiB create body, send all of it
  but the last byte, and stop. The gateway's RSS is sampled every 0.2 s;
* ``slowloris``: ``--slow`` clients (200) send a request head one byte per second;
* ``idle``: ``--idle`` clients (2000) connect and send nothing.

For each: what every client got (an HTTP status, or the connection closed without an answer) and
after how long, the latency of another client's requests made meanwhile (a health check every
0.2 s on a connection of its own, from 127.0.0.2: the hostile ones all come from 127.0.0.1), and
the gateway's RSS before, at its peak and after. A scenario ends when
every client has its answer or ``--limit`` seconds have passed (then the clients hang up).

Run: ``.venv/bin/python bench/hostile.py [--bodies 500] [--limit 60] [--server '{"body_timeout_seconds": 10}']``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from overhead import free_port, new_key, rss_kib, sandbox_and_gateway, write_config
from transports import Server

BODY_BYTES = 1024 * 1024
SAMPLE_SECONDS = 0.2
OTHER_CLIENT = "127.0.0.2"
Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Outcome:
    """What the clients of one scenario got, and what the gateway's memory and other clients saw meanwhile."""

    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    probe_failures: int = 0


async def answer_of(reader: asyncio.StreamReader) -> str:
    """The status of the answer the gateway sent, or ``closed`` if it hung up without one."""
    try:
        line = await reader.readline()
    except ConnectionError:
        return "reset"
    return line.split()[1].decode() if line.startswith(b"HTTP/") else "closed"


def stalled_body(key: str) -> Client:
    head = (
        "POST /v1/campaigns HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()

    async def client(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head + b" " * (BODY_BYTES - 1))
        await writer.drain()

    return client


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for byte in b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 200:
        if reader.at_eof():
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1)


async def idle(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    return None


async def one(port: int, client: Client, outcome: Outcome, started: float, limit: float) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        outcome.answers[f"connect failed ({type(exc).__name__})"] += 1
        return
    try:
        async with asyncio.timeout(limit):
            sending = asyncio.create_task(client(reader, writer))
            answer = await answer_of(reader)
            sending.cancel()
        outcome.answers[answer] += 1
        outcome.seconds.append(time.monotonic() - started)
    except (TimeoutError, ConnectionError):
        outcome.answers[f"no answer within {limit:g} s"] += 1
    finally:
        writer.close()


async def watch(gateway: Server, outcome: Outcome, until: asyncio.Event) -> None:
    """RSS every SAMPLE_SECONDS, and one health check on a fresh connection each time."""
    port = int(gateway.url.rsplit(":", 1)[1])
    while not until.is_set():
        outcome.rss_mib.append(rss_kib(gateway.process.pid)["VmRSS"] / 1024)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(OTHER_CLIENT, 0))
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                ok = (await answer_of(reader)) == "200"
                writer.close()
            outcome.probe_ms.append((time.perf_counter() - started) * 1000)
            outcome.probe_failures += not ok
        except (TimeoutError, OSError):
            outcome.probe_failures += 1
        await asyncio.sleep(SAMPLE_SECONDS)


async def scenario(gateway: Server, client: Client, count: int, limit: float) -> Outcome:
    outcome = Outcome()
    port = int(gateway.url.rsplit(":", 1)[1])
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(gateway, outcome, done))
    started = time.monotonic()
    await asyncio.gather(*(one(port, client, outcome, started, limit) for _ in range(count)))
    await asyncio.sleep(1)  # memory after the last client is gone
    done.set()
    await watcher
    return outcome


def report(name: str, count: int, before_mib: float, outcome: Outcome) -> None:
    answers = ", ".join(f"{answer}: {n}" for answer, n in sorted(outcome.answers.items()))
    cut = f"{min(outcome.seconds):.1f}-{max(outcome.seconds):.1f} s" if outcome.seconds else "-"
    probes = sorted(outcome.probe_ms)
    served = f"median {statistics.median(probes):.1f} ms, slowest {probes[-1]:.1f} ms" if probes else "none answered"
    print(f"{name} ({count} clients):")
    print(f"  answers: {answers}; answered or closed after {cut}")
    print(f"  health checks meanwhile: {len(probes)} ({served}), failed {outcome.probe_failures}")
    print(
        f"  gateway RSS: before {before_mib:.1f} MiB, peak {max(outcome.rss_mib):.1f} MiB, "
        f"after {outcome.rss_mib[-1]:.1f} MiB",
        flush=True,
    )


def run(settings: argparse.Namespace, workdir: Path) -> None:
    sandbox_port, gateway_port = free_port(), free_port()
    key = new_key()
    config = write_config(workdir, sandbox_port, "warning", key)
    if settings.server:
        config.write_text(config.read_text() + f"server: {json.dumps(json.loads(settings.server))}\n")
    with ExitStack() as stack:
        _sandbox, gateway = sandbox_and_gateway(stack, workdir, config, (sandbox_port, gateway_port), False)
        print(f"gateway pid {gateway.process.pid}; server settings: {settings.server or 'defaults'}", flush=True)
        plan = [
            ("stalled-bodies", stalled_body(key), settings.bodies),
            ("slowloris", slowloris, settings.slow),
            ("idle", idle, settings.idle),
        ]
        for name, client, count in plan:
            if name not in settings.scenarios:
                continue
            before = rss_kib(gateway.process.pid)["VmRSS"] / 1024
            outcome = asyncio.run(scenario(gateway, client, count, settings.limit))
            report(name, count, before, outcome)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=500)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--limit", type=float, default=60, help="seconds a scenario may last")
    parser.add_argument("--server", help="JSON for the config's server: block")
    parser.add_argument("--scenarios", nargs="+", default=["stalled-bodies", "slowloris", "idle"])
    settings = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as workdir:
        run(settings, Path(workdir))
    print(f"(total {time.monotonic() - started:.0f} s; all servers stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
