"""The gateway as an ASGI app: authenticate, pick the connection, serve from cache or run the operation.

The /v1 hot path reads the raw ASGI scope directly (Starlette's Request conveniences cost more
than a cache hit); the few service endpoints (health, metrics, docs) go through a Starlette router.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, Router

from gateway import cache, capability_table, hits, idempotency, inbound, inspection
from gateway.accesslog import AccessLog
from gateway.asgi import ANSWERS_KEY, Answer, Receive, Scope, Send, respond
from gateway.config import Config, Connection, KeySpec, Tenant
from gateway.docs import render_docs
from gateway.engine import Call, Progress
from gateway.errors import (
    Forbidden,
    GatewayError,
    HeadersTooLarge,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ServerBusy,
    Unauthorized,
    UpstreamTimeout,
)
from gateway.events import api as events_api
from gateway.events.hooks import receive_hook
from gateway.events.service import Events
from gateway.keys import authenticate, require_scope
from gateway.limits import STATE_KEY, ServerLimits
from gateway.mapping import Page
from gateway.openapi import build_openapi
from gateway.ratelimit import Decision, MemoryRateLimiter
from gateway.redact import redactor
from gateway.reload import ConfigWatcher
from gateway.routing import HOOK, logged_path, match
from gateway.routing import Route as ApiRoute
from gateway.runtime import Runtime, TransportFactory, build_runtime, close_runtime, retire
from gateway.sandboxing import SandboxLink
from gateway.telemetry import RequestRecord, Telemetry, current_record

log = logging.getLogger("gateway")

MAX_HEADER_BYTES = 16 * 1024
CLOSE_SECONDS = 10.0  # the most each part of a shutdown may take
STOPPED = "the gateway is shutting down and stopped this request before it finished; it may have taken effect"


class GatewayApp:
    def __init__(
        self,
        config: Config,
        transport_factory: TransportFactory | None = None,
        sandboxes: SandboxLink | None = None,
        access: AccessLog | None = None,
    ) -> None:
        self._make_transport: TransportFactory = transport_factory or (lambda _connection: None)
        self.sandboxes = sandboxes or SandboxLink()
        self.runtime = build_runtime(config, self._make_transport, self.sandboxes)
        self.watcher = ConfigWatcher(config, self.apply_config)
        self.single_flight = cache.SingleFlight()
        self.telemetry = Telemetry(access)
        self._sharing: asyncio.Task[None] | None = None
        self.limits = ServerLimits(config.server, self.telemetry.cut)
        self.events = Events(lambda: self.runtime.config, self.telemetry.metrics)
        redactor.update(config)
        self.openapi = orjson.dumps(build_openapi())
        self.service = Router(
            routes=[
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
                Route("/openapi.json", lambda _r: Response(self.openapi, media_type="application/json")),
                Route("/docs", self._docs),
            ]
        )

    @property
    def config(self) -> Config:
        return self.runtime.config

    def apply_config(self, config: Config) -> None:
        """Swap in a validated config: one assignment, so each request sees the old or the new whole."""
        old = self.runtime
        self.runtime = build_runtime(config, self._make_transport, self.sandboxes, previous=old)
        self.limits.spec = config.server
        redactor.update(config)
        retire(old, self.runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        record = RequestRecord(
            request_id=inbound.request_id(scope), method=scope["method"], path=logged_path(scope["path"])
        )
        current_record.set(record)
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        try:
            _check_head_size(scope["headers"])
            matched = match(scope["method"], raw_path)
            if matched is None:
                await self._service(scope, receive, send, record)
            else:
                record.status = await self._api(scope, receive, send, matched, record)
        except GatewayError as error:
            await _fail(send, record, error)
        except asyncio.CancelledError:
            # Only uvicorn cancels a request's task: it is stopping, and its graceful timeout has run out.
            # The task ends here, answered; re-raised, the cancellation would only be logged as a crash.
            await _fail(send, record, ServerBusy(STOPPED, headers={"Retry-After": "1"}))
        except Exception:
            log.exception("unhandled error in request %s", record.request_id)
            record.status, record.error = 500, "internal_error"
            body = {"error": {"code": "internal_error", "message": "internal error", "request_id": record.request_id}}
            await _reply(send, record, 500, orjson.dumps(body), [])
        finally:
            record.ms = record.elapsed_ms()
            self.telemetry.record(record)

    async def _api(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        matched: tuple[ApiRoute, str | None],
        record: RequestRecord,
    ) -> int:
        route, campaign_id = matched
        runtime = self.runtime
        headers = dict(scope["headers"])
        if route.operation == HOOK:  # a vendor's callback: no key; its token and the vendor's signature decide
            answer = await receive_hook(self.events, campaign_id or "", headers, receive, record)
            await _reply(send, record, 200, answer, [])
            return 200
        tenant, key = _admit(runtime, route, headers, record)
        out: list[tuple[bytes, bytes]] = []
        buckets = runtime.buckets(tenant, key)
        if buckets:
            out += _limited(await runtime.limiter.check(buckets))
        if route.operation == "connections":
            hook_urls = await self.events.hook_urls(tenant)
            await _reply(send, record, 200, orjson.dumps(_connections(tenant, hook_urls)), out)
            return 200
        if route.operation in events_api.OPERATIONS:
            query = inbound.query_pairs(scope)
            status, body = await events_api.answer(self.events, route.operation, tenant, query, campaign_id)
            await _reply(send, record, status, body, out)
            return status
        connection = inbound.pick_connection(tenant, headers.get(b"x-connection"))
        record.connection, record.vendor = connection.name, connection.vendor
        if route.sandbox_path is not None:
            upstream, hook_url = runtime.upstream(tenant, connection), None
            if connection.sandbox:
                hook_url = await self.events.connection_hook_url(tenant, connection)
            async with self.limits.body_reader(receive) as body:
                status, answer = await inspection.forward(upstream, route, scope["method"], headers, body, hook_url)
            await _reply(send, record, status, answer, out)
            return status
        query = inbound.query_pairs(scope)
        call = inbound.parse_call(route.operation, campaign_id, query)
        if route.operation in hits.CACHEABLE:
            return await self._read(runtime, tenant, connection, call, query, headers, send, out, record)
        raw = b""
        if route.has_body:
            async with self.limits.body_reader(receive) as body:
                call.body, raw = await inbound.read_canonical_body(route.operation, headers, body)
        call.handling, asked = inbound.handling(scope["headers"], connection)

        async def perform(resume: bytes | None) -> tuple[int, bytes, idempotency.Headers]:
            if resume is not None:
                call.progress = Progress(**orjson.loads(resume))
            groups = cache.write_groups(tenant.id, connection.fingerprint, campaign_id)
            try:
                result = await self.events.run(tenant, connection, runtime.upstream(tenant, connection), call)
            except GatewayError as error:
                if error.status >= 500:  # a timeout or vendor fault: the write may still have been applied
                    await self._drop(runtime, groups)
                error.headers.update(_handling_headers(call, asked))
                raise
            finally:
                record.dropped = call.dropped or None
            await self._drop(runtime, groups)
            answer_headers = tuple(_handling_headers(call, asked).items())
            if route.operation == "delete":
                return 204, b"", answer_headers
            return (201 if route.operation == "create" else 200), _serialise(result), answer_headers

        idempotency_key = headers.get(b"idempotency-key") if scope["method"] == "POST" else None
        call.idempotency_key = bool(idempotency_key)
        if idempotency_key:
            fingerprint = idempotency.fingerprint(
                connection.fingerprint, route.operation, campaign_id, call.handling, raw
            )
            status, body, answer_headers, replayed = await runtime.idempotency.run(
                tenant.id, idempotency_key.decode("latin-1"), fingerprint, perform
            )
            if replayed:
                out.append((b"idempotent-replayed", b"true"))
        else:
            status, body, answer_headers = await perform(None)
        out += [(name.lower().encode(), value.encode()) for name, value in answer_headers]
        await _reply(send, record, status, body, out)
        return status

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """A GET whose answer is fresh in the in-memory cache, answered without awaiting anything.

        The protocol asks this before it starts an ASGI task, so a hit costs no task and no ASGI
        messages: the body, and the headers after content-type and content-length. None whenever
        the request needs the full path, which then answers it: a miss, ``no-cache``, any error,
        a rate limit that refuses, a Redis backend.
        """
        runtime = self.runtime
        memory, limiter = runtime.cache, runtime.limiter
        if not isinstance(memory, cache.MemoryCache) or not isinstance(limiter, MemoryRateLimiter):
            return None
        started = time.perf_counter()
        try:
            _check_head_size(scope["headers"])
            headers = dict(scope["headers"])
            if _no_cache(headers):
                return None
            plan = hits.plan_for(runtime, scope, headers)
            entry = memory.peek(plan.place.key) if plan is not None and plan.ttl > 0 else None
            if plan is None or entry is None:
                return None
            out = _limited(limiter.check_now(plan.buckets)) if plan.buckets else []
        except GatewayError:
            return None
        # Only now an id: a request the full path answers takes the next one, with no gap.
        record = RequestRecord(request_id=inbound.request_id(scope), method="GET", path=scope["path"], _started=started)
        record.tenant, record.key, record.operation = plan.tenant.id, plan.key.id, plan.route.operation
        record.connection, record.vendor = plan.connection.name, plan.connection.vendor
        record.status, record.cache = 200, "HIT"
        answer_headers = _stamped(record, [*out, *_hit_headers(entry)])
        record.ms = record.elapsed_ms()
        self.telemetry.record(record)
        return entry.body, answer_headers

    async def _drop(self, runtime: Runtime, groups: list[cache.Parts]) -> None:
        """After a write: forget fetches in flight for these groups, and drop what is cached."""
        self.single_flight.forget(groups)
        await runtime.cache.invalidate(groups)

    async def _read(
        self,
        runtime: Runtime,
        tenant: Tenant,
        connection: Connection,
        call: Call,
        query: list[tuple[str, str]],
        headers: dict[bytes, bytes],
        send: Send,
        out: list[tuple[bytes, bytes]],
        record: RequestRecord,
    ) -> int:
        """A cacheable GET: from the cache when fresh, else from the vendor (then stored).

        Concurrent misses for one entry make one upstream call (single flight).
        """
        upstream = runtime.upstream(tenant, connection)
        ttl, place = hits.placement(runtime.config, tenant, connection, call, query)
        if ttl <= 0:
            record.cache = "BYPASS"
            body = _serialise(await self.events.run(tenant, connection, upstream, call))
            await _reply(send, record, 200, body, [*out, (b"x-cache", b"BYPASS")])
            return 200
        if _no_cache(headers):
            record.cache = "BYPASS"
        elif (entry := await runtime.cache.get(place.key)) is not None:
            record.cache = "HIT"
            await _reply(send, record, 200, entry.body, [*out, *_hit_headers(entry)])
            return 200
        else:
            record.cache = "MISS"

        async def fetch() -> bytes:
            token = await runtime.cache.begin(place)
            body = _serialise(await self.events.run(tenant, connection, upstream, call))
            await runtime.cache.put(place, body, ttl, token)
            return body

        timeout = connection.timeouts.connect + connection.timeouts.read
        try:
            body, _led = await self.single_flight.run(place, fetch, timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{connection.vendor} did not answer in time", vendor=connection.vendor) from exc
        await _reply(send, record, 200, body, [*out, (b"x-cache", record.cache.encode())])
        return 200

    async def _service(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", record.request_id.encode())]
            await send(message)

        path = scope["path"]
        if not any(route.path == path for route in self.service.routes if isinstance(route, Route)):
            raise NotFound("no such endpoint")
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"method {scope['method']} is not allowed here", headers={"Allow": "GET, HEAD"})
        await self.service(scope, receive, send_with_id)

    async def _docs(self, _request: Request) -> Response:
        """The page, with what each vendor of the running config does with each field."""
        columns = capability_table.vendors(self.runtime.config)
        tables = [capability_table.operation_rows(columns), capability_table.field_rows(columns)]
        return HTMLResponse(render_docs(orjson.loads(self.openapi), tables))

    async def _healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, _request: Request) -> Response:
        """Ready when the config is loaded, the maps compiled and the shared backend reachable."""
        runtime = self.runtime
        if isinstance(runtime.cache, cache.RedisCache):
            await runtime.cache.ping()
        backend = runtime.cache.status()
        ready = bool(backend["ok"])
        detail = {
            "status": "ready" if ready else "degraded",
            "config": str(runtime.config.path),
            "tenants": len(runtime.config.tenants),
            "connections": len(runtime.upstreams),
            "cache": backend,
            "circuits": _circuits(runtime),
        }
        return JSONResponse(detail, status_code=200 if ready else 503)

    async def _metrics(self, request: Request) -> Response:
        """Prometheus text. With ``metrics.token`` set, only with that bearer token; else loopback only."""
        token = self.runtime.config.metrics_token
        if token is not None:
            presented = inbound.presented_key({b"authorization": request.headers.get("authorization", "").encode()})
            if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
                raise Unauthorized("/metrics needs the scrape token")
        elif not _loopback(request.client.host if request.client else None):
            raise Forbidden("/metrics answers loopback clients only (set metrics.token to scrape from elsewhere)")
        self.telemetry.set_circuits(_circuits(self.runtime))
        return Response(self.telemetry.exposition(), media_type="text/plain; version=0.0.4")

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                state = scope.get("state", {})  # for each connection's protocol
                state[STATE_KEY], state[ANSWERS_KEY] = self.limits, self.answer_from_memory
                self.watcher.start()
                self._sharing = asyncio.get_running_loop().create_task(
                    self.telemetry.share(lambda: _circuits(self.runtime))
                )
                if self.events.wanted():  # pending deliveries resume now, not at the first webhook
                    await self.events.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Stop what this app runs. A part that does not stop within CLOSE_SECONDS is logged and left
        behind: a shutdown that never ends would keep the process (and its port) forever."""
        if self._sharing is not None:
            self._sharing.cancel()
        parts = {
            "config watcher": self.watcher.stop,
            "events": self.events.close,
            "vendor and backend clients": lambda: close_runtime(self.runtime),
        }
        for name, close in parts.items():
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await close()
            except TimeoutError:
                log.error("shutdown: the %s did not stop within %g s; left behind", name, CLOSE_SECONDS)
        self.telemetry.close()


