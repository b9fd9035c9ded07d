"""The outbox, on SQLite and on Redis alike: stored once per vendor notification, claimed by one, in order.

Each test runs on both backends (a temp SQLite file; a real redis-server) through the same calls,
with the clock passed in, so leases and due times are exercised without waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.events.outbox import NewEvent, Outbox, Outcome, new_event_id
from gateway.events.redis_outbox import RedisOutbox
from gateway.events.sqlite_outbox import SqliteOutbox
from tests.conftest import RedisServer

NOW = 1_900_000_000.0
LEASE = 60.0
DAY = 86400.0
Make = Callable[[], Outbox]


@pytest.fixture(params=["sqlite", "redis"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Make]:
    """Opens outboxes on one shared store (as several processes would); all are closed afterwards."""
    opened: list[Outbox] = []
    server = None
    if request.param == "redis":
        server = RedisServer()
        server.start()

    def open_one() -> Outbox:
        if server is not None:
            outbox: Outbox = RedisOutbox(server.url, retention_seconds=DAY)
        else:
            outbox = SqliteOutbox(tmp_path / "events.sqlite3")
        opened.append(outbox)
        return outbox

    yield open_one
    for outbox in opened:
        await outbox.close()
    if server is not None:
        server.stop()


def event(
    tenant: str = "t1",
    campaign: str | None = "c1",
    dedupe: str = "",
    kind: str = "call.completed",
    destination: str | None = "http://127.0.0.1:9/hook",
    created: float = NOW,
) -> NewEvent:
    event_id = new_event_id(created)
    body = f'{{"id": "{event_id}"}}'.encode()
    return NewEvent(event_id, tenant, "conn", campaign, kind, dedupe or event_id, body, created, destination)


async def test_a_notification_is_stored_once_and_its_retries_find_it(make: Make) -> None:
    outbox = make()
    first = event(dedupe="attempt-1")
    assert await outbox.add(first) == (first.id, False)
    for _ in range(4):
        assert await outbox.add(event(dedupe="attempt-1")) == (first.id, True)
    assert await outbox.add(event(tenant="t2", dedupe="attempt-1")) != (first.id, True)  # another tenant's
    assert len(await outbox.page("t1", None, None, 0, 100)) == 1


async def test_a_claimed_delivery_is_no_one_elses_until_its_lease_ends(make: Make) -> None:
    one, other = make(), make()
    stored = event()
    await one.add(stored)
    [claimed] = await one.claim(NOW, LEASE, "one", 10)
    assert (claimed.id, claimed.body, claimed.attempts) == (stored.id, stored.body, 0)
    assert await other.claim(NOW + 1, LEASE, "other", 10) == []
    [again] = await other.claim(NOW + LEASE + 1, LEASE, "other", 10)  # the first one died mid-try
    assert again.id == stored.id
    await one.finish(stored.id, "one", Outcome("delivered", 200, at=NOW + 2))  # too late: not its lease any more
    assert (await other.get("t1", stored.id)).delivery["state"] == "pending"  # type: ignore[union-attr]
    await other.finish(stored.id, "other", Outcome("delivered", 200, at=NOW + LEASE + 2))
    found = await other.get("t1", stored.id)
    assert found is not None
    assert (found.delivery["state"], found.delivery["attempts"], found.delivery["last_status"]) == ("delivered", 1, 200)


async def test_a_campaigns_deliveries_go_one_at_a_time_in_order(make: Make) -> None:
    outbox = make()
    first, second, elsewhere = event(), event(created=NOW + 1), event(campaign="c2", created=NOW + 2)
    for each in (first, second, elsewhere):
        await outbox.add(each)
    claimed = await outbox.claim(NOW + 5, LEASE, "me", 10)
    assert {c.id for c in claimed} == {first.id, elsewhere.id}
    await outbox.finish(first.id, "me", Outcome("pending", 500, "HTTP 500", due=NOW + 30, at=NOW + 6))
    assert await outbox.claim(NOW + 7, LEASE, "me", 10) == []  # the second waits behind the first's retry
    [retried] = await outbox.claim(NOW + 31, LEASE, "me", 10)
    assert (retried.id, retried.attempts) == (first.id, 1)
    await outbox.finish(first.id, "me", Outcome("dead", 500, "HTTP 500", at=NOW + 32))
    [following] = await outbox.claim(NOW + 33, LEASE, "me", 10)
    assert following.id == second.id


async def test_an_event_with_nowhere_to_go_is_listed_and_never_claimed(make: Make) -> None:
    outbox = make()
    stored = event(destination=None)
    await outbox.add(stored)
    assert await outbox.claim(NOW + 1, LEASE, "me", 10) == []
    [found] = await outbox.page("t1", None, None, 0, 10)
    assert found.delivery["state"] == "undeliverable"
    delivery = await outbox.redeliver("t1", stored.id, "http://127.0.0.1:9/new", NOW + 2)
    assert delivery is not None and delivery["state"] == "pending"
    [claimed] = await outbox.claim(NOW + 3, LEASE, "me", 10)
    assert claimed.destination == "http://127.0.0.1:9/new"


async def test_redelivery_starts_a_new_round_and_another_tenant_cannot_ask_it(make: Make) -> None:
    outbox = make()
    stored = event()
    await outbox.add(stored)
    await outbox.claim(NOW, LEASE, "me", 1)
    await outbox.finish(stored.id, "me", Outcome("dead", 410, "HTTP 410", at=NOW + 1))
    assert await outbox.redeliver("t2", stored.id, stored.destination or "", NOW + 2) is None
    delivery = await outbox.redeliver("t1", stored.id, stored.destination or "", NOW + 2)
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == ("pending", 0, None)
    [claimed] = await outbox.claim(NOW + 3, LEASE, "me", 10)
    assert claimed.id == stored.id


async def test_pages_filter_by_campaign_and_type_and_keep_tenants_apart(make: Make) -> None:
    outbox = make()
    events = [
        event(campaign="a", kind="call.completed"),
        event(campaign="b", kind="call.failed"),
        event(campaign="a", kind="call.failed"),
        event(tenant="t2", campaign="a", kind="call.failed"),
    ]
    for each in events:
        await outbox.add(each)
    everything = await outbox.page("t1", None, None, 0, 10)
    assert [f.body for f in everything] == [e.body for e in events[:3]]
    assert [f.body for f in await outbox.page("t1", "a", None, 0, 10)] == [events[0].body, events[2].body]
    assert [f.body for f in await outbox.page("t1", None, "call.failed", 0, 10)] == [events[1].body, events[2].body]
    assert [f.body for f in await outbox.page("t1", "a", "call.failed", 0, 10)] == [events[2].body]
    after_first = await outbox.page("t1", None, None, everything[0].seq, 1)
    assert [f.body for f in after_first] == [events[1].body]
    assert [f.body for f in await outbox.page("t2", None, None, 0, 10)] == [events[3].body]
    assert await outbox.get("t2", events[0].id) is None


async def test_prune_forgets_what_is_done_and_old_and_keeps_what_is_pending(make: Make) -> None:
    outbox = make()
    done, pending = event(campaign="a"), event(campaign="b")
    for each in (done, pending):
        await outbox.add(each)
    await outbox.claim(NOW, LEASE, "me", 10)
    await outbox.finish(done.id, "me", Outcome("delivered", 204, at=NOW + 1))
    assert await outbox.prune(NOW + 1) == 1
    assert [f.body for f in await outbox.page("t1", None, None, 0, 10)] == [pending.body]


async def test_destinations_and_the_hook_key_are_shared(make: Make) -> None:
    one, other = make(), make()
    await one.remember("t1", "conn", "c1", "https://example.com/a")
    await one.remember("t1", "conn", "c1", "https://example.com/b")
    assert await other.destinations("t1", "conn", ["c1", "c2"]) == {"c1": "https://example.com/b"}
    assert await other.destinations("t2", "conn", ["c1"]) == {}
    key = await one.hook_key()
    assert len(key) == 32 and await other.hook_key() == key


async def test_an_event_goes_where_its_campaign_was_told_else_to_the_default(make: Make) -> None:
    outbox = make()
    await outbox.remember("t1", "conn", "c1", "https://client.example/c1")
    own, other = event(campaign="c1", destination="https://tenant.example/all"), event(campaign="c2")
    for each in (own, other):
        await outbox.add(each)
    claimed = {c.id: c.destination for c in await outbox.claim(NOW, LEASE, "me", 10)}
    assert claimed == {own.id: "https://client.example/c1", other.id: other.destination}


async def test_a_redelivered_event_waits_for_its_campaigns_pending_delivery(make: Make) -> None:
    outbox = make()
    older, newer = event(), event(created=NOW + 1)
    await outbox.add(older)
    await outbox.claim(NOW, LEASE, "me", 10)
    await outbox.finish(older.id, "me", Outcome("delivered", 200, at=NOW + 1))
    await outbox.add(newer)
    [claimed] = await outbox.claim(NOW + 2, LEASE, "me", 10)
    assert claimed.id == newer.id
    await outbox.redeliver("t1", older.id, older.destination or "", NOW + 3)
    assert await outbox.claim(NOW + 4, LEASE, "me", 10) == []  # one at a time: the newer one is being tried
    await outbox.finish(newer.id, "me", Outcome("delivered", 200, at=NOW + 5))
    [again] = await outbox.claim(NOW + 6, LEASE, "me", 10)
    assert again.id == older.id
