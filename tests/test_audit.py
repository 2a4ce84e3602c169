"""The audit log: every status change and role change, with actor and client address, append-only, never pruned."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import peewee
import pytest

from tests.test_roles import set_role
from tornado_petitions.models import AuditEntry, PetitionEvent


async def move(api, who, petition, status, note=None, **extra):
    body = {"status": status, **extra}
    if note is not None:
        body["note"] = note
    return await api.call(
        "PATCH",
        f"/api/petitions/{petition['petition_id']}/status",
        body,
        token=who["token"],
        headers={"X-Forwarded-For": "203.0.113.7"},
    )


async def whole_log(api, admin, query: str = "") -> list[dict]:
    """Every entry, newest first, read a page of two at a time through ``next_cursor``."""
    entries, cursor = [], None
    while True:
        path = f"/api/admin/audit?limit=2{query}" + (f"&cursor={cursor}" if cursor else "")
        page = await api.get(path, admin["token"])
        assert page.status == 200, page.body
        assert len(page.body["entries"]) <= 2
        entries += page.body["entries"]
        cursor = page.body["next_cursor"]
        if cursor is None:
            return entries


@pytest.fixture
def settings(settings):
    """Behind a load balancer: the address an entry keeps is the forwarded one."""
    return dataclasses.replace(settings, xheaders=True)


@pytest.mark.gen_test
async def test_every_status_change_and_role_change_is_in_the_log_newest_first_with_actor_and_address(
    api, make_user
):
    admin = make_user("admin", "ada@example.org", "Ada")
    moderator = make_user("moderator", "mo@example.org", "Mo")
    ann = await api.register("ann@example.org", "Ann")
    kept = await api.file_petition(ann["token"], "Keep the library open")
    spam = await api.file_petition(ann["token"], "Buy cheap watches")
    assert (await move(api, moderator, kept, "under_review")).status == 200
    assert (
        await move(api, moderator, kept, "rejected", "Not ours to decide.", reason="no_action")
    ).status == 200
    assert (await move(api, admin, spam, "rejected", "Spam.", reason="fake")).status == 200
    # Refused changes leave no entry: the entry is written in the change's own transaction.
    assert (await move(api, moderator, kept, "resolved")).status == 409
    assert (await move(api, ann, kept, "under_review")).status == 403
    promoted = await api.call(
        "PATCH",
        f"/api/admin/users/{ann['user']['user_id']}",
        {"role": "moderator"},
        token=admin["token"],
        headers={"X-Forwarded-For": "198.51.100.9"},
    )
    assert promoted.status == 200

    entries = await whole_log(api, admin)
    assert [(e["action"], e["actor"]["name"], e["address"]) for e in entries] == [
        ("role_change", "Ada", "198.51.100.9"),
        ("hide", "Ada", "203.0.113.7"),
        ("status_change", "Mo", "203.0.113.7"),
        ("status_change", "Mo", "203.0.113.7"),
    ]
    role, hide, rejection, review = entries
    assert role["target"] == {"type": "user", "id": ann["user"]["user_id"]}
    assert role["details"] == {"from": "citizen", "to": "moderator"}
    assert role["actor"] == {"user_id": admin["user"]["user_id"], "name": "Ada"}
    assert hide["target"] == {"type": "petition", "id": spam["petition_id"]}
    assert hide["details"] == {
        "from": "submitted",
        "to": "rejected",
        "note": "Spam.",
        "version": 2,
        "reason": "fake",
    }
    assert rejection["details"]["reason"] == "no_action" and rejection["details"]["from"] == "under_review"
    assert review["details"] == {"from": "submitted", "to": "under_review", "note": None, "version": 2}
    assert review["at"].endswith("Z") and review["at"] <= rejection["at"] <= role["at"]
    assert set(review) == {"entry_id", "at", "actor", "action", "target", "details", "address"}

    by_mo = await whole_log(api, admin, f"&actor={moderator['user']['user_id']}")
    assert [e["entry_id"] for e in by_mo] == [rejection["entry_id"], review["entry_id"]]
    hides = await api.get("/api/admin/audit?action=hide", admin["token"])
    assert [e["entry_id"] for e in hides.body["entries"]] == [hide["entry_id"]]
    assert hides.body["next_cursor"] is None
    bad = await api.get("/api/admin/audit?action=delete&actor=0", admin["token"])
    assert bad.status == 422 and set(bad.body["error"]["fields"]) == {"action", "actor"}


@pytest.mark.gen_test
async def test_the_log_survives_prune_events_and_refuses_updates_and_deletes(api, make_user, db_url):
    admin = make_user("admin")
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"])
    assert (await move(api, admin, petition, "under_review")).status == 200
    assert (await move(api, admin, petition, "in_progress")).status == 200
    assert (await set_role(api, admin, ann, "moderator")).status == 200
    before = await whole_log(api, admin)
    assert len(before) == 3

    command = [sys.executable, "-m", "tornado_petitions", "prune-events", "--keep", "0", "--db", db_url]
    pruned = subprocess.run(command, capture_output=True, text=True)
    assert pruned.returncode == 0, pruned.stderr
    assert PetitionEvent.select().count() == 0  # the event log is gone...
    assert await whole_log(api, admin) == before  # ...the audit log is whole

    db = AuditEntry._meta.database
    for statement in (AuditEntry.update(address="nowhere"), AuditEntry.delete()):
        with pytest.raises(peewee.DatabaseError, match="append-only"), db.atomic():
            statement.execute()
    assert await whole_log(api, admin) == before