def _circuits(runtime: Runtime) -> dict[str, str]:
    """Each connection's circuit state, by tenant/connection."""
    return {
        f"{tenant_id}/{upstream.connection.name}": upstream.breaker.state
        for (tenant_id, _fingerprint), upstream in runtime.upstreams.items()
    }


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serialise(result: Any) -> bytes:
    if isinstance(result, Page):
        return orjson.dumps({"data": result.items, "next_cursor": result.next_cursor})
    return orjson.dumps(result)


async def _fail(send: Send, record: RequestRecord, error: GatewayError) -> None:
    record.status, record.error = error.status, error.code
    record.upstream_status = error.upstream_status or record.upstream_status
    headers = [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await _reply(send, record, error.status, orjson.dumps(error.envelope(record.request_id)), headers)


async def _reply(
    send: Send, record: RequestRecord, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Every /v1 answer: with the request id and Server-Timing (vendor time, gateway time)."""
    # One loop turn first, as before a vendor write (gateway/transport.py): the answers finished in
    # one turn leave together. Measured with the vendor's write deferred too (bench/overhead.py,
    # gateway-miss-spread c=16): ~9% more misses per second, system time per miss 38 -> 22 µs.
    await asyncio.sleep(0)
    headers = _stamped(record, headers)
    if status == 204:
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await respond(send, status, body, headers)


def _stamped(record: RequestRecord, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(b"x-request-id", record.request_id.encode()), (b"server-timing", record.server_timing()), *headers]


def _check_head_size(headers: list[tuple[bytes, bytes]]) -> None:
    if sum(map(len, itertools.chain.from_iterable(headers))) > MAX_HEADER_BYTES:
        raise HeadersTooLarge(f"the request headers are larger than {MAX_HEADER_BYTES} bytes")


def _admit(
    runtime: Runtime, route: ApiRoute, headers: dict[bytes, bytes], record: RequestRecord
) -> tuple[Tenant, KeySpec]:
    """The tenant and key the presented key names, allowed the route's scope (else 401 / 403)."""
    tenant, key = authenticate(runtime.config, inbound.presented_key(headers))
    record.tenant, record.key, record.operation = tenant.id, key.id, route.operation
    require_scope(key, route.scope)
    return tenant, key


def _limited(decision: Decision) -> list[tuple[bytes, bytes]]:
    """The rate-limit headers of an allowed request; a refused one is a 429."""
    if not decision.allowed:
        raise RateLimited("rate limit exceeded; retry after Retry-After seconds", headers=decision.headers())
    return [(name.lower().encode(), value.encode()) for name, value in decision.headers().items()]


def _no_cache(headers: dict[bytes, bytes]) -> bool:
    return inbound.wants_fresh(headers.get(b"cache-control", b""))


def _hit_headers(entry: cache.Entry) -> list[tuple[bytes, bytes]]:
    return [(b"x-cache", b"HIT"), (b"age", str(max(0, int(time.time() - entry.stored_at))).encode())]


def _handling_headers(call: Call, asked: bool) -> dict[str, str]:
    """RFC 7240's answer to ``Prefer: handling``, and the canonical fields a lenient request left out."""
    headers = {}
    if call.handling == "lenient" or asked:
        headers["Preference-Applied"] = f"handling={call.handling}"
    if call.dropped:
        headers["Dropped-Fields"] = ", ".join(call.dropped)
    return headers


def _connections(tenant: Tenant, hook_urls: dict[str, str | None]) -> dict[str, Any]:
    return {
        "data": [
            {
                "name": c.name,
                "vendor": c.vendor,
                "default": c.name == tenant.default_connection,
                "operations": list(c.map.operations),
                "unsupported_fields": "drop" if c.lenient else "reject",
                "capabilities": c.map.capabilities,
                "events": c.events,
                "hook_url": hook_urls.get(c.name),
            }
            for c in tenant.connections.values()
        ]
    }
