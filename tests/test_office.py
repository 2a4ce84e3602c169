"""The petitions office: closing dates and not_open, rejection reasons, the admins' queues, email_updates."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re

import pytest

from tornado_petitions.lifecycle import REJECTION_REASONS
from tornado_petitions.models import MailOutbox, Petition

# Tiny periods, in days, so closing and overdue happen within a test.
HALF_SECOND = 0.5 / 86400


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, signing_days=HALF_SECOND, moderation_days=HALF_SECOND)


async def move(api, admin, petition, status, note=None, **extra):
    body = {"status": status, **extra}
    if note is not None:
        body["note"] = note
    return await api.patch(f"/api/petitions/{petition['petition_id']}/status", body, admin["token"])


def parse(moment: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))


@pytest.mark.gen_test
async def test_a_petition_closes_signing_days_after_it_was_filed(api):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    cid = await api.register("cid@example.org")
    petition = await api.file_petition(ann["token"])
    closes = parse(petition["closes_at"]) - parse(petition["submitted_at"])
    assert abs(closes.total_seconds() - 0.5) < 0.01
    assert petition["milestones"] == [] and petition["awaiting_response"] is False
    assert "rejection" not in petition
    path = f"/api/petitions/{petition['petition_id']}/signatures"
    assert (await api.post(path, token=bob["token"])).status == 201
    await asyncio.sleep(0.6)
    late = await api.post(path, token=cid["token"])
    assert late.status == 409 and late.body["error"]["code"] == "not_open", late.body
    assert "closed" in late.body["error"]["message"]
    # The count of a closed petition is final: a withdrawal is refused too.
    withdraw = await api.delete(path, token=bob["token"])
    assert withdraw.status == 409 and withdraw.body["error"]["code"] == "not_open"
    assert (await api.get(f"/api/petitions/{petition['petition_id']}")).body["signature_count"] == 1


class TestOpenPetitions:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, signing_days=180.0)

    @pytest.mark.gen_test
    async def test_rejected_and_resolved_petitions_take_no_signatures(self, api, make_admin):
        admin = make_admin()
        ann = await api.register("ann@example.org")
        bob = await api.register("bob@example.org")
        rejected = await api.file_petition(ann["token"], "To be rejected")
        resolved = await api.file_petition(ann["token"], "To be resolved")
        assert (await move(api, admin, rejected, "rejected", "a duplicate")).status == 200
        assert (await move(api, admin, resolved, "under_review")).status == 200
        assert (await move(api, admin, resolved, "resolved", "done")).status == 200
        for petition, status in ((rejected, "rejected"), (resolved, "resolved")):
            answer = await api.post(
                f"/api/petitions/{petition['petition_id']}/signatures", token=bob["token"]
            )
            assert answer.status == 409 and answer.body["error"]["code"] == "not_open"
            assert status in answer.body["error"]["message"]
        # Reconsidered, it takes signatures again (it has not reached its closing date).
        assert (await move(api, admin, rejected, "under_review", "reconsidered")).status == 200
        signed = await api.post(f"/api/petitions/{rejected['petition_id']}/signatures", token=bob["token"])
        assert signed.status == 201 and signed.body["signature_count"] == 1

    @pytest.mark.gen_test
    async def test_rejection_reasons(self, api, make_admin):
        admin = make_admin()
        ann = await api.register("ann@example.org")
        petition = await api.file_petition(ann["token"])
        bad = await move(api, admin, petition, "rejected", "spam", reason="boring")
        assert bad.status == 422 and "reason" in bad.body["error"]["fields"], bad.body
        assert "reason" in bad.body["error"]["message"]
        assert (await move(api, admin, petition, "rejected", "spam", reason=7)).status == 422
        rejected = await move(
            api, admin, petition, "rejected", "We already have this one.", reason="duplicate"
        )
        assert rejected.status == 200, rejected.body
        assert rejected.body["rejection"] == {"reason": "duplicate", "note": "We already have this one."}
        fetched = await api.get(f"/api/petitions/{petition['petition_id']}")
        assert fetched.body["rejection"] == rejected.body["rejection"]
        reconsidered = await move(api, admin, petition, "under_review", "Looking again")
        assert "rejection" not in reconsidered.body
        # No reason given: "other".
        again = await move(api, admin, petition, "rejected", "Not something we can do")
        assert again.body["rejection"] == {"reason": "other", "note": "Not something we can do"}
        for reason in REJECTION_REASONS:
            other = await api.file_petition(ann["token"], f"Petition {reason}")
            answer = await move(api, admin, other, "rejected", "why", reason=reason)
            assert answer.status == 200 and answer.body["rejection"]["reason"] == reason
        # A reason on another move is meaningless, and ignored.
        other = await api.file_petition(ann["token"], "Accepted")
        answer = await move(api, admin, other, "under_review", reason="fake")
        assert answer.status == 200 and "rejection" not in answer.body

    @pytest.mark.gen_test
    async def test_the_page_offers_the_rejection_reasons(self, api):
        page = await api.get("/")
        config = json.loads(
            re.search(r'<script[^>]*id="page-config"[^>]*>(.*?)</script>', page.body, re.S)[1]
        )
        assert config["rejection_reasons"] == list(REJECTION_REASONS)
        assert config["default_rejection_reason"] == "other"


@pytest.mark.gen_test
async def test_queues_oldest_first_with_overdue_moderation(api, make_admin):
    admin = make_admin()
    ann = await api.register("ann@example.org")
    assert (await api.get("/api/admin/queues")).status == 401
    assert (await api.get("/api/admin/queues", ann["token"])).status == 403
    first = await api.file_petition(ann["token"], "First")
    second = await api.file_petition(ann["token"], "Second")
    await asyncio.sleep(0.6)
    third = await api.file_petition(ann["token"], "Third")
    queues = (await api.get("/api/admin/queues", admin["token"])).body
    assert [(p["title"], p["overdue"]) for p in queues["moderation"]] == [
        ("First", True),
        ("Second", True),
        ("Third", False),
    ]
    assert queues["awaiting_response"] == [] and queues["debate"] == []
    assert queues["counts"] == {"moderation": 3, "awaiting_response": 0, "debate": 0}
    assert (await move(api, admin, second, "under_review")).status == 200
    queues = (await api.get("/api/admin/queues", admin["token"])).body
    assert [p["title"] for p in queues["moderation"]] == ["First", "Third"]

    # What the signature batch writes when a petition crosses the thresholds (docs/architecture.md "Milestones").
    def reach(petition: dict, milestones: list[tuple[str, str]]) -> None:
        shape = [{"milestone": name, "at": at} for name, at in milestones]
        Petition.update(milestones=json.dumps(shape), awaiting_response=True).where(
            Petition.id == petition["petition_id"]
        ).execute()

    reach(third, [("response", "2026-01-02T00:00:00.000Z")])
    reach(second, [("response", "2026-01-01T00:00:00.000Z"), ("debate", "2026-01-03T00:00:00.000Z")])
    reach(first, [("response", "2026-01-05T00:00:00.000Z"), ("debate", "2026-01-06T00:00:00.000Z")])
    queues = (await api.get("/api/admin/queues", admin["token"])).body
    assert [p["title"] for p in queues["awaiting_response"]] == ["Second", "Third", "First"]
    assert [p["title"] for p in queues["debate"]] == ["Second", "First"]
    assert queues["debate"][0]["milestones"][1] == {"milestone": "debate", "at": "2026-01-03T00:00:00.000Z"}
    # An answer (a status change with a note) clears awaiting_response; one without a note does not.
    assert (await move(api, admin, first, "under_review")).body["awaiting_response"] is True
    answered = await move(api, admin, third, "under_review", "The government responded: see gov.example")
    assert answered.body["awaiting_response"] is False
    queues = (await api.get("/api/admin/queues", admin["token"])).body
    assert [p["title"] for p in queues["awaiting_response"]] == ["Second", "First"]
    assert queues["counts"]["awaiting_response"] == 2


@pytest.mark.gen_test
async def test_email_updates_on_me(api):
    ann = await api.register("ann@example.org")
    me = await api.get("/api/me", ann["token"])
    assert me.body["email_updates"] is True
    off = await api.patch("/api/me", {"email_updates": False}, ann["token"])
    assert off.status == 200 and off.body["email_updates"] is False
    assert (await api.get("/api/me", ann["token"])).body["email_updates"] is False
    for body in ({"email_updates": "no"}, {"email_updates": 0}, {}):
        bad = await api.patch("/api/me", body, ann["token"])
        assert bad.status == 422 and "email_updates" in bad.body["error"]["fields"]
    assert (await api.patch("/api/me", {"email_updates": False})).status == 401


@pytest.mark.gen_test
async def test_without_smtp_nothing_is_queued(api, make_admin, app):
    assert app.config.smtp_url is None and app.mail_sender is None
    admin = make_admin()
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    petition = await api.file_petition(ann["token"])
    await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=bob["token"])
    assert (await move(api, admin, petition, "under_review", "Looking at it")).status == 200
    assert MailOutbox.select().count() == 0
