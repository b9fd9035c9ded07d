"""Micro-benchmarks: translation per vendor and operation, and authentication + cache lookup.

Run: ``.venv/bin/python bench/micro.py``. Prints microseconds per call (best of 5 runs).
Translation inputs are the golden cases in tests/golden (the vendors' seed answers); a case's
lookup tables (the vendor's phone numbers) are built from its ``lookups`` and made active once
for the whole run, as the engine does once per upstream call.
"""

from __future__ import annotations

import asyncio
import json
import timeit
from functools import partial
from pathlib import Path
from typing import Any

from gateway import cache
from gateway.config import load_config
from gateway.engine import Call, prepare, vendor_request
from gateway.keys import authenticate
from gateway.mapping import VendorMap, load_map, lookups
from gateway.models import CampaignCreate

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
DEMO_KEY = "cgw_demo_8f3kq2v7xw1m5n9p4r6t0y2u8i3o5a7s"


def per_call_us(fn: Any, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def translation_rows() -> list[tuple[str, str, str, float]]:
    rows = []
    for case in sorted(GOLDEN.glob("*/*.json")):
        vendor, data = case.parent.name, json.loads(case.read_text())
        vendor_map, problems = load_map(ROOT / "mappings" / f"{vendor}.yaml")
        assert vendor_map is not None, problems
        operation = vendor_map.operations[data["operation"]]
        with lookups.using(tables(vendor_map, data)):
            rows += case_rows(vendor, operation, data)
    return rows


def tables(vendor_map: VendorMap, data: dict[str, Any]) -> lookups.Loaded | None:
    answers = data.get("lookups", {})
    return lookups.Loaded({name: vendor_map.lookups[name].table(answer) for name, answer in answers.items()})


def case_rows(vendor: str, operation: Any, data: dict[str, Any]) -> list[tuple[str, str, str, float]]:
    rows = []
    if "vendor_payload" in data:
        context = {"page": {"offset": 0, "limit": 20}}
        payload = data["vendor_payload"]
        for direction, include in (("response", False), ("response+vendor_data", True)):
            run = partial(operation.parse_response, payload, context, include)
            rows.append((vendor, data["operation"], direction, per_call_us(run)))
    if "canonical_request" in data:
        body = CampaignCreate.model_validate(data["canonical_request"]).model_dump(mode="json", exclude_none=True)
        context = {
            "body": body,
            "id": None,
            "params": data.get("params", {}),
            "now": "2026-01-01T00:00:00Z",
            "page": {"offset": 0, "limit": 20, "number": 1, "cursor": None},
            "filter": {"status": None},
        }
        run = partial(vendor_request, operation, context, vendor)
        rows.append((vendor, data["operation"], "request", per_call_us(run)))
    return rows


def hot_path_rows() -> list[tuple[str, float]]:
    config, problems = load_config(ROOT / "config.yaml")
    assert config is not None, problems
    tenant = config.tenants["demo"]
    connection = tenant.connections["hamsa-sandbox"]
    memory = cache.MemoryCache(10000)
    place = cache.placement("demo", connection.fingerprint, "get", "a8f7", "")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(memory.put(place, b"{}", 60, loop.run_until_complete(memory.begin(place))))

    def lookup() -> Any:
        coroutine = memory.get(cache.placement("demo", connection.fingerprint, "get", "a8f7", "").key)
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value

    return [
        ("authenticate (sha256 + lookup + expiry)", per_call_us(lambda: authenticate(config, DEMO_KEY))),
        ("cache placement + memory lookup (hit)", per_call_us(lookup)),
        ("engine prepare (checks + context)", per_call_us(lambda: prepare(connection, Call("get", id="a8f7")))),
    ]


def main() -> None:
    print(f"{'vendor':<10} {'operation':<16} {'direction':<22} {'us/call':>8}")
    for vendor, operation, direction, us in translation_rows():
        print(f"{vendor:<10} {operation:<16} {direction:<22} {us:8.1f}")
    print()
    for name, us in hot_path_rows():
        print(f"{name:<46} {us:8.2f} us")


if __name__ == "__main__":
    main()
