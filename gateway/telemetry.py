"""Per-request audit lines and Prometheus metrics. No key or credential is ever passed in.

The record of the request being served sits in a context variable, so the upstream client can
add its own time and status to it without being handed the record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import orjson

from gateway.accesslog import AccessLog, json_line
from gateway.config import LoggingSpec
from gateway.metrics import SNAPSHOT_SECONDS, Definition, Metrics
from gateway.redact import redactor

access_log = logging.getLogger("gateway.access")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
FOLD_EVERY = 256  # requests counted together (a scrape or snapshot counts what is left first)
MULTIPROCESS_ENV = "GATEWAY_METRICS_DIR"  # the folder workers share their metrics in (set by serve --workers)


@dataclass
class RequestRecord:
    """One request as it is answered, then logged: its public fields, in this order, are the access line.

    orjson writes a dataclass's fields in order and leaves out those whose name starts with an
    underscore, so the line is rendered from the record itself, with no dict built per request
    (a dataclass without ``__slots__``: orjson reads its ``__dict__`` at once).
    """

    time: str = ""  # set when the line is written
    request_id: str = ""
    method: str = ""
    path: str = ""
    status: int = 0
    tenant: str | None = None
    key: str | None = None
    connection: str | None = None
    vendor: str | None = None
    operation: str | None = None
    upstream_status: int | None = None
    cache: str | None = None
    error: str | None = None
    ms: float = 0.0
    upstream_ms: float = 0.0
    retries: int = 0
    dropped: list[str] | None = None  # canonical fields a lenient write left out
    _started: float = field(default_factory=perf_counter)

    def add_upstream(self, seconds: float) -> None:
        self.upstream_ms += seconds * 1000

    def add_retry(self) -> None:
        self.retries += 1

    def elapsed_ms(self) -> float:
        return (perf_counter() - self._started) * 1000

    def server_timing(self) -> bytes:
        """``Server-Timing``: the vendor's time and the gateway's own, so far, in milliseconds."""
        upstream = self.upstream_ms
        return f"upstream;dur={upstream:.3f}, gateway;dur={max(0.0, self.elapsed_ms() - upstream):.3f}".encode()

    def seal(self) -> None:
        """The request is answered: stamp the time, round the durations, mask what the client chose
        (a path or request id could hold a credential; the rest comes from config and code)."""
        self.time = _clock.now()
        self.ms, self.upstream_ms = round(self.ms, 3), round(self.upstream_ms, 3)
        self.path, self.request_id = redactor.mask(self.path), redactor.mask(self.request_id)

    def log_fields(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}


class AccessRecord(logging.LogRecord):
    """An access line: its fields, and (for any handler that asks) their JSON as the message."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(access_log.name, logging.INFO, "", 0, "", None, None)
        self.fields = fields

    def getMessage(self) -> str:
        return orjson.dumps(self.fields).decode()


current_record: ContextVar[RequestRecord | None] = ContextVar("current_record", default=None)


TIMED = ("vendor", "operation")
DEFINITIONS = [
    Definition(
        "gateway_requests", "Requests answered", ("tenant", "connection", "vendor", "operation", "status"), "counter"
    ),
    Definition("gateway_request_duration_seconds", "Time to answer", TIMED, "histogram", LATENCY_BUCKETS),
    Definition(
        "gateway_upstream_duration_seconds", "Time spent waiting for the vendor", TIMED, "histogram", LATENCY_BUCKETS
    ),
    Definition(
        "gateway_overhead_duration_seconds",
        "The gateway's own time (total - upstream)",
        TIMED,
        "histogram",
        LATENCY_BUCKETS,
    ),
    Definition("gateway_cache", "Cache results of cacheable reads", ("result",), "counter"),
    Definition("gateway_upstream_errors", "Vendor faults by kind", ("vendor", "code"), "counter"),
    Definition("gateway_upstream_retries", "Upstream retries", ("vendor",), "counter"),
    Definition(
        "gateway_dropped_fields",
        "Canonical fields left out of lenient writes because the vendor cannot carry them",
        ("vendor", "field"),
        "counter",
    ),
    Definition("gateway_circuit_open", "1 while a connection's circuit breaker is open", ("connection",), "gauge"),
    Definition(
        "gateway_connections_cut",
        "Client connections answered early or closed by the server's limits (slow, oversized, too many)",
        ("reason",),
        "counter",
    ),
]


