"""Property-based: random and malformed WebSocket frames and JSON messages on each channel.

Hypothesis draws a short sequence of frames (JSON and arbitrary text, binary,
invalid UTF-8, oversized, fragmented, control frames, reserved bits and
opcodes, close frames) and sends them raw to a real ``serve`` process.  A
model of RFC 6455 as the server applies it predicts the outcome:

- every frame acceptable: the socket stays usable (a ``{"type":"ping"}``
  gets ``{"type":"pong"}``);
- a message over ``--max-ws-message-bytes``: close frame 1009;
- a protocol violation: the connection is dropped (a close frame, if any,
  is 1002 or 1007); a close frame with an invalid code (or a one-byte
  payload): close frame 1002;
- a client close frame: the server answers with a close frame.

Throughout, another client on the same channel keeps receiving events, and
the server process stays up and logs no uncaught exception.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import hypothesis
import pytest
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tornado_petitions import wire

MESSAGE_LIMIT = 512
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin password"

Frame = tuple[bool, int, int, bytes]  # (FIN, RSV bits, opcode, payload)


# -- the raw client -------------------------------------------------------------------------


class RawSocket:
    """A WebSocket client that sends whatever frames it is told, valid or not."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        self.sock.sendall(handshake.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "closed during the handshake"
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, frame: Frame) -> None:
        fin, rsv, opcode, payload = frame
        mask = os.urandom(4)
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self) -> tuple[int, bytes] | None:
        """The next (opcode, payload) from the server, or None once the connection is gone."""
        header = self._read(2)
        if header is None:
            return None
        length = header[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(length)
        return None if payload is None else (header[0] & 0x0F, payload)

    def close(self) -> None:
        self.sock.close()


# -- the model ------------------------------------------------------------------------------


def predict(frames: list[Frame]) -> tuple[str, int, bool, int]:
    """(outcome, frames the server reads before it, whether a fragmented message is left open,
    how many of the messages it reads are pings it answers with a pong).

    Outcomes: "usable", "too_big", "violation", "bad_close" (a close frame without a valid code), "close".
    """
    pings = 0
    fragment: bytearray | None = None
    fragment_opcode = 0
    for index, (fin, rsv, opcode, payload) in enumerate(frames):
        count = index + 1
        control = bool(opcode & 0x8)
        if rsv or (control and len(payload) >= 126):
            return "violation", count, False, pings
        if len(payload) + (len(fragment) if fragment is not None else 0) > MESSAGE_LIMIT:
            return "too_big", count, False, pings
        if control:
            if not fin or opcode not in (0x8, 0x9, 0xA):
                return "violation", count, False, pings
            if opcode == 0x8:
                if len(payload) == 1 or (len(payload) >= 2 and not _valid_close_code(payload)):
                    return "bad_close", count, False, pings
                return ("close" if _is_utf8(payload[2:]) else "violation"), count, False, pings
            continue
        if opcode == 0:
            if fragment is None:
                return "violation", count, False, pings
            fragment += payload
            if not fin:
                continue
            message_opcode, data, fragment = fragment_opcode, bytes(fragment), None
        else:
            if fragment is not None:
                return "violation", count, False, pings
            if not fin:
                fragment, fragment_opcode = bytearray(payload), opcode
                continue
            message_opcode, data = opcode, payload
        if message_opcode not in (0x1, 0x2):
            return "violation", count, False, pings
        if message_opcode == 0x1 and not _is_utf8(data):
            return "violation", count, False, pings
        pings += _is_ping(data)
    return "usable", len(frames), fragment is not None, pings


def _valid_close_code(payload: bytes) -> bool:
    """RFC 6455 7.4: the codes a client may send."""
    code = struct.unpack("!H", payload[:2])[0]
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


def _is_ping(data: bytes) -> bool:
    """Whether the server answers this message with a pong: parsed as it parses it (``wire``)."""
    try:
        message = wire.loads(data)
    except (ValueError, OverflowError):
        return False
    return isinstance(message, dict) and message.get("type") == "ping"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- strategies -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
typed_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "pong", "hello", "event", "update", "", "PING", 1, None, [], {}])},
    optional={"seq": json_values, "since": json_values, "data": json_values},
)
texts = st.one_of(json_values.map(json.dumps), typed_messages.map(json.dumps), st.text(max_size=100)).map(
    lambda text: text.encode("utf-8", "surrogatepass")
)


def single(opcode: int) -> st.SearchStrategy:
    return st.binary(max_size=200).map(lambda payload: [(True, 0, opcode, payload)])


def fragmented(payload: bytes, cut: int, opcode: int) -> list[Frame]:
    cut = cut % (len(payload) + 1)
    return [(False, 0, opcode, payload[:cut]), (True, 0, 0x0, payload[cut:])]


def with_ping_inside(frames: list[Frame]) -> list[Frame]:
    return [frames[0], (True, 0, 0x9, b"mid-message ping"), *frames[1:]]


