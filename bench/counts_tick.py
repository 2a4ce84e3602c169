"""The counts tick's loop alone: µs per socket around the kernel's send, on a real server's sockets.

``python -m bench.counts_tick --sockets 2000 --rounds 50`` starts the app
in this process on SQLite, opens that many public-feed sockets (clients in
the same process that read and drop), then times three loops writing one
counts frame to every socket, best of ``--rounds``:

* ``send``: the kernel's send alone (``socket.send`` of each stream), the floor;
* ``per_socket``: the loop the hub ran before ``write_shared``: for each
  socket, the ``pending`` check and ``send_frame`` (-> ``_write``:
  ``closed()``, ``writing()`` -> ``_StreamBuffer.__len__``, the send);
* ``write_shared``: the tick's loop now.

The Python overhead of a loop is its time less ``send``'s; as that difference
drowns in the kernel's noise on a busy machine, each loop is also timed with
every send a C no-op (``*_python_us``).  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import tornado.netutil
import ujson

from tornado_petitions import messages
from tornado_petitions.frames import encode_frame
from tornado_petitions.handlers.sockets import write_shared
from tornado_petitions.server import make_app, make_server
from tornado_petitions.settings import Settings

from .ws_client import handshake


class Drain(asyncio.Protocol):
    """A client that reads everything and keeps nothing; ``ready`` once the upgrade's answer came."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.ready.set_result(data.startswith(b"HTTP/1.1 101"))


def per_socket(sockets, message: str, frame: bytes) -> int:
    """The hub's counts loop before ``write_shared`` (``SocketHub._send_counts``, one channel)."""
    sent = 0
    for sock in list(sockets):
        if sock.pending is not None:
            continue
        if sock.send_frame(message, frame):
            sent += 1
    return sent


def kernel_only(sockets, message: str, frame: bytes) -> int:
    for sock in sockets:
        sock._stream.socket.send(frame)
    return len(sockets)


def shared(sockets, message: str, frame: bytes) -> int:
    return write_shared(sockets, message, frame)[0]


class NoSend:
    """Stands in for a stream's socket while a loop is timed without the kernel: ``send`` is ``len``."""

    __slots__ = ("real",)
    send = staticmethod(len)

    def __init__(self, real: socket.socket) -> None:
        self.real = real


def python_only(loop_fn, sockets, message: str, frame: bytes) -> float:
    """Seconds of ``loop_fn`` with every send a C no-op (``len``): the loop's Python alone."""
    for sock in sockets:
        sock._stream.socket = NoSend(sock._stream.socket)
        sock.kernel_send = len
    try:
        started = time.perf_counter()
        assert loop_fn(sockets, message, frame) == len(sockets)
        return time.perf_counter() - started
    finally:
        for sock in sockets:
            sock._stream.socket = sock._stream.socket.real
            sock.kernel_send = sock._stream.socket.send


async def measure(count: int, rounds: int, workdir: Path) -> dict:
    settings = Settings(
        db_url=f"sqlite:///{workdir / 'tick.db'}",
        count_interval=3600.0,  # no tick of its own meanwhile
        max_anonymous_sockets_per_address=count + 1,
        ping_interval=3600.0,
        ping_timeout=3600.0,
    )
    app = make_app(settings)
    await app.start()
    server = make_server(app)
    [listener] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_socket(listener)
    port = listener.getsockname()[1]
    loop = asyncio.get_running_loop()
    transports = []
    try:
        request = handshake("127.0.0.1", port, "/ws/petitions")
        for start in range(0, count, 200):
            batch = [Drain(request) for _ in range(min(200, count - start))]
            for client in batch:
                transport, _ = await loop.create_connection(lambda c=client: c, "127.0.0.1", port)
                transports.append(transport)
            assert all(await asyncio.gather(*(c.ready for c in batch)))
        while app.hub.count("public") < count:
            await asyncio.sleep(0.05)
        sockets = set(app.hub._channels["public"])
        message = messages.counts(1, {1: 123_456, 2: 7})
        frame = encode_frame(message.encode())
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, loop_fn in (
                ("send", kernel_only),
                ("per_socket", per_socket),
                ("write_shared", shared),
            ):
                started = time.perf_counter()
                sent = loop_fn(sockets, message, frame)
                spent = time.perf_counter() - started
                assert sent == count, (name, sent)
                best[name] = min(best.get(name, float("inf")), spent)
                await asyncio.sleep(0.01)  # the clients read
            for name, loop_fn in (("per_socket", per_socket), ("write_shared", shared)):
                spent = python_only(loop_fn, sockets, message, frame)
                best[name + "_python"] = min(best.get(name + "_python", float("inf")), spent)
        us = {name: seconds / count * 1e6 for name, seconds in best.items()}
        return {
            "scenario": "counts_tick",
            "sockets": count,
            "rounds": rounds,
            "send_us_per_socket": us["send"],
            "per_socket_us_per_socket": us["per_socket"],
            "write_shared_us_per_socket": us["write_shared"],
            "per_socket_overhead_us": us["per_socket"] - us["send"],
            "write_shared_overhead_us": us["write_shared"] - us["send"],
            # The same loops with the send a C no-op: their Python alone, free of the kernel's noise.
            "per_socket_python_us": us["per_socket_python"],
            "write_shared_python_us": us["write_shared_python"],
        }
    finally:
        for transport in transports:
            transport.abort()
        server.stop()
        await app.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.counts_tick", description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000, help="public-feed sockets")
    parser.add_argument("--rounds", type=int, default=50, help="timings of each loop; the best is kept")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        document = asyncio.run(measure(args.sockets, args.rounds, Path(tmp)))
    print(ujson.dumps(document), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
