"""WebSocket frames built once and written as the same bytes to many sockets.

Tornado's ``write_message`` frames a message again for every socket; a
server frame is not masked, so one uncompressed frame serves every socket
(RFC 6455 section 5.2).
"""

from __future__ import annotations

import struct

OPCODE_TEXT = 0x1
OPCODE_PING = 0x9
_FIN = 0x80


def encode_frame(payload: bytes, opcode: int = OPCODE_TEXT) -> bytes:
    """One final, unmasked frame carrying ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _FIN | opcode, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", _FIN | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, 127, length)
    return header + payload
