"""Compiles a map's ``lookups:`` section (see lookups.py) and finds which operations use them, where."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.mapping.errors import MapError
from gateway.mapping.expressions import Scope, compile_expression
from gateway.mapping.lookups import DIRECTIONS, Table
from gateway.mapping.paths import compile_getter
from gateway.mapping.request import UpstreamRequest, compile_request, path_of
from gateway.mapping.spec import LookupSpec, MapSpec, OperationSpec

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class CompiledLookup:
    name: str
    ttl: float
    build_request: Callable[[dict[str, Any]], UpstreamRequest]
    table: Callable[[Any], Table]  # the vendor's answer -> the table


def compile_lookup(name: str, spec: LookupSpec, loc: Loc, scope: Scope) -> CompiledLookup:
    request = compile_request(spec.request, (*loc, "request"), scope)
    for path, where in request.reads:
        if path[:1] != ("params",):
            raise MapError("a lookup's request reads only params.*: it runs before any request", where)
    items = compile_getter(path_of(spec.items, (*loc, "items"))) if spec.items else (lambda answer: answer)
    vendor = compile_expression(spec.vendor, (*loc, "vendor"), scope).fn
    canonical = compile_expression(spec.canonical, (*loc, "canonical"), scope).fn

    def table(answer: Any) -> Table:
        found = Table()
        listed = items(answer)
        for item in listed if isinstance(listed, list) else []:
            theirs, ours = vendor(item), canonical(item)
            if theirs is not None and ours is not None:
                found.vendor.setdefault(ours, theirs)
                found.canonical.setdefault(theirs, ours)
        return found

    return CompiledLookup(name, spec.ttl_seconds, request.build, table)


def uses(spec: Any, loc: Loc) -> list[tuple[str, Loc]]:
    """Every ``{lookup: NAME}`` / ``{vendor_lookup: NAME}`` step in the pipes of a spec, with where it is written."""
    found: list[tuple[str, Loc]] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "pipe" and isinstance(value, list):
                found += [
                    (str(step[direction]), (*loc, "pipe", i, direction))
                    for i, step in enumerate(value)
                    if isinstance(step, dict) and len(step) == 1
                    for direction in DIRECTIONS
                    if direction in step
                ]
            found += uses(value, (*loc, key))
    elif isinstance(spec, list):
        for i, value in enumerate(spec):
            found += uses(value, (*loc, i))
    return found


def lookups_of(name: str, op: OperationSpec, spec: MapSpec, problems: list[MapError]) -> tuple[str, ...]:
    """The lookups the operation's request and answer (its shape included) use; an unknown one is a problem."""
    loc: Loc = ("operations", name)
    found = uses(op.request.model_dump(exclude_unset=True), (*loc, "request"))
    found += uses(op.response.model_dump(exclude_unset=True), (*loc, "response"))
    if op.response.shape in spec.shapes:
        found += uses(spec.shapes[op.response.shape], ("shapes", op.response.shape))
    for lookup, where in found:
        if lookup not in spec.lookups:
            defined = ", ".join(sorted(spec.lookups)) or "none"
            problems.append(MapError(f"unknown lookup {lookup!r} (defined: {defined})", where))
    return tuple(sorted({lookup for lookup, _ in found if lookup in spec.lookups}))
