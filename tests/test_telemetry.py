"""Telemetry: one access line per request, Server-Timing, Prometheus metrics, /readyz, log formats.

In-process: a generic-map connection whose vendor is a scripted fake (a little slow, so upstream
time is measurable) serves a create, a miss, a hit, a vendor 404, a vendor 500, an unreachable
vendor and unauthenticated calls. Each request gets exactly one line on ``gateway.access`` with the
right values, and neither the gateway key nor the vendor credential appears in the formatted line
(JSON or text). /metrics is scraped before and after and the counters and histograms move by
exactly what was served. /metrics answers loopback only, or with its token when one is set.
/readyz reports its detail and goes 503 while Redis is down, 200 again once it is back.

Real processes (`gateway serve`, as in test_serve_e2e): two workers share their metrics (the
counts from both sum in one scrape), and the log format follows the config (text, or JSON when
stderr is not a terminal). Every wait is bounded; every process is stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.telemetry import MULTIPROCESS_ENV, AccessFormatter
from gateway.transport import TransportUnreachable
from tests import processes
from tests.conftest import DEMO_KEY, ROOT, TEST_KEY, RedisServer, free_port, write_config
from tests.fakes import Answer, json_answer

SECRET = "sk_live_telemetry_SECRET_1a2b3c4d5e6f"
WRONG_KEY = "cgw_wrong_key_that_must_not_be_logged_0000"
SCRAPE_TOKEN = "scrape-token-123456"
VENDOR_DELAY = 0.003  # seconds the fake vendor takes to answer
CONNECTION = {
    "name": "nexa",
    "vendor": "generic",
    "base_url": "https://vendor.test/v1",
    "credentials": {"api_key": SECRET},
}
ACCESS_FIELDS = {
    "time",
    "request_id",
    "method",
    "path",
    "status",
    "tenant",
    "key",
    "connection",
    "vendor",
    "operation",
    "upstream_status",
    "cache",
    "error",
    "ms",
    "upstream_ms",
    "retries",
    "dropped",
}
SERVER_TIMING = re.compile(r"upstream;dur=(\d+\.\d+), gateway;dur=(\d+\.\d+)")


class SlowVendor:
    """A Transport playing the generic (DialNexa-shaped) API, answering after VENDOR_DELAY."""

    def __init__(self) -> None:
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.authorizations: set[str] = set()

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.calls += 1
        self.authorizations.add(headers.get("Authorization", ""))
        await asyncio.sleep(VENDOR_DELAY)
        path = url.removeprefix("https://vendor.test/v1")
        return self.answer(method, path, body)

    def answer(self, method: str, path: str, body: bytes | None) -> Answer:
        if (method, path) == ("POST", "/campaigns"):
            sent = json.loads(body or b"{}")
            campaign = {"id": "c-1", "name": sent["name"], "status": "draft", "agent_id": sent.get("agent_id")}
            self.campaigns["c-1"] = campaign
            return json_answer(201, campaign)
        if path == "/campaigns/boom":
            # a vendor fault that echoes the credential back: it must reach no log line either
            return json_answer(500, {"error": {"message": f"internal failure for key {SECRET}"}})
        if path == "/campaigns/down":
            raise TransportUnreachable("connection refused")
        campaign_id = path.removeprefix("/campaigns/")
        if method == "GET" and campaign_id in self.campaigns:
            return json_answer(200, self.campaigns[campaign_id])
        return json_answer(404, {"error": {"type": "not_found", "message": f"campaign {campaign_id} not found"}})

    async def close(self) -> None:
        return None


def build_app(tmp_path: Path, vendor: SlowVendor | None = None, **extra: object) -> GatewayApp:
    config, problems = load_config(write_config(tmp_path, [CONNECTION], **extra))
    assert config is not None, problems
    fake = vendor or SlowVendor()
    return GatewayApp(config, lambda _connection: fake)


def client_for(app: GatewayApp, host: str = "127.0.0.1") -> httpx.AsyncClient:
    """An in-process client calling from ``host``; it sends no key unless a request adds one."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 5000)), base_url="http://gateway")


