"""A serving process settles its heap once its app is built (gateway/heap.py).

Each check runs in a child process: freezing or retuning the collector here would change it for
the rest of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.heap import GEN0_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gc, json
before = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
from gateway.server import app_from_environment
app = app_from_environment()
after = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
print(json.dumps({"before": before, "after": after}))
"""


def test_the_worker_factory_freezes_what_start_up_made_and_raises_the_youngest_threshold() -> None:
    env = {**os.environ, "GATEWAY_CONFIG": str(ROOT / "config.yaml")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"threshold": 700, "frozen": 0}
    assert seen["after"]["threshold"] == GEN0_THRESHOLD
    assert seen["after"]["frozen"] > 10_000  # config, compiled maps and modules: out of the collector's view
