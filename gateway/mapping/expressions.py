"""Compiles a map's expressions and field maps into plain functions, once, at start-up.

An expression says where a value comes from and how it is converted:

    name                                   # a path (shorthand for {from: name})
    {from: caller_id_sets[*].phone_numbers[*], pipe: [e164]}
    {const: live}
    {coalesce: [body.start_at, body.schedule.start_at], pipe: [utc]}
    {concat: [recipients.pending, recipients.failed]}   # lists joined into one
    {from: body.recipients, each: {phoneNumber: phone_number, name: name}}
    {from: max_dial_attempts, default: 1}
    {difference: [total_calls_scheduled, total_calls_dispatched]}   # see computed.py
    {from: next_doc, when: has_more}                                 # see conditions.py

A field map is an object of ``target.path: expression``; it builds a new document.
Each compiled piece also reports the source paths it carried over (``consumed``), so what a
vendor sent that no field took can be kept in ``vendor_data`` and what a client sent that no
field took is known to be unsupported; and every source path it reads at all (``reads``), so
``gateway check`` can name a misspelt one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping import computed
from gateway.mapping.conditions import ConditionError, compile_condition
from gateway.mapping.errors import Unconvertible
from gateway.mapping.paths import EVERY, Path, PathError, compile_getter, parse_path, set_at
from gateway.mapping.transforms import TRANSFORMS, Enum, Fn, MapError

SOURCE_KEYS = ("from", "const", "coalesce", "concat", "sum", "difference", "index")
EXPRESSION_KEYS = (*SOURCE_KEYS, "each", "pipe", "default", "when", "unless")
Loc = tuple[str | int, ...]
_SHOWN = 80  # characters of a value a conversion message quotes


class TranslationError(ValueError):
    """A value that cannot be converted; ``field`` names where it came from, ``message`` the form expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Scope:
    """What compiling needs besides the expression: the map's enums and the direction.

    ``strict`` is the request direction: a value that cannot be converted is the client's
    error. Otherwise (a vendor's answer) such a value becomes null.
    """

    enums: Mapping[str, Enum]
    strict: bool


@dataclass
class Compiled:
    fn: Callable[[Any], Any]
    consumed: list[Path] = field(default_factory=list)
    reads: list[tuple[Path, Loc]] = field(default_factory=list)  # each source path read, and where it is written
    # (target path inside the built value, source path) for each value carried over whole: so a vendor's
    # error naming a field it got can be named back by the canonical field it came from
    pairs: list[tuple[Path, Path]] = field(default_factory=list)


def compile_expression(spec: Any, loc: Loc, scope: Scope) -> Compiled:
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, dict):
        raise MapError("an expression is a path or an object with from, const or coalesce", loc)
    for key in spec:
        if key not in EXPRESSION_KEYS:
            raise MapError(
                f"unknown key {key!r} (an expression takes {', '.join(EXPRESSION_KEYS)})",
                (*loc, key),
            )
    source = _compile_source(spec, loc, scope)
    label = ".".join(map(str, source.consumed[0])) if source.consumed else "value"
    if "each" in spec:
        source = _compile_each(source, spec["each"], (*loc, "each"), scope)
    if "pipe" in spec:
        fn, lossy = _compile_pipe(spec["pipe"], (*loc, "pipe"), scope, label)
        kept = ([], []) if lossy else (source.consumed, source.pairs)
        source = Compiled(_chain(source.fn, fn), kept[0], source.reads, kept[1])
    if "default" in spec:
        source = Compiled(_with_default(source.fn, spec["default"]), source.consumed, source.reads, source.pairs)
    for key in ("when", "unless"):
        if key in spec:
            source = _conditional(source, key, spec[key], (*loc, key))
    return source


def _conditional(source: Compiled, key: str, spec: Any, loc: Loc) -> Compiled:
    """The value only where the condition holds (``when``) or does not (``unless``); null otherwise."""
    try:
        condition = compile_condition(spec)
    except ConditionError as exc:
        raise MapError(f"{key}: {exc}", loc) from exc
    fn, holds, wanted = source.fn, condition.holds, key == "when"
    reads = source.reads + [(path, loc) for path in condition.paths]
    return Compiled(lambda doc: fn(doc) if holds(doc) is wanted else None, source.consumed, reads, source.pairs)


