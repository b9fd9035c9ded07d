"""The access line, off the request's path: formatted in one call, written in batches by a thread.

The event loop only renders a line and appends it to a queue; a writer thread writes what is
queued every ``flush_seconds`` (config ``logging.flush_seconds``, default 0.1; sooner when
``MAX_PENDING_BYTES`` are waiting), and everything left when the gateway shuts down (SIGTERM
included). A crash loses at most the last flush interval. Lines go out whole, in writes of at
most ``PIPE_BUF`` bytes, so they never interleave with the gateway's other log lines.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Any

import orjson

MAX_PENDING_BYTES = 256 * 1024
Render = Callable[[dict[str, Any]], bytes]


class AccessLog:
    """Access lines for one file descriptor (stderr), rendered as JSON or text."""

    def __init__(self, fd: int, render: Render, flush_seconds: float) -> None:
        self._fd, self._render, self._flush_seconds = fd, render, flush_seconds
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()  # the loop appends while the writer takes the list
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def write(self, fields: dict[str, Any]) -> None:
        line = self._render(fields)
        with self._lock:
            self._pending.append(line)
            self._pending_bytes += len(line)
            full = self._pending_bytes > MAX_PENDING_BYTES
        if full:
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
        with self._lock:
            lines, self._pending, self._pending_bytes = self._pending, [], 0
        if not lines:
            return
        data = b"".join(lines)
        start = 0
        while start < len(data):  # cut at line ends, at most PIPE_BUF bytes a write (one longer line alone)
            end = (
                len(data)
                if len(data) - start <= select.PIPE_BUF
                else data.rfind(b"\n", start, start + select.PIPE_BUF) + 1
            )
            if end <= start:
                end = data.find(b"\n", start) + 1 or len(data)
            self._write(memoryview(data)[start:end])
            start = end

    def _write(self, data: memoryview) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except InterruptedError:
                continue
            except OSError:
                return  # stderr is gone (closed pipe): nothing left to tell
            data = data[written:]


def json_line(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
