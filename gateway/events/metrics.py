"""The events' Prometheus series, next to the request metrics (and, with workers, in the same shared folder)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.telemetry import MULTIPROCESS_ENV

# From a second (a receiver that is up) to days (one that was down for a while).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400, 259200)


class EventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # With workers, values live in the shared folder and the registry's collector sums them.
        target = None if os.environ.get(MULTIPROCESS_ENV) else registry
        self.received = Counter(
            "gateway_events_received",
            "Vendor callbacks, by result: stored, duplicate (a vendor's retry), ignored (no event), or refused "
            "(unknown_token, unauthorized, invalid, too_large, unavailable)",
            ["vendor", "result"],
            registry=target,
        )
        self.translated = Counter(
            "gateway_events_translated",
            "Canonical events made from vendor callbacks",
            ["vendor", "type"],
            registry=target,
        )
        self.delivered = Counter(
            "gateway_events_delivered", "Events a tenant's endpoint took (2xx)", ["tenant", "type"], registry=target
        )
        self.retried = Counter(
            "gateway_events_retried", "Failed delivery tries that will be tried again", ["tenant"], registry=target
        )
        self.dead = Counter(
            "gateway_events_dead_lettered", "Events whose every delivery try failed", ["tenant"], registry=target
        )
        self.latency = Histogram(
            "gateway_event_delivery_latency_seconds",
            "From the vendor's callback stored to the endpoint's 2xx",
            registry=target,
            buckets=LATENCY_BUCKETS,
        )
