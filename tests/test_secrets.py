"""No secret ever leaks: neither a gateway key nor a vendor credential, in logs, bodies or headers.

In process: a full request mix (creates, gets, lists, recipients, writes, cache hits, idempotent
replays, vendor errors, a crash, refused keys, missing scopes, another tenant's connection, rate
limits, bad bodies) against fake vendors that echo their credential back everywhere they can:
in error texts (plain and nested), in success bodies (mapped fields and vendor_data), in a
response header. Logging is captured at DEBUG on the root logger, with the gateway's redactor on
the capture handler as `gateway serve` installs it on its own. Then every log line, every
response body and every response header is searched for every key and credential.

Then the same for a real `gateway serve` process, its vendor credential taken from an environment
variable, its vendor a real HTTP server that echoes the credential: stdout and stderr are searched.

And: a vendor that echoes the credential JSON-escaped (PHP's ``\\/``, Go's ``\\u0026``) is the
same text once decoded, and must be redacted the same.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from gateway import redact
from gateway.config import load_config
from gateway.telemetry import AccessFormatter
from tests.fakes import Answer, FakeVendor, SentRequest, json_answer
from tests.test_reload import serve
from tests.test_tenants import gateway, generic_connection, key_entry, tenant_entry, write_tenants

ACME_KEY = "cgw_secret_test_acme_key_ZZZZZZZZZZZZZZZZZZZZZZZZZZ"
ACME_READ_KEY = "cgw_secret_test_acme_read_key_YYYYYYYYYYYYYYYYYYYYY"
ACME_LIMITED_KEY = "cgw_secret_test_acme_limited_XXXXXXXXXXXXXXXXXXXXXX"
ACME_EXPIRED_KEY = "cgw_secret_test_acme_expired_WWWWWWWWWWWWWWWWWWWWWW"
GLOBEX_KEY = "cgw_secret_test_globex_key_VVVVVVVVVVVVVVVVVVVVVVVVV"
WRONG_KEY = "cgw_secret_test_never_issued_UUUUUUUUUUUUUUUUUUUUUU"
ACME_SECRET = "sk_live_ACMEsecret_4f9a8b7c6d5e"
GLOBEX_SECRET = "sk_live_GLOBEXsecret_0a1b2c3d4e"
GATEWAY_KEYS = [ACME_KEY, ACME_READ_KEY, ACME_LIMITED_KEY, ACME_EXPIRED_KEY, GLOBEX_KEY, WRONG_KEY]
CREDENTIALS = [ACME_SECRET, GLOBEX_SECRET]
MASK = "[redacted]"
CREATE = {"name": "Spring", "agent_id": "agt_1", "from_number": "+14155550100"}


def echoing_answer(credential: str, request: SentRequest) -> tuple[int, dict[str, str], Any]:
    """What an indiscreet vendor answers: its credential, or the auth header it got, wherever it fits.

    Campaign ids choose the fault: ``c-denied`` (401 text), ``c-throttled`` (429 text and
    Retry-After), ``c-broken`` (500 with a nested message), ``c-plain`` (502, not JSON),
    ``c-crash`` (the transport itself raises, the credential in the exception). Anything else
    succeeds, the credential in mapped fields and unmapped ones (vendor_data).
    """
    auth = request.headers.get("Authorization", "")
    echo = {"X-Echo-Authorization": auth, "X-Account-Key": credential}
    parts = urlsplit(request.url).path.split("/")[2:]
    campaign_id = parts[1] if len(parts) > 1 and parts[0] == "campaigns" else None
    record = {
        "id": campaign_id or "c-new",
        "name": f"Echo of {credential}",
        "status": "active",
        "agent_id": auth,
        "from_phone_number": "+14155550100",
        "debug": {"authorization": auth, "key": credential, "note": f"served for {credential}"},
    }
    if campaign_id == "c-denied":
        return 401, echo, {"error": {"type": "auth", "message": f"invalid key {credential}"}}
    if campaign_id == "c-throttled":
        return 429, {**echo, "retry-after": "7"}, {"error": {"message": f"too many requests for {credential}"}}
    if campaign_id == "c-broken":
        return 500, echo, {"error": {"message": {"detail": f"backend said {auth}", "key": credential}}}
    if campaign_id == "c-plain":
        return 502, {**echo, "content-type": "text/plain"}, f"<html>bad gateway for {auth}</html>"
    if campaign_id == "c-crash":
        raise RuntimeError(f"connection reset while sending Authorization: {auth} (key {credential})")
    if parts == ["campaigns-leads"]:
        return 422, echo, {"error": {"message": f"lead refused for account {credential}"}}
    if request.method == "GET" and parts == ["campaigns"]:
        return 200, echo, {"data": [record, {**record, "id": "c-2"}], "total": 2}
    if request.method == "GET" and len(parts) == 3:
        lead = {"id": "lead-1", "phone_number": "+14155550111", "name": credential, "status": "pending"}
        return 200, echo, {"data": [lead], "total": 1, "auth": auth}
    if request.method == "POST":
        return 201, echo, {**record, "id": "c-new"}
    return 200, echo, record


class EchoVendor(FakeVendor):
    def __init__(self, credential: str) -> None:
        super().__init__(self.answer)
        self.credential = credential

    def answer(self, request: SentRequest) -> Answer:
        status, headers, body = echoing_answer(self.credential, request)
        if isinstance(body, str):
            return status, headers, body.encode()
        return json_answer(status, body, headers)


# One attempt per request and a circuit that never opens: every request of the mix reaches the
# vendor once, whatever came before it, and a 429's Retry-After is not waited out.
NO_RETRIES = {"retries": {"attempts": 1}, "circuit": {"min_requests": 1000}}


def mix_config(path: Path, credential_refs: tuple[str, str], **extra: Any) -> Path:
    acme_connection = {**generic_connection("acme-nexa", "acme.test", credential_refs[0]), **NO_RETRIES}
    globex_connection = {**generic_connection("globex-nexa", "globex.test", credential_refs[1]), **NO_RETRIES}
    expired = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return write_tenants(
        path,
        [
            tenant_entry(
                "acme",
                [
                    key_entry("acme-main", ACME_KEY),
                    key_entry("acme-read", ACME_READ_KEY, scopes=["campaigns:read"]),
                    key_entry("acme-limited", ACME_LIMITED_KEY, rate_limit={"requests_per_minute": 60, "burst": 2}),
                    key_entry("acme-expired", ACME_EXPIRED_KEY, expires_at=expired),
                ],
                [acme_connection],
            ),
            tenant_entry("globex", [key_entry("globex-main", GLOBEX_KEY)], [globex_connection]),
        ],
        **extra,
    )


# (key, method, path, json body, extra headers)
Step = tuple[str, str, str, Any, dict[str, str]]
MIX: list[Step] = [
    (ACME_KEY, "POST", "/v1/campaigns", CREATE, {}),
    (ACME_KEY, "POST", "/v1/campaigns", CREATE, {"Idempotency-Key": "idem-1"}),
    (ACME_KEY, "POST", "/v1/campaigns", CREATE, {"Idempotency-Key": "idem-1"}),  # replayed
    (ACME_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-1", None, {}),  # a cache hit
    (ACME_KEY, "GET", "/v1/campaigns/c-1?include=vendor_data", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns?include=vendor_data&limit=5", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-1/recipients", None, {}),
    (ACME_KEY, "PATCH", "/v1/campaigns/c-1", {"name": "Renamed"}, {}),
    (ACME_KEY, "POST", "/v1/campaigns/c-1/pause", None, {}),
    (ACME_KEY, "POST", "/v1/campaigns/c-1/recipients", {"recipients": [{"phone_number": "+14155550111"}]}, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-denied", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-throttled", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-broken", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-plain", None, {}),
    (ACME_KEY, "POST", "/v1/campaigns/c-denied/cancel", None, {}),
    (ACME_KEY, "GET", "/v1/campaigns/c-1", None, {"X-Connection": "globex-nexa"}),
    (ACME_KEY, "POST", "/v1/campaigns", {"name": ""}, {}),
    (ACME_KEY, "GET", "/v1/campaigns?limit=1000", None, {}),
    (ACME_KEY, "GET", "/v1/connections", None, {}),
    (ACME_READ_KEY, "POST", "/v1/campaigns", CREATE, {}),
    (ACME_READ_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (ACME_EXPIRED_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (WRONG_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (WRONG_KEY, "POST", "/v1/campaigns", CREATE, {}),
    (ACME_LIMITED_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (ACME_LIMITED_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (ACME_LIMITED_KEY, "GET", "/v1/campaigns/c-1", None, {}),  # 429
    (GLOBEX_KEY, "GET", "/v1/campaigns/c-1", None, {}),
    (GLOBEX_KEY, "GET", "/v1/campaigns/c-denied", None, {}),
    (GLOBEX_KEY, "POST", "/v1/campaigns", CREATE, {"Idempotency-Key": "idem-1"}),
    (GLOBEX_KEY, "GET", "/v1/campaigns/c-1", None, {"X-Connection": "acme-nexa"}),
]
IN_PROCESS_ONLY: list[Step] = [(ACME_KEY, "GET", "/v1/campaigns/c-crash", None, {})]


def auth_variants(key: str, n: int) -> dict[str, str]:
    """Alternate the two ways a key is presented."""
    return {"Authorization": f"Bearer {key}"} if n % 2 == 0 else {"X-API-Key": key}


def leaks_in(text: str) -> list[str]:
    return [secret for secret in [*GATEWAY_KEYS, *CREDENTIALS] if secret in text]


def response_text(response: httpx.Response) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
    return f"{response.status_code}\n{headers}\n\n{response.content.decode('utf-8', 'replace')}"


def logged_text(records: list[logging.LogRecord], caplog_text: str) -> str:
    """Everything the captured records would put in a log: as captured, and as the gateway formats them."""
    formats = [AccessFormatter(json_lines=True), AccessFormatter(json_lines=False)]
    lines = [caplog_text]
    for record in records:
        lines.append(record.getMessage())
        lines.append(record.exc_text or "")
        lines.append(repr(getattr(record, "fields", None)))
        lines.extend(formatter.format(record) for formatter in formats)
    return "\n".join(lines)


def access_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if fields is not None else orjson.loads(record.getMessage())


async def test_a_full_request_mix_leaks_no_key_and_no_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CGW_TEST_ACME_VENDOR_KEY", ACME_SECRET)
    monkeypatch.setenv("CGW_TEST_GLOBEX_VENDOR_KEY", GLOBEX_SECRET)
    path = mix_config(tmp_path / "config.yaml", ("${CGW_TEST_ACME_VENDOR_KEY}", "${CGW_TEST_GLOBEX_VENDOR_KEY}"))
    assert not leaks_in(path.read_text()), "the config holds only references and hashes"
    vendors = {"acme.test": EchoVendor(ACME_SECRET), "globex.test": EchoVendor(GLOBEX_SECRET)}
    caplog.set_level(logging.DEBUG)
    redact.install([caplog.handler])
    try:
        responses: list[httpx.Response] = []
        async with (
            gateway(path, vendors) as app,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
        ):
            for n, (key, method, url, body, headers) in enumerate(MIX + IN_PROCESS_ONLY):
                sent = {**auth_variants(key, n), **headers, "X-Request-ID": f"mix-{n}"}
                responses.append(await http.request(method, url, json=body, headers=sent))
            # a valid key in malformed headers: refused, and not echoed either
            for n, headers in enumerate(
                [{"Authorization": f"Basic {ACME_KEY}"}, {"Authorization": f"Bearer {ACME_KEY} trailing"}]
            ):
                responses.append(await http.get("/v1/campaigns/c-1", headers=headers))
                assert responses[-1].status_code == 401, n
        records = list(caplog.records)
        captured = caplog.text
    finally:
        caplog.handler.removeFilter(redact.redactor)

    # the mix did what it says: the credential reached the vendor, every kind of answer came back
    statuses = [r.status_code for r in responses]
    assert {200, 201, 400, 401, 403, 422, 429, 500, 502} <= set(statuses), statuses
    assert {r.headers["Authorization"] for r in vendors["acme.test"].sent} == {f"Bearer {ACME_SECRET}"}
    assert {r.headers["Authorization"] for r in vendors["globex.test"].sent} == {f"Bearer {GLOBEX_SECRET}"}
    assert any(MASK in r.text for r in responses), "the vendor's echoes should have come back redacted"
    denied = responses[MIX.index((ACME_KEY, "GET", "/v1/campaigns/c-denied", None, {}))]
    assert denied.json()["error"]["message"] == f"generic: invalid key {MASK}"

    for n, response in enumerate(responses):
        assert not leaks_in(response_text(response)), (n, response_text(response))

    # the crash was logged, with its exception, and redacted
    crashes = [r for r in records if r.name == "gateway" and r.levelno >= logging.ERROR]
    assert crashes, captured
    assert all(MASK in (r.exc_text or "") for r in crashes), [r.exc_text for r in crashes]
    # one audit line per request, naming tenant and key label, never the key
    access = [access_fields(r) for r in records if r.name == "gateway.access"]
    assert len(access) == len(responses)
    assert {(a["tenant"], a["key"]) for a in access if a["tenant"]} >= {
        ("acme", "acme-main"),
        ("acme", "acme-read"),
        ("acme", "acme-limited"),
        ("globex", "globex-main"),
    }
    assert not leaks_in(logged_text(records, captured)), leaks_in(logged_text(records, captured))


@pytest.mark.parametrize(
    ("credential", "escaped"),
    [
        ("sk_live/ESCAPED+secret=9f8e7d", "sk_live\\/ESCAPED+secret=9f8e7d"),  # PHP json_encode: "\/"
        ("sk_live_A&B_secret_9f8e7d6c", "sk_live_A\\u0026B_secret_9f8e7d6c"),  # Go encoding/json: "\u0026"
    ],
    ids=["slash-escaped", "unicode-escaped"],
)
@pytest.mark.parametrize("where", ["error message", "success body"])
async def test_a_credential_echoed_json_escaped_is_redacted_too(
    tmp_path: Path, credential: str, escaped: str, where: str
) -> None:
    """The same string in other JSON spelling: once decoded, it is the credential, and must not pass."""
    assert json.loads(f'"{escaped}"') == credential

    def answer(request: SentRequest) -> Answer:
        if where == "error message":
            raw = '{"error": {"message": "invalid key ESCAPED"}}'.replace("ESCAPED", escaped)
            return 401, {"content-type": "application/json"}, raw.encode()
        raw = '{"id": "c-1", "name": "Echo of ESCAPED", "status": "active", "note": "key ESCAPED"}'
        raw = raw.replace("ESCAPED", escaped)
        return 200, {"content-type": "application/json"}, raw.encode()

    vendor = FakeVendor(answer)
    path = write_tenants(
        tmp_path / "config.yaml",
        [tenant_entry("acme", [key_entry("acme-main", ACME_KEY)], [generic_connection("n", "v.test", credential)])],
    )
    async with (
        gateway(path, {"v.test": vendor}) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"X-API-Key": ACME_KEY}
        ) as http,
    ):
        plain = await http.get("/v1/campaigns/c-1")
        with_vendor_data = await http.get("/v1/campaigns/c-1?include=vendor_data")
    assert vendor.sent[0].headers["Authorization"] == f"Bearer {credential}"
    for response in (plain, with_vendor_data):
        assert response.status_code == (401 if where == "error message" else 200), response.text
        assert credential not in response.text, response.text
        assert escaped not in response.text, response.text
        assert credential not in json.dumps(response.json()), response.text


async def test_a_vendors_retry_after_header_cannot_carry_the_credential_through(tmp_path: Path) -> None:
    """Retry-After is the one vendor header passed on (on a 429): only a delay may pass, never the echo."""
    vendor = FakeVendor(
        lambda _r: json_answer(429, {"error": {"message": "slow down"}}, {"retry-after": f"30; key={ACME_SECRET}"})
    )
    path = write_tenants(
        tmp_path / "config.yaml",
        [tenant_entry("acme", [key_entry("acme-main", ACME_KEY)], [generic_connection("n", "v.test", ACME_SECRET)])],
    )
    async with (
        gateway(path, {"v.test": vendor}) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"X-API-Key": ACME_KEY}
        ) as http,
    ):
        throttled = await http.get("/v1/campaigns/c-1")
    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["error"]["code"] == "rate_limited"
    assert not leaks_in(response_text(throttled)), dict(throttled.headers)


# --- a real `gateway serve` ------------------------------------------------------------------------


class EchoHandler(BaseHTTPRequestHandler):
    """The echoing vendor on a real socket; the server's ``seen`` keeps each Authorization header."""

    server: EchoServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = f"http://{self.headers.get('Host')}{self.path}"
        request = SentRequest(self.command, url, {k: v for k, v in self.headers.items()}, body)
        self.server.seen.append(request.headers.get("Authorization", ""))
        try:
            status, headers, payload = echoing_answer(self.server.credential, request)
        except RuntimeError:
            self.close_connection = True  # the crash case: hang up without an answer
            return
        data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        self.send_response(status)
        headers = {"content-type": "application/json", **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, credential: str) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.credential = credential
        self.seen: list[str] = []


