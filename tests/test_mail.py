"""Email through a real SMTP server (aiosmtpd in the test process): who gets what, once; outages; restarts."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import re
import time
import urllib.parse

import pytest

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tests.smtp_catcher import SmtpCatcher
from tornado_petitions import accounts, mail_outbox
from tornado_petitions.mail_sender import MailSender
from tornado_petitions.models import MailOutbox, Petition, User, bind_database, close_database, open_database
from tornado_petitions.settings import Settings

PUBLIC_URL = "https://petitions.example.org"


@pytest.fixture
def settings(settings, catcher):
    # Notifications to accounts that sign in at once (test_account_mail.py verifies emails).
    return dataclasses.replace(
        settings, smtp_url=catcher.url, verify_email="off", mail_from="office@petitions.example.org", mail_per_second=500.0,
        public_url=PUBLIC_URL,
    )  # fmt: skip


async def move(api, admin, petition, status, note=None):
    body = {"status": status} if note is None else {"status": status, "note": note}
    response = await api.patch(f"/api/petitions/{petition['petition_id']}/status", body, admin["token"])
    assert response.status == 200, response.body
    return response.body


async def signers(api, petition, count: int, prefix: str = "signer") -> list[dict]:
    """``count`` citizens registered through the API, each signing ``petition``."""
    people = []
    for number in range(count):
        person = await api.register(f"{prefix}{number}@example.org", f"Signer {number}")
        answer = await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=person["token"])
        assert answer.status == 201, answer.body
        people.append(person)
    return people


def by_recipient(messages) -> dict[str, list]:
    found = collections.defaultdict(list)
    for recipient, message in messages:
        found[recipient].append(message)
    return found


async def settle(catcher: SmtpCatcher, count: int, timeout: float = 20.0) -> list:
    """Wait for ``count`` mails, then a little longer so a duplicate would show."""
    await catcher.wait(count, timeout)
    await asyncio.sleep(0.3)
    return catcher.messages


async def depth_reaches_zero(api) -> bool:
    """The outbox depth gauge is refreshed about once a second."""
    for _ in range(40):
        if "petitions_mail_outbox_depth 0.0" in (await api.get("/metrics")).body:
            return True
        await asyncio.sleep(0.1)
    return False


def unsubscribe_link(message) -> str:
    return message["List-Unsubscribe"].strip("<>")


@pytest.mark.gen_test(timeout=90)
async def test_a_status_change_with_a_note_mails_the_author_and_each_signer_once(
    api, make_admin, catcher, caplog
):
    caplog.set_level(logging.INFO, "tornado_petitions.access")
    admin = make_admin()
    ann = await api.register("ann@example.org", "Ann Author")
    petition = await api.file_petition(ann["token"], "Benches for Elm Park")
    people = await signers(api, petition, 50)
    # The author signs too: still one mail. Two more signers turn mail off, one each way.
    await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=ann["token"])
    quiet = await api.register("quiet@example.org", "Quiet")
    await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=quiet["token"])
    assert (await api.patch("/api/me", {"email_updates": False}, quiet["token"])).body[
        "email_updates"
    ] is False
    leaver = await api.register("leaver@example.org", "Leaver")
    await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=leaver["token"])

    await move(api, admin, petition, "under_review", "We are looking into it.\nExpect news in May.")
    expected = {"ann@example.org", "leaver@example.org"} | {p["user"]["email"] for p in people}
    mails = by_recipient(await settle(catcher, len(expected)))
    assert set(mails) == expected
    assert all(len(got) == 1 for got in mails.values()), {r: len(m) for r, m in mails.items() if len(m) > 1}
    mail = mails["signer7@example.org"][0]
    assert mail["From"] == "office@petitions.example.org"
    assert mail["To"] == "Signer 7 <signer7@example.org>"
    assert mail["Subject"] == "Petition under review: Benches for Elm Park"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = unsubscribe_link(mail)
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe/{people[7]['user']['user_id']}/")
    body = mail.get_content().replace("\r\n", "\n")
    assert "Benches for Elm Park" in body and "New status: under review." in body
    assert "We are looking into it.\nExpect news in May." in body
    assert f"{PUBLIC_URL}/petitions/{petition['petition_id']}" in body
    assert mail.get_content_type() == "text/plain"
    assert len({m["Message-ID"] for got in mails.values() for m in got}) == len(expected)

    # The leaver follows the link: GET only asks, a one-click POST (RFC 8058) unsubscribes.
    path = urllib.parse.urlsplit(unsubscribe_link(mails["leaver@example.org"][0])).path
    page = await api.get(path)
    assert page.status == 200 and "<form" in page.body
    assert (await api.get("/api/me", leaver["token"])).body["email_updates"] is True
    done = await api.call(
        "POST", path, raw=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert done.status == 200, done.body
    assert (await api.get("/api/me", leaver["token"])).body["email_updates"] is False
    token = path.rsplit("/", 1)[1]
    assert any(
        f"POST /unsubscribe/{leaver['user']['user_id']}/*** 200" in r.getMessage() for r in caplog.records
    )
    assert not any(token in r.getMessage() for r in caplog.records), "the unsubscribe token was logged"
    forged = path.rsplit("/", 1)[0] + "/" + "0" * 32
    assert (await api.call("POST", forged, raw=b"List-Unsubscribe=One-Click")).status == 404
    assert (await api.get(f"/unsubscribe/{ann['user']['user_id']}/{path.rsplit('/', 1)[1]}")).status == 404

    # The next change with a note: the same people minus the leaver; without a note, the author only.
    before = len(catcher.messages)
    await move(api, admin, petition, "in_progress", "Work starts next week.")
    await move(api, admin, petition, "resolved")
    expected.discard("leaver@example.org")
    mails = by_recipient((await settle(catcher, before + len(expected) + 1))[before:])
    assert set(mails) == expected
    assert len(mails["ann@example.org"]) == 2
    # Two couriers send a lane's mail side by side, so the two may arrive in either order.
    assert sorted(m["Subject"] for m in mails["ann@example.org"]) == [
        "Petition in progress: Benches for Elm Park",
        "Petition resolved: Benches for Elm Park",
    ]
    assert all(len(got) == 1 for r, got in mails.items() if r != "ann@example.org")
    resolved = next(m for m in mails["ann@example.org"] if m["Subject"].startswith("Petition resolved"))
    assert "Note from" not in resolved.get_content()
    assert MailOutbox.select().where(MailOutbox.state != "sent").count() == 0
    metrics = (await api.get("/metrics")).body
    sent = 2 * len(expected) + 1 + 1  # the first round had the leaver too
    assert f"petitions_mail_sent_total {float(sent)}" in metrics
    assert "petitions_mail_failed_total 0.0" in metrics


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_temporary_refusals_are_retried_and_permanent_ones_given_up(api, make_admin, catcher, caplog):
    admin = make_admin()
    ann = await api.register("ann@example.org")
    petition = await api.file_petition(ann["token"])
    people = await signers(api, petition, 3)
    catcher.refuse["signer0@example.org"] = ["451 4.3.0 try again later", 2]
    catcher.refuse["signer1@example.org"] = ["550 5.1.1 no such mailbox", None]
    with caplog.at_level(logging.WARNING, "tornado_petitions.mail"):
        await move(api, admin, petition, "under_review", "Looking")
        mails = by_recipient(await settle(catcher, 3, timeout=15))
        await asyncio.sleep(0.5)
    assert set(mails) == {"ann@example.org", "signer0@example.org", "signer2@example.org"}
    assert all(len(got) == 1 for got in mails.values())
    failed = MailOutbox.get(MailOutbox.user == people[1]["user"]["user_id"])
    assert failed.state == "failed" and failed.error.startswith("550")
    retried = MailOutbox.get(MailOutbox.user == people[0]["user"]["user_id"])
    assert retried.state == "sent" and retried.attempts == 2
    assert any("refused for good: 550" in record.getMessage() for record in caplog.records)
    assert "petitions_mail_failed_total 1.0" in (await api.get("/metrics")).body
    assert await depth_reaches_zero(api)


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_a_refused_sender_keeps_every_mail_until_it_is_accepted(api, make_admin, catcher):
    admin = make_admin()
    ann = await api.register("ann@example.org")
    petition = await api.file_petition(ann["token"])
    await signers(api, petition, 2)
    catcher.refuse["MAIL FROM"] = ["550 5.7.1 sender not allowed", 3]
    await move(api, admin, petition, "under_review", "Looking")
    mails = by_recipient(await settle(catcher, 3, timeout=15))
    assert len(mails) == 3 and all(len(got) == 1 for got in mails.values())
    assert MailOutbox.select().where(MailOutbox.state != "sent").count() == 0


class TestServerDown:
    """Nothing listens on the SMTP port at first; the server comes up later."""

    @pytest.fixture
    def catcher(self):
        server = SmtpCatcher()  # not started
        yield server
        server.stop()

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=60)
    async def test_mail_waits_for_the_server_without_slowing_requests(self, api, make_admin, catcher, app):
        admin = make_admin()
        ann = await api.register("ann@example.org")
        petition = await api.file_petition(ann["token"])
        await signers(api, petition, 10)
        slowest = 0.0
        for status, note in (("under_review", "Looking"), ("in_progress", "Started")):
            started = time.monotonic()
            await move(api, admin, petition, status, note)
            slowest = max(slowest, time.monotonic() - started)
        # While the sender backs off, the API answers as fast as ever.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert (await api.get(f"/api/petitions/{petition['petition_id']}")).status == 200
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert slowest < 0.25, slowest
        assert catcher.messages == []
        assert MailOutbox.select().where(MailOutbox.state == "pending").count() == 22
        catcher.start()
        started = time.monotonic()
        mails = by_recipient(await settle(catcher, 22, timeout=15))
        # Back within the retry cap (10 s) of the server's return.
        assert time.monotonic() - started < app.config.mail_retry_max + 2
        assert len(mails) == 11 and all(len(got) == 2 for got in mails.values())
        assert MailOutbox.select().where(MailOutbox.state != "sent").count() == 0


def test_sigkill_while_sending_loses_nothing_and_duplicates_at_most_the_mail_in_flight(tmp_path, catcher):
    """500 signers, a change with a note, SIGKILL mid-send, restart: every mail arrives once (one may twice)."""
    server = LiveServer(
        tmp_path, *GENEROUS_RATE_FLAGS, "--smtp-url", catcher.url, "--verify-email", "off", "--mail-per-second", "150",
        "--public-url", PUBLIC_URL,
    )  # fmt: skip
    server.start()
    try:
        server.create_user("admin@example.org", "admin password", admin=True)
        admin = server.sign_in("admin@example.org", "admin password")
        author = server.register("ann@example.org", "Ann")
        status, petition, _ = server.call(
            "POST", "/api/petitions", {"title": "Mass mail", "description": "x"}, author["token"]
        )
        assert status == 201
        # 500 signers: accounts made on the same database file (one password hash for all), signing over HTTP.
        tokens = make_signers(server.db_url, 500)
        path = f"/api/petitions/{petition['petition_id']}/signatures"
        for token in tokens:
            assert server.call("POST", path, token=token)[0] == 201
        body = {"status": "under_review", "note": "Everyone hears about this"}
        status, _, _ = server.call(
            "PATCH", f"/api/petitions/{petition['petition_id']}/status", body, admin["token"]
        )
        assert status == 200
        catcher.wait_sync(120, timeout=30)
        server.process.kill()
        server.process.wait()
        server._log.close()
        at_kill = len(catcher.messages)
        assert 100 <= at_kill < 501, at_kill
        server.start()
        catcher.wait_sync(501, timeout=60)
        time.sleep(0.5)
        counts = collections.Counter(catcher.recipients())
        assert set(counts) == {"ann@example.org"} | {f"s{n}@example.org" for n in range(500)}
        twice = {recipient: n for recipient, n in counts.items() if n > 1}
        # The documented window: the one mail the SMTP server accepted just before the kill, not yet marked.
        assert len(twice) <= 1 and all(n == 2 for n in twice.values()), twice
        # The depth gauge is refreshed about once a second.
        deadline = time.monotonic() + 3
        while "petitions_mail_outbox_depth 0.0" not in server.call("GET", "/metrics")[1]:
            assert time.monotonic() < deadline, "the outbox depth never reached 0"
            time.sleep(0.1)
    finally:
        server.stop()


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_a_milestone_mails_the_author_and_every_signer_once(api, app, catcher):
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"], "Trees on Main Street")
    people = await signers(api, petition, 5)
    await api.patch("/api/me", {"email_updates": False}, people[4]["token"])
    # What the signature batch that crosses the threshold does, inside its own transaction (docs/architecture.md "Milestones").
    with MailOutbox._meta.database.atomic():
        mail_outbox.queue_milestone_mail(petition["petition_id"], "response")
        mail_outbox.queue_milestone_mail(petition["petition_id"], "response")  # a retry adds nothing
    app.mail_queued()
    mails = by_recipient(await settle(catcher, 5))
    assert set(mails) == {"ann@example.org"} | {f"signer{n}@example.org" for n in range(4)}
    assert all(len(got) == 1 for got in mails.values())
    mail = mails["signer0@example.org"][0]
    assert mail["Subject"] == "Petition milestone: Trees on Main Street"
    body = mail.get_content()
    assert "reached 10,000 signatures" in body and "the government will respond" in body
    assert f"{PUBLIC_URL}/petitions/{petition['petition_id']}" in body


def make_signers(db_url: str, count: int) -> list[str]:
    """``count`` accounts made straight on the service's database (one password hash for all); their tokens."""
    db = open_database(db_url)
    bind_database(db)
    try:
        password_hash = accounts.hash_password("correct horse")
        tokens = []
        for number in range(count):
            user = accounts.create_user(f"s{number}@example.org", f"S {number}", password_hash)
            tokens.append(accounts.issue_token(user, 3600))
        return tokens
    finally:
        close_database(db)


