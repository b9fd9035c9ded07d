"""The app's shutdown is bounded: a part that never stops is logged and left, the rest still closes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway import app as app_module
from gateway.app import GatewayApp
from gateway.config import load_config
from tests.conftest import write_config

NEXA = {"name": "nexa", "vendor": "generic", "base_url": "sandbox", "credentials": {"api_key": "sandbox-key"}}


async def test_a_part_that_never_stops_does_not_hold_the_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config, problems = load_config(write_config(tmp_path, [NEXA]))
    assert config is not None, problems
    app = GatewayApp(config)
    closed: list[str] = []

    async def never() -> None:
        await asyncio.Event().wait()

    async def clients_closed() -> None:
        closed.append("clients")

    monkeypatch.setattr(app_module, "CLOSE_SECONDS", 0.2)
    monkeypatch.setattr(app.events, "close", never)
    monkeypatch.setattr(app_module, "close_runtime", lambda _runtime: clients_closed())
    started = time.monotonic()
    await asyncio.wait_for(app.aclose(), 5)
    assert time.monotonic() - started < 2
    assert closed == ["clients"]  # the parts after the stuck one still closed
    assert "shutdown: the events did not stop within 0.2 s; left behind" in caplog.text
