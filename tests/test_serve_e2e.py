"""The README's first command: a real `gateway serve` process on the shipped config.yaml.

Starts the server on a free port (cwd the repo root), waits for /healthz (bounded), then talks
HTTP to it with the demo key: one campaign through each sandboxed connection, read back with
every canonical field its vendor reports filled in; /openapi.json, /docs and /metrics answer.
The process is always stopped: SIGTERM, then SIGKILL (to its process group) after 5 s.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway import models
from tests.conftest import DEMO_KEY
from tests.processes import serving
from tests.test_roundtrip import BY_CONNECTION, leaves

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def test_serve_answers_every_vendor(tmp_path: Path) -> None:
    served = serving("config.yaml", log_path=tmp_path / "serve.log")
    with served as (base_url, _), httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client:
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
            assert (campaign["status"] is None) is (case.created_status == {(None, None)})  # Bland reports none

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
    """Stateless answers; that the sandboxes hold the same on every worker is tests/test_sandbox_workers.py."""
    served = serving("config.yaml", "--workers", "2", log_path=tmp_path / "serve.log")
    with served as (base_url, _), httpx.Client(base_url=base_url, timeout=10) as client:
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
