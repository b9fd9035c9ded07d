"""`gateway keys new` and `gateway sandbox`, run as a user would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.cli import main
from gateway.keys import KEY_PREFIX, key_hash
from gateway.mapping.expressions import EXPRESSION_KEYS
from gateway.mapping.transforms import TRANSFORMS
from tests.conftest import ROOT, free_port
from tests.processes import start_gateway, stop, wait_for_http


def test_keys_new_prints_the_key_once_and_only_its_hash_in_the_entry(capsys) -> None:
    assert main(["keys", "new", "--tenant", "acme", "--scope", "campaigns:read", "--id", "acme-ci"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[0]
    assert key.startswith(KEY_PREFIX)
    assert len(key) - len(KEY_PREFIX) >= 43  # 32 random bytes, URL-safe base64
    entry = yaml.safe_load(out[len(key) :])[0]
    assert entry == {"id": "acme-ci", "hash": key_hash(key), "scopes": ["campaigns:read"]}
    assert out.count(key) == 1


def test_two_keys_differ(capsys) -> None:
    main(["keys", "new", "--tenant", "a"])
    main(["keys", "new", "--tenant", "a"])
    keys = [line for line in capsys.readouterr().out.splitlines() if re.match(rf"^{KEY_PREFIX}\S+$", line)]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_sandbox_serves_one_vendor_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sandbox.log"
    process = start_gateway("sandbox", "--vendor", "voiso", "--port", str(port), log_path=log)
    try:
        answer = wait_for_http(f"http://127.0.0.1:{port}/api/v4/campaigns/1", process, log, 20, accept=lambda _: True)
        assert answer.status_code == 401  # Voiso's auth form is checked
        authorised = httpx.get(
            f"http://127.0.0.1:{port}/api/v4/campaigns/1", headers={"Authorization": "Bearer any"}, timeout=2
        )
        assert authorised.status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/_sandbox/calls", timeout=2).json()["get"] == 2
    finally:
        stop(process)


def test_sandbox_refuses_an_unknown_vendor(capsys) -> None:
    assert main(["sandbox", "--vendor", "nosuch", "--mappings", str(ROOT / "mappings")]) == 1
    assert "no sandbox for vendor 'nosuch'" in capsys.readouterr().err


def test_serve_workers_auto_is_one_per_core_it_may_use() -> None:
    from gateway.cli import _parser

    assert _parser().parse_args(["serve", "--workers", "auto"]).workers == len(os.sched_getaffinity(0))
    assert _parser().parse_args(["serve", "--workers", "3"]).workers == 3
    for wrong in ("0", "-1", "many"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["serve", "--workers", wrong])


def test_schema_describes_the_whole_expression_language(capsys) -> None:
    """`gateway schema` is what an editor shows a map author: every transform and expression key is in it."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    described = schema["properties"]["shapes"]["description"]
    for name in (*TRANSFORMS, *EXPRESSION_KEYS):
        assert re.search(rf"\b{name}\b", described), name
    lookups = schema["properties"]["lookups"]["additionalProperties"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["$defs"][lookups]["properties"]) == {"request", "items", "vendor", "canonical", "ttl_seconds"}
    assert "basic" in schema["$defs"]["AuthSpec"]["properties"]
    assert "unconverted" in schema["$defs"]["OperationSpec"]["properties"]
