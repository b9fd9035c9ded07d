"""The ``gateway`` command: serve, check, keys new, translate, capabilities, schema, sandbox."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.config import SCOPES, Config, default_config_path, load_config
from gateway.mapping.spec import OPERATION_NAMES
from gateway.problems import Problem

GRACEFUL_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Campaign Gateway")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _config_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=_workers, default=1, help="worker processes: a number, or auto (one per core it may use)"
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=GRACEFUL_SECONDS,
        metavar="SECONDS",
        help=f"on SIGTERM, how long requests in progress may take to finish (default {GRACEFUL_SECONDS:g})",
    )
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate the config and every map")
    _config_option(check)
    check.set_defaults(run=_check)

    keys = commands.add_parser("keys", help="manage gateway API keys").add_subparsers(required=True, metavar="ACTION")
    new = keys.add_parser("new", help="make a key; prints it once with its config entry")
    new.add_argument("--tenant", required=True)
    new.add_argument("--scope", action="append", choices=SCOPES, dest="scopes")
    new.add_argument("--id", dest="label", help="the key's label (default: TENANT-key-<6 random hex digits>)")
    new.add_argument("--expires-in", type=_duration, help="e.g. 90d, 12h, 30m: sets expires_at")
    new.set_defaults(run=_keys_new)

    translate = commands.add_parser(
        "translate", help="print the vendor request a canonical request becomes (nothing is sent)"
    )
    _config_option(translate)
    translate.add_argument("--connection", required=True)
    translate.add_argument("--tenant", help="when several tenants have a connection of that name")
    translate.add_argument("operation", choices=OPERATION_NAMES)
    translate.add_argument("--body", type=Path, help="a canonical request body (JSON file)")
    translate.add_argument("--id", dest="campaign_id", help="the campaign id, for operations on one")
    translate.add_argument("--response", type=Path, help="a vendor answer (JSON file): print its canonical form")
    translate.add_argument(
        "--handling", choices=("strict", "lenient"), default="strict", help="as Prefer: handling=... would ask"
    )
    translate.set_defaults(run=_translate)

    capabilities = commands.add_parser(
        "capabilities", help="print what each vendor of the config does with each operation and canonical field"
    )
    _config_option(capabilities)
    capabilities.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    capabilities.set_defaults(run=_capabilities)

    schema = commands.add_parser("schema", help="print the JSON Schema of a vendor map file (for editors)")
    schema.set_defaults(run=_schema)

    sandbox = commands.add_parser("sandbox", help="serve one simulated vendor on 127.0.0.1")
    sandbox.add_argument("--vendor", required=True)
    sandbox.add_argument("--port", type=int, default=8090)
    sandbox.add_argument("--mappings", type=Path, default=Path("mappings"))
    sandbox.set_defaults(run=_sandbox)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="default: ./config.yaml or $GATEWAY_CONFIG")


def _load(path: Path | None) -> tuple[Path, Config | None, list[Problem]]:
    path = path or default_config_path()
    config, problems = load_config(path)
    return path, config, problems


def _report(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    path, config, problems = _load(args.config)
    if problems:
        _report(problems)
        return 1
    assert config is not None
    connections = sum(len(t.connections) for t in config.tenants.values())
    print(f"{path}: ok ({len(config.tenants)} tenants, {connections} connections)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway import redact
    from gateway.events.settings import PUBLIC_URL_ENV
    from gateway.sandboxing import shared_sandboxes
    from gateway.server import WorkerSupervisor
    from gateway.telemetry import configure_logging

    path, loaded, problems = _load(args.config)
    if loaded is None:
        _report(problems)
        return 1
    os.environ["GATEWAY_CONFIG"] = str(path.resolve())
    # Where sandboxes post their webhooks when public_url is not set: this server (workers inherit it).
    host = f"[{args.host}]" if ":" in args.host else args.host
    os.environ[PUBLIC_URL_ENV] = f"http://{host}:{args.port}"
    # Our log format from the first line on, in this process too (with --workers it only supervises).
    redact.install(configure_logging(loaded.logging.level, loaded.logging.format))
    redact.redactor.update(loaded)
    logging.getLogger("gateway").info(_startup_line(loaded, path, args.host, args.port, args.workers))
    config = uvicorn.Config(
        "gateway.server:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="gateway.protocol:GatewayProtocol",
        timeout_graceful_shutdown=args.graceful_timeout,  # type: ignore[arg-type]  # a float works
        access_log=False,
        log_config=None,
    )
    if args.workers > 1:
        # Started before the workers, which read where the shared sandboxes are from the environment.
        with _shared_metrics_folder(), shared_sandboxes():
            WorkerSupervisor(config, sockets=[config.bind_socket()]).run()
        return 0
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 3


def _startup_line(config: Config, path: Path, host: str, port: int, workers: int) -> str:
    """One line saying what is served: sandbox or live, from which config, where, and where the docs are."""
    connections = [c for tenant in config.tenants.values() for c in tenant.connections.values()]
    sandboxed = sum(c.sandbox for c in connections)
    live = len(connections) - sandboxed
    mode = "sandbox" if not live else "live" if not sandboxed else "mixed"
    base = f"http://{host}:{port}"
    return (
        f"gateway: {mode} mode ({sandboxed} sandbox and {live} live connections) from {path} "
        f"on {base} with {workers} worker{'s' if workers > 1 else ''}; API docs at {base}/docs"
    )


@contextlib.contextmanager
def _shared_metrics_folder() -> Iterator[None]:
    """Workers write their metrics to one folder, and /metrics in any of them sums all (prometheus multiprocess)."""
    from gateway.telemetry import MULTIPROCESS_ENV

    if os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _keys_new(args: argparse.Namespace) -> int:
    from gateway.keys import key_hash, new_key

    key = new_key()
    scopes = args.scopes or list(SCOPES)
    # The label is logged: it is random on its own, never a piece of the key.
    label = args.label or f"{args.tenant}-key-{secrets.token_hex(3)}"
    entry = f'      - id: {label}\n        hash: "{key_hash(key)}"\n        scopes: [{", ".join(scopes)}]'
    if args.expires_in is not None:
        expires_at = (datetime.now(UTC) + args.expires_in).replace(microsecond=0).isoformat()
        entry += f'\n        expires_at: "{expires_at}"'
    print("New key (shown once; store it now):", file=sys.stderr)
    print(key)
    print(f"\nConfig entry for tenant {args.tenant} (under keys:):", file=sys.stderr)
    print(entry)
    return 0


def _translate(args: argparse.Namespace) -> int:
    import json

    from gateway.errors import GatewayError
    from gateway.translate import canonical_call, canonical_side, find_connection, vendor_side

    _path, config, problems = _load(args.config)
    if config is None:
        _report(problems)
        return 1
    try:
        connection = find_connection(config, args.connection, args.tenant)
        body = args.body.read_bytes() if args.body else None
        call = canonical_call(args.operation, body, args.campaign_id, args.handling)
        if args.response is not None:
            output = canonical_side(connection, call, json.loads(args.response.read_text()))
        else:
            output = vendor_side(connection, call)
    except (LookupError, OSError, ValueError) as exc:
        print(f"gateway translate: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(json.dumps(exc.envelope("translate"), indent=2), file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2))
    return 0


def _capabilities(args: argparse.Namespace) -> int:
    import json

    from gateway import capability_table as table

    _path, config, problems = _load(args.config)
    if config is None:
        _report(problems)
        return 1
    if args.format == "json":
        print(json.dumps({name: vendor_map.capabilities for name, vendor_map in table.vendors(config)}, indent=2))
    else:
        print(table.document(config, table.markdown if args.format == "markdown" else table.text))
    return 0


def _schema(_args: argparse.Namespace) -> int:
    import json

    from gateway.mapping.spec import MapSpec

    print(json.dumps(MapSpec.model_json_schema(), indent=2))
    return 0


def _workers(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("a number of workers (1 or more), or auto")
    return int(text)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([dhm])", text)
    if not match:
        raise argparse.ArgumentTypeError("a duration such as 90d, 12h or 30m")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.mapping import load_maps
    from sandboxes.hub import sandbox_app

    maps, problems = load_maps(args.mappings)
    vendor_map = maps.get(args.vendor)
    if vendor_map is None or vendor_map.sandbox is None:
        _report(problems)
        print(f"no sandbox for vendor {args.vendor!r} in {args.mappings}", file=sys.stderr)
        return 1
    uvicorn.run(sandbox_app(vendor_map.sandbox), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
