"""The AsyncAPI document: served as built, and every frame the real server sends matches its schemas."""

from __future__ import annotations

import dataclasses
import json

import jsonschema_rs
import pytest

from tests.conftest import read_json
from tests.rawws import RawWebSocket
from tornado_petitions.asyncapi import build_document
from tornado_petitions.messages import FRAMES
from tornado_petitions.settings import Settings

CHANNELS = {"public": "publicFeed", "admin": "adminFeed", "user": "userChannel"}


class FrameChecker:
    """Validates frames against the schemas of one channel's messages in the document."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.seen: set[tuple[str, str]] = set()

    def check(self, channel: str, frame: dict) -> None:
        channel_item = self.document["channels"][CHANNELS[channel]]
        components = self.document["components"]
        candidates = []
        for ref in channel_item["messages"].values():
            key = ref["$ref"].rsplit("/", 1)[1]
            payload = components["messages"][key]["payload"]
            if payload["properties"]["type"]["const"] == frame["type"]:
                candidates.append((key, payload))
        assert candidates, f"{channel} carries no {frame['type']!r} message: {frame}"
        errors = []
        for key, payload in candidates:
            validator = jsonschema_rs.validator_for({**payload, "components": components})
            found = [error.message for error in validator.iter_errors(frame)]
            if not found:
                self.seen.add((channel, key))
                return
            errors.append((key, found))
        raise AssertionError(f"{channel} frame {frame} matches no schema: {errors}")


def test_every_declared_frame_is_in_the_document_with_its_channels():
    document = build_document(Settings())
    messages = document["components"]["messages"]
    for frame in FRAMES:
        key = frame.title or frame.name
        assert messages[key]["payload"] == frame.schema()
        for channel in frame.channels:
            assert key in document["channels"][CHANNELS[channel]]["messages"]
    assert document["asyncapi"] == "3.0.0"
    addresses = {item["address"] for item in document["channels"].values()}
    assert addresses == {"/ws/petitions", "/ws/petitions/my/{user_id}", "/ws/admin"}
    # Every operation's message is one of its channel's messages.
    for name, operation in document["operations"].items():
        channel_id = operation["channel"]["$ref"].rsplit("/", 1)[1]
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(f"#/channels/{channel_id}/messages/"), name
            assert ref["$ref"].rsplit("/", 1)[1] in document["channels"][channel_id]["messages"], name
    receive = document["operations"]["receivePublicFeed"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in receive["messages"]] == ["ping"]


@pytest.mark.gen_test
async def test_the_server_serves_the_document_it_builds(api, app, http_server):
    response = await api.get("/api/asyncapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.body == build_document(app.config)


class TestFramesOnTheWire:
    @pytest.fixture
    def settings(self, settings):
        # trending_threshold=1: Bob's and Ann's signatures (one address, one domain) raise alerts.
        return dataclasses.replace(
            settings, response_threshold=1, debate_threshold=2, max_list=1, trending_threshold=1
        )

    @pytest.mark.gen_test(timeout=30)
    async def test_every_frame_the_server_sends_matches_its_schema(
        self, api, app, sockets, make_admin, http_port
    ):
        checker = FrameChecker(build_document(app.config))
        ann = await api.register("ann@example.org", "Ann")
        bob = await api.register("bob@example.org", "Bob")
        admin = make_admin()
        uid = ann["user"]["user_id"]
        public = await sockets.connect("/ws/petitions")
        admins = await sockets.connect("/ws/admin", admin["token"])
        mine = await sockets.connect(f"/ws/petitions/my/{uid}", ann["token"])
        checker.check("public", await read_json(public))  # hello
        checker.check("admin", await read_json(admins))
        checker.check("user", await read_json(mine))  # update, empty

        first = await api.file_petition(ann["token"], "First", category="roads")
        await api.file_petition(ann["token"], "Second")  # the list is now truncated (max_list=1)
        pid = first["petition_id"]
        await api.patch(
            f"/api/petitions/{pid}/status", {"status": "under_review", "note": "Looking"}, admin["token"]
        )
        await api.post(f"/api/petitions/{pid}/signatures", token=bob["token"])  # response milestone
        await api.post(f"/api/petitions/{pid}/signatures", token=ann["token"])  # debate milestone
        for channel, client in (("public", public), ("admin", admins)):
            kinds = set()
            while not {"created", "status_changed", "milestone", "counts"} <= kinds:
                frame = await read_json(client)
                checker.check(channel, frame)
                kinds.add(frame.get("event", frame["type"]))
        updates = []
        while not any(update.get("truncated") for update in updates):
            updates.append(await read_json(mine))
            checker.check("user", updates[-1])

        async def answer(channel: str, client, message: str, expected: str) -> None:
            """Send ``message``; check every frame until the answer (counts or lists may come first)."""
            await client.write_message(message)
            while True:
                frame = await read_json(client)
                checker.check(channel, frame)
                if frame["type"] == expected:
                    return

        for channel, client in (("public", public), ("admin", admins), ("user", mine)):
            await answer(channel, client, '{"type": "ping"}', "pong")
            for bad in ("not json", '{"type": "subscribe"}'):
                await answer(channel, client, bad, "error")

        # A resume: events, a counts frame, hello; and a reset beyond the log.
        again = await sockets.connect("/ws/admin?since=1", admin["token"])
        while (frame := await read_json(again))["type"] != "hello":
            checker.check("admin", frame)
        checker.check("admin", frame)
        reset = await sockets.connect("/ws/petitions?since=999")
        checker.check("public", await read_json(reset))

        # A client message the server receives: ping, as declared, answered.
        raw = await RawWebSocket.connect(http_port, "/ws/petitions")
        await raw.read_frame()
        raw.send_frame(0x1, json.dumps({"type": "ping"}).encode())
        _, payload = await raw.read_frame()
        checker.check("public", json.loads(payload))
        raw.close()

        sent = {(channel, key) for channel, key in checker.seen}
        expected = {
            ("public", "hello"),
            ("public", "PublicEvent"),
            ("public", "counts"),
            ("public", "reset"),
            ("public", "pong"),
            ("public", "error"),
            ("admin", "hello"),
            ("admin", "AdminEvent"),
            ("admin", "counts"),
            ("admin", "alert"),
            ("user", "update"),
            ("user", "pong"),
            ("user", "error"),
        }
        assert expected <= sent, expected - sent
