"""Call outcomes: vendor webhooks in (hooks), one canonical event each, signed deliveries out, a pull API.

in: ``inbound`` (POST /v1/hooks/{token}, checked by ``verify``) · store: ``store`` (SQLite) or
``redis_store`` · out: ``delivery`` (signed by ``signing``, retried per ``settings``) · pull:
``api`` · wiring: ``service``.
"""
