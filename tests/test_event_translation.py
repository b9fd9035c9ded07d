"""Vendor webhook payloads read into canonical events (golden files), the checks a map can ask of a
callback, the Standard Webhooks signature, and `check` on the new map section and config keys.

Golden files: tests/golden/<vendor>/events/*.json, each a vendor payload (the docs' own examples
where the docs have them) and the event expected, written by hand from the map and the docs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.events import signing
from gateway.events.models import EventData
from gateway.events.verify import bind
from gateway.mapping import load_map
from gateway.mapping.event_spec import EventsSpec
from gateway.mapping.events import compile_events
from gateway.mapping.expressions import Scope
from gateway.mapping.transforms import Enum
from tests.conftest import DEMO_WEBHOOK_SECRET as SECRET
from tests.conftest import MAPPINGS, ROOT
from tests.test_golden import GOLDEN, assert_same, case_id

EVENT_CASES = sorted(GOLDEN.glob("*/events/*.json"))


@pytest.mark.parametrize("path", EVENT_CASES, ids=case_id)
def test_a_vendor_payload_becomes_the_expected_event(path: Path) -> None:
    case = json.loads(path.read_text())
    vendor_map, problems = load_map(MAPPINGS / f"{path.parent.parent.name}.yaml")
    assert vendor_map is not None and vendor_map.events is not None, problems
    found = vendor_map.events.translate(case["vendor_payload"])
    if case["event"] is None:
        assert found is None
        return
    assert found is not None
    assert_same(found.__dict__, case["event"], case_id(path))
    EventData.model_validate(found.data)


def test_every_vendor_with_events_has_golden_cases_of_both_outcomes() -> None:
    kinds: dict[str, set[str]] = {}
    for path in EVENT_CASES:
        event = json.loads(path.read_text())["event"]
        kinds.setdefault(path.parent.parent.name, set()).add(event["type"] if event else "ignored")
    maps = {path.stem: load_map(path)[0] for path in MAPPINGS.glob("*.yaml")}
    with_events = {name for name, vendor_map in maps.items() if vendor_map is not None and vendor_map.events}
    assert with_events == {"hamsa", "sarvam", "vapi", "elevenlabs", "bland", "exotel"}
    assert {vendor for vendor, found in kinds.items() if {"call.completed", "call.failed"} <= found} == with_events


def test_the_signature_is_the_standard_webhooks_test_vector() -> None:
    """The vector the Standard Webhooks libraries test against: any of them verifies our deliveries."""
    key = signing.secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    headers = {"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "Webhook-Timestamp": "1614265330"}
    headers["Webhook-Signature"] = f"v1,bm90IGl0 {expected}"  # a second (rotated) signature is accepted too
    assert signing.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body, 1614265330 + 299)
    assert not signing.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body, 1614265330 + 301)
    assert not signing.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body + b" ", 1614265330)


def _checks(spec: dict[str, Any], credentials: dict[str, str]) -> Any:
    problems: list[Any] = []
    events = compile_events(
        EventsSpec.model_validate({"verify": [spec], "payloads": [{"type": "t"}]}), Scope({}, False), problems
    )
    assert not problems
    return bind(events, credentials)


def test_a_signature_in_one_header_with_its_timestamp_is_checked_as_the_map_says() -> None:
    """The form ElevenLabs documents (t=<unix>,v0=<hex of HMAC over "t.body">), written as a map check."""
    spec = {"hmac": {"header": "ElevenLabs-Signature", "secret": "{credentials.webhook_secret}",
                     "signed": "{timestamp}.{body}", "pattern": "t=(?P<timestamp>\\d+),v0=(?P<signature>[0-9a-f]+)",
                     "tolerance_seconds": 1800}}  # fmt: skip
    [check] = _checks(spec, {"webhook_secret": "s3cret-s3cret"})
    body, now = b'{"type": "post_call_transcription"}', time.time()
    digest = hmac.new(b"s3cret-s3cret", f"{int(now)}.".encode() + body, hashlib.sha256).hexdigest()
    good = {b"elevenlabs-signature": f"t={int(now)},v0={digest}".encode()}
    assert check(good, body, now) is None
    assert "does not match" in check(good, body + b"x", now)
    assert "from now" in check(good, body, now + 1801)
    assert "form" in check({b"elevenlabs-signature": b"v0=abc"}, body, now)


def test_an_optional_check_without_its_credential_is_left_out_and_a_header_check_compares_whole() -> None:
    spec = {"optional": True, "header": {"header": "Authorization", "value": "Bearer {credentials.webhook_token}"}}
    assert _checks(spec, {}) == ()
    [check] = _checks(spec, {"webhook_token": "tok-123456"})
    assert check({b"authorization": b"Bearer tok-123456"}, b"{}", 0) is None
    assert check({b"authorization": b"Bearer tok-1234567"}, b"{}", 0) is not None
    assert "tok-123456" not in (check({}, b"{}", 0) or "")


def _reader(formats: list[str]) -> Any:
    problems: list[Any] = []
    spec = EventsSpec.model_validate({"formats": formats, "payloads": [{"type": "t"}]})
    events = compile_events(spec, Scope({}, False), problems)
    assert not problems
    return events


FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


def test_a_callback_body_is_read_in_the_format_its_map_declares() -> None:
    form, json_body = b"call_sid=c1&status=no-answer&call_sids=a&call_sids=b&empty=", b'{"call_sid": "c1"}'
    fields = {"call_sid": "c1", "status": "no-answer", "call_sids": ["a", "b"], "empty": ""}
    json_only, both, form_only = _reader(["json"]), _reader(["json", "form"]), _reader(["form"])
    assert json_only.payload(json_body, FORM_TYPE) == {"call_sid": "c1"}  # the default: JSON, whatever it says
    assert json_only.payload(form, FORM_TYPE) is None
    assert json_only.payload(b"[1]", "application/json") is None  # an object, not any JSON
    assert both.payload(form, FORM_TYPE) == fields and both.payload(json_body, "application/json") == {"call_sid": "c1"}
    assert both.payload(form, "application/json") is None
    assert form_only.payload(form, "text/plain") == fields
    assert form_only.payload(b"status=\xff", FORM_TYPE) is None  # not UTF-8 text
    assert both.expected() == "a JSON object or form fields (application/x-www-form-urlencoded)"


BROKEN_EVENTS = """
events:
  verify:
    - hmac: {header: X-Sig, secret: "{params.org_id}", signed: "{timestamp}.{body}"}  # <- credentials only; timestamp
    - hmac: {header: X-Sig, secret: "{credentials.s}", pattern: "(unclosed"}  # <- pattern
  payloads:
    - when: {a: {b: 1}}  # <- when
      type: status
      data:
        outcom: status  # <- outcom
        recipient.phone: to  # <- recipient.phone
