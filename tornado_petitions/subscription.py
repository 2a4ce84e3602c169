"""Bringing one socket up to date before it goes live: the replay from the log, in pages, or the user's list.

A replay is read and sent a page at a time: at most ``PAGE_EVENTS`` events
read at once, at most ``page_bytes`` written before the socket must drain.
Pages of all catch-ups take turns (``turn``: one page in the whole
process, then at least one pass of the loop for everything else), so
however many clients resume at once, the loop is never held for more than
one page, and a client that never reads holds one page of the
server's memory.  Live frames that arrive meanwhile are held (bounded by
the backlog) and follow the frame that ends the catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from . import messages
from .counts import CountChange
from .events import Event
from .frames import encode_frame
from .messages import ADMIN

if TYPE_CHECKING:
    from .hub import HubSocket, SocketHub

PAGE_EVENTS = 64
PAGE_BYTES = 128 * 1024
# Before a replay, its size is measured in the log this many events at a time,
# counting each frame's own fields as this many bytes besides the petition and note.
MEASURE_EVENTS = 256
FRAME_OVERHEAD = 128

UserListLoader = Callable[[int, int], Awaitable[tuple[list, bool]]]
EventLoader = Callable[[int, int], Awaitable[list[Event]]]
CountsLoader = Callable[[int], Awaitable[list[CountChange]]]
BoundsLoader = Callable[[], Awaitable[tuple[int, int]]]
SizesLoader = Callable[[int, int], Awaitable[tuple[int, int, int | None]]]


class HeldFrames:
    """Live frames that arrived while a socket was catching up, and their size in bytes."""

    __slots__ = ("frames", "size")

    def __init__(self) -> None:
        self.frames: list[tuple[int | None, str, bytes]] = []  # (seq, or None for state frames)
        self.size = 0


class LogCursor:
    """Reads the event log after a seq, a page at a time, to its end: the one reader of replays and gap fills."""

    def __init__(self, load_events_after: EventLoader, after: int) -> None:
        self.after = after
        self.done = False
        self._load = load_events_after

    async def next_page(self) -> list[Event]:
        """The next at most ``PAGE_EVENTS`` events in seq order; empty once the log is read to its end."""
        if self.done:
            return []
        events = await self._load(self.after, PAGE_EVENTS)
        self.done = len(events) < PAGE_EVENTS
        if events:
            self.after = events[-1].seq
        return events


class CatchUp:
    """The hub's part that brings sockets up to date (``SocketHub.subscribe``), with its bounds."""

    def __init__(
        self,
        hub: SocketHub,
        *,
        load_user_list: UserListLoader,
        load_events_after: EventLoader,
        load_counts_since: CountsLoader,
        load_log_bounds: BoundsLoader,
        load_sizes_after: SizesLoader,
        max_replay: int,
        max_replay_bytes: int,
        max_list: int,
        max_backlog: int,
    ) -> None:
        self.max_replay = max_replay  # events a resume may replay before it is a reset
        self.max_replay_bytes = max_replay_bytes  # ... and bytes of frames
        self.max_list = max_list  # petitions in a user channel's list
        self.max_backlog = max_backlog  # bytes held for a socket catching up before it is closed 4008
        # Half the backlog at most, so a page never trips the backlog bound of a client that reads.
        self.page_bytes = min(PAGE_BYTES, max(1, max_backlog // 2))
        self._hub = hub
        self._load_user_list = load_user_list
        self._load_events_after = load_events_after
        self._load_counts_since = load_counts_since
        self._load_log_bounds = load_log_bounds
        self._load_sizes_after = load_sizes_after
        self._turn_lock = asyncio.Lock()  # one page of one catch-up at a time, process-wide

    async def run(self, sock: HubSocket, since: int | None) -> None:
        """Send what ``sock`` must see before live frames, then make it live (see ``SocketHub.subscribe``)."""
        sock.pending = HeldFrames()
        if sock.channel == "user":
            await self._send_list(sock)
        elif since is None:
            self.go_live(sock, self._hub.last_seq, messages.hello(self._hub.last_seq))
        else:
            await self._replay(sock, since)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One page's turn: held until the loop has run everything else once after the page.

        A lock alone would not do: with the database inline, a page takes no
        ``await``, so the next catch-up would find the lock free in the same
        pass of the loop and thirty pages would run back to back.
        """
        async with self._turn_lock:
            yield
            await asyncio.sleep(0)

    async def _send_list(self, sock: HubSocket) -> None:
        async with self.turn():
            seq = self._hub.last_seq
            petitions, truncated = await self._load_user_list(sock.channel_user_id, self.max_list)
            if self._hub.is_open(sock):
                self.go_live(sock, seq, messages.update(seq, petitions, truncated))

    async def _replay(self, sock: HubSocket, since: int) -> None:
        """Every event after ``since``, then the counts changed since, then ``hello``; or a ``reset``."""
        hub = self._hub
        oldest, newest = await self._load_log_bounds()
        if since < oldest or since > newest or newest - since > self.max_replay:
            self._reset(sock, newest)
            return
        if not await self._fits(since):
            self._reset(sock, newest)
            return
        cursor = LogCursor(self._load_events_after, since)
        unsent: deque[Event] = deque()
        last, replayed = since, 0
        while True:
            async with self.turn():
                if not hub.is_open(sock):
                    return
                if not unsent:
                    unsent.extend(await cursor.next_page())
                    if not unsent:
                        break
                page = 0
                while unsent and page < self.page_bytes:
                    event = unsent.popleft()
                    last = event.seq
                    if sock.channel != ADMIN and not hub.shown_publicly(event):
                        continue
                    message = messages.event_for(sock.channel, event)
                    frame = encode_frame(message.encode())
                    replayed += len(frame)
                    if replayed > self.max_replay_bytes:
                        self._reset(sock, newest)
                        return
                    if not sock.send_frame(message, frame):
                        return
                    page += len(frame)
            if not await self._drained(sock) or (cursor.done and not unsent):
                break
        async with self.turn():
            # Read after the replay, so the counts are as of (at least) the last event replayed.
            changes = await self._load_counts_since(since)
            if not hub.is_open(sock):
                return
            if sock.channel == ADMIN:
                counts = {change.petition_id: change.count for change in changes}
            else:
                counts = hub.public_counts(changes)
            if counts:
                sock.send_text(messages.counts(last, counts))
            self.go_live(sock, last, messages.hello(last))

    async def _fits(self, since: int) -> bool:
        """Whether the replay after ``since`` stays within ``max_replay_bytes``, as the log measures it.

        Measured before anything is sent, so a resume that will be a reset
        costs a few reads, not megabytes sent for nothing.  An estimate:
        the replay itself counts the exact bytes and resets past the bound.
        """
        after, total = since, 0
        while True:
            async with self.turn():
                count, length, last = await self._load_sizes_after(after, MEASURE_EVENTS)
            total += length + count * FRAME_OVERHEAD
            if total > self.max_replay_bytes:
                return False
            if count < MEASURE_EVENTS:
                return True
            after = last

    async def _drained(self, sock: HubSocket) -> bool:
        """Wait for ``sock`` to take what was written; False if it closed meanwhile."""
        return await sock.drained() and self._hub.is_open(sock)

    def _reset(self, sock: HubSocket, newest: int) -> None:
        seq = max(newest, self._hub.last_seq)
        self.go_live(sock, seq, messages.reset(seq))

    def go_live(self, sock: HubSocket, seq: int, message: str) -> None:
        """Send the frame that ends the catch-up, then what was held meanwhile (newer than ``seq``), then live."""
        held, sock.pending = sock.pending, None
        sock.last_sent_seq = max(sock.last_sent_seq, seq)
        if not sock.send_text(message) or held is None:
            return
        for held_seq, held_message, frame in held.frames:
            if held_seq is None:  # a counts frame or a list: state, never stale by seq
                sock.send_frame(held_message, frame)
            elif held_seq > sock.last_sent_seq:
                sock.last_sent_seq = held_seq
                sock.send_frame(held_message, frame)

    def hold(self, sock: HubSocket, seq: int | None, message: str, frame: bytes) -> None:
        """Keep a live frame for a socket catching up; past ``max_backlog`` bytes it is too slow (4008)."""
        held = sock.pending
        held.frames.append((seq, message, frame))
        held.size += len(frame)
        if held.size > self.max_backlog:
            sock.pending = None
            self._hub.slow_consumer(sock)
            sock.close_too_slow()
