"""Memory: RSS of the gateway before and after 100 000 mixed requests, with the cache at its bound.

Run: ``.venv/bin/python bench/memory.py [--requests 100000]``. In process (the ASGI app called
directly, with the collector settled as ``serve`` settles it), against a stateless fake vendor, so
what grows is the gateway's own memory. The mix:
70% gets over 5 000 campaign ids (the cache holds 1 000), 20% list pages, 10% creates.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.heap import settle_after_startup
from gateway.keys import key_hash

ROOT = Path(__file__).resolve().parent.parent
KEY = "cgw_bench_memory_key_000000000000000000000"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class StatelessVendor:
    """Answers DialNexa-shaped campaigns for any id; keeps nothing."""

    async def send(self, method: str, url: str, headers: Any, body: bytes | None) -> tuple[int, dict, bytes]:
        campaign = {
            "id": url.rsplit("/", 1)[-1].split("?")[0],
            "name": "n",
            "status": "active",
            "agent_id": "agt_1",
            "from_phone_number": "+14155550100",
            "created_at": "2026-01-01T00:00:00Z",
        }
        if method == "GET" and url.split("?")[0].endswith("/campaigns"):
            return 200, {}, orjson.dumps({"data": [campaign] * 20, "total": 10_000})
        return (201 if method == "POST" else 200), {}, orjson.dumps(campaign)

    async def close(self) -> None:
        return None


def write_config(folder: Path) -> Path:
    config = {
        "mappings_dir": str(ROOT / "mappings"),
        "logging": {"level": "warning"},
        "cache": {"backend": "memory", "ttl_seconds": 300, "max_entries": 1000},
        "tenants": [
            {
                "id": "bench",
                "keys": [{"id": "bench-key", "hash": key_hash(KEY)}],
                "default_connection": "nexa",
                "connections": [
                    {
                        "name": "nexa",
                        "vendor": "generic",
                        "base_url": "https://vendor.test/v1",
                        "credentials": {"api_key": "bench-credential"},
                    }
                ],
            }
        ],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def drive(app: GatewayApp, count: int, rng: random.Random) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    headers = [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")]
    create = orjson.dumps({"name": "n", "agent_id": "agt_1", "from_number": "+14155550100"})
    for _ in range(count):
        roll, body, query = rng.random(), b"", b""
        if roll < 0.7:
            method, path = "GET", f"/v1/campaigns/cmp_{rng.randrange(5000)}"
        elif roll < 0.9:
            method, path, query = "GET", "/v1/campaigns", f"cursor={rng.randrange(50) * 20}".encode()
        else:
            method, path, body = "POST", "/v1/campaigns", create
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "headers": headers,
            "client": ("127.0.0.1", 5000),
        }
        await app(scope, receive, send)
        await asyncio.sleep(0)  # let the loop run between requests, as it does in a server (timer clean-up)


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config, problems = load_config(write_config(Path(folder)))
        assert config is not None, problems
        app = GatewayApp(config, lambda _connection: StatelessVendor())
        settle_after_startup()  # as a serving worker does once its app is built (gateway/heap.py)
        rng = random.Random(7)
        await drive(app, 20_000, rng)  # warm-up: caches at their bound, code paths hot
        before = rss_mib()
        await drive(app, requests, rng)
        after = rss_mib()
        await app.aclose()
    growth = (after - before) / before * 100
    print(f"RSS after warm-up {before:.1f} MiB, after {requests} mixed requests {after:.1f} MiB: {growth:+.1f}%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().requests))