# request id -> (method, path, headers, json body); sent in this order
SCENARIOS: list[tuple[str, str, str, dict[str, str], Any]] = [
    ("t-create", "POST", "/v1/campaigns", {}, {"name": "Spring", "agent_id": "agt_1", "from_number": "+14155550100"}),
    ("t-miss", "GET", "/v1/campaigns/c-1", {}, None),
    ("t-hit", "GET", "/v1/campaigns/c-1", {}, None),
    ("t-notfound", "GET", "/v1/campaigns/missing", {}, None),
    ("t-vendor500", "GET", "/v1/campaigns/boom", {}, None),
    ("t-unreachable", "GET", "/v1/campaigns/down", {}, None),
    ("t-nokey", "GET", "/v1/campaigns/c-1", {"authorization": ""}, None),
    ("t-wrongkey", "GET", "/v1/campaigns/c-1", {"authorization": f"Bearer {WRONG_KEY}"}, None),
    ("t-apikey", "GET", "/v1/connections", {"authorization": "", "x-api-key": TEST_KEY}, None),
]
# request id -> the access fields it must log (besides time, request_id, method, path, ms, upstream_ms)
EXPECTED: dict[str, dict[str, Any]] = {
    "t-create": {"status": 201, "operation": "create", "cache": None, "error": None, "upstream_status": 201},
    "t-miss": {"status": 200, "operation": "get", "cache": "MISS", "error": None, "upstream_status": 200},
    "t-hit": {"status": 200, "operation": "get", "cache": "HIT", "error": None, "upstream_status": None},
    "t-notfound": {"status": 404, "operation": "get", "cache": "MISS", "error": "not_found", "upstream_status": 404},
    "t-vendor500": {
        "status": 502,
        "operation": "get",
        "cache": "MISS",
        "error": "upstream_error",
        "upstream_status": 500,
    },
    "t-unreachable": {
        "status": 503,
        "operation": "get",
        "cache": "MISS",
        "error": "upstream_unavailable",
        "upstream_status": None,
    },
}
UNAUTHENTICATED = {
    "status": 401,
    "tenant": None,
    "key": None,
    "connection": None,
    "vendor": None,
    "operation": None,
    "upstream_status": None,
    "cache": None,
    "error": "unauthorized",
    "upstream_ms": 0.0,
}


