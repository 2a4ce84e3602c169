"""``make bench``: tornado_petitions and its peers measured side by side, in one run.

Prints one JSON line per measurement as it is taken, then a Markdown table
of the medians over ``--runs`` runs with the ratios against the peers.
Servers run on core 0, load generators (this process and the WebSocket
client processes) on core 1, where ``taskset`` and two cores allow.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ujson

from . import scenarios, targets, viral
from .targets import (
    CLIENT_CORE,
    PINNED,
    ROOT,
    BroadcastServer,
    OurServer,
    SeedServer,
    Server,
    SocketIOServer,
    peers_python,
    socketio_dir,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 1 run, small numbers")
    parser.add_argument("--sockets", default="1000,5000", help="fan-out sizes, comma-separated")
    parser.add_argument("--events", type=int, default=10, help="status changes per fan-out measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each HTTP load")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--authors", type=int, default=8, help="users the HTTP clients file petitions as")
    parser.add_argument("--load-sockets", type=int, default=1000, help="sockets for delivery under load")
    parser.add_argument(
        "--only", default="fanout,http,delivery,viral", help="scenarios to run: fanout, http, delivery, viral"
    )
    parser.add_argument(
        "--watchers",
        default="0,1000,9000",
        help="viral: public watchers, comma-separated (15000 fits the 20,000 open files: 0,1000,9000,15000)",
    )
    parser.add_argument(
        "--storm-seconds", type=float, default=10.0, help="viral: length of the signing storm"
    )
    parser.add_argument("--signers", type=int, default=40_000, help="viral: users made to sign (one each)")
    parser.add_argument(
        "--count-interval", type=float, default=1.0, help="viral: the server's --count-interval"
    )
    parser.add_argument(
        "--resume-signatures", type=int, default=1_000_000, help="viral: signatures in the DB before resuming"
    )
    parser.add_argument("--resume-repeats", type=int, default=20, help="viral: resumes timed per since")
    parser.add_argument(
        "--no-floor", action="store_true", help="viral: skip the idle fan-out to the most watchers"
    )
    parser.add_argument("--no-socketio", action="store_true", help="leave out the Node.js peer")
    parser.add_argument("--servers", help="fan-out servers to run, comma-separated names (default all)")
    parser.add_argument("--no-executor", action="store_true", help="skip the executor variant")
    parser.add_argument(
        "--peers",
        type=Path,
        default=Path(os.environ.get("PETITIONS_PEERS", ROOT.parent / "shared" / "peers")),
        help="the peers' folder (default ../shared/peers next to this checkout; env PETITIONS_PEERS)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    parser.add_argument("--profile", type=Path, help="py-spy our server into this folder (slows it)")
    parser.add_argument("--ours-src", type=Path, help="run tornado_petitions from this checkout instead")
    args = parser.parse_args(argv)
    if not (args.peers / "requirements.txt").is_file():
        parser.error(f"no peers at {args.peers}: pass --peers DIR (the folder holding seed_fastapi/)")
    if args.quick:
        args.runs, args.sockets, args.events = 1, "200,1000", 3
        args.seconds, args.load_sockets = 2.0, 200
        if args.watchers == parser.get_default("watchers"):
            args.watchers = "0,500"
        args.signers, args.resume_signatures, args.resume_repeats = 8_000, 100_000, 5
        args.storm_seconds = 3.0
    args.sizes = [int(n) for n in args.sockets.split(",")]
    args.watcher_counts = [int(n) for n in args.watchers.split(",")]
    args.scenarios = set(args.only.split(","))
    return args


def emit(document: dict, out) -> None:
    line = ujson.dumps(document)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def machine() -> dict:
    with open("/proc/cpuinfo") as info:
        models = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "pinned": PINNED,
        "loadavg": os.getloadavg(),
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


async def one_run(args: argparse.Namespace, run: int, work: Path, out) -> list[dict]:
    peers = args.peers
    node = None if args.no_socketio else socketio_dir(peers)
    fanout_servers: list[Callable[[], Server]] = [
        lambda: OurServer(work),
        lambda: SeedServer(work, peers),
        lambda: BroadcastServer(work, peers, raw=False),
        lambda: BroadcastServer(work, peers, raw=True),
    ]
    if node is not None:
        fanout_servers.append(lambda: SocketIOServer(work, peers, node))
    if args.servers:
        wanted = set(args.servers.split(","))
        fanout_servers = [make for make in fanout_servers if make().name in wanted]
    results = []

    def keep(document: dict) -> None:
        document = {"run": run, **document, "loadavg_1m": round(os.getloadavg()[0], 2)}
        results.append(document)
        emit(document, out)

    if "fanout" in args.scenarios:
        for size in args.sizes:
            for make in fanout_servers:
                keep(await scenarios.fanout(make(), size, args.events))
        if not args.servers or "deflate" in args.servers:
            keep(
                await scenarios.fanout(
                    OurServer(work, compression=True), args.sizes[0], args.events, deflate=True
                )
            )
    if "http" in args.scenarios:
        for make in (lambda: OurServer(work), lambda: SeedServer(work, peers)):
            for document in await scenarios.http(make(), args.seconds, args.clients, args.authors):
                keep(document)
    if "delivery" in args.scenarios:
        variants = [False] if args.no_executor else [False, True]
        for executor in variants:
            server = OurServer(work, executor=executor)
            keep(
                await scenarios.delivery_under_load(
                    server, args.load_sockets, args.seconds, args.clients, args.authors
                )
            )
    if "viral" in args.scenarios:
        await viral.run_all(args, work, keep)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers inherit it
    if PINNED:
        os.sched_setaffinity(0, {CLIENT_CORE})
    peers_python(args.peers)  # build the peers' venv before anything is timed
    out = open(args.out, "w") if args.out else None
    targets.OURS_SRC = args.ours_src.resolve() if args.ours_src else None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        scenarios.PROFILE_DIR = str(args.profile)
    emit({"machine": machine(), "args": sys.argv[1:]}, out)
    started = time.monotonic()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for run in range(1, args.runs + 1):
            results += _run(one_run(args, run, Path(tmp), out))
    emit({"done_seconds": round(time.monotonic() - started, 1), "loadavg": os.getloadavg()}, out)
    from .report import table

    print()
    print(table(results, args))
    info = machine()
    print()
    print(
        f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']}; "
        f"servers pinned to core 0 and load to core 1: {PINNED}. Median of {args.runs} run(s); "
        f"load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return 0


def _run(coroutine):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
