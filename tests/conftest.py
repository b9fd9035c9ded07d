"""Shared fixtures: the shipped demo config, an in-process gateway, and configs built in tmp dirs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.app import GatewayApp, TransportFactory
from gateway.config import Config, load_config
from gateway.keys import key_hash

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
DEMO_KEY = "cgw_demo_8f3kq2v7xw1m5n9p4r6t0y2u8i3o5a7s"
TEST_KEY = "cgw_test_key_for_the_suite_0000000000000000"
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby1vbmx5LXdlYmhvb2stc2lnbmluZy1rZXktMzI="  # the demo tenant's, in config.yaml


@pytest.fixture
def demo_config() -> Config:
    config, problems = load_config(ROOT / "config.yaml")
    assert config is not None, problems
    return config


@pytest.fixture
async def demo_client(demo_config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """The shipped config.yaml served in-process (all four vendors sandboxed), with the demo key."""
    app = GatewayApp(demo_config)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as client:
        yield client
    await app.aclose()


def write_config(directory: Path, connections: list[dict], mappings_dir: Path = MAPPINGS, **extra: object) -> Path:
    """A config with one tenant `t1` (key TEST_KEY) holding ``connections``; the first is the default."""
    document = {
        "mappings_dir": str(mappings_dir),
        "tenants": [
            {
                "id": "t1",
                "keys": [{"id": "t1-key", "hash": key_hash(TEST_KEY)}],
                "default_connection": connections[0]["name"] if connections else None,
                "connections": connections,
            }
        ],
        **extra,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., httpx.AsyncClient]:
    """Build an in-process gateway client from connection dicts, optionally with a transport factory.

    Usage: ``async with make_client([{...connection...}], transport_factory) as client: ...``
    """

    def build(
        connections: list[dict], transport_factory: TransportFactory | None = None, **extra: object
    ) -> httpx.AsyncClient:
        config, problems = load_config(write_config(tmp_path, connections, **extra))
        assert config is not None, problems
        app = GatewayApp(config, transport_factory)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {TEST_KEY}"},
        )

    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, with no persistence; stop() and start() again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/test installs it (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start in 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash: without persistence, what it held is gone when it starts again."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
