"""A scriptable vendor for tests: implements the gateway's Transport and records every request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    def json(self) -> object:
        return orjson.loads(self.body or b"null")


Answer = tuple[int, dict[str, str], bytes]


def json_answer(status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
    return status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(body)


@dataclass
class FakeVendor:
    """Answers each request with ``handler(request)``; ``sent`` keeps what the gateway sent."""

    handler: Callable[[SentRequest], Answer]
    sent: list[SentRequest] = field(default_factory=list)

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        request = SentRequest(method, url, dict(headers), body)
        self.sent.append(request)
        return self.handler(request)

    async def close(self) -> None:
        return None
