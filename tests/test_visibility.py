"""Who sees a petition: pre-moderation (``--premoderation``) and hiding (rejected as offensive or fake).

Real server, real sockets, on SQLite and PostgreSQL.  A socket that must
hear nothing is checked by asking it for a ``pong``: frames arrive in order,
so the pong coming next proves nothing came before it.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse

import pytest

from tests.conftest import read_json


async def next_after_nothing(client) -> None:
    """Assert the socket has nothing queued: a ping's pong is the next frame."""
    await client.write_message(json.dumps({"type": "ping"}))
    while True:
        message = await read_json(client)
        if message["type"] == "counts":
            continue  # counts of other petitions may come at any tick; checked separately
        assert message == {"type": "pong"}, message
        return


async def read_until_hello(client) -> tuple[list[dict], dict]:
    frames = []
    while True:
        message = await read_json(client)
        if message["type"] == "hello":
            return frames, message
        frames.append(message)


async def ids_listed(api, query: str = "", token: str | None = None) -> list[int]:
    response = await api.get("/api/petitions" + query, token)
    assert response.status == 200
    return [p["petition_id"] for p in response.body["petitions"]]


async def similar_ids(api, title: str) -> list[int]:
    response = await api.get("/api/petitions/similar?title=" + urllib.parse.quote(title))
    assert response.status == 200
    return [p["petition_id"] for p in response.body["petitions"]]


async def assert_unseen(api, pid: int, token: str | None) -> None:
    """Everything about petition ``pid`` is 404 to ``token`` (None: signed out)."""
    for path in (f"/api/petitions/{pid}", f"/api/petitions/{pid}/events"):
        assert (await api.get(path, token)).status == 404, path
    assert (await api.get(f"/api/petitions/{pid}/signatures/timeline", token)).status == 404
    assert pid not in await ids_listed(api, token=token)


async def move(api, admin: dict, pid: int, status: str, **extra) -> dict:
    response = await api.patch(f"/api/petitions/{pid}/status", {"status": status, **extra}, admin["token"])
    assert response.status == 200, response.body
    return response.body


class TestPremoderation:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, premoderation=True)

    @pytest.mark.gen_test(timeout=30)
    async def test_a_new_petition_is_seen_only_by_its_author_and_the_office_until_published(
        self, api, sockets, make_admin, http_client, base_url
    ):
        ann = await api.register("ann@example.org", "Ann")
        bob = await api.register("bob@example.org", "Bob")
        admin = make_admin()
        public = await sockets.connect("/ws/petitions")
        before = await read_json(public)
        assert before["type"] == "hello"
        office = await sockets.connect("/ws/admin", admin["token"])
        await read_json(office)
        mine = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
        assert (await read_json(mine))["petitions"] == []

        filed = await api.file_petition(ann["token"], "Repaint the harbour bridge")
        pid = filed["petition_id"]
        assert filed["published"] is False and filed["status"] == "submitted"
        # The office and the author see it live.
        created = await read_json(office)
        assert created["event"] == "created" and created["petition"]["petition_id"] == pid
        assert [p["petition_id"] for p in (await read_json(mine))["petitions"]] == [pid]
        # No one else hears of it, finds it, reads it or signs it.
        await next_after_nothing(public)
        for token in (None, bob["token"]):
            await assert_unseen(api, pid, token)
        assert pid not in await ids_listed(api, "?q=harbour")
        assert pid not in await ids_listed(api, "?status=submitted")
        assert await similar_ids(api, "Repaint the harbour bridge") == []
        page = await http_client.fetch(f"{base_url}/petitions/{pid}", raise_error=False)
        assert page.code == 404
        for signer in (bob, ann):
            signing = await api.post(f"/api/petitions/{pid}/signatures", None, signer["token"])
            assert signing.status == 404 and signing.body["error"]["code"] == "not_found"
        # Its author and the office read it; the office lists it too.
        for token in (ann["token"], admin["token"]):
            assert (await api.get(f"/api/petitions/{pid}", token)).body["published"] is False
        assert pid in await ids_listed(api, token=admin["token"])
        assert [
            p["petition_id"] for p in (await api.get("/api/petitions/my", ann["token"])).body["petitions"]
        ] == [pid]

        published = await move(api, admin, pid, "under_review")
        assert published["published"] is True
        # The public feed's first word of it: one status_changed event carrying the petition.
        event = await read_json(public)
        assert event["event"] == "status_changed" and event["petition"]["petition_id"] == pid
        assert event["petition"]["status"] == "under_review" and event["petition"]["published"] is True
        await next_after_nothing(public)
        # A resume from before the filing replays that one event and nothing else of it.
        again = await sockets.connect(f"/ws/petitions?since={before['seq']}")
        frames, _ = await read_until_hello(again)
        events = [f for f in frames if f["type"] == "event"]
        assert [(e["event"], e["seq"]) for e in events] == [("status_changed", event["seq"])]
        # Now it is public: listed, found, readable and signable.
        assert pid in await ids_listed(api)
        assert pid in await ids_listed(api, "?q=harbour")
        assert await similar_ids(api, "Repaint the harbour bridge") == [pid]
        assert (await api.get(f"/api/petitions/{pid}")).status == 200
        assert (await http_client.fetch(f"{base_url}/petitions/{pid}")).code == 200
        assert (await api.post(f"/api/petitions/{pid}/signatures", None, bob["token"])).status == 201

    @pytest.mark.gen_test(timeout=30)
    async def test_a_petition_rejected_straight_from_submitted_stays_unpublished(
        self, api, sockets, make_admin
    ):
        ann = await api.register("ann@example.org")
        admin = make_admin()
        public = await sockets.connect("/ws/petitions")
        before = await read_json(public)
        pid = (await api.file_petition(ann["token"]))["petition_id"]
        rejected = await move(api, admin, pid, "rejected", note="Not for this office", reason="no_action")
        assert rejected["published"] is False
        await next_after_nothing(public)
        await assert_unseen(api, pid, None)
        resumed = await sockets.connect(f"/ws/petitions?since={before['seq']}")
        frames, _ = await read_until_hello(resumed)
        assert frames == []
        # Reconsidered, it is published: the public hears of it then.
        await move(api, admin, pid, "under_review")
        event = await read_json(public)
        assert event["event"] == "status_changed" and event["petition"]["petition_id"] == pid

    @pytest.mark.gen_test(timeout=30)
    async def test_counts_frames_never_carry_an_unpublished_petition(self, api, sockets, make_admin):
        ann = await api.register("ann@example.org")
        bob = await api.register("bob@example.org")
        admin = make_admin()
        public = await sockets.connect("/ws/petitions")
        before = await read_json(public)
        shown = (await api.file_petition(ann["token"], "Shown"))["petition_id"]
        await move(api, admin, shown, "under_review")
        waiting = (await api.file_petition(ann["token"], "Waiting"))["petition_id"]
        assert (await api.post(f"/api/petitions/{shown}/signatures", None, bob["token"])).status == 201
        assert (await api.post(f"/api/petitions/{waiting}/signatures", None, bob["token"])).status == 404
        frames = []
        while not any(f["type"] == "counts" for f in frames):
            frames.append(await read_json(public))
        counts = [f for f in frames if f["type"] == "counts"]
        assert counts[-1]["counts"] == {str(shown): 1}
        resumed = await sockets.connect(f"/ws/petitions?since={before['seq']}")
        replayed, _ = await read_until_hello(resumed)
        assert {f["petition"]["petition_id"] for f in replayed if f["type"] == "event"} == {shown}
        assert [f["counts"] for f in replayed if f["type"] == "counts"] == [{str(shown): 1}]


