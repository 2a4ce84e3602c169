"""Resume with ``?since=N``: exactly the missed events from the log, then live ones, no gap, no duplicate."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.conftest import read_json


async def read_until_hello(client) -> tuple[list[dict], dict]:
    """Replayed events, then the ``hello`` that ends the replay."""
    events = []
    while True:
        message = await read_json(client)
        if message["type"] == "hello":
            return events, message
        events.append(message)


@pytest.mark.gen_test
async def test_reconnect_with_since_gets_exactly_what_was_missed(api, sockets, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    client = await sockets.connect("/ws/petitions", ann["token"])
    await read_json(client)
    first = await api.file_petition(ann["token"], "Seen live")
    seen = await read_json(client)
    assert seen["seq"] == 1
    client.close()

    missed = [await api.file_petition(ann["token"], f"Missed {i}") for i in range(3)]
    await api.patch(
        f"/api/petitions/{first['petition_id']}/status", {"status": "under_review"}, admin["token"]
    )

    again = await sockets.connect(f"/ws/petitions?since={seen['seq']}", ann["token"])
    replayed, hello = await read_until_hello(again)
    assert [e["seq"] for e in replayed] == [2, 3, 4, 5]
    assert [e["event"] for e in replayed] == ["created"] * 3 + ["status_changed"]
    assert [e["petition"]["title"] for e in replayed[:3]] == [p["title"] for p in missed]
    # The replay shows each petition as it stood at that event, not as it stands now.
    assert replayed[3]["petition"]["status"] == "under_review"
    assert hello["seq"] == 5

    await api.file_petition(ann["token"], "Live again")
    live = await read_json(again)
    assert live["seq"] == 6 and live["petition"]["title"] == "Live again"


@pytest.mark.gen_test
async def test_admin_feed_replays_with_notes(api, sockets, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    petition = await api.file_petition(ann["token"])
    await api.patch(
        f"/api/petitions/{petition['petition_id']}/status",
        {"status": "rejected", "note": "Not ours"},
        admin["token"],
    )
    client = await sockets.connect("/ws/admin?since=0", admin["token"])
    replayed, hello = await read_until_hello(client)
    assert [e["seq"] for e in replayed] == [1, 2] and hello["seq"] == 2
    assert replayed[1]["note"] == "Not ours" and replayed[1]["actor"]["user_id"] == admin["user"]["user_id"]


@pytest.mark.gen_test
async def test_events_committed_during_the_replay_are_neither_lost_nor_doubled(api, sockets):
    ann = await api.register("ann@example.org")
    for i in range(30):
        await api.file_petition(ann["token"], f"Before {i}")
    writers = asyncio.gather(*(api.file_petition(ann["token"], f"During {i}") for i in range(30)))
    clients = [await sockets.connect("/ws/petitions?since=0", ann["token"]) for _ in range(3)]
    await writers
    for client in clients:
        seqs = []
        while len(seqs) < 60:
            message = await read_json(client)
            if message["type"] == "event":
                seqs.append(message["seq"])
        assert seqs == list(range(1, 61))


@pytest.mark.gen_test
async def test_user_channel_answers_with_its_snapshot(api, sockets):
    ann = await api.register("ann@example.org")
    await api.file_petition(ann["token"])
    await api.file_petition(ann["token"])
    client = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}?since=1", ann["token"])
    snapshot = await read_json(client)
    assert snapshot["type"] == "update" and snapshot["seq"] == 2 and len(snapshot["petitions"]) == 2


@pytest.mark.gen_test
@pytest.mark.parametrize("since", ["99", "100000"])
async def test_since_beyond_the_log_is_a_reset(api, sockets, since):
    ann = await api.register("ann@example.org")
    await api.file_petition(ann["token"])
    client = await sockets.connect(f"/ws/petitions?since={since}", ann["token"])
    assert await read_json(client) == {"type": "reset", "seq": 1}
    await api.file_petition(ann["token"])
    assert (await read_json(client))["seq"] == 2


@pytest.mark.gen_test
async def test_since_older_than_the_retained_log_is_a_reset(api, sockets, app):
    from tornado_petitions import event_log

    ann = await api.register("ann@example.org")
    for _ in range(5):
        await api.file_petition(ann["token"])
    await app.runner.run(event_log.prune_events, 3)
    stale = await sockets.connect("/ws/petitions?since=1", ann["token"])
    assert await read_json(stale) == {"type": "reset", "seq": 5}
    fresh = await sockets.connect("/ws/petitions?since=3", ann["token"])
    replayed, hello = await read_until_hello(fresh)
    assert [e["seq"] for e in replayed] == [4, 5] and hello["seq"] == 5


class TestReplayCap:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, max_replay=3)

    @pytest.mark.gen_test
    async def test_more_missed_than_the_cap_is_a_reset(self, api, sockets):
        ann = await api.register("ann@example.org")
        for _ in range(5):
            await api.file_petition(ann["token"])
        client = await sockets.connect("/ws/petitions?since=1", ann["token"])
        assert await read_json(client) == {"type": "reset", "seq": 5}
        near = await sockets.connect("/ws/petitions?since=2", ann["token"])
        replayed, _ = await read_until_hello(near)
        assert [e["seq"] for e in replayed] == [3, 4, 5]
