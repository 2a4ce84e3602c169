"""The measurements: fan-out to N idle sockets (with memory), HTTP throughput, delivery under load.

Each function starts its server fresh, measures, stops everything it
started by PID, and returns one flat dict (one JSON line of the output).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable

import ujson

from .http_client import Request, closed_loop
from .targets import CLIENT_CORE, PINNED, ROOT, Server

# Set by ``--profile DIR``: py-spy samples each server of ours while it is measured.
PROFILE_DIR: str | None = None

SOCKETS_PER_PROCESS = 1250
# Delivery under load: latency is read on every 10th socket (the others drain
# unparsed) so the client core is not what bounds it.
PROBE_EVERY = 10
# Reading each client process's dump (a few MB) needs a bigger line limit than asyncio's 64 KiB.
LINE_LIMIT = 256 * 1024 * 1024


def steal_ms() -> float:
    """CPU time the hypervisor took from this machine so far (``/proc/stat``), in ms."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (any order)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def hist_percentile(hist: dict[int, int], fraction: float, bucket: float) -> float:
    """Percentile of a histogram of ``bucket``-wide counts (upper edge of the bucket)."""
    total = sum(hist.values())
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return (key + 1) * bucket
    return math.nan


class ClientProcesses:
    """Load-generator processes on the client core: started together, each answering one JSON line a command.

    ``ClientGroup`` (``bench.ws_client``) and the viral scenario's watchers
    (``bench.viral_client``) share this: start, wait for each ``ready`` line,
    read a line, kill at the end.
    """

    processes: list[asyncio.subprocess.Process]

    async def _spawn(self, module: str, argv: list[list[str]], ready_timeout: float) -> None:
        """Start one ``python -m module`` per entry of ``argv``; set ``ready``/``failed`` from their first lines."""
        pin = ["taskset", "-c", str(CLIENT_CORE)] if PINNED else []
        for args in argv:
            process = await asyncio.create_subprocess_exec(
                *pin, sys.executable, "-m", module, *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, limit=LINE_LIMIT,
            )  # fmt: skip
            self.processes.append(process)
        ready = [await self._line(p, ready_timeout) for p in self.processes]
        self.ready = sum(r["ready"] for r in ready)
        self.failed = sum(r["failed"] for r in ready)

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def _line(self, process: asyncio.subprocess.Process, timeout: float) -> dict:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"a client process exited early ({type(self).__name__})")
        return ujson.loads(line)


class ClientGroup(ClientProcesses):
    """Several ``bench.ws_client`` processes on the client core, holding ``count`` sockets between them."""

    def __init__(
        self, server: Server, count: int, *, mode: str, deflate: bool = False, probe_every: int = 1
    ) -> None:
        self.server = server
        self.probe_every = probe_every
        self.count = count
        self.mode = mode
        self.deflate = deflate
        self.processes: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> ClientGroup:
        processes = max(1, math.ceil(self.count / SOCKETS_PER_PROCESS))
        shares = [self.count // processes + (i < self.count % processes) for i in range(processes)]
        argv = []
        for share in shares:
            args = [
                "--port", str(self.server.port), "--path", self.server.ws_path, "--count", str(share),
                "--mode", self.mode, "--greetings", str(self.server.greetings),
                "--probe-every", str(self.probe_every),
            ]  # fmt: skip
            if self.deflate:
                args.append("--deflate")
            if self.server.socketio:
                args.append("--socketio")
            argv.append(args)
        await self._spawn("bench.ws_client", argv, ready_timeout=120)
        return self

    async def all_got(self, index: int, timeout: float = 10.0) -> float:
        """Wait until every socket has event ``index``; the monotonic time the last one got it."""
        last = 0.0
        for process in self.processes:
            report = await self._line(process, timeout)
            assert report["got"] == index, report
            last = max(last, report["last"])
        return last

    async def dump(self) -> list[dict]:
        """Each process's record (see ``bench.ws_client``); the processes then exit."""
        for process in self.processes:
            process.stdin.write(b"dump\n")
            await process.stdin.drain()
        return [await self._line(p, 60) for p in self.processes]


@contextlib.asynccontextmanager
async def profiled(server: Server, label: str):
    """Sample the server with py-spy (collapsed stacks in PROFILE_DIR) while the block runs."""
    if PROFILE_DIR is None or not server.name.startswith("tornado_petitions"):
        yield
        return
    out = os.path.join(PROFILE_DIR, f"{label}.txt")
    spy = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--nonblocking", "--rate", "1000",
        "--format", "raw", "--output", out, "--pid", str(server.process.pid),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.5)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await spy.wait()


