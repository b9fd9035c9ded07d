"""Conditions a map writes: ``when`` / ``unless`` on an expression, the ``where`` filter of a list,
and which rule of a map's ``events`` section a vendor payload falls under.

A condition is a path, which holds when the value there is set (not null, false, "", [] or {}),
or an object of ``path: value`` pairs that must all hold: the value there equals the one given,
or one of them when a list is given (null matches a missing value)::

    when: has_more
    when: {params.agent_type: workflow}
    where: {status: [failed, cancelled]}
    when: {eventType: call.ended}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.mapping.paths import Path, PathError, compile_getter, parse_path

Predicate = Callable[[Any], bool]
_EMPTY = ("", [], {})
_SCALAR = (str, int, float, bool, type(None))


class ConditionError(ValueError):
    """A condition that does not follow the syntax above."""


@dataclass(frozen=True)
class Condition:
    holds: Predicate
    paths: tuple[Path, ...]  # what it reads, so `check` can name a misspelt one


def compile_condition(spec: Any) -> Condition:
    """The condition as a predicate over one document."""
    if isinstance(spec, str):
        path = _path(spec)
        get = compile_getter(path)
        return Condition(lambda doc: is_set(get(doc)), (path,))
    if not isinstance(spec, dict) or not spec:
        raise ConditionError("a condition is a path, or an object of path: value (or [values])")
    paths = tuple(_path(str(text)) for text in spec)
    checks = [_check(path, wanted) for path, wanted in zip(paths, spec.values(), strict=True)]
    if len(checks) == 1:
        return Condition(checks[0], paths)
    return Condition(lambda doc: all(check(doc) for check in checks), paths)


def is_set(value: Any) -> bool:
    """Not null, false, "", [] or {} (0 is a value: ``0 == False`` must not count)."""
    return value is not None and value is not False and value not in _EMPTY


def _check(path: Path, wanted: Any) -> Predicate:
    get = compile_getter(path)
    options = wanted if isinstance(wanted, list) else [wanted]
    if not options or not all(isinstance(option, _SCALAR) for option in options):
        raise ConditionError(f"compare with a value or a list of values, not {wanted!r}")
    # bool is an int in Python: True must not match 1
    typed = [(type(option), option) for option in options]
    if len(typed) == 1:
        [(kind, option)] = typed
        return lambda doc: (value := get(doc)) == option and type(value) is kind
    return lambda doc: (type(value := get(doc)), value) in typed


def _path(text: str) -> Path:
    try:
        return parse_path(text)
    except PathError as exc:
        raise ConditionError(str(exc)) from exc
