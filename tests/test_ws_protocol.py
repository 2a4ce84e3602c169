"""RFC 6455 on a real socket: an unmasked client frame or an invalid close code fails the connection with 1002.

Valid close codes are echoed; the socket that broke the protocol is closed
and unregistered while the others on the channel keep their feed.
"""

from __future__ import annotations

import struct

import pytest

from tests.conftest import read_json
from tests.rawws import RawWebSocket
from tornado_petitions.ws_protocol import valid_close_code

sqlite_only = pytest.mark.parametrize("db_backend", ["sqlite"])

# RFC 6455 7.4: what a client may send, and a sample of what it may not.
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1012, 1014, 1015, 2000, 2999, 5000, 65535]


async def open_feed(http_port: int) -> RawWebSocket:
    client = await RawWebSocket.connect(http_port, "/ws/petitions")
    opcode, payload = await client.read_frame()
    assert opcode == 0x1 and b'"hello"' in payload
    return client


def test_the_close_code_rule_is_rfc_6455():
    assert all(valid_close_code(code) for code in VALID_CODES)
    assert not any(valid_close_code(code) for code in INVALID_CODES)


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_an_unmasked_client_frame_is_closed_1002(http_server, http_port):
    for frame in ((0x1, b'{"type":"ping"}'), (0x9, b"ping"), (0x8, struct.pack("!H", 1000))):
        client = await open_feed(http_port)
        client.send_frame(*frame, mask=False)
        assert await client.close_code() == 1002, frame
        await client.close_and_wait()


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_an_invalid_close_code_is_answered_1002_and_a_valid_one_is_echoed(http_server, http_port):
    for code in INVALID_CODES:
        client = await open_feed(http_port)
        client.send_frame(0x8, struct.pack("!H", code) + b"bye")
        assert await client.close_code() == 1002, code
        await client.close_and_wait()
    for code in VALID_CODES:
        client = await open_feed(http_port)
        client.send_frame(0x8, struct.pack("!H", code))
        assert await client.close_code() == code, code
        await client.close_and_wait()
    client = await open_feed(http_port)
    client.send_frame(0x8, b"\x03")  # a one-byte close payload has no code
    assert await client.close_code() == 1002
    await client.close_and_wait()


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_the_broken_socket_goes_and_the_others_keep_their_feed(app, http_port, sockets, api):
    ann = await api.register("ann@example.org")
    watcher = await sockets.connect("/ws/petitions", ann["token"])
    assert (await read_json(watcher))["type"] == "hello"
    broken = await open_feed(http_port)
    assert app.hub.count("public") == 2
    broken.send_frame(0x1, b'{"type":"ping"}', mask=False)
    assert await broken.close_code() == 1002
    await broken.close_and_wait()
    await api.file_petition(ann["token"], "Still live")
    assert (await read_json(watcher))["event"] == "created"
    assert app.hub.count("public") == 1


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_a_plain_request_to_a_socket_path_is_a_json_4xx(api):
    plain = await api.get("/ws/petitions")
    assert plain.status == 400 and plain.body["error"]["code"] == "not_websocket", plain
    old = await api.call(
        "GET",
        "/ws/petitions",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Key": "eA==",
            "Sec-WebSocket-Version": "8",
        },
    )
    assert old.status == 426 and old.headers["Sec-WebSocket-Version"] == "13", old
    assert old.body["error"]["code"] == "upgrade_required"
