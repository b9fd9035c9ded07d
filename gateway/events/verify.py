"""A connection's checks of its vendor's callbacks: its map's ``verify`` section bound to its credentials.

Each check answers None (passed) or what is wrong, in words that quote no secret and no signature.
An optional check whose credentials the connection lacks is left out: that vendor then signs
nothing, and the unguessable hook URL alone authenticates (as its docs allow).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.mapping.event_spec import CheckSpec, HeaderCheckSpec, HmacSpec
from gateway.mapping.events import EventMap
from gateway.mapping.request import PLACEHOLDER, render_template

Headers = Mapping[bytes, bytes]
Check = Callable[[Headers, bytes, float], str | None]


def bind(events: EventMap, credentials: dict[str, str]) -> tuple[Check, ...]:
    """The checks that apply to a connection with these credentials."""
    checks: list[Check] = []
    for spec in events.checks:
        template = spec.hmac.secret if spec.hmac is not None else _header(spec).value
        names = [name.split(".", 1)[1] for name in PLACEHOLDER.findall(template)]
        if any(name not in credentials for name in names):
            continue  # optional (a required one without its credentials is a config problem)
        value = render_template(template, {"credentials": credentials})
        checks.append(_Hmac(spec.hmac, value.encode()) if spec.hmac is not None else _Header(_header(spec), value))
    return tuple(checks)


def _header(spec: CheckSpec) -> HeaderCheckSpec:
    assert spec.header is not None  # a check is hmac or header (validated)
    return spec.header


@dataclass(frozen=True)
class _Header:
    spec: HeaderCheckSpec
    expected: str

    def __call__(self, headers: Headers, _body: bytes, _now: float) -> str | None:
        got = headers.get(self.spec.header.lower().encode(), b"")
        if hmac.compare_digest(got, self.expected.encode()):
            return None
        return f"the {self.spec.header} header is missing or wrong"


class _Hmac:
    def __init__(self, spec: HmacSpec, key: bytes) -> None:
        self.spec = spec
        self.key = key
        self.pattern = re.compile(spec.pattern) if spec.pattern else None
        self.signed = spec.signed.split("{body}")

    def __call__(self, headers: Headers, body: bytes, now: float) -> str | None:
        spec = self.spec
        raw = headers.get(spec.header.lower().encode())
        if raw is None:
            return f"the {spec.header} header is missing"
        given, stamp = raw.decode("latin-1").strip(), None
        if self.pattern is not None:
            match = self.pattern.search(given)
            if match is None:
                return f"the {spec.header} header is not in {spec.header}'s form"
            given, stamp = match["signature"], match.groupdict().get("timestamp")
        if spec.timestamp_header is not None:
            stamp = headers.get(spec.timestamp_header.lower().encode(), b"").decode("latin-1").strip() or None
        if "{timestamp}" in spec.signed:
            late = self._stale(stamp, now)
            if late is not None:
                return late
        signed = body.join(part.replace("{timestamp}", stamp or "").encode() for part in self.signed)
        digest = hmac.new(self.key, signed, getattr(hashlib, spec.algorithm)).digest()
        expected = digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode()
        candidate = given.removeprefix(spec.prefix) if spec.prefix else given
        if spec.encoding == "hex":
            candidate = candidate.lower()
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return None
        return f"the {spec.header} signature does not match the body"

    def _stale(self, stamp: str | None, now: float) -> str | None:
        spec = self.spec
        if stamp is None or not re.fullmatch(r"\d{1,16}(\.\d+)?", stamp):
            return "the signature's timestamp is missing or not a number"
        seconds = float(stamp) / (1000 if spec.timestamp_unit == "milliseconds" else 1)
        if abs(now - seconds) > spec.tolerance_seconds:
            return f"the signature's timestamp is more than {spec.tolerance_seconds:g} s from now (a replay?)"
        return None
