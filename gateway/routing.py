"""Maps a method and a raw request path to a canonical operation, an events endpoint, or a sandbox endpoint.

Routing reads the raw path and decodes each segment on its own, so an id such as ``a%2Fb``
stays one id (``a/b``) instead of turning into two path segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from gateway.errors import MethodNotAllowed, NotFound

WRITE, READ = "campaigns:write", "campaigns:read"
EVENTS_WRITE, EVENTS_READ = "events:write", "events:read"
HOOK = "hook"  # a vendor's callback: authenticated by its token (and the vendor's signature), not by a key
HOOKS_PATH = "/v1/hooks/"


@dataclass(frozen=True)
class Route:
    operation: str
    scope: str
    has_body: bool = False
    sandbox_path: str | None = None  # a sandbox's own endpoint, forwarded to the connection's sandbox


def _sandbox_endpoint(name: str, *methods: str) -> dict[str, Route]:
    """``/_sandbox/NAME``: reads need the read scope, the rest the write scope; POST may carry a body."""
    scopes = {method: READ if method == "GET" else WRITE for method in methods}
    return {
        method: Route(f"sandbox_{name}", scope, has_body=method == "POST", sandbox_path=f"/_sandbox/{name}")
        for method, scope in scopes.items()
    }


_COLLECTION = {"GET": Route("list", READ), "POST": Route("create", WRITE, has_body=True)}
_ITEM = {
    "GET": Route("get", READ),
    "PATCH": Route("update", WRITE, has_body=True),
    "DELETE": Route("delete", WRITE),
}
_ACTIONS = {action: {"POST": Route(action, WRITE)} for action in ("start", "pause", "resume", "cancel")}
_RECIPIENTS = {
    "GET": Route("recipients_list", READ),
    "POST": Route("recipients_add", WRITE, has_body=True),
}
_CONNECTIONS = {"GET": Route("connections", READ)}
_EVENTS = {"GET": Route("events_list", EVENTS_READ)}
_REDELIVER = {"POST": Route("events_redeliver", EVENTS_WRITE)}
_HOOKS = {"POST": Route(HOOK, "", has_body=True)}
_SANDBOX = {
    "calls": _sandbox_endpoint("calls", "GET"),
    "faults": _sandbox_endpoint("faults", "GET", "POST", "DELETE"),
    "advance": _sandbox_endpoint("advance", "POST"),
}


def logged_path(path: str) -> str:
    """A request path as logs show it: a hook's token is a secret in the URL, so it is left out."""
    return HOOKS_PATH + "…" if path.startswith(HOOKS_PATH) else path


def match(method: str, raw_path: str) -> tuple[Route, str | None] | None:
    """The route and campaign id for an API path; None when the path is neither /v1 nor a sandbox endpoint."""
    segments = raw_path.split("/")
    if len(segments) == 3 and segments[:2] == ["", "_sandbox"] and segments[2] in _SANDBOX:
        return _pick(_SANDBOX[segments[2]], method), None
    if len(segments) < 3 or segments[0] != "" or segments[1] != "v1":
        return None
    rest = segments[2:]
    if rest == ["connections"]:
        return _pick(_CONNECTIONS, method), None
    if rest == ["events"]:
        return _pick(_EVENTS, method), None
    if len(rest) == 3 and rest[0] == "events" and rest[1] and rest[2] == "redeliver":
        return _pick(_REDELIVER, method), unquote(rest[1])
    if len(rest) == 2 and rest[0] == "hooks" and rest[1]:
        return _pick(_HOOKS, method), unquote(rest[1])
    if rest[0] != "campaigns":
        raise NotFound("no such endpoint")
    if len(rest) == 1:
        return _pick(_COLLECTION, method), None
    campaign_id = unquote(rest[1])
    if not campaign_id:
        raise NotFound("no such endpoint")
    if len(rest) == 2:
        return _pick(_ITEM, method), campaign_id
    if len(rest) == 3 and rest[2] == "recipients":
        return _pick(_RECIPIENTS, method), campaign_id
    if len(rest) == 3 and rest[2] in _ACTIONS:
        return _pick(_ACTIONS[rest[2]], method), campaign_id
    raise NotFound("no such endpoint")


def _pick(routes: dict[str, Route], method: str) -> Route:
    route = routes.get(method)
    if route is None:
        raise MethodNotAllowed(f"method {method} is not allowed here", headers={"Allow": ", ".join(sorted(routes))})
    return route
