"""Compiles an operation's ``response`` section: vendor answer -> canonical result (object or page)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gateway import models
from gateway.mapping import computed
from gateway.mapping.canonical import inner_model, parse_field
from gateway.mapping.expressions import Compiled, Scope, compile_expression
from gateway.mapping.paths import compile_getter, without_paths
from gateway.mapping.request import path_of
from gateway.mapping.spec import OperationSpec
from gateway.mapping.transforms import MapError

Loc = tuple[str | int, ...]
Shape = Callable[[dict[str, Any], bool], dict[str, Any]]
Parser = Callable[[Any, dict[str, Any], bool], Any]

# Canonical fields a shape may set, per result kind; the engine fills in the rest.
SHAPE_MODELS: dict[str, type[BaseModel]] = {
    "campaign": models.Campaign,
    "campaign_page": models.Campaign,
    "recipient_page": models.Recipient,
    "recipients_added": models.RecipientsAdded,
}
ENGINE_FIELDS = frozenset({"connection", "vendor", "vendor_data", "campaign_id", "submitted", "errors"})


class MalformedResponse(ValueError):
    """A vendor answer whose structure the map cannot read."""


@dataclass(frozen=True)
class Page:
    """What a list operation returns before the engine adds connection and vendor."""

    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class Shapes:
    """A map's compiled shapes, their field maps, and the problems found checking their targets."""

    compiled: dict[str, Compiled]
    specs: dict[str, dict[str, Any]]
    problems: list[MapError]
    checked: set[tuple[str, str]]

    def get(self, name: str | None, kind: str, loc: Loc) -> Shape:
        if name is None:
            raise MapError("this operation needs response.shape: the name of a shape", loc)
        if name not in self.specs:
            defined = ", ".join(sorted(self.specs)) or "none"
            raise MapError(f"unknown shape {name!r} (defined: {defined})", (*loc, "shape"))
        model = SHAPE_MODELS[kind]
        if (name, model.__name__) not in self.checked:
            self.checked.add((name, model.__name__))
            self.problems += target_problems(self.specs[name], model, ("shapes", name))
        compiled = self.compiled.get(name)
        if compiled is None:  # the shape itself failed to compile: that problem is reported already
            return lambda _doc, _include: {}
        return shaped_by(compiled, self.specs[name], model)


def compile_response(name: str, kind: str, op: OperationSpec, shapes: Shapes, loc: Loc, scope: Scope) -> Parser:
    response = op.response
    unwrap = compile_getter(path_of(response.unwrap, (*loc, "unwrap"))) if response.unwrap else (lambda doc: doc)
    if kind == "empty":
        return lambda _body, _context, _include: None
    if op.fan_out and response.shape is None:
        # Each call's answer is kept whole; the engine counts what was accepted.
        return lambda body, _context, _include: unwrap(body)
    if kind == "campaign" and op.refetch and response.shape is None:
        # The answer says nothing the map reads (e.g. {"data": null}): a fresh get of the same id answers.
        if "{id}" not in op.request.path:
            raise MapError("refetch without a shape needs {id} in the path (else a shape reads the new id)", loc)
        return lambda _body, context, _include: {"id": context["id"]}
    shape = shapes.get(response.shape, kind, loc)
    if kind in ("campaign", "recipients_added"):
        return lambda body, _context, include: shape(_object(unwrap(body)), include)
    if not response.items:
        raise MapError(f"operation {name} needs response.items: the path to the array of items", loc)
    items = compile_expression(response.items, (*loc, "items"), scope).fn
    total = compile_getter(path_of(response.total, (*loc, "total"))) if response.total else None
    vendor_cursor = (
        compile_expression(response.next_cursor, (*loc, "next_cursor"), scope).fn
        if response.next_cursor is not None
        else None
    )
    gateway_paging = op.paging == "gateway"
    counted = computed.uses_index(shapes.specs.get(response.shape))

    def shaped(position: int, item: Any, include: bool) -> dict[str, Any]:
        if not counted:
            return shape(_object(item), include)
        with computed.element(position):  # the item's place in the vendor's whole list
            return shape(_object(item), include)

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
        return Page([shaped(offset + i, item, include) for i, item in enumerate(page_items)], cursor)

    return parse_page


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise MalformedResponse("the vendor's answer is not an object where the map expects one")
    return doc


def shaped_by(compiled: Compiled, fields: dict[str, Any], model: type[BaseModel]) -> Shape:
    """The field map's output completed to ``model``; with vendor_data, every source field it did not take."""
    fill = _filler(fields, model)
    consumed = compiled.consumed
    build = compiled.fn

    def apply(doc: dict[str, Any], include_vendor_data: bool) -> dict[str, Any]:
        out = fill(build(doc))
        if include_vendor_data:
            out["vendor_data"] = without_paths(doc, consumed) or {}
        return out

    return apply


def target_problems(fields: dict[str, Any], model: type[BaseModel], loc: Loc) -> list[MapError]:
    problems = []
    for target in fields:
        _path, problem = parse_field(target, model, exclude=ENGINE_FIELDS)
        if problem is not None:
            problems.append(MapError(problem, (*loc, target)))
    return problems


def _filler(fields: dict[str, Any], model: type[BaseModel]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Complete a shape's output: every canonical field present, null where the vendor says nothing."""
    top = [name for name in model.model_fields if name not in ENGINE_FIELDS]
    has_id = "id" in model.model_fields and model.model_fields["id"].is_required()
    nested = {
        name: list(sub.model_fields)
        for name in top
        if (sub := inner_model(model.model_fields[name].annotation)[0]) is not None
        and any(str(t).startswith(name + ".") for t in fields)
    }

    # Blank objects in the model's field order, completed by unpacking: a shape only sets model fields
    # (any other target is a map error), so ``{**blank, **out}`` is every field, in order, none added.
    blank = dict.fromkeys(top)
    blank_nested = [(name, dict.fromkeys(subfields)) for name, subfields in nested.items()]

    def fill(out: dict[str, Any]) -> dict[str, Any]:
        for name, blank_sub in blank_nested:
            sub = out.get(name)
            if isinstance(sub, dict):
                values = list(sub.values())
                out[name] = {**blank_sub, **sub} if values.count(None) < len(values) else None
        result = {**blank, **out}
        if has_id:
            if result["id"] in (None, ""):
                raise MalformedResponse("the vendor's answer has no id")
            result["id"] = str(result["id"])
        return result

    return fill
