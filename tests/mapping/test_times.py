"""Time forms both ways: Unix time, times of day, and date-time texts in a vendor's own format."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.mapping.expressions import Scope, TranslationError, compile_expression
from gateway.mapping.transforms import MapError

REQUEST, ANSWER = Scope({}, strict=True), Scope({}, strict=False)


def piped(step: Any, value: Any, scope: Scope = ANSWER) -> Any:
    """``{from: v, pipe: [step]}`` as a map runs it."""
    return compile_expression({"from": "v", "pipe": [step]}, ("t",), scope).fn({"v": value})


def refused(step: Any, value: Any) -> str:
    """The message a client reads when its value cannot be converted (a request); an answer gives null."""
    assert piped(step, value, ANSWER) is None
    with pytest.raises(TranslationError) as caught:
        piped(step, value, REQUEST)
    assert caught.value.field == "v"
    return caught.value.message


# ---------------------------------------------------------------------------------------------- Unix time


@pytest.mark.parametrize(
    ("unit", "iso", "number"),
    [
        ("seconds", "1970-01-01T00:00:00Z", 0),
        ("milliseconds", "1970-01-01T00:00:00Z", 0),
        ("seconds", "2024-04-02T19:33:20Z", 1712086400),
        ("milliseconds", "2024-04-02T19:33:20Z", 1712086400000),
        ("milliseconds", "2024-04-02T19:33:20.123Z", 1712086400123),
        ("seconds", "1969-12-31T23:59:59Z", -1),
        ("milliseconds", "2026-08-31T12:00:00Z", 1788177600000),
    ],
)
def test_epoch_both_ways(unit: str, iso: str, number: int) -> None:
    sent = piped({"epoch": unit}, iso, REQUEST)
    assert (sent, type(sent)) == (number, int)
    assert piped({"from_epoch": unit}, number) == iso


def test_epoch_reads_any_offset_and_cuts_fractions() -> None:
    assert piped({"epoch": "seconds"}, "2024-04-02T21:33:20+02:00", REQUEST) == 1712086400
    assert piped({"epoch": "seconds"}, "2024-04-02T19:33:20.999Z", REQUEST) == 1712086400
    assert piped({"epoch": "milliseconds"}, "2024-04-02T19:33:20.9999Z", REQUEST) == 1712086400999
    assert piped({"epoch": "seconds"}, "2024-04-02T19:33:20", REQUEST) == 1712086400  # naive = UTC


def test_from_epoch_takes_fractions_floats_and_digit_text() -> None:
    assert piped({"from_epoch": "seconds"}, 1712086400.5) == "2024-04-02T19:33:20.500Z"
    assert piped({"from_epoch": "seconds"}, 1712086400.0) == "2024-04-02T19:33:20Z"
    assert piped({"from_epoch": "seconds"}, "1712086400") == "2024-04-02T19:33:20Z"
    assert piped({"from_epoch": "milliseconds"}, [0, 1000]) == ["1970-01-01T00:00:00Z", "1970-01-01T00:00:01Z"]


def test_milliseconds_read_as_seconds_are_not_a_date() -> None:
    """The unit is the map's to state: a millisecond value read as seconds lies past year 9999."""
    assert piped({"from_epoch": "seconds"}, 1712086400123) is None
    assert piped({"from_epoch": "milliseconds"}, 1712086400) == "1970-01-20T19:34:46.400Z"


@pytest.mark.parametrize("value", ["soon", True, None, {"t": 1}, float("nan"), float("inf"), "1e400"])
def test_from_epoch_of_what_is_not_a_number_is_null(value: Any) -> None:
    assert piped({"from_epoch": "seconds"}, value) is None


def test_unconvertible_unix_time_names_the_form() -> None:
    assert refused({"from_epoch": "milliseconds"}, "soon") == "expected a Unix time in milliseconds, got 'soon'"
    assert refused({"epoch": "seconds"}, 1712086400) == "expected an ISO 8601 date-time, got 1712086400"


def test_utc_on_a_number_points_to_from_epoch() -> None:
    message = refused("utc", 1712086400)
    assert "from_epoch" in message and "1712086400" in message


