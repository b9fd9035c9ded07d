"""Retries with backoff, and a circuit breaker per connection.

Retries: only for operations safe to repeat (reads, and writes the map marks idempotent, or a
create carrying an Idempotency-Key), only on faults worth retrying (the vendor could not be
reached, 429, 502, 503, 504), with exponential backoff and full jitter, honouring Retry-After,
bounded in attempts and by the request's total time budget.

Retry budget: retries per connection are at most a share of its requests over the last 10 s (and
a few more whatever the traffic), so a vendor that fails everything gets little more than the
requests themselves, never ``attempts`` times as many calls.

Circuit breaker: when the share of failed calls over the last ``window_seconds`` (ten buckets that
leave one by one, so older calls weigh nothing) passes a threshold (after a minimum number of
calls), the connection's circuit opens and calls are refused at once with 503 and Retry-After;
after ``open_seconds`` one probe call is let through (half open): success closes the circuit,
failure opens it again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import CircuitSpec, RetrySpec
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable

T = TypeVar("T")
BUCKETS = 10
BUDGET_SECONDS = 10.0
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
    budget: RetryBudget,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``call()``, again after retryable faults while attempts, the time budget and the retry budget last."""
    attempt = 1
    while True:
        try:
            return await call()
        except GatewayError as error:
            if attempt >= spec.attempts or not retryable(error):
                raise
            pause = backoff(spec, attempt, error)
            if time.monotonic() + pause >= deadline or not budget.spend():
                raise
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(pause)
            attempt += 1


class SlidingCounts:
    """Two running counts over the last ``seconds``, kept in BUCKETS buckets: a bucket leaves whole once
    it is older than the window, so the past weighs nothing after ``seconds``. O(1) per call."""

    def __init__(self, seconds: float) -> None:
        self.width = seconds / BUCKETS
        self.buckets: deque[list[int]] = deque()  # [bucket number, first, second], oldest first
        self.first = self.second = 0

    def add(self, first: int, second: int, now: float) -> None:
        number = self._expire(now)
        if not self.buckets or self.buckets[-1][0] != number:
            self.buckets.append([number, 0, 0])
        bucket = self.buckets[-1]
        bucket[1] += first
        bucket[2] += second
        self.first += first
        self.second += second

    def totals(self, now: float) -> tuple[int, int]:
        self._expire(now)
        return self.first, self.second

    def clear(self) -> None:
        self.buckets.clear()
        self.first = self.second = 0

    def _expire(self, now: float) -> int:
        number = int(now / self.width)
        while self.buckets and self.buckets[0][0] <= number - BUCKETS:
            _, first, second = self.buckets.popleft()
            self.first -= first
            self.second -= second
        return number


class CircuitBreaker:
    """Opens when, over the last ``window_seconds``, at least ``min_requests`` calls were made and a share
    ``failure_ratio`` of them failed; calls older than the window no longer count."""

    def __init__(self, spec: CircuitSpec, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.name = name
        self.clock = clock
        self.outcomes = SlidingCounts(spec.window_seconds)  # calls, failures
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.spec.open_seconds else "open"

    def before_call(self, vendor: str) -> None:
        """Refuse at once while open; in half-open state let exactly one probe through."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self.probing:
            self.probing = True
            return
        wait = max(1, round(self.spec.open_seconds - (self.clock() - (self.opened_at or 0))))
        raise CircuitOpen(
            f"{vendor} is failing; the gateway stopped calling it for a while (circuit open)",
            vendor=vendor,
            headers={"Retry-After": str(wait)},
        )

    def after_call(self, failed: bool) -> None:
        now = self.clock()
        if self.opened_at is not None:
            if self.probing:
                self.probing = False
                self.opened_at = now if failed else None
                self.outcomes.clear()
            return
        self.outcomes.add(1, int(failed), now)
        calls, failures = self.outcomes.totals(now)
        if calls >= self.spec.min_requests and failures / calls >= self.spec.failure_ratio:
            self.opened_at = now
            self.outcomes.clear()

    def abandon(self) -> None:
        """A call that ended with no verdict (cancelled): if it was the probe, the next call probes."""
        self.probing = False


class RetryBudget:
    """Retries per connection, over the last BUDGET_SECONDS: ``budget_ratio`` of the requests, plus
    ``budget_min_retries`` whatever the traffic. A vendor that fails every call gets at most that share
    more calls, not ``attempts`` times as many."""

    def __init__(self, spec: RetrySpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.clock = clock
        self.counts = SlidingCounts(BUDGET_SECONDS)  # requests, retries

    def request(self) -> None:
        self.counts.add(1, 0, self.clock())

    def spend(self) -> bool:
        """Whether one more retry fits the budget (then it is counted)."""
        now = self.clock()
        requests, retries = self.counts.totals(now)
        if retries + 1 > self.spec.budget_ratio * requests + self.spec.budget_min_retries:
            return False
        self.counts.add(0, 1, now)
        return True


def counts_as_failure(error: GatewayError | None) -> bool:
    """Vendor faults count against the circuit: no answer, a 5xx, or an answer the gateway cannot use
    (a 2xx that is not JSON, cut short, too large, or not the shape its map reads). A vendor's 4xx
    answer is a healthy vendor saying no."""
    if error is None:
        return False
    if isinstance(error, UpstreamTimeout | UpstreamUnavailable):
        return True
    status = error.upstream_status
    if isinstance(error, UpstreamError) and (status is None or status < 400):
        return True
    return status is not None and status >= 500
