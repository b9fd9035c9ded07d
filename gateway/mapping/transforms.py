"""The closed set of named transforms a map's ``pipe`` can use.

Each transform is built once, at compile time, from its argument into a plain function of one
value. A transform raises ValueError for a value it cannot convert; the expression compiler
decides what that means (a 422 naming the field and the form the transform ``expects``, for a
client's request; null, for a vendor's answer).

*Scalar* transforms apply to each element when given a list and let None through untouched.
*Lossy* transforms do not carry the source value into the result (``count`` of a list), so the
source stays in ``vendor_data``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import phonenumbers

from gateway.mapping import lookups, times
from gateway.mapping.conditions import ConditionError, compile_condition
from gateway.mapping.errors import MapError, Unconvertible
from gateway.mapping.paths import PathError, compile_getter, parse_path
from gateway.mapping.times import text as _text

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Enum:
    """A two-way word map between a vendor's values and the canonical ones."""

    forward: Mapping[str, Any]
    reverse: Mapping[Any, str]
    unknown: Any
    ignore_case: bool

    def to_canonical(self, value: Any) -> Any:
        key = value.lower() if self.ignore_case and isinstance(value, str) else value
        return self.forward.get(key, self.unknown)

    def to_vendor(self, value: Any) -> str:
        if value not in self.reverse:
            raise Unconvertible(f"{value!r} has no equivalent at this vendor")
        return self.reverse[value]


@dataclass(frozen=True)
class Transform:
    build: Callable[[Any, Mapping[str, Enum]], Fn]
    expects: str  # the form of value it converts, for the message when a value is not in it
    scalar: bool = True
    lossy: bool = False
    needs_arg: bool = False
    sees_none: bool = False


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SEPARATORS = re.compile(r"[\s\-().]")  # what people write inside a phone number


def _no_arg(fn: Fn) -> Callable[[Any, Mapping[str, Enum]], Fn]:
    return lambda _arg, _enums: fn


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _e164(value: Any) -> str:
    text = _SEPARATORS.sub("", str(value))
    number = text if text.startswith("+") else "+" + text
    if not _E164.match(number):
        raise ValueError(f"{value!r} is not a phone number")
    return number


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", _text(value))


