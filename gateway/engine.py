"""Runs one canonical operation against one connection: translate, send, translate back.

An operation may fan out (one upstream call per recipient, or per chunk) and may be composed
(create, then add the recipients to what it created). A composed operation that fails after its
first step answers ``partial_failure`` with its ``Progress``, which an Idempotency-Key keeps so
that a retry resumes at the step that failed and never repeats one that took effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gateway import tables
from gateway.config import Connection
from gateway.errors import (
    Conflict,
    GatewayError,
    InvalidState,
    NotFound,
    OperationNotSupported,
    PartialFailure,
    UpstreamError,
    ValidationFailed,
)
from gateway.mapping import CompiledOperation, MalformedResponse, Page, Step, UpstreamRequest, lookups
from gateway.mapping.canonical import field_text
from gateway.mapping.expressions import TranslationError
from gateway.mapping.vendor_errors import canonical_name
from gateway.telemetry import current_record
from gateway.upstream import Upstream

Handling = Literal["strict", "lenient"]
# Operations on an existing campaign that its status may forbid: a vendor 409 on one may be invalid_state.
_BELONGS = " (a campaign id belongs to the connection that created it)"
STATE_CHANGES = frozenset({"update", "delete", "start", "pause", "resume", "cancel", "recipients_add"})


@dataclass
class Progress:
    """How far a composed operation got: the first step's canonical answer, and the calls of each step done."""

    result: dict[str, Any] | None = None
    done: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Call:
    """One canonical request, as the engine needs it."""

    operation: str
    id: str | None = None
    body: dict[str, Any] | None = None
    offset: int = 0
    limit: int = 20
    cursor: str | None = None
    status: str | None = None
    include_vendor_data: bool = False
    idempotency_key: bool = False  # a create may be retried only when it carries one
    handling: Handling = "strict"
    dropped: list[str] = field(default_factory=list)  # canonical fields left out (lenient handling)
    progress: Progress | None = None  # where a composed operation resumes
    hook_url: str | None = None  # the gateway's own callback, given to the vendor (connections with events)


@dataclass
class FanOutResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # indexes of the calls that took effect
    first_error: GatewayError | None = None


def prepare(connection: Connection, call: Call) -> tuple[CompiledOperation, dict[str, Any]]:
    """The vendor's operation for ``call`` and the context its map reads, after the checks that need no vendor."""
    vendor = connection.vendor
    operation = connection.map.operations.get(call.operation)
    if operation is None:
        raise OperationNotSupported(f"{vendor} does not offer the operation {call.operation}", vendor=vendor)
    if call.id is not None and connection.map.id_pattern and not connection.map.id_pattern.fullmatch(call.id):
        raise NotFound(f"campaign {call.id} not found at {connection.name}{_BELONGS}", vendor=vendor)
    if call.cursor is not None and not operation.takes_cursor and call.cursor != str(call.offset):
        raise ValidationFailed("invalid cursor", details=[{"field": "cursor", "message": "not a cursor this API gave"}])
    if call.body is not None and operation.fields is not None:
        outcome = operation.fields.apply(call.body, call.handling == "lenient", vendor)
        if outcome.problems:
            raise ValidationFailed(
                f"{vendor} cannot take this request as it is", vendor=vendor, details=outcome.problems
            )
        call.body, call.dropped = outcome.body, outcome.dropped
    context = {
        "now": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if operation.reads_now else None,
        "body": call.body,
        "id": call.id,
        "params": connection.params,
        "page": {
            "offset": call.offset,
            "limit": call.limit,
            "number": call.offset // call.limit + 1,
            "cursor": call.cursor,
        },
        "filter": {"status": call.status},
        "hook_url": call.hook_url,
    }
    return operation, context


async def run(connection: Connection, upstream: Upstream, call: Call) -> Any:
    """The canonical answer of ``call`` (a dict, a list page, or None for delete)."""
    try:
        return await _run(connection, upstream, call)
    except Conflict as error:
        if call.id is None or call.operation not in STATE_CHANGES:
            raise
        explained = await _invalid_state(error, connection, upstream, call)
        if explained is error:
            raise
        raise explained from error


async def _run(connection: Connection, upstream: Upstream, call: Call) -> Any:
    operation, context = prepare(connection, call)
    if operation.steps or operation.refetch:
        return await _composed(connection, upstream, operation, context, call)
    if operation.fan_out is not None:
        return await _fan_out(connection, upstream, operation, context, call)
    result = await _exchange(operation, upstream, context, call)
    return finish(connection, operation.kind, result, call, filtered_upstream=operation.filters_status)


