"""Rate limits per key and per tenant: GCRA, exact in one process and, with Redis, across workers.

* ``gateway.ratelimit.decide`` on its own, with explicit timestamps: the burst, the sustained
  rate, no banking past the burst, Retry-After that is exactly long enough, several buckets
  all-or-nothing, the RateLimit headers.
* The in-process limiter through the app (one worker): 20 requests at once → exactly 5 pass
  (``{requests_per_minute: 60, burst: 5}``), the rest 429 with Retry-After and RateLimit-*; then
  refills on a fake clock; tenant limits shared by the tenant's keys; limits survive a reload and
  a changed limit applies on reload.
* A real `gateway serve --workers 2` on a real redis-server: 20 requests spread over both
  workers → exactly 5 pass; the tenant limit too.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway import ratelimit
from gateway.config import RateLimitSpec
from gateway.ratelimit import Bucket, Decision, MemoryRateLimiter, RedisRateLimiter, decide
from tests.conftest import RedisServer
from tests.test_reload import Answer, Pinned, bearer, serve
from tests.test_tenants import (
    CAMPAIGN_ID,
    TenantVendor,
    client,
    error_of,
    gateway,
    generic_connection,
    key_entry,
    tenant_entry,
    write_tenants,
)

LIMITED_KEY = "cgw_limited_key_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
OTHER_KEY = "cgw_limited_other_key_BBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
TEAM_KEY_1 = "cgw_team_key_one_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
TEAM_KEY_2 = "cgw_team_key_two_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
FREE_KEY = "cgw_free_key_EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"
VENDOR_SECRET = "ratelimit-vendor-credential-1"
PER_MINUTE_60_BURST_5 = {"requests_per_minute": 60, "burst": 5}


def bucket(rpm: float = 60, burst: int = 5, name: str = "b") -> Bucket:
    return Bucket.of("key", name, RateLimitSpec(requests_per_minute=rpm, burst=burst))


class Buckets:
    """A store of bucket timestamps, updated the way the limiters do: only when allowed."""

    def __init__(self) -> None:
        self.tats: dict[str, float] = {}

    def check(self, buckets: list[Bucket], now: float) -> Decision:
        decision, new = decide(buckets, [self.tats.get(b.name, now) for b in buckets], now)
        if decision.allowed:
            self.tats.update((b.name, tat) for b, tat in zip(buckets, new, strict=True))
        return decision


# --- GCRA: decide ----------------------------------------------------------------------------------


def test_a_fresh_bucket_admits_exactly_its_burst_at_once() -> None:
    store, b = Buckets(), bucket(60, 5)
    decisions = [store.check([b], 1000.0) for _ in range(20)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 15
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)
    assert all(d.remaining == 0 for d in decisions[5:])
    assert all(d.retry_after == pytest.approx(1.0) for d in decisions[5:])
    assert all(d.reset == pytest.approx(5.0) for d in decisions[5:])
    assert [d.reset for d in decisions[:5]] == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])


def test_the_bucket_refills_at_the_sustained_rate_and_no_faster() -> None:
    store, b = Buckets(), bucket(60, 5)
    allowed = []
    for tenth in range(0, 601):  # a request every 100 ms for 60 s
        now = tenth / 10
        if store.check([b], now).allowed:
            allowed.append(now)
    # the burst, then one a second: 5 + 60
    assert len(allowed) == 65
    assert allowed[:5] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert allowed[5:] == pytest.approx([float(s) for s in range(1, 61)])


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    store, b = Buckets(), bucket(60, 5)
    assert sum(store.check([b], 0.0).allowed for _ in range(5)) == 5
    later = 3600.0
    assert [store.check([b], later).allowed for _ in range(8)] == [True] * 5 + [False] * 3


def test_retry_after_is_exactly_long_enough() -> None:
    store, b = Buckets(), bucket(6, 2)  # one every 10 s
    for _ in range(2):
        assert store.check([b], 0.0).allowed
    denied = store.check([b], 3.0)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(7.0)
    assert not store.check([b], 3.0 + denied.retry_after - 0.001).allowed
    assert store.check([b], 3.0 + denied.retry_after).allowed


def test_denied_requests_do_not_push_the_next_allowed_one_back() -> None:
    store, b = Buckets(), bucket(60, 1)
    assert store.check([b], 0.0).allowed
    assert not any(store.check([b], t / 100).allowed for t in range(1, 100))
    assert store.check([b], 1.0).allowed


def test_a_fractional_rate() -> None:
    store, b = Buckets(), bucket(0.5, 1)  # one every two minutes
    assert store.check([b], 0.0).allowed
    denied = store.check([b], 1.0)
    assert (denied.allowed, denied.retry_after) == (False, pytest.approx(119.0))
    assert denied.headers()["Retry-After"] == "119"
    assert store.check([b], 120.0).allowed


def test_several_buckets_are_all_or_nothing_and_the_tightest_is_reported() -> None:
    """A key's bucket (burst 5) and its tenant's (burst 3), shared with another key of the tenant."""
    store = Buckets()
    key_a, key_b = bucket(60, 5, "key-a"), bucket(60, 5, "key-b")
    tenant = Bucket.of("tenant", "t", RateLimitSpec(requests_per_minute=30, burst=3))
    first = store.check([key_a, tenant], 0.0)
    assert (first.allowed, first.limit, first.remaining) == (True, 3, 2)
    assert store.check([key_b, tenant], 0.0).allowed
    assert store.check([key_a, tenant], 0.0).allowed
    denied = store.check([key_b, tenant], 0.0)
    assert (denied.allowed, denied.limit, denied.remaining) == (False, 3, 0)
    assert denied.retry_after == pytest.approx(2.0)  # the tenant's interval
    # the denial took nothing from key_b's own bucket: it used one (of 5), not two
    assert store.tats[key_b.name] == pytest.approx(1.0)
    # a bucket that is alone not full does not let a request past a full one
    assert not store.check([key_a, tenant], 1.9).allowed
    assert store.check([key_a, tenant], 2.0).allowed


def test_bucket_names_keep_scopes_and_owners_apart() -> None:
    spec = RateLimitSpec(requests_per_minute=60, burst=5)
    names = {
        Bucket.of("key", "acme\x1facme-key", spec).name,
        Bucket.of("tenant", "acme", spec).name,
        Bucket.of("key", "globex\x1facme-key", spec).name,
        Bucket.of("tenant", "globex", spec).name,
    }
    assert len(names) == 4
    assert all("acme" not in name and "globex" not in name for name in names)


def test_headers_follow_the_decision() -> None:
    allowed = Decision(True, 5, 3, 2.2, 0.0).headers()
    assert allowed == {"RateLimit-Limit": "5", "RateLimit-Remaining": "3", "RateLimit-Reset": "3"}
    denied = Decision(False, 5, 0, 4.1, 0.2).headers()
    assert denied == {"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "5", "Retry-After": "1"}


# --- the in-process limiter, through the app --------------------------------------------------------


def limited_config(path: Path, key_limit: dict[str, Any] | None = None, tenant_limit: dict[str, Any] | None = None):
    """Tenant acme: LIMITED_KEY (its own limit) and OTHER_KEY (none); team: two keys under a tenant limit."""
    acme_keys = [
        key_entry("acme-limited", LIMITED_KEY, **({"rate_limit": key_limit} if key_limit else {})),
        key_entry("acme-other", OTHER_KEY),
    ]
    team_extra = {"rate_limit": tenant_limit} if tenant_limit else {}
    return write_tenants(
        path,
        [
            tenant_entry("acme", acme_keys, [generic_connection("acme-nexa", "acme.test", VENDOR_SECRET)]),
            tenant_entry(
                "team",
                [key_entry("team-1", TEAM_KEY_1), key_entry("team-2", TEAM_KEY_2)],
                [generic_connection("team-nexa", "team.test", VENDOR_SECRET)],
                **team_extra,
            ),
        ],
    )


def fake_vendors() -> dict[str, TenantVendor]:
    return {
        "acme.test": TenantVendor("Acme", VENDOR_SECRET, (CAMPAIGN_ID,)),
        "team.test": TenantVendor("Team", VENDOR_SECRET, (CAMPAIGN_ID,)),
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now


def check_answers(answers: list[Any], allowed: int, limit: int) -> None:
    """Exactly ``allowed`` 200s, each with RateLimit-*; the rest 429 rate_limited with Retry-After too."""
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * allowed + [429] * (len(answers) - allowed), statuses
    passed = [a for a in answers if a.status_code == 200]
    assert sorted(int(a.headers["ratelimit-remaining"]) for a in passed) == list(range(allowed))
    for answer in answers:
        assert answer.headers["ratelimit-limit"] == str(limit)
        assert int(answer.headers["ratelimit-reset"]) >= 1
        if answer.status_code == 429:
            error_of(answer, 429, "rate_limited")
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.headers["ratelimit-remaining"] == "0"
        else:
            assert "retry-after" not in answer.headers


async def test_twenty_requests_at_once_exactly_five_pass(tmp_path: Path) -> None:
    vendors = fake_vendors()
    async with gateway(limited_config(tmp_path / "c.yaml", PER_MINUTE_60_BURST_5), vendors) as app:
        async with client(app, LIMITED_KEY) as limited:
            answers = await asyncio.gather(*(limited.get(f"/v1/campaigns/{CAMPAIGN_ID}") for _ in range(20)))
        check_answers(answers, allowed=5, limit=5)
        denied = [a for a in answers if a.status_code == 429]
        assert {a.headers["retry-after"] for a in denied} == {"1"}
        assert {a.headers["ratelimit-reset"] for a in denied} == {"5"}
        # a denied request never reached the vendor (nor the cache: the first pass fetched, the rest hit)
        assert len(vendors["acme.test"].sent) == 1
        # another key of the same tenant, with no limit of its own, is not held back
        async with client(app, OTHER_KEY) as other:
            others = await asyncio.gather(*(other.get("/v1/connections") for _ in range(20)))
        assert {a.status_code for a in others} == {200}
        assert not any("ratelimit-limit" in a.headers for a in others)


async def test_the_limit_refills_one_request_per_second(tmp_path: Path, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(ratelimit, "time", clock)
    async with (
        gateway(limited_config(tmp_path / "c.yaml", PER_MINUTE_60_BURST_5), fake_vendors()) as app,
        client(app, LIMITED_KEY) as limited,
    ):

        async def burst(n: int) -> list[int]:
            return [(await limited.get("/v1/connections")).status_code for _ in range(n)]

        assert await burst(7) == [200] * 5 + [429] * 2
        clock.now += 0.5
        assert await burst(1) == [429]
        denied = await limited.get("/v1/connections")
        clock.now += int(denied.headers["retry-after"])  # waiting Retry-After is enough
        assert await burst(2) == [200, 429]
        clock.now += 3
        assert await burst(4) == [200] * 3 + [429]
        clock.now += 3600  # idle for an hour: still only the burst
        assert await burst(7) == [200] * 5 + [429] * 2


async def test_a_tenant_limit_is_shared_by_all_its_keys(tmp_path: Path) -> None:
    tenant_limit = {"requests_per_minute": 60, "burst": 3}
    path = limited_config(tmp_path / "c.yaml", tenant_limit=tenant_limit)
    async with (
        gateway(path, fake_vendors()) as app,
        client(app, TEAM_KEY_1) as one,
        client(app, TEAM_KEY_2) as two,
        client(app, OTHER_KEY) as outsider,
    ):
        answers = await asyncio.gather(*(c.get("/v1/connections") for _ in range(6) for c in (one, two)))
        check_answers(answers, allowed=3, limit=3)
        # another tenant is untouched by team's limit
        assert {(await outsider.get("/v1/connections")).status_code for _ in range(10)} == {200}


async def test_the_tightest_of_key_and_tenant_limits_applies(tmp_path: Path) -> None:
    path = write_tenants(
        tmp_path / "c.yaml",
        [
            tenant_entry(
                "team",
                [
                    key_entry("team-1", TEAM_KEY_1, rate_limit={"requests_per_minute": 60, "burst": 2}),
                    key_entry("team-2", TEAM_KEY_2),
                ],
                [generic_connection("team-nexa", "team.test", VENDOR_SECRET)],
                rate_limit={"requests_per_minute": 60, "burst": 4},
            )
        ],
    )
    async with (
        gateway(path, fake_vendors()) as app,
        client(app, TEAM_KEY_1) as one,
        client(app, TEAM_KEY_2) as two,
    ):
        first = [await one.get("/v1/connections") for _ in range(3)]
        assert [a.status_code for a in first] == [200, 200, 429]
        assert [a.headers["ratelimit-limit"] for a in first] == ["2", "2", "2"]
        # key 1 took 2 of the tenant's 4: key 2 gets the other 2
        second = [await two.get("/v1/connections") for _ in range(3)]
        assert [a.status_code for a in second] == [200, 200, 429]
        assert [a.headers["ratelimit-remaining"] for a in second] == ["1", "0", "0"]
        assert second[2].headers["ratelimit-limit"] == "4"


async def test_limits_survive_a_reload_and_a_changed_limit_applies(tmp_path: Path) -> None:
    path = limited_config(tmp_path / "c.yaml", {"requests_per_minute": 60, "burst": 2})
    async with gateway(path, fake_vendors()) as app, client(app, LIMITED_KEY) as limited:
        assert [(await limited.get("/v1/connections")).status_code for _ in range(3)] == [200, 200, 429]
        # an unrelated edit: a reload must not hand out a fresh bucket
        limited_config(path, {"requests_per_minute": 60, "burst": 2}, tenant_limit={"requests_per_minute": 600})
        assert await app.watcher.reload() is True
        assert (await limited.get("/v1/connections")).status_code == 429
        # a raised burst applies at once: 2 more now
        limited_config(path, {"requests_per_minute": 60, "burst": 4})
        assert await app.watcher.reload() is True
        assert [(await limited.get("/v1/connections")).status_code for _ in range(3)] == [200, 200, 429]
        # and a removed limit lifts it
        limited_config(path)
        assert await app.watcher.reload() is True
        assert {(await limited.get("/v1/connections")).status_code for _ in range(10)} == {200}


async def test_refused_keys_get_no_rate_limit_headers(tmp_path: Path) -> None:
    async with gateway(limited_config(tmp_path / "c.yaml", PER_MINUTE_60_BURST_5), fake_vendors()) as app:
        async with client(app, "cgw_unknown_key_000000000000000000000000000000") as unknown:
            refused = await unknown.get("/v1/connections")
        error_of(refused, 401, "unauthorized")
        assert not any(name.startswith("ratelimit") or name == "retry-after" for name in refused.headers)


async def test_the_memory_limiter_is_exact_under_concurrency() -> None:
    limiter, b = MemoryRateLimiter(), bucket(60, 5)
    decisions = await asyncio.gather(*(limiter.check([b]) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 5


async def test_the_redis_limiter_answers_what_redis_decided(redis_server: RedisServer) -> None:
    """Each answer must be Redis's verdict: allowed exactly when the script took from the bucket.

    Requests are placed right at the bucket's boundary (stored timestamp within a fraction of a
    millisecond of Redis's clock), where a decision re-computed from rounded numbers could differ
    from the one the script made and stored. 500 tries, bounded; every mismatch is collected.
    """
    limiter = RedisRateLimiter(redis_server.url)
    direct = redis.Redis.from_url(redis_server.url)
    edge = bucket(60, 1, "boundary")  # allowed exactly when the stored timestamp is not after now
    rng = random.Random(7)
    mismatches = []
    try:
        for attempt in range(500):
            seconds, micros = direct.time()
            stored = repr(seconds + micros / 1e6 + rng.uniform(-0.0003, 0.0006))
            direct.set(edge.name, stored)
            decision = await limiter.check([edge])
            took = direct.get(edge.name).decode() != stored
            if decision.allowed != took:
                mismatches.append((attempt, "answered allowed" if decision.allowed else "answered 429", took))
    finally:
        await limiter.close()
        direct.close()
    assert not mismatches, f"{len(mismatches)} of 500 answers differ from what Redis did: {mismatches[:5]}"


# --- two workers, one redis-server -----------------------------------------------------------------


def fire_together(conns: list[Pinned], key: str) -> tuple[list[Answer], float]:
    """One request per connection, all released at once from their own threads; the answers and the span."""
    barrier = threading.Barrier(len(conns))
    answers: list[Answer | None] = [None] * len(conns)
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[index] = conns[index].request("GET", "/v1/connections", bearer(key))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(conns))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    span = time.monotonic() - started
    assert not errors, errors
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None], span


def check_wire_answers(answers: list[Answer], allowed: int, limit: int) -> None:
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * allowed + [429] * (len(answers) - allowed), statuses
    passed = [a for a in answers if a.status == 200]
    assert sorted(int(a.headers["ratelimit-remaining"]) for a in passed) == list(range(allowed))
    for answer in answers:
        assert answer.headers["ratelimit-limit"] == str(limit)
        assert int(answer.headers["ratelimit-reset"]) >= 1
        if answer.status == 429:
            assert answer.json()["error"]["code"] == "rate_limited"
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["ratelimit-remaining"] == "0"
        else:
            assert "retry-after" not in answer.headers


def test_two_workers_on_redis_let_exactly_the_burst_through(tmp_path: Path, redis_server: RedisServer) -> None:
    path = write_tenants(
        tmp_path / "config.yaml",
        [
            tenant_entry(
                "acme",
                [
                    key_entry("acme-limited", LIMITED_KEY, rate_limit=PER_MINUTE_60_BURST_5),
                    key_entry("acme-free", FREE_KEY),
                ],
                [],
            ),
            tenant_entry(
                "team",
                [key_entry("team-1", TEAM_KEY_1), key_entry("team-2", TEAM_KEY_2)],
                [],
                rate_limit={"requests_per_minute": 60, "burst": 3},
            ),
        ],
        cache={"backend": redis_server.url},
    )
    with serve(tmp_path, path, workers=2) as served:
        workers = served.workers()
        pinned = served.pin(per_worker=10)
        conns = [conn for pid in sorted(pinned) for conn in pinned[pid]]
        assert {conn.worker for conn in conns} == workers and len(conns) == 20

        answers, span = fire_together(conns, LIMITED_KEY)
        assert span < 0.9, f"the 20 requests took {span:.2f} s: a token may have refilled meanwhile"
        check_wire_answers(answers, allowed=5, limit=5)
        # both workers answered, and both refused: the limit is one limit, not one per worker
        by_worker = {pid: [a.status for c, a in zip(conns, answers, strict=True) if c.worker == pid] for pid in workers}
        assert all(429 in seen for seen in by_worker.values()), by_worker

        # the key without a limit is not held back, on either worker
        free = [conn.request("GET", "/v1/connections", bearer(FREE_KEY)).status for conn in conns]
        assert set(free) == {200}

        # after Retry-After (1 s), exactly one more passes, whichever worker takes it
        time.sleep(1.05)
        again, _span = fire_together(conns[:3] + conns[-3:], LIMITED_KEY)
        assert sorted(a.status for a in again) == [200] + [429] * 5

        # the tenant limit: team's two keys share 3, across both workers
        team_conns = conns[:6] + conns[-6:]
        keys = [TEAM_KEY_1, TEAM_KEY_2] * 6
        barrier = threading.Barrier(len(team_conns))
        results: list[int] = []
        lock = threading.Lock()

        def send(conn: Pinned, key: str) -> None:
            barrier.wait(timeout=10)
            status = conn.request("GET", "/v1/connections", bearer(key)).status
            with lock:
                results.append(status)

        threads = [threading.Thread(target=send, args=pair) for pair in zip(team_conns, keys, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert sorted(results) == [200] * 3 + [429] * 9, results
        assert served.process.poll() is None
    assert "redis unreachable" not in served.stderr()
