"""The socket hub: who is connected, which committed event goes to whom, and who stopped answering.

One ``SocketHub`` per application.  It owns a socket's whole subscription
(``subscribe``: register, replay what the client missed, then live), receives
committed events (from this process, or from Redis through ``RedisBridge``),
puts them in seq order, encodes each message once, and writes the same frame
bytes to every socket of a channel.  It knows sockets and events, not HTTP;
it reads the database only through the loader functions it is given (a
replay, a gap fill, a user's list).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from tornado.ioloop import PeriodicCallback

from . import messages
from .counts import CountChange, CountConflator
from .events import Event
from .fanout_budget import FanoutBudget
from .frames import encode_frame
from .roles import Permission, allows
from .subscription import (
    BoundsLoader,
    CatchUp,
    CountsLoader,
    EventLoader,
    HeldFrames,
    LogCursor,
    SizesLoader,
    UserListLoader,
)

log = logging.getLogger("tornado_petitions.hub")

CHANNELS = ("user", "public", "admin")

# Close codes: the contract the web page acts on (docs/protocol.md "Close codes").
CLOSE_GOING_AWAY = 1001
CLOSE_SERVER_ERROR = 1011
CLOSE_HEARTBEAT_TIMEOUT = 4000
CLOSE_TOO_SLOW = 4008
CLOSE_TOKEN_INVALID = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_SOCKETS = 4429

# How long an out-of-order event waits for the seqs before it before the
# hub reads them from the event log itself (seconds).
GAP_TIMEOUT = 0.25


class HubSocket(Protocol):
    """What the hub needs of a socket (``handlers.sockets.ChannelSocketHandler``)."""

    channel: str
    channel_user_id: int | None
    user_id: int | None  # None: a public-feed socket without an account
    address: str  # the client address (forwarded one with --xheaders)
    token_hash: str | None
    permission: Permission | None  # what its user's role must hold to keep it open (None: nothing)
    expires_at_epoch: float
    last_sent_seq: int
    pending: HeldFrames | None  # set by the hub while the socket replays
    ping_sent_at: float | None
    last_ping_at: float

    def send_text(self, message: str) -> bool: ...

    def send_frame(self, message: str, frame: bytes) -> bool: ...

    def send_frames(self, messages: tuple[str, ...], frames: bytes) -> bool: ...

    def send_ping(self, frame: bytes) -> bool: ...

    async def drained(self) -> bool:
        """Wait until what was written went to the kernel; False if the socket closed meanwhile."""
        ...

    def close_too_slow(self) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class SharedWriter(Protocol):
    """Writes one frame to many sockets (``handlers.sockets.write_shared``): the counts tick's loop.

    Returns how many took it, and the sockets that are catching up (their
    ``pending`` is set), which it leaves to the hub.
    """

    def __call__(
        self, sockets: Iterable[HubSocket], message: str, frame: bytes
    ) -> tuple[int, list[HubSocket]]: ...


class HubMetrics(Protocol):
    """The counters the hub moves (``metrics.ServiceMetrics`` provides them)."""

    def socket_opened(self, channel: str) -> None: ...

    def socket_closed(self, channel: str) -> None: ...

    def messages_sent(self, channel: str, count: int, size: int) -> None: ...

    def socket_pruned(self) -> None: ...

    def slow_consumer_closed(self) -> None: ...

    def event_delivered(self, created_at: str) -> None: ...

    def counts_fanout(self, seconds: float) -> None: ...

    def watch_fanout_budget(self, budget: FanoutBudget) -> None: ...


class SocketHub:
    """Registers sockets, fans committed events out in seq order, and runs the heartbeat sweep.

    Lifecycle events go out one by one, at once; signature counts go
    through a ``CountConflator`` and out as one ``counts`` frame a tick (of
    the feeds' budgeted interval), flushed before every lifecycle event so a
    frame's seq always means "everything up to here".
    """

    def __init__(
        self,
        *,
        load_user_list: UserListLoader,
        load_events_after: EventLoader,
        load_counts_since: CountsLoader,
        load_log_bounds: BoundsLoader,
        load_sizes_after: SizesLoader,
        metrics: HubMetrics,
        write_shared: SharedWriter,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        max_sockets_per_user: int = 20,
        max_anonymous_sockets_per_address: int = 200,
        count_interval: float = 1.0,
        fanout_budget: float = 0.2,
        max_count_interval: float = 5.0,
        max_replay: int = 10_000,
        max_replay_bytes: int = 4 * 1024 * 1024,
        max_list: int = 200,
        max_backlog: int = 1024 * 1024,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_sockets_per_user = max_sockets_per_user
        self.max_anonymous_sockets_per_address = max_anonymous_sockets_per_address
        self.catching_up = CatchUp(
            self,
            load_user_list=load_user_list,
            load_events_after=load_events_after,
            load_counts_since=load_counts_since,
            load_log_bounds=load_log_bounds,
            load_sizes_after=load_sizes_after,
            max_replay=max_replay,
            max_replay_bytes=max_replay_bytes,
            max_list=max_list,
            max_backlog=max_backlog,
        )
        budget = FanoutBudget(fanout_budget, count_interval, max_count_interval)
        self.counts = CountConflator(
            count_interval, self._send_counts, self._send_authors, budget, metrics.counts_fanout
        )
        metrics.watch_fanout_budget(budget)
        self._write_shared = write_shared
        self.last_seq = 0
        self._load_user_list = load_user_list
        self._load_events_after = load_events_after
        self._load_counts_since = load_counts_since
        self._metrics = metrics
        self._channels: dict[str, set[HubSocket]] = {name: set() for name in CHANNELS}
        # Sockets by who holds them: a user id, or ("address", ip) for sockets without an account.
        self._by_owner: dict[int | tuple[str, str], set[HubSocket]] = {}
        self._user_channels: dict[int, set[HubSocket]] = {}
        self._out_of_order: dict[int, Event] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        # Petitions not public as of the last delivered event (``visibility``): their counts stay off the
        # public feed.  Filled at start from the database, then kept by each event's ``public``.
        self.withheld: set[int] = set()
        self._dirty_users: dict[int, int] = {}
        self._user_refresh: asyncio.Task | None = None
        self._sweep: PeriodicCallback | None = None
        self._ping_frame = encode_frame(b"", opcode=0x9)

    # -- lifetime -----------------------------------------------------------

    def start(self, last_seq: int, withheld: Iterable[int] = ()) -> None:
        """Begin the heartbeat sweep; ``last_seq`` is the newest committed seq at start-up.

        ``withheld``: the petitions not public then (read after ``last_seq``;
        an event both already count is applied twice, which changes nothing).
        """
        self.last_seq = last_seq
        self.withheld = set(withheld)
        tick = min(self.ping_interval, self.ping_timeout) / 2
        self._sweep = PeriodicCallback(self.heartbeat, tick * 1000)
        self._sweep.start()
        self.counts.start()

    def stop(self) -> None:
        """Stop the sweep and any pending gap fill; sockets stay as they are."""
        if self._sweep is not None:
            self._sweep.stop()
            self._sweep = None
        self.counts.stop()
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if self._user_refresh is not None:
            self._user_refresh.cancel()

    async def connect(self) -> None:
        """As a ``Publisher``: nothing to connect to, the hub alone serves one process."""

    async def disconnect(self) -> None:
        """As a ``Publisher``: nothing to disconnect."""

    def close_all(self, code: int, reason: str) -> None:
        """Close every socket with ``code`` (1001 at shutdown)."""
        for sock in list(self._all_sockets()):
            sock.close(code, reason)

    def close_token(self, token_hash: str) -> None:
        """Close, with 4401, every socket opened with a token that was just revoked."""
        for sock in list(self._all_sockets()):
            if sock.token_hash is not None and sock.token_hash == token_hash:
                sock.close(CLOSE_TOKEN_INVALID, "token revoked")

    def role_changed(self, user_id: int, role: str) -> None:
        """Close, with 4403, the user's sockets on channels their new ``role`` may not open."""
        for sock in list(self._by_owner.get(user_id, ())):
            if sock.permission is not None and not allows(role, sock.permission):
                sock.close(CLOSE_FORBIDDEN, "your role no longer allows this channel")

    # -- membership ---------------------------------------------------------

    def register(self, sock: HubSocket) -> bool:
        """Add a socket; False (and nothing added) when its user, or its address, holds the maximum.

        Sockets without an account count against their client address
        (``max_anonymous_sockets_per_address``), signed-in ones against
        their user (``max_sockets_per_user``).
        """
        owner = _owner(sock)
        cap = (
            self.max_sockets_per_user if sock.user_id is not None else self.max_anonymous_sockets_per_address
        )
        owned = self._by_owner.setdefault(owner, set())
        if len(owned) >= cap:
            if not owned:
                del self._by_owner[owner]
            return False
        owned.add(sock)
        self._channels[sock.channel].add(sock)
        if sock.channel == "user":
            self._user_channels.setdefault(sock.channel_user_id, set()).add(sock)
        self._metrics.socket_opened(sock.channel)
        return True

    def unregister(self, sock: HubSocket) -> None:
        """Forget a socket; safe to call twice or for a socket never registered."""
        channel = self._channels[sock.channel]
        if sock not in channel:
            return
        channel.discard(sock)
        _discard(self._by_owner, _owner(sock), sock)
        if sock.channel == "user":
            _discard(self._user_channels, sock.channel_user_id, sock)
        self._metrics.socket_closed(sock.channel)

    def count(self, channel: str) -> int:
        """How many sockets are open on ``channel``."""
        return len(self._channels[channel])

    def is_open(self, sock: HubSocket) -> bool:
        """Whether ``sock`` is still registered (not closed, pruned or refused)."""
        return sock in self._channels[sock.channel]

    # -- subscription -------------------------------------------------------

    async def subscribe(self, sock: HubSocket, since: int | None) -> bool:
        """Register a socket and bring it up to date, then keep it live.

        A feed socket without ``since`` gets ``hello``; with ``since`` it gets
        every event after it from the log, in pages, then one ``counts``
        frame of the counts changed since, then ``hello`` (or ``reset`` when
        the log cannot serve it).  A user channel gets its list.  Frames that
        went live meanwhile follow, without gap or duplicate.  False (and
        nothing registered) when the socket's user or address holds the
        maximum of sockets.  A loader's failure closes the socket with 1011.
        """
        if not self.register(sock):
            return False
        try:
            await self.catching_up.run(sock, since)
        except Exception:
            log.exception("could not bring a %s socket up to date", sock.channel)
            sock.pending = None
            self.unregister(sock)
            sock.close(CLOSE_SERVER_ERROR, "server error")
        return True

    # -- delivery -----------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Take a committed event; deliver it and any it unblocks, in seq order, once."""
        if event.seq <= self.last_seq:
            return
        self._out_of_order[event.seq] = event
        self._drain()
        if self._out_of_order and self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(GAP_TIMEOUT, self._start_gap_fill)

    def _drain(self) -> None:
        while (event := self._out_of_order.pop(self.last_seq + 1, None)) is not None:
            self._deliver(event)
        if not self._out_of_order and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _start_gap_fill(self) -> None:
        self._gap_timer = None
        asyncio.ensure_future(self.catch_up())

    async def catch_up(self) -> None:
        """Read every event after the last delivered one from the log and deliver it, and recent counts.

        Used when an event is missing (a lost Redis message) and after a
        Redis reconnect.  The log is the truth: a seq it does not hold
        below the newest it returned is not waited for.  Errors are
        logged, not raised: the next attempt tries again.
        """
        start = self.last_seq
        try:
            cursor = LogCursor(self._load_events_after, self.last_seq)
            while events := await cursor.next_page():
                for event in events:
                    if event.seq > self.last_seq:
                        self._out_of_order.pop(event.seq, None)
                        self._deliver(event)
            # Counts that Redis lost: the conflator drops versions it has already seen.
            self.counts.add(await self._load_counts_since(start))
            self._drain()
        except Exception:
            log.exception("could not read the event log to fill a gap after seq %d", self.last_seq)
        self._out_of_order = {s: e for s, e in self._out_of_order.items() if s > self.last_seq}
        if self._out_of_order and self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(GAP_TIMEOUT, self._start_gap_fill)

    def publish_counts(self, changes: Iterable[CountChange]) -> None:
        """Take the counts a committed signature batch left; they go out at the next tick (or flush)."""
        self.counts.add(changes)

    def publish_alert(self, message: str) -> None:
        """Send an office alert (a trending address or domain) to every admin socket now.

        Alerts reflect no committed change, so they carry no seq and are not
        replayed: a socket that was away reads the trending lists instead.
        """
        frame = encode_frame(message.encode())
        sent = 0
        for sock in list(self._channels["admin"]):
            if sock.pending is not None:
                self.catching_up.hold(sock, None, message, frame)
            elif sock.send_frame(message, frame):
                sent += 1
        if sent:
            self._metrics.messages_sent("admin", sent, sent * len(frame))

    def blocks_changed(self) -> None:
        """Nothing: without Redis there is no other process whose blocks to reload."""

    def _send_counts(self, pending: dict[int, CountChange]) -> None:
        """The feeds' tick: one ``counts`` frame for the admin feed, the same or a public one for the public feed."""
        admin, public = self._counts_frames(pending)
        if public is not None:
            self._send_counts_frame("public", public)
        self._send_counts_frame("admin", admin)

    def _send_counts_frame(self, channel: str, counts: tuple[str, bytes]) -> None:
        """Write one counts frame to every socket of ``channel`` (held for those catching up)."""
        sent, catching_up = self._write_shared(self._channels[channel], *counts)
        for sock in catching_up:
            if sock.pending is not None:
                self.catching_up.hold(sock, None, *counts)
        if sent:
            self._metrics.messages_sent(channel, sent, sent * len(counts[1]))

    def _send_authors(self, authors: set[int]) -> None:
        """The authors' tick: the lists of those whose petitions' counts changed are refreshed."""
        for author_id in authors:
            if author_id in self._user_channels:
                self._mark_user_dirty(author_id, self.last_seq)

    def _counts_frames(
        self, pending: dict[int, CountChange]
    ) -> tuple[tuple[str, bytes], tuple[str, bytes] | None]:
        """The counts frame (at the current seq) for the admin feed, and the one for the public feed.

        The public one leaves out withheld petitions (None when nothing is
        left); it is the admins' own frame when none of them changed, the
        usual case, so a tick still costs one encode.
        """
        admin = self._counts_frame({pid: change.count for pid, change in pending.items()})
        public: tuple[str, bytes] | None = admin
        if self.withheld and not self.withheld.isdisjoint(pending):
            shown = {pid: change.count for pid, change in pending.items() if pid not in self.withheld}
            public = self._counts_frame(shown) if shown else None
        return admin, public

    def _counts_frame(self, counts: dict[int, int]) -> tuple[str, bytes]:
        """The counts message (at the current seq) and its frame."""
        message = messages.counts(self.last_seq, counts)
        return message, encode_frame(message.encode())

    def shown_publicly(self, event: Event) -> bool:
        """Whether the public feed carries ``event``, live or replayed: the one check, once per event.

        Its petition was public right after it (``visibility``, decided when
        the event was written) and is not withheld now: a resume replays
        nothing of a petition hidden since, not even its filing.
        """
        return event.public and event.petition_id not in self.withheld

    def public_counts(self, changes: Iterable[CountChange]) -> dict[int, int]:
        """The counts of ``changes`` the public feed may carry (a resume's counts frame): none withheld."""
        return {
            change.petition_id: change.count for change in changes if change.petition_id not in self.withheld
        }

    def _mark_user_dirty(self, user_id: int, seq: int) -> None:
        self._dirty_users[user_id] = max(seq, self._dirty_users.get(user_id, 0))
        if self._user_refresh is None or self._user_refresh.done():
            self._user_refresh = asyncio.ensure_future(self._refresh_user_channels())

    def _deliver(self, event: Event) -> None:
        """Send the next lifecycle event; ``last_seq`` becomes its seq.

        The seq promise: counts committed before the event reach every
        socket before it, in a frame carrying the seq before it.  That flush
        and the event go to each socket as one write, in one pass: two
        passes over 9,000 sockets would hold the event back a whole fan-out
        (bench/, "viral").
        """
        pending = self.counts.take()
        admin_flush, public_flush = self._counts_frames(pending) if pending else (None, None)
        self.last_seq = event.seq
        if event.public:
            self.withheld.discard(event.petition_id)
        else:
            self.withheld.add(event.petition_id)
        sockets = self._channels["public"]
        if sockets:
            # The counts flush ahead of an event the public feed does not carry still goes out.
            if self.shown_publicly(event):
                self._send("public", sockets, event.seq, messages.public_event(event), public_flush)
            elif public_flush is not None:
                self._send_counts_frame("public", public_flush)
        sockets = self._channels["admin"]
        if sockets:
            self._send("admin", sockets, event.seq, messages.admin_event(event), admin_flush)
        self._metrics.event_delivered(event.created_at)
        if event.author_id in self._user_channels:
            self._mark_user_dirty(event.author_id, event.seq)

    def _send_state(self, channel: str, sockets: Iterable[HubSocket], seq: int, message: str) -> None:
        """Write a whole-state message (a user's list) to every socket at or behind ``seq``.

        Unlike an event, a list at the same seq as the last one sent is news
        (counts changed), so only older seqs are skipped.
        """
        frame = encode_frame(message.encode())
        sent = 0
        for sock in list(sockets):
            if sock.pending is not None:
                self.catching_up.hold(sock, None, message, frame)
            elif seq >= sock.last_sent_seq:
                sock.last_sent_seq = seq
                if sock.send_frame(message, frame):
                    sent += 1
        if sent:
            self._metrics.messages_sent(channel, sent, sent * len(frame))

    def _send(
        self,
        channel: str,
        sockets: Iterable[HubSocket],
        seq: int,
        message: str,
        flush: tuple[str, bytes] | None = None,
    ) -> None:
        """Write one event to many sockets: encoded once, framed once, same bytes to each.

        ``flush`` (a counts message and frame) goes just ahead of it, in the
        same write, to every socket, also to one that already had the event.
        """
        frame = encode_frame(message.encode())
        both = ((flush[0], message), flush[1] + frame) if flush is not None else ((message,), frame)
        sent = 0
        for sock in list(sockets):
            if sock.pending is not None:
                if flush is not None:
                    self.catching_up.hold(sock, None, *flush)
                if sock.pending is not None:
                    self.catching_up.hold(sock, seq, message, frame)
            elif seq > sock.last_sent_seq:
                sock.last_sent_seq = seq
                if sock.send_frames(*both):
                    sent += 1
            elif flush is not None:
                sock.send_frame(*flush)
        if sent:
            self._metrics.messages_sent(channel, sent * len(both[0]), sent * len(both[1]))

    async def _refresh_user_channels(self) -> None:
        """Send each changed user's whole list to their channel, coalescing bursts.

        Each list is a page: it takes its turn with the catch-ups, so a burst
        of changed lists never holds the loop for more than one of them.
        """
        while self._dirty_users:
            user_id, seq = self._dirty_users.popitem()
            if not self._user_channels.get(user_id):
                continue
            async with self.catching_up.turn():
                try:
                    petitions, truncated = await self._load_user_list(user_id, self.catching_up.max_list)
                except Exception:
                    log.exception("could not load the petitions of user %d", user_id)
                    continue
                sockets = self._user_channels.get(user_id)
                if sockets:
                    self._send_state("user", sockets, seq, messages.update(seq, petitions, truncated))

    # -- heartbeat ----------------------------------------------------------

    def heartbeat(self) -> None:
        """Ping sockets due a ping; close (4000) and forget those that did not answer in time.

        Also closes (4401) sockets whose token expired while they were open.
        """
        now = time.monotonic()
        wall = time.time()
        for sock in list(self._all_sockets()):
            if sock.expires_at_epoch <= wall:
                sock.close(CLOSE_TOKEN_INVALID, "token expired")
                self.unregister(sock)
            elif sock.ping_sent_at is not None:
                if now - sock.ping_sent_at > self.ping_timeout:
                    sock.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")
                    self.unregister(sock)
                    self._metrics.socket_pruned()
            elif now - sock.last_ping_at >= self.ping_interval:
                sock.ping_sent_at = now
                sock.last_ping_at = now
                sock.send_ping(self._ping_frame)

    def slow_consumer(self, sock: HubSocket) -> None:
        """Forget a socket that was closed for holding too much unsent data."""
        self.unregister(sock)
        self._metrics.slow_consumer_closed()

    def _all_sockets(self) -> Iterable[HubSocket]:
        for sockets in self._channels.values():
            yield from sockets


def _owner(sock: HubSocket) -> int | tuple[str, str]:
    return sock.user_id if sock.user_id is not None else ("address", sock.address)


def _discard(index: dict, key: object, sock: HubSocket) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(sock)
        if not members:
            del index[key]
