"""The app factory uvicorn calls in each worker process."""

from __future__ import annotations

import logging
import sys

from gateway import redact
from gateway.app import GatewayApp
from gateway.config import default_config_path, load_config


def app_from_environment() -> GatewayApp:
    """Load ``$GATEWAY_CONFIG`` (or ./config.yaml); refuse to start on a config `check` rejects."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("", "uvicorn", "uvicorn.error"):
        redact.install(logging.getLogger(name).handlers)
    config, problems = load_config(default_config_path())
    if config is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1)
    return GatewayApp(config)