@contextmanager
def echo_vendor(credential: str) -> Iterator[EchoServer]:
    server = EchoServer(credential)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def real_connection(name: str, port: int, reference: str) -> dict[str, Any]:
    return {
        "name": name,
        "vendor": "generic",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "credentials": {"api_key": reference},
        "timeouts": {"connect": 2, "read": 5},
        **NO_RETRIES,
    }


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_real_gateway_serve_logs_neither_keys_nor_the_env_credential(tmp_path: Path, log_format: str) -> None:
    with echo_vendor(ACME_SECRET) as acme_vendor, echo_vendor(GLOBEX_SECRET) as globex_vendor:
        path = mix_config(tmp_path / "config.yaml", ("${CGW_E2E_ACME_KEY}", "${CGW_E2E_GLOBEX_KEY}"))
        document = yaml.safe_load(path.read_text())
        document["tenants"][0]["connections"] = [
            real_connection("acme-nexa", acme_vendor.server_address[1], "${CGW_E2E_ACME_KEY}")
        ]
        document["tenants"][1]["connections"] = [
            real_connection("globex-nexa", globex_vendor.server_address[1], "${CGW_E2E_GLOBEX_KEY}")
        ]
        document["logging"] = {"level": "debug", "format": log_format}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        assert not leaks_in(path.read_text())
        env = {"CGW_E2E_ACME_KEY": ACME_SECRET, "CGW_E2E_GLOBEX_KEY": GLOBEX_SECRET}

        responses: list[httpx.Response] = []
        with serve(tmp_path, path, workers=2, env=env) as served:
            with httpx.Client(base_url=served.base_url, timeout=15) as http:
                for n, (key, method, url, body, headers) in enumerate(MIX):
                    sent = {**auth_variants(key, n), **headers, "X-Request-ID": f"e2e-{n}"}
                    responses.append(http.request(method, url, json=body, headers=sent))
                crash = http.get("/v1/campaigns/c-crash", headers={"X-API-Key": ACME_KEY})
                responses.append(crash)
            # reloads log too: an edit, then a broken edit
            path.write_text(path.read_text() + "\n# edited\n")
            wait_for(lambda: served.stderr().count("config reloaded") >= 2, served.stderr)
            path.write_text(path.read_text().replace("${CGW_E2E_ACME_KEY}", "${CGW_E2E_NOT_SET}"))
            wait_for(lambda: served.stderr().count("reload refused") >= 2, served.stderr)
        stderr, stdout = served.stderr(), served.stdout()

    assert crash.status_code == 503, crash.text  # the vendor hung up
    assert set(acme_vendor.seen) == {f"Bearer {ACME_SECRET}"}, "the credential from the environment was used"
    assert set(globex_vendor.seen) == {f"Bearer {GLOBEX_SECRET}"}
    assert any(MASK in r.text for r in responses)
    for n, response in enumerate(responses):
        assert not leaks_in(response_text(response)), (n, response_text(response))
    # the log is not empty: one access line per request, with tenant and key label
    for label in ("acme-main", "acme-read", "acme-limited", "globex-main"):
        assert label in stderr, stderr
    for n in range(len(MIX)):
        assert f"e2e-{n}" in stderr, (n, stderr)
    assert not leaks_in(stderr), leaks_in(stderr)
    assert not leaks_in(stdout), leaks_in(stdout)


