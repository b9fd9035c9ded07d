"""Values a map computes rather than reads: sums and differences of fields, and an element's position.

    stats.pending: {difference: [total_calls_scheduled, total_calls_dispatched]}
    to: {sum: [page.offset, page.limit]}
    id: {index: 1, pipe: [string]}       # 1 for the first element, 2 for the next…

A sum or difference is null when any of its values is null (nothing is guessed); a value that is
not a number cannot be converted. ``index`` is the position of the element being built: under
``each``, in its list; in the shape of a list operation's items, in the vendor's whole list.
Elsewhere it is null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from gateway.mapping.errors import MapError, Unconvertible

Fn = Callable[[Any], Any]
ARITHMETIC = ("sum", "difference")

_element: ContextVar[int | None] = ContextVar("map_element_index", default=None)


@contextmanager
def element(position: int) -> Iterator[None]:
    """While building the element at ``position`` (counted from 0)."""
    token = _element.set(position)
    try:
        yield
    finally:
        _element.reset(token)


def index(start: Any) -> Fn:
    if start not in (0, 1) or isinstance(start, bool):
        raise MapError(f"index takes 0 or 1 (the number of the first element), not {start!r}")
    return lambda _doc: None if (position := _element.get()) is None else position + start


def uses_index(spec: Any) -> bool:
    """Whether an expression or field map reads ``index`` anywhere inside it."""
    if isinstance(spec, dict):
        return "index" in spec or any(uses_index(value) for value in spec.values())
    if isinstance(spec, list):
        return any(uses_index(value) for value in spec)
    return False


def arithmetic(kind: str, fns: list[Fn]) -> Fn:
    """``sum``: every value added; ``difference``: the first minus the others. Non-numbers are Unconvertible."""

    def compute(doc: Any) -> int | float | None:
        values = [fn(doc) for fn in fns]
        if any(value is None for value in values):
            return None
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Unconvertible(f"expected numbers, got {repr(value)[:80]}")
        first, rest = values[0], sum(values[1:])
        return first + rest if kind == "sum" else first - rest

    return compute
