"""Loads config.yaml: typed, validated once, every problem reported as FILE:LINE: message."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gateway.events.settings import EventsSettings, TenantWebhooks, WebhooksSpec, connection_problems, tenant_webhooks
from gateway.mapping import VendorMap, load_maps
from gateway.mapping.loader import names_in
from gateway.mapping.request import render_template
from gateway.problems import Problem, at, from_validation
from gateway.yamlsrc import SourceFile, YamlProblem, load_yaml

SANDBOX = "sandbox"
# Shorter credentials are not masked in logs and answers: they would match ordinary text.
MIN_SECRET_LENGTH = 8
Scope = Literal["campaigns:read", "campaigns:write", "events:read", "events:write"]
SCOPES: tuple[str, ...] = Scope.__args__  # type: ignore[attr-defined]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


CachedOperation = Literal["get", "list", "recipients_list"]


class CacheSpec(Strict):
    backend: str = Field(default="memory", pattern=r"^(memory|rediss?://\S+)$")
    ttl_seconds: float = Field(default=30, ge=0)
    max_entries: int = Field(default=10000, ge=1)
    ttl_by_operation: dict[CachedOperation, float] = Field(
        default={}, description="Per-operation TTL overrides (seconds); 0 turns caching off for one"
    )


class RateLimitSpec(Strict):
    requests_per_minute: float = Field(gt=0)
    burst: int = Field(default=1, ge=1, description="Requests that may come at once")


class KeySpec(Strict):
    id: str = Field(min_length=1, description="A label, safe to log")
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    scopes: list[Scope] = list(SCOPES)
    expires_at: AwareDatetime | None = None
    disabled: bool = False
    rate_limit: RateLimitSpec | None = None


class TimeoutSpec(Strict):
    connect: float = Field(default=3, gt=0, description="Seconds to open a connection to the vendor")
    read: float = Field(default=15, gt=0, description="Seconds to wait for the vendor's answer, per attempt")
    total: float = Field(default=30, gt=0, description="Seconds for the whole request, retries included")


class RetrySpec(Strict):
    attempts: int = Field(default=3, ge=1, le=10, description="Attempts in all, the first included")
    backoff_base_seconds: float = Field(default=0.1, ge=0)
    backoff_max_seconds: float = Field(default=2.0, ge=0)
    budget_ratio: float = Field(
        default=0.2, ge=0, le=10, description="Retries allowed per connection: this share of its requests over 10 s"
    )
    budget_min_retries: int = Field(default=5, ge=0, description="Retries allowed per 10 s whatever the traffic")


class CircuitSpec(Strict):
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=10, ge=1)
    window_seconds: float = Field(default=10, gt=0, description="Calls older than this no longer count")
    open_seconds: float = Field(default=15, gt=0)


class ConnectionSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    vendor: str
    base_url: str | None = None
    credentials: dict[str, str] = {}
    params: dict[str, str] = {}
    timeouts: TimeoutSpec = TimeoutSpec()
    retries: RetrySpec = RetrySpec()
    circuit: CircuitSpec = CircuitSpec()
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    unsupported_fields: Literal["reject", "drop"] = Field(
        default="reject",
        description="A field the vendor cannot carry: refused (422), or left out and named in Dropped-Fields; "
        "`Prefer: handling=strict|lenient` overrides it per request",
    )
    events: bool = Field(
        default=False,
        description="The gateway gives the vendor its own callback URL and turns its webhooks into canonical events",
    )


class TenantSpec(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    keys: list[KeySpec] = []
    default_connection: str | None = None
    connections: list[ConnectionSpec] = []
    rate_limit: RateLimitSpec | None = None
    webhooks: WebhooksSpec | None = None


class LoggingSpec(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: readable text at a terminal, JSON lines otherwise"
    )
    flush_seconds: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Access lines are written in batches at least this often (and all at shutdown); "
        "a crash loses at most this much",
    )


class MetricsSpec(Strict):
    token: str | None = Field(
        default=None, description="Bearer token /metrics asks for; without one, /metrics answers loopback only"
    )


class ServerSpec(Strict):
    """Limits on clients, per worker process: what a slow or greedy client may hold."""

    header_timeout_seconds: float = Field(
        default=10, gt=0, description="Seconds to send a request line and headers: then 408, or closed if nothing came"
    )
    body_timeout_seconds: float = Field(default=30, gt=0, description="Seconds to send a request body: then 408")
    max_connections: int = Field(default=1000, ge=1, description="Open client connections; more: 503 server_busy")
    max_connections_per_client: int = Field(
        default=100, ge=1, description="Open connections from one client address; more: 503 server_busy"
    )
    max_body_bytes_in_flight: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of request bodies being received at once; a body that would pass it: 503 server_busy",
    )


class ConfigSpec(Strict):
    mappings_dir: str = "mappings"
    server: ServerSpec = ServerSpec()
    public_url: str | None = Field(
        default=None, description="The gateway's address as vendors reach it (for their webhooks); ${VAR} allowed"
    )
    events: EventsSettings = EventsSettings()
    logging: LoggingSpec = LoggingSpec()
    metrics: MetricsSpec = MetricsSpec()
    cache: CacheSpec = CacheSpec()
    tenants: list[TenantSpec] = []


@dataclass
class Connection:
    """A tenant's configured route to one vendor account, with its auth rendered once."""

    name: str
    vendor: str
    map: VendorMap
    base_url: str
    sandbox: bool
    params: dict[str, str]
    auth_headers: dict[str, str]
    auth_query: dict[str, str]
    secrets: tuple[str, ...]
    timeouts: TimeoutSpec
    retries: RetrySpec
    circuit: CircuitSpec
    max_response_bytes: int
    fingerprint: str
    lenient: bool = False  # unsupported_fields: drop
    events: bool = False
    hook_credentials: dict[str, str] = field(default_factory=dict, repr=False)  # what its webhook checks read


