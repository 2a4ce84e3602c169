"""The three WebSocket channels: a user's own list, the public feed, and the admins' feed.

A handshake is authenticated and authorized before the upgrade, so a
refusal is an HTTP status with a JSON body (401, 403), never a bare 403.
After the upgrade the socket belongs to the hub (``SocketHub.subscribe``:
the replay on ``?since=N``, the user's list, live frames); this module is
the transport: the handshake, client messages and writing frames.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import tornado.web
import tornado.websocket
from tornado.iostream import StreamBufferFullError, StreamClosedError

from .. import messages, roles, wire
from ..errors import ApiError
from ..frames import encode_frame
from ..hub import CLOSE_TOO_MANY_SOCKETS, CLOSE_TOO_SLOW
from ..roles import Permission
from ..subscription import HeldFrames
from ..ws_protocol import StrictWebSocketHandler
from .base import ServiceMixin
from .routing import Route

log = logging.getLogger("tornado_petitions.sockets")


class ChannelSocketHandler(ServiceMixin, StrictWebSocketHandler):
    """Shared handshake, hub membership, client messages and frame writing of every channel."""

    channel = "public"
    channel_user_id: int | None = None
    # Whether the channel carries only public data, so a socket without a token may open it.
    open_to_anyone = False
    # What the user's role must hold to open (and keep open) this socket; None: nothing.
    permission: Permission | None = None

    # -- handshake (plain HTTP until super().get upgrades) --------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        cookie = self.session_token() if "Cookie" in self.request.headers else None
        token = self.bearer_token() or cookie or self.get_query_argument("token", None)
        self.address = self.client_address()  # what the per-address cap of sockets without an account counts
        try:
            identity = None if token is None and self.open_to_anyone else await self.authenticate(token)
            self.check_allowed_origin()
            self.authorize(identity, *args)
        except ApiError as error:
            self.metrics.handshake_refused(error.code)
            self.finish_with_error(error)
            return
        if identity is None:
            self.user_id, self.token_hash, self.expires_at_epoch = None, None, math.inf
        else:
            self.user_id = identity.user_id
            self.token_hash = identity.token_hash
            self.expires_at_epoch = identity.expires_at.replace(tzinfo=datetime.UTC).timestamp()
        del identity, token, cookie  # this frame lives as long as the socket
        await super().get(*args, **kwargs)

    def authorize(self, identity: Any, *args: str) -> None:
        """Raise ApiError(403) if ``identity`` may not open this channel (its role lacks ``permission``)."""
        if self.permission is not None:
            roles.require(identity.role, self.permission)

    def check_origin(self, origin: str) -> bool:
        # Checked in get() instead, so a refusal carries a JSON body.
        return True

    def check_allowed_origin(self) -> None:
        """403 for a browser on another site (the rule of sign-in, ``cross_site_origin``)."""
        origin = self.cross_site_origin()
        if origin is not None:
            raise ApiError(403, "origin_not_allowed", f"origin {origin} is not allowed")

    def get_compression_options(self) -> dict[str, Any] | None:
        # Off unless --ws-compression: a compressed socket costs ~48 us of CPU per
        # message and ~160 KB of zlib state (bench/), against ~10 us and ~15 KB for
        # the shared uncompressed frames.  Browsers that offer it then simply go without.
        return {} if self.config.ws_compression else None

    # -- life on the hub --------------------------------------------------------

    async def open(self, *args: str) -> None:
        self.last_sent_seq = 0
        self.pending: HeldFrames | None = None
        self.ping_sent_at: float | None = None
        self.last_ping_at = time.monotonic()
        connection = self.ws_connection
        self._stream = connection.stream
        self._stream.max_write_buffer_size = self.config.max_backlog
        self._compressed = getattr(connection, "_compressor", None) is not None
        self.closing = False
        # What ``write_shared`` reads of this socket: the stream's unsent bytes (Tornado's buffer
        # object, pinned version, which counts them in ``_size``) and the kernel's send, None
        # while a shared frame cannot go straight to the kernel (compressed, or closing).
        self.unsent = self._stream._write_buffer
        self.kernel_send = None if self._compressed else self._stream.socket.send
        log.info("socket open channel=%s user=%s", self.channel, self.user_id)
        since = self.since()
        self._forget_handshake()  # before the catch-up, which lasts as long as the client takes to read
        if not await self.hub.subscribe(self, since):
            self.metrics.handshake_refused("too_many_sockets")
            whose = "this user" if self.user_id is not None else "this address without an account"
            self.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets for " + whose)

    def _forget_handshake(self) -> None:
        # Thousands of idle sockets each keep their upgrade request, referenced
        # from Tornado's own suspended coroutines, so it is emptied in place.
        # What is read after open() (method, path, remote_ip, start time)
        # stays; headers both ways, the query (with its token) and the
        # template namespace go: 16.6 -> 14.3 KB of RSS a socket at 5,000 (bench/).
        request = self.request
        request.headers.clear()
        request.query_arguments.clear()
        request.arguments.clear()
        self._headers.clear()
        self.identity = None
        self.ui = None  # templates only; tornado drops it the same way when a request ends

    def since(self) -> int | None:
        """``?since=N``, or None when absent or not a plain decimal number (after the upgrade, never 400)."""
        try:
            raw = self.get_query_argument("since", None)
        except tornado.web.HTTPError:  # not UTF-8
            return None
        if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            return None
        return int(raw)

    def on_closing(self) -> None:
        self.closing = True
        self.kernel_send = None

    def on_close(self) -> None:
        self.hub.unregister(self)
        log.info(
            "socket close channel=%s user=%s code=%s",
            self.channel,
            getattr(self, "user_id", None),
            self.close_code,
        )

    def on_pong(self, data: bytes) -> None:
        self.ping_sent_at = None

    def on_message(self, message: str | bytes) -> None:
        try:
            request = wire.loads(message)
        except (ValueError, OverflowError):
            request = None
        if isinstance(request, dict) and request.get("type") == "ping":
            self.send_text(messages.PONG)
        elif isinstance(request, dict):
            self.send_text(messages.error("unknown_type", 'the only client message is {"type": "ping"}'))
        else:
            self.send_text(messages.error("malformed", "messages must be JSON objects"))

    # -- writing ------------------------------------------------------------------

    def send_text(self, message: str) -> bool:
        """Send one message to this socket alone."""
        return self.send_frame(message, encode_frame(message.encode()))

    def send_frame(self, message: str, frame: bytes) -> bool:
        """Write a prepared frame (or compress ``message`` for this socket).

        Returns False when the socket is gone or was closed with 4008
        because its unsent backlog passed ``--max-backlog``.
        """
        return self._write(frame, message if self._compressed else None)

    def send_frames(self, messages: tuple[str, ...], frames: bytes) -> bool:
        """Write several prepared frames (``frames``, joined) as one buffer; ``send_frame``'s failures."""
        if not self._compressed:
            return self._write(frames, None)
        return all(self._write(b"", message) for message in messages)

    def send_ping(self, frame: bytes) -> bool:
        """Write the hub's ping frame: control frames are never compressed, so it suits every socket."""
        return self._write(frame, None)

    async def drained(self) -> bool:
        """Wait until every frame written so far has gone to the kernel; False once the socket is closed."""
        stream = self._stream
        if self.ws_connection is None or stream.closed():
            return False
        if stream.writing():
            try:
                await stream.write(b"")  # resolves once everything queued before it is written
            except StreamClosedError:
                return False
        return self.ws_connection is not None and not stream.closed()

    def unsent_bytes(self) -> int:
        """Bytes written to this socket that the kernel has not taken yet (Tornado keeps no public count)."""
        return len(self._stream._write_buffer)

    def send_rest(self, message: str, frame: bytes, sent: int) -> bool:
        """``send_frame`` of a frame whose first ``sent`` bytes the kernel already took (``write_shared``)."""
        if not sent:
            return self.send_frame(message, frame)
        return self._write(frame[sent:], None)

    def _write(self, frame: bytes, compress: str | None) -> bool:
        stream = self._stream
        try:
            if self.closing or self.ws_connection is None or stream.closed():
                raise StreamClosedError()
            if compress is not None:
                self.ws_connection.write_message(compress)
                return True
            if not stream.writing():
                # Nothing queued: hand the frame straight to the kernel.  Through
                # IOStream.write each frame also costs a Future and a callback,
                # three times the send itself across thousands of sockets.
                try:
                    sent = stream.socket.send(frame)
                except BlockingIOError:
                    sent = 0
                if sent == len(frame):
                    return True
                frame = frame[sent:]
            stream.write(frame)
            return True
        except StreamBufferFullError:
            self.hub.slow_consumer(self)
            self.close_too_slow()
        except (OSError, StreamClosedError, tornado.websocket.WebSocketClosedError):
            self.hub.unregister(self)
        return False

    def close_too_slow(self) -> None:
        """Close with 4008: the unsent backlog (or what was held for a replay) passed ``--max-backlog``."""
        log.warning("socket too slow channel=%s user=%s: closing 4008", self.channel, self.user_id)
        self._stream.max_write_buffer_size = None  # let the close frame queue
        self.close(CLOSE_TOO_SLOW, "too slow: backlog limit reached")