"""


def marked(text: str) -> dict[str, int]:
    """Line numbers of the ``# <- NAME`` marks in ``text``."""
    return {line.split("# <- ")[1]: n for n, line in enumerate(text.splitlines(), 1) if "# <- " in line}


def test_check_names_each_problem_of_an_events_section_at_its_line(tmp_path: Path) -> None:
    head = (MAPPINGS / "sarvam.yaml").read_text().split("\nevents:\n")[0]
    text = head + "\n" + BROKEN_EVENTS
    (tmp_path / "sarvam.yaml").write_text(text)
    vendor_map, problems = load_map(tmp_path / "sarvam.yaml")
    assert vendor_map is None
    found = {(p.line, p.message) for p in problems}
    lines = marked(text)
    assert found == {
        (lines["credentials only; timestamp"], "{params.org_id}: a check reads connection credentials only"),
        (
            lines["credentials only; timestamp"],
            "{timestamp} is signed: give timestamp_header or a pattern group timestamp",
        ),
        (lines["pattern"], "pattern is not a regular expression: missing ), unterminated subpattern at position 0"),
        (lines["when"], "when: compare with a value or a list of values, not {'b': 1}"),
        (lines["outcom"], "'outcom' is not a canonical field of EventData; did you mean 'outcome'?"),
        (
            lines["recipient.phone"],
            "'recipient.phone' is not a canonical field of EventData; did you mean 'recipient.name'?",
        ),
    }, problems


def test_check_names_a_callback_format_it_does_not_know_at_its_line(tmp_path: Path) -> None:
    text = (MAPPINGS / "sarvam.yaml").read_text().replace("\nevents:\n", "\nevents:\n  formats: [json, xml]\n")
    (tmp_path / "sarvam.yaml").write_text(text)
    vendor_map, problems = load_map(tmp_path / "sarvam.yaml")
    [line] = [n for n, text_line in enumerate(text.splitlines(), 1) if "formats:" in text_line]
    assert vendor_map is None
    assert [(p.line, p.message) for p in problems] == [(line, "events.formats.1: Input should be 'json' or 'form'")]


CONFIG = """
mappings_dir: {mappings}
{top}
tenants:
  - id: t1
{tenant}
    connections:
      - name: c
        credentials: {{api_key: k}}
{connection}
"""
SIGNS = f"    webhooks: {{secret: {SECRET}}}"
HAMSA = "        vendor: hamsa"
HAMSA_SANDBOX = HAMSA + "\n        base_url: sandbox"
EVENTS = "\n        events: true  # <-"
VOISO = "        vendor: voiso\n        params: {cluster_id: x, team: y}"
SARVAM = (
    "        vendor: sarvam\n        base_url: sandbox\n        params: {org_id: o, workspace_id: w, connection_id: c}"
)


