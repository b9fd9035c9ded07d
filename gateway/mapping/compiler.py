"""Turns a validated map spec into a VendorMap: plain callables per operation, built once."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import BaseModel

from gateway import models
from gateway.mapping.expressions import (
    Compiled,
    Scope,
    TranslationError,
    compile_expression,
    compile_fields,
)
from gateway.mapping.paths import Path, PathError, compile_getter, parse_path, without_paths
from gateway.mapping.spec import MapSpec, OperationSpec, PartSpec, RequestSpec
from gateway.mapping.transforms import Enum, Fn, MapError

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
}
# Canonical fields a shape may set, per result kind; the engine fills in the rest.
_SHAPE_MODELS: dict[str, type[BaseModel]] = {
    "campaign": models.Campaign,
    "campaign_page": models.Campaign,
    "recipient_page": models.Recipient,
    "recipients_added": models.RecipientsAdded,
}
_ENGINE_FIELDS = {"connection", "vendor", "vendor_data", "campaign_id", "submitted", "errors"}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class MalformedResponse(ValueError):
    """A vendor answer whose structure the map cannot read."""


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    path: str
    query: dict[str, Any]
    json: Any = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """What a list operation returns before the engine adds connection and vendor."""

    items: list[dict[str, Any]]
    next_cursor: str | None


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
    unsupported: list[tuple[str, Fn]]
    required: list[tuple[str, Fn]]
    fan_out: Fn | None
    build_request: Callable[[dict[str, Any]], UpstreamRequest]
    parse_response: Callable[[Any, dict[str, Any], bool], Any]


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
    error_codes: dict[int, str]
    operations: dict[str, CompiledOperation]
    required_params: set[str]
    required_credentials: set[str]
    digest: str = ""  # of the map file: a changed map means new clients on reload

    def render_auth(self, credentials: dict[str, str], params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        context = {"credentials": credentials, "params": params}
        headers = {name: render_template(value, context) for name, value in self.auth_headers.items()}
        query = {name: render_template(value, context) for name, value in self.auth_query.items()}
        return headers, query


def render_template(template: str, context: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(compile_getter(parse_path(m[1]))(context) or ""), template)


def compile_map(spec: MapSpec) -> VendorMap:
    enums = {name: _compile_enum(enum) for name, enum in spec.enums.items()}
    response_scope, request_scope = Scope(enums, strict=False), Scope(enums, strict=True)
    shapes = {
        name: compile_fields(fields, ("shapes", name), response_scope, omit_null=False)
        for name, fields in spec.shapes.items()
    }
    operations = {
        name: _compile_operation(name, op, shapes, spec, request_scope, response_scope)
        for name, op in spec.operations.items()
    }
    templates = [spec.base_url, *spec.auth.headers.values(), *spec.auth.query.values()]
    templates += [op.request.path for op in spec.operations.values()]
    placeholders = [m for text in templates for m in _PLACEHOLDER.findall(text)]
    try:
        id_pattern = re.compile(spec.id_pattern) if spec.id_pattern else None
    except re.error as exc:
        raise MapError(f"id_pattern is not a regular expression: {exc}", ("id_pattern",)) from exc
    return VendorMap(
        name=spec.vendor,
        aliases=spec.aliases,
        base_url=spec.base_url,
        sandbox=spec.sandbox,
        id_pattern=id_pattern,
        auth_headers=spec.auth.headers,
        auth_query=spec.auth.query,
        error_message=_compile_error_message(spec.errors.message),
        error_codes=spec.errors.codes,
        operations=operations,
        required_params={p.split(".", 1)[1] for p in placeholders if p.startswith("params.")},
        required_credentials={p.split(".", 1)[1] for p in placeholders if p.startswith("credentials.")},
    )


def _compile_enum(spec: Any) -> Enum:
    forward = {(k.lower() if spec.ignore_case else k): v for k, v in spec.map.items()}
    reverse = dict(spec.reverse or {})
    for word, canonical in spec.map.items():
        reverse.setdefault(canonical, word)
    return Enum(forward=forward, reverse=reverse, unknown=spec.unknown, ignore_case=spec.ignore_case)


def _compile_error_message(paths: list[str]) -> Fn:
    getters = [compile_getter(_path(p, ("errors", "message", i))) for i, p in enumerate(paths)]

    def message(body: Any) -> Any:
        for get in getters:
            value = get(body)
            if value not in (None, "", [], {}):
                return value
        return None

    return message


def _path(text: str, loc: Loc) -> Path:
    try:
        return parse_path(text)
    except PathError as exc:
        raise MapError(str(exc), loc) from exc


def _compile_operation(
    name: str,
    op: OperationSpec,
    shapes: dict[str, Compiled],
    spec: MapSpec,
    request_scope: Scope,
    response_scope: Scope,
) -> CompiledOperation:
    loc: Loc = ("operations", name)
    kind = RESULT_KINDS[name]
    build, query_consumed = _compile_request(op.request, (*loc, "request"), request_scope)
    parse = _compile_response(name, kind, op, shapes, spec, (*loc, "response"), response_scope)
    idempotent = op.idempotent if op.idempotent is not None else op.request.method in ("GET", "PUT", "DELETE")
    return CompiledOperation(
        name=name,
        kind=kind,
        method=op.request.method,
        idempotent=idempotent,
        refetch=op.refetch,
        cache_ttl=op.cache_ttl_seconds,
        filters_status=("filter", "status") in query_consumed,
        takes_cursor=("page", "cursor") in query_consumed,
        unsupported=_field_getters(op.unsupported, (*loc, "unsupported")),
        required=_field_getters(op.required, (*loc, "required")),
        fan_out=compile_getter(_path(op.fan_out, (*loc, "fan_out"))) if op.fan_out else None,
        build_request=build,
        parse_response=parse,
    )


def _field_getters(names: list[str], loc: Loc) -> list[tuple[str, Fn]]:
    return [(name, compile_getter(_path(name, (*loc, i)))) for i, name in enumerate(names)]


def _compile_request(
    spec: RequestSpec, loc: Loc, scope: Scope
) -> tuple[Callable[[dict[str, Any]], UpstreamRequest], list[Path]]:
    path = _compile_path_template(spec.path, (*loc, "path"))
    query = compile_fields(spec.query, (*loc, "query"), scope, omit_null=True)
    if sum(x is not None for x in (spec.body, spec.body_from, spec.multipart)) > 1:
        raise MapError("a request has one of body, body_from or multipart", loc)
    body = None
    if spec.body is not None:
        body = compile_fields(spec.body, (*loc, "body"), scope, omit_null=True)
    elif spec.body_from is not None:
        body = compile_expression(spec.body_from, (*loc, "body_from"), scope)
    parts = _compile_multipart(spec.multipart, (*loc, "multipart"), scope) if spec.multipart else None
    method, headers = spec.method, spec.headers

    def build(context: dict[str, Any]) -> UpstreamRequest:
        request = UpstreamRequest(method=method, path=path(context), query=query.fn(context), headers=headers)
        if body is not None:
            return _replace(request, json=body.fn(context))
        if parts is not None:
            data, files = parts(context)
            return _replace(request, data=data, files=files)
        return request

    return build, query.consumed


def _replace(request: UpstreamRequest, **changes: Any) -> UpstreamRequest:
    return UpstreamRequest(**{**request.__dict__, **changes})


def encode_segment(value: Any) -> str:
    """Percent-encode one path segment so that no value can reach another upstream path."""
    text = quote(str(value), safe="")
    return "%2E" * len(text) if set(text) == {"."} else text


def _compile_path_template(template: str, loc: Loc) -> Fn:
    if not template.startswith("/"):
        raise MapError("a request path starts with /", loc)
    pieces: list[str | Fn] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(template[position : match.start()])
        pieces.append(compile_getter(_path(match[1], loc)))
        position = match.end()
    pieces.append(template[position:])

    def render(context: dict[str, Any]) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                value = piece(context)
                if value in (None, ""):
                    raise TranslationError("path", f"no value for a placeholder in {template}")
                out.append(encode_segment(value))
        return "".join(out)

    return render


def _compile_multipart(
    parts: dict[str, PartSpec], loc: Loc, scope: Scope
) -> Callable[[dict[str, Any]], tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]]:
    compiled = [(name, part, _compile_part(part, (*loc, name), scope)) for name, part in parts.items()]

    def build(
        context: dict[str, Any],
    ) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
        data: dict[str, str] = {}
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        for name, part, fn in compiled:
            value = fn(context)
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            if part.filename:
                files.append(
                    (
                        name,
                        (
                            part.filename,
                            text.encode(),
                            part.content_type or "application/octet-stream",
                        ),
                    )
                )
            else:
                data[name] = text
        return data, files

    return build


def _compile_part(part: PartSpec, loc: Loc, scope: Scope) -> Fn:
    if (part.value is None) == (part.fields is None):
        raise MapError("a multipart field has either value or fields", loc)
    if part.fields is not None:
        return compile_fields(part.fields, (*loc, "fields"), scope, omit_null=True).fn
    return compile_expression(part.value, (*loc, "value"), scope).fn


def _compile_response(
    name: str,
    kind: str,
    op: OperationSpec,
    shapes: dict[str, Compiled],
    spec: MapSpec,
    loc: Loc,
    scope: Scope,
) -> Callable[[Any, dict[str, Any], bool], Any]:
    response = op.response
    unwrap = compile_getter(_path(response.unwrap, (*loc, "unwrap"))) if response.unwrap else (lambda doc: doc)
    if kind == "empty":
        return lambda _body, _context, _include: None
    if op.fan_out:
        # Each element's answer is kept whole; the engine counts what was accepted.
        return lambda body, _context, _include: unwrap(body)
    shape = _shape(response.shape, kind, shapes, spec, loc)
    if kind in ("campaign", "recipients_added"):
        return lambda body, _context, include: shape(_object(unwrap(body)), include)
    if not response.items:
        raise MapError(f"operation {name} needs response.items: the path to the array of items", loc)
    items = compile_expression(response.items, (*loc, "items"), scope).fn
    total = compile_getter(_path(response.total, (*loc, "total"))) if response.total else None
    vendor_cursor = (
        compile_expression(response.next_cursor, (*loc, "next_cursor"), scope).fn
        if response.next_cursor is not None
        else None
    )
    gateway_paging = op.paging == "gateway"

    def parse_page(body: Any, context: dict[str, Any], include: bool) -> Page:
        doc = unwrap(body)
        found = items(doc)
        if not isinstance(found, list):
            raise MalformedResponse("the vendor's answer has no list of items where the map expects one")
        offset, limit = context["page"]["offset"], context["page"]["limit"]
        if gateway_paging:
            page_items = found[offset : offset + limit]
            cursor = str(offset + limit) if offset + limit < len(found) else None
        elif vendor_cursor is not None:
            page_items, token = found, vendor_cursor(doc)
            cursor = None if token in (None, "") else str(token)
        else:
            page_items, count = found, total(doc) if total else None
            more = offset + len(found) < count if isinstance(count, int) else len(found) >= limit > 0
            cursor = str(offset + len(found)) if more and found else None
        return Page([shape(_object(item), include) for item in page_items], cursor)

    return parse_page


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise MalformedResponse("the vendor's answer is not an object where the map expects one")
    return doc


def _shape(
    shape_name: str | None, kind: str, shapes: dict[str, Compiled], spec: MapSpec, loc: Loc
) -> Callable[[dict[str, Any], bool], dict[str, Any]]:
    if shape_name is None:
        raise MapError("this operation needs response.shape: the name of a shape", loc)
    if shape_name not in shapes:
        raise MapError(
            f"unknown shape {shape_name!r} (defined: {', '.join(sorted(shapes)) or 'none'})",
            (*loc, "shape"),
        )
    model = _SHAPE_MODELS[kind]
    _check_targets(spec.shapes[shape_name], model, ("shapes", shape_name))
    compiled = shapes[shape_name]
    fill = _filler(spec.shapes[shape_name], model)
    consumed = compiled.consumed
    build = compiled.fn

    def apply(doc: dict[str, Any], include_vendor_data: bool) -> dict[str, Any]:
        out = fill(build(doc))
        if include_vendor_data:
            out["vendor_data"] = without_paths(doc, consumed) or {}
        return out

    return apply


def _nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)


def _check_targets(fields: dict[str, Any], model: type[BaseModel], loc: Loc) -> None:
    for target in fields:
        steps = str(target).split(".")
        allowed = set(model.model_fields) - _ENGINE_FIELDS
        if steps[0] not in allowed:
            raise MapError(
                f"{target!r} is not a canonical field (one of: {', '.join(sorted(allowed))})",
                (*loc, target),
            )
        nested = _nested_model(model, steps[0])
        if len(steps) > 1 and (nested is None or len(steps) != 2 or steps[1] not in nested.model_fields):
            raise MapError(f"{target!r} is not a canonical field", (*loc, target))


def _filler(fields: dict[str, Any], model: type[BaseModel]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Complete a shape's output: every canonical field present, null where the vendor says nothing."""
    top = [name for name in model.model_fields if name not in _ENGINE_FIELDS]
    has_id = "id" in model.model_fields and model.model_fields["id"].is_required()
    nested = {
        name: list(sub.model_fields)
        for name in top
        if (sub := _nested_model(model, name)) is not None and any(str(t).startswith(name + ".") for t in fields)
    }

    def fill(out: dict[str, Any]) -> dict[str, Any]:
        for name, subfields in nested.items():
            sub = out.get(name)
            if isinstance(sub, dict):
                out[name] = {f: sub.get(f) for f in subfields} if any(v is not None for v in sub.values()) else None
        result = {name: out.get(name) for name in top}
        if has_id:
            if result["id"] in (None, ""):
                raise MalformedResponse("the vendor's answer has no id")
            result["id"] = str(result["id"])
        return result

    return fill
