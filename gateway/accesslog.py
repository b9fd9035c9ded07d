"""The access line, off the request's path: formatted in one call, written in batches by a thread.

The event loop only renders a line and appends it to a queue; a writer thread writes what is
queued every ``flush_seconds`` (config ``logging.flush_seconds``, default 0.1; sooner when
``MAX_PENDING_BYTES`` are waiting), and everything left when the gateway shuts down (SIGTERM
included). A crash loses at most the last flush interval. Lines go out whole, in writes of at
most ``PIPE_BUF`` bytes, so they never interleave with the gateway's other log lines.
"""

from __future__ import annotations

import collections
import os
import select
import threading
from collections.abc import Callable
from typing import Any

import orjson

MAX_PENDING_BYTES = 256 * 1024
Render = Callable[[dict[str, Any]], bytes]


class AccessLog:
    """Access lines for one file descriptor (stderr), rendered as JSON or text, secrets masked."""

    def __init__(self, fd: int, render: Render, mask: Callable[[bytes], bytes], flush_seconds: float) -> None:
        self._fd, self._render, self._mask, self._flush_seconds = fd, render, mask, flush_seconds
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def write(self, fields: dict[str, Any]) -> None:
        line = self._mask(self._render(fields))
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes > MAX_PENDING_BYTES:
            self._wake.set()

    def close(self) -> None:
        """Write everything queued and stop the writer (the gateway's shutdown calls this)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._flush()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        chunk: list[bytes] = []
        size = 0
        while self._pending:
            line = self._pending.popleft()  # deque pops are atomic: the loop may append meanwhile
            self._pending_bytes -= len(line)
            if chunk and size + len(line) > select.PIPE_BUF:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                return  # stderr is gone (closed pipe): nothing left to tell
            view = view[written:]


def json_line(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