async def run_scenarios(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    answers = {}
    for request_id, method, path, headers, body in SCENARIOS:
        sent_headers = {"authorization": f"Bearer {TEST_KEY}", **headers, "x-request-id": request_id}
        sent_headers = {name: value for name, value in sent_headers.items() if value}
        answers[request_id] = await client.request(method, path, headers=sent_headers, json=body)
    return answers


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.access"]


def server_timing(response: httpx.Response) -> tuple[float, float]:
    header = response.headers.get("server-timing")
    assert header is not None, f"no Server-Timing on {response.request.method} {response.request.url}"
    parsed = SERVER_TIMING.fullmatch(header)
    assert parsed, header
    return float(parsed[1]), float(parsed[2])


# ------------------------------------------------------------------------------------------ access log


async def test_one_access_line_per_request_with_its_fields_and_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    app = build_app(tmp_path)
    try:
        async with client_for(app) as client:
            answers = await run_scenarios(client)
    finally:
        await app.aclose()

    assert {rid: r.status_code for rid, r in answers.items()} == {
        "t-create": 201,
        "t-miss": 200,
        "t-hit": 200,
        "t-notfound": 404,
        "t-vendor500": 502,
        "t-unreachable": 503,
        "t-nokey": 401,
        "t-wrongkey": 401,
        "t-apikey": 200,
    }
    records = access_records(caplog)
    by_id: dict[str, list[logging.LogRecord]] = {}
    for record in records:
        fields = getattr(record, "fields", None)
        assert isinstance(fields, dict), f"access record without a fields dict: {record.__dict__}"
        by_id.setdefault(fields["request_id"], []).append(record)
    assert {rid: len(lines) for rid, lines in by_id.items()} == {rid: 1 for rid, *_ in SCENARIOS}

    for request_id, method, path, _headers, _body in SCENARIOS:
        [record] = by_id[request_id]
        fields = record.fields  # type: ignore[attr-defined]
        assert record.levelno == logging.INFO
        assert set(fields) == ACCESS_FIELDS, ACCESS_FIELDS ^ set(fields)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["time"]), fields["time"]
        assert (fields["method"], fields["path"]) == (method, path)
        assert fields["status"] == answers[request_id].status_code
        assert answers[request_id].headers["x-request-id"] == request_id
        assert isinstance(fields["ms"], float) and fields["ms"] > 0
        assert 0 <= fields["upstream_ms"] <= fields["ms"]
        if request_id in EXPECTED:
            expected = {"tenant": "t1", "key": "t1-key", "connection": "nexa", "vendor": "generic"}
            expected |= EXPECTED[request_id]
            assert {name: fields[name] for name in expected} == expected, request_id
            if expected["cache"] == "HIT":
                assert fields["upstream_ms"] == 0
            else:  # the vendor was called (and takes VENDOR_DELAY to answer)
                assert fields["upstream_ms"] >= VENDOR_DELAY * 1000 * 0.9, fields
        elif request_id in ("t-nokey", "t-wrongkey"):
            assert {name: fields[name] for name in UNAUTHENTICATED} == UNAUTHENTICATED, request_id
        else:  # t-apikey: /v1/connections with X-API-Key
            assert (fields["tenant"], fields["key"], fields["operation"]) == ("t1", "t1-key", "connections")
            assert (fields["connection"], fields["vendor"], fields["error"]) == (None, None, None)

    secrets = [TEST_KEY, WRONG_KEY, SECRET, "sha256:"]
    for json_lines in (True, False):
        formatter = AccessFormatter(json_lines=json_lines)
        for record in records:
            line = formatter.format(record)
            assert "\n" not in line
            for secret in secrets:
                assert secret not in line, f"{secret!r} in the access line {line!r}"
            if json_lines:
                assert json.loads(line) == record.fields  # type: ignore[attr-defined]
            else:
                fields = record.fields  # type: ignore[attr-defined]
                assert line.startswith(fields["time"] + " ")
                assert f" {fields['method']} {fields['path']} {fields['status']} " in line
                assert line.endswith(" " + fields["request_id"])
    # and no other log line of the whole run carries them either
    for record in caplog.records:
        text = AccessFormatter(json_lines=True).format(record)
        for secret in secrets[:3]:
            assert secret not in text, text