def test_two_processes_on_one_database_send_each_mail_once(tmp_path, catcher, postgres_url):
    flags = (
        *GENEROUS_RATE_FLAGS,
        "--smtp-url",
        catcher.url,
        "--verify-email",
        "off",
        "--mail-per-second",
        "100",
    )
    servers = [LiveServer(tmp_path, *flags, db_url=postgres_url, name=name) for name in ("one", "two")]
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready()
    one, two = servers
    try:
        author = one.register("ann@example.org", "Ann")
        answer = {"title": "Shared outbox", "description": "x"}
        status, petition, _ = one.call("POST", "/api/petitions", answer, author["token"])
        assert status == 201
        path = f"/api/petitions/{petition['petition_id']}/signatures"
        for number, token in enumerate(make_signers(postgres_url, 300)):
            assert servers[number % 2].call("POST", path, token=token)[0] == 201
        one.create_user("admin@example.org", "admin password", admin=True)
        admin = two.sign_in("admin@example.org", "admin password")
        body = {"status": "under_review", "note": "Both processes send"}
        status, _, _ = two.call(
            "PATCH", f"/api/petitions/{petition['petition_id']}/status", body, admin["token"]
        )
        assert status == 200
        catcher.wait_sync(301, timeout=60)
        time.sleep(1.0)
        counts = collections.Counter(catcher.recipients())
        assert len(counts) == 301 and set(counts.values()) == {1}, counts.most_common(3)
        sent = []
        for server in servers:
            metrics = server.call("GET", "/metrics")[1]
            sent.append(float(re.search(r"^petitions_mail_sent_total (\S+)$", metrics, re.M)[1]))
        assert sum(sent) == 301, sent
    finally:
        for server in servers:
            server.stop()


