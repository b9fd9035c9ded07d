"""The closed set of named transforms a map's ``pipe`` can use.

Each transform is built once, at compile time, from its argument into a plain function of one
value. A transform raises ValueError for a value it cannot convert; the expression compiler
decides what that means (a 422 for a client's request, null for a vendor's answer).

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
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from gateway.mapping.paths import PathError, compile_getter, parse_path

Fn = Callable[[Any], Any]


class MapError(ValueError):
    """A problem in a map file, found while compiling it; ``loc`` says where in the file."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.loc = message, loc


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
            raise ValueError(f"{value!r} has no equivalent at this vendor")
        return self.reverse[value]


@dataclass(frozen=True)
class Transform:
    build: Callable[[Any, Mapping[str, Enum]], Fn]
    scalar: bool = True
    lossy: bool = False
    needs_arg: bool = False
    sees_none: bool = False


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::\d{2}(?:\.\d+)?)?$")


def _no_arg(fn: Fn) -> Callable[[Any, Mapping[str, Enum]], Fn]:
    return lambda _arg, _enums: fn


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _e164(value: Any) -> str:
    text = re.sub(r"[\s\-().]", "", str(value))
    number = text if text.startswith("+") else "+" + text
    if not _E164.match(number):
        raise ValueError(f"{value!r} is not a phone number")
    return number


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", _text(value))


def _utc(value: Any) -> str:
    moment = datetime.fromisoformat(_text(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _hhmm(value: Any) -> str:
    match = _TIME.match(_text(value).strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return f"{int(match[1]):02d}:{match[2]}"


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


TRANSFORMS: dict[str, Transform] = {
    "string": Transform(_no_arg(str)),
    "integer": Transform(_no_arg(_integer)),
    "number": Transform(_no_arg(float)),
    "lower": Transform(_no_arg(lambda v: _text(v).lower())),
    "upper": Transform(_no_arg(lambda v: _text(v).upper())),
    "e164": Transform(_no_arg(_e164)),
    "digits": Transform(_no_arg(_digits)),
    "utc": Transform(_no_arg(_utc)),
    "hhmm": Transform(_no_arg(_hhmm)),
    "country_code": Transform(_no_arg(lambda v: f"+{_phone(v).country_code}")),
    "national_number": Transform(_no_arg(lambda v: str(_phone(v).national_number))),
    "add": Transform(_add, needs_arg=True),
    "enum": Transform(_enum, needs_arg=True),
    "vendor_enum": Transform(_vendor_enum, needs_arg=True),
    "first": Transform(_no_arg(_first), scalar=False),
    "list": Transform(_no_arg(lambda v: v if isinstance(v, list) else [v]), scalar=False),
    "flatten": Transform(_no_arg(_flatten), scalar=False),
    "count": Transform(_no_arg(_count), scalar=False, lossy=True),
    "keys": Transform(_no_arg(_keys), scalar=False, lossy=True),
    "present": Transform(_present, scalar=False, lossy=True, needs_arg=True, sees_none=True),
    "csv": Transform(_csv, scalar=False, needs_arg=True),
}
