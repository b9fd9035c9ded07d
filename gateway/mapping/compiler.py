"""Turns a validated map spec into a VendorMap: plain callables per operation, built once.

Problems are collected, not raised one at a time, so ``gateway check`` names every one in a
file. Canonical names a map writes (sources under ``body.``, ``required``, ``unsupported``,
``unconverted``, step ``carries``, shape targets) are checked against the canonical models.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping.canonical import REQUEST_MODELS, field_text, leaves, parse_field, under
from gateway.mapping.capabilities import FieldPlan
from gateway.mapping.events import EventMap, compile_events
from gateway.mapping.expressions import Scope, compile_fields
from gateway.mapping.lookup_compiler import CompiledLookup, compile_lookup, lookups_of
from gateway.mapping.paths import EVERY, Path, compile_getter
from gateway.mapping.planning import Step, plan_fields
from gateway.mapping.request import PLACEHOLDER, UpstreamRequest, compile_request, path_of, render_template
from gateway.mapping.response import Shapes, compile_response
from gateway.mapping.spec import FanOutSpec, MapSpec, OperationSpec
from gateway.mapping.transforms import Enum, Fn, MapError
from gateway.mapping.vendor_errors import FieldErrors, compile_field_errors

Loc = tuple[str | int, ...]

RESULT_KINDS: dict[str, str] = {
    "create": "campaign",
    "get": "campaign",
    "update": "campaign",
    "pause": "campaign",
    "resume": "campaign",
    "cancel": "campaign",
    "list": "campaign_page",
    "recipients_list": "recipient_page",
    "recipients_add": "recipients_added",
    "delete": "empty",
    "start": "campaign",
}
# What a request may read, besides the canonical body: the rest of the context the engine builds.
_CONTEXT: dict[str, frozenset[str] | None] = {
    "id": frozenset(),
    "now": frozenset(),
    "params": None,  # any name: the connection's params
    "page": frozenset({"offset", "limit", "number", "cursor"}),
    "filter": frozenset({"status"}),
    "hook_url": frozenset(),  # the gateway's own callback URL on a connection with events (else null)
}
_SOURCES = "body.*, id, params.*, page.offset|limit|number|cursor, filter.status, now, hook_url, item (under fan_out)"


class MapErrors(MapError):
    """Every problem found in one map (the first one is also this error's own message and place)."""

    def __init__(self, errors: list[MapError]) -> None:
        super().__init__(errors[0].message, errors[0].loc)
        self.errors = errors


@dataclass(frozen=True)
class FanOut:
    """Several upstream calls for one request: ``item`` is each element, or (with ``size``) each chunk."""

    items: Fn
    size: int | None
    field: Path  # the canonical list it walks, e.g. ("recipients",)


@dataclass
class CompiledOperation:
    name: str
    kind: str
    method: str
    idempotent: bool
    refetch: bool
    cache_ttl: float | None
    filters_status: bool
    takes_cursor: bool
    fan_out: FanOut | None
    build_request: Callable[[dict[str, Any]], UpstreamRequest]
    parse_response: Callable[[Any, dict[str, Any], bool], Any]
    options_at: Callable[[dict[str, Any]], dict[str, Any]]  # the object of the JSON body vendor_options merge into
    fields: FieldPlan | None = None  # operations with a canonical body
    steps: list[Step] = field(default_factory=list)
    # (vendor body field, canonical field it carries): to name a refused field as the client knows it
    vendor_fields: list[tuple[Path, Path]] = field(default_factory=list)
    lookups: tuple[str, ...] = ()  # the tables its request or answer reads (fetched before it runs)
    reads_now: bool = False  # its request reads ``now``: the engine reads the clock only then


@dataclass
class VendorMap:
    name: str
    aliases: list[str]
    base_url: str
    sandbox: str | None
    id_pattern: re.Pattern[str] | None
    auth_headers: dict[str, str]
    auth_query: dict[str, str]
    error_message: Fn
    error_fields: FieldErrors
    error_codes: dict[int, str]
    operations: dict[str, CompiledOperation]
    states: dict[str, list[str]]
    required_params: set[str]
    required_credentials: set[str]
    digest: str = ""  # of the map file: a changed map means new clients on reload
    # Per operation with a body: each canonical field native, composed or unsupported, and what is required.
    capabilities: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    auth_basic: tuple[str, str] | None = None  # username and password templates
    lookups: dict[str, CompiledLookup] = field(default_factory=dict)
    events: EventMap | None = None  # how its webhooks are checked and read, if the map says

    def render_auth(self, credentials: dict[str, str], params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        context = {"credentials": credentials, "params": params}
        headers = {name: render_template(value, context) for name, value in self.auth_headers.items()}
        query = {name: render_template(value, context) for name, value in self.auth_query.items()}
        for token in self.encoded_secrets(credentials, params):
            headers["Authorization"] = f"Basic {token}"
        return headers, query

    def encoded_secrets(self, credentials: dict[str, str], params: dict[str, str]) -> list[str]:
        """Credentials as they travel encoded (basic auth's base64), to be masked like the credentials themselves."""
        if self.auth_basic is None:
            return []
        context = {"credentials": credentials, "params": params}
        username, password = (render_template(template, context) for template in self.auth_basic)
        return [base64.b64encode(f"{username}:{password}".encode()).decode()]


def compile_map(spec: MapSpec) -> VendorMap:
    """The compiled map; raises MapErrors naming every problem found."""
    problems: list[MapError] = []
    enums = {name: _compile_enum(enum) for name, enum in spec.enums.items()}
    response_scope, request_scope = Scope(enums, strict=False), Scope(enums, strict=True)
    shapes = Shapes({}, spec.shapes, problems, set())
    for name, fields in spec.shapes.items():
        try:
            shapes.compiled[name] = compile_fields(fields, ("shapes", name), response_scope, omit_null=False)
        except MapError as exc:
            problems.append(exc)
    lookups: dict[str, CompiledLookup] = {}
    for name, lookup in spec.lookups.items():
        try:
            lookups[name] = compile_lookup(name, lookup, ("lookups", name), response_scope)
        except MapError as exc:
            problems.append(exc)
    events = compile_events(spec.events, response_scope, problems) if spec.events is not None else None
    operations: dict[str, CompiledOperation] = {}
    native: dict[str, list[Path]] = {}
    for name, op in spec.operations.items():
        try:
            operations[name], native[name] = _compile_operation(
                name, op, shapes, request_scope, response_scope, problems
            )
        except MapError as exc:
            problems.append(exc)
        else:
            operations[name].lookups = lookups_of(name, op, spec, problems)
    plan_fields(spec, operations, native, problems)
    basic = (spec.auth.basic.username, spec.auth.basic.password) if spec.auth.basic else None
    if basic and any(name.lower() == "authorization" for name in spec.auth.headers):
        problems.append(MapError("auth has basic and an Authorization header: choose one", ("auth", "basic")))
    templates = [spec.base_url, *spec.auth.headers.values(), *spec.auth.query.values(), *(basic or ())]
    templates += [op.request.path for op in spec.operations.values()]
    placeholders = [m for text in templates for m in PLACEHOLDER.findall(text)]
    error_fields: FieldErrors = lambda _body: []  # noqa: E731 (replaced unless the section is broken)
    try:
        error_fields = compile_field_errors(spec.errors.fields, ("errors", "fields"))
    except MapError as exc:
        problems.append(exc)
    id_pattern = None
    try:
        id_pattern = re.compile(spec.id_pattern) if spec.id_pattern else None
    except re.error as exc:
        problems.append(MapError(f"id_pattern is not a regular expression: {exc}", ("id_pattern",)))
    if problems:
        raise MapErrors(problems)
    return VendorMap(
        name=spec.vendor,
        aliases=spec.aliases,
        base_url=spec.base_url,
        sandbox=spec.sandbox,
        id_pattern=id_pattern,
        auth_headers=spec.auth.headers,
        auth_query=spec.auth.query,
        error_message=_compile_error_message(spec.errors.message),
        error_fields=error_fields,
        error_codes=spec.errors.codes,
        operations=operations,
        states={status: list(allowed) for status, allowed in spec.states.items()},
        required_params={p.split(".", 1)[1] for p in placeholders if p.startswith("params.")},
        required_credentials={p.split(".", 1)[1] for p in placeholders if p.startswith("credentials.")},
        capabilities={name: op.fields.report() for name, op in operations.items() if op.fields is not None},
        auth_basic=basic,
        lookups=lookups,
        events=events,
    )


def _compile_enum(spec: Any) -> Enum:
    forward = {(k.lower() if spec.ignore_case else k): v for k, v in spec.map.items()}
    reverse = dict(spec.reverse or {})
    for word, canonical in spec.map.items():
        reverse.setdefault(canonical, word)
    return Enum(forward=forward, reverse=reverse, unknown=spec.unknown, ignore_case=spec.ignore_case)


def _compile_error_message(paths: list[str]) -> Fn:
    getters = [compile_getter(path_of(p, ("errors", "message", i))) for i, p in enumerate(paths)]

    def message(body: Any) -> Any:
        for get in getters:
            value = get(body)
            if value not in (None, "", [], {}):
                return value
        return None

    return message


def _compile_operation(
    name: str,
    op: OperationSpec,
    shapes: Shapes,
    request_scope: Scope,
    response_scope: Scope,
    problems: list[MapError],
) -> tuple[CompiledOperation, list[Path]]:
    """The operation, and the canonical leaves its own vendor request carries."""
    loc: Loc = ("operations", name)
    kind = RESULT_KINDS[name]
    model = REQUEST_MODELS.get(name)
    fan_out = _compile_fan_out(op.fan_out, (*loc, "fan_out"), name, problems)
    request = compile_request(op.request, (*loc, "request"), request_scope)
    problems += _read_problems(request.reads, name, fan_out is not None)
    parse = compile_response(name, kind, op, shapes, (*loc, "response"), response_scope)
    idempotent = op.idempotent if op.idempotent is not None else op.request.method in ("GET", "PUT", "DELETE")
    native: list[Path] = []
    if model is not None:
        carried = [found for path in request.consumed if (found := _canonical(path, fan_out)) is not None]
        if request.json_object and "vendor_options" in model.model_fields:
            carried.append(("vendor_options",))  # the engine merges it into an object body
        native = [leaf for leaf in leaves(model) if any(under(leaf, path) for path in carried)]
    compiled = CompiledOperation(
        name=name,
        kind=kind,
        method=op.request.method,
        idempotent=idempotent,
        refetch=op.refetch,
        cache_ttl=op.cache_ttl_seconds,
        filters_status=("filter", "status") in request.query_consumed,
        takes_cursor=("page", "cursor") in request.query_consumed,
        fan_out=fan_out,
        build_request=request.build,
        parse_response=parse,
        vendor_fields=[
            (target, found)
            for target, source in request.body_pairs
            if (found := _canonical(source, fan_out)) is not None
        ],
        options_at=request.options_at,
        reads_now=any(path[:1] == ("now",) for path, _loc in request.reads),
    )
    return compiled, native


def _compile_fan_out(
    spec: str | FanOutSpec | None, loc: Loc, operation: str, problems: list[MapError]
) -> FanOut | None:
    if spec is None:
        return None
    text, size = (spec, None) if isinstance(spec, str) else (spec.from_, spec.size)
    where = loc if isinstance(spec, str) else (*loc, "from")
    path = path_of(text, where)
    model = REQUEST_MODELS.get(operation)
    if (
        model is None
        or path[:1] != ("body",)
        or (*path[1:], EVERY) not in {leaf[: len(path)] for leaf in leaves(model)}
    ):
        problems.append(
            MapError(f"fan_out takes a list of the canonical body (e.g. body.recipients), not {text!r}", where)
        )
    return FanOut(compile_getter(path), size, path[1:])


def _canonical(path: Path, fan_out: FanOut | None) -> Path | None:
    """A request source path as a canonical body field (``item`` standing for the fanned-out list's elements)."""
    if path[:1] == ("body",):
        return path[1:]
    if path[:1] == ("item",) and fan_out is not None:
        return (*fan_out.field, *path[1:]) if fan_out.size else (*fan_out.field, EVERY, *path[1:])
    return None


def _read_problems(reads: list[tuple[Path, Loc]], operation: str, fanned_out: bool) -> list[MapError]:
    """Each request source path that cannot exist: an unknown root, a misspelt body field, ``item`` without fan_out."""
    model = REQUEST_MODELS.get(operation)
    problems = []
    for path, loc in reads:
        root, rest = path[0], path[1:]
        message = None
        if root == "body":
            if model is None:
                message = f"operation {operation} has no request body to read {field_text(path)!r} from"
            elif rest:
                message = parse_field(field_text(rest), model, indexes=True)[1]
        elif root == "item":
            message = None if fanned_out else "item is only defined under fan_out"
        elif root not in _CONTEXT or not _known_context(root, rest):
            message = f"unknown source {field_text(path)!r}: a request reads {_SOURCES}"
        if message is not None:
            problems.append(MapError(message, loc))
    return problems


def _known_context(root: str | int, rest: Path) -> bool:
    keys = _CONTEXT[str(root)]
    if keys is None:
        return True
    return (not rest and not keys) or (len(rest) == 1 and rest[0] in keys)