# -- addresses and headers nobody can turn against the mail ------------------------------

# A display name that, written into To without its parts kept apart, reads as three addresses.
COMMA_NAME = "Security Team xxx\u2026, phish@attacker.example,"
HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
    "Auto-Submitted", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
}  # fmt: skip
BIDI_AND_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\x00-\x1f\x7f]")


def stored_user(email: str, name: str) -> dict:
    """A user row as a database from before addresses (and names) were checked may hold it, signed in."""
    user = User.create(email=email, name=name, password_hash="not used")
    return {"user": user.to_dict(), "token": accounts.issue_token(user, 3600)}


async def sign(api, petition, people) -> None:
    for person in people:
        answer = await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=person["token"])
        assert answer.status == 201, answer.body


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_no_name_or_title_can_add_a_recipient_or_a_header(api, make_admin, catcher, caplog):
    admin = make_admin()
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"], "Lamps for the park")
    comma = await api.register("comma@example.org", COMMA_NAME)
    # Names and a title with line breaks, bidi overrides and controls, as an older database may hold them.
    people = [
        comma,
        stored_user("crlf@example.org", "Eve\r\nBcc: evil@attacker.example\r\nX-Injected: yes"),
        stored_user("bidi@example.org", "\u202eecffo eht\u202c \u2066Office\u2069 \u200fmark"),
        stored_user("ctl@example.org", 'Tab\there\x1b[31m red\x00 \u2028 sep, "quoted" <angle@x.example>'),
    ]
    await sign(api, petition, people)
    title = "Lamps\r\nBcc: evil@attacker.example\r\nX-Injected: yes \u202eeltit"
    Petition.update(title=title).where(Petition.id == petition["petition_id"]).execute()
    with caplog.at_level(logging.WARNING, "tornado_petitions.mail"):
        await move(
            api, admin, petition, "under_review", "Line one\r\nBcc: evil@attacker.example\nGr\u00fc\u00dfe"
        )
        mails = by_recipient(await settle(catcher, 5))
    assert set(mails) == {"ann@example.org"} | {p["user"]["email"] for p in people}
    for recipient, (mail,) in mails.items():
        assert set(mail.keys()) == HEADERS, (recipient, mail.keys())
        (address,) = mail["To"].addresses
        assert address.addr_spec == recipient
        assert not BIDI_AND_CONTROLS.search(address.display_name), address.display_name
        assert mail["From"] == "office@petitions.example.org"
        assert (
            # strip(): a folded header's first line may be empty, and Python keeps the fold's space.
            mail["Subject"].strip()
            == "Petition under review: Lamps Bcc: evil@attacker.example X-Injected: yes eltit"
        )
        assert re.fullmatch(
            r"<https://petitions\.example\.org/unsubscribe/[0-9]+/[0-9a-f]{32}>", mail["List-Unsubscribe"]
        )
    assert mails["comma@example.org"][0]["To"].addresses[0].display_name == COMMA_NAME
    assert mails["crlf@example.org"][0]["To"].addresses[0].display_name == (
        "Eve Bcc: evil@attacker.example X-Injected: yes"
    )
    assert mails["bidi@example.org"][0]["To"].addresses[0].display_name == "ecffo eht Office mark"
    assert "Line one\nBcc: evil@attacker.example\nGr\u00fc\u00dfe" in mails["ann@example.org"][
        0
    ].get_content().replace("\r\n", "\n")
    assert not caplog.records, [r.getMessage() for r in caplog.records]