def write_shared(
    sockets: Iterable[ChannelSocketHandler], message: str, frame: bytes
) -> tuple[int, list[ChannelSocketHandler]]:
    """Write one frame to many sockets, most of them straight to the kernel: the counts tick's loop.

    Returns how many took it, and the sockets catching up (``pending`` set),
    untouched.  Per socket it reads two attributes and calls the kernel's
    send, nothing else: at 9,000 sockets the method calls of ``send_frame``
    (and ``len`` of Tornado's buffer) cost as much as the sends (bench/).
    A socket that cannot take it so (compressed, closing, something already
    queued, a partial send) goes through ``send_frame`` after the loop, with
    its backlog bound (4008) and its closing; so ``sockets`` may be the hub's
    own set.
    """
    size = len(frame)
    sent = 0
    catching_up: list[ChannelSocketHandler] = []
    rest: list[tuple[ChannelSocketHandler, int]] = []
    for sock in sockets:
        if sock.pending is not None:
            catching_up.append(sock)
            continue
        send = sock.kernel_send
        if send is None or sock.unsent._size:
            rest.append((sock, 0))
            continue
        try:
            done = send(frame)
        except OSError:  # BlockingIOError (the kernel's buffer is full) included; the rest tells
            done = 0
        if done == size:
            sent += 1
        else:
            rest.append((sock, done))
    for sock, done in rest:
        if sock.send_rest(message, frame, done):
            sent += 1
    return sent, catching_up


class EventFeedHandler(ChannelSocketHandler):
    """Public and admin feeds: ``hello``, or a replay from the event log on ``?since=N`` (the hub's)."""


class PublicFeedHandler(EventFeedHandler):
    """``/ws/petitions``: every lifecycle event and the counts, for anyone (a token given must be valid)."""

    channel = "public"
    open_to_anyone = True


class AdminFeedHandler(EventFeedHandler):
    """``/ws/admin``: every event with its actor and note, for the office (moderators and admins)."""

    channel = "admin"
    permission = Permission.ADMIN_FEED


class UserChannelHandler(ChannelSocketHandler):
    """``/ws/petitions/my/{user_id}``: the user's whole list on connect and after each change."""

    channel = "user"

    def authorize(self, identity: Any, *args: str) -> None:
        self.channel_user_id = int(args[0])
        if self.channel_user_id != identity.user_id:
            self.permission = Permission.READ_USER_CHANNELS
        super().authorize(identity, *args)


routes = [
    Route("/ws/petitions/my/{user_id}", UserChannelHandler),
    Route("/ws/petitions", PublicFeedHandler),
    Route("/ws/admin", AdminFeedHandler),
]
