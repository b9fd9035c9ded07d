"""Keeps vendor credentials out of every log line, including exception text.

One process-wide filter, installed on the log handlers at start-up (``install``) and told the
current credentials on every config load. Gateway keys never need it: they are never logged.
"""

from __future__ import annotations

import logging

from gateway.config import Config

MASK = "[redacted]"


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def update(self, config: Config) -> None:
        found = {
            secret
            for tenant in config.tenants.values()
            for connection in tenant.connections.values()
            for secret in connection.secrets
        }
        found |= {tenant.webhooks.secret for tenant in config.tenants.values() if tenant.webhooks is not None}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = tuple(sorted(found, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True


redactor = SecretFilter()


def install(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)