@pytest.mark.gen_test(timeout=60)
async def test_a_row_that_cannot_be_mailed_is_failed_with_why_and_the_rest_of_the_batch_goes_out(
    api, app, make_admin, catcher, caplog
):
    admin = make_admin()
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"])
    # Accounts an older version stored unchecked, signing first so that their rows lead the batch.
    bad = [
        stored_user("crlf@example.org\r\nbcc: x@evil.example", "Crlf"),
        stored_user("bob smith@example.org", "Space"),
        stored_user("\u00fclrich@example.org", "Unicode local part"),
        stored_user("nobody@localhost", "No domain"),
    ]
    old_idn = stored_user("idn@b\u00fccher.example", "Stored in Unicode")
    await sign(api, petition, [*bad, old_idn])
    good = await signers(api, petition, 3, prefix="good")
    with caplog.at_level(logging.WARNING, "tornado_petitions.mail"):
        await move(api, admin, petition, "under_review", "Looking into it")
        mails = by_recipient(await settle(catcher, 5, timeout=10))
    expected = {"ann@example.org", "idn@xn--bcher-kva.example"} | {p["user"]["email"] for p in good}
    assert set(mails) == expected and all(len(got) == 1 for got in mails.values())
    for person in bad:
        row = MailOutbox.get(MailOutbox.user == person["user"]["user_id"])
        assert row.state == "failed" and row.error.startswith("cannot be mailed: "), (row.state, row.error)
    assert MailOutbox.select().where(MailOutbox.state == "pending").count() == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("not sent: cannot be mailed" in line for line in warnings) == 4, warnings
    assert not any("step failed" in line for line in warnings), warnings
    assert "petitions_mail_failed_total 4.0" in (await api.get("/metrics")).body
    # A row written straight into the outbox for one of them (an old database's backlog) fails the same way.
    MailOutbox.update(state="pending", error=None).where(
        MailOutbox.user == bad[0]["user"]["user_id"]
    ).execute()
    app.mail_queued()
    await move(api, admin, petition, "in_progress", "Started")
    mails = by_recipient((await settle(catcher, 10, timeout=10))[5:])
    assert set(mails) == expected
    assert MailOutbox.select().where(MailOutbox.state == "pending").count() == 0


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_a_permanent_refusal_fails_only_that_rows_mail(api, make_admin, catcher):
    admin = make_admin()
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"])
    idn = await api.register("idn@B\u00fccher.Example", "Idn")
    assert idn["user"]["email"] == "idn@xn--bcher-kva.example"
    old_idn = stored_user("old@b\u00fccher.example", "Stored in Unicode")
    await sign(api, petition, [idn, old_idn])
    good = await signers(api, petition, 3)
    catcher.refuse["old@xn--bcher-kva.example"] = ["550 5.1.1 no such mailbox", None]
    catcher.refuse["signer1@example.org"] = ["553 5.1.3 mailbox name not allowed", None]
    await move(api, admin, petition, "under_review", "Looking into it")
    mails = by_recipient(await settle(catcher, 4, timeout=10))
    assert set(mails) == {
        "ann@example.org",
        "idn@xn--bcher-kva.example",
        "signer0@example.org",
        "signer2@example.org",
    }
    refused = MailOutbox.get(MailOutbox.user == old_idn["user"]["user_id"])
    assert refused.state == "failed" and refused.error == "550 5.1.1 no such mailbox"
    refused = MailOutbox.get(MailOutbox.user == good[1]["user"]["user_id"])
    assert refused.state == "failed" and refused.error == "553 5.1.3 mailbox name not allowed"
    assert MailOutbox.select().where(MailOutbox.state == "pending").count() == 0


