"""A petition goes viral: anyone watches, signatures arrive as conflated counts, nothing is lost.

Real server, real sockets, signers made straight in the database so a
storm of hundreds of signatures starts in a moment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import pytest

from tests.conftest import read_json
from tests.test_sockets import UPGRADE

INTERVAL = 0.25  # seconds between counts frames in these tests


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, count_interval=INTERVAL, max_anonymous_sockets_per_address=3)


async def drain(client, quiet: float = INTERVAL * 2) -> list[dict]:
    """Every message until ``client`` has been quiet for ``quiet`` seconds."""
    messages = []
    while True:
        try:
            message = await read_json(client, quiet)
        except TimeoutError:
            return messages
        assert message is not None, f"closed after {messages}"
        messages.append(message)


def latest_counts(messages: list[dict], state: dict[int, int] | None = None) -> dict[int, int]:
    """The counts ``messages`` leave a client with, starting from ``state``."""
    state = dict(state or {})
    for message in messages:
        if message["type"] == "counts":
            state.update({int(pid): count for pid, count in message["counts"].items()})
    return state


async def sign_all(api, signers: list[dict], petition_id: int, spread: float = 0.0) -> list:
    """Every signer signs ``petition_id`` at once (or spread over ``spread`` seconds)."""

    async def one(index: int, signer: dict):
        if spread:
            await asyncio.sleep(spread * index / len(signers))
        return await api.post(f"/api/petitions/{petition_id}/signatures", token=signer["token"])

    return await asyncio.gather(*(one(i, s) for i, s in enumerate(signers)))


@pytest.mark.gen_test(timeout=30)
async def test_anyone_watches_the_public_feed(api, sockets, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    watcher = await sockets.connect("/ws/petitions")  # no token, no cookie: a visitor from a link
    assert await read_json(watcher) == {"type": "hello", "seq": 0}
    petition = await api.file_petition(ann["token"])
    pid = petition["petition_id"]
    created = await read_json(watcher)
    assert created["event"] == "created" and created["petition"]["petition_id"] == pid
    await api.post(f"/api/petitions/{pid}/signatures", token=ann["token"])
    assert await read_json(watcher) == {"type": "counts", "seq": 1, "counts": {str(pid): 1}}
    await api.patch(f"/api/petitions/{pid}/status", {"status": "under_review"}, admin["token"])
    moved = await read_json(watcher)
    assert moved["event"] == "status_changed" and moved["seq"] == 2
    assert "actor" not in moved and "note" not in moved  # still only public data

    # Resume without an account, too.
    resumed = await sockets.connect("/ws/petitions?since=0")
    assert [m["type"] for m in await drain(resumed)] == ["event", "event", "counts", "hello"]


@pytest.mark.gen_test(timeout=30)
async def test_anonymous_sockets_are_capped_per_address_but_accounts_are_not(api, sockets):
    ann = await api.register("ann@example.org")
    kept = [await sockets.connect("/ws/petitions") for _ in range(3)]
    for client in kept:
        assert (await read_json(client))["type"] == "hello"
    extra = await sockets.connect("/ws/petitions")
    assert await read_json(extra) is None
    assert extra.close_code == 4429 and "address" in extra.close_reason
    # Signed-in sockets count against the user, not the address.
    mine = await sockets.connect("/ws/petitions", ann["token"])
    assert (await read_json(mine))["type"] == "hello"
    # A token that is given must still be valid.
    forged = await api.call("GET", "/ws/petitions?token=forged", headers=UPGRADE)
    assert forged.status == 401 and forged.body["error"]["code"] == "invalid_token"
    kept[0].close()
    await asyncio.sleep(0.1)
    again = await sockets.connect("/ws/petitions")
    assert (await read_json(again))["type"] == "hello"


@pytest.mark.gen_test(timeout=60)
async def test_a_storm_of_signatures_is_a_few_counts_frames(api, sockets, make_citizens, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    signers = make_citizens(500)
    petition = await api.file_petition(ann["token"])
    pid = petition["petition_id"]
    watchers = [await sockets.connect("/ws/petitions") for _ in range(2)]
    admins = await sockets.connect("/ws/admin", admin["token"])
    mine = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
    for client in (*watchers, admins, mine):
        await read_json(client)

    started = time.monotonic()
    storm = asyncio.ensure_future(sign_all(api, signers, pid, spread=1.6))
    await asyncio.sleep(0.8)
    # A status change in the middle of the storm goes out at once, after the counts before it.
    moved = await api.patch(f"/api/petitions/{pid}/status", {"status": "under_review"}, admin["token"])
    assert moved.status == 200
    answers = await storm
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [201] * 500

    for client in (*watchers, admins):
        messages = await drain(client)
        counts = [m for m in messages if m["type"] == "counts"]
        events = [m for m in messages if m["type"] == "event"]
        assert [e["event"] for e in events] == ["status_changed"]
        # At most one frame a tick, plus the flush before the status change.
        assert len(counts) <= math.ceil(elapsed / INTERVAL) + 1 + 1, len(counts)
        assert latest_counts(messages) == {pid: 500}
        at = messages.index(events[0])
        assert all(m["seq"] == 1 for m in messages[:at]) and all(m["seq"] == 2 for m in messages[at:])
        # The seq promise: every count committed before the event reached the socket before it.
        assert latest_counts(messages[:at]).get(pid, 0) == events[0]["petition"]["signature_count"]
    updates = await drain(mine)
    assert len(updates) <= math.ceil(elapsed / INTERVAL) + 2
    assert updates[-1]["petitions"][0]["signature_count"] == 500
    history = (await api.get(f"/api/petitions/{pid}/events")).body["events"]
    assert [e["event"] for e in history] == ["created", "status_changed"]


@pytest.mark.gen_test(timeout=60)
async def test_resume_from_every_seq_seen_in_a_storm_converges(api, sockets, make_citizens, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    signers = make_citizens(120)
    petitions = [await api.file_petition(ann["token"], f"Petition {i}") for i in range(3)]
    ids = [p["petition_id"] for p in petitions]
    live = await sockets.connect("/ws/petitions?since=0")

    async def lifecycle() -> None:
        for i in range(4):
            await asyncio.sleep(0.15)
            await api.file_petition(ann["token"], f"Filed mid-storm {i}")
        await api.patch(f"/api/petitions/{ids[1]}/status", {"status": "under_review"}, admin["token"])

    await asyncio.gather(
        *(sign_all(api, signers[i * 40 : (i + 1) * 40], pid, spread=0.8) for i, pid in enumerate(ids)),
        lifecycle(),
        *(api.delete(f"/api/petitions/{ids[0]}/signatures", s["token"]) for s in signers[:5]),
    )
    seen = await drain(live)
    server = {pid: (await api.get(f"/api/petitions/{pid}")).body["signature_count"] for pid in ids}
    live_counts = latest_counts(seen)
    assert {pid: live_counts.get(pid) for pid in server} == server  # the live socket itself converged
    lifecycle_seen = [m for m in seen if m["type"] == "event"]
    assert [m["seq"] for m in lifecycle_seen] == list(range(1, 9))

    for since in sorted({m["seq"] for m in seen}):
        # The client's state when it last saw ``since``: every frame up to the last one carrying it.
        last = max(i for i, m in enumerate(seen) if m["seq"] == since)
        state = latest_counts(seen[: last + 1])
        resumed = await sockets.connect(f"/ws/petitions?since={since}")
        replay = []
        while (message := await read_json(resumed))["type"] != "hello":
            replay.append(message)
        resumed.close()
        replayed_events = [m for m in replay if m["type"] == "event"]
        assert replayed_events == [m for m in lifecycle_seen if m["seq"] > since], since
        assert {pid: count for pid, count in latest_counts(replay, state).items() if pid in server} == server
        assert len([m for m in replay if m["type"] == "counts"]) <= 1


@pytest.mark.gen_test(timeout=30)
async def test_timeline_counts_signatures_by_bucket(api, make_citizens):
    ann = await api.register("ann@example.org")
    petition = await api.file_petition(ann["token"])
    pid = petition["petition_id"]
    empty = await api.get(f"/api/petitions/{pid}/signatures/timeline?bucket=minute")
    assert empty.status == 200 and empty.body == {"bucket": "minute", "points": []}
    signers = make_citizens(7)
    assert [a.status for a in await sign_all(api, signers, pid)] == [201] * 7
    await api.delete(f"/api/petitions/{pid}/signatures", signers[0]["token"])
    for bucket in ("minute", "hour", "day"):
        timeline = await api.get(f"/api/petitions/{pid}/signatures/timeline?bucket={bucket}")
        assert timeline.status == 200 and timeline.body["bucket"] == bucket
        points = timeline.body["points"]
        assert points and points[-1]["total"] == 6
        assert [p["total"] for p in points] == sorted(p["total"] for p in points)
        assert points[-1]["at"].endswith("Z")
    assert (await api.get(f"/api/petitions/{pid}/signatures/timeline")).body["bucket"] == "hour"
    bad = await api.get(f"/api/petitions/{pid}/signatures/timeline?bucket=week")
    assert bad.status == 422 and "bucket" in bad.body["error"]["fields"]
    assert (await api.get("/api/petitions/999999/signatures/timeline")).status == 404


def test_sigkill_during_a_signing_storm_loses_no_acknowledged_signature(tmp_path):
    """Every 201 is a committed signature: after a SIGKILL and a restart each one is there."""
    import concurrent.futures
    import sqlite3

    from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS).start()
    author = server.register("author@example.org")
    petitions = [
        server.call(
            "POST", "/api/petitions", {"title": f"Petition {i}", "description": "x"}, author["token"]
        )[1]
        for i in range(40)
    ]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        signers = list(pool.map(lambda i: server.register(f"s{i}@example.org"), range(16)))
        acknowledged: list[tuple[int, int]] = []

        def sign_every_petition(signer: dict) -> None:
            for petition in petitions:
                try:
                    status, _, _ = server.call(
                        "POST", f"/api/petitions/{petition['petition_id']}/signatures", token=signer["token"]
                    )
                except OSError:
                    return  # the server is gone
                if status == 201:
                    acknowledged.append((signer["user"]["user_id"], petition["petition_id"]))

        storm = [pool.submit(sign_every_petition, s) for s in signers]
        while len(acknowledged) < 150:
            time.sleep(0.005)
        server.process.kill()  # SIGKILL: no shutdown, no flush
        for done in storm:
            done.result()
    server.process.wait()
    server.stop()
    assert 150 <= len(acknowledged) < 16 * 40, "the kill did not land in the middle of the storm"

    server.start()
    try:
        for signer in signers:
            signed = set(server.call("GET", "/api/me/signatures", token=signer["token"])[1]["petition_ids"])
            mine = {pid for uid, pid in acknowledged if uid == signer["user"]["user_id"]}
            assert mine <= signed
    finally:
        server.stop_cleanly()
    with sqlite3.connect(tmp_path / "live.db") as db:
        rows = dict(db.execute('SELECT "petition_id", COUNT(*) FROM "signature" GROUP BY "petition_id"'))
        counts = dict(db.execute('SELECT "id", "signature_count" FROM "petition"'))
    assert {pid: counts[pid] for pid in rows} == rows
    assert all(counts[pid] == 0 for pid in counts if pid not in rows)


class TestMilestones:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, response_threshold=20, debate_threshold=35)

    @pytest.mark.gen_test(timeout=60)
    async def test_forty_concurrent_signers_cross_each_threshold_once(
        self, api, sockets, make_citizens, make_admin
    ):
        ann = await api.register("ann@example.org")
        admin = make_admin()
        petition = await api.file_petition(ann["token"])
        pid = petition["petition_id"]
        watcher = await sockets.connect("/ws/petitions")
        admins = await sockets.connect("/ws/admin", admin["token"])
        for client in (watcher, admins):
            await read_json(client)
        signers = make_citizens(40)
        answers = await sign_all(api, signers, pid)
        assert [a.status for a in answers] == [201] * 40

        for client in (watcher, admins):
            messages = await drain(client)
            events = [m for m in messages if m["type"] == "event"]
            assert [(e["event"], e["milestone"]) for e in events] == [
                ("milestone", "response"),
                ("milestone", "debate"),
            ]
            assert [e["seq"] for e in events] == [2, 3]
            # Counts before each milestone were flushed ahead of it, in a frame with the seq before.
            first = messages.index(events[0])
            assert all(m["seq"] == 1 for m in messages[:first])
            assert latest_counts(messages[:first]).get(pid, 0) >= 20
            assert latest_counts(messages) == {pid: 40}
        history = (await api.get(f"/api/petitions/{pid}/events")).body["events"]
        assert [(e["event"], e.get("milestone")) for e in history] == [
            ("created", None),
            ("milestone", "response"),
            ("milestone", "debate"),
        ]
        now = (await api.get(f"/api/petitions/{pid}")).body
        assert [m["milestone"] for m in now["milestones"]] == ["response", "debate"]
        assert now["awaiting_response"] is True

        # A withdrawal below the threshold does not undo a milestone; an admin's note answers it.
        withdrawn = await asyncio.gather(
            *(api.delete(f"/api/petitions/{pid}/signatures", s["token"]) for s in signers[:25])
        )
        assert [w.status for w in withdrawn] == [200] * 25
        assert (await api.get(f"/api/petitions/{pid}")).body["milestones"] == now["milestones"]
        moved = await api.patch(
            f"/api/petitions/{pid}/status",
            {"status": "under_review", "note": "We will respond"},
            admin["token"],
        )
        assert moved.status == 200 and moved.body["awaiting_response"] is False
        assert [m["milestone"] for m in moved.body["milestones"]] == ["response", "debate"]