@pytest.mark.parametrize(
    ("top", "tenant", "connection", "message"),
    [
        ("", "    webhooks: {secret: whsec_c2hvcnQ=}  # <-", HAMSA_SANDBOX + "\n        events: true",
         "webhooks.secret must be whsec_ followed by the base64 of 24 to 64 random bytes"),
        ("", "    webhooks: {secret: '${NO_SUCH_SECRET}'}  # <-", HAMSA,
         "environment variable NO_SUCH_SECRET is not set"),
        ("", "", HAMSA_SANDBOX + EVENTS, "events need the tenant's webhooks.secret, to sign what is delivered"),
        ("", SIGNS, HAMSA + EVENTS, "events need public_url: the gateway's address as vendors reach it"),
        ("public_url: https://gw.example", SIGNS, VOISO + EVENTS,
         "vendor voiso has no events section in its map (its header says why)"),
        ("public_url: gw.example  # <-", "", HAMSA, "public_url must be an http(s) URL (as vendors reach the gateway)"),
        ("events: {lease_seconds: 5, timeout_seconds: 15}  # <-", "", HAMSA,
         "events: Value error, lease_seconds must be longer than timeout_seconds, or two processes could send one try"),
        ("", SIGNS, SARVAM + "\n        events: true", None),
    ],
)  # fmt: skip
def test_check_names_each_problem_of_the_events_config_keys_at_its_line(
    tmp_path: Path, top: str, tenant: str, connection: str, message: str | None
) -> None:
    text = CONFIG.format(mappings=MAPPINGS, top=top, tenant=tenant, connection=connection)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config, problems = load_config(path, environ={})
    if message is None:  # a sandbox needs no public_url, and Sarvam's signing secret is optional
        assert config is not None and not problems, problems
        return
    assert config is None
    [line] = [n for n, text_line in enumerate(text.splitlines(), 1) if "# <-" in text_line]
    assert [str(p) for p in problems] == [f"{path}:{line}: {message}"]


def test_check_asks_a_connection_with_events_for_the_secret_its_vendor_always_signs_with(tmp_path: Path) -> None:
    """ElevenLabs signs every post-call webhook (Sarvam and Hamsa only may: theirs is optional)."""
    connection = "        vendor: elevenlabs\n        base_url: sandbox\n        events: true"
    text = CONFIG.format(mappings=MAPPINGS, top="", tenant=SIGNS, connection=connection)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config, problems = load_config(path, environ={})
    [line] = [n for n, text_line in enumerate(text.splitlines(), 1) if "credentials:" in text_line]
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:{line}: vendor elevenlabs signs its webhooks: events need credentials.webhook_secret"
    ]


def readme_block(language: str) -> str:
    """The first ``language`` code block of the README's "Verifying a delivery"."""
    section = (ROOT / "README.md").read_text().split("### Verifying a delivery", 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_readmes_python_and_javascript_verifiers_accept_a_delivery_and_refuse_a_forgery(tmp_path: Path) -> None:
    body = b'{"id": "evt_1", "type": "call.completed"}'
    headers = signing.headers(signing.secret_key(SECRET), "evt_1", int(time.time()), body)
    namespace: dict[str, Any] = {}
    exec(readme_block("python"), namespace)  # the README's own code
    assert namespace["verify"](SECRET, headers, body) and not namespace["verify"](SECRET, headers, body + b" ")
    module = tmp_path / "verify.mjs"
    module.write_text(readme_block("js"))
    driver = tmp_path / "run.mjs"
    driver.write_text(
        "import { verify } from './verify.mjs';\n"
        "const [secret, headers, body] = JSON.parse(process.argv[2]);\n"
        "const check = (text) => verify(secret, headers, Buffer.from(text));\n"
        "console.log(JSON.stringify([check(body), check(body + ' ')]));\n"
    )
    run = subprocess.run(
        ["node", str(driver), json.dumps([SECRET, headers, body.decode()])], capture_output=True, text=True, timeout=30
    )
    assert json.loads(run.stdout) == [True, False], run.stderr


def test_a_campaign_status_webhook_reads_into_campaign_status_changed() -> None:
    """No shipped vendor documents one; the language carries it (as a vendor such as Bland's status webhook needs)."""
    statuses = Enum({"completed": "completed", "in_progress": "active"}, {}, None, ignore_case=True)
    spec = {
        "payloads": [
            {"when": "call_id", "type": {"const": "call.completed"}},
            {
                "when": {"status": ["completed", "in_progress", "failed"]},
                "type": {"const": "campaign.status_changed"},
                "key": ["batch_id", "status"],
                "campaign_id": "batch_id",
                "data": {"status": {"from": "status", "pipe": [{"enum": "status"}]}, "vendor_status": "status"},
            },
        ]
    }
    problems: list[Any] = []
    events = compile_events(EventsSpec.model_validate(spec), Scope({"status": statuses}, False), problems)
    assert not problems
    found = events.translate({"batch_id": "b1", "status": "in_progress", "timestamp": "2026-03-29T10:00:00Z"})
    assert found is not None
    assert (found.type, found.campaign_id, found.key) == ("campaign.status_changed", "b1", "b1\x1fin_progress")
    assert (found.data["status"], found.data["vendor_status"]) == ("active", "in_progress")
    assert found.data["vendor_data"] == {"timestamp": "2026-03-29T10:00:00Z"}
    assert events.translate({"batch_id": "b1", "status": "validating"}) is None  # no rule holds: not an event
