"""Lookups: tables a map reads from the vendor itself, to turn a canonical value into the vendor's and back.

A vendor may want its own id where the canonical request has a value (a caller given as the id
of one of the account's phone numbers, not as an E.164 number). The map names a list the vendor
answers and which field of each item is which::

    lookups:
      phone_numbers:
        request: {method: GET, path: /phone-number}
        vendor: id                                # what the vendor's API takes
        canonical: {from: number, pipe: [e164]}   # what clients send and read

and converts with ``{vendor_lookup: phone_numbers}`` (canonical -> vendor, in requests) and
``{lookup: phone_numbers}`` (vendor -> canonical, in answers). The engine fetches the table
through the connection before an operation that uses it (``gateway/tables.py``) and makes it
the active one while the operation translates; this module holds no table of its own, and
``lookup_compiler.py`` compiles the ``lookups:`` section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.mapping.errors import Unconvertible

DIRECTIONS = ("lookup", "vendor_lookup")


class Tables(Protocol):
    def to_vendor(self, name: str, value: Any) -> Any: ...

    def to_canonical(self, name: str, value: Any) -> Any: ...


@dataclass
class Table:
    """One lookup's pairs, both ways; ``missed`` is set when a canonical value was not found."""

    vendor: dict[Any, Any] = field(default_factory=dict)  # canonical value -> vendor value
    canonical: dict[Any, Any] = field(default_factory=dict)  # vendor value -> canonical value
    missed: bool = False


@dataclass
class Loaded:
    """The tables an operation runs with, by lookup name."""

    tables: dict[str, Table]

    def to_vendor(self, name: str, value: Any) -> Any:
        table = self.tables[name]
        if value not in table.vendor:
            table.missed = True
            raise Unconvertible(f"{value!r} is not one of this vendor account's {name}")
        return table.vendor[value]

    def to_canonical(self, name: str, value: Any) -> Any:
        return self.tables[name].canonical.get(value)


class Placeholders:
    """Stands for tables where none is fetched (``gateway translate`` sends nothing): shows what would be looked up."""

    def to_vendor(self, name: str, value: Any) -> str:
        return f"<{name}: {value}>"

    def to_canonical(self, name: str, value: Any) -> str:
        return f"<{name} of {value}>"


_active: ContextVar[Tables | None] = ContextVar("map_lookup_tables", default=None)


@contextmanager
def using(tables: Tables | None) -> Iterator[None]:
    """Make ``tables`` the ones ``lookup`` / ``vendor_lookup`` read while translating."""
    token = _active.set(tables)
    try:
        yield
    finally:
        _active.reset(token)


def transform(direction: str, name: str) -> Callable[[Any], Any]:
    """The function of ``{lookup: name}`` or ``{vendor_lookup: name}``; the name is checked by the compiler."""

    def convert(value: Any) -> Any:
        tables = _active.get()
        if tables is None:
            raise Unconvertible(f"the vendor's {name} are not loaded")
        return tables.to_vendor(name, value) if direction == "vendor_lookup" else tables.to_canonical(name, value)

    return convert
