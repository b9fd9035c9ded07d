"""Live reload: on SIGHUP, and when the config or a map file changes, load and swap in the new config.

A config that `gateway check` would reject is refused with the same messages, and the one already
running keeps serving. Every worker process watches for itself, so a removed key stops working on
all of them within one polling interval (1 s by default). Reading, validating and compiling run in
a thread, so requests keep being served meanwhile; only the swap itself runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from gateway.config import Config, load_config

log = logging.getLogger("gateway.reload")
Signature = tuple[tuple[str, int, int], ...]


def files_signature(config_path: Path, mappings_dir: Path | None) -> Signature:
    """Name, size and modification time of the config and every map file."""
    paths = [config_path]
    if mappings_dir is not None and mappings_dir.is_dir():
        paths += sorted(mappings_dir.glob("*.yaml"))
    signature = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            signature.append((str(path), -1, -1))
        else:
            signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class ConfigWatcher:
    def __init__(self, config: Config, apply: Callable[[Config], None], interval: float = 1.0) -> None:
        self.path = config.path
        self._running = config  # its compiled maps are reused for map files that did not change
        self._apply = apply
        self._interval = interval
        self._signature = files_signature(self.path, config.mappings_dir)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._wake.set)
        self._task = loop.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            forced = self._wake.is_set()
            self._wake.clear()
            signature = files_signature(self.path, self._running.mappings_dir)
            if forced or signature != self._signature:
                self._signature = signature
                await self.reload()

    async def reload(self) -> bool:
        """Load the config again; swap it in when valid, else keep the running one. True if swapped."""
        config, problems = await asyncio.to_thread(load_config, self.path, None, self._running)
        if config is None:
            for problem in problems:
                log.error("reload refused: %s", problem)
            return False
        self._running = config
        self._apply(config)
        log.info("config reloaded from %s", self.path)
        return True
