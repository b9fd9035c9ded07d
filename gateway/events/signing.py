"""Standard Webhooks signatures: what each delivery carries, and how an endpoint checks it.

``webhook-signature: v1,<base64 of HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">``,
keyed with the bytes of the tenant's ``whsec_`` secret (base64-decoded). ``verify`` is what the
README shows endpoints; the tests check deliveries with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

TOLERANCE_SECONDS = 300  # what the Standard Webhooks reference libraries accept either way


def signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, event_id, timestamp, body),
    }


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (unpadded base64 accepted, as the reference libraries do)."""
    return base64.b64decode(secret.removeprefix("whsec_") + "==")


def verify(secret: str, received: Mapping[str, str], body: bytes, now: float) -> bool:
    """True when one of the ``v1`` signatures is right and the timestamp within the tolerance."""
    found = {name.lower(): value for name, value in received.items()}
    event_id, stamp, signatures = (found.get(f"webhook-{name}") for name in ("id", "timestamp", "signature"))
    if not (event_id and stamp and signatures and stamp.isdigit()) or abs(now - int(stamp)) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret_key(secret), event_id, int(stamp), body).encode()
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in signatures.split(" "))
