"""`gateway translate`: what a canonical request becomes at a vendor, and what a vendor answer becomes.

Nothing is sent. Credentials are masked in the printed headers and URL. The tool for writing and
debugging a vendor map. Where a map looks a value up in a vendor table (its phone numbers), the
table is not fetched: the output shows ``<phone_numbers: +14155550100>`` for the value the vendor
would get, and lists under ``lookups`` the requests that would fetch the tables.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import Config, Connection
from gateway.engine import Call, Handling, finish, prepare, translate_answer, units, vendor_request
from gateway.inbound import BODY_MODELS, validate_body
from gateway.mapping import CompiledOperation, Page, UpstreamRequest, lookups
from gateway.mapping.request import encode_segment
from gateway.redact import MASK
from gateway.upstream import Upstream

CREATED_ID = "{id}"


class NoTransport:
    """Stands where the network would: translate never sends."""

    async def send(self, *_args: Any) -> Any:
        raise RuntimeError("translate does not send requests")

    async def close(self) -> None:
        return None


def find_connection(config: Config, name: str, tenant: str | None) -> Connection:
    found = [
        connection
        for tenant_id, t in config.tenants.items()
        if tenant is None or tenant_id == tenant
        for connection in t.connections.values()
        if connection.name == name
    ]
    if not found:
        raise LookupError(f"no connection named {name!r}" + (f" in tenant {tenant!r}" if tenant else ""))
    if len(found) > 1:
        raise LookupError(f"several tenants have a connection named {name!r}: name one with --tenant")
    return found[0]


def canonical_call(operation: str, body: bytes | None, campaign_id: str | None, handling: Handling = "strict") -> Call:
    call = Call(operation, id=campaign_id, include_vendor_data=True, handling=handling)
    if body is not None and operation in BODY_MODELS:
        call.body = validate_body(operation, body)
    return call


def vendor_side(connection: Connection, call: Call) -> dict[str, Any]:
    """The upstream requests, as they would leave the gateway (credentials masked), steps included."""
    operation, context = prepare(connection, call)
    upstream = Upstream(connection, NoTransport())
    output: dict[str, Any] = {"operation": call.operation, "vendor": connection.vendor}
    if operation.lookups:
        output["lookups"] = [_lookup_request(name, upstream) for name in operation.lookups]
    output["requests"] = _requests(operation, context, upstream)
    if call.dropped:
        output["dropped"] = call.dropped
    steps = []
    for step in operation.steps:
        body = step.body(call.body or {})
        if body is not None:
            step_operation, step_context = prepare(connection, Call(step.operation, body=body))
            step_context["id"] = CREATED_ID  # not known until the vendor answers the first request
            steps.append({"operation": step.operation, "requests": _requests(step_operation, step_context, upstream)})
    if steps:
        output["steps"] = steps
    return output


def _requests(operation: CompiledOperation, context: dict[str, Any], upstream: Upstream) -> list[dict[str, Any]]:
    vendor = upstream.connection.vendor
    with lookups.using(lookups.Placeholders()):
        return [_printed(vendor_request(operation, each, vendor), upstream) for _, each in units(operation, context)]


def _lookup_request(name: str, upstream: Upstream) -> dict[str, Any]:
    request = upstream.connection.map.lookups[name].build_request({"params": upstream.connection.params})
    return {"name": name, **_printed(request, upstream)}


def _printed(request: UpstreamRequest, upstream: Upstream) -> dict[str, Any]:
    """A request as it would leave the gateway, credentials masked."""
    connection = upstream.connection
    url, headers, body = upstream.wire(request)
    return {
        "method": request.method,
        "url": _mask(url, connection).replace(encode_segment(CREATED_ID), CREATED_ID),
        "headers": {name: _mask(value, connection) for name, value in headers.items()},
        "body": _body(body, headers),
    }


def canonical_side(connection: Connection, call: Call, vendor_answer: Any) -> Any:
    """The canonical answer a vendor's answer (already decoded JSON) would become."""
    operation, context = prepare(connection, call)
    with lookups.using(lookups.Placeholders()):
        result = translate_answer(operation, vendor_answer, context, True, connection.vendor, 200)
    answer = finish(connection, operation.kind, result, call, filtered_upstream=True)
    return {"data": answer.items, "next_cursor": answer.next_cursor} if isinstance(answer, Page) else answer


def _mask(text: str, connection: Connection) -> str:
    for secret in connection.secrets:
        text = text.replace(secret, MASK)
    return text


def _body(body: bytes | None, headers: dict[str, str]) -> Any:
    if body is None:
        return None
    if headers.get("content-type") == "application/json":
        return orjson.loads(body)
    return body.decode("utf-8", "replace")
