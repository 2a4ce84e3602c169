"""Signature counts as state: the latest count of each petition, sent at most once a tick.

A signature is not a message.  Each committed batch of signatures hands
its new counts to a ``CountConflator``, which keeps only the newest count
per petition (newest by ``version``, so changes arriving out of order from
several processes never move a count backwards) until the tick, when the
hub turns them into one ``counts`` frame, encoded once, for every socket.
The work of a signature is then one dict assignment, however many people
watch.  How long a tick of the feeds is, ``FanoutBudget`` decides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable

from tornado.ioloop import PeriodicCallback

from . import wire
from .fanout_budget import FanoutBudget


@dataclasses.dataclass(frozen=True, slots=True)
class CountChange:
    """A petition's signature count after a committed batch; ``version`` grows with each batch."""

    petition_id: int
    author_id: int
    count: int
    version: int

    def to_wire(self) -> list:
        return [self.petition_id, self.author_id, self.count, self.version]

    @classmethod
    def from_wire(cls, item: list) -> CountChange:
        """Inverse of ``to_wire``; raises ValueError or TypeError on a malformed item."""
        petition_id, author_id, count, version = item
        if not all(isinstance(value, int) for value in item):
            raise TypeError("count changes are four integers")
        return cls(petition_id, author_id, count, version)


def changes_to_wire(changes: Iterable[CountChange]) -> str:
    """The JSON a batch of count changes travels as between processes (Redis)."""
    return wire.dumps([change.to_wire() for change in changes])


def changes_from_wire(data: str | bytes) -> list[CountChange]:
    """Inverse of ``changes_to_wire``; raises ValueError or TypeError on a malformed message."""
    items = wire.loads(data)
    if not isinstance(items, list):
        raise TypeError("count changes travel as a list")
    return [CountChange.from_wire(item) for item in items]


class CountConflator:
    """Holds the newest count of each petition changed since it was sent; emits them on two cadences.

    The feeds (public and admin: every socket) get the pending counts from
    ``emit`` every ``budget.interval`` seconds: ``interval`` while their
    fan-out is cheap, longer when it would take more than the budget's
    share of the process (``FanoutBudget``; each fan-out's CPU time is
    measured here, and handed to ``observe``).  The authors of changed
    petitions go to ``emit_authors`` every ``interval`` seconds whatever the
    budget: a user channel has few sockets.  Nothing is emitted when nothing
    changed; ``take`` hands the feeds' counts over at once (the hub's flush
    ahead of a lifecycle event).
    """

    def __init__(
        self,
        interval: float,
        emit: Callable[[dict[int, CountChange]], None],
        emit_authors: Callable[[set[int]], None],
        budget: FanoutBudget | None = None,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.interval = interval
        self.budget = budget if budget is not None else FanoutBudget(1.0, interval, interval)
        self._emit = emit
        self._emit_authors = emit_authors
        self._observe = observe
        self._pending: dict[int, CountChange] = {}
        self._authors: set[int] = set()  # authors of petitions changed since the last authors' tick
        self._versions: dict[int, int] = {}  # newest version seen per petition, pending or sent
        self._authors_tick: PeriodicCallback | None = None
        self._feeds_tick: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin ticking: the authors every ``interval`` seconds, the feeds every ``budget.interval``."""
        self._authors_tick = PeriodicCallback(self.flush_authors, self.interval * 1000)
        self._authors_tick.start()
        loop = asyncio.get_running_loop()
        self._feeds_tick = loop.call_at(loop.time() + self.budget.interval, self._tick)

    def stop(self) -> None:
        """Stop ticking; pending counts stay until the next ``flush``."""
        if self._authors_tick is not None:
            self._authors_tick.stop()
            self._authors_tick = None
        if self._feeds_tick is not None:
            self._feeds_tick.cancel()
            self._feeds_tick = None

    def add(self, changes: Iterable[CountChange]) -> None:
        """Take committed count changes; an older version of a petition's count than one seen is ignored."""
        versions = self._versions
        for change in changes:
            if change.version > versions.get(change.petition_id, -1):
                versions[change.petition_id] = change.version
                self._pending[change.petition_id] = change
                self._authors.add(change.author_id)

    @property
    def pending(self) -> bool:
        """Whether a count changed since the feeds' last frame."""
        return bool(self._pending)

    def take(self) -> dict[int, CountChange]:
        """The feeds' pending counts, handed over (the hub sends them ahead of a lifecycle event); none remain."""
        pending, self._pending = self._pending, {}
        return pending

    def flush(self) -> None:
        """Emit the feeds' pending counts now, measuring the fan-out; nothing if none."""
        if not self._pending:
            return
        started = time.thread_time()  # this thread's CPU: other processes' share of the machine is not ours
        self._emit(self.take())
        spent = time.thread_time() - started
        self.budget.record(spent)
        if self._observe is not None:
            self._observe(spent)

    def flush_authors(self) -> None:
        """Hand over the authors of petitions whose count changed since the last call; nothing if none."""
        if self._authors:
            authors, self._authors = self._authors, set()
            self._emit_authors(authors)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            self.flush()
        finally:
            # From the tick's start, so two frames are at least one interval apart.
            self._feeds_tick = loop.call_at(started + self.budget.interval, self._tick)
