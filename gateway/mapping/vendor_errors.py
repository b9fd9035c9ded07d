"""A vendor's error, read for a person: its message as text, and the fields it refused by canonical name.

A map says where its vendor names refused fields (``errors.fields``); the compiler knows, for every
vendor field an operation sends, the canonical field it came from. Together they turn a vendor's
``phoneNumber is required`` into ``{"field": "from_number", "message": "is required"}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gateway.mapping.canonical import field_text
from gateway.mapping.paths import EVERY, Path, PathError, compile_getter, parse_path
from gateway.mapping.request import path_of
from gateway.mapping.spec import FieldErrorSpec
from gateway.mapping.transforms import MapError

Loc = tuple[str | int, ...]
FieldErrors = Callable[[Any], list[tuple[str, str]]]


def as_text(value: Any) -> str:
    """A vendor's message as text: ``{"status": ["cannot pause"]}`` -> ``status: cannot pause``."""
    if isinstance(value, dict):
        return "; ".join(f"{key}: {as_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(as_text(item) for item in value)
    return str(value)


def compile_field_errors(specs: list[FieldErrorSpec], loc: Loc) -> FieldErrors:
    """A function from a vendor's error body to its (field, message) pairs, trying each form in turn."""
    readers = [_reader(spec, (*loc, i)) for i, spec in enumerate(specs)]

    def read(body: Any) -> list[tuple[str, str]]:
        for reader in readers:
            found = reader(body)
            if found:
                return found
        return []

    return read


def _reader(spec: FieldErrorSpec, loc: Loc) -> FieldErrors:
    forms = [name for name in ("object", "items", "text") if getattr(spec, name) is not None]
    if not forms and spec.field is not None:
        forms = ["field"]
    if len(forms) != 1:
        raise MapError("a field error form has one of object, items, field (with message) or text (with pattern)", loc)
    drop = tuple(spec.drop)
    if forms == ["object"]:
        get = compile_getter(path_of(spec.object or "", (*loc, "object")))
        return lambda body: (
            [(_name(key, drop), as_text(value)) for key, value in (get(body) or {}).items() if isinstance(key, str)]
            if isinstance(get(body), dict)
            else []
        )
    if forms == ["text"]:
        return _text_reader(spec, loc)
    if spec.field is None or spec.message is None:
        raise MapError("items and field need both field and message paths", loc)
    field, message = (
        compile_getter(path_of(spec.field, (*loc, "field"))),
        compile_getter(path_of(spec.message, (*loc, "message"))),
    )
    if forms == ["field"]:
        return lambda body: _pair(field(body), message(body), drop)
    items = compile_getter(path_of(spec.items or "", (*loc, "items")))
    return lambda body: (
        [
            pair
            for item in (items(body) or [])
            if isinstance(item, dict)
            for pair in _pair(field(item), message(item), drop)
        ]
        if isinstance(items(body), list)
        else []
    )


def _text_reader(spec: FieldErrorSpec, loc: Loc) -> FieldErrors:
    if spec.pattern is None:
        raise MapError("text needs a pattern with the groups field and message", loc)
    try:
        pattern = re.compile(spec.pattern)
    except re.error as exc:
        raise MapError(f"pattern is not a regular expression: {exc}", (*loc, "pattern")) from exc
    if not {"field", "message"} <= set(pattern.groupindex):
        raise MapError("pattern needs the named groups field and message", (*loc, "pattern"))
    get = compile_getter(path_of(spec.text or "", (*loc, "text")))

    def read(body: Any) -> list[tuple[str, str]]:
        text = get(body)
        found = pattern.match(text) if isinstance(text, str) else None
        return [(found["field"], found["message"])] if found else []

    return read


def _pair(field: Any, message: Any, drop: tuple[str, ...]) -> list[tuple[str, str]]:
    """One refusal; a field of no steps (after ``drop``) is the body as a whole, named ``body``."""
    if field is None or message in (None, ""):
        return []
    text = _name(field, drop)
    said = as_text(message)
    return [(text, said.removeprefix(f"{text}: "))]


def _name(field: Any, drop: tuple[str, ...]) -> str:
    """A field named by a text or by a list of steps (``["body", "agent", 0]``), leading ``drop`` steps removed."""
    if isinstance(field, list):
        steps = list(field)
        while steps and steps[0] in drop:
            steps.pop(0)
        return field_text(tuple(steps)) or "body"
    return str(field) or "body"


def canonical_name(vendor_fields: list[tuple[Path, Path]], vendor_field: str) -> str | None:
    """The canonical field a vendor field came from: ``recipients[1].phoneNumber`` -> ``recipients[1].phone_number``."""
    try:
        steps = parse_path(vendor_field)
    except PathError:
        return None
    for target, source in vendor_fields:
        indexes = _match(target, steps)
        if indexes is not None:
            filled = iter(indexes)
            return field_text(tuple(next(filled, EVERY) if step == EVERY else step for step in source))
    # an object holding several fields (``allowed_schedule``): what their sources have in common (``schedule``)
    inside = [source for target, source in vendor_fields if _match(target[: len(steps)], steps) == []]
    common = inside[0][: min(map(len, inside))] if inside else ()
    for source in inside:
        while source[: len(common)] != common:
            common = common[:-1]
    return field_text(common) if common and EVERY not in common else None


def _match(pattern: Path, steps: Path) -> list[int] | None:
    """The indexes ``steps`` has where ``pattern`` has ``*``, or None when they do not match."""
    if len(pattern) != len(steps):
        return None
    indexes = []
    for want, got in zip(pattern, steps, strict=True):
        if want == EVERY and isinstance(got, int):
            indexes.append(got)
        elif want != got:
            return None
    return indexes
