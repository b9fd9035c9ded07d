"""Compiles a map's ``events`` section: vendor payload -> one canonical event, and the checks a callback must pass.

The payload rules reuse the expression language and the map's enums (a vendor's answer direction:
a value the map cannot read becomes null). The checks stay specs here; each connection binds them
to its own credentials (gateway/events/verify.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from gateway.events.models import EVENT_TYPES, EventData
from gateway.mapping.conditions import ConditionError, Predicate, compile_condition
from gateway.mapping.event_spec import CheckSpec, EventsSpec, HmacSpec, PayloadSpec
from gateway.mapping.expressions import Compiled, Scope, compile_expression, compile_fields
from gateway.mapping.request import PLACEHOLDER
from gateway.mapping.response import Shape, shaped_by, target_problems
from gateway.mapping.transforms import Fn, MapError

Loc = tuple[str | int, ...]
KEY_SEPARATOR = "\x1f"
FORM = "application/x-www-form-urlencoded"
FORMAT_WORDS = {"json": "a JSON object", "form": f"form fields ({FORM})"}


@dataclass(frozen=True)
class VendorEvent:
    """One payload read: the canonical type, the campaign, the vendor's key for it, and the event's data."""

    type: str
    campaign_id: str | None
    key: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class _Rule:
    holds: Predicate | None
    type: Fn
    campaign_id: Fn
    key: tuple[Fn, ...]
    data: Shape


@dataclass(frozen=True)
class EventMap:
    """A vendor's events: how a body is encoded, the checks (bound per connection) and the translation of a payload."""

    formats: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    rules: tuple[_Rule, ...]

    def payload(self, raw: bytes, content_type: str) -> dict[str, Any] | None:
        """The object a callback's body holds, in the vendor's format; None when it holds none.

        Form fields when the map says form and the vendor says so (or JSON is not one of its
        formats): each field's text, a list where a name repeats. Otherwise a JSON object.
        """
        said_form = content_type.split(";", 1)[0].strip().lower() == FORM
        if "form" in self.formats and (said_form or "json" not in self.formats):
            return _form(raw)
        try:
            found = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return found if isinstance(found, dict) else None

    def expected(self) -> str:
        """What a callback's body must be, in words."""
        return " or ".join(FORMAT_WORDS[name] for name in self.formats)

    def required_credentials(self) -> set[str]:
        """The connection credentials the checks that are not optional name."""
        return {name for check in self.checks if not check.optional for name in _credentials_of(check)}

    def translate(self, payload: dict[str, Any]) -> VendorEvent | None:
        """The event ``payload`` is, or None when it is none (no rule takes it, or its type reads as null)."""
        for rule in self.rules:
            if rule.holds is not None and not rule.holds(payload):
                continue
            kind = rule.type(payload)
            if kind not in EVENT_TYPES:
                return None
            campaign = rule.campaign_id(payload)
            parts = [part(payload) for part in rule.key]
            key = KEY_SEPARATOR.join(map(str, parts)) if parts and None not in parts else None
            return VendorEvent(kind, None if campaign is None else str(campaign), key, rule.data(payload, True))
        return None


def compile_events(spec: EventsSpec, scope: Scope, problems: list[MapError]) -> EventMap:
    """The compiled section; every problem found is added to ``problems``."""
    for i, check in enumerate(spec.verify):
        problems += _check_problems(check, ("events", "verify", i))
    rules = []
    for i, payload in enumerate(spec.payloads):
        try:
            rules.append(_rule(payload, ("events", "payloads", i), scope, problems))
        except MapError as exc:
            problems.append(exc)
    return EventMap(tuple(dict.fromkeys(spec.formats)), tuple(spec.verify), tuple(rules))


def _rule(spec: PayloadSpec, loc: Loc, scope: Scope, problems: list[MapError]) -> _Rule:
    holds = None
    if spec.when is not None:
        try:
            holds = compile_condition(spec.when).holds
        except ConditionError as exc:  # reported; the rest of the rule is still checked
            problems.append(MapError(f"when: {exc}", (*loc, "when")))
    kind = compile_expression(spec.type, (*loc, "type"), scope)
    campaign = _optional(spec.campaign_id, (*loc, "campaign_id"), scope)
    key = tuple(compile_expression(part, (*loc, "key", i), scope).fn for i, part in enumerate(spec.key))
    fields = compile_fields(spec.data, (*loc, "data"), scope, omit_null=False)
    problems += target_problems(spec.data, EventData, (*loc, "data"))
    # What the event carries at its top level is no vendor_data either.
    carried = Compiled(fn=fields.fn, consumed=[*fields.consumed, *campaign.consumed], reads=fields.reads)
    return _Rule(holds, kind.fn, campaign.fn, key, shaped_by(carried, spec.data, EventData))


def _form(raw: bytes) -> dict[str, Any] | None:
    try:
        fields = parse_qs(raw.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}


def _optional(spec: Any, loc: Loc, scope: Scope) -> Compiled:
    if spec is None:
        return Compiled(fn=lambda _doc: None)
    return compile_expression(spec, loc, scope)


def _check_problems(check: CheckSpec, loc: Loc) -> list[MapError]:
    problems = []
    for text in _templates(check):
        for name in PLACEHOLDER.findall(text):
            if not name.startswith("credentials."):
                problems.append(MapError(f"{{{name}}}: a check reads connection credentials only", loc))
    if check.hmac is not None:
        problems += _hmac_problems(check.hmac, (*loc, "hmac"))
    return problems


def _hmac_problems(spec: HmacSpec, loc: Loc) -> list[MapError]:
    groups: set[str] = set()
    if spec.pattern is not None:
        try:
            groups = set(re.compile(spec.pattern).groupindex)
        except re.error as exc:
            return [MapError(f"pattern is not a regular expression: {exc}", (*loc, "pattern"))]
        if "signature" not in groups:
            return [MapError("pattern needs a group named signature", (*loc, "pattern"))]
    unknown = set(re.findall(r"\{(\w+)\}", spec.signed)) - {"body", "timestamp"}
    if unknown:
        return [MapError(f"signed may hold {{body}} and {{timestamp}} only, not {{{sorted(unknown)[0]}}}", loc)]
    if "{timestamp}" in spec.signed and spec.timestamp_header is None and "timestamp" not in groups:
        return [MapError("{timestamp} is signed: give timestamp_header or a pattern group timestamp", loc)]
    return []


def _templates(check: CheckSpec) -> list[str]:
    if check.hmac is not None:
        return [check.hmac.secret]
    return [check.header.value] if check.header is not None else []


def _credentials_of(check: CheckSpec) -> set[str]:
    return {
        name.split(".", 1)[1]
        for text in _templates(check)
        for name in PLACEHOLDER.findall(text)
        if name.startswith("credentials.")
    }