async def test_text_access_line_reads_as_documented(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    app = build_app(tmp_path)
    try:
        async with client_for(app) as client:
            await run_scenarios(client)
    finally:
        await app.aclose()
    lines = {
        r.fields["request_id"]: AccessFormatter(json_lines=False).format(r)  # type: ignore[attr-defined]
        for r in access_records(caplog)
    }
    number = r"\d+(\.\d+)?"
    assert re.fullmatch(
        rf"\S+Z GET /v1/campaigns/c-1 200 t1/t1-key nexa get cache=HIT {number}ms \(upstream 0\.0ms\) t-hit",
        lines["t-hit"],
    ), lines["t-hit"]
    assert re.fullmatch(
        rf"\S+Z POST /v1/campaigns 201 t1/t1-key nexa create {number}ms \(upstream {number}ms\) t-create",
        lines["t-create"],
    ), lines["t-create"]
    assert re.fullmatch(
        rf"\S+Z GET /v1/campaigns/c-1 401 -/- - - {number}ms \(upstream 0\.0ms\) t-nokey", lines["t-nokey"]
    ), lines["t-nokey"]


async def test_a_request_path_cannot_forge_access_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The path is logged decoded: a percent-encoded newline (or terminal escape) must not start a
    second, forged line in the text format, which is the one read by people at a terminal."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    forged = "%0D%0A2026-01-01T00:00:00.000Z%20GET%20/v1/campaigns%20200%20t1/admin%20%1B[2J"
    app = build_app(tmp_path)
    try:
        async with client_for(app) as client:
            auth = {"Authorization": f"Bearer {TEST_KEY}"}
            for n, path in enumerate((f"/v1/campaigns/c{forged}", f"/nowhere{forged}")):
                answer = await client.get(path, headers={**auth, "X-Request-ID": f"forge-{n}"})
                assert answer.status_code == 404
    finally:
        await app.aclose()
    logged = {r.fields["request_id"]: r for r in access_records(caplog)}  # type: ignore[attr-defined]
    records = [logged["forge-0"], logged["forge-1"]]
    for record in records:
        assert "\n" in record.fields["path"]  # type: ignore[attr-defined]  # the decoded path, as served
        for json_lines in (True, False):
            line = AccessFormatter(json_lines=json_lines).format(record)
            controls = sorted({char for char in line if ord(char) < 0x20 or ord(char) == 0x7F})
            assert not controls, f"control characters {controls!r} in the access line {line!r}"


# -------------------------------------------------------------------------------------- Server-Timing


async def test_server_timing_on_every_v1_answer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    app = build_app(tmp_path)
    try:
        async with client_for(app) as client:
            answers = await run_scenarios(client)
            health = await client.get("/healthz")
    finally:
        await app.aclose()
    logged = {r.fields["request_id"]: r.fields for r in access_records(caplog)}  # type: ignore[attr-defined]
    for request_id, response in answers.items():
        upstream, gateway = server_timing(response)
        assert gateway > 0, (request_id, response.headers["server-timing"])
        # the header's vendor time is the logged one (the answer is sent after the vendor answered)
        assert abs(upstream - logged[request_id]["upstream_ms"]) <= 0.0015, (request_id, upstream, logged[request_id])
        assert upstream + gateway <= logged[request_id]["ms"] + 0.0015
    miss_upstream, _ = server_timing(answers["t-miss"])
    assert miss_upstream >= VENDOR_DELAY * 1000 * 0.9
    assert server_timing(answers["t-hit"])[0] == 0
    assert server_timing(answers["t-nokey"])[0] == 0
    assert server_timing(answers["t-create"])[0] > 0
    assert server_timing(answers["t-vendor500"])[0] > 0
    assert health.status_code == 200


async def test_server_timing_on_the_demo_sandbox(demo_client: httpx.AsyncClient) -> None:
    headers = {"X-Connection": "dialnexa-sandbox"}
    body = {"name": "timed", "agent_id": "agt_timed1", "from_number": "+14155550100"}
    created = await demo_client.post("/v1/campaigns", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert server_timing(created)[0] > 0
    path = f"/v1/campaigns/{created.json()['id']}"
    miss = await demo_client.get(path, headers=headers)
    hit = await demo_client.get(path, headers=headers)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert server_timing(miss)[0] > 0
    assert server_timing(hit)[0] == 0
    assert server_timing(hit)[1] > 0


# -------------------------------------------------------------------------------------------- metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


async def test_metrics_move_as_requests_go_through(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    try:
        async with client_for(app) as client:
            before = await scrape(client)
            await run_scenarios(client)
            after = await scrape(client)
    finally:
        await app.aclose()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    who = {"tenant": "t1", "connection": "nexa", "vendor": "generic"}
    assert moved("gateway_requests_total", **who, operation="create", status="201") == 1
    assert moved("gateway_requests_total", **who, operation="get", status="200") == 2
    assert moved("gateway_requests_total", **who, operation="get", status="404") == 1
    assert moved("gateway_requests_total", **who, operation="get", status="502") == 1
    assert moved("gateway_requests_total", **who, operation="get", status="503") == 1
    nobody = {"tenant": "", "connection": "", "vendor": "", "operation": ""}
    assert moved("gateway_requests_total", **nobody, status="401") == 2
    assert moved("gateway_requests_total", tenant="t1", connection="", vendor="", operation="connections", status="200")
    # the first scrape is counted by the time of the second
    assert moved("gateway_requests_total", **nobody, status="200") == 1

    assert moved("gateway_cache_total", result="HIT") == 1
    assert moved("gateway_cache_total", result="MISS") == 4  # c-1, missing, boom, down
    assert moved("gateway_upstream_errors_total", vendor="generic", code="upstream_error") == 1
    assert moved("gateway_upstream_errors_total", vendor="generic", code="upstream_unavailable") == 1
    assert moved("gateway_upstream_errors_total", vendor="generic", code="not_found") == 0

    timed = {"vendor": "generic", "operation": "get"}
    # every answer is timed, and so is the gateway's own part of it (a hit is all gateway);
    # upstream time only for the answers that called the vendor (five reads, of which the hit did not)
    for histogram, reads in (
        ("gateway_request_duration_seconds", 5),
        ("gateway_upstream_duration_seconds", 4),
        ("gateway_overhead_duration_seconds", 5),
    ):
        assert moved(f"{histogram}_count", **timed) == reads, histogram
        assert moved(f"{histogram}_bucket", **timed, le="+Inf") == reads, histogram
        assert moved(f"{histogram}_count", vendor="generic", operation="create") == 1, histogram
        assert moved(f"{histogram}_sum", **timed) > 0, histogram
    # the four that reached the vendor waited for it (VENDOR_DELAY each)
    assert moved("gateway_upstream_duration_seconds_sum", **timed) >= 4 * VENDOR_DELAY * 0.9
    assert moved("gateway_upstream_duration_seconds_bucket", **timed, le="0.0025") == 0
    assert moved("gateway_request_duration_seconds_sum", **timed) >= moved(
        "gateway_upstream_duration_seconds_sum", **timed
    )
    # /v1/connections and the 401s have no vendor: timed with empty labels, no upstream time
    assert moved("gateway_request_duration_seconds_count", vendor="", operation="connections") == 1
    assert moved("gateway_upstream_duration_seconds_count", vendor="", operation="connections") == 0


async def test_metrics_answer_loopback_only_without_a_token(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    try:
        async with client_for(app, host="127.0.0.1") as local:
            assert (await local.get("/metrics")).status_code == 200
        async with client_for(app, host="::1") as local6:
            assert (await local6.get("/metrics")).status_code == 200
        async with client_for(app, host="10.1.2.3") as remote:
            refused = await remote.get("/metrics", headers={"X-Request-ID": "remote-scrape"})
            assert refused.status_code == 403
            error = refused.json()["error"]
            assert error["code"] == "forbidden"
            assert error["request_id"] == "remote-scrape"
            # and the gateway key does not open it
            assert (await remote.get("/metrics", headers={"Authorization": f"Bearer {TEST_KEY}"})).status_code == 403
    finally:
        await app.aclose()


async def test_metrics_token_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_SCRAPE_TOKEN", SCRAPE_TOKEN)
    app = build_app(tmp_path, metrics={"token": "${GATEWAY_TEST_SCRAPE_TOKEN}"})
    try:
        for host in ("127.0.0.1", "10.1.2.3"):
            async with client_for(app, host=host) as client:
                missing = await client.get("/metrics")
                assert missing.status_code == 401, (host, missing.text)
                assert missing.json()["error"]["code"] == "unauthorized"
                for wrong in (TEST_KEY, SCRAPE_TOKEN + "x", SCRAPE_TOKEN[:-1]):
                    refused = await client.get("/metrics", headers={"Authorization": f"Bearer {wrong}"})
                    assert refused.status_code == 401, (host, wrong)
                allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
                assert allowed.status_code == 200, (host, allowed.text)
                assert "gateway_requests_total" in allowed.text
                assert SCRAPE_TOKEN not in allowed.text
    finally:
        await app.aclose()


# --------------------------------------------------------------------------------------------- readyz


async def test_readyz_reports_its_detail(demo_client: httpx.AsyncClient) -> None:
    ready = await demo_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.headers["content-type"].startswith("application/json")
    detail = ready.json()
    assert detail["status"] == "ready"
    assert Path(detail["config"]) == ROOT / "config.yaml"
    assert (detail["tenants"], detail["connections"]) == (1, 8)
    assert detail["cache"]["backend"] == "memory"
    assert detail["cache"]["ok"] is True
    assert detail["cache"]["entries"] == 0
    # a cached read shows up in the entry count
    assert (await demo_client.get("/v1/campaigns")).headers["x-cache"] == "MISS"
    assert (await demo_client.get("/readyz")).json()["cache"]["entries"] == 1
    # no key needed, and none leaks
    assert DEMO_KEY not in ready.text and "sandbox-key" not in ready.text


async def wait_for_readyz(client: httpx.AsyncClient, status: int, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get("/readyz")
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (
            f"/readyz is still {response.status_code} after {seconds} s: {response.text}"
        )
        await asyncio.sleep(0.1)


async def test_readyz_goes_red_while_redis_is_down(tmp_path: Path, redis_server: RedisServer) -> None:
    """Only /readyz is asked (as a load balancer would): it must turn 503 and then back to 200."""
    app = build_app(tmp_path, cache={"backend": redis_server.url})
    try:
        async with client_for(app) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"
            assert ready.json()["cache"] == {"backend": "redis", "ok": True, "pending_invalidations": 0}

            redis_server.stop()
            started = time.monotonic()
            down = await client.get("/readyz")
            assert time.monotonic() - started < 5, "/readyz must not hang on an unreachable Redis"
            assert down.status_code == 503, down.text
            assert down.json()["status"] == "degraded"
            assert down.json()["cache"]["backend"] == "redis"
            assert down.json()["cache"]["ok"] is False
            assert redis_server.url not in down.text

            redis_server.start()
            back = await wait_for_readyz(client, 200, 10)
            assert back.json()["status"] == "ready"
            assert back.json()["cache"] == {"backend": "redis", "ok": True, "pending_invalidations": 0}
    finally:
        await app.aclose()


async def test_readyz_recovers_after_a_redis_outage_seen_by_reads(tmp_path: Path, redis_server: RedisServer) -> None:
    """Reads during the outage are answered uncached; /readyz is red, then green after Redis returns."""
    vendor = SlowVendor()
    vendor.campaigns["c-1"] = {"id": "c-1", "name": "Spring", "status": "running"}
    app = build_app(tmp_path, vendor, cache={"backend": redis_server.url})
    try:
        async with client_for(app) as client:
            auth = {"Authorization": f"Bearer {TEST_KEY}"}
            assert (await client.get("/v1/campaigns/c-1", headers=auth)).headers["x-cache"] == "MISS"
            assert (await client.get("/v1/campaigns/c-1", headers=auth)).headers["x-cache"] == "HIT"
            redis_server.stop()
            during = await client.get("/v1/campaigns/c-1", headers=auth)
            assert during.status_code == 200 and during.headers["x-cache"] == "MISS"
            assert (await client.get("/readyz")).status_code == 503
            redis_server.start()
            await wait_for_readyz(client, 200, 10)
    finally:
        await app.aclose()


# ------------------------------------------------------------------------------------ real processes


def serving(tmp_path: Path, config: Path, *extra: str) -> AbstractContextManager[tuple[str, Path]]:
    """`gateway serve --config CONFIG EXTRA` (stderr to a file, not a terminal); yields (base URL, stderr file)."""
    return processes.serving(
        config,
        *extra,
        log_path=tmp_path / "serve.stderr",
        stdout_path=tmp_path / "serve.stdout",
        drop_env=(MULTIPROCESS_ENV,),
    )


def shipped_config_copy(tmp_path: Path, **extra: object) -> Path:
    """config.yaml as shipped, in tmp_path (its maps found by absolute path), with ``extra`` top-level keys."""
    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    document["mappings_dir"] = str(ROOT / "mappings")
    document.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def wait_for_line(path: Path, found: Callable[[str], bool], seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while True:
        for line in path.read_text(errors="replace").splitlines():
            if found(line):
                return line
        assert time.monotonic() < deadline, f"no such line in {seconds} s:\n{path.read_text(errors='replace')}"
        time.sleep(0.05)


AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
LABELS = {
    "tenant": "demo",
    "connection": "voiso-sandbox",
    "vendor": "voiso",
    "operation": "list",
    "status": "200",
}


def test_two_workers_share_their_metrics(tmp_path: Path) -> None:
    """Requests of several label sets, each on its own connection (so both workers serve some): once the
    workers have shared (at most a snapshot period later), every scrape on either worker counts each
    label set exactly as often as it was requested."""
    config = shipped_config_copy(tmp_path)
    made = {  # (connection, vendor, operation, path, status) -> requests made
        ("voiso-sandbox", "voiso", "list", "/v1/campaigns", "200"): 20,
        ("hamsa-sandbox", "hamsa", "get", "/v1/campaigns/00000000-0000-4000-8000-000000000000", "404"): 7,
        ("dialnexa-sandbox", "dialnexa", "recipients_list", "/v1/campaigns/cmp_nope/recipients", "404"): 5,
    }
    with serving(tmp_path, config, "--workers", "2") as (base_url, err_path):
        n = 0
        for (connection, _vendor, _operation, path, status), count in made.items():
            for _ in range(count):
                headers = {**AUTH, "X-Connection": connection, "X-Request-ID": f"mp-{n}", "Connection": "close"}
                answer = httpx.get(base_url + path, headers=headers, timeout=10)
                assert answer.status_code == int(status), answer.text
                n += 1

        def counted(samples: Samples) -> dict[tuple[str, ...], float]:
            return {
                key: value(
                    samples,
                    "gateway_requests_total",
                    tenant="demo",
                    connection=key[0],
                    vendor=key[1],
                    operation=key[2],
                    status=key[4],
                )
                for key in made
            }

        # each worker shares its values at most SNAPSHOT_SECONDS late: wait until both agree
        deadline, agreeing = time.monotonic() + 5, 0
        while agreeing < 6:
            scraped = httpx.get(base_url + "/metrics", headers={"Connection": "close"}, timeout=10).text
            agreeing = agreeing + 1 if counted(parse_metrics(scraped)) == made else 0
            assert time.monotonic() < deadline, "the workers' metrics did not add up within 5 s"
            time.sleep(0.05)
        for _ in range(6):  # separate connections: the scrapes land on either worker
            response = httpx.get(base_url + "/metrics", headers={"Connection": "close"}, timeout=10)
            assert response.status_code == 200, response.text
            samples = parse_metrics(response.text)
            assert counted(samples) == made, response.text
            timed = {"vendor": "voiso", "operation": "list"}
            assert value(samples, "gateway_request_duration_seconds_count", **timed) == 20
            assert value(samples, "gateway_request_duration_seconds_bucket", **timed, le="+Inf") == 20
            hits, misses = (
                value(samples, "gateway_cache_total", result="HIT"),
                value(samples, "gateway_cache_total", result="MISS"),
            )
            assert hits + misses == sum(made.values())
        wait_for_line(err_path, lambda line: f'"request_id":"mp-{n - 1}"' in line)
    log = err_path.read_text()
    assert log.count("Started server process") >= 2, log
    assert sum(1 for i in range(n) if f'"request_id":"mp-{i}"' in log) == n
    assert DEMO_KEY not in log and "sandbox-key" not in log


def test_every_request_of_a_burst_has_one_access_line_even_across_sigterm(tmp_path: Path) -> None:
    """200 concurrent requests, then SIGTERM at once: the buffered access lines are all written, one each.

    The writer's timer is set far beyond the test, so only the shutdown's flush can write them."""
    config = shipped_config_copy(
        tmp_path,
        logging={"level": "info", "format": "json", "flush_seconds": 60},
        server={"max_connections_per_client": 1000},  # 200 at once from one address
    )
    log_path = tmp_path / "serve.stderr"
    port = free_port()
    process = processes.start_gateway("serve", "--config", str(config), "--port", str(port), log_path=log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(base_url + "/healthz", process, log_path)

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
                answers = await asyncio.gather(
                    *(client.get("/v1/campaigns", headers={**AUTH, "X-Request-ID": f"burst-{n}"}) for n in range(200))
                )
            return [answer.status_code for answer in answers]

        assert asyncio.run(burst()) == [200] * 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then raises the signal again for its default exit status
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in log_path.read_text()
    finally:
        processes.stop(process)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if '"request_id":"burst-' in line]
    assert sorted(line["request_id"] for line in lines) == sorted(f"burst-{n}" for n in range(200))
    for line in lines:
        assert set(line) == ACCESS_FIELDS, line
        assert (line["status"], line["operation"], line["tenant"]) == (200, "list", "demo")


def test_log_format_text_from_config(tmp_path: Path) -> None:
    config = shipped_config_copy(tmp_path, logging={"level": "info", "format": "text"})
    with serving(tmp_path, config) as (base_url, err_path):
        answer = httpx.get(
            base_url + "/v1/campaigns",
            headers={**AUTH, "X-Connection": "voiso-sandbox", "X-Request-ID": "text-fmt-1"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        line = wait_for_line(err_path, lambda text: "text-fmt-1" in text)
    number = r"\d+(\.\d+)?"
    pattern = (
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z GET /v1/campaigns 200 demo/demo-key voiso-sandbox list"
        rf" cache=MISS {number}ms \(upstream {number}ms\) text-fmt-1"
    )
    assert re.fullmatch(pattern, line), line
    log = err_path.read_text()
    # the server's own lines are readable text too, not JSON
    started = [text for text in log.splitlines() if "Started server process" in text]
    assert started and not started[0].startswith("{"), log
    assert re.match(r"\S+Z INFO uvicorn\.error: Started server process", started[0]), started[0]
    assert DEMO_KEY not in log and "sandbox-key" not in log


def test_log_format_is_json_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    config = shipped_config_copy(tmp_path)  # logging.format defaults to auto
    with serving(tmp_path, config) as (base_url, err_path):
        answer = httpx.get(
            base_url + "/v1/campaigns/404404",
            headers={**AUTH, "X-Connection": "voiso-sandbox", "X-Request-ID": "json-fmt-1"},
            timeout=10,
        )
        assert answer.status_code == 404, answer.text
        line = wait_for_line(err_path, lambda text: "json-fmt-1" in text)
    fields = json.loads(line)
    assert set(fields) >= ACCESS_FIELDS
    assert {name: fields[name] for name in ("method", "path", "status", "tenant", "key", "connection")} == {
        "method": "GET",
        "path": "/v1/campaigns/404404",
        "status": 404,
        "tenant": "demo",
        "key": "demo-key",
        "connection": "voiso-sandbox",
    }
    assert (fields["vendor"], fields["operation"], fields["upstream_status"]) == ("voiso", "get", 404)
    assert (fields["cache"], fields["error"]) == ("MISS", "not_found")
    log = err_path.read_text()
    for text in log.splitlines():
        if text.strip():
            record = json.loads(text)  # every line on stderr is a JSON object
            assert isinstance(record, dict) and "time" in record, text
    assert any(json.loads(t).get("message", "").startswith("Started server process") for t in log.splitlines())
    # one line per request: the HTTP client's own per-call lines (to the sandbox) stay out of the log
    assert not [t for t in log.splitlines() if json.loads(t).get("logger") == "httpx"]
    assert DEMO_KEY not in log and "sandbox-key" not in log


def test_requests_are_counted_in_batches_and_a_scrape_counts_every_one_before_it() -> None:
    """Counting is folded: FOLD_EVERY requests at a time, and whatever is left when scraped or closed."""
    from gateway.telemetry import FOLD_EVERY, RequestRecord, Telemetry

    telemetry = Telemetry()

    def answered(n: int, cache: str) -> RequestRecord:
        record = RequestRecord(request_id=f"r-{n}", method="GET", path="/v1/campaigns/c-1", status=200)
        record.tenant, record.connection, record.vendor, record.operation = "acme", "nexa", "generic", "get"
        record.cache, record.ms = cache, 0.2
        return record

    labels = {"tenant": "acme", "connection": "nexa", "vendor": "generic", "operation": "get", "status": "200"}
    made = {"HIT": 0, "MISS": 0}
    for n in range(3 * FOLD_EVERY + 7):  # three whole batches and a part
        cache = "HIT" if n % 4 else "MISS"
        telemetry.record(answered(n, cache))
        made[cache] += 1
        if n in (FOLD_EVERY - 1, 2 * FOLD_EVERY + 3):  # a scrape in the middle of a batch
            samples = parse_metrics(telemetry.exposition().decode())
            assert value(samples, "gateway_requests_total", **labels) == n + 1
    samples = parse_metrics(telemetry.exposition().decode())
    total = 3 * FOLD_EVERY + 7
    assert value(samples, "gateway_requests_total", **labels) == total
    assert value(samples, "gateway_cache_total", result="HIT") == made["HIT"]
    assert value(samples, "gateway_cache_total", result="MISS") == made["MISS"]
    timed = {"vendor": "generic", "operation": "get"}
    assert value(samples, "gateway_request_duration_seconds_count", **timed) == total
    assert value(samples, "gateway_request_duration_seconds_bucket", **timed, le="0.0005") == total
    assert value(samples, "gateway_request_duration_seconds_sum", **timed) == pytest.approx(total * 0.0002)
