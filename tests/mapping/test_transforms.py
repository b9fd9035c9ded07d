"""The named transforms of a map's ``pipe``, one by one, and the enum word maps."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from gateway.mapping.expressions import Scope, TranslationError, compile_expression
from gateway.mapping.transforms import TRANSFORMS, Enum, MapError

STATUS = Enum(
    forward={"running": "active", "live": "active", "done": "completed"},
    reverse={"active": "running", "completed": "done"},
    unknown="unknown-word",
    ignore_case=True,
)
ENUMS = {"status": STATUS}


def fn(name: str, arg: Any = None) -> Any:
    """The raw transform function (no None / list handling: that is the expression compiler's)."""
    return TRANSFORMS[name].build(arg, ENUMS)


def piped(name: str, arg: Any = None, *, strict: bool = False) -> Any:
    """A compiled ``{from: v, pipe: [name]}``: what a map actually runs."""
    step = name if arg is None else {name: arg}
    compiled = compile_expression({"from": "v", "pipe": [step]}, ("t",), Scope(ENUMS, strict=strict))
    return lambda value: compiled.fn({"v": value})


def test_the_closed_set_of_transforms() -> None:
    assert set(TRANSFORMS) == {
        "string",
        "integer",
        "number",
        "lower",
        "upper",
        "e164",
        "digits",
        "utc",
        "hhmm",
        "epoch",
        "from_epoch",
        "time_of_day",
        "from_time_of_day",
        "strftime",
        "strptime",
        "country_code",
        "national_number",
        "add",
        "enum",
        "vendor_enum",
        "lookup",
        "vendor_lookup",
        "first",
        "list",
        "flatten",
        "where",
        "count",
        "keys",
        "parse_json",
        "get",
        "present",
        "csv",
    }


def test_transform_flags() -> None:
    scalar = {name for name, t in TRANSFORMS.items() if t.scalar}
    assert {"first", "list", "flatten", "where", "count", "keys", "parse_json", "get", "present", "csv"}.isdisjoint(
        scalar
    )
    lossy = {"where", "count", "keys", "parse_json", "present", "lookup"}
    assert {name for name, t in TRANSFORMS.items() if t.lossy} == lossy
    assert {name for name, t in TRANSFORMS.items() if t.needs_arg} == {
        "epoch",
        "from_epoch",
        "time_of_day",
        "from_time_of_day",
        "strftime",
        "strptime",
        "add",
        "enum",
        "vendor_enum",
        "lookup",
        "vendor_lookup",
        "where",
        "get",
        "present",
        "csv",
    }
    assert {name for name, t in TRANSFORMS.items() if t.sees_none} == {"present"}


# ---------------------------------------------------------------------------------------------- good input


@pytest.mark.parametrize(
    ("name", "arg", "value", "expected"),
    [
        ("string", None, 3, "3"),
        ("string", None, "x", "x"),
        ("integer", None, "12", 12),
        ("integer", None, 7.0, 7),
        ("integer", None, 5, 5),
        ("number", None, "2.5", 2.5),
        ("number", None, 3, 3.0),
        ("lower", None, "MONDAY", "monday"),
        ("upper", None, "monday", "MONDAY"),
        ("e164", None, "+1 (415) 555-1212", "+14155551212"),
        ("e164", None, "18885650001", "+18885650001"),
        ("e164", None, 18885650001, "+18885650001"),
        ("e164", None, "+91 22 3456.7890", "+912234567890"),
        ("digits", None, "+1 (415) 555-1212", "14155551212"),
        ("utc", None, "2025-12-01T09:00:00Z", "2025-12-01T09:00:00Z"),
        ("utc", None, "2025-12-01T09:00:00.000Z", "2025-12-01T09:00:00Z"),
        ("utc", None, "2025-12-01T09:00:00.250Z", "2025-12-01T09:00:00.250Z"),
        ("utc", None, "2025-12-01T09:00:00+05:30", "2025-12-01T03:30:00Z"),
        ("utc", None, "2025-12-01T23:30:00-02:00", "2025-12-02T01:30:00Z"),
        ("utc", None, "2025-12-01T09:00:00", "2025-12-01T09:00:00Z"),  # naive = UTC
        ("utc", None, "2025-12-01", "2025-12-01T00:00:00Z"),
        ("hhmm", None, "09:00", "09:00"),
        ("hhmm", None, "9:05", "09:05"),
        ("hhmm", None, "17:30:00", "17:30"),
        ("hhmm", None, " 23:59:59.5 ", "23:59"),
        ("hhmm", None, "00:00", "00:00"),
        ("country_code", None, "+912234567890", "+91"),
        ("country_code", None, "+14155551212", "+1"),
        ("national_number", None, "+912234567890", "2234567890"),
        ("national_number", None, "+14155551212", "4155551212"),
        ("add", 1, 10, 11),
        ("add", -1, "3", 2),
        ("add", 0, 4, 4),
        ("enum", "status", "running", "active"),
        ("enum", "status", "LIVE", "active"),
        ("vendor_enum", "status", "active", "running"),
        ("vendor_enum", "status", "completed", "done"),
        ("first", None, ["a", "b"], "a"),
        ("first", None, [], None),
        ("first", None, "solo", "solo"),
        ("list", None, "a", ["a"]),
        ("list", None, ["a"], ["a"]),
        ("flatten", None, [[1, 2], 3, [4]], [1, 2, 3, 4]),
        ("flatten", None, [[[1]], [2]], [[1], 2]),  # one level only
        ("count", None, [1, 2, 3], 3),
        ("count", None, [], 0),
        ("count", None, {"a": 1, "b": 2}, 2),
        ("keys", None, [{"a": 1, "b": 2}, {"c": 3, "a": 4}, "skip", None], ["a", "b", "c"]),
        ("keys", None, [], []),
        ("keys", None, None, []),
        ("present", ["yes", "no"], "x", "yes"),
        ("present", ["yes", "no"], 0, "yes"),
        ("present", ["yes", "no"], False, "yes"),
        ("present", ["yes", "no"], None, "no"),
        ("present", ["yes", "no"], "", "no"),
        ("present", ["yes", "no"], [], "no"),
        ("present", ["yes", "no"], {}, "no"),
    ],
)
def test_transform_good_input(name: str, arg: Any, value: Any, expected: Any) -> None:
    result = fn(name, arg)(value)
    assert result == expected
    assert type(result) is type(expected)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "arg", "value"),
    [
        ("integer", None, "abc"),
        ("integer", None, "1.5"),
        ("integer", None, 1.5),
        ("integer", None, True),
        ("integer", None, float("nan")),
        ("number", None, "abc"),
        ("lower", None, 3),
        ("upper", None, None),
        ("e164", None, "abc"),
        ("e164", None, "<string>"),
        ("e164", None, "+0123456789"),  # no country code starts with 0
        ("e164", None, "+12345"),  # too short
        ("e164", None, "+1234567890123456"),  # too long
        ("digits", None, 14155551212),
        ("utc", None, "<string>"),
        ("utc", None, "2025-13-01T00:00:00Z"),
        ("utc", None, 1700000000),
        ("hhmm", None, "<string>"),
        ("hhmm", None, "24:00"),
        ("hhmm", None, "12:60"),
        ("hhmm", None, "9"),
        ("hhmm", None, "9:5"),
        ("hhmm", None, 900),
        ("country_code", None, "4155551212"),  # no + and no region
        ("country_code", None, "not a number"),
        ("national_number", None, 912234567890),
        ("add", 1, "x"),
        ("add", 1, True),
        ("vendor_enum", "status", "paused"),
        ("count", None, "abc"),
        ("count", None, 3),
    ],
)
def test_transform_bad_input_raises_value_error(name: str, arg: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        fn(name, arg)(value)


@pytest.mark.parametrize(
    ("name", "arg", "message"),
    [
        ("add", "1", "add takes an integer"),
        ("add", True, "add takes an integer"),
        ("add", 1.5, "add takes an integer"),
        ("enum", "nope", "unknown enum 'nope'"),
        ("vendor_enum", "nope", "unknown enum 'nope'"),
        ("present", ["only one"], "present takes a list of two values"),
        ("present", "x", "present takes a list of two values"),
        ("csv", {"spread": "v"}, "csv takes"),
        ("csv", {"columns": {"a": "a"}, "extra": 1}, "unknown key 'extra'"),
        ("csv", "a,b", "csv takes"),
    ],
)
def test_transform_bad_arguments_are_map_errors(name: str, arg: Any, message: str) -> None:
    with pytest.raises(MapError, match=message):
        fn(name, arg)


def test_map_error_carries_loc() -> None:
    error = MapError("bad", ("shapes", "campaign", "id"))
    assert (error.message, error.loc) == ("bad", ("shapes", "campaign", "id"))
    assert isinstance(error, ValueError)
    assert MapError("bad").loc == ()


# ---------------------------------------------------------------------------------------------- lists and None


@pytest.mark.parametrize(
    ("name", "arg", "value", "expected"),
    [
        ("e164", None, ["18885650001", "18885650002"], ["+18885650001", "+18885650002"]),
        ("upper", None, ["monday", "friday"], ["MONDAY", "FRIDAY"]),
        ("add", 1, [1, 2], [2, 3]),
        ("enum", "status", ["running", "DONE", "other"], ["active", "completed", "unknown-word"]),
        ("vendor_enum", "status", ["active", "completed"], ["running", "done"]),
        ("string", None, [1, 2], ["1", "2"]),
        ("utc", None, ["2025-01-01T00:00:00+01:00"], ["2024-12-31T23:00:00Z"]),
    ],
)
def test_scalar_transforms_map_over_lists(name: str, arg: Any, value: Any, expected: Any) -> None:
    assert piped(name, arg)(value) == expected
    assert piped(name, arg, strict=True)(value) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("count", [1, 2], 2),
        ("first", [["a"], ["b"]], ["a"]),
        ("list", ["a"], ["a"]),
        ("keys", [{"a": 1}], ["a"]),
    ],
)
def test_non_scalar_transforms_see_the_whole_list(name: str, value: Any, expected: Any) -> None:
    assert piped(name)(value) == expected


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("string", None),
        ("integer", None),
        ("e164", None),
        ("utc", None),
        ("hhmm", None),
        ("add", 1),
        ("enum", "status"),
        ("vendor_enum", "status"),
        ("first", None),
        ("list", None),
        ("flatten", None),
        ("count", None),
        ("keys", None),
        ("csv", {"columns": {"a": "a"}}),
    ],
)
def test_none_passes_through(name: str, arg: Any) -> None:
    assert piped(name, arg)(None) is None
    assert piped(name, arg, strict=True)(None) is None


