"""What the app holds for events: the outbox, the delivery loop, hook tokens, and the create/read hooks.

A hook token is derived, not stored per connection: ``hk_`` + 192 bits of HMAC-SHA256 over the
tenant and connection names, keyed with a random key made once in the outbox. So every process
and instance sharing the outbox knows every token without a lookup, a token never changes across
restarts (vendors keep the URL they were given), and no token can be guessed from the names.

On a connection with ``events: true``, a create's ``webhook_url`` is the client's destination:
it is kept (per campaign) in the outbox, and the vendor gets the gateway's own ``hook_url``
instead (the map's request reads it). Campaigns read through the gateway show the client's
destination again as their ``webhook_url``, never the hook URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import Config, Connection, Tenant
from gateway.engine import Call, run
from gateway.errors import PartialFailure
from gateway.events.delivery import Deliverer
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import Outbox
from gateway.events.redis_outbox import RedisOutbox
from gateway.events.settings import PUBLIC_URL_ENV
from gateway.events.sqlite_outbox import SqliteOutbox
from gateway.events.verify import Check, bind
from gateway.mapping import Page
from gateway.metrics import Metrics
from gateway.routing import HOOKS_PATH
from gateway.upstream import Upstream


def open_outbox(config: Config) -> Outbox:
    """Redis when the cache is Redis (shared by every instance on it), else the SQLite file."""
    if config.cache.backend.startswith(("redis://", "rediss://")):
        return RedisOutbox(config.cache.backend, config.events.retention_days * 86400)
    return SqliteOutbox((config.path.parent / Path(config.events.store)).resolve())


class Events:
    def __init__(self, config: Callable[[], Config], metrics: Metrics) -> None:
        self._config = config
        self.outbox = open_outbox(config())
        self.metrics = EventMetrics(metrics)
        self.deliverer = Deliverer(self.outbox, config, self.metrics)
        self._key: bytes | None = None
        self._starting: asyncio.Lock | None = None
        self._owners: tuple[Config | None, dict[str, tuple[Tenant, Connection]]] = (None, {})
        self._checks: dict[int, tuple[Check, ...]] = {}

    async def start(self) -> None:
        """Read (or make) the hook key and start delivering; idempotent, so any first use may call it."""
        if self._key is not None:
            return
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._key is None:
                key = await self.outbox.hook_key()
                self.deliverer.start()
                self._key = key

    def wanted(self) -> bool:
        """Whether the config has a connection with events (then start at once: pending deliveries resume)."""
        return any(c.events for t in self._config().tenants.values() for c in t.connections.values())

    async def close(self) -> None:
        await self.deliverer.close()
        await self.outbox.close()

    def token(self, tenant: Tenant, connection: Connection) -> str:
        assert self._key is not None, "start() first"
        mac = hmac.new(self._key, f"{tenant.id}\x1f{connection.name}".encode(), hashlib.sha256).digest()
        return "hk_" + base64.urlsafe_b64encode(mac[:24]).decode()

    def hook_url(self, tenant: Tenant, connection: Connection) -> str | None:
        """``public_url`` + /v1/hooks/TOKEN; a sandbox's default base is the address `gateway serve` listens on."""
        base = self._config().public_url or (os.environ.get(PUBLIC_URL_ENV) if connection.sandbox else None)
        return None if base is None else base.rstrip("/") + HOOKS_PATH + self.token(tenant, connection)

    def owner(self, token: str) -> tuple[Tenant, Connection] | None:
        """The tenant and connection a hook token was made for, in the running config."""
        config = self._config()
        if self._owners[0] is not config:
            found = {
                self.token(t, c): (t, c) for t in config.tenants.values() for c in t.connections.values() if c.events
            }
            self._owners, self._checks = (config, found), {}
        return self._owners[1].get(token)

    def checks(self, connection: Connection) -> tuple[Check, ...]:
        """The connection's bound checks; kept per connection object, forgotten with the token map (``owner``)."""
        bound = self._checks.get(id(connection))
        if bound is None:
            events = connection.map.events
            bound = self._checks[id(connection)] = bind(events, connection.hook_credentials) if events else ()
        return bound

    async def destination(self, tenant: Tenant, connection: Connection, campaign_id: str | None) -> str | None:
        """Where a campaign's events go: its create's webhook_url, else the tenant's webhooks.url."""
        found = await self.outbox.destinations(tenant.id, connection.name, [campaign_id]) if campaign_id else {}
        default = tenant.webhooks.url if tenant.webhooks is not None else None
        return found.get(campaign_id or "", default)

    async def run(self, tenant: Tenant, connection: Connection, upstream: Upstream, call: Call) -> Any:
        """The operation, with the hook URL given to the vendor and the client's destination shown back."""
        if not connection.events:
            return await run(connection, upstream, call)
        await self.start()
        hook_url = self.hook_url(tenant, connection)
        destination = None
        if call.operation == "create" and call.body is not None:
            destination = call.body.pop("webhook_url", None)
            call.hook_url = hook_url
        try:
            result = await run(connection, upstream, call)
        except PartialFailure as failure:  # the campaign exists: its events must find their way all the same
            created = failure.progress.result if failure.progress is not None else None
            if destination is not None and created is not None:
                await self.outbox.remember(tenant.id, connection.name, str(created["id"]), destination)
            raise
        if destination is not None and call.operation == "create":
            await self.outbox.remember(tenant.id, connection.name, str(result["id"]), destination)
        campaigns = result.items if isinstance(result, Page) else [result] if isinstance(result, dict) else []
        shown = [c for c in campaigns if "webhook_url" in c and c["webhook_url"] in (None, hook_url)]
        if shown:
            urls = await self.outbox.destinations(tenant.id, connection.name, [str(c["id"]) for c in shown])
            for campaign in shown:
                campaign["webhook_url"] = urls.get(str(campaign["id"]))
        return result

    async def hook_urls(self, tenant: Tenant) -> dict[str, str | None]:
        """Each events connection's hook URL, for GET /v1/connections (vendors whose webhook is set by hand)."""
        return {c.name: await self.connection_hook_url(tenant, c) for c in tenant.connections.values() if c.events}

    async def connection_hook_url(self, tenant: Tenant, connection: Connection) -> str | None:
        """The hook URL of a connection with events (else None): what is set by hand where the vendor's
        webhook belongs to the whole account, and what a sandbox of such a vendor is told instead."""
        if not connection.events:
            return None
        await self.start()
        return self.hook_url(tenant, connection)
