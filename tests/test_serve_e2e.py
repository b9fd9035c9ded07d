"""The README's first command: a real `gateway serve` process on the shipped config.yaml.

Starts the server on a free port (cwd the repo root), waits for /healthz (bounded), then talks
HTTP to it with the demo key: one campaign through each sandboxed connection, read back with
every canonical field its vendor reports filled in; /openapi.json, /docs and /metrics answer.
The process is always stopped: SIGTERM, then SIGKILL (to its process group) after 5 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway import models
from tests.conftest import DEMO_KEY, ROOT
from tests.test_roundtrip import BY_CONNECTION, leaves

STARTUP_SECONDS = 20
STOP_SECONDS = 5
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        # the server leads its own process group (start_new_session): this reaches its workers too
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)


@contextmanager
def serving(tmp_path: Path, *extra: str) -> Iterator[str]:
    """`gateway serve --config config.yaml --port <free>` from the repo root; yields its base URL."""
    port = _free_port()
    log_path = tmp_path / "serve.log"
    command = [*_gateway_command(), "serve", "--config", "config.yaml", "--port", str(port), *extra]
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gateway serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/healthz did not answer within {STARTUP_SECONDS} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)
    assert process.returncode is not None


def test_serve_answers_every_vendor(tmp_path: Path) -> None:
    with serving(tmp_path) as base_url, httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]

        connections = client.get("/v1/connections")
        assert connections.status_code == 200, connections.text
        assert {c["name"] for c in connections.json()["data"]} == set(BY_CONNECTION)

        # The same per-vendor expectations as the in-process round trips: what each create sends and
        # exactly which canonical fields GET must then report.
        for connection, case in BY_CONNECTION.items():
            body = case.create(f"e2e {case.vendor}")
            headers = {"X-Connection": connection, "X-Request-ID": f"e2e-{connection}"}
            created = client.post("/v1/campaigns", json=body, headers=headers)
            assert created.status_code == 201, (connection, created.text)
            assert created.headers["x-request-id"] == f"e2e-{connection}"
            campaign_id = created.json()["id"]

            fetched = client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
            assert fetched.status_code == 200, (connection, fetched.text)
            campaign = models.Campaign.model_validate(fetched.json()).model_dump(mode="json", exclude={"vendor_data"})
            assert "vendor_data" not in fetched.json()
            assert (fetched.json()["id"], fetched.json()["connection"]) == (campaign_id, connection)
            assert fetched.json()["name"] == body["name"]
            assert {name for name, value in leaves(fetched.json()).items() if value is not None} == case.filled
            assert campaign["status"] is not None

            again = client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
            assert again.headers["x-cache"] == "HIT"
            assert again.json() == fetched.json()

        unauthenticated = httpx.get(base_url + "/v1/campaigns", timeout=5)
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] == "unauthorized"

        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        assert spec.headers["content-type"].startswith("application/json")
        document = spec.json()
        assert document["openapi"].startswith("3.")
        assert "/v1/campaigns" in document["paths"]

        docs = client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        assert "/v1/campaigns" in docs.text

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "gateway_requests_total" in metrics.text


def test_serve_with_two_workers(tmp_path: Path) -> None:
    """Sandbox state is per worker, so only stateless answers are checked here."""
    with serving(tmp_path, "--workers", "2") as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(4):
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
        connections = client.get("/v1/connections", headers=AUTH)
        assert connections.status_code == 200, connections.text
        assert sorted(c["name"] for c in connections.json()["data"]) == sorted(BY_CONNECTION)
        assert client.get("/v1/connections").status_code == 401
    log = (tmp_path / "serve.log").read_text()
    assert log.count("Started server process") >= 2, log