def test_present_sees_none() -> None:
    assert piped("present", ["SCHEDULED", "NOW"])(None) == "NOW"
    assert piped("present", ["SCHEDULED", "NOW"])("2025-01-01T00:00:00Z") == "SCHEDULED"


def test_failed_conversion_lenient_is_null_strict_raises() -> None:
    assert piped("hhmm")("<string>") is None
    with pytest.raises(TranslationError) as caught:
        piped("hhmm", strict=True)("<string>")
    assert caught.value.field == "v"
    assert caught.value.message == 'expected a time of day "HH:MM" or "HH:MM:SS", got \'<string>\''


def test_a_non_text_value_is_a_translation_error_not_a_crash() -> None:
    """TypeErrors inside a transform are conversion failures too."""
    assert piped("flatten")(5) is None
    with pytest.raises(TranslationError):
        piped("flatten", strict=True)(5)


# ---------------------------------------------------------------------------------------------- enums


def test_enum_forward() -> None:
    assert STATUS.to_canonical("running") == "active"
    assert STATUS.to_canonical("live") == "active"


def test_enum_ignore_case() -> None:
    assert STATUS.to_canonical("RUNNING") == "active"
    assert STATUS.to_canonical("Done") == "completed"


def test_enum_case_sensitive() -> None:
    exact = Enum(forward={"Monday": "monday"}, reverse={"monday": "Monday"}, unknown=None, ignore_case=False)
    assert exact.to_canonical("Monday") == "monday"
    assert exact.to_canonical("MONDAY") is None


