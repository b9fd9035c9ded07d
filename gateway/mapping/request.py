"""Compiles an operation's ``request`` section: the function building the vendor request, and what it reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from gateway.mapping.expressions import Compiled, Scope, TranslationError, compile_expression, compile_fields
from gateway.mapping.paths import EVERY, Path, PathError, compile_getter, parse_path
from gateway.mapping.spec import PartSpec, RequestSpec
from gateway.mapping.transforms import Fn, MapError

Loc = tuple[str | int, ...]
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
Files = list[tuple[str, tuple[str, bytes, str]]]


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    path: str
    query: dict[str, Any]
    json: Any = None
    data: dict[str, str] | None = None
    files: Files | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledRequest:
    """The builder, and the context paths it carries to the vendor (``consumed``) or reads at all (``reads``)."""

    build: Callable[[dict[str, Any]], UpstreamRequest]
    consumed: list[Path]
    reads: list[tuple[Path, Loc]]
    query_consumed: list[Path]
    json_object: bool  # the body is a field map: an object that vendor_options can be merged into
    body_pairs: list[tuple[Path, Path]]  # (path in the JSON body, context path it carries whole)
    options_at: Callable[[dict[str, Any]], dict[str, Any]]  # the object of that body they merge into


def path_of(text: str, loc: Loc) -> Path:
    try:
        return parse_path(text)
    except PathError as exc:
        raise MapError(str(exc), loc) from exc


def render_template(template: str, context: dict[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(compile_getter(parse_path(m[1]))(context) or ""), template)


def encode_segment(value: Any) -> str:
    """Percent-encode one path segment so that no value can reach another upstream path."""
    text = quote(str(value), safe="")
    return "%2E" * len(text) if set(text) == {"."} else text


def compile_request(spec: RequestSpec, loc: Loc, scope: Scope) -> CompiledRequest:
    path, placeholders = _compile_path_template(spec.path, (*loc, "path"))
    query = compile_fields(spec.query, (*loc, "query"), scope, omit_null=True)
    if sum(x is not None for x in (spec.body, spec.body_from, spec.multipart)) > 1:
        raise MapError("a request has one of body, body_from or multipart", loc)
    body: Compiled | None = None
    if spec.body is not None:
        body = compile_fields(spec.body, (*loc, "body"), scope, omit_null=True)
    elif spec.body_from is not None:
        body = compile_expression(spec.body_from, (*loc, "body_from"), scope)
    parts = _compile_multipart(spec.multipart, (*loc, "multipart"), scope) if spec.multipart else None
    method, headers = spec.method, spec.headers
    pieces = [query, *([body] if body else []), *(parts[1] if parts else [])]

    def build(context: dict[str, Any]) -> UpstreamRequest:
        request = UpstreamRequest(method=method, path=path(context), query=query.fn(context), headers=headers)
        if body is not None:
            return _replace(request, json=body.fn(context))
        if parts is not None:
            data, files = parts[0](context)
            return _replace(request, data=data, files=files)
        return request

    return CompiledRequest(
        build=build,
        consumed=[*placeholders, *(p for piece in pieces for p in piece.consumed)],
        reads=[*((p, (*loc, "path")) for p in placeholders), *(r for piece in pieces for r in piece.reads)],
        query_consumed=query.consumed,
        json_object=spec.body is not None,
        body_pairs=body.pairs if body is not None else [],
        options_at=_compile_options_target(spec.vendor_options, (*loc, "vendor_options")),
    )


def _replace(request: UpstreamRequest, **changes: Any) -> UpstreamRequest:
    return UpstreamRequest(**{**request.__dict__, **changes})


def _compile_path_template(template: str, loc: Loc) -> tuple[Fn, list[Path]]:
    if not template.startswith("/"):
        raise MapError("a request path starts with /", loc)
    pieces: list[str | Fn] = []
    paths: list[Path] = []
    position = 0
    for match in PLACEHOLDER.finditer(template):
        paths.append(path_of(match[1], loc))
        pieces.append(template[position : match.start()])
        pieces.append(compile_getter(paths[-1]))
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

    return render, paths


def _compile_multipart(
    parts: dict[str, PartSpec], loc: Loc, scope: Scope
) -> tuple[Callable[[dict[str, Any]], tuple[dict[str, str], Files]], list[Compiled]]:
    compiled = [(name, part, _compile_part(part, (*loc, name), scope)) for name, part in parts.items()]

    def build(context: dict[str, Any]) -> tuple[dict[str, str], Files]:
        data: dict[str, str] = {}
        files: Files = []
        for name, part, piece in compiled:
            value = piece.fn(context)
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            if part.filename:
                content_type = part.content_type or "application/octet-stream"
                files.append((name, (part.filename, text.encode(), content_type)))
            else:
                data[name] = text
        return data, files

    return build, [piece for _name, _part, piece in compiled]


def _compile_part(part: PartSpec, loc: Loc, scope: Scope) -> Compiled:
    if (part.value is None) == (part.fields is None):
        raise MapError("a multipart field has either value or fields", loc)
    if part.fields is not None:
        return compile_fields(part.fields, (*loc, "fields"), scope, omit_null=True)
    return compile_expression(part.value, (*loc, "value"), scope)


def _compile_options_target(text: str | None, loc: Loc) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The object of a JSON body vendor_options merge into, made where the body has none yet."""
    if text is None:
        return lambda body: body
    path = path_of(text, loc)
    if EVERY in path:
        raise MapError("vendor_options goes into one object: a path without [*]", loc)

    def target(body: dict[str, Any]) -> dict[str, Any]:
        node: Any = body
        for step in path:
            if isinstance(step, str) and isinstance(node, dict):
                node = node.setdefault(step, {})
            elif isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node):
                node = node[step]
            else:
                node = None
                break
        if not isinstance(node, dict):
            raise TranslationError("vendor_options", f"the request has no object at {text} to take them")
        return node

    return target
