"""Signature counts as state: the latest count of each petition, sent at most once a tick.

A signature is not a message.  Each committed batch of signatures hands
its new counts to a ``CountConflator``, which keeps only the newest count
per petition (newest by ``version``, so changes arriving out of order from
several processes never move a count backwards) until the tick, when the
hub turns them into one ``counts`` frame, encoded once, for every socket.
The work of a signature is then one dict assignment, however many people
watch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from tornado.ioloop import PeriodicCallback

from . import wire


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
    """Holds the newest count of each petition changed since the last tick; emits them once per tick.

    ``emit`` receives the pending changes (at most once per ``interval``
    seconds from the tick, or at once from ``flush``) and nothing when
    nothing changed.
    """

    def __init__(self, interval: float, emit: Callable[[dict[int, CountChange]], None]) -> None:
        self.interval = interval
        self._emit = emit
        self._pending: dict[int, CountChange] = {}
        self._versions: dict[int, int] = {}  # newest version seen per petition, pending or sent
        self._tick: PeriodicCallback | None = None

    def start(self) -> None:
        """Begin ticking every ``interval`` seconds."""
        self._tick = PeriodicCallback(self.flush, self.interval * 1000)
        self._tick.start()

    def stop(self) -> None:
        """Stop ticking; pending counts stay until the next ``flush``."""
        if self._tick is not None:
            self._tick.stop()
            self._tick = None

    def add(self, changes: Iterable[CountChange]) -> None:
        """Take committed count changes; an older version of a petition's count than one seen is ignored."""
        versions = self._versions
        for change in changes:
            if change.version > versions.get(change.petition_id, -1):
                versions[change.petition_id] = change.version
                self._pending[change.petition_id] = change

    @property
    def pending(self) -> bool:
        """Whether a count changed since the last frame."""
        return bool(self._pending)

    def take(self) -> dict[int, CountChange]:
        """The pending counts, handed over (the hub sends them ahead of a lifecycle event); none remain."""
        pending, self._pending = self._pending, {}
        return pending

    def flush(self) -> None:
        """Emit the pending counts now (the tick); nothing if none."""
        if self._pending:
            self._emit(self.take())
