"""Transforms between the canonical forms of time and a vendor's.

Canonical moments are ISO 8601 text in UTC (``2026-01-01T09:00:00Z``) and times of day are
``"HH:MM"``. Vendors also write Unix time (seconds or milliseconds), other date-time texts, and
times of day as minutes or seconds since midnight or ``"HH:MM:SS"``. Each pair converts one way
(``epoch``: canonical -> vendor) and back (``from_epoch``: vendor -> canonical).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.mapping.errors import MapError, Unconvertible

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = {"seconds": timedelta(seconds=1), "milliseconds": timedelta(milliseconds=1)}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")
_DAY_FORMS = ("minutes", "seconds", "hh:mm:ss")
MINUTES_A_DAY = 24 * 60


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def moment(value: Any) -> datetime:
    """An ISO 8601 date-time (naive means UTC), as an aware datetime."""
    parsed = datetime.fromisoformat(text(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    """The canonical text of a moment: UTC, ``Z``, milliseconds only when there are any."""
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def utc(value: Any) -> str:
    return iso(moment(value))


def hhmm(value: Any) -> str:
    hour, minute, _second = _clock(value)
    return f"{hour:02d}:{minute:02d}"


def _clock(value: Any) -> tuple[int, int, int]:
    match = _TIME.match(text(value).strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def _whole(value: Any, what: str) -> int:
    """A whole number (an integral float or a numeric string too); anything else is Unconvertible."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    except (ValueError, OverflowError):
        raise Unconvertible(f"expected {what}, got {value!r}") from None


def _unit(arg: Any, name: str) -> timedelta:
    if arg not in _UNITS:
        raise MapError(f"{name} takes seconds or milliseconds, not {arg!r}")
    return _UNITS[arg]


def epoch(arg: Any, _names: Mapping[str, Any]) -> Any:
    """ISO 8601 -> Unix time as an integer (seconds or milliseconds; a fraction is cut off)."""
    unit = _unit(arg, "epoch")
    return lambda value: (moment(value) - _EPOCH) // unit


def from_epoch(arg: Any, _names: Mapping[str, Any]) -> Any:
    """Unix time (a number, or digits as text) -> ISO 8601 in UTC."""
    unit = _unit(arg, "from_epoch")
    what = f"a Unix time in {arg}"

    def convert(value: Any) -> str:
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            number = float(value) if isinstance(value, str) else value
            if not math.isfinite(number):
                raise ValueError
            return iso(_EPOCH + unit * number)
        except (ValueError, OverflowError):
            raise Unconvertible(f"expected {what}, got {value!r}") from None

    return convert


def _day_form(arg: Any, name: str) -> str:
    if arg not in _DAY_FORMS:
        raise MapError(f"{name} takes one of {', '.join(_DAY_FORMS)}, not {arg!r}")
    return str(arg)


def time_of_day(arg: Any, _names: Mapping[str, Any]) -> Any:
    """``"HH:MM"`` -> minutes or seconds since midnight, or ``"HH:MM:SS"``."""
    form = _day_form(arg, "time_of_day")

    def convert(value: Any) -> int | str:
        hour, minute, _second = _clock(value)
        if form == "hh:mm:ss":
            return f"{hour:02d}:{minute:02d}:00"
        minutes = hour * 60 + minute
        return minutes if form == "minutes" else minutes * 60

    return convert


def from_time_of_day(arg: Any, _names: Mapping[str, Any]) -> Any:
    """Minutes or seconds since midnight, or ``"HH:MM:SS"`` -> ``"HH:MM"`` (seconds are cut off)."""
    form = _day_form(arg, "from_time_of_day")
    if form == "hh:mm:ss":
        return hhmm
    per_minute = 1 if form == "minutes" else 60
    last = MINUTES_A_DAY * per_minute - 1
    what = f"{form} since midnight, 0 to {last}"

    def convert(value: Any) -> str:
        number = _whole(value, what)
        if not 0 <= number <= last:
            raise Unconvertible(f"expected {what}, got {value!r}")
        return f"{number // per_minute // 60:02d}:{number // per_minute % 60:02d}"

    return convert


def _format(arg: Any, name: str) -> str:
    if not isinstance(arg, str) or "%" not in arg:
        raise MapError(f"{name} takes a strftime format such as '%Y-%m-%d %H:%M:%S', not {arg!r}")
    return arg


def strftime(arg: Any, _names: Mapping[str, Any]) -> Any:
    """ISO 8601 -> the moment in UTC, written with a strftime format."""
    layout = _format(arg, "strftime")
    return lambda value: moment(value).astimezone(UTC).strftime(layout)


def strptime(arg: Any, _names: Mapping[str, Any]) -> Any:
    """Text in a strptime format (no offset means UTC) -> ISO 8601 in UTC."""
    layout = _format(arg, "strptime")

    def convert(value: Any) -> str:
        parsed = datetime.strptime(text(value).strip(), layout)
        return iso(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC))

    return convert
