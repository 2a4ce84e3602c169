"""RFC 6455 as Tornado's ``WebSocketProtocol13`` leaves it unchecked: client masking and close codes.

Tornado accepts unmasked client frames and echoes any close code, 999 or
1005 included.  RFC 6455 says a server must fail the connection on both
(sections 5.1 and 7.4): here it sends close 1002 (protocol error) and drops
the connection, as Tornado itself does after its own 1009.  The rest of the
framing stays Tornado's.
"""

from __future__ import annotations

import struct
from typing import Any

import tornado.websocket

from .errors import ApiError

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007
_MASK_BIT = 0x80
_CLOSE = 0x8


def valid_close_code(code: int) -> bool:
    """Whether a client may send ``code`` (RFC 6455 7.4: 1004-1006 and 1015 are reserved, 1012-2999 unassigned)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


class StrictProtocol(tornado.websocket.WebSocketProtocol13):
    """``WebSocketProtocol13`` that fails the connection with 1002 on an unmasked frame or a bad close frame."""

    _header_next = False
    _violation: tuple[int, str] | None = None

    async def _receive_frame(self) -> None:
        self._header_next = True
        await super()._receive_frame()
        if self._violation is not None:
            code, reason = self._violation
            # Failing the connection (RFC 6455 7.1.7): our close frame, then no more reading.
            self.client_terminated = True
            self.close(code, reason)

    async def _read_bytes(self, n: int) -> bytes:
        data = await super()._read_bytes(n)
        if self._header_next:  # the first read of a frame is its two header bytes
            self._header_next = False
            if not data[1] & _MASK_BIT:
                self._violation = (CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        return data

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # Every close frame goes out through here (the handler's close, the client's, a violation,
        # Tornado's own 1009): from now on no data frame may follow it.
        if not self.server_terminated:
            self.handler.on_closing()
        super().close(code, reason)

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self._violation is None and opcode == _CLOSE:
            self._violation = _close_frame_violation(data)
        if self._violation is not None:
            return None  # a frame that broke the protocol is not delivered
        return super()._handle_message(opcode, data)


def _close_frame_violation(payload: bytes) -> tuple[int, str] | None:
    """Why a client's close frame breaks RFC 6455 (5.5.1, 7.4), or None for a valid one."""
    if not payload:
        return None
    if len(payload) == 1:
        return CLOSE_PROTOCOL_ERROR, "a close frame's code takes two bytes"
    (code,) = struct.unpack("!H", payload[:2])
    if not valid_close_code(code):
        return CLOSE_PROTOCOL_ERROR, f"invalid close code {code}"
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return CLOSE_INVALID_PAYLOAD, "a close reason must be UTF-8"
    return None


class StrictWebSocketHandler(tornado.websocket.WebSocketHandler):
    """A WebSocket handler speaking ``StrictProtocol``; a request that is no WebSocket handshake is a JSON 400.

    Tornado answers those with a plain-text 400 (or an empty 426): here they
    are ``ApiError``s, so the handler's ``write_error`` gives the JSON body.
    """

    async def get(self, *args: Any, **kwargs: Any) -> None:
        headers = self.request.headers
        connection = {word.strip().lower() for word in headers.get("Connection", "").split(",")}
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            raise ApiError(400, "not_websocket", "this is a WebSocket endpoint: send an Upgrade handshake")
        if not headers.get("Sec-WebSocket-Key"):
            raise ApiError(400, "bad_handshake", "the handshake needs a Sec-WebSocket-Key header")
        if headers.get("Sec-WebSocket-Version") != "13":
            raise ApiError(
                426,
                "upgrade_required",
                "only WebSocket version 13 is spoken",
                headers={"Sec-WebSocket-Version": "13"},
            )
        await super().get(*args, **kwargs)

    def on_closing(self) -> None:
        """Called once, as the close handshake starts (our close frame is about to be written)."""

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if protocol is None:
            return None
        return StrictProtocol(self, False, protocol.params)
