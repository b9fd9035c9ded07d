"""One timer for many waits (gateway/deadlines.py): each wait ends as ``asyncio.timeout`` would end it."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.deadlines import Deadlines


async def wait(deadlines: Deadlines, seconds: float, work: float) -> str:
    """``work`` seconds of waiting under a ``seconds`` limit: 'done', or 'timeout' when the limit ends it."""
    try:
        async with asyncio.timeout(None) as scope:
            deadlines.watch(scope, seconds)
            try:
                await asyncio.sleep(work)
            finally:
                deadlines.forget(scope)
    except TimeoutError:
        return "timeout"
    return "done"


async def test_each_wait_ends_at_its_own_deadline_and_the_others_finish() -> None:
    deadlines = Deadlines()
    started = time.monotonic()
    ended: dict[str, float] = {}

    async def timed(name: str, seconds: float, work: float) -> str:
        outcome = await wait(deadlines, seconds, work)
        ended[name] = time.monotonic() - started
        return outcome

    outcomes = await asyncio.gather(
        timed("late-limit", 0.6, 0.1),  # armed first, for the latest deadline
        timed("short", 0.15, 5),
        timed("long", 0.4, 5),
        timed("in-time", 0.3, 0.05),
    )
    assert outcomes == ["done", "timeout", "timeout", "done"]
    assert 0.14 <= ended["short"] < 0.35  # not held until the first-armed timer's deadline
    assert 0.39 <= ended["long"] < 0.6
    assert not deadlines._waits


async def test_a_wait_that_ends_in_time_is_never_expired_later() -> None:
    deadlines = Deadlines()
    assert await wait(deadlines, 0.1, 0) == "done"
    assert await wait(deadlines, 0.5, 0.2) == "done"  # the first wait's timer fires meanwhile: nothing to expire
    assert not deadlines._waits


async def test_a_limit_of_zero_expires_at_the_next_turn() -> None:
    assert await wait(Deadlines(), 0, 1) == "timeout"


async def test_an_outer_cancellation_is_not_taken_for_a_timeout() -> None:
    deadlines = Deadlines()
    task = asyncio.create_task(wait(deadlines, 5, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._waits


def test_a_new_event_loop_gets_its_own_timer() -> None:
    """One Deadlines across two loops (tests, a restarted worker): the first loop's timer never fires."""
    deadlines = Deadlines()
    assert asyncio.run(wait(deadlines, 0.05, 0)) == "done"  # arms a timer on a loop that then closes
    assert asyncio.run(wait(deadlines, 0.2, 2)) == "timeout"  # a later deadline than that dead timer's
