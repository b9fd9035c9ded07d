"""Server processes for bench/transports.py and bench/gateway.py (one uvicorn worker each).

Every server runs uvicorn with uvloop + httptools.

Roles:

* ``upstream``: a Starlette route returning a fixed ~2 KB JSON body;
* ``static --path P --body-file F``: a Starlette route at ``P`` returning the bytes of ``F``, read
  once at start and served from memory (a cache-hit ceiling);
* ``proxy --client {httpx,httpx-aiohttp,aiohttp} --upstream URL``: a minimal Starlette proxy that
  forwards ``GET /<path>`` to the upstream with one pooled client per process and returns the body.
  ``--header 'Name: value'`` (repeatable) is sent with every upstream request; ``--decode-json``
  parses each upstream body with orjson (as a gateway must before mapping it) and still returns
  the bytes unchanged.

``--hide-sniffio`` makes ``import sniffio`` fail in this process, as if the package were not
installed; it must act before anything imports anyio/httpcore, so framework and client imports below
are done inside functions, after the hook is in place.

The process binds ``127.0.0.1:0`` itself and writes the chosen port to ``--port-file`` (no
free-port race), then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
Headers = dict[str, str]
FetcherFactory = Callable[[str, Headers], AbstractAsyncContextManager[Fetch]]

CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp")
UPSTREAM_PATH = "/v1/campaigns/42"


class HiddenModuleFinder(importlib.abc.MetaPathFinder):
    """Make ``import <name>`` fail the way it does when the package is not installed.

    A real miss scans every ``sys.path`` entry before raising, and Python does not cache misses, so
    the finder pays the same path scan on every attempt and then raises ``ModuleNotFoundError``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts = 0

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        self.attempts += 1
        importlib.machinery.PathFinder.find_spec(fullname, path)
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def hide_module(name: str) -> HiddenModuleFinder:
    if name in sys.modules:
        raise RuntimeError(f"{name} was imported before it could be hidden")
    finder = HiddenModuleFinder(name)
    sys.meta_path.insert(0, finder)
    return finder


def payload() -> bytes:
    """A deterministic JSON body of about 2 KB."""
    import orjson

    calls = [
        {
            "id": f"call-{i:04d}",
            "to": f"+3312345{i:04d}",
            "status": "completed" if i % 3 else "no-answer",
            "duration_s": 17 * i % 240,
            "attempt": 1 + i % 3,
        }
        for i in range(22)
    ]
    doc = {"campaign": "42", "vendor": "sandbox", "page": 1, "calls": calls}
    return orjson.dumps(doc)


def upstream_app() -> Starlette:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = payload()

    async def item(_: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(UPSTREAM_PATH, item, methods=["GET"])])


def static_app(path: str, body: bytes) -> Starlette:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def item(_: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(path, item, methods=["GET"])])


@asynccontextmanager
async def httpx_fetcher(upstream: str, headers: Headers, *, aiohttp_transport: bool) -> AsyncIterator[Fetch]:
    import httpx

    transport: httpx.AsyncBaseTransport | None = None
    if aiohttp_transport:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport()
    async with httpx.AsyncClient(base_url=upstream, transport=transport, headers=headers) as client:

        async def fetch(path: str) -> tuple[int, bytes]:
            response = await client.get(path)
            return response.status_code, response.content

        yield fetch


@asynccontextmanager
async def aiohttp_fetcher(upstream: str, headers: Headers) -> AsyncIterator[Fetch]:
    import aiohttp

    async with aiohttp.ClientSession(base_url=upstream, headers=headers) as session:

        async def fetch(path: str) -> tuple[int, bytes]:
            async with session.get(path) as response:
                return response.status, await response.read()

        yield fetch


def fetcher_factory(client: str) -> FetcherFactory:
    if client == "httpx":
        return partial(httpx_fetcher, aiohttp_transport=False)
    if client == "httpx-aiohttp":
        return partial(httpx_fetcher, aiohttp_transport=True)
    if client == "aiohttp":
        return aiohttp_fetcher
    raise ValueError(f"unknown client {client!r}")


def proxy_app(
    client: str,
    upstream: str,
    on_shutdown: Callable[[], None] | None = None,
    *,
    headers: Headers | None = None,
    decode_json: bool = False,
) -> Starlette:
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    make_fetcher = fetcher_factory(client)
    fetchers: list[Fetch] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with make_fetcher(upstream, headers or {}) as fetch:
            fetchers.append(fetch)
            yield
        if on_shutdown is not None:
            on_shutdown()

    async def forward(request: Request) -> Response:
        status, body = await fetchers[0](request.scope["path"])
        if decode_json:
            orjson.loads(body)  # parsed and dropped: the body is returned as received
        return Response(body, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET"])], lifespan=lifespan)


def report_attempts(finder: HiddenModuleFinder) -> None:
    print(f"hidden-import-attempts {finder.name} {finder.attempts}", file=sys.stderr, flush=True)


def check_sniffio_hidden() -> None:
    """Fail fast if anyio still sees sniffio although it was hidden."""
    from anyio._core import _eventloop

    if getattr(_eventloop, "sniffio", None) is not None:
        raise RuntimeError("sniffio is still visible to anyio")


def bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def write_port(port_file: Path, port: int) -> None:
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, port_file)


def serve(app: Any, port_file: Path) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        workers=1,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sock = bind_loopback()
    write_port(port_file, sock.getsockname()[1])
    server.run(sockets=[sock])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("upstream", "static", "proxy"))
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--client", choices=CLIENTS)
    parser.add_argument("--upstream", help="base URL of the upstream, e.g. http://127.0.0.1:8000")
    parser.add_argument("--hide-sniffio", action="store_true")
    parser.add_argument("--header", action="append", default=[], help="proxy: 'Name: value' sent upstream")
    parser.add_argument("--decode-json", action="store_true", help="proxy: orjson-parse each upstream body")
    parser.add_argument("--path", help="static: the route, e.g. /v1/campaigns/42")
    parser.add_argument("--body-file", type=Path, help="static: the response body")
    args = parser.parse_args(argv)
    if args.role == "proxy" and not (args.client and args.upstream):
        parser.error("proxy needs --client and --upstream")
    if args.role == "static" and not (args.path and args.body_file):
        parser.error("static needs --path and --body-file")
    if any(":" not in header for header in args.header):
        parser.error("--header takes 'Name: value'")
    return args


def parse_headers(pairs: Sequence[str]) -> Headers:
    return {name.strip(): value.strip() for name, _, value in (pair.partition(":") for pair in pairs)}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    on_shutdown = None
    if args.hide_sniffio:
        finder = hide_module("sniffio")
        # uvicorn re-raises SIGTERM after shutting down, so report from the lifespan, not atexit
        on_shutdown = partial(report_attempts, finder)
    if args.role == "upstream":
        app = upstream_app()
    elif args.role == "static":
        app = static_app(args.path, args.body_file.read_bytes())
    else:
        headers = parse_headers(args.header)
        app = proxy_app(args.client, args.upstream, on_shutdown, headers=headers, decode_json=args.decode_json)
    if args.hide_sniffio:
        import httpx  # noqa: F401  (pulls in httpcore and anyio, whose import probes sniffio)

        check_sniffio_hidden()
    serve(app, args.port_file)


if __name__ == "__main__":
    main()
