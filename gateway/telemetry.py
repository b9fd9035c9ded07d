"""Per-request audit log lines and Prometheus metrics. No key or credential is ever passed in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

access_log = logging.getLogger("gateway.access")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    path: str
    status: int = 0
    tenant: str | None = None
    key: str | None = None
    connection: str | None = None
    vendor: str | None = None
    operation: str | None = None
    upstream_status: int | None = None
    cache: str | None = None
    ms: float = 0.0


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["tenant", "connection", "vendor", "operation", "status"]
        self.requests = Counter("gateway_requests", "Requests answered", labels, registry=self.registry)
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time to answer a request",
            ["vendor", "operation"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        # Labelled children, looked up once per label set: prometheus_client's labels() takes a lock.
        self._counted: dict[tuple[str, ...], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def record(self, record: RequestRecord) -> None:
        vendor, operation = record.vendor or "", record.operation or ""
        counted_key = (record.tenant or "", record.connection or "", vendor, operation, str(record.status))
        counted = self._counted.get(counted_key)
        if counted is None:
            counted = self._counted[counted_key] = self.requests.labels(*counted_key)
        counted.inc()
        timed = self._timed.get((vendor, operation))
        if timed is None:
            timed = self._timed[(vendor, operation)] = self.latency.labels(vendor, operation)
        timed.observe(record.ms / 1000)
        if access_log.isEnabledFor(logging.INFO):
            # makeRecord + handle: the same record as .info(), without walking the stack for a caller.
            line = orjson.dumps(record).decode()
            access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, line, None, None))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
