"""The cache-hit shortcut's remembered plans (gateway/hits.py): worked out once per path, query, key
and connection, then reused; never keyed by a key in clear; dropped by a reload; an expiring key is
checked again on every hit; bounded.

Driven through ``GatewayApp.answer_from_memory`` (what the protocol asks before any ASGI task) after
a first GET through the full path filled the cache.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import hits
from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.keys import key_hash
from tests.test_tenants import (
    ACME_FUTURE_KEY,
    ACME_KEY,
    CAMPAIGN_ID,
    GLOBEX_KEY,
    acme_and_globex,
    client,
    gateway,
    two_vendors,
)

ITEM = f"/v1/campaigns/{CAMPAIGN_ID}"


def hit_scope(key: str, path: str = ITEM, query: bytes = b"", connection: bytes | None = None) -> dict[str, Any]:
    """The scope the protocol hands ``answer_from_memory`` for a plain GET."""
    headers = [(b"host", b"gateway"), (b"authorization", f"Bearer {key}".encode())]
    if connection is not None:
        headers.append((b"x-connection", connection))
    return {"path": path, "raw_path": path.encode(), "query_string": query, "headers": headers}


async def fill(app: GatewayApp, key: str, path: str = ITEM) -> None:
    async with client(app, key) as http:
        answer = await http.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-cache"] == "MISS"


@pytest.fixture
def worked_out(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The raw paths ``hits`` worked a plan out for, in order."""
    seen: list[bytes] = []
    work_out = hits._work_out

    def counting(runtime: Any, scope: dict[str, Any], headers: dict[bytes, bytes], presented: str) -> Any:
        seen.append(scope["raw_path"])
        return work_out(runtime, scope, headers, presented)

    monkeypatch.setattr(hits, "_work_out", counting)
    return seen


async def test_a_plan_is_worked_out_once_and_reused_for_every_later_hit(
    tmp_path: Path, worked_out: list[bytes]
) -> None:
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        await fill(app, ACME_KEY)
        answers = [app.answer_from_memory(hit_scope(ACME_KEY)) for _ in range(5)]
        assert all(answer is not None for answer in answers)
        assert worked_out == [ITEM.encode()]
        # another query, another connection header: each a plan of its own
        assert app.answer_from_memory(hit_scope(ACME_KEY, query=b"x=1")) is None  # not cached under that query
        app.answer_from_memory(hit_scope(ACME_KEY, connection=b"acme-nexa"))
        assert len(worked_out) == 3
        assert len(app.runtime.hit_plans) == 3


async def test_plans_are_keyed_by_the_keys_hash_and_never_hold_the_key(tmp_path: Path) -> None:
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        await fill(app, ACME_KEY)
        assert app.answer_from_memory(hit_scope(ACME_KEY)) is not None
        (plan_key,) = app.runtime.hit_plans
        assert key_hash(ACME_KEY) in plan_key
        assert ACME_KEY not in repr(app.runtime.hit_plans)


async def test_another_tenants_key_on_the_same_path_gets_its_own_plan_and_no_hit(tmp_path: Path) -> None:
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        await fill(app, ACME_KEY)
        assert app.answer_from_memory(hit_scope(ACME_KEY)) is not None
        assert app.answer_from_memory(hit_scope(GLOBEX_KEY)) is None  # globex has no such entry
        tenants = {plan.tenant.id for plan in app.runtime.hit_plans.values()}
        assert tenants == {"acme", "globex"}


async def test_a_key_that_expires_after_its_plan_was_made_is_refused_from_that_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        await fill(app, ACME_FUTURE_KEY)  # expires in a day
        assert app.answer_from_memory(hit_scope(ACME_FUTURE_KEY)) is not None

        class TwoDaysLater(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return datetime.now(UTC) + timedelta(days=2)

        monkeypatch.setattr(hits, "datetime", TwoDaysLater)
        assert app.answer_from_memory(hit_scope(ACME_FUTURE_KEY)) is None  # the full path answers 401


async def test_a_reload_starts_with_no_plans(tmp_path: Path) -> None:
    path = acme_and_globex(tmp_path / "config.yaml")
    async with gateway(path, two_vendors()) as app:
        await fill(app, ACME_KEY)
        assert app.answer_from_memory(hit_scope(ACME_KEY)) is not None
        assert app.runtime.hit_plans
        config, problems = load_config(path)
        assert config is not None, problems
        app.apply_config(config)
        assert app.runtime.hit_plans == {}


async def test_the_memory_starts_over_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hits, "MAX_PLANS", 2)
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        for n in range(5):
            app.answer_from_memory(hit_scope(ACME_KEY, query=f"page={n}".encode()))
            assert 1 <= len(app.runtime.hit_plans) <= 2


async def test_requests_no_plan_can_serve_are_not_remembered(tmp_path: Path) -> None:
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        unknown = "cgw_never_issued_key_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
        for scope in (
            hit_scope(unknown),  # 401 on the full path
            hit_scope(ACME_KEY, path="/v1/connections"),  # not a cacheable read
            hit_scope(ACME_KEY, path="/v1/nowhere"),  # 404
            hit_scope(ACME_KEY, connection=b"globex-nexa"),  # another tenant's connection
        ):
            assert app.answer_from_memory(scope) is None
        assert app.runtime.hit_plans == {}


async def test_a_request_the_shortcut_declines_takes_no_request_id(tmp_path: Path) -> None:
    """Ids stay consecutive: only a request the shortcut answers is given one there."""
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app:
        async with client(app, ACME_KEY) as http:
            first = (await http.get(ITEM)).headers["x-request-id"]
            assert app.answer_from_memory(hit_scope(ACME_KEY, query=b"page=2")) is None  # not cached: declined
            hit = app.answer_from_memory(hit_scope(ACME_KEY))
            assert hit is not None
            after = (await http.get(ITEM, headers={"Cache-Control": "no-cache"})).headers["x-request-id"]
        hit_id = dict(hit[1])[b"x-request-id"].decode()
        assert [int(rid[-16:], 16) for rid in (first, hit_id, after)] == [
            int(first[-16:], 16) + step for step in range(3)
        ]
