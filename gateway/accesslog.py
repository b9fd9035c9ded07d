"""The access line, off the request's path: formatted in one call, written in batches by a thread.

The event loop only renders a line and adds its bytes to a buffer; a writer thread writes what is
buffered every ``flush_seconds`` (config ``logging.flush_seconds``, default 0.1; sooner when
``MAX_PENDING_BYTES`` are waiting), and everything left when the gateway shuts down (SIGTERM
included). A crash loses at most the last flush interval. Lines go out whole. Into a pipe or a
socket, which the workers and the gateway's other log lines share, each write holds at most
``PIPE_BUF`` bytes, so that no line interleaves with another writer's; a file or a terminal takes
a batch in one write (the kernel keeps each write whole, and every write from the writer thread
costs a hand-over of the interpreter lock).
"""

from __future__ import annotations

import os
import select
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any

import orjson

MAX_PENDING_BYTES = 256 * 1024
Render = Callable[[Any], bytes]  # a record (a dataclass or a dict) to its line


class AccessLog:
    """Access lines for one file descriptor (stderr), rendered as JSON or text."""

    def __init__(self, fd: int, render: Render, flush_seconds: float) -> None:
        self._fd, self._render, self._flush_seconds = fd, render, flush_seconds
        self._write_at_most = _atomic_write_size(fd)
        # One growing buffer, not a list of lines: orjson's output holds more memory than its length,
        # and thousands of them kept until the next flush cost more than the rendering (measured).
        self._pending = bytearray()
        self._lock = threading.Lock()  # the loop adds while the writer takes the buffer
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def write(self, record: Any) -> None:
        line = self._render(record)
        with self._lock:
            self._pending += line
            full = len(self._pending) > MAX_PENDING_BYTES
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
            data, self._pending = self._pending, bytearray()
        view, start = memoryview(data), 0
        most = self._write_at_most
        while start < len(data):  # cut at line ends, at most ``most`` bytes a write (one longer line alone)
            end = len(data) if len(data) - start <= most else data.rfind(b"\n", start, start + most) + 1
            if end <= start:
                end = data.find(b"\n", start) + 1 or len(data)
            self._write(view[start:end])
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


def _atomic_write_size(fd: int) -> int:
    """The most a write may hold and still reach the reader whole: PIPE_BUF for pipes and sockets."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return select.PIPE_BUF
    return select.PIPE_BUF if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else sys.maxsize


def json_line(record: Any) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
