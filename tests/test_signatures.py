"""Signatures that count people: anonymous signing confirmed by mail, one per canonical email, where from, privacy."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import re

import pytest

from tests.conftest import read_json
from tests.smtp_catcher import SmtpCatcher
from tornado_petitions import signature_privacy
from tornado_petitions.models import Petition, Signature, utcnow
from tornado_petitions.signers import canonical_email

PUBLIC_URL = "https://petitions.example.org"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/signatures/confirm/([0-9A-Za-z]+)")


@pytest.fixture
def regions_file(tmp_path):
    path = tmp_path / "regions.csv"
    path.write_text("postcode_prefix,region\nSW,London South West\nSW1A,Westminster\nM,Manchester\n")
    return str(path)


@pytest.fixture
def settings(settings, catcher, regions_file):
    return dataclasses.replace(
        settings,
        smtp_url=catcher.url,
        # Accounts sign in at once here (test_account_mail.py verifies emails).
        verify_email="off",
        mail_from="office@petitions.example.org",
        mail_per_second=500.0,
        public_url=PUBLIC_URL,
        regions_file=regions_file,
    )


def sign_path(petition: dict) -> str:
    return f"/api/petitions/{petition['petition_id']}/signatures"


async def sign(api, petition, email="Foo+x@Example.org", country="GB", postcode="sw1a 1aa", name="Foo"):
    body = {"name": name, "email": email, "country": country}
    if postcode is not None:
        body["postcode"] = postcode
    return await api.post(sign_path(petition), body)


async def mail_to(catcher: SmtpCatcher, count: int) -> list:
    await catcher.wait(count, 20.0)
    await asyncio.sleep(0.3)  # a duplicate would show by now
    return catcher.messages


def link_token(message) -> str:
    match = LINK.search(message.get_content())
    assert match, message.get_content()
    return match.group(1)


async def petition_now(api, petition) -> dict:
    return (await api.get(f"/api/petitions/{petition['petition_id']}")).body


def counted_rows(petition_id: int) -> dict[str, int]:
    rows = Signature.select(Signature.country).where(
        (Signature.petition == petition_id)
        & (Signature.state == "validated")
        & Signature.country.is_null(False)
    )
    found: dict[str, int] = {}
    for (country,) in rows.tuples():
        found[country] = found.get(country, 0) + 1
    return found


def test_canonical_email_is_one_rule_for_tags_case_and_gmail():
    assert canonical_email("Foo+x@Example.org") == "foo@example.org"
    assert canonical_email("f.o.o+news@googlemail.com") == canonical_email("FOO@gmail.com") == "foo@gmail.com"
    assert canonical_email("f.o.o@example.org") == "f.o.o@example.org"  # dots matter elsewhere


@pytest.mark.gen_test(timeout=60)
async def test_an_anonymous_signature_counts_once_its_link_is_posted_and_never_on_get(
    api, catcher, sockets, http_client, base_url
):
    author = await api.register("author@example.org")
    petition = await api.file_petition(author["token"])
    pid = petition["petition_id"]
    watcher = await sockets.connect("/ws/petitions")
    assert (await read_json(watcher))["type"] == "hello"

    answer = await sign(api, petition)
    assert answer.status == 202, answer.body
    assert answer.body["state"] == "pending" and answer.body["message"]
    assert (await petition_now(api, petition))["signature_count"] == 0
    [(recipient, message)] = await mail_to(catcher, 1)
    assert recipient == "Foo+x@example.org"  # as typed, the domain normalized
    assert "Confirm" in message["Subject"] and "List-Unsubscribe" not in message
    token = link_token(message)

    # A mail scanner follows the link: the page shows a button and counts nothing.
    for _ in range(2):
        page = await http_client.fetch(f"{base_url}/signatures/confirm/{token}", raise_error=False)
        assert page.code == 200 and b"Confirm my signature" in page.body
    assert (await petition_now(api, petition))["signature_count"] == 0

    confirmed = await api.post("/api/signatures/confirm", {"token": token})
    assert confirmed.status == 200, confirmed.body
    assert confirmed.body == {"petition_id": pid, "state": "validated"}
    frame = await read_json(watcher)
    assert frame["type"] == "counts" and frame["counts"] == {str(pid): 1}
    again = await api.post("/api/signatures/confirm", {"token": token})
    assert again.status == 200 and again.body == confirmed.body
    now = await petition_now(api, petition)
    assert now["signature_count"] == 1
    assert now["signatures_by_country"] == {"GB": 1}
    assert now["signatures_by_region"] == {"Westminster": 1}  # the longest prefix
    assert now["signatures_by_country"] == counted_rows(pid)
    timeline = await api.get(f"/api/petitions/{pid}/signatures/timeline?bucket=minute")
    assert timeline.body["points"][-1]["total"] == 1

    unknown = await api.post("/api/signatures/confirm", {"token": "0" * 64})
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_found"


@pytest.mark.gen_test(timeout=60)
async def test_one_person_is_one_signature_whatever_the_spelling_and_an_account_is_told(api, catcher):
    author = await api.register("author@example.org")
    petition = await api.file_petition(author["token"])
    first = await sign(api, petition, email="Foo+x@Example.org")
    [(_, message)] = await mail_to(catcher, 1)
    assert (await api.post("/api/signatures/confirm", {"token": link_token(message)})).status == 200

    # The same person again, spelled otherwise: the same 202, a mail saying so, no second count.
    second = await sign(api, petition, email="foo@example.org")
    assert second.status == 202 and second.body == first.body
    messages = await mail_to(catcher, 2)
    assert messages[1][0] == "foo@example.org"
    assert "already signed" in messages[1][1]["Subject"] and not LINK.search(messages[1][1].get_content())
    assert (await petition_now(api, petition))["signature_count"] == 1

    # An account with that address is that person: 409 on this petition.
    account = await api.register("FOO@example.org")
    refused = await api.post(sign_path(petition), token=account["token"])
    assert refused.status == 409 and refused.body["error"]["code"] == "already_signed"

    # Gmail ignores dots and answers to googlemail.com too.
    await sign(api, petition, email="jane.doe@gmail.com")
    await mail_to(catcher, 3)
    await sign(api, petition, email="janedoe+petitions@googlemail.com")
    messages = await mail_to(catcher, 4)
    # Still pending, and one person: a fresh link, and the first one stops working.
    assert "Confirm" in messages[2][1]["Subject"] and "Confirm" in messages[3][1]["Subject"]
    old, new = link_token(messages[2][1]), link_token(messages[3][1])
    assert (await api.post("/api/signatures/confirm", {"token": old})).status == 404
    assert (await api.post("/api/signatures/confirm", {"token": new})).status == 200
    assert (await petition_now(api, petition))["signature_count"] == 2


@pytest.mark.gen_test(timeout=30)
async def test_bad_signers_are_refused_naming_the_field(api):
    author = await api.register("author@example.org")
    petition = await api.file_petition(author["token"])
    disposable = await sign(api, petition, email="someone@mailinator.com")
    assert disposable.status == 422 and "email" in disposable.body["error"]["fields"]
    country = await sign(api, petition, country="UK")
    assert country.status == 422 and "country" in country.body["error"]["fields"]
    missing = await api.post(sign_path(petition), {"email": "a@example.org", "country": "GB"})
    assert missing.status == 422 and "name" in missing.body["error"]["fields"]


class TestWithoutMail:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, smtp_url=None)

    @pytest.mark.gen_test(timeout=30)
    async def test_signing_without_an_account_needs_mail(self, api):
        author = await api.register("author@example.org")
        petition = await api.file_petition(author["token"])
        refused = await sign(api, petition)
        assert refused.status == 401 and refused.body["error"]["code"] == "sign_in_required"
        counted = await api.post(sign_path(petition), {"country": "FR"}, author["token"])
        assert counted.status == 201 and counted.body["signatures_by_country"] == {"FR": 1}


@pytest.mark.gen_test(timeout=60)
async def test_anonymizing_erases_people_and_keeps_the_counts(api, catcher, app):
    author = await api.register("author@example.org")
    petition = await api.file_petition(author["token"])
    pid = petition["petition_id"]
    await sign(api, petition, email="kept@example.org", country="FR", postcode="M1 1AA")
    [(_, message)] = await mail_to(catcher, 1)
    await api.post("/api/signatures/confirm", {"token": link_token(message)})
    await sign(api, petition, email="never@example.org")  # never confirmed
    await mail_to(catcher, 2)
    before = await petition_now(api, petition)

    # Signing stopped long ago, and the unconfirmed link has run out.
    long_ago = utcnow() - datetime.timedelta(days=app.config.anonymize_days + 1)
    Petition.update(closes_at=long_ago).where(Petition.id == pid).execute()
    Signature.update(token_expires_at=long_ago).where(Signature.state == "pending").execute()
    erased, purged = signature_privacy.anonymize(app.config.anonymize_days)
    assert (erased, purged) == (1, 1)

    rows = list(
        Signature.select(
            Signature.state,
            Signature.name,
            Signature.email,
            Signature.address,
            Signature.postcode,
            Signature.country,
        )
        .where(Signature.petition == pid)
        .tuples()
    )
    assert rows == [("validated", None, None, None, None, "FR")]
    after = await petition_now(api, petition)
    assert after["signature_count"] == before["signature_count"] == 1
    assert after["signatures_by_country"] == before["signatures_by_country"] == {"FR": 1}
    assert after["signatures_by_region"] == {"Manchester": 1}
    assert signature_privacy.anonymize(app.config.anonymize_days) == (0, 0)  # once is enough


def test_sigkill_in_the_middle_of_confirmations_loses_nothing_confirmed(tmp_path, catcher):
    """Every 200 of a confirmation is a count kept: after a SIGKILL and a restart each is counted, once."""
    import concurrent.futures
    import sqlite3
    import time

    from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

    flags = (*GENEROUS_RATE_FLAGS, f"--smtp-url={catcher.url}", f"--public-url={PUBLIC_URL}")
    server = LiveServer(tmp_path, *flags, "--verify-email=off", "--mail-per-second=1000").start()
    try:
        author = server.register("author@example.org")
        body = {"title": "A petition", "description": "x"}
        petition = server.call("POST", "/api/petitions", body, author["token"])[1]
        path = f"/api/petitions/{petition['petition_id']}/signatures"
        signers = 300
        for i in range(signers):
            signer = {"name": f"S {i}", "email": f"s{i}@example.org", "country": "GB" if i % 3 else "IE"}
            assert server.call("POST", path, signer)[0] == 202
        tokens = [link_token(message) for _, message in catcher.wait_sync(signers, 60.0)]
    except BaseException:
        server.stop()
        raise
    confirmed: list[str] = []

    def confirm(token: str) -> None:
        try:
            status, _, _ = server.call("POST", "/api/signatures/confirm", {"token": token})
        except OSError:
            return  # the server is gone
        if status == 200:
            confirmed.append(token)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        storm = [pool.submit(confirm, token) for token in tokens]
        while len(confirmed) < 60:
            time.sleep(0.005)
        server.process.kill()  # SIGKILL: no shutdown, no flush
        for done in storm:
            done.result()
    server.process.wait()
    server.stop()
    assert 60 <= len(confirmed) < signers, "the kill did not land in the middle of the confirmations"

    server.start()
    try:
        for token in confirmed:  # confirmed before the kill: still counted, and counted once
            status, answer, _ = server.call("POST", "/api/signatures/confirm", {"token": token})
            assert status == 200 and answer["state"] == "validated"
        shown = server.call("GET", f"/api/petitions/{petition['petition_id']}")[1]
    finally:
        server.stop_cleanly()
    with sqlite3.connect(tmp_path / "live.db") as db:
        validated = db.execute('SELECT COUNT(*) FROM "signature" WHERE "state" = \'validated\'').fetchone()[0]
        by_country = dict(
            db.execute('SELECT "country", COUNT(*) FROM "signature" WHERE "state" = \'validated\' GROUP BY 1')
        )
    assert len(confirmed) <= validated == shown["signature_count"]
    assert shown["signatures_by_country"] == by_country


class TestMailPerPerson:
    @pytest.fixture
    def settings(self, settings):
        rates = dataclasses.replace(settings.rate_limits, signature_mails_per_email=2)
        return dataclasses.replace(settings, rate_limits=rates)

    @pytest.mark.gen_test(timeout=30)
    async def test_no_one_makes_the_service_flood_a_mailbox(self, api, catcher):
        author = await api.register("author@example.org")
        petition = await api.file_petition(author["token"])
        assert [
            (await sign(api, petition, email=e)).status for e in ("a@example.org", "A+1@example.org")
        ] == [
            202,
            202,
        ]
        flooded = await sign(api, petition, email="a+2@example.org")
        assert flooded.status == 429 and flooded.headers.get("Retry-After")
        assert (await sign(api, petition, email="b@example.org")).status == 202
        # Two couriers send side by side: which arrives first is not the point, who is mailed is.
        assert sorted(to for to, _ in await mail_to(catcher, 3)) == sorted(
            ["a@example.org", "A+1@example.org", "b@example.org"]
        )


# The tables of schema version 2 that version 3 changes, as version 2 created them on SQLite.
SCHEMA_2 = """
CREATE TABLE "schema_version" ("id" INTEGER NOT NULL PRIMARY KEY, "version" INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES (1, 2);
CREATE TABLE "user" ("id" INTEGER NOT NULL PRIMARY KEY, "email" VARCHAR(254) NOT NULL, "name" VARCHAR(100) NOT NULL,
  "role" VARCHAR(16) NOT NULL, "password_hash" VARCHAR(255) NOT NULL, "created_at" DATETIME NOT NULL,
  "email_updates" INTEGER NOT NULL);
CREATE UNIQUE INDEX "user_email" ON "user" ("email");
CREATE TABLE "petition" ("id" INTEGER NOT NULL PRIMARY KEY, "title" VARCHAR(200) NOT NULL, "description" TEXT NOT NULL,
  "category" VARCHAR(100), "location" VARCHAR(100), "author_id" INTEGER NOT NULL, "status" VARCHAR(16) NOT NULL,
  "signature_count" INTEGER NOT NULL, "version" INTEGER NOT NULL, "response" TEXT, "submitted_at" DATETIME NOT NULL,
  "updated_at" DATETIME NOT NULL, "count_seq" INTEGER NOT NULL DEFAULT 0, "count_version" INTEGER NOT NULL DEFAULT 0,
  "count_changed_at" DATETIME, "closes_at" DATETIME, "milestones" TEXT NOT NULL, "awaiting_response" INTEGER NOT NULL,
  "rejection_reason" VARCHAR(32), FOREIGN KEY ("author_id") REFERENCES "user" ("id"));
CREATE TABLE "signature" ("id" INTEGER NOT NULL PRIMARY KEY, "petition_id" INTEGER NOT NULL, "user_id" INTEGER NOT NULL,
  "created_at" DATETIME NOT NULL, FOREIGN KEY ("petition_id") REFERENCES "petition" ("id") ON DELETE CASCADE,
  FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);
CREATE INDEX "signature_petition_id" ON "signature" ("petition_id");
CREATE UNIQUE INDEX "signature_petition_id_user_id" ON "signature" ("petition_id", "user_id");
CREATE TABLE "mail_outbox" ("id" INTEGER NOT NULL PRIMARY KEY, "change_key" VARCHAR(64) NOT NULL,
  "user_id" INTEGER NOT NULL, "petition_id" INTEGER NOT NULL, "kind" VARCHAR(16) NOT NULL, "title" VARCHAR(200) NOT NULL,
  "status" VARCHAR(16) NOT NULL, "note" TEXT, "milestone" VARCHAR(16), "state" VARCHAR(8) NOT NULL,
  "attempts" INTEGER NOT NULL, "next_attempt_at" DATETIME NOT NULL, "lease_owner" VARCHAR(32), "lease_until" DATETIME,
  "created_at" DATETIME NOT NULL, "sent_at" DATETIME, "error" TEXT,
  FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE,
  FOREIGN KEY ("petition_id") REFERENCES "petition" ("id") ON DELETE CASCADE);
INSERT INTO "user" VALUES (1, 'author@example.org', 'A', 'citizen', 'x', '2026-01-01 00:00:00', 1),
  (2, 'x@example.org', 'X', 'citizen', 'x', '2026-01-01 00:00:00', 1),
  (3, 'x+1@example.org', 'X1', 'citizen', 'x', '2026-01-01 00:00:00', 1),
  (4, 'Jane.Doe@gmail.com', 'J', 'citizen', 'x', '2026-01-01 00:00:00', 1);
INSERT INTO "petition" VALUES (1, 'T', 'D', NULL, NULL, 1, 'submitted', 3, 1, NULL, '2026-01-01 00:00:00',
  '2026-01-01 00:00:00', 0, 1, NULL, NULL, '[]', 0, NULL);
INSERT INTO "signature" VALUES (1, 1, 2, '2026-01-02 00:00:00'), (2, 1, 3, '2026-01-02 00:00:00'),
  (3, 1, 4, '2026-01-03 00:00:00');
"""


def test_a_version_2_database_migrates_keeping_every_signature_and_count(tmp_path):
    import sqlite3

    from tornado_petitions import petition_store, signature_store
    from tornado_petitions.models import (
        SCHEMA_VERSION,
        SchemaVersion,
        bind_database,
        close_database,
        open_database,
    )

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA_2)
    db = open_database(f"sqlite:///{path}")
    bind_database(db)
    try:
        with db.connection_context():
            rows = list(
                Signature.select(Signature.id, Signature.state, Signature.email, Signature.validated_at)
                .order_by(Signature.id)
                .tuples()
            )
            assert [row[:3] for row in rows] == [
                (1, "validated", "x@example.org"),
                (2, "validated", None),  # the same person as signature 1: kept, counted, no second email
                (3, "validated", "janedoe@gmail.com"),
            ]
            assert all(row[3] is not None for row in rows)
            assert petition_store.get_petition(1)["signature_count"] == 3
            assert signature_store.timeline(1, "day")[-1]["total"] == 3
            assert SchemaVersion.get().version == SCHEMA_VERSION
    finally:
        close_database(db)
    again = open_database(f"sqlite:///{path}")
    bind_database(again)  # a second start finds nothing to migrate
    with again.connection_context():
        assert Signature.select().count() == 3
    close_database(again)


def test_the_anonymize_command_runs_it_at_once(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [sys.executable, "-m", "tornado_petitions", "anonymize", "--db", url, "--anonymize-days", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "erased 0 signers" in done.stdout and "deleted 0 unconfirmed" in done.stdout
