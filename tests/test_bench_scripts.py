"""The benchmark scripts still run: each started as `bench/run` starts it, with a tiny workload.

The figures are not judged here (speed is measured in bench/, never asserted in a test); what is
checked is that a script ends cleanly and prints its result lines, so a change to the gateway's
internals cannot leave `bench/run` broken unnoticed. The scripts that need wrk are run by
`bench/run` itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = [
    (["bench/events.py", "--duration", "1", "--events", "100", "--campaigns", "5"], "delivered/s over 5 campaign(s)"),
    (["bench/memory.py", "--requests", "500"], "after 500 mixed requests"),
    (["bench/startup.py", "--rounds", "1", "--workers", "1"], "serve --workers 1: ready after"),
]


@pytest.mark.parametrize(("args", "expected"), SCRIPTS, ids=[args[0] for args, _ in SCRIPTS])
def test_a_bench_script_runs_to_its_end(args: list[str], expected: str) -> None:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert expected in done.stdout, done.stdout[-2000:]
