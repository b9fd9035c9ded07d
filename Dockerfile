FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY sandboxes ./sandboxes
RUN pip install .
COPY mappings ./mappings
COPY config.yaml ./config.yaml

# The events outbox (events.sqlite3) is written next to the config: the folder is the gateway's.
# For events that outlive the container, mount a volume and point events.store at it.
RUN useradd --system --uid 10001 --no-create-home gateway && chown gateway /app
USER gateway
EXPOSE 8080
ENV GATEWAY_CONFIG=/app/config.yaml
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
