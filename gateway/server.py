"""The app factory uvicorn calls in each worker process."""

from __future__ import annotations

import os
import signal
import sys

from uvicorn.supervisors import Multiprocess

from gateway import redact
from gateway.app import GatewayApp
from gateway.config import default_config_path, load_config
from gateway.heap import settle_after_startup
from gateway.sandboxing import SandboxLink
from gateway.telemetry import access_writer, configure_logging


def app_from_environment() -> GatewayApp:
    """Load ``$GATEWAY_CONFIG`` (or ./config.yaml); refuse to start on a config `check` rejects.

    Sandbox connections go to the sandboxes `gateway serve` shares among its workers, if it runs them.
    """
    config, problems = load_config(default_config_path())
    if config is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1)
    redact.install(configure_logging(config.logging.level, config.logging.format))
    access = access_writer(config.logging)
    app = GatewayApp(config, sandboxes=SandboxLink.from_environment(), access=access)
    settle_after_startup()
    return app


class WorkerSupervisor(Multiprocess):
    """uvicorn's worker supervisor, except that SIGHUP is passed on to the workers.

    Each worker then reloads its config in place (and keeps the running one if the new one is
    broken), instead of being replaced by a fresh worker that would refuse to start on it.
    """

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
