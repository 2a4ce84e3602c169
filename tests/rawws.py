"""A deliberately bad WebSocket client for tests: it can refuse to answer pings or to read at all.

Real client libraries answer pings and drain the socket by themselves, which
is exactly what heartbeat and backpressure tests need to avoid.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct


class RawWebSocket:
    """A WebSocket client over a plain socket that does only what the test tells it to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, path: str, receive_buffer: int | None = None, extensions: str | None = None
    ) -> RawWebSocket:
        """Handshake on ``path``; with ``receive_buffer`` the client also stops taking data early.

        asyncio keeps reading into memory until twice the stream limit, so the
        limit is kept small to make "not reading" real.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer or 2**16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                + (f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else "")
                + "\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        client = cls(reader, writer)
        client.handshake = head.decode(errors="replace")
        return client

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame's (opcode, payload); raises IncompleteReadError at end of stream."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Read frames until the server's close frame; its code, or None if the stream just ended."""

        async def until_close() -> int | None:
            try:
                while True:
                    opcode, payload = await self.read_frame()
                    if opcode == 0x8:
                        return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return None

        return await asyncio.wait_for(until_close(), timeout)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> None:
        """Send any frame, well-formed or not (clients must mask; ``mask=False`` breaks that rule)."""
        header = bytes([(0x80 if fin else 0) | opcode])
        length = len(payload)
        mask_bit = 0x80 if mask else 0
        if length < 126:
            header += bytes([mask_bit | length])
        elif length < 65536:
            header += bytes([mask_bit | 126]) + struct.pack("!H", length)
        else:
            header += bytes([mask_bit | 127]) + struct.pack("!Q", length)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.writer.write(header + payload)

    def close(self) -> None:
        self.writer.close()

    async def close_and_wait(self) -> None:
        """``close()``, then wait until the transport is gone (no stream left for the loop's teardown)."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