@dataclass
class Tenant:
    id: str
    default_connection: str | None
    connections: dict[str, Connection]
    rate_limit: RateLimitSpec | None = None
    webhooks: TenantWebhooks | None = None


@dataclass
class Config:
    path: Path
    mappings_dir: Path
    cache: CacheSpec
    logging: LoggingSpec
    metrics_token: str | None
    tenants: dict[str, Tenant]
    keys: dict[str, tuple[Tenant, KeySpec]] = field(default_factory=dict)
    maps: dict[str, VendorMap] = field(default_factory=dict)  # every map compiled, by vendor name
    server: ServerSpec = field(default_factory=ServerSpec)
    public_url: str | None = None
    events: EventsSettings = field(default_factory=EventsSettings)


def default_config_path() -> Path:
    return Path(os.environ.get("GATEWAY_CONFIG", "config.yaml"))


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, running: Config | None = None
) -> tuple[Config | None, list[Problem]]:
    """The config at ``path`` with every map it names, or None and the problems found.

    With the ``running`` config, maps whose files did not change are taken from it, not compiled again.
    """
    environ = os.environ if environ is None else environ
    try:
        source = load_yaml(path)
    except YamlProblem as exc:
        return None, [Problem(str(exc.path), exc.line, exc.message)]
    try:
        spec = ConfigSpec.model_validate(source.data or {})
    except ValidationError as exc:
        return None, from_validation(source, exc)
    maps_dir = (path.parent / spec.mappings_dir).resolve()
    maps, problems = load_maps(maps_dir, running.maps if running is not None else None)
    broken = {name for file in {problem.file for problem in problems} for name in names_in(file)}
    token = {"token": spec.metrics.token} if spec.metrics.token else {}
    metrics = _resolve_env(token, environ, source, ("metrics",), problems)
    config = Config(
        path,
        maps_dir,
        spec.cache,
        spec.logging,
        metrics.get("token"),
        tenants={},
        maps=maps,
        server=spec.server,
        events=spec.events,
    )
    if spec.public_url is not None:
        config.public_url = _public_url(spec.public_url, environ, source, problems)
    for t, tenant_spec in enumerate(spec.tenants):
        loc = ("tenants", t)
        if tenant_spec.id in config.tenants:
            problems.append(at(source, (*loc, "id"), f"tenant {tenant_spec.id!r} is defined twice"))
        tenant = Tenant(tenant_spec.id, tenant_spec.default_connection, {}, tenant_spec.rate_limit)
        tenant.webhooks = _webhooks(tenant_spec.webhooks, environ, source, (*loc, "webhooks"), problems)
        for c, conn_spec in enumerate(tenant_spec.connections):
            where = (*loc, "connections", c)
            signs = tenant_spec.webhooks is not None  # a broken secret is reported where it is
            connection = _connection(
                conn_spec, maps, broken, environ, source, where, problems, config.public_url, signs
            )
            if conn_spec.name in tenant.connections:
                problems.append(
                    at(
                        source,
                        (*loc, "connections", c, "name"),
                        f"connection {conn_spec.name!r} is defined twice",
                    )
                )
            if connection is not None:
                tenant.connections[conn_spec.name] = connection
        default = tenant_spec.default_connection
        if default is not None and default not in {c.name for c in tenant_spec.connections}:
            problems.append(
                at(
                    source,
                    (*loc, "default_connection"),
                    f"default_connection {default!r} is not one of this tenant's connections",
                )
            )
        for k, key in enumerate(tenant_spec.keys):
            if key.hash in config.keys:
                problems.append(
                    at(
                        source,
                        (*loc, "keys", k, "hash"),
                        f"key {key.id!r}: this hash is already used by another key",
                    )
                )
            config.keys[key.hash] = (tenant, key)
        config.tenants[tenant.id] = tenant
    return (None, problems) if problems else (config, [])


