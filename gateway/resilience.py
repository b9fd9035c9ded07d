"""Retries with backoff, and a circuit breaker per connection.

Retries: only for operations safe to repeat (reads, and writes the map marks idempotent, or a
create carrying an Idempotency-Key), only on faults worth retrying (the vendor could not be
reached, 429, 502, 503, 504), with exponential backoff and full jitter, honouring Retry-After,
bounded in attempts and by the request's total time budget.

Circuit breaker: when the share of failed calls over the recent window passes a threshold (after
a minimum number of calls), the connection's circuit opens and calls are refused at once with
503 and Retry-After; after ``open_seconds`` one probe call is let through (half open): success
closes the circuit, failure opens it again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.config import CircuitSpec, RetrySpec
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable

T = TypeVar("T")
RETRYABLE_CODES = frozenset({"upstream_unavailable", "upstream_timeout", "rate_limited"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class CircuitOpen(UpstreamUnavailable):
    """The breaker refused the call: retrying now would only be refused again."""


def retryable(error: GatewayError) -> bool:
    if isinstance(error, CircuitOpen):
        return False
    if error.upstream_status is not None:
        return error.upstream_status in RETRYABLE_STATUSES
    return error.code in RETRYABLE_CODES  # no answer at all: connect error or timeout


def backoff(spec: RetrySpec, attempt: int, error: GatewayError) -> float:
    """Seconds before retry number ``attempt`` (1-based): Retry-After if the vendor gave one."""
    if error.retry_after is not None:
        return error.retry_after
    return random.uniform(0, min(spec.backoff_max_seconds, spec.backoff_base_seconds * 2 ** (attempt - 1)))


async def with_retries(
    spec: RetrySpec,
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``call()``, again after retryable faults while attempts and the time budget last."""
    attempt = 1
    while True:
        try:
            return await call()
        except GatewayError as error:
            if attempt >= spec.attempts or not retryable(error):
                raise
            pause = backoff(spec, attempt, error)
            if time.monotonic() + pause >= deadline:
                raise
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(pause)
            attempt += 1


@dataclass
class CircuitBreaker:
    """Outcomes are counted per second over the window: O(1) per call, memory bounded by the window."""

    spec: CircuitSpec
    name: str
    seconds: deque[list[int]] = field(default_factory=deque)  # [second, calls, failures], oldest first
    calls: int = 0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.spec.open_seconds else "open"

    def before_call(self, vendor: str) -> None:
        """Refuse at once while open; in half-open state let exactly one probe through."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self.probing:
            self.probing = True
            return
        wait = max(1, round(self.spec.open_seconds - (time.monotonic() - (self.opened_at or 0))))
        raise CircuitOpen(
            f"{vendor} is failing; the gateway stopped calling it for a while (circuit open)",
            vendor=vendor,
            headers={"Retry-After": str(wait)},
        )

    def after_call(self, failed: bool) -> None:
        now = time.monotonic()
        if self.opened_at is not None:
            if self.probing:
                self.probing = False
                self.opened_at = now if failed else None
                self._forget()
            return
        second = int(now)
        if not self.seconds or self.seconds[-1][0] != second:
            self.seconds.append([second, 0, 0])
        self.seconds[-1][1] += 1
        self.seconds[-1][2] += failed
        self.calls += 1
        self.failures += failed
        while self.seconds and self.seconds[0][0] <= now - self.spec.window_seconds:
            _, calls, failures = self.seconds.popleft()
            self.calls -= calls
            self.failures -= failures
        if self.calls >= self.spec.min_requests and self.failures / self.calls >= self.spec.failure_ratio:
            self.opened_at = now
            self._forget()

    def _forget(self) -> None:
        self.seconds.clear()
        self.calls = self.failures = 0


def counts_as_failure(error: GatewayError | None) -> bool:
    """Vendor faults count against the circuit; a vendor's 4xx answer is a healthy vendor saying no."""
    if error is None:
        return False
    if isinstance(error, UpstreamTimeout | UpstreamUnavailable):
        return True
    return error.upstream_status is not None and error.upstream_status >= 500
