"""Simulated vendors as the gateway runs them: one app per map's ``sandbox:``, one account per connection.

``sandbox_app`` builds the simulated vendor a map names (``sandbox: module:factory``) behind the
FaultInjector. ``SandboxHub`` holds every account of one gateway in a single ASGI app: each request
names its account in the ``x-gateway-sandbox`` header (``<tenant>/<connection>/<module:factory>``);
an account is made on first use and kept as long as the hub lives, config reloads included.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.responses import JSONResponse

from sandboxes._common import FaultInjector

ACCOUNT_HEADER = "x-gateway-sandbox"
# The connection's hook URL, on its sandbox endpoints: where a vendor whose webhook is the account's posts
HOOK_HEADER = "x-gateway-hook-url"


def sandbox_app(reference: str) -> FaultInjector:
    """The simulated vendor named by a map's ``sandbox: module:factory``, with fault injection."""
    module_name, _, factory = reference.partition(":")
    return FaultInjector(getattr(importlib.import_module(module_name), factory)())


def account_name(tenant_id: str, connection_name: str, reference: str) -> str:
    """The account a connection's requests name: tenant and connection names cannot hold ``/``."""
    return f"{tenant_id}/{connection_name}/{reference}"


class SandboxHub:
    """Every sandbox account of one gateway; requests reach theirs by the ``x-gateway-sandbox`` header."""

    def __init__(self) -> None:
        self.accounts: dict[str, FaultInjector] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = next((v.decode("latin-1") for k, v in scope["headers"] if k == ACCOUNT_HEADER.encode()), None)
        if name is None:
            await JSONResponse({"error": f"no {ACCOUNT_HEADER} header"}, 400)(scope, receive, send)
            return
        app = self.accounts.get(name)
        if app is None:
            app = self.accounts[name] = sandbox_app(name.rpartition("/")[2])
        await app(scope, receive, send)