class Telemetry:
    """Each answered request, counted (plain dicts: see gateway/metrics.py) and logged (gateway/accesslog.py)."""

    def __init__(self, access: AccessLog | None = None) -> None:
        self.metrics = Metrics(DEFINITIONS, os.environ.get(MULTIPROCESS_ENV))
        self.access = access
        tables = self.metrics.tables
        self._requests, self._cache = tables["gateway_requests"], tables["gateway_cache"]
        self._errors, self._retries = tables["gateway_upstream_errors"], tables["gateway_upstream_retries"]
        self._dropped, self._circuits = tables["gateway_dropped_fields"], tables["gateway_circuit_open"]
        self._cut = tables["gateway_connections_cut"]
        self._unfolded: list[RequestRecord] = []  # answered, not yet counted (see ``record``)

    def cut(self, reason: str) -> None:
        """A client connection the server's limits answered early or closed."""
        self._cut[(reason,)] = self._cut.get((reason,), 0.0) + 1
        self.metrics.changed = True

    def record(self, record: RequestRecord) -> None:
        """Log the request now; count it with the next batch (at most ``FOLD_EVERY`` later, and before
        any scrape or snapshot): the tables are then updated in one tight loop, not between requests."""
        self._unfolded.append(record)
        if len(self._unfolded) >= FOLD_EVERY:
            self._fold()
        if self.access is None and not access_log.isEnabledFor(logging.INFO):
            return
        record.seal()
        if self.access is not None:
            self.access.write(record)
        else:
            # Embedded (tests, tools): through logging, as any handler expects. What the serve
            # command wires up is the AccessLog writer above, off the event loop.
            access_log.handle(AccessRecord(record.log_fields()))

    def _fold(self) -> None:
        records, self._unfolded = self._unfolded, []
        observe = self.metrics.observe
        for record in records:
            vendor, operation = record.vendor or "", record.operation or ""
            key = (record.tenant or "", record.connection or "", vendor, operation, str(record.status))
            self._requests[key] = self._requests.get(key, 0.0) + 1
            timed = (vendor, operation)
            observe("gateway_request_duration_seconds", timed, record.ms / 1000)
            if record.upstream_ms:  # only requests that went to the vendor: a cache hit has no upstream time
                observe("gateway_upstream_duration_seconds", timed, record.upstream_ms / 1000)
            if record.vendor is not None:
                observe("gateway_overhead_duration_seconds", timed, max(0.0, record.ms - record.upstream_ms) / 1000)
            if record.cache is not None:
                self._cache[(record.cache,)] = self._cache.get((record.cache,), 0.0) + 1
            if record.retries:
                self._retries[(vendor,)] = self._retries.get((vendor,), 0.0) + record.retries
            if record.error is not None and record.error.startswith("upstream_"):
                self._errors[(vendor, record.error)] = self._errors.get((vendor, record.error), 0.0) + 1
            for name in record.dropped or ():
                self._dropped[(vendor, name)] = self._dropped.get((vendor, name), 0.0) + 1
        if records:
            self.metrics.changed = True

    def set_circuits(self, states: dict[str, str]) -> None:
        for connection, state in states.items():
            self._circuits[(connection,)] = 1.0 if state == "open" else 0.0
        self.metrics.changed = True

    def exposition(self) -> bytes:
        self._fold()
        return self.metrics.exposition()

    async def share(self, circuits: Callable[[], dict[str, str]]) -> None:
        """With several workers: write this worker's values for the others, whenever they changed."""
        if self.metrics.folder is None:
            return
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            self.set_circuits(circuits())
            self._fold()
            if self.metrics.changed:
                self.metrics.snapshot()

    def close(self) -> None:
        """Shutdown: the last access lines written, the last values shared."""
        if self.access is not None:
            self.access.close()
        self._fold()
        self.metrics.snapshot()


class AccessFormatter(logging.Formatter):
    """One line per record: JSON, or for people at a terminal, short text. Access records carry fields."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is None:
            fields = {
                "time": _iso(datetime.fromtimestamp(record.created, UTC)),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                fields["exception"] = record.exc_text
        if self.json_lines:
            return orjson.dumps(fields).decode()
        if "status" in fields:
            return access_text(fields)
        text = f"{fields['time']} {fields['level'].upper()} {fields['logger']}: {fields['message']}"
        return text + ("\n" + fields["exception"] if "exception" in fields else "")


def access_writer(spec: LoggingSpec) -> AccessLog | None:
    """The access-line writer a served worker uses (None when the level hides access lines)."""
    if logging.getLevelName(spec.level.upper()) > logging.INFO:
        return None
    render = json_line if _json_lines(spec.format) else text_line
    return AccessLog(sys.stderr.fileno(), render, spec.flush_seconds)


def _json_lines(fmt: str) -> bool:
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


def configure_logging(level: str, fmt: str) -> list[logging.Handler]:
    """Send every log line to stderr, as JSON lines or (``auto`` at a terminal) readable text."""
    json_lines = _json_lines(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(AccessFormatter(json_lines))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs each call at info; the access line already tells each request once, with its upstream status
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return [handler]


def text_line(record: RequestRecord) -> bytes:
    return (access_text(record.log_fields()) + "\n").encode()


def access_text(fields: dict[str, Any]) -> str:
    """An access line for people at a terminal."""
    who = f"{fields['tenant'] or '-'}/{fields['key'] or '-'}"
    where = f"{fields['connection'] or '-'} {fields['operation'] or '-'}"
    cache = f" cache={fields['cache']}" if fields["cache"] else ""
    dropped = f" dropped={','.join(fields['dropped'])}" if fields.get("dropped") else ""
    return (
        f"{fields['time']} {fields['method']} {_printable(fields['path'])} {fields['status']} {who} {where}"
        f"{cache}{dropped} {fields['ms']}ms (upstream {fields['upstream_ms']}ms) {fields['request_id']}"
    )


def _printable(text: str) -> str:
    """Control characters shown as escapes: a path must not start a forged line or drive a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Clock:
    """The time as an access line writes it (UTC, milliseconds): formatted once per millisecond
    (lines come many to a millisecond under load), the seconds once per second."""

    def __init__(self) -> None:
        self._millisecond, self._text = -1, ""
        self._second, self._prefix = -1, ""

    def now(self) -> str:
        millisecond = int(time.time() * 1000)
        if millisecond != self._millisecond:
            second, fraction = divmod(millisecond, 1000)
            if second != self._second:
                self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._millisecond, self._text = millisecond, f"{self._prefix}.{fraction:03d}Z"
        return self._text


_clock = _Clock()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