async def fanout(server: Server, sockets: int, events: int, *, deflate: bool = False) -> dict:
    """N idle feed sockets, ``events`` changes one after another: time until the last socket has each."""
    await server.start()
    try:
        await server.prepare()
        await asyncio.sleep(0.3)
        rss_before = server.rss_kb()
        async with ClientGroup(server, sockets, mode="fanout", deflate=deflate) as group:
            await asyncio.sleep(0.5)
            rss_after = server.rss_kb()
            sent: list[float] = []
            completion: list[float] = []
            cpu_before = server.cpu_seconds()
            async with profiled(server, f"fanout-{sockets}{'-deflate' if deflate else ''}"):
                for index in range(events + 1):  # event 0 warms up and is not counted
                    started = time.monotonic()
                    trigger = asyncio.ensure_future(server.trigger())
                    last = await group.all_got(index)
                    await trigger
                    sent.append(started)
                    completion.append(last - started)
                    await asyncio.sleep(0.05)
            cpu = server.cpu_seconds() - cpu_before
            dumps = await group.dump()
    finally:
        server.stop()
    receives = [
        t - sent[index]
        for record in dumps
        for index, times in enumerate(record["times"])
        if index > 0
        for t in times
    ]
    return {
        "scenario": "fanout",
        "server": server.name,
        "sockets": group.ready,
        "failed": group.failed,
        "deflate": deflate,
        "events": events,
        "completion_ms": statistics.median(completion[1:]) * 1000,
        "completion_all_ms": [round(c * 1000, 2) for c in completion[1:]],
        "receive_p50_ms": percentile(receives, 0.50) * 1000,
        "receive_p99_ms": percentile(receives, 0.99) * 1000,
        "server_cpu_us_per_socket": cpu / (events + 1) / max(group.ready, 1) * 1e6,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "kb_per_socket": (rss_after - rss_before) / max(group.ready, 1),
    }


def create_request(tokens: list[str]) -> Callable[[int, int], Request]:
    def make(worker: int, n: int) -> Request:
        body = ujson.dumps(
            {
                "title": f"Bench petition {worker}-{n}",
                "description": "Filed by the benchmark's load generator, one of many.",
                "category": "infrastructure",
                "location": "Elm St",
            }
        ).encode()
        return "POST", "/api/petitions", body, {"Authorization": f"Bearer {tokens[worker % len(tokens)]}"}

    return make


def list_request(worker: int, n: int) -> Request:
    return "GET", "/api/petitions?limit=20", None, {}


def _load_figures(result, kind: str) -> dict:
    return {
        "kind": kind,
        "requests": result.ok,
        "errors": result.errors,
        "rps": result.ok / result.seconds,
        "rps_first_2s": result.rate(0, 2),
        "rps_last_2s": result.rate(result.seconds - 2, result.seconds),
        "p50_ms": percentile(result.latencies, 0.50) * 1000,
        "p99_ms": percentile(result.latencies, 0.99) * 1000,
    }


async def http(server: Server, seconds: float, concurrency: int, authors: int) -> list[dict]:
    """``concurrency`` clients filing petitions for ``seconds``, then listing the newest 20 as long."""
    await server.start()
    try:
        await server.prepare(authors)
        results = []
        for kind, make, expect in (
            ("create", create_request(server.tokens), 201),
            ("list", list_request, 200),
        ):
            cpu_before = server.cpu_seconds()
            async with profiled(server, f"http-{kind}"):
                result = await closed_loop(
                    "127.0.0.1", server.port, make, concurrency=concurrency, seconds=seconds, expect=expect
                )
            figures = _load_figures(result, kind)
            figures["server_cpu_share"] = (server.cpu_seconds() - cpu_before) / result.seconds
            results.append({"scenario": "http", "server": server.name, "clients": concurrency, **figures})
        return results
    finally:
        server.stop()


async def delivery_under_load(
    server: Server, sockets: int, seconds: float, concurrency: int, authors: int
) -> dict:
    """Commit-to-receive latency of every event at ``sockets`` feed sockets while clients file petitions."""
    await server.start()
    try:
        await server.prepare(authors)
        group = ClientGroup(server, sockets, mode="latency", probe_every=PROBE_EVERY)
        async with group, profiled(server, "delivery"):
            cpu_before = server.cpu_seconds()
            steal_before = steal_ms()
            result = await closed_loop(
                "127.0.0.1", server.port, create_request(server.tokens),
                concurrency=concurrency, seconds=seconds, expect=201,
            )  # fmt: skip
            cpu = server.cpu_seconds() - cpu_before
            steal = steal_ms() - steal_before
            await asyncio.sleep(0.5)
            dumps = await group.dump()
    finally:
        server.stop()
    hist: dict[int, int] = {}
    worst: dict[str, float] = {}
    for record in dumps:
        for key, count in record["hist"].items():
            hist[int(key)] = hist.get(int(key), 0) + count
        for seq, seconds_ in record["worst"].items():
            worst[seq] = max(worst.get(seq, 0.0), seconds_)
    last_socket = list(worst.values())
    return {
        "scenario": "delivery_under_load",
        "server": server.name,
        "sockets": group.ready,
        "clients": concurrency,
        "events": len(worst),
        "closed_sockets": sum(r["closed"] for r in dumps),
        "probed_sockets": math.ceil(group.ready / PROBE_EVERY),
        "server_cpu_share": cpu / result.seconds,
        "steal_ms": steal,
        "create_rps": result.ok / result.seconds,
        "create_p99_ms": percentile(result.latencies, 0.99) * 1000,
        "receive_p50_ms": hist_percentile(hist, 0.50, 0.1),
        "receive_p99_ms": hist_percentile(hist, 0.99, 0.1),
        "slowest_probe_p50_ms": percentile(last_socket, 0.50) * 1000,
        "slowest_probe_p99_ms": percentile(last_socket, 0.99) * 1000,
    }
