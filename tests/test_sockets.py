"""The three WebSocket channels through a real server and real clients.

Tornado's ``websocket_connect`` for most tests, the ``websockets`` library for
a second, independent client implementation, and a raw socket client where a
test needs a client that misbehaves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import tornado.httpclient
import websockets.asyncio.client

from tests.conftest import read_json
from tests.rawws import RawWebSocket

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


async def handshake(api, path, token=None, origin=None):
    headers = dict(UPGRADE)
    if origin:
        headers["Origin"] = origin
    return await api.call("GET", path, token=token, headers=headers)


@pytest.mark.gen_test
async def test_user_channel_sends_whole_list_on_connect_and_each_change(api, sockets, make_admin):
    ann = await api.register("ann@example.org", "Ann")
    bob = await api.register("bob@example.org", "Bob")
    admin = make_admin()
    first = await api.file_petition(ann["token"], "First petition")
    uid = ann["user"]["user_id"]
    channel = await sockets.connect(f"/ws/petitions/my/{uid}", ann["token"])

    hello = await read_json(channel)
    assert hello["type"] == "update" and hello["seq"] == 1
    assert [p["petition_id"] for p in hello["petitions"]] == [first["petition_id"]]

    second = await api.file_petition(ann["token"], "Second petition")
    update = await read_json(channel)
    assert update["seq"] == 2
    assert [p["petition_id"] for p in update["petitions"]] == [second["petition_id"], first["petition_id"]]

    await api.patch(
        f"/api/petitions/{first['petition_id']}/status",
        {"status": "under_review", "note": "On it"},
        admin["token"],
    )
    update = await read_json(channel)
    assert update["seq"] == 3
    changed = {p["petition_id"]: p for p in update["petitions"]}[first["petition_id"]]
    assert changed["status"] == "under_review" and changed["response"] == "On it"

    # A count-only change: the whole list again at the next tick, at the same seq.
    path = f"/api/petitions/{first['petition_id']}/signatures"
    await api.post(path, token=bob["token"])
    update = await read_json(channel)
    assert update["seq"] == 3
    assert {p["petition_id"]: p for p in update["petitions"]}[first["petition_id"]]["signature_count"] == 1
    await api.delete(path, bob["token"])
    update = await read_json(channel)
    assert update["seq"] == 3
    assert {p["petition_id"]: p for p in update["petitions"]}[first["petition_id"]]["signature_count"] == 0

    # Bob's own petition is not Ann's business.
    await api.file_petition(bob["token"], "Bob's petition")
    await api.file_petition(ann["token"], "Third petition")
    assert (await read_json(channel))["seq"] == 5


@pytest.mark.gen_test
async def test_public_and_admin_feeds_carry_every_event(api, sockets, make_admin):
    ann = await api.register("ann@example.org", "Ann")
    bob = await api.register("bob@example.org", "Bob")
    admin = make_admin(name="Alice Admin")
    public = await sockets.connect("/ws/petitions", bob["token"])
    admins = await sockets.connect("/ws/admin", admin["token"])
    assert await read_json(public) == {"type": "hello", "seq": 0}
    assert await read_json(admins) == {"type": "hello", "seq": 0}

    petition = await api.file_petition(ann["token"])
    pid = petition["petition_id"]
    await api.patch(
        f"/api/petitions/{pid}/status", {"status": "rejected", "note": "Duplicate"}, admin["token"]
    )
    await api.patch(f"/api/petitions/{pid}/status", {"status": "under_review"}, admin["token"])
    await api.post(f"/api/petitions/{pid}/signatures", token=bob["token"])

    kinds = ["created", "status_changed", "status_changed"]
    public_events = [await read_json(public) for _ in kinds]
    admin_events = [await read_json(admins) for _ in kinds]
    assert [e["event"] for e in public_events] == kinds
    assert [e["seq"] for e in public_events] == [1, 2, 3]
    assert public_events[1]["petition"]["status"] == "rejected"
    assert "actor" not in public_events[1] and "note" not in public_events[1]
    assert admin_events[1]["actor"]["name"] == "Alice Admin"
    assert admin_events[1]["note"] == "Duplicate"
    assert admin_events[1]["from_status"] == "submitted" and admin_events[1]["to_status"] == "rejected"
    # The signature is a count on both feeds, not an event of its own.
    for feed in (public, admins):
        assert await read_json(feed) == {"type": "counts", "seq": 3, "counts": {str(pid): 1}}
    assert all("email" not in json.dumps(e) for e in public_events)


@pytest.mark.gen_test
async def test_two_clients_each_get_every_event_once_in_order(api, http_server, base_url):
    ann = await api.register("ann@example.org")
    ws_url = "ws" + base_url[4:] + "/ws/petitions?token=" + ann["token"]
    async with (
        websockets.asyncio.client.connect(ws_url) as one,
        websockets.asyncio.client.connect(ws_url, compression=None) as two,
    ):
        for client in (one, two):
            assert json.loads(await client.recv())["type"] == "hello"
        await asyncio.gather(*(api.file_petition(ann["token"], f"Petition {i}") for i in range(20)))
        for client in (one, two):
            seqs = [json.loads(await asyncio.wait_for(client.recv(), 5))["seq"] for _ in range(20)]
            assert seqs == list(range(1, 21))
        await api.file_petition(ann["token"], "One more")
        for client in (one, two):
            assert json.loads(await asyncio.wait_for(client.recv(), 5))["seq"] == 21


@pytest.mark.gen_test
async def test_compression_is_declined_unless_enabled(api, http_server, base_url):
    ann = await api.register("ann@example.org")
    url = "ws" + base_url[4:] + "/ws/petitions?token=" + ann["token"]
    async with websockets.asyncio.client.connect(url) as client:  # offers permessage-deflate
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        assert json.loads(await client.recv())["type"] == "hello"


@pytest.mark.gen_test
async def test_handshake_failures_are_json_statuses(api, http_server):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    no_token = await handshake(api, "/ws/admin")
    assert no_token.status == 401 and no_token.body["error"]["code"] == "unauthorized"
    bad_token = await handshake(api, "/ws/petitions?token=forged")
    assert bad_token.status == 401 and bad_token.body["error"]["code"] == "invalid_token"
    other_user = await handshake(api, f"/ws/petitions/my/{bob['user']['user_id']}", ann["token"])
    assert other_user.status == 403 and other_user.body["error"]["code"] == "forbidden"
    citizen_admin = await handshake(api, "/ws/admin", ann["token"])
    assert citizen_admin.status == 403
    bad_origin = await handshake(api, "/ws/petitions", ann["token"], origin="http://evil.example")
    assert bad_origin.status == 403 and bad_origin.body["error"]["code"] == "origin_not_allowed"
    unknown = await handshake(api, "/ws/unknown", ann["token"])
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_found"


@pytest.mark.gen_test
async def test_admin_may_open_any_users_channel(api, sockets, make_admin):
    ann = await api.register("ann@example.org")
    await api.file_petition(ann["token"])
    admin = make_admin()
    channel = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", admin["token"])
    assert len((await read_json(channel))["petitions"]) == 1


@pytest.mark.gen_test
async def test_token_in_query_and_cookie_authenticate(api, sockets, base_url):
    ann = await api.register("ann@example.org")
    by_query = await sockets.connect("/ws/petitions?token=" + ann["token"])
    assert (await read_json(by_query))["type"] == "hello"
    by_cookie = await sockets.connect(
        "/ws/petitions", headers={"Cookie": "petitions_session=" + ann["token"]}
    )
    assert (await read_json(by_cookie))["type"] == "hello"


class TestOrigins:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, allowed_origins=("http://localhost:5173",))

    @pytest.mark.gen_test
    async def test_own_and_configured_origins_are_accepted(self, api, sockets, base_url):
        ann = await api.register("ann@example.org")
        for origin in ("http://localhost:5173", base_url):
            client = await sockets.connect("/ws/petitions", ann["token"], headers={"Origin": origin})
            assert (await read_json(client))["type"] == "hello"
        refused = await handshake(api, "/ws/petitions", ann["token"], origin="http://localhost:5174")
        assert refused.status == 403


class TestSocketCap:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, max_sockets_per_user=2)

    @pytest.mark.gen_test
    async def test_one_socket_too_many_is_closed_4429(self, api, sockets, app):
        ann = await api.register("ann@example.org")
        bob = await api.register("bob@example.org")
        for _ in range(2):
            client = await sockets.connect("/ws/petitions", ann["token"])
            assert (await read_json(client))["type"] == "hello"
        extra = await sockets.connect("/ws/petitions", ann["token"])
        assert await read_json(extra) is None
        assert extra.close_code == 4429
        # Someone else is not affected, and a closed socket frees its place.
        assert (await read_json(await sockets.connect("/ws/petitions", bob["token"])))["type"] == "hello"
        sockets.clients[0].close()
        for _ in range(100):
            if app.hub.count("public") == 2:
                break
            await asyncio.sleep(0.01)
        again = await sockets.connect("/ws/petitions", ann["token"])
        assert (await read_json(again))["type"] == "hello"


@pytest.mark.gen_test
async def test_client_messages(api, sockets):
    ann = await api.register("ann@example.org")
    client = await sockets.connect("/ws/petitions", ann["token"])
    await read_json(client)
    await client.write_message('{"type": "ping"}')
    assert await read_json(client) == {"type": "pong"}
    for bad in ("not json", "[1,2]", '{"type": "subscribe"}', "{}", '"ping"'):
        await client.write_message(bad)
        answer = await read_json(client)
        assert answer["type"] == "error" and answer["error"]["code"]
    await client.write_message('{"type": "ping"}')
    assert await read_json(client) == {"type": "pong"}


@pytest.mark.gen_test
async def test_oversized_message_is_refused(api, sockets):
    ann = await api.register("ann@example.org")
    client = await sockets.connect("/ws/petitions", ann["token"])
    await read_json(client)
    await client.write_message("x" * 100_000)
    assert await read_json(client) is None
    assert client.close_code == 1009


@pytest.mark.gen_test
async def test_logout_closes_that_tokens_sockets_4401(api, sockets):
    ann = await api.register("ann@example.org")
    client = await sockets.connect("/ws/petitions", ann["token"])
    await read_json(client)
    await api.post("/api/auth/logout", token=ann["token"])
    assert await read_json(client) is None
    assert client.close_code == 4401
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await sockets.connect("/ws/petitions", ann["token"])
    assert refused.value.code == 401


class TestHeartbeat:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, ping_interval=0.05, ping_timeout=0.05, ws_compression=True)

    @pytest.mark.gen_test
    @pytest.mark.parametrize("extensions", [None, "permessage-deflate"])
    async def test_silent_client_is_closed_4000_and_answering_one_stays(
        self, api, sockets, app, http_port, extensions
    ):
        ann = await api.register("ann@example.org")
        # Tornado's client answers pings; the websockets one does too, over a compressed socket.
        answering = await sockets.connect("/ws/petitions", ann["token"])
        await read_json(answering)
        ws_url = "ws://127.0.0.1:%d/ws/petitions?token=%s" % (http_port, ann["token"])
        deflating = await websockets.asyncio.client.connect(ws_url)
        assert "permessage-deflate" in deflating.response.headers["Sec-WebSocket-Extensions"]
        await deflating.recv()
        silent = await RawWebSocket.connect(
            http_port, "/ws/petitions?token=" + ann["token"], extensions=extensions
        )
        if extensions:  # a compressed socket gets the same shared ping frames
            assert "permessage-deflate" in silent.handshake
        loop = asyncio.get_running_loop()
        opened = loop.time()
        opcode, _ = await silent.read_frame()
        assert opcode == 0x1  # hello
        # The raw client never answers pings: the sweep must close it with 4000.
        code = None
        while code is None:
            opcode, payload = await asyncio.wait_for(silent.read_frame(), 2)
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big")
        elapsed = loop.time() - opened
        assert code == 4000
        # interval + timeout is 0.1 s; the bound is generous for a loaded machine, and
        # still far below the 20 s defaults a broken setting would fall back to.
        assert elapsed < 2.0, elapsed
        silent.close()
        await asyncio.sleep(0.3)  # several more ping rounds
        await api.file_petition(ann["token"])
        assert (await read_json(answering))["event"] == "created"
        assert json.loads(await asyncio.wait_for(deflating.recv(), 5))["event"] == "created"
        assert app.hub.count("public") == 2  # the silent one is gone, the answering ones stay
        assert b"petitions_ws_heartbeat_pruned_total 1.0" in app.metrics.render()
        await deflating.close()
