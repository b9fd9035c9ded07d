"""The structure of a vendor map file, validated before anything is compiled.

Expressions inside it stay ``Any`` here: the expression compiler checks them and says where.
``gateway schema`` writes this structure as JSON Schema for editors, with the expression
language summed up in the descriptions below (EXPRESSION, FIELD_MAP).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.mapping.event_spec import EventsSpec
from gateway.models import Status

OperationName = Literal[
    "create",
    "get",
    "list",
    "update",
    "delete",
    "start",
    "pause",
    "resume",
    "cancel",
    "recipients_list",
    "recipients_add",
]
OPERATION_NAMES: tuple[str, ...] = OperationName.__args__  # type: ignore[attr-defined]

TRANSFORM_SYNTAX = (
    "string, integer, number, lower, upper, e164, digits, utc, hhmm, "
    "{epoch: seconds|milliseconds} (ISO 8601 -> Unix time), {from_epoch: seconds|milliseconds} (Unix time -> ISO), "
    '{time_of_day: minutes|seconds|hh:mm:ss} ("HH:MM" -> the vendor\'s form), {from_time_of_day: minutes|seconds|'
    'hh:mm:ss} (-> "HH:MM"), {strftime: FORMAT} (ISO -> text in UTC), {strptime: FORMAT} (text -> ISO), '
    "country_code, national_number, {add: N}, {enum: ENUM} (vendor word -> canonical), {vendor_enum: ENUM}, "
    "{lookup: LOOKUP} (vendor value -> canonical, through a lookups: table), {vendor_lookup: LOOKUP}, first, list, "
    "flatten, {where: CONDITION} (the elements it holds for), count, keys, parse_json, {get: PATH}, "
    "{present: [IF_SET, IF_NOT]}, {csv: {columns, spread}}"
)
EXPRESSION = (
    "An expression: a path (a.b, items[0].id, items[-1].id for the last, sets[*].numbers[*]) or an object with one "
    "source — from: PATH | const: VALUE | coalesce: [EXPR…] (first not null) | concat: [EXPR…] (lists joined) | "
    "sum: [EXPR…] | difference: [EXPR…] (the first minus the rest) | index: 0|1 (the element's position) — and "
    "optionally each: {FIELD MAP}, pipe: [TRANSFORM…], default: VALUE, when: CONDITION, unless: CONDITION. A "
    "condition is a path (holds when set) or {PATH: VALUE or [VALUES]}. Transforms: " + TRANSFORM_SYNTAX
)
FIELD_MAP = "A field map {target.path: expression}; targets may nest (a.b) and index (a[0].b). " + EXPRESSION


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BasicAuthSpec(Spec):
    """HTTP basic auth (RFC 7617): ``Authorization: Basic <base64 of username:password>``."""

    username: str = Field(description="A template, e.g. {credentials.api_key}")
    password: str = Field(description="A template, e.g. {credentials.api_token}")


class AuthSpec(Spec):
    """Headers and query values sent with every request; ``{credentials.NAME}`` and ``{params.NAME}`` are filled in.

    A value without placeholders is sent as it is (a literal header, e.g. an API version).
    """

    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    basic: BasicAuthSpec | None = Field(default=None, description="HTTP basic auth, instead of an Authorization header")


class EnumSpec(Spec):
    """Vendor word -> canonical value. ``unknown`` (required) is what a word not listed becomes."""

    map: dict[str, Any]
    unknown: Any = Field(description="What a vendor word not in `map` becomes (a value, or null)")
    reverse: dict[str, str] | None = Field(
        default=None,
        description="Canonical value -> vendor word; defaults to the first word mapping to it",
    )
    ignore_case: bool = False


class FieldErrorSpec(Spec):
    """Where a vendor's error body names the fields it refused, as (field, message) pairs. One form:

    ``object`` (keys are fields, values a message or a list of them); ``items`` (a list of objects,
    each read with ``field`` and ``message``); ``field`` + ``message`` (one pair in the body); or
    ``text`` + ``pattern`` (a regular expression with the groups ``field`` and ``message``).
    """

    object: str | None = Field(default=None, description="Path to an object of field -> message(s)")
    items: str | None = Field(default=None, description="Path to a list of objects, each naming a field")
    field: str | None = Field(default=None, description="Path (in each item, or in the body) to the field name")
    message: str | None = Field(default=None, description="Path (in each item, or in the body) to the message")
    text: str | None = Field(default=None, description="Path to a text naming the field (with `pattern`)")
    pattern: str | None = Field(default=None, description="Regex over `text` with groups `field` and `message`")
    drop: list[str] = Field(default=[], description="Leading field steps that are no field (FastAPI's `body`)")


class ErrorSpec(Spec):
    message: list[str] = Field(
        default=["message", "error.message", "error", "detail"], description="Paths tried in turn"
    )
    codes: dict[int, str] = Field(default={}, description="Upstream HTTP status -> canonical error code overrides")
    fields: list[FieldErrorSpec] = Field(
        default=[],
        description="Where the vendor names refused fields; they are named back by the canonical field they came "
        "from (tried in turn; the first form that finds any wins)",
    )


class PartSpec(Spec):
    """One multipart field: an expression (``value``) or an object built by a field map (``fields``)."""

    value: Any = Field(default=None, description="Objects and lists are sent as JSON. " + EXPRESSION)
    fields: dict[str, Any] | None = Field(default=None, description="The object is sent as JSON. " + FIELD_MAP)
    filename: str | None = None
    content_type: str | None = None


class RequestSpec(Spec):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(description="Appended to the base URL; {id}, {params.NAME} are filled in, percent-encoded")
    query: dict[str, Any] = Field(default={}, description="Query parameters (nulls are left out). " + FIELD_MAP)
    headers: dict[str, str] = Field(default={}, description="Literal headers this request also sends")
    body: dict[str, Any] | None = Field(
        default=None,
        description="The JSON body (nulls are left out). Sources: body.*, id, params.*, page.*, "
        "filter.status, now, item (under fan_out). " + FIELD_MAP,
    )
    body_from: Any = Field(default=None, description="The whole JSON body (e.g. an array). " + EXPRESSION)
    multipart: dict[str, PartSpec] | None = None
    vendor_options: str | None = Field(
        default=None,
        description="Where in the JSON body the client's vendor_options are merged (a path, e.g. campaigns[0]); "
        "default: the top of the body",
    )


class ResponseSpec(Spec):
    unwrap: str | None = Field(default=None, description="Path to the payload inside the vendor's envelope")
    shape: str | None = Field(default=None, description="Name of the shape the payload (or each item) maps through")
    items: Any = Field(default=None, description="List operations: the array of items. " + EXPRESSION)
    total: str | None = Field(
        default=None, description="List operations: path to the total count, if the vendor gives it"
    )
    next_cursor: Any = Field(
        default=None, description="List operations: expression for the vendor's own next-page token"
    )


class FanOutSpec(Spec):
    """Several upstream calls for one request: one per element of a list, or one per chunk of ``size``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", description="Path to a list in the request, e.g. body.recipients")
    size: int | None = Field(
        default=None, ge=1, description="Elements per call; `item` is then a list (a chunk), else one element"
    )


