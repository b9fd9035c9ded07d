"""Gateway API keys: made with 256 bits of randomness, stored and looked up only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from gateway.config import Config, KeySpec, Tenant
from gateway.errors import Forbidden, Unauthorized

KEY_PREFIX = "cgw_"


def new_key() -> str:
    """A fresh key: a recognisable prefix and 32 random bytes (256 bits), URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def authenticate(config: Config, presented: str | None, now: datetime | None = None) -> tuple[Tenant, KeySpec]:
    """The tenant and key entry for ``presented``; unknown, expired and disabled keys look alike.

    The lookup is by hash, so no comparison ever runs over the secret itself.
    """
    found = config.keys.get(key_hash(presented)) if presented else None
    if found is None:
        raise Unauthorized("missing or invalid API key")
    _tenant, key = found
    if key.disabled or expired(key, now or datetime.now(UTC)):
        raise Unauthorized("missing or invalid API key")
    return found


def expired(key: KeySpec, now: datetime) -> bool:
    return key.expires_at is not None and key.expires_at <= now


def require_scope(key: KeySpec, scope: str) -> None:
    if scope not in key.scopes:
        raise Forbidden(f"this key lacks the scope {scope}")
