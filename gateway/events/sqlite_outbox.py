"""The embedded outbox: one SQLite file (stdlib), shared by every worker of ``gateway serve``.

WAL journal; a store of events commits with ``synchronous=FULL``: an event the vendor got a 2xx for
is on disk, and survives a kill or a power cut. Claims and finished tries commit with ``NORMAL``
(safe from a kill; a power cut may forget the last ones, and the event is then sent again, which
at-least-once allows), so an ordered delivery does not wait for two fsyncs. Every statement runs
on one thread of this process (SQLite's calls block), and stores and finished tries are
*group-committed*: what arrives while a transaction is being written goes into the next one, so
one fsync serves many webhooks. Workers of one ``serve`` are
separate processes on the same file; ``BEGIN IMMEDIATE`` and the lease columns (``lease``,
``owner``) make each delivery claimed by exactly one of them at a time.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from gateway.events.outbox import Claimed, Found, NewEvent, Outcome, delivery

T = TypeVar("T")
R = TypeVar("R")
BUSY_TIMEOUT_MS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS destinations (
  tenant TEXT NOT NULL, connection TEXT NOT NULL, campaign_id TEXT NOT NULL, url TEXT NOT NULL,
  PRIMARY KEY (tenant, connection, campaign_id));
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL, connection TEXT NOT NULL, campaign_id TEXT, type TEXT NOT NULL,
  dedupe TEXT NOT NULL, body BLOB NOT NULL, created REAL NOT NULL, destination TEXT,
  state TEXT NOT NULL, head INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, due REAL,
  lease REAL, owner TEXT,
  last_status INTEGER, last_error TEXT, delivered_at REAL,
  UNIQUE (tenant, connection, dedupe));
CREATE INDEX IF NOT EXISTS events_due ON events (due) WHERE state = 'pending' AND head = 1;
CREATE INDEX IF NOT EXISTS events_order ON events (tenant, connection, campaign_id, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_heads ON events (tenant, connection, campaign_id)
  WHERE state = 'pending' AND head = 1;
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, seq);
CREATE INDEX IF NOT EXISTS events_campaign ON events (tenant, campaign_id, seq);
CREATE INDEX IF NOT EXISTS events_type ON events (tenant, type, seq);
CREATE INDEX IF NOT EXISTS events_done ON events (created) WHERE state != 'pending';
"""
# ``head``: the first pending event of its campaign (per tenant and connection), the only one of it
# a claim may take; when it is done the next one becomes head. So a claim looks at heads only, however
# long a campaign's backlog.
_CLAIM = """
UPDATE events SET lease = :until, owner = :owner
WHERE seq IN (
  SELECT seq FROM events WHERE state = 'pending' AND head = 1 AND due <= :now AND (lease IS NULL OR lease <= :now)
  ORDER BY due, seq LIMIT :limit)
RETURNING id, tenant, connection, type, body, destination, attempts, created
"""
_FINISH = """
UPDATE events SET state = :state, head = :state = 'pending', attempts = attempts + 1, due = :due, lease = NULL,
  owner = NULL, last_status = :status, last_error = :error,
  delivered_at = CASE WHEN :state = 'delivered' THEN :at END
WHERE id = :id AND owner = :owner
RETURNING tenant, connection, campaign_id
"""
_GROUP = "state = 'pending' AND tenant = :tenant AND connection = :connection AND campaign_id IS :campaign"
# The campaign's first pending event becomes head, unless it has one (a redelivered event waits its turn).
_NEXT_HEAD = f"""
UPDATE events SET head = 1 WHERE seq = (SELECT MIN(seq) FROM events WHERE {_GROUP})
  AND NOT EXISTS (SELECT 1 FROM events WHERE {_GROUP} AND head = 1)
"""
_FOUND = "seq, connection, campaign_id, body, state, attempts, due, last_status, last_error, delivered_at"


