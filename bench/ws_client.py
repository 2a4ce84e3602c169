"""A process holding many idle WebSocket clients and timestamping what reaches them.

``python -m bench.ws_client --port P --path /ws/petitions?token=... --count N``
connects N sockets (a few at a time, so the server's accept queue never
overflows), waits for each one's greeting, then talks to the driver in JSON
lines on stdout:

* ``{"ready": n, "failed": f}`` once every socket is connected and greeted;
* fan-out mode: ``{"got": k, "last": t}`` when every socket has its k-th event
  (``t`` is ``time.monotonic()``, comparable across processes on Linux);
* with ``--probe-every N`` only every Nth socket reads its messages; the rest
  take what arrives without parsing it (latency mode, so the one client core
  keeps up with hundreds of events a second to 1,000 sockets);
* on ``dump`` from stdin: ``{"times": [[...], ...]}`` (fan-out: receive times of
  each event) or ``{"hist": {...}, "worst": {...}}`` (latency mode: commit-to-receive
  latencies in 0.1 ms buckets, and each event's slowest socket), then it exits.

The client is a bare asyncio protocol (handshake, frame parser, pong) rather
than a WebSocket library because it runs 1,250 sockets on the core the load
generator also uses and must stay cheaper than every server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import gc
import os
import resource
import sys
import time

import ujson

_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_UTC = datetime.UTC


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame, masked with a zero key (the payload bytes stay as they are)."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Feed:
    """What every socket of this process reports to: greetings, events and their times."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode = mode
        self.total = total
        self.greeted = 0
        self.failed = 0
        self.closed = 0
        self.counts: list[int] = []
        self.times: list[list[float]] = []
        self.commit_at: dict[bytes, float] = {}
        self.hist: dict[int, int] = {}
        self.worst: dict[bytes, float] = {}

    def event(self, index: int, now: float) -> None:
        """Fan-out mode: socket got its ``index``-th event at ``now``."""
        if index == len(self.counts):
            self.counts.append(0)
            self.times.append([])
        self.counts[index] += 1
        self.times[index].append(now)
        if self.counts[index] == self.greeted:
            _say({"got": index, "last": now})

    def latency(self, payload: bytes) -> None:
        """Latency mode: how long after its commit this event reached this socket."""
        wall = time.time()
        start = payload.find(b'"seq":') + 6
        seq = payload[start : payload.find(b",", start)]
        committed = self.commit_at.get(seq)
        if committed is None:
            at = payload.find(b'"updated_at":"') + 14
            stamp = payload[at : at + 23].decode()
            committed = datetime.datetime.fromisoformat(stamp).replace(tzinfo=_UTC).timestamp()
            self.commit_at[seq] = committed
        seconds = wall - committed
        bucket = int(seconds * 10_000)
        self.hist[bucket] = self.hist.get(bucket, 0) + 1
        if seconds > self.worst.get(seq, -1.0):
            self.worst[seq] = seconds


class SocketClient(asyncio.Protocol):
    """One WebSocket (or Socket.IO over WebSocket) client that reads and timestamps messages."""

    def __init__(self, feed: Feed, request: bytes, greetings: int, socketio: bool, probe: bool) -> None:
        self.feed = feed
        self.probe = probe
        self.drain = False
        self.request = request
        self.greetings = greetings
        self.socketio = socketio
        self.upgraded = False
        self.received = 0
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)
        self.feed.closed += 1

    def data_received(self, data: bytes) -> None:
        if self.drain:
            return
        now = time.monotonic()
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if buf[9:12] != b"101":
                if not self.feed.failed:
                    sys.stderr.write(f"handshake refused: {buf[:end].decode(errors='replace')}\n")
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4 :]
            if self.greetings == 0:
                self.done.set_result(True)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = buf[pos + head : end]
            pos = end
            if opcode == _OP_TEXT or opcode == _OP_BINARY:
                self.on_message(payload, now)
            elif opcode == _OP_PING:
                self.transport.write(client_frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE:
                self.transport.close()
                return
        self.buf = buf[pos:]

    def on_message(self, payload: bytes, now: float) -> None:
        if self.socketio:
            if payload[:1] == b"0":  # Engine.IO open: join the main namespace
                self.transport.write(client_frame(_OP_TEXT, b"40"))
                return
            if payload == b"2":  # Engine.IO ping
                self.transport.write(client_frame(_OP_TEXT, b"3"))
                return
            if payload[:2] == b"40":
                self.greet()
                return
            if payload[:2] != b"42":
                return
        elif self.greetings:
            self.greetings -= 1
            if not self.greetings:
                self.greet()
            return
        if self.feed.mode == "fanout":
            self.feed.event(self.received, now)
            self.received += 1
        else:
            self.feed.latency(payload)

    def greet(self) -> None:
        self.greetings = 0
        self.drain = not self.probe
        if not self.done.done():
            self.done.set_result(True)


def _say(document: dict) -> None:
    sys.stdout.write(ujson.dumps(document) + "\n")
    sys.stdout.flush()


def handshake(host: str, port: int, path: str, deflate: bool = False) -> bytes:
    """The upgrade request every socket of a process sends (one key serves them all: the server only hashes it)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def main(args: argparse.Namespace) -> None:
    feed = Feed(args.mode, args.count)
    request = handshake(args.host, args.port, args.path, args.deflate)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    clients: list[SocketClient] = []

    async def connect() -> None:
        async with gate:
            probe = len(clients) % args.probe_every == 0
            client = SocketClient(feed, request, args.greetings, args.socketio, probe)
            try:
                await loop.create_connection(lambda: client, args.host, args.port)
                ok = await asyncio.wait_for(client.done, 30)
            except (OSError, TimeoutError):
                ok = False
            if ok:
                clients.append(client)
                feed.greeted += 1
            else:
                feed.failed += 1

    await asyncio.gather(*(connect() for _ in range(args.count)))
    # Thousands of long-lived client objects: keep the collector's full passes
    # (tens of ms, stalling every socket of this process) out of the timings.
    gc.collect()
    gc.freeze()
    if args.mode == "latency":
        # The HTTP load generator shares this core: under the normal scheduler
        # the probes waited out its time slices, and bursts of events arrived
        # 40-60 ms "late" (p99 46 ms).  Real-time round-robin takes the
        # instrument out of the figure (p99 6 ms); it mostly sleeps in epoll.
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        except PermissionError:
            pass
    _say({"ready": feed.greeted, "failed": feed.failed})
    while True:
        command = await loop.run_in_executor(None, sys.stdin.readline)
        if command.strip() == "dump" or not command:
            break
    if args.mode == "fanout":
        _say({"times": feed.times, "closed": feed.closed})
    else:
        worst = {seq.decode(): seconds for seq, seconds in feed.worst.items()}
        _say({"hist": feed.hist, "worst": worst, "closed": feed.closed})
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_client", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="request target, query included")
    parser.add_argument("--count", type=int, required=True, help="sockets to hold")
    parser.add_argument("--concurrency", type=int, default=16, help="handshakes in flight at once")
    parser.add_argument("--greetings", type=int, default=1, help="messages each socket gets on connect")
    parser.add_argument("--mode", choices=["fanout", "latency"], default="fanout")
    parser.add_argument(
        "--probe-every",
        type=int,
        default=1,
        help="read messages on every Nth socket only; the others drop what arrives unparsed",
    )
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--socketio", action="store_true", help="speak Engine.IO 4 / Socket.IO 5")
    return parser.parse_args(argv)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:  # the bench still runs, with a slower client
        uvloop = None
    (uvloop.run if uvloop else asyncio.run)(main(parse_args()))
