"""/docs: a page a person can make a first call from, rendered on the server (no script, no CDN).

It reads the OpenAPI document: how to authenticate and pick a connection, every header, every
endpoint with its parameters and an example request and answer, the errors, each schema as a
table of fields, and what each vendor of this gateway does with each field.
"""

from __future__ import annotations

import html
from typing import Any

import orjson

from gateway.capability_table import LEGEND

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#1d2330}
h1{margin-bottom:0}.op{border:1px solid #d8dde6;border-radius:6px;margin:.8em 0;padding:.2em .8em}
.m{display:inline-block;min-width:4.5em;font-weight:700;font-family:monospace}
.get{color:#1769aa}.post{color:#2e7d32}.patch{color:#8a5a00}.delete{color:#b3261e}
code,pre{font-family:ui-monospace,monospace;background:#f5f7fa}pre{padding:.6em;overflow:auto;font-size:13px}
table{border-collapse:collapse;margin:.4em 0;font-size:14px}td,th{border:1px solid #d8dde6;padding:.2em .5em;
text-align:left;vertical-align:top}th{background:#f5f7fa}summary{cursor:pointer}nav a{margin-right:1em}
"""
_FIRST_CALL = """<h2 id=first-call>Your first call</h2>
<p id=auth><b>Authentication.</b> Every <code>/v1</code> request carries the API key your operator
gave you: <code>Authorization: Bearer &lt;key&gt;</code> (or <code>X-API-Key: &lt;key&gt;</code>).
A missing or wrong key is <code>401 unauthorized</code>; a key without the scope (<code>campaigns:read</code>
for reads, <code>campaigns:write</code> for the rest) is <code>403 forbidden</code>.</p>
<p id=connection><b>Which vendor.</b> <code>X-Connection: &lt;name&gt;</code> picks one of your connections
(a vendor account); without it your default connection is used. <code>GET /v1/connections</code> lists
them, the operations each offers and what it does with each field. A campaign id belongs to the
connection that created it. To switch vendor, change <code>X-Connection</code>, not your code.</p>
<p id=portability><b>Fields a vendor cannot carry.</b> By default a request setting one is refused (422,
naming it). Send <code>Prefer: handling=lenient</code> to have it left out instead: the answer then says
<code>Preference-Applied: handling=lenient</code> and names what was left out in <code>Dropped-Fields</code>.</p>
<pre>curl -s $GATEWAY/v1/campaigns -H "Authorization: Bearer $KEY" -H "X-Connection: $CONNECTION" \\
  -H 'Content-Type: application/json' -d '{create}'
curl -s $GATEWAY/v1/campaigns/&lt;id&gt; -H "Authorization: Bearer $KEY" -H "X-Connection: $CONNECTION"</pre>
"""
_ERRORS = """<h2 id=errors>Errors</h2><p>Every non-2xx answer is <code>{"error": {"code", "message",
"request_id", "vendor"?, "upstream_status"?, "details"?}}</code>; <code>details</code> names each field at
fault by its canonical name, even when the vendor refused it in its own words.</p>"""


def render_docs(openapi: dict[str, Any], capabilities: list[list[list[str]]]) -> str:
    """The page; ``capabilities`` are the tables of ``gateway capabilities`` for this gateway's vendors."""
    info = openapi["info"]
    create = orjson.dumps(
        openapi["paths"]["/v1/campaigns"]["post"]["requestBody"]["content"]["application/json"]["example"]
    ).decode()
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>{_e(info['title'])} API</title><style>{_STYLE}</style>",
        f"<h1>{_e(info['title'])}</h1><p>{_e(info['description'])}</p>",
        "<nav><a href=#first-call>First call</a><a href=#headers>Headers</a><a href=#endpoints>Endpoints</a>"
        "<a href=#errors>Errors</a><a href=#webhooks>Events</a><a href=#schemas>Schemas</a>"
        "<a href=#capabilities>Vendors</a>"
        "<a href=/openapi.json>openapi.json</a></nav>",
        _FIRST_CALL.replace("{create}", _e(create)),
        _headers(openapi["components"]),
        "<h2 id=endpoints>Endpoints</h2>",
    ]
    parameters = openapi["components"]["parameters"]
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            parts.append(_operation(path, method, operation, parameters))
    parts.append(_ERRORS + _table(["status", "when"], [[s, r["description"]] for s, r in _error_answers(openapi)]))
    parts.append(_webhooks(openapi.get("webhooks", {})))
    parts.append("<h2 id=schemas>Schemas</h2>")
    parts += [_schema(name, schema) for name, schema in openapi["components"]["schemas"].items()]
    parts.append(f"<h2 id=capabilities>Vendors</h2><p>{_e(LEGEND)}</p>")
    parts += [_table(rows[0], rows[1:]) for rows in capabilities]
    return "".join(parts)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _headers(components: dict[str, Any]) -> str:
    sent = [
        ["Authorization", "Bearer <key>: your API key (or X-API-Key: <key>)"],
        *([p["name"], p["description"]] for p in components["parameters"].values() if p["in"] == "header"),
        ["Content-Type", "application/json on requests with a body"],
    ]
    answered = [[name, spec["description"]] for name, spec in components["headers"].items()]
    return (
        "<h2 id=headers>Headers</h2><h3>You send</h3>"
        + _table(["header", "meaning"], sent)
        + "<h3>You get back</h3>"
        + _table(["header", "meaning"], answered)
    )


def _operation(path: str, method: str, operation: dict[str, Any], parameters: dict[str, Any]) -> str:
    used = [parameters[ref["$ref"].rsplit("/", 1)[-1]] for ref in operation.get("parameters", [])]
    rows = [[p["name"], p["in"], p.get("description", "")] for p in used]
    parts = [
        f"<div class=op id={_e(operation['operationId'])}><p><span class='m {method}'>{method.upper()}</span>"
        f" <code>{_e(path)}</code> — {_e(operation['summary'])} <small>({_e(operation['operationId'])})</small></p>",
    ]
    if operation.get("description"):
        parts.append(f"<p>{_e(operation['description'])}</p>")
    if rows:
        parts.append(_table(["parameter", "in", "meaning"], rows))
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        parts.append(f"<p>Body: <code>{_e(body['schema']['$ref'].rsplit('/', 1)[-1])}</code>, for example:</p>")
        parts.append(f"<pre class=example-request>{_pretty(body['example'])}</pre>")
    status, answer = next(iter(operation["responses"].items()))
    content = answer.get("content", {})
    media, sample = next(iter(content.items())) if content else ("", {})
    if "example" in sample:
        parts.append(
            f"<p>Answer {status}, for example:</p><pre class=example-answer>{_pretty(sample['example'])}</pre>"
        )
    else:
        parts.append(f"<p class=example-answer>Answer {status}: {_e(answer['description'])} {_e(media)}</p>")
    parts.append(f"<p>Answers: {_e(', '.join(operation['responses']))}</p></div>")
    return "".join(parts)


def _webhooks(webhooks: dict[str, Any]) -> str:
    """The events the gateway posts to your endpoint: each type, its signature headers, an example."""
    parts = ["<h2 id=webhooks>Events we send you</h2>"]
    for name, methods in webhooks.items():
        operation = methods["post"]
        headers = [[p["name"], p.get("description", "")] for p in operation.get("parameters", [])]
        example = operation["requestBody"]["content"]["application/json"].get("example")
        parts.append(f"<div class=op id=event-{_e(name)}><p><code>{_e(name)}</code> — {_e(operation['summary'])}</p>")
        parts.append(f"<p>{_e(operation.get('description', ''))}</p>" + _table(["header", "meaning"], headers))
        if example is not None:
            parts.append(f"<pre class=example-answer>{_pretty(example)}</pre>")
        parts.append("</div>")
    return "".join(parts)


def _pretty(value: Any) -> str:
    return _e(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _error_answers(openapi: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    responses = openapi["paths"]["/v1/campaigns"]["post"]["responses"]
    return [(status, answer) for status, answer in responses.items() if status >= "400"]


def _schema(name: str, schema: dict[str, Any]) -> str:
    rows = [
        [field, _type(spec), "yes" if field in schema.get("required", []) else "", spec.get("description", "")]
        for field, spec in schema.get("properties", {}).items()
    ]
    about = f"<p>{_e(schema['description'])}</p>" if schema.get("description") else ""
    return f"<h3 id=schema-{_e(name)}>{_e(name)}</h3>{about}" + _table(["field", "type", "required", "meaning"], rows)


def _type(spec: dict[str, Any]) -> str:
    """A JSON Schema type in words: ``text``, ``list of RecipientIn``, ``one of draft, active…``, ``… or null``."""
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " or ".join(_type(option) for option in spec["anyOf"])
    if "enum" in spec:
        return "one of " + ", ".join(map(str, spec["enum"]))
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"object of {_type(spec['additionalProperties'])}"
    words = {"string": "text", "integer": "integer", "number": "number", "boolean": "true/false", "null": "null"}
    text = words.get(kind, kind)
    return f"{text} ({spec['format']})" if "format" in spec else text