@pytest.mark.parametrize("premoderation", [False, True])
class TestHidden:
    @pytest.fixture
    def settings(self, settings, premoderation):
        return dataclasses.replace(settings, premoderation=premoderation)

    @pytest.mark.parametrize("reason", ["offensive", "fake"])
    @pytest.mark.gen_test(timeout=30)
    async def test_a_petition_rejected_as_offensive_or_fake_is_hidden_everywhere(
        self, api, sockets, make_admin, http_client, base_url, premoderation, reason
    ):
        ann = await api.register("ann@example.org")
        bob = await api.register("bob@example.org")
        admin = make_admin()
        public = await sockets.connect("/ws/petitions")
        before = await read_json(public)
        office = await sockets.connect("/ws/admin", admin["token"])
        await read_json(office)
        pid = (await api.file_petition(ann["token"], "Harbour nonsense"))["petition_id"]
        if premoderation:
            await move(api, admin, pid, "under_review")
        assert (await read_json(public))["petition"]["petition_id"] == pid
        assert (await api.post(f"/api/petitions/{pid}/signatures", None, bob["token"])).status == 201
        while (frame := await read_json(public))["type"] != "counts":
            pass
        assert frame["counts"] == {str(pid): 1}
        while (await read_json(office))["type"] != "counts":
            pass
        mine = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
        await read_json(mine)
        mark = await read_json(await sockets.connect("/ws/petitions"))

        hidden = await move(api, admin, pid, "rejected", note="Not a real petition", reason=reason)
        assert hidden["rejection"] == {"reason": reason, "note": "Not a real petition"}
        # The office hears of the hiding, the author's channel shows it; the public feed hears nothing.
        assert (await read_json(office))["to_status"] == "rejected"
        # A count-only update of the signature before may come first (it is conflated, a tick late).
        while (await read_json(mine))["petitions"][0]["status"] != "rejected":
            pass
        await next_after_nothing(public)
        for token in (None, bob["token"]):
            await assert_unseen(api, pid, token)
        assert pid not in await ids_listed(api, "?status=rejected")
        assert pid not in await ids_listed(api, "?q=harbour")
        assert (await http_client.fetch(f"{base_url}/petitions/{pid}", raise_error=False)).code == 404
        assert (await api.delete(f"/api/petitions/{pid}/signatures", bob["token"])).status == 404
        for token in (ann["token"], admin["token"]):
            assert (await api.get(f"/api/petitions/{pid}", token)).status == 200
        assert pid in await ids_listed(api, "?status=rejected", admin["token"])
        # A resume, from before the filing or from just before the hiding, replays nothing of it,
        # and its count (changed seconds ago) is in no counts frame.
        for since in (before["seq"], mark["seq"]):
            resumed = await sockets.connect(f"/ws/petitions?since={since}")
            frames, _ = await read_until_hello(resumed)
            assert frames == [], frames
        # Reconsidered, it is public again, and the public feed hears of it.
        await move(api, admin, pid, "under_review")
        event = await read_json(public)
        assert event["event"] == "status_changed" and event["petition"]["petition_id"] == pid
        assert (await api.get(f"/api/petitions/{pid}")).status == 200


