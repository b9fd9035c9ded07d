"""Typed clients generated from the served /openapi.json — Python (openapi-python-client) and
TypeScript (openapi-typescript + openapi-fetch, checked by tsc) — run the README's first calls,
create then get, against a real `gateway serve` on the shipped sandbox config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.openapi import EXAMPLES
from tests.conftest import DEMO_KEY, ROOT
from tests.processes import serving

CLIENTS = ROOT / "tests" / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"
TOOL_SECONDS = 120


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The shipped config served for real; yields its URL and its /openapi.json saved to a file."""
    folder = tmp_path_factory.mktemp("clients")
    with serving(ROOT / "config.yaml", log_path=folder / "gateway.log") as (url, _log):
        document = folder / "openapi.json"
        document.write_bytes(httpx.get(url + "/openapi.json", timeout=10).content)
        yield url, document


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_SECONDS, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def assert_flow(answer: dict[str, Any]) -> None:
    created, fetched = answer["created"], answer["fetched"]
    assert created["id"] == fetched["id"]
    assert (created["connection"], created["vendor"], created["name"]) == ("hamsa-sandbox", "hamsa", "Q1 outreach")
    assert fetched["schedule"]["days"] == ["monday", "tuesday"]
    assert created == fetched, "a create answers what a get right after shows"


def test_a_generated_python_client_creates_and_reads(gateway: tuple[str, Path], tmp_path: Path) -> None:
    url, document = gateway
    tools = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    generator = shutil.which("openapi-python-client", path=tools["PATH"])
    assert generator, "openapi-python-client is missing: it is in the test extras (scripts/test installs them)"
    done = run(
        [generator, "generate", "--path", str(document), "--meta", "none", "--output-path", "gateway_client"],
        tmp_path,
        tools,
    )
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    flow = f"""
import json
from gateway_client import AuthenticatedClient
from gateway_client.api.default import create_campaign, get_campaign
from gateway_client.models import CampaignCreate

client = AuthenticatedClient(base_url={url!r}, token={DEMO_KEY!r})
body = CampaignCreate.from_dict(json.loads({json.dumps(EXAMPLES["create"])!r}))
created = create_campaign.sync(client=client, body=body, x_connection="hamsa-sandbox")
fetched = get_campaign.sync(client=client, id=created.id, x_connection="hamsa-sandbox")
print(json.dumps({{"created": created.to_dict(), "fetched": fetched.to_dict()}}))
"""
    answer = run([sys.executable, "-c", flow], tmp_path)
    assert_flow(json.loads(answer.stdout))


def test_a_generated_typescript_client_type_checks_and_creates_and_reads(
    gateway: tuple[str, Path], tmp_path: Path
) -> None:
    url, document = gateway
    assert (NODE_BIN / "tsc").exists(), "the TypeScript tools are missing: scripts/test runs npm ci in tests/clients"
    for name in ("readme_flow.ts", "tsconfig.json", "package.json"):
        shutil.copy(CLIENTS / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(CLIENTS / "node_modules")
    generated = run([str(NODE_BIN / "openapi-typescript"), str(document), "-o", "schema.d.ts"], tmp_path)
    assert "warn" not in (generated.stdout + generated.stderr).lower(), generated.stdout + generated.stderr
    run([str(NODE_BIN / "tsc"), "--noEmit", "-p", "."], tmp_path)  # the README's body type-checks
    run([str(NODE_BIN / "tsc"), "-p", "."], tmp_path)
    answer = run(["node", "dist/readme_flow.js"], tmp_path, {"GATEWAY_URL": url, "GATEWAY_KEY": DEMO_KEY})
    assert_flow(json.loads(answer.stdout))
