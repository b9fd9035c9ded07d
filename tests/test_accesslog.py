"""The access-line writer (gateway/accesslog.py): every line written whole, in order, and into a
pipe or socket in writes of at most PIPE_BUF bytes that end at a line's end (other workers share
it); a file takes a batch in one write. Nothing queued is lost at close."""

from __future__ import annotations

import os
import select
import socket
import threading
from pathlib import Path

import orjson

from gateway.accesslog import AccessLog, json_line


class Recording(AccessLog):
    """An AccessLog that also keeps the size and end of each write it makes."""

    def __init__(self, fd: int) -> None:
        self.writes: list[bytes] = []
        super().__init__(fd, json_line, flush_seconds=60)  # nothing flushes before close()

    def _write(self, data: memoryview) -> None:
        self.writes.append(bytes(data))
        super()._write(data)


def lines(count: int, size: int = 300) -> list[dict[str, object]]:
    return [{"n": n, "path": "/v1/campaigns/" + "x" * size} for n in range(count)]


def read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 1 << 16):
        into += chunk


def test_into_a_pipe_each_write_is_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    read_end, write_end = os.pipe()
    received = bytearray()
    reader = threading.Thread(target=read_all, args=(read_end, received))
    reader.start()
    log = Recording(write_end)
    fields = [*lines(200), {"n": 200, "path": "/" + "y" * (2 * select.PIPE_BUF)}, *lines(3)]
    for line in fields:
        log.write(line)
    log.close()
    os.close(write_end)
    reader.join(timeout=10)
    os.close(read_end)
    assert len(log.writes) > 10
    for data in log.writes:
        assert data.endswith(b"\n")
        assert len(data) <= select.PIPE_BUF or data.count(b"\n") == 1  # a longer line goes alone
    assert [orjson.loads(line) for line in received.splitlines()] == fields


def test_into_a_socket_the_same_bound_holds() -> None:
    left, right = socket.socketpair()
    received = bytearray()
    reader = threading.Thread(target=read_all, args=(right.fileno(), received))
    reader.start()
    log = Recording(left.fileno())
    for line in lines(100):
        log.write(line)
    log.close()
    left.shutdown(socket.SHUT_WR)
    reader.join(timeout=10)
    left.close()
    right.close()
    assert all(len(data) <= select.PIPE_BUF and data.endswith(b"\n") for data in log.writes)
    assert [orjson.loads(line)["n"] for line in received.splitlines()] == list(range(100))


def test_into_a_file_a_batch_is_one_write_and_every_line_arrives(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    log = Recording(fd)
    fields = lines(500)
    for line in fields:
        log.write(line)
    log.close()
    os.close(fd)
    assert len(log.writes) == 1
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == fields
