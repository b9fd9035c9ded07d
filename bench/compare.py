"""Two builds of the gateway side by side: does a change make the real miss (or a hit) faster?

One run, on 127.0.0.1, starts the ``generic`` sandbox, the aiohttp proxy ceiling of
bench/overhead.py, the gateway of this work tree ("new") and the gateway of ``--base`` ("base",
checked out with ``git worktree`` into a temporary directory), both with overhead.py's bench config
and the access line on. Each build creates the same ``--spread`` campaigns first, so both did the
same work before they are measured. Then every round runs the proxy, then ``gateway-miss-spread``
(no-cache GETs cycling over the campaigns, each one reaching the vendor) on both builds, in
alternating order, so that drift on a shared machine falls on both alike.

With ``--hits`` both builds are measured on ``gateway-hit`` instead (one campaign, from the cache).

It prints every round and the medians: req/s and CPU per request of each, each build's ratio to
the proxy, and new / base. Run it once with the same build on both sides (``--base HEAD`` on a clean
tree) to see the noise of the machine: about 1.00. Servers are pinned to core 1 and wrk to core 0
as in overhead.py. Every process and the worktree are removed on exit.

Run: ``.venv/bin/python bench/compare.py --base REV [--rounds 4] [--duration 5] [--concurrency 16]``
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from overhead import (
    ROOT,
    VENDOR_KEY,
    Settings,
    Target,
    cli_process,
    create_campaign,
    free_port,
    measure,
    new_key,
    sandbox_and_gateway,
    write_config,
)
from transports import can_pin, exit_on_sigterm, server_process, wait_until_serving

BUILDS = ("new", "base")


def parse_args(argv: Sequence[str] | None) -> tuple[str, int, bool, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare the work tree with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--spread", type=int, default=256, help="campaigns the requests cycle over")
    parser.add_argument("--hits", action="store_true", help="measure cache hits instead of real misses")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    args = parser.parse_args(argv)
    settings = Settings((args.concurrency,), args.duration, args.warmup, not args.no_pin and can_pin(), args.spread)
    return args.base, max(1, args.rounds), args.hits, settings


def compare(base: str, rounds: int, hits: bool, settings: Settings) -> None:
    workdir = settings.workdir
    checkout = workdir / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(checkout), base], cwd=ROOT, check=True)
    with ExitStack() as stack:
        stack.callback(subprocess.run, ["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=False)
        sandbox_port, new_port, base_port = free_port(), free_port(), free_port()
        key = new_key()
        config = write_config(workdir, sandbox_port, "info", key)
        sandbox, new = sandbox_and_gateway(stack, workdir, config, (sandbox_port, new_port), settings.pin)
        args = ["serve", "--config", str(config), "--port", str(base_port)]
        old = stack.enter_context(cli_process("gateway-base", args, base_port, workdir, settings.pin, root=checkout))
        wait_until_serving(old, "/healthz")
        campaigns = [create_campaign(new, key) for _ in range(settings.spread)]
        for _ in campaigns:
            create_campaign(old, key)
        proxy_args = ["proxy", "--client", "aiohttp", "--upstream", sandbox.url]
        proxy_args += ["--header", f"Authorization: Bearer {VENDOR_KEY}", "--decode-json"]
        proxy = stack.enter_context(server_process("proxy", proxy_args, workdir, settings.pin))
        wait_until_serving(proxy, f"/campaigns/{campaigns[0]}")
        servers = {"sandbox": sandbox, "new": new, "base": old, "proxy": proxy}
        auth = f"Authorization: Bearer {key}"
        paths = tuple(f"/v1/campaigns/{campaign}" for campaign in campaigns)
        headers, spread = ((auth,), ()) if hits else ((auth, "Cache-Control: no-cache"), paths)
        plan = {
            "proxy": Target("proxy-ceiling", "proxy", f"/campaigns/{campaigns[0]}", ()),
            **{name: Target(name, name, paths[0], headers, spread=spread, upstream_calls=not hits) for name in BUILDS},
        }
        what = "cache hits on one campaign" if hits else f"real misses over {len(campaigns)} campaigns"
        print(f"base {base} from {checkout}; new: the work tree; {what}", flush=True)
        rps: dict[str, list[float]] = {name: [] for name in plan}
        cpu: dict[str, list[float]] = {name: [] for name in plan}
        for round_number in range(rounds):
            order = ("proxy", "base", "new") if round_number % 2 == 0 else ("proxy", "new", "base")
            print(f"round {round_number + 1}:", flush=True)
            for name in order:
                result = measure(servers, plan[name], settings.concurrencies[0], settings).result
                rps[name].append(result.rps)
                cpu[name].append(result.cpu_us_per_req)
    medians = {name: statistics.median(values) for name, values in rps.items()}
    print(f"\nmedians of {rounds} rounds at c={settings.concurrencies[0]}:")
    for name in plan:
        ratio = "" if name == "proxy" or hits else f"  {medians[name] / medians['proxy']:.3f}x proxy"
        print(f"  {name:<6} {medians[name]:8.0f} req/s  {statistics.median(cpu[name]):5.0f} us CPU/req{ratio}")
    print(f"  new / base: {medians['new'] / medians['base']:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    base, rounds, hits, settings = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as workdir:
        compare(base, rounds, hits, replace(settings, workdir=Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