def compile_fields(spec: Any, loc: Loc, scope: Scope, *, omit_null: bool) -> Compiled:
    """A field map: each ``target.path: expression`` evaluated against one source document."""
    if not isinstance(spec, dict):
        raise MapError("a field map is an object of target: expression", loc)
    entries: list[tuple[Path, Fn]] = []
    consumed: list[Path] = []
    reads: list[tuple[Path, Loc]] = []
    pairs: list[tuple[Path, Path]] = []
    for target, expression in spec.items():
        try:
            target_path = parse_path(str(target), allow_every=False)
        except PathError as exc:
            raise MapError(str(exc), (*loc, target)) from exc
        if isinstance(target_path[0], int):
            raise MapError(f"target {target!r} must start with a field name", (*loc, target))
        clash = next((path for path, _fn in entries if _overlaps(path, target_path)), None)
        if clash is not None:
            raise MapError(f"target {target!r} overlaps target {_text(clash)!r}", (*loc, target))
        compiled = compile_expression(expression, (*loc, target), scope)
        entries.append((target_path, compiled.fn))
        consumed.extend(compiled.consumed)
        reads.extend(compiled.reads)
        pairs.extend(((*target_path, *inner), source) for inner, source in compiled.pairs)
    return Compiled(_builder(entries, omit_null), consumed, reads, pairs)


