"""The tables a map's lookups read from the vendor, fetched through the connection and kept a while.

A table is fetched on first use and kept on the connection's client for the lookup's
``ttl_seconds``. A canonical value it lacks (a number bought a minute ago, say) is refused, and
marks the table: the next request fetches it again if it is older than ``REFRESH_AFTER_MISS``,
so a client's retry sees a new number without anyone refetching on every bad request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.mapping.lookups import Loaded, Table
from gateway.upstream import Upstream

REFRESH_AFTER_MISS = 10.0  # seconds


@dataclass
class Fetched:
    table: Table
    at: float  # time.monotonic() of the fetch


async def load(upstream: Upstream, names: tuple[str, ...]) -> Loaded:
    """The named tables of the connection's map, fetched where none is fresh."""
    return Loaded({name: await _table(upstream, name) for name in names})


async def _table(upstream: Upstream, name: str) -> Table:
    kept: Fetched | None = upstream.tables.get(name)
    lookup = upstream.connection.map.lookups[name]
    now = time.monotonic()
    if kept is not None:
        age = now - kept.at
        if age < lookup.ttl and not (kept.table.missed and age > REFRESH_AFTER_MISS):
            return kept.table
    context = {"params": upstream.connection.params, "now": datetime.now(UTC).isoformat()}
    table = await upstream.send(lookup.build_request(context), lambda _status, answer: lookup.table(answer), retry=True)
    fetched = Fetched(table, now)
    upstream.tables[name] = fetched
    return fetched.table