def vendor_request(operation: CompiledOperation, context: dict[str, Any], vendor: str) -> UpstreamRequest:
    """The vendor request a canonical one becomes; a value the vendor cannot take is a 422 naming it."""
    body = context["body"]
    try:
        request = operation.build_request(context)
        if isinstance(request.json, dict) and body and body.get("vendor_options"):
            target = operation.options_at(request.json)
            target.update(_deep_merge(target, body["vendor_options"]))
    except TranslationError as exc:
        field_name = exc.field.removeprefix("body.").removeprefix("item.")
        raise ValidationFailed(
            f"{vendor} cannot take this request",
            vendor=vendor,
            details=[{"field": field_name, "message": exc.message}],
        ) from exc
    return request


def translate_answer(
    operation: CompiledOperation, answer: Any, context: dict[str, Any], include: bool, vendor: str, status: int
) -> Any:
    """The canonical form of a vendor's answer; one the map cannot read is a 502 naming the status."""
    try:
        return operation.parse_response(answer, context, include)
    except MalformedResponse as exc:
        raise UpstreamError(
            f"{vendor} answered in a shape the map cannot read: {exc}", vendor=vendor, upstream_status=status
        ) from exc


def units(operation: CompiledOperation, context: dict[str, Any]) -> list[tuple[range, dict[str, Any]]]:
    """The upstream calls one request makes: each with the element indexes it carries and its context."""
    if operation.fan_out is None:
        return [(range(0), context)]
    items = operation.fan_out.items(context) or []
    size = operation.fan_out.size
    if size is None:
        return [(range(i, i + 1), {**context, "item": item}) for i, item in enumerate(items)]
    return [
        (range(start, min(start + size, len(items))), {**context, "item": items[start : start + size]})
        for start in range(0, len(items), size)
    ]


async def _exchange(operation: CompiledOperation, upstream: Upstream, context: dict[str, Any], call: Call) -> Any:
    """One upstream round trip: build the vendor request, send it, translate the answer.

    The vendor tables the map's lookups read (its phone numbers, say) are fetched first, if any.
    """
    vendor = upstream.connection.vendor
    retry = operation.idempotent or call.idempotency_key
    loaded = await tables.load(upstream, operation.lookups) if operation.lookups else None

    def read(status: int, answer: Any) -> Any:
        return translate_answer(operation, answer, context, call.include_vendor_data, vendor, status)

    # Most operations read no tables: then nothing is set (outside ``using``, none are active).
    with lookups.using(loaded) if loaded is not None else contextlib.nullcontext():
        try:
            return await upstream.send(vendor_request(operation, context, vendor), read, retry=retry)
        except GatewayError as error:
            _explain(error, operation, call, upstream.connection)
            raise


def _explain(error: GatewayError, operation: CompiledOperation, call: Call, connection: Connection) -> None:
    """Say a vendor's refusal in canonical terms: the fields it names, and where a campaign id belongs."""
    if error.refused:
        named = [(canonical_name(operation.vendor_fields, field) or field, said) for field, said in error.refused]
        error.details = [{"field": field, "message": said} for field, said in named]
        error.message = f"{connection.vendor} refused the request: " + "; ".join(f"{f}: {m}" for f, m in named)
    if isinstance(error, NotFound) and call.id is not None:
        error.message += f" at {connection.name}{_BELONGS}"


async def _invalid_state(error: Conflict, connection: Connection, upstream: Upstream, call: Call) -> GatewayError:
    """A vendor's 409 on a change: invalid_state naming the campaign's status, unless that status allows it."""
    try:
        current = await run(connection, upstream, Call("get", id=call.id))
    except GatewayError:
        return error  # the status cannot be learned: the vendor's own word stands
    status = current.get("status") or current.get("vendor_status")
    allowed = connection.map.states.get(str(status))
    if allowed is not None and call.operation in allowed:
        return error  # not a state rule: something else conflicts
    message = f"campaign {call.id} is {status}; {connection.vendor} cannot {call.operation} it from there"
    if allowed is not None:
        message += f" (from {status} it allows {', '.join(allowed) or 'nothing'})"
    return InvalidState(
        f"{message}. {error.message}",
        vendor=connection.vendor,
        upstream_status=error.upstream_status,
        details=[{"field": "status", "message": f"is {status}"}],
    )


async def _send_units(
    operation: CompiledOperation, upstream: Upstream, context: dict[str, Any], call: Call, skip: set[int]
) -> FanOutResult:
    """Every call of a (fanned-out) operation not in ``skip``, in order; a refused call does not stop the rest."""
    result = FanOutResult()
    for number, (indexes, unit_context) in enumerate(units(operation, context)):
        if number in skip:
            continue
        try:
            answer = await _exchange(operation, upstream, unit_context, call)
        except GatewayError as error:
            result.first_error = result.first_error or error
            result.errors += [{"index": i, "code": error.code, "message": error.message} for i in indexes]
            continue
        result.done.append(number)
        result.answers.append(answer)
        if isinstance(answer, dict) and "accepted" in answer:  # the vendor's own count (a shaped answer)
            result.accepted += answer.get("accepted") or 0
            result.rejected += answer.get("rejected") or 0
        else:
            result.accepted += len(indexes)
    return result


