"""Real `gateway serve` / `gateway sandbox` processes for the tests: start, wait (bounded), stop.

Each process runs from the repo root without $GATEWAY_CONFIG, leads a process group of its own
(so its workers can be killed with it) and writes its output to a file that failures quote.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import httpx

from tests.conftest import MAPPINGS, ROOT, free_port

STARTUP_SECONDS = 20
STOP_SECONDS = 5


def gateway_command() -> list[str]:
    """The `gateway` console script next to this interpreter, else `python -m gateway.cli`."""
    script = Path(sys.executable).parent / "gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def start_gateway(
    *arguments: str,
    log_path: Path,
    stdout_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    drop_env: Iterable[str] = (),
) -> subprocess.Popen[bytes]:
    """`gateway ARGUMENTS`: stderr to ``log_path``, stdout there too unless ``stdout_path`` is given."""
    dropped = {"GATEWAY_CONFIG", *drop_env}
    environment = {k: v for k, v in os.environ.items() if k not in dropped} | dict(env or {})
    with contextlib.ExitStack() as files:
        err = files.enter_context(log_path.open("wb"))
        out = err if stdout_path is None else files.enter_context(stdout_path.open("wb"))
        return subprocess.Popen(
            [*gateway_command(), *arguments],
            cwd=ROOT,
            stdout=out,
            stderr=err if stdout_path is not None else subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log_path: Path,
    seconds: float = STARTUP_SECONDS,
    what: str = "it",
) -> None:
    """Poll ``ready()`` (connection errors mean not yet) until true; fail if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")
            raise AssertionError(f"{process.args} exited with {process.returncode}:\n{log}")
        with contextlib.suppress(httpx.TransportError, OSError, http.client.HTTPException):
            if ready():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was not ready within {seconds} s:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def wait_for_http(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    seconds: float = STARTUP_SECONDS,
    accept: Callable[[httpx.Response], bool] = lambda answer: answer.status_code == 200,
) -> httpx.Response:
    """Wait until GET ``url`` gives an answer ``accept`` takes (by default a 200); returns that answer."""
    answer: httpx.Response | None = None

    def ready() -> bool:
        nonlocal answer
        answer = httpx.get(url, timeout=1)
        return accept(answer)

    wait_until(ready, process, log_path, seconds, url)
    assert answer is not None
    return answer


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to its process group after STOP_SECONDS; then any worker it left behind."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode is not None


@contextlib.contextmanager
def running(
    *arguments: str,
    probe: str,
    log_path: Path,
    stdout_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    drop_env: Iterable[str] = (),
) -> Iterator[str]:
    """`gateway ARGUMENTS --port <free>` until the block ends; yields its base URL once ``probe`` answers 200."""
    port = free_port()
    process = start_gateway(
        *arguments, "--port", str(port), log_path=log_path, stdout_path=stdout_path, env=env, drop_env=drop_env
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base_url + probe, process, log_path)
        yield base_url
    finally:
        stop(process)


@contextlib.contextmanager
def serving(
    config: str | Path,
    *extra: str,
    log_path: Path,
    stdout_path: Path | None = None,
    drop_env: Iterable[str] = (),
) -> Iterator[tuple[str, Path]]:
    """`gateway serve --config CONFIG EXTRA --port <free>`; yields (base URL, log path) once /healthz is 200."""
    arguments = ("serve", "--config", str(config), *extra)
    with running(*arguments, probe="/healthz", log_path=log_path, stdout_path=stdout_path, drop_env=drop_env) as url:
        yield url, log_path


@contextlib.contextmanager
def sandbox(log_path: Path, vendor: str = "generic") -> Iterator[str]:
    """`gateway sandbox --vendor VENDOR` on the repo's maps; yields its base URL once /_sandbox/calls is 200."""
    arguments = ("sandbox", "--vendor", vendor, "--mappings", str(MAPPINGS))
    with running(*arguments, probe="/_sandbox/calls", log_path=log_path) as url:
        yield url
