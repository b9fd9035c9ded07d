"""Per-request audit log lines and Prometheus metrics. No key or credential is ever passed in."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

access_log = logging.getLogger("gateway.access")


@dataclass
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
            buckets=(
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
        )

    def record(self, record: RequestRecord) -> None:
        vendor, operation = record.vendor or "", record.operation or ""
        self.requests.labels(record.tenant or "", record.connection or "", vendor, operation, str(record.status)).inc()
        self.latency.labels(vendor, operation).observe(record.ms / 1000)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(orjson.dumps(asdict(record)).decode())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