@pytest.mark.parametrize("name", ["epoch", "from_epoch"])
@pytest.mark.parametrize("arg", ["secs", "ms", None, 1000])
def test_epoch_units_are_checked_when_the_map_compiles(name: str, arg: Any) -> None:
    with pytest.raises(MapError):
        compile_expression({"from": "v", "pipe": [{name: arg}]}, ("t",), ANSWER)


# ---------------------------------------------------------------------------------------------- times of day


@pytest.mark.parametrize(
    ("form", "hhmm", "vendor"),
    [
        ("minutes", "00:00", 0),
        ("minutes", "09:30", 570),
        ("minutes", "23:59", 1439),
        ("seconds", "00:00", 0),
        ("seconds", "17:05", 61500),
        ("seconds", "23:59", 86340),
        ("hh:mm:ss", "00:00", "00:00:00"),
        ("hh:mm:ss", "23:59", "23:59:00"),
    ],
)
def test_time_of_day_both_ways(form: str, hhmm: str, vendor: Any) -> None:
    assert piped({"time_of_day": form}, hhmm, REQUEST) == vendor
    assert piped({"from_time_of_day": form}, vendor) == hhmm


def test_from_time_of_day_cuts_seconds_and_takes_digit_text() -> None:
    assert piped({"from_time_of_day": "seconds"}, 86399) == "23:59"
    assert piped({"from_time_of_day": "seconds"}, 59) == "00:00"
    assert piped({"from_time_of_day": "minutes"}, "570") == "09:30"
    assert piped({"from_time_of_day": "minutes"}, 570.0) == "09:30"
    assert piped({"from_time_of_day": "hh:mm:ss"}, "07:15:45") == "07:15"


@pytest.mark.parametrize(
    ("form", "value"),
    [
        ("minutes", 1440),  # "end of the day" is no canonical time: 23:59 is the last
        ("minutes", -1),
        ("minutes", 9.5),
        ("minutes", True),
        ("minutes", "nine"),
        ("seconds", 86400),
        ("hh:mm:ss", "24:00:00"),
        ("hh:mm:ss", "12:00:61"),
    ],
)
def test_from_time_of_day_out_of_range_is_null(form: str, value: Any) -> None:
    assert piped({"from_time_of_day": form}, value) is None


def test_unconvertible_time_of_day_names_the_range() -> None:
    assert refused({"from_time_of_day": "minutes"}, 1440) == "expected minutes since midnight, 0 to 1439, got 1440"
    assert refused({"time_of_day": "minutes"}, "25:00") == "expected a time of day \"HH:MM\", got '25:00'"


@pytest.mark.parametrize("name", ["time_of_day", "from_time_of_day"])
def test_time_of_day_forms_are_checked_when_the_map_compiles(name: str) -> None:
    with pytest.raises(MapError, match="minutes, seconds, hh:mm:ss"):
        compile_expression({"from": "v", "pipe": [{name: "hours"}]}, ("t",), ANSWER)


# ---------------------------------------------------------------------------------------------- formats


def test_strftime_writes_the_moment_in_utc() -> None:
    layout = "%Y-%m-%d %H:%M:%S +00:00"
    assert piped({"strftime": layout}, "2026-01-01T12:00:00-05:00", REQUEST) == "2026-01-01 17:00:00 +00:00"
    assert piped({"strftime": layout}, "2026-01-01T00:00:00Z", REQUEST) == "2026-01-01 00:00:00 +00:00"


def test_strptime_reads_offsets_and_naive_text_as_utc() -> None:
    assert piped({"strptime": "%Y-%m-%d %H:%M:%S %z"}, "2026-01-01 12:00:00 -05:00") == "2026-01-01T17:00:00Z"
    assert piped({"strptime": "%Y-%m-%d %H:%M:%S"}, "2026-01-01 12:00:00") == "2026-01-01T12:00:00Z"
    assert piped({"strptime": "%Y-%m-%d %H:%M:%S"}, "yesterday") is None


@pytest.mark.parametrize("arg", ["", "YYYY-MM-DD", 5])
def test_formats_are_checked_when_the_map_compiles(arg: Any) -> None:
    with pytest.raises(MapError, match="strftime format"):
        compile_expression({"from": "v", "pipe": [{"strftime": arg}]}, ("t",), ANSWER)
