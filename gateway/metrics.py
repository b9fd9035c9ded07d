"""Per-worker metrics in plain dicts, turned into Prometheus text only when scraped.

Counting a request is a dict lookup and an addition: no lock, no shared-memory write. With
several workers each writes its values to a shared folder (at most every ``SNAPSHOT_SECONDS``,
when they changed, and at shutdown), and ``/metrics`` in any worker adds the others' last
snapshot to its own live values — gauges take the largest value of the workers still running.
A scrape is therefore at most ``SNAPSHOT_SECONDS`` behind another worker. prometheus_client
writes the exposition format.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

SNAPSHOT_SECONDS = 0.25
Labels = tuple[str, ...]


@dataclass(frozen=True)
class Definition:
    name: str
    documentation: str
    labels: tuple[str, ...]
    kind: Literal["counter", "histogram", "gauge"]
    buckets: tuple[float, ...] = ()


class Metrics(Collector):
    """The values of one worker (``tables``: name -> label values -> a number, or a histogram row)."""

    def __init__(self, definitions: list[Definition], folder: str | None = None) -> None:
        self.definitions = {d.name: d for d in definitions}
        self.tables: dict[str, dict[Labels, Any]] = {d.name: {} for d in definitions}
        self.folder = Path(folder) if folder else None
        self.changed = False
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def add(self, definitions: list[Definition]) -> None:
        """More families (a part of the gateway that counts things of its own, such as events)."""
        for definition in definitions:
            self.definitions[definition.name] = definition
            self.tables.setdefault(definition.name, {})

    def inc(self, name: str, labels: Labels, amount: float = 1.0) -> None:
        table = self.tables[name]
        table[labels] = table.get(labels, 0.0) + amount
        self.changed = True

    def series(self, name: str) -> Series:
        return Series(self, name)

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """One histogram observation: a row holds the count per bucket (the last for +Inf) and the sum."""
        buckets = self.definitions[name].buckets
        table = self.tables[name]
        row = table.get(labels)
        if row is None:
            row = table[labels] = [0.0] * (len(buckets) + 2)
        row[bisect.bisect_left(buckets, value)] += 1
        row[-1] += value

    def exposition(self) -> bytes:
        return generate_latest(self._registry)

    def collect(self) -> Iterator[Metric]:
        merged = self._merged()
        for name, definition in self.definitions.items():
            yield _family(definition, merged[name])

    def snapshot(self) -> None:
        """Write this worker's values for the others to read (atomically: a reader sees old or new)."""
        if self.folder is None:
            return
        values = {
            name: [[list(labels), value] for labels, value in table.items()] for name, table in self.tables.items()
        }
        path = self.folder / f"worker-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps({"pid": os.getpid(), "values": values}))
        temporary.replace(path)
        self.changed = False

    def _merged(self) -> dict[str, dict[Labels, Any]]:
        merged = {name: dict(table) for name, table in self.tables.items()}
        for pid, values in self._others():
            alive = _alive(pid)
            for name, rows in values.items():
                definition = self.definitions.get(name)
                if definition is None or (definition.kind == "gauge" and not alive):
                    continue
                table = merged[name]
                for labels, value in rows:
                    key = tuple(labels)
                    table[key] = _combine(definition.kind, table.get(key), value)
        return merged

    def _others(self) -> Iterator[tuple[int, dict[str, list[Any]]]]:
        if self.folder is None:
            return
        for path in self.folder.glob("worker-*.json"):
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                document = orjson.loads(path.read_bytes())
                if document["pid"] != os.getpid():
                    yield document["pid"], document["values"]


class Series:
    """One family, used as prometheus_client's are: ``series.labels(...).inc()``, ``series.observe(v)``."""

    def __init__(self, metrics: Metrics, name: str, labels: Labels = ()) -> None:
        self._metrics, self._name, self._labels = metrics, name, labels

    def labels(self, *values: str) -> Series:
        return Series(self._metrics, self._name, values)

    def inc(self, amount: float = 1.0) -> None:
        self._metrics.inc(self._name, self._labels, amount)

    def observe(self, value: float) -> None:
        self._metrics.observe(self._name, self._labels, value)
        self._metrics.changed = True


def _combine(kind: str, mine: Any, theirs: Any) -> Any:
    if mine is None:
        return theirs
    if kind == "histogram":
        return [a + b for a, b in zip(mine, theirs, strict=True)]
    return max(mine, theirs) if kind == "gauge" else mine + theirs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _family(definition: Definition, table: dict[Labels, Any]) -> Metric:
    name, documentation, labels = definition.name, definition.documentation, list(definition.labels)
    if definition.kind == "counter":
        family: Any = CounterMetricFamily(name, documentation, labels=labels)
        for values, value in table.items():
            family.add_metric(list(values), value)
        return family
    if definition.kind == "gauge":
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for values, value in table.items():
            family.add_metric(list(values), value)
        return family
    family = HistogramMetricFamily(name, documentation, labels=labels)
    bounds = [floatToGoString(bound) for bound in definition.buckets] + ["+Inf"]
    for values, row in table.items():
        running, buckets = 0.0, []
        for bound, count in zip(bounds, row[:-1], strict=True):
            running += count
            buckets.append((bound, running))
        family.add_metric(list(values), buckets, row[-1])
    return family