def _connection(
    spec: ConnectionSpec,
    maps: dict[str, VendorMap],
    broken: set[str],
    environ: Mapping[str, str],
    source: SourceFile,
    loc: tuple[str | int, ...],
    problems: list[Problem],
    public_url: str | None,
    signs: bool,
) -> Connection | None:
    vendor_map = maps.get(spec.vendor)
    if vendor_map is None and spec.vendor in broken:
        return None  # its map's own problems are reported already
    if vendor_map is None:
        problems.append(
            at(
                source,
                (*loc, "vendor"),
                f"unknown vendor {spec.vendor!r}: no mappings/{spec.vendor}.yaml",
            )
        )
        return None
    before = len(problems)
    credentials = _resolve_env(spec.credentials, environ, source, (*loc, "credentials"), problems)
    params = _resolve_env(spec.params, environ, source, (*loc, "params"), problems)
    for name in sorted(vendor_map.required_credentials - set(credentials)):
        problems.append(at(source, (*loc, "credentials"), f"vendor {spec.vendor} needs credentials.{name}"))
    for name in sorted(vendor_map.required_params - set(params)):
        problems.append(at(source, (*loc, "params"), f"vendor {spec.vendor} needs params.{name}"))
    for name, value in params.items():
        if not _HOST_SAFE.match(value):
            problems.append(
                at(
                    source,
                    (*loc, "params", name),
                    f"params.{name} may hold only letters, digits, '.', '_' and '-'",
                )
            )
    sandbox = spec.base_url == SANDBOX
    if sandbox and vendor_map.sandbox is None:
        problems.append(at(source, (*loc, "base_url"), f"vendor {spec.vendor} has no sandbox"))
    base = vendor_map.base_url if spec.base_url in (None, SANDBOX) else spec.base_url
    base_url = "http://sandbox" if sandbox else render_template(base, {"params": params})
    if not base_url.startswith(("http://", "https://")):
        problems.append(
            at(
                source,
                (*loc, "base_url"),
                f"base_url {base_url!r} is not an http(s) URL or 'sandbox'",
            )
        )
    if spec.events:
        found = connection_problems(vendor_map, credentials, public_url, signs, sandbox)
        problems += [at(source, (*loc, key), message) for key, message in found]
    if len(problems) > before:
        return None
    headers, query = vendor_map.render_auth(credentials, params)
    # Identifies what the connection reaches and how: a change means a new client and a fresh cache.
    identity = [spec.name, spec.vendor, vendor_map.digest, base_url, sorted(params.items()), sorted(headers.items())]
    identity.append(sorted(query.items()))
    settings = (spec.timeouts, spec.retries, spec.circuit, spec.max_response_bytes)
    fingerprint = hashlib.sha256(repr((identity, settings)).encode()).hexdigest()[:32]
    return Connection(
        name=spec.name,
        vendor=spec.vendor,
        map=vendor_map,
        base_url=base_url.rstrip("/"),
        sandbox=sandbox,
        params=params,
        auth_headers=headers,
        auth_query=query,
        secrets=tuple(
            value
            for value in (*credentials.values(), *vendor_map.encoded_secrets(credentials, params))
            if len(value) >= MIN_SECRET_LENGTH
        ),
        timeouts=spec.timeouts,
        retries=spec.retries,
        circuit=spec.circuit,
        max_response_bytes=spec.max_response_bytes,
        fingerprint=fingerprint,
        lenient=spec.unsupported_fields == "drop",
        events=spec.events,
        hook_credentials=credentials if spec.events else {},
    )


def _public_url(text: str, environ: Mapping[str, str], source: SourceFile, problems: list[Problem]) -> str | None:
    before = len(problems)
    url = _resolve_env({"public_url": text}, environ, source, (), problems)["public_url"]
    if _URL.match(url):
        return url.rstrip("/")
    if len(problems) == before:  # else the unset variable is named already
        problems.append(at(source, ("public_url",), "public_url must be an http(s) URL (as vendors reach the gateway)"))
    return None


def _webhooks(
    spec: WebhooksSpec | None,
    environ: Mapping[str, str],
    source: SourceFile,
    loc: tuple[str | int, ...],
    problems: list[Problem],
) -> TenantWebhooks | None:
    """The tenant's signing secret (from ``${VAR}``) and default destination, checked."""
    if spec is None:
        return None
    before = len(problems)
    secret = _resolve_env({"secret": spec.secret}, environ, source, loc, problems)["secret"]
    if len(problems) > before:
        return None
    webhooks, wrong = tenant_webhooks(secret, spec.url)
    if wrong is not None:
        problems.append(at(source, (*loc, "secret"), wrong))
    return webhooks


def _resolve_env(
    values: dict[str, str],
    environ: Mapping[str, str],
    source: SourceFile,
    loc: tuple[str | int, ...],
    problems: list[Problem],
) -> dict[str, str]:
    """Fill in ``${VAR}`` references; a variable that is not set is a problem naming it."""
    resolved = {}
    for name, value in values.items():
        for var in _ENV_REF.findall(value):
            if var not in environ:
                problems.append(at(source, (*loc, name), f"environment variable {var} is not set"))
        resolved[name] = _ENV_REF.sub(lambda m: environ.get(m[1], ""), value)
    return resolved
