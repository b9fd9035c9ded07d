"""/docs in a real browser: headless Chromium opens the page of a running `gateway serve`.

The DOM Chromium renders must get a person to a first call: the authentication section, how
X-Connection picks the vendor, and every endpoint of the contract with its method and an example
answer (and a request example where it takes a body). The page must load nothing from elsewhere
(no script, no CDN), and a screenshot of it must be a real PNG.
Chromium is Debian's `chromium` package (scripts/test installs it); without it this test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.processes import serving

CHROMIUM_SECONDS = 60
WINDOW = (1280, 2400)
# the endpoint table of the contract (the README's "The API"), as method + OpenAPI path
CONTRACT_ENDPOINTS = {
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{id}"),
    ("PATCH", "/v1/campaigns/{id}"),
    ("DELETE", "/v1/campaigns/{id}"),
    ("POST", "/v1/campaigns/{id}/start"),
    ("POST", "/v1/campaigns/{id}/pause"),
    ("POST", "/v1/campaigns/{id}/resume"),
    ("POST", "/v1/campaigns/{id}/cancel"),
    ("GET", "/v1/campaigns/{id}/recipients"),
    ("POST", "/v1/campaigns/{id}/recipients"),
    ("GET", "/v1/connections"),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    binary = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if binary is None:
        pytest.fail("chromium is missing: install Debian's package (apt-get install -y chromium); scripts/test does")
    return binary


def run_chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium with a fresh profile; bounded, and its whole process group killed after."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=CHROMIUM_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=10)
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS} s:\n{err.decode(errors='replace')[-3000:]}")
    finally:
        # helpers (zygote, GPU, network service) are in its group: none outlives the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


class DocsPage(HTMLParser):
    """Collects each operation block (<div class=op>) as (METHOD, path) with the example classes inside it,
    the ids of the page's elements, and every tag's loading attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: set[tuple[str, str]] = set()
        self.examples: dict[tuple[str, str], set[str]] = {}
        self.ids: set[str] = set()
        self.text = ""
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._current: tuple[str, str] | None = None
        self._in_op = 0
        self._method: str | None = None
        self._capture: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        self.ids.add(attributes.get("id") or "")
        classes = (attributes.get("class") or "").split()
        if self._current is not None and self._in_op:
            self.examples[self._current].update(c for c in classes if c.startswith("example-"))
        if tag == "div" and "op" in classes:
            self._in_op, self._method, self._current = 1, None, None
        elif self._in_op:
            if tag == "div":
                self._in_op += 1
            if tag == "span" and "m" in classes:
                self._capture, self._text = "method", ""
            elif tag == "code" and self._method is not None and self._capture is None:
                self._capture, self._text = "path", ""

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._capture:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._capture == "method" and tag == "span":
            self._method, self._capture = self._text.strip(), None
        elif self._capture == "path" and tag == "code":
            assert self._method is not None
            self._current = (self._method, self._text.strip())
            self.endpoints.add(self._current)
            self.examples[self._current] = set()
            self._capture, self._method = None, None
        elif self._in_op and tag == "div":
            self._in_op -= 1


def test_docs_page_in_headless_chromium(tmp_path: Path) -> None:
    chromium()  # fail first, and clearly, when the browser is missing
    screenshot = tmp_path / "docs.png"
    with serving("config.yaml", log_path=tmp_path / "serve.log") as (base_url, _):
        url = f"{base_url}/docs"
        dumped = run_chromium(tmp_path, "--dump-dom", url)
        shot = run_chromium(tmp_path, f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)

    dom = dumped.stdout.decode("utf-8", "replace")
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-3000:]
    assert "<h1>" in dom and "/openapi.json" in dom, dom[:2000]
    page = DocsPage()
    page.feed(dom)
    missing = CONTRACT_ENDPOINTS - page.endpoints
    assert not missing, f"/docs does not show {sorted(missing)}; it shows {sorted(page.endpoints)}"
    # a first call: how to authenticate, how to pick the vendor, an example for every endpoint
    assert {"auth", "connection", "headers", "capabilities"} <= page.ids, sorted(page.ids)
    # the events a tenant's endpoint receives, each with its signature headers
    assert {"webhooks", "event-call.completed", "event-call.failed", "event-campaign.status_changed"} <= page.ids
    assert "webhook-signature" in page.text
    assert "Authorization: Bearer" in page.text and "X-Connection" in page.text
    for method, path in CONTRACT_ENDPOINTS:
        assert "example-answer" in page.examples[(method, path)], (method, path)
    for body_taking in {
        ("POST", "/v1/campaigns"),
        ("PATCH", "/v1/campaigns/{id}"),
        ("POST", "/v1/campaigns/{id}/recipients"),
    }:
        assert "example-request" in page.examples[body_taking], body_taking

    # server-rendered: no script, and nothing fetched from another host
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object", "embed")]
    for tag, attributes in page.tags:
        for name in ("src", "href"):
            target = attributes.get(name) or ""
            assert not target.startswith(("http:", "https:", "//")), f"<{tag} {name}={target}> loads from elsewhere"

    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-3000:]
    assert screenshot.exists(), shot.stderr.decode(errors="replace")[-3000:]
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE), data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == WINDOW
    assert len(data) > 10_000, f"a {len(data)}-byte screenshot is too small to show the page"