async def _fan_out(
    connection: Connection, upstream: Upstream, operation: CompiledOperation, context: dict[str, Any], call: Call
) -> Any:
    """Recipients added by several calls; partial success is reported per element, total failure is the first error."""
    result = await _send_units(operation, upstream, context, call, set())
    if result.first_error is not None and not result.done:
        raise result.first_error
    answer: dict[str, Any] = {
        "accepted": result.accepted,
        "rejected": result.rejected + len(result.errors),
        "errors": result.errors or None,
    }
    if call.include_vendor_data:
        answer["vendor_data"] = {"results": result.answers}
    return finish(connection, operation.kind, answer, call, filtered_upstream=False)


async def _composed(
    connection: Connection, upstream: Upstream, operation: CompiledOperation, context: dict[str, Any], call: Call
) -> Any:
    """The operation, each step on the id it answered, then a fresh get where the map asks (refetch).

    What took effect is in ``call.progress``, from which a retry resumes; a later failure is partial_failure.
    """
    progress = call.progress or Progress()
    if progress.result is None:
        progress.result = await _exchange(operation, upstream, context, call)
    campaign_id = str(progress.result["id"])
    for step in operation.steps:
        body = step.body(call.body or {})
        if body is not None:
            with _own_upstream_status():
                await _step(connection, upstream, step, body, campaign_id, call, progress)
    if operation.refetch:
        try:
            return await _refetch(connection, upstream, campaign_id, call)
        except GatewayError as error:
            raise _partial(error, progress, campaign_id, "get", []) from error
    return finish(connection, operation.kind, progress.result, call, filtered_upstream=False)


async def _step(
    connection: Connection,
    upstream: Upstream,
    step: Step,
    body: dict[str, Any],
    campaign_id: str,
    call: Call,
    progress: Progress,
) -> None:
    step_call = Call(step.operation, id=campaign_id, body=body, idempotency_key=call.idempotency_key)
    operation, context = prepare(connection, step_call)
    done = progress.done.setdefault(step.operation, [])
    result = await _send_units(operation, upstream, context, step_call, set(done))
    done += result.done
    where = (
        field_text(operation.fan_out.field) if operation.fan_out else ", ".join(field_text(p) for p, _ in step.carries)
    )
    failures = [{"field": f"{where}[{e['index']}]", "message": f"{e['code']}: {e['message']}"} for e in result.errors]
    if operation.fan_out is None and result.first_error is not None:
        failures = [{"field": where, "message": f"{result.first_error.code}: {result.first_error.message}"}]
    if result.rejected:
        failures.append({"field": where, "message": f"{connection.vendor} refused {result.rejected} of them"})
    if failures:
        raise _partial(result.first_error, progress, campaign_id, step.operation, failures, vendor=connection.vendor)


def _partial(
    cause: GatewayError | None,
    progress: Progress,
    campaign_id: str,
    step: str,
    failures: list[dict[str, Any]],
    vendor: str | None = None,
) -> PartialFailure:
    said = f": {cause.message}" if cause is not None else ""
    return PartialFailure(
        f"campaign {campaign_id}: the change took effect, but the step {step} did not complete{said}",
        progress=progress,
        vendor=cause.vendor if cause is not None else vendor,
        upstream_status=cause.upstream_status if cause is not None else None,
        details=[{"campaign_id": campaign_id, "step": step}, *failures],
    )


async def _refetch(connection: Connection, upstream: Upstream, campaign_id: Any, call: Call) -> Any:
    get = Call("get", id=str(campaign_id), include_vendor_data=call.include_vendor_data)
    with _own_upstream_status():
        return await run(connection, upstream, get)


@contextlib.contextmanager
def _own_upstream_status() -> Iterator[None]:
    """The access line keeps the vendor status of the operation's own call, not of a get or step after it."""
    record = current_record.get()
    kept = record.upstream_status if record is not None else None
    try:
        yield
    finally:
        if record is not None:
            record.upstream_status = kept


def finish(connection: Connection, kind: str, result: Any, call: Call, *, filtered_upstream: bool) -> Any:
    if kind == "campaign":
        return _campaign(connection, result)
    if kind == "campaign_page":
        items = [_campaign(connection, item) for item in result.items]
        if call.status and not filtered_upstream:
            items = [item for item in items if item["status"] == call.status]
        return Page(items, result.next_cursor)
    if kind == "recipients_added":
        submitted = len((call.body or {}).get("recipients") or [])
        return {"campaign_id": call.id, "submitted": submitted, "errors": None, **result}
    return result


def _campaign(connection: Connection, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": result["id"],
        "connection": connection.name,
        "vendor": connection.vendor,
        **result,
    }


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
