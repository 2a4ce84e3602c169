"""Mail lanes: a link someone waits for goes before every notification, over connections kept open."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from tornado_petitions.models import MailOutbox, User, utcnow

WAITING_NOTIFICATIONS = 5_000


@pytest.fixture
def settings(settings, catcher):
    # Notifications at 10 a second: the 5,000 waiting would take over eight minutes to drain.
    return dataclasses.replace(settings, smtp_url=catcher.url, mail_per_second=10.0)


def queue_notifications(user_id: int, petition_id: int, count: int) -> None:
    """``count`` status-change notifications waiting in the outbox, as a storm of changes leaves them."""
    now = utcnow()
    rows = [
        {
            "change_key": f"status:{number}",
            "user": user_id,
            "petition": petition_id,
            "kind": "status_changed",
            "lane": 1,
            "title": "Benches for Elm Park",
            "status": "under_review",
            "next_attempt_at": now,
            "created_at": now,
        }
        for number in range(count)
    ]
    with MailOutbox._meta.database.atomic():
        for start in range(0, count, 500):
            MailOutbox.insert_many(rows[start : start + 500]).execute()


@pytest.mark.gen_test(timeout=90)
async def test_a_verification_mail_overtakes_thousands_of_waiting_notifications(
    api, make_admin, catcher, app
):
    author = make_admin("author@example.org", "Author")
    petition = await api.file_petition(author["token"], "Benches for Elm Park")
    queue_notifications(author["user"]["user_id"], petition["petition_id"], WAITING_NOTIFICATIONS)
    app.mail_queued()
    await catcher.wait(3, timeout=10)  # the notification lane is busy

    started = time.monotonic()
    answer = await api.post(
        "/api/auth/register", {"email": "new@example.org", "name": "New", "password": "correct horse"}
    )
    assert answer.status == 202
    while "new@example.org" not in catcher.recipients() and time.monotonic() - started < 10:
        await asyncio.sleep(0.02)
    waited = time.monotonic() - started
    assert "new@example.org" in catcher.recipients(), "the verification mail queued behind notifications"
    # Generous: it is one mail, sent as soon as a transactional courier claims it (about 0.1 s here).
    assert waited < 5.0, waited
    pending = MailOutbox.select().where(MailOutbox.state == "pending").count()
    assert pending > WAITING_NOTIFICATIONS - 200, "notifications are still paced at --mail-per-second"
    assert User.get(User.email == "new@example.org").email_verified is False


class TestFastNotifications:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, mail_per_second=500.0)

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=60)
    async def test_one_connection_carries_many_mails(self, api, make_admin, catcher, app):
        author = make_admin("author@example.org", "Author")
        petition = await api.file_petition(author["token"], "Benches for Elm Park")
        queue_notifications(author["user"]["user_id"], petition["petition_id"], 60)
        app.mail_queued()
        for number in range(5):
            await api.post(
                "/api/auth/register",
                {"email": f"p{number}@example.org", "name": "P", "password": "correct horse"},
            )
        messages = await catcher.wait(65, timeout=30)
        assert len(messages) == 65
        # Two couriers a lane, each on one kept-open connection.
        assert catcher.connections <= 4 < len(messages)