class _Batcher(Generic[T, R]):
    """Runs queued items through ``run_all`` (one transaction) together; what comes in meanwhile goes in the next."""

    def __init__(self, run_all: Callable[[list[T]], list[R]], submit: Callable[..., asyncio.Future[Any]]) -> None:
        self._run_all = run_all
        self._submit = submit
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._submit(self._run_all, [item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class SqliteOutbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._adds = _Batcher(self._insert_all, self._run)
        self._finishes = _Batcher(self._finish_all, self._run)

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)  # idempotent: every worker runs it, one at a time (the busy timeout)
            os.chmod(self.path, 0o600)  # event bodies are the tenants' data
            self._db = db
        return self._db

    def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = False) -> T:
        db = self._connection()
        if durable:
            db.execute("PRAGMA synchronous = FULL")  # its fsync also covers the NORMAL commits before it
        try:
            with _transaction(db):
                return fn(db)
        finally:
            if durable:
                db.execute("PRAGMA synchronous = NORMAL")

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        return self._run(lambda: fn(self._connection()))

    async def hook_key(self) -> bytes:
        def read(db: sqlite3.Connection) -> bytes:
            db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('hook_key', ?)", (os.urandom(32),))
            return bytes(db.execute("SELECT value FROM meta WHERE name = 'hook_key'").fetchone()[0])

        return await self._run(self._write, read)

    async def remember(self, tenant: str, connection: str, campaign_id: str, url: str) -> None:
        sql = "INSERT OR REPLACE INTO destinations (tenant, connection, campaign_id, url) VALUES (?, ?, ?, ?)"
        await self._run(self._write, lambda db: db.execute(sql, (tenant, connection, campaign_id, url)))

    async def destinations(self, tenant: str, connection: str, campaign_ids: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(campaign_ids))
        sql = "SELECT campaign_id, url FROM destinations WHERE tenant = ? AND connection = ?"
        sql += f" AND campaign_id IN ({marks})"
        args = (tenant, connection, *campaign_ids)
        return dict(await self._read(lambda db: db.execute(sql, args).fetchall())) if campaign_ids else {}

    async def add(self, event: NewEvent) -> tuple[str, bool]:
        return await self._adds.put(event)

    def _insert_all(self, events: list[NewEvent]) -> list[tuple[str, bool]]:
        def insert(db: sqlite3.Connection) -> list[tuple[str, bool]]:
            results = []
            for e in events:
                own = db.execute(
                    "SELECT url FROM destinations WHERE tenant = ? AND connection = ? AND campaign_id = ?",
                    (e.tenant, e.connection, e.campaign_id),
                ).fetchone()
                destination = own[0] if own else e.destination
                group = {"tenant": e.tenant, "connection": e.connection, "campaign": e.campaign_id}
                head = (
                    destination is not None and not db.execute(f"SELECT 1 FROM events WHERE {_GROUP}", group).fetchone()
                )
                extra = (destination, "pending", e.created, head) if destination else (None, "undeliverable", None, 0)
                cursor = db.execute(
                    "INSERT OR IGNORE INTO events (id, tenant, connection, campaign_id, type, dedupe, body, created,"
                    " destination, state, due, head) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.id, e.tenant, e.connection, e.campaign_id, e.type, e.dedupe, e.body, e.created, *extra),
                )
                if cursor.rowcount:
                    results.append((e.id, False))
                    continue
                row = db.execute(
                    "SELECT id FROM events WHERE tenant = ? AND connection = ? AND dedupe = ?",
                    (e.tenant, e.connection, e.dedupe),
                ).fetchone()
                results.append((row[0], True))
            return results

        return self._write(insert, durable=True)

    async def claim(self, now: float, lease: float, owner: str, limit: int) -> list[Claimed]:
        params = {"until": now + lease, "owner": owner, "now": now, "limit": limit}
        rows = await self._run(self._write, lambda db: db.execute(_CLAIM, params).fetchall())
        return [Claimed(row[0], row[1], row[2], row[3], bytes(row[4]), row[5], row[6], row[7]) for row in rows]

    async def finish(self, event_id: str, owner: str, outcome: Outcome) -> None:
        await self._finishes.put((event_id, owner, outcome))

    def _finish_all(self, items: list[tuple[str, str, Outcome]]) -> list[None]:
        def update(db: sqlite3.Connection) -> list[None]:
            for event_id, owner, o in items:
                params = {"state": o.state, "due": o.due, "status": o.status, "error": o.error, "at": o.at}
                group = db.execute(_FINISH, {**params, "id": event_id, "owner": owner}).fetchone()
                if group is not None and o.state != "pending":
                    db.execute(_NEXT_HEAD, _named(group))
            return [None] * len(items)

        return self._write(update)

    async def page(self, tenant: str, campaign_id: str | None, kind: str | None, after: int, limit: int) -> list[Found]:
        where, args = "tenant = ? AND seq > ?", [tenant, after]
        if campaign_id is not None:
            where, args = where + " AND campaign_id = ?", [*args, campaign_id]
        if kind is not None:
            where, args = where + " AND type = ?", [*args, kind]
        sql = f"SELECT {_FOUND} FROM events WHERE {where} ORDER BY seq LIMIT ?"
        rows = await self._read(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [_found(row) for row in rows]

    async def get(self, tenant: str, event_id: str) -> Found | None:
        sql = f"SELECT {_FOUND} FROM events WHERE tenant = ? AND id = ?"
        row = await self._read(lambda db: db.execute(sql, (tenant, event_id)).fetchone())
        return None if row is None else _found(row)

    async def redeliver(self, tenant: str, event_id: str, destination: str, now: float) -> dict[str, Any] | None:
        def update(db: sqlite3.Connection) -> Found | None:
            group = db.execute("SELECT tenant, connection, campaign_id FROM events WHERE tenant = ? AND id = ?",
                               (tenant, event_id)).fetchone()  # fmt: skip
            db.execute(
                "UPDATE events SET destination = :dest, due = MIN(COALESCE(due, :now), :now), "
                "attempts = CASE WHEN state = 'pending' THEN attempts ELSE 0 END, state = 'pending', "
                "last_status = CASE WHEN state = 'pending' THEN last_status END, "
                "last_error = CASE WHEN state = 'pending' THEN last_error END, delivered_at = NULL "
                "WHERE tenant = :tenant AND id = :id",
                {"dest": destination, "now": now, "tenant": tenant, "id": event_id},
            )
            if group is not None:
                db.execute(_NEXT_HEAD, _named(group))
            row = db.execute(f"SELECT {_FOUND} FROM events WHERE tenant = ? AND id = ?", (tenant, event_id)).fetchone()
            return None if row is None else _found(row)

        found = await self._run(self._write, update)
        return None if found is None else found.delivery

    async def prune(self, before: float) -> int:
        sql = "DELETE FROM events WHERE state != 'pending' AND created < ?"
        return await self._run(self._write, lambda db: db.execute(sql, (before,)).rowcount)

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(shut)
        self._thread.shutdown(wait=True)


def _named(group: tuple[str, str, str | None]) -> dict[str, str | None]:
    return dict(zip(("tenant", "connection", "campaign"), group, strict=True))


def _found(row: tuple[Any, ...]) -> Found:
    seq, connection, campaign_id, body, state, attempts, due, status, error, delivered_at = row
    return Found(seq, connection, campaign_id, bytes(body), delivery(state, attempts, due, status, error, delivered_at))


class _transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): the write lock is taken first, so no upgrade can deadlock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, _value: object, _traceback: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")