def test_enum_unknown_word() -> None:
    assert STATUS.to_canonical("exploded") == "unknown-word"
    assert STATUS.to_canonical(42) == "unknown-word"
    nullable = Enum(forward={"a": "b"}, reverse={"b": "a"}, unknown=None, ignore_case=False)
    assert nullable.to_canonical("z") is None


def test_enum_reverse() -> None:
    assert STATUS.to_vendor("active") == "running"
    with pytest.raises(ValueError, match="no equivalent"):
        STATUS.to_vendor("paused")
    with pytest.raises(ValueError):
        STATUS.to_vendor("ACTIVE")  # canonical values are exact


# ---------------------------------------------------------------------------------------------- csv


def test_csv_columns_and_spread() -> None:
    to_csv = fn("csv", {"columns": {"phone": "phone_number", "who": "name"}, "spread": "variables"})
    rows = [
        {"phone_number": "+1", "name": "Ann", "variables": {"a": 1, "b": "x,y"}},
        {"phone_number": "+2", "variables": {"c": True}},
        {"phone_number": "+3", "name": "Cy"},
    ]
    text = to_csv(rows)
    assert text.splitlines()[0] == "phone,who,a,b,c"
    assert list(csv.reader(io.StringIO(text))) == [
        ["phone", "who", "a", "b", "c"],
        ["+1", "Ann", "1", "x,y", ""],
        ["+2", "", "", "", "True"],
        ["+3", "Cy", "", "", ""],
    ]
    assert text.endswith("\n") and "\r" not in text


def test_csv_without_spread() -> None:
    to_csv = fn("csv", {"columns": {"n": "nested.value"}})
    # a row whose only cell is empty is written as "" (the csv module's way to tell it from no row)
    assert to_csv([{"nested": {"value": 1}}, {}]) == 'n\n1\n""\n'
    assert to_csv([]) == "n\n"


def test_csv_bad_column_path() -> None:
    with pytest.raises(ValueError):
        fn("csv", {"columns": {"a": "a..b"}})
