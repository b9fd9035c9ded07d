"""`gateway keys new` and `gateway sandbox`, run as a user would."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
import yaml

from gateway.cli import main
from gateway.keys import KEY_PREFIX, key_hash
from tests.conftest import ROOT


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sandbox_serves_one_vendor_on_loopback() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "sandbox", "--vendor", "voiso", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v4/campaigns/1", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not start in 20 s"
                time.sleep(0.1)
        assert answer.status_code == 401  # Voiso's auth form is checked
        authorised = httpx.get(
            f"http://127.0.0.1:{port}/api/v4/campaigns/1", headers={"Authorization": "Bearer any"}, timeout=2
        )
        assert authorised.status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/_sandbox/calls", timeout=2).json()["get"] == 2
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sandbox_refuses_an_unknown_vendor(capsys) -> None:
    assert main(["sandbox", "--vendor", "nosuch", "--mappings", str(ROOT / "mappings")]) == 1
    assert "no sandbox for vendor 'nosuch'" in capsys.readouterr().err