def _phone(value: Any) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(_text(value), None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number") from exc


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _count(value: Any) -> int:
    if not isinstance(value, list | dict):
        raise ValueError(f"cannot count {value!r}")
    return len(value)


def _flatten(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in value:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _keys(value: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in value or []:
        if isinstance(item, dict):
            seen.update(dict.fromkeys(item))
    return list(seen)


def _where(arg: Any, _enums: Mapping[str, Enum]) -> Fn:
    """The elements of a list for which a condition holds (``{where: {status: failed}}``)."""
    try:
        holds = compile_condition(arg).holds
    except ConditionError as exc:
        raise MapError(f"where: {exc}") from exc

    def keep(items: Any) -> list[Any]:
        if not isinstance(items, list):
            raise ValueError(f"expected a list, got {items!r}")
        return [item for item in items if holds(item)]

    return keep


def _get(arg: Any, _enums: Mapping[str, Enum]) -> Fn:
    """The value at a path inside the value (after ``parse_json``, say)."""
    try:
        return compile_getter(parse_path(str(arg)))
    except PathError as exc:
        raise MapError(f"get: {exc}") from exc


def _lookup(direction: str) -> Callable[[Any, Mapping[str, Enum]], Fn]:
    return lambda name, _enums: lookups.transform(direction, str(name))


def _add(arg: Any, _enums: Mapping[str, Enum]) -> Fn:
    if not isinstance(arg, int) or isinstance(arg, bool):
        raise MapError(f"add takes an integer, not {arg!r}")
    return lambda value: _integer(value) + arg


def _enum_lookup(name: Any, enums: Mapping[str, Enum]) -> Enum:
    if name not in enums:
        raise MapError(f"unknown enum {name!r} (defined: {', '.join(sorted(enums)) or 'none'})")
    return enums[name]


def _enum(name: Any, enums: Mapping[str, Enum]) -> Fn:
    return _enum_lookup(name, enums).to_canonical


def _vendor_enum(name: Any, enums: Mapping[str, Enum]) -> Fn:
    return _enum_lookup(name, enums).to_vendor


def _present(arg: Any, _enums: Mapping[str, Enum]) -> Fn:
    if not isinstance(arg, list) or len(arg) != 2:
        raise MapError("present takes a list of two values: [if present, if absent]")
    when_present, when_absent = arg
    return lambda value: when_absent if value in (None, "", [], {}) else when_present


def _csv(arg: Any, _enums: Mapping[str, Enum]) -> Fn:
    """Rows (a list of objects) to CSV text: fixed ``columns`` plus every key of ``spread``."""
    if not isinstance(arg, dict) or not isinstance(arg.get("columns"), dict):
        raise MapError("csv takes {columns: {HEADER: PATH, ...}, spread: PATH}")
    unknown = set(arg) - {"columns", "spread"}
    if unknown:
        raise MapError(f"csv: unknown key {sorted(unknown)[0]!r}")
    try:
        columns = {header: compile_getter(parse_path(path)) for header, path in arg["columns"].items()}
        spread = compile_getter(parse_path(arg["spread"])) if arg.get("spread") else None
    except PathError as exc:
        raise MapError(f"csv: {exc}") from exc

    def to_csv(rows: Any) -> str:
        extra = _keys([spread(row) for row in rows]) if spread else []
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*columns, *extra])
        for row in rows:
            spread_values = (spread(row) or {}) if spread else {}
            fixed = [get(row) for get in columns.values()]
            writer.writerow(["" if v is None else v for v in fixed + [spread_values.get(k) for k in extra]])
        return buffer.getvalue()

    return to_csv


_ISO = "an ISO 8601 date-time"
_PHONE = "a phone number with its country code"
TRANSFORMS: dict[str, Transform] = {
    "string": Transform(_no_arg(str), "any value"),
    "integer": Transform(_no_arg(_integer), "a whole number"),
    "number": Transform(_no_arg(float), "a number"),
    "lower": Transform(_no_arg(lambda v: _text(v).lower()), "text"),
    "upper": Transform(_no_arg(lambda v: _text(v).upper()), "text"),
    "e164": Transform(_no_arg(_e164), "a phone number (E.164: + and 7 to 15 digits)"),
    "digits": Transform(_no_arg(_digits), "text"),
    "utc": Transform(_no_arg(times.utc), _ISO + " (for Unix time numbers, use from_epoch)"),
    "hhmm": Transform(_no_arg(times.hhmm), 'a time of day "HH:MM" or "HH:MM:SS"'),
    "epoch": Transform(times.epoch, _ISO, needs_arg=True),
    "from_epoch": Transform(times.from_epoch, "a Unix time", needs_arg=True),
    "time_of_day": Transform(times.time_of_day, 'a time of day "HH:MM"', needs_arg=True),
    "from_time_of_day": Transform(times.from_time_of_day, "a time of day", needs_arg=True),
    "strftime": Transform(times.strftime, _ISO, needs_arg=True),
    "strptime": Transform(times.strptime, "a date-time in the vendor's format", needs_arg=True),
    "country_code": Transform(_no_arg(lambda v: f"+{_phone(v).country_code}"), _PHONE),
    "national_number": Transform(_no_arg(lambda v: str(_phone(v).national_number)), _PHONE),
    "add": Transform(_add, "a whole number", needs_arg=True),
    "enum": Transform(_enum, "a word of the vendor's", needs_arg=True),
    "vendor_enum": Transform(_vendor_enum, "a value the vendor has a word for", needs_arg=True),
    # lossy: the vendor's own value stays in vendor_data, also where the table has no entry for it
    "lookup": Transform(_lookup("lookup"), "a value the vendor listed", lossy=True, needs_arg=True),
    "vendor_lookup": Transform(_lookup("vendor_lookup"), "a value the vendor listed", needs_arg=True),
    "first": Transform(_no_arg(_first), "any value", scalar=False),
    "list": Transform(_no_arg(lambda v: v if isinstance(v, list) else [v]), "any value", scalar=False),
    "flatten": Transform(_no_arg(_flatten), "a list", scalar=False),
    "where": Transform(_where, "a list", scalar=False, lossy=True, needs_arg=True),
    "count": Transform(_no_arg(_count), "a list or an object", scalar=False, lossy=True),
    "keys": Transform(_no_arg(_keys), "a list of objects", scalar=False, lossy=True),
    "parse_json": Transform(_no_arg(orjson.loads), "JSON text", scalar=False, lossy=True),
    "get": Transform(_get, "an object or a list", scalar=False, needs_arg=True),
    "present": Transform(_present, "any value", scalar=False, lossy=True, needs_arg=True, sees_none=True),
    "csv": Transform(_csv, "a list of objects", scalar=False, needs_arg=True),
}
