"""What the public feed's visibility check costs on the fan-out: the hub's delivery path, in process.

Builds a ``SocketHub`` with ``--sockets`` stub public sockets (their writes
do nothing, so what is measured is the hub's own work per event: the check,
the encode, the loop over sockets) and times ``publish`` of ``--events``
lifecycle events, best of ``--rounds``.  Run it on this checkout and on one
from before the rule (``--src DIR``) to compare::

    python -m bench.fanout_visibility
    python -m bench.fanout_visibility --src /tmp/before

It needs no server, database or network.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import statistics
import sys
import time
from pathlib import Path


class StubSocket:
    """A public-feed socket whose writes go nowhere: only the hub's work is timed."""

    channel = "public"
    channel_user_id = None
    user_id = None
    token_hash = None
    expires_at_epoch = float("inf")
    ping_sent_at = None
    last_ping_at = 0.0

    def __init__(self, number: int) -> None:
        self.address = f"10.0.{number // 250}.{number % 250}"
        self.last_sent_seq = 0
        self.pending = None

    def send_frame(self, message: str, frame: bytes) -> bool:
        return True

    def send_frames(self, messages: tuple[str, ...], frame: bytes) -> bool:
        return True


class StubMetrics:
    def __getattr__(self, name: str):
        return lambda *args: None


async def _nothing(*args):
    return []


def measure(sockets: int, events: int, rounds: int) -> list[float]:
    """Microseconds per delivered event, one figure per round."""
    hub_module = importlib.import_module("tornado_petitions.hub")
    events_module = importlib.import_module("tornado_petitions.events")
    extra = {}
    if "write_shared" in inspect.signature(hub_module.SocketHub).parameters:  # the counts tick's writer
        extra["write_shared"] = lambda sockets, message, frame: (len(sockets), [])
    hub = hub_module.SocketHub(
        **extra,
        load_user_list=_nothing,
        load_events_after=_nothing,
        load_counts_since=_nothing,
        load_log_bounds=_nothing,
        load_sizes_after=_nothing,
        metrics=StubMetrics(),
        max_anonymous_sockets_per_address=10**9,
    )
    for number in range(sockets):
        hub.register(StubSocket(number))
    petition = '{"petition_id":1,"title":"Fix the streetlight","status":"submitted","signature_count":0}'
    seq = 0
    figures = []
    for _ in range(rounds):
        batch = []
        for _ in range(events):
            seq += 1
            batch.append(
                events_module.Event(
                    seq,
                    "created",
                    1,
                    1,
                    1,
                    "Ann",
                    None,
                    "submitted",
                    None,
                    "2026-12-01T00:00:00.000Z",
                    petition,
                )
            )
        started = time.perf_counter()
        for event in batch:
            hub.publish(event)
        figures.append((time.perf_counter() - started) / events * 1e6)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="a checkout's root to import tornado_petitions from")
    parser.add_argument("--sockets", type=int, default=9000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.src is not None:
        sys.path.insert(0, str(args.src))
    figures = measure(args.sockets, args.events, args.rounds)
    source = importlib.import_module("tornado_petitions").__file__
    print(
        f"{source}: {args.sockets} sockets, best {min(figures):.0f} us/event,"
        f" median {statistics.median(figures):.0f} us/event"
    )


if __name__ == "__main__":
    asyncio.run(main())
