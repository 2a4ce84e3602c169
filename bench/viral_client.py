"""A process holding watchers of a viral petition: counts frames, a marker's arrival, bytes.

``python -m bench.viral_client --port P --petition ID --interval S
--group KIND COUNT PROBE_EVERY GREETINGS PATH [--group ...]`` connects COUNT
sockets to PATH for each group (a few handshakes at a time), waits for each
one's greeting (``hello`` or the user channel's first ``update``), then talks to
the driver in JSON lines:

* ``{"ready": n, "failed": f}`` once every socket is connected and greeted;
* on ``mark`` from stdin: ``{"kinds": {kind: {"frames": f, "bytes": b}},
  "closed": c, "at": t}``, the totals since the greetings (``t`` is
  ``time.monotonic()``, comparable across processes on Linux);
* on ``dump``: per group, when each socket first saw ``--marker`` (the status
  change), the probed sockets' ``[time, count]`` of every counts frame (or
  user-channel update), and
  how its counts frames were spaced; then it exits.

A counts frame that is the last frame before a lifecycle event counts as
the flush the protocol sends before that event (with 9,000 sockets the
server writes the flush to all of them before the event, so the two can
arrive a fan-out apart); the other counts frames of a socket must be at
least one interval apart (less 10% for the client's own jitter).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import resource
import sys
import time

import ujson

from .ws_client import SocketClient, _say, handshake

JITTER = 0.9  # counts frames closer than this share of the interval count as extra


class Group:
    """The sockets of one kind (public, user channel, admin) in this process."""

    def __init__(self, kind: str, count: int, probe_every: int, greetings: int, path: str) -> None:
        self.kind, self.count, self.probe_every, self.path = kind, count, probe_every, path
        self.greetings = greetings
        self.sockets: list[ViralSocket] = []
        self.failed = 0


class ViralSocket(SocketClient):
    """One watcher: counts frames and bytes, notes the marker, and (if probed) each count it saw."""

    def __init__(self, feed: Watch, request: bytes, probe: bool, greetings: int) -> None:
        super().__init__(feed, request, greetings, False, probe)  # type: ignore[arg-type]
        self.frames = 0
        self.bytes = 0
        self.marker_at: float | None = None
        self.counts: list[list[float]] = []  # [time, 1 if flushed before an event else 0]
        self.seen: list[list[float]] = []  # probes: [time, count of the petition]
        self.last_kind = b""

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        super().data_received(data)

    def on_message(self, payload: bytes, now: float) -> None:
        feed: Watch = self.feed  # type: ignore[assignment]
        if self.greetings:
            self.greetings = 0
            self.greet()
            feed.greeted += 1
            return
        self.frames += 1
        head = payload[:40]
        if self.probe and b'"update"' in head:  # the user channel: the author's whole list
            for petition in ujson.loads(payload)["petitions"]:
                if str(petition["petition_id"]) == feed.petition:
                    self.seen.append([now, petition["signature_count"]])
        if b'"counts"' in head:
            self.counts.append([now, 0])
            self.last_kind = b"counts"
            if self.probe:
                count = ujson.loads(payload)["counts"].get(feed.petition)
                if count is not None:
                    self.seen.append([now, count])
        else:
            if b'"event"' in head and self.last_kind == b"counts":
                self.counts[-1][1] = 1
            self.last_kind = b"other"
        if self.marker_at is None and feed.marker in payload:
            self.marker_at = now

    def greet(self) -> None:
        self.greetings = 0
        if not self.done.done():
            self.done.set_result(True)

    def spacing(self, interval: float) -> tuple[int, int, float, int]:
        """(counts frames, gaps under the interval, smallest gap, frames over the budget) of this socket.

        The budget is the issue's test: over the span from its first to its
        last counts frame, at most ``ceil(span / interval) + 1`` frames besides
        the flushes.  Gaps under the interval alone can be delivery jitter (a
        tick's fan-out delayed behind other work, the next one on time).
        """
        regular = [t for t, flushed in self.counts if not flushed]
        gaps = [b - a for a, b in zip(regular, regular[1:], strict=False)]
        short = sum(1 for gap in gaps if gap < interval * JITTER)
        budget = math.ceil((regular[-1] - regular[0]) / interval) + 1 if regular else 0
        return len(self.counts), short, min(gaps, default=float("inf")), max(0, len(regular) - budget)


class Watch:
    """What this process's sockets report to."""

    def __init__(self, petition: str, marker: bytes) -> None:
        self.petition = petition
        self.marker = marker
        self.greeted = 0
        self.failed = 0  # read by SocketClient when a handshake is refused
        self.closed = 0  # sockets the server closed (SocketClient.connection_lost)


def group_report(group: Group, interval: float) -> dict:
    spacing = [s.spacing(interval) for s in group.sockets]
    over = [o for _, _, _, o in spacing]
    return {
        "kind": group.kind,
        "sockets": len(group.sockets),
        "failed": group.failed,
        "marker": [s.marker_at for s in group.sockets],
        "probes": [s.seen for s in group.sockets if s.probe],
        "counts_frames_max": max((n for n, _, _, _ in spacing), default=0),
        "flushes": sum(flushed for s in group.sockets for _, flushed in s.counts),
        "sockets_over_budget": sum(1 for o in over if o),
        "frames_over_budget": sum(over),
        "sockets_with_short_gap": sum(1 for _, short, _, _ in spacing if short),
        "min_gap": min((gap for _, _, gap, _ in spacing if gap != float("inf")), default=None),
    }


async def main(args: argparse.Namespace) -> None:
    watch = Watch(str(args.petition), args.marker.encode())
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    groups = [Group(kind, int(n), int(every), int(greet), path) for kind, n, every, greet, path in args.group]

    async def connect(group: Group, index: int) -> None:
        async with gate:
            request = handshake(args.host, args.port, group.path)
            client = ViralSocket(watch, request, index % group.probe_every == 0, group.greetings)
            try:
                await loop.create_connection(lambda: client, args.host, args.port)
                ok = await asyncio.wait_for(client.done, 60)
            except (OSError, TimeoutError):
                ok = False
            if ok:
                group.sockets.append(client)
            else:
                group.failed += 1

    await asyncio.gather(*(connect(g, i) for g in groups for i in range(g.count)))
    gc.collect()
    gc.freeze()
    try:  # the load generator shares this core; see bench.ws_client
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except PermissionError:
        pass
    everyone = [s for g in groups for s in g.sockets]
    _say({"ready": len(everyone), "failed": sum(g.failed for g in groups)})
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "mark":
            kinds: dict[str, dict[str, int]] = {}
            for g in groups:
                into = kinds.setdefault(g.kind, {"frames": 0, "bytes": 0})
                into["frames"] += sum(s.frames for s in g.sockets)
                into["bytes"] += sum(s.bytes for s in g.sockets)
            _say({"kinds": kinds, "closed": watch.closed, "at": time.monotonic()})
        else:
            break
    _say({"groups": [group_report(g, args.interval) for g in groups]})
    for client in everyone:
        client.transport.abort()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.viral_client", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--petition", type=int, required=True, help="the petition whose count to follow")
    parser.add_argument("--interval", type=float, default=1.0, help="the server's --count-interval, s")
    parser.add_argument("--marker", default='"under_review"', help="bytes whose first arrival is timed")
    parser.add_argument("--concurrency", type=int, default=16, help="handshakes in flight at once")
    parser.add_argument(
        "--group",
        nargs=5,
        action="append",
        required=True,
        metavar=("KIND", "COUNT", "PROBE_EVERY", "GREETINGS", "PATH"),
        help="COUNT sockets on PATH; every PROBE_EVERY-th records its counts; GREETINGS messages on connect",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        uvloop = None
    (uvloop.run if uvloop else asyncio.run)(main(parse_args()))