def _overlaps(a: Path, b: Path) -> bool:
    """One target is the other, or inside it (``a`` and ``a.b``): the two would overwrite each other."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _text(path: Path) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")


def _flat_builder(entries: list[tuple[str, Fn]], omit_null: bool) -> Fn:
    def build(doc: Any) -> dict[str, Any]:
        out = {}
        for key, fn in entries:
            value = fn(doc)
            if value is not None or not omit_null:
                out[key] = value
        return out

    return build


def _builder(entries: list[tuple[Path, Fn]], omit_null: bool) -> Fn:
    """The object a field map builds. Nested targets (``timeRange.days``) become a tree of builders,
    so no target path is walked per value; targets with a list index are written along their path."""
    if any(isinstance(step, int) for path, _fn in entries for step in path):
        return _path_builder(entries, omit_null)
    groups: dict[str, list[tuple[Path, Fn]]] = {}
    for path, fn in entries:
        groups.setdefault(str(path[0]), []).append((path[1:], fn))
    if all(rest == () for items in groups.values() for rest, _fn in items):
        return _flat_builder([(key, fn) for key, [(_rest, fn)] in groups.items()], omit_null)
    parts = [
        (key, items[0][1], False) if items[0][0] == () else (key, _builder(items, omit_null), True)
        for key, items in groups.items()
    ]

    def build(doc: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, fn, nested in parts:
            value = fn(doc)
            if nested:
                if value or not omit_null:
                    out[key] = value
            elif value is not None or not omit_null:
                out[key] = value
        return out

    return build


def _path_builder(entries: list[tuple[Path, Fn]], omit_null: bool) -> Fn:
    def build(doc: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, fn in entries:
            value = fn(doc)
            if value is not None or not omit_null:
                set_at(out, path, value)
        return out

    return build


def _compile_source(spec: dict[str, Any], loc: Loc, scope: Scope) -> Compiled:
    given = [key for key in SOURCE_KEYS if key in spec]
    if len(given) != 1:
        raise MapError(f"an expression needs exactly one of {', '.join(SOURCE_KEYS)}", loc)
    kind = given[0]
    if kind == "const":
        value = spec["const"]
        return Compiled(lambda _doc: value)
    if kind in ("coalesce", "concat"):
        return _compile_alternatives(kind, spec[kind], (*loc, kind), scope)
    if kind in computed.ARITHMETIC:
        return _compile_arithmetic(kind, spec[kind], (*loc, kind), scope)
    if kind == "index":
        try:
            return Compiled(computed.index(spec["index"]))
        except MapError as exc:
            raise MapError(exc.message, (*loc, "index")) from exc
    try:
        path = parse_path(spec["from"])
    except PathError as exc:
        raise MapError(str(exc), (*loc, "from")) from exc
    return Compiled(compile_getter(path), [path], [(path, (*loc, "from"))], [((), path)])


def _compile_alternatives(kind: str, options: Any, loc: Loc, scope: Scope) -> Compiled:
    """``coalesce``: the first value that is not null. ``concat``: every list joined."""
    if not isinstance(options, list) or not options:
        raise MapError(f"{kind} takes a list of expressions", loc)
    parts = [compile_expression(option, (*loc, i), scope) for i, option in enumerate(options)]
    fns = [part.fn for part in parts]

    def first_present(doc: Any) -> Any:
        for fn in fns:
            value = fn(doc)
            if value is not None:
                return value
        return None

    def joined(doc: Any) -> list[Any] | None:
        lists = [value for fn in fns if isinstance(value := fn(doc), list)]
        return [item for found in lists for item in found] if lists else None

    fn = first_present if kind == "coalesce" else joined
    return Compiled(
        fn,
        [path for part in parts for path in part.consumed],
        [read for part in parts for read in part.reads],
        [pair for part in parts for pair in part.pairs],
    )


def _compile_arithmetic(kind: str, options: Any, loc: Loc, scope: Scope) -> Compiled:
    """``sum`` / ``difference`` of two or more expressions (see computed.py)."""
    if not isinstance(options, list) or len(options) < 2:
        raise MapError(f"{kind} takes a list of two or more expressions", loc)
    parts = [compile_expression(option, (*loc, i), scope) for i, option in enumerate(options)]
    consumed = [path for part in parts for path in part.consumed]
    label = ".".join(map(str, consumed[0])) if consumed else "value"
    compute = computed.arithmetic(kind, [part.fn for part in parts])
    fn = _guard(compute, "numbers", scalar=False, sees_none=True, strict=scope.strict, label=label)
    return Compiled(fn, consumed, [read for part in parts for read in part.reads])


def _compile_each(source: Compiled, spec: Any, loc: Loc, scope: Scope) -> Compiled:
    item = compile_fields(spec, loc, scope, omit_null=scope.strict)
    build = item.fn
    where = ".".join(map(str, source.consumed[0])) if source.consumed else "value"
    counted = computed.uses_index(spec)

    def build_at(position: int, element: Any) -> Any:
        try:
            if not counted:
                return build(element)
            with computed.element(position):
                return build(element)
        except TranslationError as exc:  # name the element: recipients[2].phone_number
            raise TranslationError(f"{where}[{position}].{exc.field}", exc.message) from exc

    def each(doc: Any) -> Any:
        items = source.fn(doc)
        if not isinstance(items, list):
            return None
        return [build_at(position, element) for position, element in enumerate(items)]

    consumed = [(*base, EVERY, *sub) for base in source.consumed for sub in item.consumed]
    reads = source.reads + [((*base, EVERY, *sub), where) for base, _ in source.reads for sub, where in item.reads]
    pairs = [((EVERY, *inner), (*base, EVERY, *sub)) for _, base in source.pairs for inner, sub in item.pairs]
    return Compiled(each, consumed, reads, pairs)


def _compile_pipe(steps: Any, loc: Loc, scope: Scope, label: str) -> tuple[Fn, bool]:
    if not isinstance(steps, list) or not steps:
        raise MapError("pipe takes a list of transforms", loc)
    fns: list[Fn] = []
    lossy = False
    for i, step in enumerate(steps):
        name, arg = _step_name_and_arg(step, (*loc, i))
        transform = TRANSFORMS.get(name)
        if transform is None:
            known = ", ".join(sorted(TRANSFORMS))
            raise MapError(f"unknown transform {name!r} (known: {known})", (*loc, i))
        if transform.needs_arg and arg is None:
            raise MapError(f"transform {name!r} needs an argument: {{{name}: ...}}", (*loc, i))
        try:
            fn = transform.build(arg, scope.enums)
        except MapError as exc:
            raise MapError(exc.message, (*loc, i)) from exc
        fns.append(_guard(fn, transform.expects, transform.scalar, transform.sees_none, scope.strict, label))
        lossy = lossy or transform.lossy
    return _chain(*fns), lossy


def _step_name_and_arg(step: Any, loc: Loc) -> tuple[str, Any]:
    if isinstance(step, str):
        return step, None
    if isinstance(step, dict) and len(step) == 1:
        [(name, arg)] = step.items()
        return str(name), arg
    raise MapError("a transform is a name or {name: argument}", loc)


def _guard(fn: Fn, expects: str, scalar: bool, sees_none: bool, strict: bool, label: str) -> Fn:
    """Apply ``fn`` per element for scalar transforms; decide what a failed conversion means.

    In a request it is the client's error, naming the field and the form expected (never Python's
    own message); in a vendor's answer the value becomes null.
    """

    def convert(value: Any) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            if strict:
                said = str(exc) if isinstance(exc, Unconvertible) else f"expected {expects}, got {_shown(value)}"
                raise TranslationError(label, said) from exc
            return None

    def each_element(values: list[Any]) -> list[Any] | None:
        """Elements that cannot be converted are left out; a list with none left is null."""
        converted = [out for v in values if v is not None and (out := convert(v)) is not None]
        return converted if converted or not values else None

    if scalar:
        return lambda value: (
            None if value is None else each_element(value) if isinstance(value, list) else convert(value)
        )
    if sees_none:
        return convert
    return lambda value: None if value is None else convert(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _chain(*fns: Fn) -> Fn:
    if len(fns) == 1:
        return fns[0]

    def chained(value: Any) -> Any:
        for fn in fns:
            value = fn(value)
        return value

    return chained


def _with_default(fn: Fn, default: Any) -> Fn:
    def defaulted(doc: Any) -> Any:
        value = fn(doc)
        return default if value is None else value

    return defaulted
