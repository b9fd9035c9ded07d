"""The delivery loop: one per process, claiming due deliveries from the outbox and sending them signed.

Every process that serves runs it (each worker of ``gateway serve --workers N``, each instance on
one Redis); the outbox's leases decide which one tries a given delivery. A try is a POST of the
event's stored bytes with the Standard Webhooks headers; any 2xx delivers it. Anything else (a
3xx too: redirects are not followed; no answer within ``timeout_seconds``) is retried after the
next gap of ``retry_seconds`` (at least the endpoint's Retry-After, up to a day), and after the
last gap the event is dead. 410 Gone is dead at once (the endpoint says it is gone for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from gateway.config import Config
from gateway.events import signing
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import Claimed, Outbox, Outcome, iso
from gateway.events.settings import EventsSettings

log = logging.getLogger("gateway.events")
USER_AGENT = "campaign-gateway-webhooks/1"
MAX_RETRY_AFTER = 86400.0
PRUNE_EVERY = 3600.0
GONE = 410


def next_gap(settings: EventsSettings, tries: int, retry_after: float | None) -> float | None:
    """Seconds until the next try after ``tries`` failed ones; None when that was the last."""
    if tries > len(settings.retry_seconds):
        return None
    gap = settings.retry_seconds[tries - 1] * (1 + random.uniform(-settings.jitter, settings.jitter))
    return max(gap, min(retry_after or 0.0, MAX_RETRY_AFTER))


class Deliverer:
    def __init__(self, outbox: Outbox, config: Callable[[], Config], metrics: EventMetrics) -> None:
        self.outbox = outbox
        self._config = config
        self._metrics = metrics
        self.owner = os.urandom(8).hex()  # this process's name on the leases it takes
        self._wake = asyncio.Event()
        self._tries: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pruned = 0.0

    def start(self) -> None:
        if self._task is None:
            self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def wake(self) -> None:
        """Look for due deliveries now (an event was just stored), not at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        tasks = [task for task in (self._task, *self._tries) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        failing = False
        while True:
            settings = self._config().events
            free = settings.concurrency - len(self._tries)
            claimed: list[Claimed] = []
            try:
                if free > 0:
                    claimed = await self.outbox.claim(time.time(), settings.lease_seconds, self.owner, free)
                await self._prune(settings)
                if failing:
                    log.warning("events: the outbox is reachable again")
                failing = False
            except Exception as exc:  # the outbox is down (Redis): keep trying; what is stored stays stored
                if not failing:
                    log.warning("events: cannot read the outbox (%s); retrying", type(exc).__name__)
                failing = True
            for delivery in claimed:
                task = asyncio.get_running_loop().create_task(self._try(delivery, settings))
                self._tries.add(task)
                task.add_done_callback(self._done)
            if len(claimed) < free or len(self._tries) >= settings.concurrency:  # else more may be due at once
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that meets a wake-up
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.poll_seconds):
                        await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tries.discard(task)
        self._wake.set()  # a slot is free

    async def _prune(self, settings: EventsSettings) -> None:
        now = time.time()
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            await self.outbox.prune(now - settings.retention_days * 86400)

    async def _try(self, delivery: Claimed, settings: EventsSettings) -> None:
        started = time.monotonic()
        status, retry_after, error = await self._send(delivery, settings)
        now = time.time()
        tries = delivery.attempts + 1
        if status is not None and 200 <= status < 300:
            outcome = Outcome("delivered", status, at=now)
            self._metrics.delivered.labels(delivery.tenant, delivery.type).inc()
            self._metrics.latency.observe(max(0.0, now - delivery.created))
        else:
            gap = None if status == GONE else next_gap(settings, tries, retry_after)
            state = "dead" if gap is None else "pending"
            outcome = Outcome(state, status, error, due=None if gap is None else now + gap, at=now)
            counter = self._metrics.dead if gap is None else self._metrics.retried
            counter.labels(delivery.tenant).inc()
        try:
            await self.outbox.finish(delivery.id, self.owner, outcome)
        except Exception as exc:  # the lease ends and the delivery is tried again: at least once
            log.warning("events: could not record a try of %s (%s)", delivery.id, type(exc).__name__)
        ms = (time.monotonic() - started) * 1000
        then = f"; next try at {iso(outcome.due)}" if outcome.due is not None else ""
        log.info(
            "delivery %s %s tenant=%s connection=%s to=%s try=%d -> %s (%s) in %.1f ms%s",
            delivery.id,
            delivery.type,
            delivery.tenant,
            delivery.connection,
            urlsplit(delivery.destination).netloc,
            tries,
            outcome.state,
            status if status is not None else error,
            ms,
            then,
        )

    async def _send(self, delivery: Claimed, settings: EventsSettings) -> tuple[int | None, float | None, str | None]:
        """The endpoint's status (None: no answer), its Retry-After, and what went wrong in words."""
        tenant = self._config().tenants.get(delivery.tenant)
        webhooks = tenant.webhooks if tenant is not None else None
        if webhooks is None or self._session is None:
            return None, None, "the tenant has no webhooks.secret to sign with"
        headers = signing.headers(webhooks.key, delivery.id, int(time.time()), delivery.body)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        try:
            async with self._session.post(
                delivery.destination, data=delivery.body, headers=headers, timeout=timeout, allow_redirects=False
            ) as answer:
                await answer.content.read(64 * 1024)  # the answer is not used; read a little, then let it go
                status = answer.status
                error = None if 200 <= status < 300 else f"HTTP {status}"
                return status, _seconds(answer.headers.get("retry-after")), error
        except TimeoutError:
            return None, None, f"no answer within {settings.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            return None, None, f"could not reach the endpoint ({type(exc).__name__})"


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the schedule's own gap applies
