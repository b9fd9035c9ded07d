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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway import models
from tests.conftest import DEMO_KEY, ROOT

STARTUP_SECONDS = 20
STOP_SECONDS = 5
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
FUTURE = (datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)).isoformat().replace("+00:00", "Z")

# connection -> (create body, the canonical fields GET must then report non-null)
CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "hamsa-sandbox": (
        {
            "name": "e2e hamsa",
            "agent_id": "3f2a6c1e-8b7d-4e2f-9a10-1b2c3d4e5f60",
            "from_number": "+14155550100",
            "recipients": [{"phone_number": "+14155550111", "name": "Ann"}],
            "start_at": FUTURE,
            "schedule": {"timezone": "Europe/Berlin", "days": ["monday"], "daily_start": "09:00", "daily_end": "17:00"},
            "max_concurrent_calls": 2,
            "webhook_url": "https://hooks.example.com/e2e",
        },
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "max_concurrent_calls",
            "schedule.start_at",
            "schedule.timezone",
            "schedule.days",
            "schedule.daily_start",
            "schedule.daily_end",
            "retry.max_attempts",
            "stats.total",
            "stats.pending",
            "stats.queued",
            "stats.in_progress",
            "stats.completed",
            "stats.failed",
            "stats.no_answer",
            "webhook_url",
            "created_at",
            "updated_at",
        },
    ),
    "voiso-sandbox": (
        {"name": "e2e voiso", "from_number": "+14155550100", "retry": {"max_attempts": 2}},
        {"name", "status", "vendor_status", "from_numbers", "retry.max_attempts", "created_at", "updated_at"},
    ),
    "sarvam-sandbox": (
        {
            "name": "e2e sarvam",
            "agent_id": "agent-42",
            "from_number": "+919876543210",
            "schedule": {
                "end_at": FUTURE,
                "timezone": "Asia/Kolkata",
                "days": ["monday"],
                "daily_start": "09:00",
                "daily_end": "18:00",
            },
            "retry": {"max_attempts": 2, "interval_minutes": 10},
            "webhook_url": "https://hooks.example.com/e2e",
        },
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "schedule.start_at",
            "schedule.end_at",
            "schedule.timezone",
            "schedule.days",
            "schedule.daily_start",
            "schedule.daily_end",
            "retry.max_attempts",
            "retry.interval_minutes",
            "webhook_url",
            "created_at",
            "updated_at",
        },
    ),
    "dialnexa-sandbox": (
        {
            "name": "e2e dialnexa",
            "agent_id": "agt_e2e1",
            "from_number": "+14155550100",
            "start_at": FUTURE,
            "max_concurrent_calls": 2,
            "retry": {"max_attempts": 3, "interval_minutes": 20},
        },
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "max_concurrent_calls",
            "schedule.start_at",
            "retry.max_attempts",
            "retry.interval_minutes",
            "stats.total",
            "stats.pending",
            "stats.completed",
            "created_at",
        },
    ),
}
NESTED = {"schedule": models.Schedule, "retry": models.Retry, "stats": models.Stats}


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


def _non_null_leaves(campaign: dict[str, Any]) -> set[str]:
    out = set()
    for name, value in campaign.items():
        if name in ("id", "connection", "vendor", "vendor_data"):
            continue
        if name in NESTED:
            assert value is None or set(value) == set(NESTED[name].model_fields), name
            out |= {f"{name}.{sub}" for sub, v in (value or {}).items() if v is not None}
        elif value is not None:
            out.add(name)
    return out


def test_serve_answers_every_vendor(tmp_path: Path) -> None:
    with serving(tmp_path) as base_url, httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]

        connections = client.get("/v1/connections")
        assert connections.status_code == 200, connections.text
        assert {c["name"] for c in connections.json()["data"]} == set(CASES)

        for connection, (body, filled) in CASES.items():
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
            assert _non_null_leaves(fetched.json()) == filled, connection
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
        assert sorted(c["name"] for c in connections.json()["data"]) == sorted(CASES)
        assert client.get("/v1/connections").status_code == 401
    log = (tmp_path / "serve.log").read_text()
    assert log.count("Started server process") >= 2, log