def wait_for(condition: Callable[[], bool], describe: Callable[[], str], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, describe()
        time.sleep(0.05)


def test_the_redactor_masks_credentials_in_messages_arguments_and_exceptions(tmp_path: Path) -> None:
    """The filter itself, as `gateway serve` installs it: message, %-arguments and traceback."""
    shorter = ACME_SECRET[:12]  # a credential that is a prefix of another
    path = write_tenants(
        tmp_path / "config.yaml",
        [
            tenant_entry(
                "acme",
                [key_entry("acme-main", ACME_KEY)],
                [generic_connection("a", "a.test", shorter), generic_connection("b", "b.test", ACME_SECRET)],
            )
        ],
    )
    config, problems = load_config(path)
    assert config is not None, problems
    filter_ = redact.SecretFilter()
    filter_.update(config)
    try:
        raise ValueError(f"boom {ACME_SECRET}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "", 0, "sent %s and %s", (ACME_SECRET, shorter), sys.exc_info())
    assert filter_.filter(record)
    assert record.getMessage() == f"sent {MASK} and {MASK}"
    assert record.exc_text and ACME_SECRET not in record.exc_text and MASK in record.exc_text
    # the longer secret is masked whole, not left with a tail of it
    assert not re.search(re.escape(ACME_SECRET[12:]), record.exc_text)