def close_frame(code: int, reason: bytes) -> list[Frame]:
    return [(True, 0, 0x8, struct.pack("!H", code) + reason)]


frame_groups = st.one_of(
    texts.map(lambda payload: [(True, 0, 0x1, payload)]),
    single(0x2),  # binary
    single(0x1),  # arbitrary bytes as text: often invalid UTF-8
    st.integers(MESSAGE_LIMIT + 1, MESSAGE_LIMIT * 3).map(lambda n: [(True, 0, 0x1, b"x" * n)]),
    st.builds(fragmented, texts, st.integers(0, 10_000), st.sampled_from([0x1, 0x2])),
    st.builds(fragmented, texts, st.integers(0, 10_000), st.just(0x1)).map(with_ping_inside),
    st.binary(max_size=125).map(lambda payload: [(True, 0, 0x9, payload)]),  # ping
    st.binary(max_size=125).map(lambda payload: [(True, 0, 0xA, payload)]),  # unsolicited pong
    st.builds(close_frame, st.integers(0, 65535), st.binary(max_size=20)),
    st.binary(max_size=3).map(lambda payload: [(True, 0, 0x8, payload)]),  # short or empty close
    st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 15), st.binary(max_size=200)).map(
        lambda frame: [frame]
    ),
)
frame_sequences = st.lists(frame_groups, min_size=1, max_size=5).map(
    lambda groups: [frame for group in groups for frame in group]
)


# -- the server and the channel observers ---------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("ws_fuzz"),
        *GENEROUS_RATE_FLAGS,
        f"--max-ws-message-bytes={MESSAGE_LIMIT}",
        "--max-sockets-per-user=1000",
        "--ping-interval=600",
    )
    server.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, admin=True)
    server.start()
    signed_in = server.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    server.token = signed_in["token"]
    server.user_id = signed_in["user"]["user_id"]
    yield server
    log = server.stop_cleanly()
    assert "Traceback" not in log and " ERROR " not in log, log


def channel_path(live: LiveServer, channel: str) -> str:
    return {"public": "/ws/petitions", "admin": "/ws/admin", "user": f"/ws/petitions/my/{live.user_id}"}[
        channel
    ]


def expect_next_change(observer, live: LiveServer, number: int) -> None:
    """File a petition and see the observer receive it: the channel still delivers to others."""
    title = f"Fuzz petition {number}"
    status, petition, _ = live.call(
        "POST", "/api/petitions", {"title": title, "description": "x"}, live.token
    )
    assert status == 201, petition
    while True:
        message = json.loads(observer.recv(timeout=5))
        if message["type"] == "event" and message["petition"]["title"] == title:
            return
        if message["type"] == "update" and message["petitions"][0]["title"] == title:
            return


def outcome_of(client: RawSocket, predicted: str, pings: int) -> tuple[str, int | None]:
    """What the server did: ("usable", None), ("closed", code or None) or ("dropped", None).

    ``pings`` pongs answer pings among the fuzzed messages; only a pong after
    them answers the probe sent here, and only that one proves the socket usable.
    """
    if predicted == "usable":
        client.send((True, 0, 0x1, b'{"type":"ping"}'))
    pongs = 0
    while True:
        frame = client.receive()
        if frame is None:
            return "dropped", None
        opcode, payload = frame
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            return "closed", code
        if opcode == 0x1 and json.loads(payload) == {"type": "pong"}:
            pongs += 1
            if pongs > pings:
                return "usable", None


@pytest.mark.parametrize("channel", ["public", "user", "admin"])
def test_random_and_malformed_frames_never_hurt_the_server_or_other_clients(live, channel):
    path = channel_path(live, channel)
    headers = {"Authorization": f"Bearer {live.token}"}
    with connect(live.ws_url + path, additional_headers=headers, open_timeout=5) as observer:
        observer.recv(timeout=5)  # hello / update
        examples = iter(range(10**6))

        @hypothesis.settings(max_examples=50, deadline=None, database=None)
        @hypothesis.given(frames=frame_sequences)
        def check(frames: list[Frame]) -> None:
            predicted, count, fragment_open, pings = predict(frames)
            frames = frames[:count]
            if predicted == "usable" and fragment_open:
                frames = [*frames, (True, 0, 0x0, b"")]
                predicted, count, _, pings = predict(frames)
            client = RawSocket(live.port, path, live.token)
            try:
                first = client.receive()
                assert first is not None and first[0] == 0x1  # hello / update
                for frame in frames:
                    client.send(frame)
                result, code = outcome_of(client, predicted, pings)
            finally:
                client.close()
            if predicted == "usable":
                assert result == "usable", (result, code)
            elif predicted == "too_big":
                assert (result, code) == ("closed", 1009)
            elif predicted == "bad_close":
                assert (result, code) == ("closed", 1002)
            elif predicted == "violation":
                assert result == "dropped" or code in (1002, 1007), (result, code)
            else:  # our close frame is answered with one
                assert result == "closed", (result, code)
            assert live.process.poll() is None, live.log()
            expect_next_change(observer, live, next(examples))

        check()
