"""/docs: a readable page of the OpenAPI document, rendered on the server (no script, no CDN)."""

from __future__ import annotations

import html
from typing import Any

import orjson

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#1d2330}
h1{margin-bottom:0}.op{border:1px solid #d8dde6;border-radius:6px;margin:.6em 0;padding:.2em .8em}
.m{display:inline-block;min-width:4.5em;font-weight:700;font-family:monospace}
.get{color:#1769aa}.post{color:#2e7d32}.patch{color:#8a5a00}.delete{color:#b3261e}
code,pre{font-family:ui-monospace,monospace;background:#f5f7fa}pre{padding:.6em;overflow:auto;font-size:13px}
summary{cursor:pointer}
"""


def render_docs(openapi: dict[str, Any]) -> str:
    info = openapi["info"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>{html.escape(info['title'])} API</title><style>{_STYLE}</style>",
        f"<h1>{html.escape(info['title'])}</h1><p>{html.escape(info['description'])}</p>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p><h2>Endpoints</h2>",
    ]
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            parts.append(_operation(path, method, operation))
    parts.append("<h2>Schemas</h2>")
    for name, schema in openapi["components"]["schemas"].items():
        body = html.escape(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())
        parts.append(f"<details><summary><code>{html.escape(name)}</code></summary><pre>{body}</pre></details>")
    return "".join(parts)


def _operation(path: str, method: str, operation: dict[str, Any]) -> str:
    statuses = ", ".join(operation["responses"])
    request = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    body = html.escape(request.get("$ref", "").rsplit("/", 1)[-1])
    return (
        f"<div class=op><p><span class='m {method}'>{method.upper()}</span> <code>{html.escape(path)}</code>"
        f" — {html.escape(operation['summary'])}</p>"
        + (f"<p>Body: <code>{body}</code></p>" if body else "")
        + f"<p>Answers: {statuses}</p></div>"
    )