class TestSlowPoll:
    """An idle sender that looks at the outbox only once a minute unless something wakes it."""

    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, mail_poll_seconds=60.0, response_threshold=3)

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=60)
    async def test_a_milestone_wakes_the_sender_as_a_status_change_does(self, api, catcher):
        ann = await api.register("ann@example.org", "Ann")
        petition = await api.file_petition(ann["token"], "Trees on Main Street")
        people = await signers(api, petition, 2)
        await asyncio.sleep(0.6)  # past the 0.5 s poll the sender had, so only a wake-up can bring mail now
        catcher.refuse["signer0@example.org"] = ["451 4.3.0 try again later", 2]
        third = await api.register("third@example.org", "Third")
        await sign(api, petition, [third])  # the third signature: the response milestone
        mails = by_recipient(await settle(catcher, 4, timeout=15))
        assert set(mails) == {"ann@example.org", "third@example.org"} | {p["user"]["email"] for p in people}
        assert all(got[0]["Subject"] == "Petition milestone: Trees on Main Street" for got in mails.values())


@pytest.mark.parametrize(
    "changes",
    [
        {"mail_from": "office@example.org\r\nBcc: x@evil.example"},
        {"mail_from": "Office <office@example.org>"},
        {"mail_from": "\u00f6ffice@example.org"},
        {"mail_from": "office"},
        {"public_url": "https://petitions.example.org\r\nX-Injected: yes"},
        {"public_url": "https://petitions.example.org/a b"},
    ],
    ids=repr,
)
def test_a_from_address_or_public_url_that_no_header_can_carry_stops_the_sender_at_start(changes):
    settings = Settings(smtp_url="smtp://127.0.0.1:25", **changes)
    flag = "--mail-from" if "mail_from" in changes else "--public-url"
    with pytest.raises(ValueError, match=flag):
        MailSender(settings, runner=None, metrics=None, key=b"")
