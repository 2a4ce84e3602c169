"""Where committed changes go: the ``Publisher`` interface the hub and the Redis bridge both implement."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .counts import CountChange
from .events import Event


class Publisher(Protocol):
    """Takes what a transaction committed, right after the commit, and never raises.

    ``SocketHub`` is the publisher of a process on its own: it delivers to
    this process's sockets.  ``RedisBridge`` stands in front of the hub when
    processes share a database: it delivers locally and relays to the
    others.  ``connect``/``disconnect`` start and stop the relay (nothing
    for the hub alone).
    """

    def publish(self, event: Event) -> None:
        """A committed lifecycle event."""
        ...

    def publish_counts(self, changes: Iterable[CountChange]) -> None:
        """The counts a committed signature batch left."""
        ...

    def publish_alert(self, message: str) -> None:
        """An office alert (``messages.alert``) for every admin socket; it carries no seq."""
        ...

    def blocks_changed(self) -> None:
        """This process changed a block (and holds the new ones): have every other process reload them."""
        ...

    def close_token(self, token_hash: str) -> None:
        """A token was revoked: close (4401) every socket opened with it."""
        ...

    def role_changed(self, user_id: int, role: str) -> None:
        """A user's role changed: close (4403) their sockets the new role may not hold."""
        ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...
