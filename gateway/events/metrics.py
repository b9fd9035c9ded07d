"""The events' series, next to the request metrics (counted and shared the same way: gateway/metrics.py)."""

from __future__ import annotations

from gateway.metrics import Definition, Metrics

# From a second (a receiver that is up) to days (one that was down for a while).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400, 259200)
DEFINITIONS = [
    Definition(
        "gateway_events_received",
        "Vendor callbacks, by result: stored, duplicate (a vendor's retry), ignored (no event), or refused "
        "(unknown_token, unauthorized, invalid, too_large, unavailable)",
        ("vendor", "result"),
        "counter",
    ),
    Definition(
        "gateway_events_translated", "Canonical events made from vendor callbacks", ("vendor", "type"), "counter"
    ),
    Definition("gateway_events_delivered", "Events a tenant's endpoint took (2xx)", ("tenant", "type"), "counter"),
    Definition("gateway_events_retried", "Failed delivery tries that will be tried again", ("tenant",), "counter"),
    Definition("gateway_events_dead_lettered", "Events whose every delivery try failed", ("tenant",), "counter"),
    Definition(
        "gateway_event_delivery_latency_seconds",
        "From the vendor's callback stored to the endpoint's 2xx",
        (),
        "histogram",
        LATENCY_BUCKETS,
    ),
]


class EventMetrics:
    def __init__(self, metrics: Metrics) -> None:
        metrics.add(DEFINITIONS)
        self.received = metrics.series("gateway_events_received")
        self.translated = metrics.series("gateway_events_translated")
        self.delivered = metrics.series("gateway_events_delivered")
        self.retried = metrics.series("gateway_events_retried")
        self.dead = metrics.series("gateway_events_dead_lettered")
        self.latency = metrics.series("gateway_event_delivery_latency_seconds")