@pytest.mark.gen_test(timeout=30)
async def test_a_rejection_for_another_reason_stays_public(api, sockets, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    public = await sockets.connect("/ws/petitions")
    await read_json(public)
    pid = (await api.file_petition(ann["token"]))["petition_id"]
    await read_json(public)
    await move(api, admin, pid, "rejected", note="Already on the list", reason="duplicate")
    event = await read_json(public)
    assert event["petition"]["rejection"]["reason"] == "duplicate"
    assert (await api.get(f"/api/petitions/{pid}")).status == 200
    assert pid in await ids_listed(api, "?status=rejected")


def test_an_older_database_keeps_its_petitions_and_events_public(db_url):
    """Upgrading from before pre-moderation: every petition and event there was public, and stays so."""
    from tornado_petitions import event_log, models, petition_store

    db = models.open_database(db_url)
    try:
        models.bind_database(db)
        with db.connection_context():
            author = models.User.create(email="ann@example.org", name="Ann", password_hash="-")
            petition = models.Petition.create(
                title="Bins", description="Bins.", author=author, published=False
            )
            models.PetitionEvent.create(
                seq=1,
                petition=petition,
                author_id=author.id,
                kind="created",
                actor=author,
                petition_json="{}",
                public=False,
            )
            db.execute_sql('ALTER TABLE "petition" DROP COLUMN "published"')
            db.execute_sql('ALTER TABLE "petition_event" DROP COLUMN "public"')
        models.bind_database(db)
        with db.connection_context():
            page, _ = petition_store.list_petitions(limit=10)
            assert [(p["title"], p["published"]) for p in page] == [("Bins", True)]
            # The event is still there (on SQLite, a table copy to add a NOT NULL column cascaded it away).
            assert [event.public for event in event_log.events_after(0, 10)] == [True]
            assert petition_store.withheld_petition_ids() == []
    finally:
        models.close_database(db)


class TestTheOffice:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, premoderation=True)

    @pytest.mark.gen_test(timeout=30)
    async def test_a_moderator_sees_an_unpublished_petition_and_publishes_it(self, api, app):
        from tornado_petitions import accounts

        user = accounts.create_user(
            "mod@example.org", "Mo", accounts.hash_password("mod password"), "moderator"
        )
        moderator = accounts.issue_token(user, app.config.token_ttl_seconds)
        ann = await api.register("ann@example.org")
        pid = (await api.file_petition(ann["token"]))["petition_id"]
        assert (await api.get(f"/api/petitions/{pid}", moderator)).status == 200
        assert pid in await ids_listed(api, token=moderator)
        await assert_unseen(api, pid, None)
        # A moderator publishes it.
        await move(api, {"token": moderator}, pid, "under_review")
        assert (await api.get(f"/api/petitions/{pid}")).status == 200


class TestConfirmingASignature:
    """A signature by mail, confirmed only after its petition was hidden: 404, and nothing counted."""

    @pytest.fixture
    def catcher(self):
        from tests.smtp_catcher import SmtpCatcher

        server = SmtpCatcher().start()
        yield server
        server.stop()

    @pytest.fixture
    def settings(self, settings, catcher):
        return dataclasses.replace(
            settings,
            smtp_url=catcher.url,
            verify_email="off",
            mail_per_second=500.0,
            public_url="https://petitions.example.org",
        )

    @pytest.mark.gen_test(timeout=60)
    async def test_a_link_followed_after_the_hiding_is_404(self, api, catcher, make_admin):
        import re

        ann = await api.register("ann@example.org")
        admin = make_admin()
        pid = (await api.file_petition(ann["token"]))["petition_id"]
        body = {"name": "Foo", "email": "foo@example.org", "country": "GB"}
        assert (await api.post(f"/api/petitions/{pid}/signatures", body)).status == 202
        await catcher.wait(1, 20.0)
        link = re.search(r"/signatures/confirm/([0-9A-Za-z]+)", catcher.messages[-1][1].get_content())
        await move(api, admin, pid, "rejected", note="Spam.", reason="fake")
        confirmed = await api.post("/api/signatures/confirm", {"token": link.group(1)})
        assert confirmed.status == 404 and confirmed.body["error"]["code"] == "not_found"
        assert (await api.get(f"/api/petitions/{pid}", admin["token"])).body["signature_count"] == 0