class StepSpec(Spec):
    """A later operation of the same map that carries some of this request's fields (e.g. recipients at create)."""

    operation: OperationName
    carries: list[str] = Field(
        min_length=1,
        description="Canonical fields of this request the step sends, under the same names in the step's body",
    )


class OperationSpec(Spec):
    request: RequestSpec
    response: ResponseSpec = ResponseSpec()
    idempotent: bool | None = Field(default=None, description="Safe to retry; defaults to true for GET, PUT, DELETE")
    cache_ttl_seconds: float | None = Field(
        default=None, ge=0, description="Reads: this operation's cache TTL, unless config.yaml overrides it"
    )
    refetch: bool = Field(default=False, description="Answer with a fresh `get` of the id the vendor returned")
    required: list[str] = Field(
        default=[],
        description="Canonical body fields this vendor needs; a request without one is a 422",
    )
    fan_out: str | FanOutSpec | None = Field(
        default=None,
        description="Path to a list in the request: one upstream call per element (or chunk), as `item`",
    )
    unsupported: list[str] = Field(
        default=[],
        description="Canonical body fields the vendor cannot carry, for readers: `check` verifies that the "
        "request indeed never sends them (any field the map does not send is unsupported anyway)",
    )
    unconverted: dict[str, str] = Field(
        default={},
        description="Canonical body fields the vendor has a related field for that this map cannot convert to, "
        "each with a note naming it and why (e.g. max_concurrent_calls: 'dial_level is a ratio, not a number of "
        "calls'); refused or dropped like any unsupported field, and the refusal quotes the note",
    )
    then: list[StepSpec] = Field(
        default=[],
        description="Operations run after this one, on the id it answered, each carrying some of its fields",
    )
    paging: Literal["vendor", "gateway"] = Field(
        default="vendor",
        description="gateway: the vendor returns everything and the gateway pages it",
    )


class LookupSpec(Spec):
    """A table read from the vendor itself: each item of a list it answers pairs a canonical value with its own."""

    request: RequestSpec = Field(description="The list to read; it may use params.* only")
    items: str | None = Field(default=None, description="Path to the list in the answer; default: the answer itself")
    vendor: Any = Field(description="Over one item: the vendor's value, e.g. its id. " + EXPRESSION)
    canonical: Any = Field(
        description="Over one item: the canonical value, e.g. {from: number, pipe: [e164]}. " + EXPRESSION
    )
    ttl_seconds: float = Field(
        default=300, gt=0, description="How long a fetched table is used (a miss refetches one older than 10 s)"
    )


class MapSpec(Spec):
    vendor: str
    description: str | None = None
    aliases: list[str] = []
    base_url: str = Field(description="Default upstream; {params.NAME} is filled in from the connection")
    sandbox: str | None = Field(default=None, description="module:factory of the simulated vendor")
    id_pattern: str | None = Field(default=None, description="Regex a campaign id must match; others are 404")
    auth: AuthSpec = AuthSpec()
    errors: ErrorSpec = ErrorSpec()
    enums: dict[str, EnumSpec] = {}
    shapes: dict[str, dict[str, Any]] = Field(
        default={},
        description="Vendor object -> canonical fields, by name; what no field reads is kept in vendor_data. "
        + FIELD_MAP,
    )
    lookups: dict[str, LookupSpec] = Field(
        default={},
        description="Tables read from the vendor (e.g. its phone numbers), used by {vendor_lookup: NAME} in requests "
        "and {lookup: NAME} in answers",
    )
    operations: dict[OperationName, OperationSpec]
    states: dict[Status, list[OperationName]] = Field(
        default={},
        description="Canonical status -> the operations the vendor allows from it; a vendor 409 on one it does "
        "not allow is answered as invalid_state, naming the status and what it allows",
    )
    events: EventsSpec | None = Field(
        default=None, description="The vendor's webhooks: how each is checked and read into a canonical event"
    )
