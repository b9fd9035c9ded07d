"""Per-request audit lines and Prometheus metrics. No key or credential is ever passed in.

The record of the request being served sits in a context variable, so the upstream client can
add its own time and status to it without being handed the record.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

access_log = logging.getLogger("gateway.access")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    tenant: str | None = None
    key: str | None = None
    connection: str | None = None
    vendor: str | None = None
    operation: str | None = None
    upstream_status: int | None = None
    cache: str | None = None
    error: str | None = None
    upstream_ms: float = 0.0
    retries: int = 0
    ms: float = 0.0
    dropped: list[str] | None = None  # canonical fields a lenient write left out

    def add_upstream(self, seconds: float) -> None:
        self.upstream_ms += seconds * 1000

    def add_retry(self) -> None:
        self.retries += 1

    def server_timing(self) -> bytes:
        """``Server-Timing``: the vendor's time and the gateway's own, so far, in milliseconds."""
        total = (time.perf_counter() - self.started) * 1000
        upstream = self.upstream_ms
        return f"upstream;dur={upstream:.3f}, gateway;dur={max(0.0, total - upstream):.3f}".encode()

    def log_fields(self) -> dict[str, Any]:
        return {
            "time": _iso(datetime.now(UTC)),
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "tenant": self.tenant,
            "key": self.key,
            "connection": self.connection,
            "vendor": self.vendor,
            "operation": self.operation,
            "upstream_status": self.upstream_status,
            "cache": self.cache,
            "error": self.error,
            "ms": round(self.ms, 3),
            "upstream_ms": round(self.upstream_ms, 3),
            "retries": self.retries,
            "dropped": self.dropped,
        }


class AccessRecord(logging.LogRecord):
    """An access line: its fields, and (for any handler that asks) their JSON as the message."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(access_log.name, logging.INFO, "", 0, "", None, None)
        self.fields = fields

    def getMessage(self) -> str:
        return orjson.dumps(self.fields).decode()


current_record: ContextVar[RequestRecord | None] = ContextVar("current_record", default=None)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        if os.environ.get(MULTIPROCESS_ENV):
            multiprocess.MultiProcessCollector(self.registry)
            metrics_registry = None  # values live in the shared folder; the collector sums the workers
        else:
            metrics_registry = self.registry
        request_labels = ["tenant", "connection", "vendor", "operation", "status"]
        self.requests = Counter("gateway_requests", "Requests answered", request_labels, registry=metrics_registry)
        timed = ["vendor", "operation"]
        self.latency = _histogram("gateway_request_duration_seconds", "Time to answer", timed, metrics_registry)
        self.upstream_latency = _histogram(
            "gateway_upstream_duration_seconds", "Time spent waiting for the vendor", timed, metrics_registry
        )
        self.overhead = _histogram(
            "gateway_overhead_duration_seconds", "The gateway's own time (total - upstream)", timed, metrics_registry
        )
        self.cache_results = Counter(
            "gateway_cache", "Cache results of cacheable reads", ["result"], registry=metrics_registry
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Vendor faults by kind", ["vendor", "code"], registry=metrics_registry
        )
        self.retries = Counter("gateway_upstream_retries", "Upstream retries", ["vendor"], registry=metrics_registry)
        self.dropped = Counter(
            "gateway_dropped_fields",
            "Canonical fields left out of lenient writes because the vendor cannot carry them",
            ["vendor", "field"],
            registry=metrics_registry,
        )
        self.circuit_open = Gauge(
            "gateway_circuit_open",
            "1 while a connection's circuit breaker is open",
            ["connection"],
            registry=metrics_registry,
            multiprocess_mode="max",
        )
        self.connections_cut = Counter(
            "gateway_connections_cut",
            "Client connections answered early or closed by the server's limits (slow, oversized, too many)",
            ["reason"],
            registry=metrics_registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def cut(self, reason: str) -> None:
        self._child(self.connections_cut, reason).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """A labelled child, looked up once per label set: prometheus_client's labels() takes a lock."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, record: RequestRecord) -> None:
        vendor, operation = record.vendor or "", record.operation or ""
        status = str(record.status)
        self._child(self.requests, record.tenant or "", record.connection or "", vendor, operation, status).inc()
        self._child(self.latency, vendor, operation).observe(record.ms / 1000)
        if record.upstream_ms:  # only requests that went to the vendor: a cache hit has no upstream time
            self._child(self.upstream_latency, vendor, operation).observe(record.upstream_ms / 1000)
        if record.vendor is not None:
            self._child(self.overhead, vendor, operation).observe(max(0.0, record.ms - record.upstream_ms) / 1000)
        if record.cache is not None:
            self._child(self.cache_results, record.cache).inc()
        if record.retries:
            self._child(self.retries, vendor).inc(record.retries)
        for name in record.dropped or ():
            self._child(self.dropped, vendor, name).inc()
        if record.error is not None and record.error.startswith("upstream_"):
            self._child(self.upstream_errors, vendor, record.error).inc()
        if access_log.isEnabledFor(logging.INFO):
            # What .info() does, without walking the stack for a caller.
            access_log.handle(AccessRecord(record.log_fields()))

    def set_circuits(self, states: dict[str, str]) -> None:
        for connection, state in states.items():
            self._child(self.circuit_open, connection).set(1 if state == "open" else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _histogram(name: str, documentation: str, labels: list[str], registry: CollectorRegistry | None) -> Histogram:
    return Histogram(name, documentation, labels, registry=registry, buckets=LATENCY_BUCKETS)


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
            who = f"{fields['tenant'] or '-'}/{fields['key'] or '-'}"
            where = f"{fields['connection'] or '-'} {fields['operation'] or '-'}"
            cache = f" cache={fields['cache']}" if fields["cache"] else ""
            dropped = f" dropped={','.join(fields['dropped'])}" if fields.get("dropped") else ""
            return (
                f"{fields['time']} {fields['method']} {_printable(fields['path'])} {fields['status']} {who} {where}"
                f"{cache}{dropped} {fields['ms']}ms (upstream {fields['upstream_ms']}ms) {fields['request_id']}"
            )
        text = f"{fields['time']} {fields['level'].upper()} {fields['logger']}: {fields['message']}"
        return text + ("\n" + fields["exception"] if "exception" in fields else "")


def configure_logging(level: str, fmt: str) -> list[logging.Handler]:
    """Send every log line to stderr, as JSON lines or (``auto`` at a terminal) readable text."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(AccessFormatter(json_lines))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return [handler]


def _printable(text: str) -> str:
    """Control characters shown as escapes: a path must not start a forged line or drive a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
