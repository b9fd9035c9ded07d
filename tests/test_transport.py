"""The network transport against a real HTTP server on 127.0.0.1 (tests/fakes.py serves it)."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import TimeoutSpec
from gateway.transport import AiohttpTransport
from tests.fakes import served_on_loopback


def cookie_setting_vendor() -> Starlette:
    """Answers with the Cookie header it was sent, and asks the caller to keep a session cookie."""

    async def echo(request: Request) -> Response:
        response = Response(orjson.dumps({"cookie": request.headers.get("cookie")}), media_type="application/json")
        response.set_cookie("session", "tenant-a-session", path="/")
        return response

    return Starlette(routes=[Route("/echo", echo)])


async def test_a_vendors_cookie_is_never_sent_back() -> None:
    """Calls of one connection serve many clients: a cookie one answer sets must not ride on the next call."""
    transport = AiohttpTransport(TimeoutSpec(), max_bytes=1 << 20)
    try:
        with served_on_loopback(cookie_setting_vendor()) as base_url:
            # By name: a cookie jar keeps no cookies for an IP address, so 127.0.0.1 would prove nothing.
            url = base_url.replace("127.0.0.1", "localhost") + "/echo"
            answers = [await transport.send("GET", url, {}, None) for _ in range(2)]
    finally:
        await transport.close()
    assert [status for status, _, _ in answers] == [200, 200]
    assert "session=tenant-a-session" in answers[0][1].get("set-cookie", "")
    assert [orjson.loads(body)["cookie"] for _, _, body in answers] == [None, None]
