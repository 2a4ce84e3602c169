"""Email verification and password reset through a real SMTP server (aiosmtpd): the links, once each."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
import statistics
import time
import urllib.parse

import pytest

from tests.conftest import read_json
from tests.smtp_catcher import SmtpCatcher
from tornado_petitions import accounts
from tornado_petitions.models import AccountLink, MailOutbox, User

PUBLIC_URL = "https://petitions.example.org"
PASSWORD = "correct horse"
LINK = re.compile(r"https://petitions\.example\.org/account/(verify|reset)/([0-9A-Za-z_-]+)")


@pytest.fixture
def settings(settings, catcher):
    """Mail on, so verification is on (``auto``)."""
    return dataclasses.replace(settings, smtp_url=catcher.url, mail_per_second=500.0, public_url=PUBLIC_URL)


def register_body(email: str, password: str = PASSWORD, name: str = "Ann") -> dict:
    return {"email": email, "name": name, "password": password}


async def mail_to(catcher: SmtpCatcher, recipient: str, count: int = 1, timeout: float = 15.0):
    """The ``count``-th mail to ``recipient`` (waiting for it), as (subject, body)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = [message for to, message in catcher.messages if to == recipient]
        if len(mails) >= count:
            mail = mails[count - 1]
            return mail["Subject"], mail.get_content().replace("\r\n", "\n")
        await asyncio.sleep(0.02)
    raise AssertionError(f"no mail {count} to {recipient}: {catcher.recipients()}")


def link_in(body: str) -> tuple[str, str]:
    """(kind, token) of the one account link in a mail's body."""
    found = LINK.findall(body)
    assert len(found) == 1, body
    return found[0]


async def page_post(http_client, base_url: str, path: str, form: str = "", headers: dict | None = None):
    """A browser's form post to a link's page; redirects are not followed (the 303 is the answer)."""
    return await http_client.fetch(
        base_url + path,
        method="POST",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        follow_redirects=False,
        raise_error=False,
    )


@pytest.mark.gen_test(timeout=60)
async def test_registration_answers_alike_and_the_mailed_link_verifies_and_signs_in(
    api, catcher, http_client, base_url, caplog
):
    caplog.set_level(logging.INFO, "tornado_petitions.access")
    first = await api.post("/api/auth/register", register_body("Ann@Example.org"))
    again = await api.post("/api/auth/register", register_body("ann@example.org", "another password"))
    assert first.status == again.status == 202
    assert first.body == again.body and set(first.body) == {"message"}
    assert "petitions_session" not in (first.headers.get("Set-Cookie") or "")

    subject, body = await mail_to(catcher, "ann@example.org")
    assert subject == "Verify your email address"
    kind, token = link_in(body)
    assert kind == "verify"
    subject, exists = await mail_to(catcher, "ann@example.org", 2)
    assert subject == "You already have an account"
    assert link_in(exists)[0] == "reset"
    # One account, with the first password; the second registration changed nothing.
    assert User.select().count() == 1

    login = await api.post("/api/auth/login", {"email": "ann@example.org", "password": PASSWORD})
    assert login.status == 403 and login.body["error"]["code"] == "email_not_verified"
    wrong = await api.post("/api/auth/login", {"email": "ann@example.org", "password": "not it at all"})
    assert wrong.status == 401, "a wrong password must not learn that the account is unverified"

    # Opening the link (a person or a mail scanner) changes nothing.
    page = await api.get(f"/account/verify/{token}")
    assert page.status == 200 and 'id="verify-button"' in page.body
    assert page.headers["Referrer-Policy"] == "strict-origin"
    assert User.get().email_verified is False
    assert (
        await api.post("/api/auth/login", {"email": "ann@example.org", "password": PASSWORD})
    ).status == 403

    verified = await api.post("/api/auth/verify", {"token": token})
    assert verified.status == 200, verified.body
    assert verified.body["user"]["email_verified"] is True
    assert "petitions_session=" in verified.headers["Set-Cookie"]
    me = await api.get("/api/me", verified.body["token"])
    assert me.body["email_verified"] is True and me.body["email"] == "ann@example.org"
    login = await api.post("/api/auth/login", {"email": "ann@example.org", "password": PASSWORD})
    assert login.status == 200 and login.body["user"]["email_verified"] is True

    # A used link is gone, for the API and the page alike.
    assert (await api.post("/api/auth/verify", {"token": token})).status == 404
    assert (await api.get(f"/account/verify/{token}")).status == 404
    assert (await page_post(http_client, base_url, f"/account/verify/{token}")).code == 404
    assert (await api.post("/api/auth/verify", {"token": "x" * 43})).body["error"]["code"] == "not_found"
    # Link tokens are credentials: stored as hashes, never logged, cleared from sent mail rows.
    assert not AccountLink.select().where(AccountLink.token_hash == token).exists()
    assert MailOutbox.select().where(MailOutbox.secret.is_null(False)).count() == 0
    assert any("/account/verify/*** 200" in record.getMessage() for record in caplog.records)
    assert not any(token in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=60)
async def test_registration_timing_does_not_tell_whether_an_account_exists(api, make_admin):
    make_admin("taken@example.org")
    taken, new = [], []
    for number in range(8):
        for times, email in ((taken, "taken@example.org"), (new, f"new{number}@example.org")):
            # CPU time of this process (the server is in it, hashing on its executor's threads):
            # what the request costs, which a loaded machine does not stretch as it does wall time.
            started = time.process_time()
            answer = await api.post("/api/auth/register", register_body(email))
            times.append(time.process_time() - started)
            assert answer.status == 202
    # Both do one password hash (~20 ms) and one transaction; a skipped hash would halve one side.
    assert statistics.median(taken) > 0.6 * statistics.median(new), (taken, new)
    assert statistics.median(new) > 0.6 * statistics.median(taken), (taken, new)


@pytest.mark.gen_test(timeout=60)
async def test_the_verify_page_posts_verify_and_sign_the_browser_in(api, catcher, http_client, base_url):
    await api.post("/api/auth/register", register_body("bo@example.org", name="Bo"))
    _, token = link_in((await mail_to(catcher, "bo@example.org"))[1])
    other_site = await page_post(
        http_client, base_url, f"/account/verify/{token}", headers={"Origin": "https://evil.example"}
    )
    assert other_site.code == 403, "another site's form must not sign a browser in (login CSRF)"
    done = await page_post(http_client, base_url, f"/account/verify/{token}")
    assert done.code == 303 and done.headers["Location"] == "/"
    session = re.search(r"petitions_session=([^;]+)", done.headers["Set-Cookie"]).group(1)
    me = await api.call("GET", "/api/me", headers={"Cookie": f"petitions_session={session}"})
    assert me.status == 200 and me.body["name"] == "Bo" and me.body["email_verified"] is True


@pytest.mark.gen_test(timeout=60)
async def test_accounts_made_by_an_operator_sign_in_at_once(api, make_admin):
    make_admin("admin@example.org")
    login = await api.post("/api/auth/login", {"email": "admin@example.org", "password": "admin password"})
    assert login.status == 200 and login.body["user"]["email_verified"] is True


@pytest.mark.gen_test(timeout=90)
async def test_a_password_reset_revokes_every_other_token_and_closes_their_sockets(
    api, catcher, app, make_admin, sockets
):
    make_admin("ann@example.org", "Ann")
    phone = (
        await api.post("/api/auth/login", {"email": "ann@example.org", "password": "admin password"})
    ).body
    laptop = (
        await api.post("/api/auth/login", {"email": "ann@example.org", "password": "admin password"})
    ).body
    # The phone's token is in the token cache (a request used it) and holds a socket.
    assert (await api.get("/api/me", phone["token"])).status == 200
    socket = await sockets.connect("/ws/petitions", phone["token"])
    assert (await read_json(socket))["type"] == "hello"

    unknown = await api.post("/api/auth/password-reset", {"email": "nobody@example.org"})
    known = await api.post("/api/auth/password-reset", {"email": "ANN@example.org"})
    assert unknown.status == known.status == 202 and unknown.body == known.body
    subject, body = await mail_to(catcher, "ann@example.org")
    assert subject == "Reset your password"
    kind, token = link_in(body)
    assert kind == "reset"
    await asyncio.sleep(0.3)
    assert catcher.recipients() == ["ann@example.org"], "an unknown email is mailed nothing"

    page = await api.get(f"/account/reset/{token}")
    assert page.status == 200 and 'name="password"' in page.body
    too_short = await api.post("/api/auth/password-reset/confirm", {"token": token, "password": "short"})
    assert too_short.status == 422 and "password" in too_short.body["error"]["fields"]
    done = await api.post(
        "/api/auth/password-reset/confirm", {"token": token, "password": "a new passphrase"}
    )
    assert done.status == 200, done.body
    assert "petitions_session=" in done.headers["Set-Cookie"]

    assert await read_json(socket) is None and socket.close_code == 4401
    for old in (phone, laptop):
        assert (await api.get("/api/me", old["token"])).status == 401
    assert (await api.get("/api/me", done.body["token"])).status == 200
    assert (
        await api.post("/api/auth/login", {"email": "ann@example.org", "password": "admin password"})
    ).status == 401
    assert (
        await api.post("/api/auth/login", {"email": "ann@example.org", "password": "a new passphrase"})
    ).status == 200
    again = await api.post(
        "/api/auth/password-reset/confirm", {"token": token, "password": "yet another one"}
    )
    assert again.status == 404
    assert (await api.get(f"/account/reset/{token}")).status == 404


@pytest.mark.gen_test(timeout=60)
async def test_an_expired_link_is_404_and_a_reset_verifies_the_email(api, catcher, http_client, base_url):
    await api.post("/api/auth/register", register_body("cy@example.org", name="Cy"))
    _, verify_token = link_in((await mail_to(catcher, "cy@example.org"))[1])
    await api.post("/api/auth/password-reset", {"email": "cy@example.org"})
    _, reset_token = link_in((await mail_to(catcher, "cy@example.org", 2))[1])

    past = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=1)
    AccountLink.update(expires_at=past).where(
        AccountLink.token_hash == accounts.hash_token(verify_token)
    ).execute()
    assert (await api.post("/api/auth/verify", {"token": verify_token})).status == 404
    assert (await api.get(f"/account/verify/{verify_token}")).status == 404

    # The reset link's page takes the new password as a form post; it verifies the email too.
    short = await page_post(http_client, base_url, f"/account/reset/{reset_token}", "password=short")
    assert short.code == 422 and b"at least 8" in short.body
    done = await page_post(
        http_client, base_url, f"/account/reset/{reset_token}", "password=" + urllib.parse.quote("a new one!")
    )
    assert done.code == 303 and "petitions_session=" in done.headers["Set-Cookie"]
    login = await api.post("/api/auth/login", {"email": "cy@example.org", "password": "a new one!"})
    assert login.status == 200 and login.body["user"]["email_verified"] is True

    AccountLink.update(expires_at=past).execute()
    await api.post("/api/auth/password-reset", {"email": "cy@example.org"})
    _, late = link_in((await mail_to(catcher, "cy@example.org", 3))[1])
    AccountLink.update(expires_at=past).where(AccountLink.token_hash == accounts.hash_token(late)).execute()
    assert (
        await api.post("/api/auth/password-reset/confirm", {"token": late, "password": "too late now"})
    ).status == 404


class TestMailBombing:
    """Each reset request mails the address: limited per email and per client address."""

    @pytest.fixture
    def settings(self, settings):
        rates = dataclasses.replace(
            settings.rate_limits, account_mails_per_email=2, password_resets_per_address=4
        )
        return dataclasses.replace(settings, rate_limits=rates)

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=60)
    async def test_reset_requests_are_limited_per_email_and_per_address(self, api, make_admin, catcher):
        make_admin("victim@example.org")
        answers = [
            await api.post("/api/auth/password-reset", {"email": "victim@example.org"}) for _ in range(3)
        ]
        assert [a.status for a in answers] == [202, 202, 429]
        assert int(answers[2].headers["Retry-After"]) > 0
        # Registering with the address counts as mail to it too.
        assert (await api.post("/api/auth/register", register_body("victim@example.org"))).status == 429
        others = [
            await api.post("/api/auth/password-reset", {"email": f"o{n}@example.org"}) for n in range(3)
        ]
        assert [a.status for a in others] == [202, 202, 429], "the address's limit (4) counts every email"
        await asyncio.sleep(0.5)
        assert catcher.recipients() == ["victim@example.org"] * 2


class TestVerificationOff:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, verify_email="off")

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=60)
    async def test_registration_signs_in_at_once_as_before(self, api, catcher):
        registered = await api.post("/api/auth/register", register_body("dee@example.org"))
        assert registered.status == 201 and registered.body["token"]
        assert registered.body["user"]["email_verified"] is False
        taken = await api.post("/api/auth/register", register_body("dee@example.org"))
        assert taken.status == 409
        login = await api.post("/api/auth/login", {"email": "dee@example.org", "password": PASSWORD})
        assert login.status == 200
        await asyncio.sleep(0.3)
        assert catcher.messages == []


class TestNoMail:
    """``auto`` without an SMTP server: verification off."""

    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, smtp_url=None)

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test
    async def test_auto_without_smtp_registers_at_once(self, api):
        assert (await api.post("/api/auth/register", register_body("eve@example.org"))).status == 201


def test_on_without_smtp_is_refused_at_start(tmp_path):
    from tornado_petitions.server import make_app
    from tornado_petitions.settings import Settings

    with pytest.raises(ValueError, match="smtp"):
        make_app(Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}", verify_email="on"))


def test_the_flag_takes_auto_on_off_and_switch_words():
    from tornado_petitions import cli

    for text, expected in (
        ("auto", "auto"),
        ("1", "on"),
        ("true", "on"),
        ("ON", "on"),
        ("0", "off"),
        ("false", "off"),
    ):
        args = cli.build_parser().parse_args(["serve", "--verify-email", text])
        assert cli.settings_from_args(args).verify_email == expected
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--verify-email", "maybe"])


# The outbox as version 2 made it: every row about a petition, no lanes.
_OLD_OUTBOX = """CREATE TABLE "mail_outbox" ("id" INTEGER NOT NULL PRIMARY KEY, "change_key" VARCHAR(64) NOT NULL,
 "user_id" INTEGER NOT NULL, "petition_id" INTEGER NOT NULL, "kind" VARCHAR(16) NOT NULL,
 "title" VARCHAR(200) NOT NULL, "status" VARCHAR(16) NOT NULL, "note" TEXT, "milestone" VARCHAR(16),
 "state" VARCHAR(8) NOT NULL, "attempts" INTEGER NOT NULL, "next_attempt_at" DATETIME NOT NULL,
 "lease_owner" VARCHAR(32), "lease_until" DATETIME, "created_at" DATETIME NOT NULL, "sent_at" DATETIME,
 "error" TEXT, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE,
 FOREIGN KEY ("petition_id") REFERENCES "petition" ("id") ON DELETE CASCADE)"""


def test_an_older_database_keeps_its_accounts_verified_and_takes_account_mail(tmp_path):
    from tornado_petitions import account_links, mail_outbox
    from tornado_petitions.models import bind_database, close_database, open_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url)
    bind_database(db)
    db.execute_sql('ALTER TABLE "user" DROP COLUMN "email_verified"')
    db.execute_sql(
        'INSERT INTO "user" ("email", "name", "role", "password_hash", "created_at", "email_updates")'
        " VALUES ('old@example.org', 'Old', 'citizen', 'x', '2024-01-01', 1)"
    )
    db.execute_sql('DROP TABLE "mail_outbox"')
    db.execute_sql(_OLD_OUTBOX)
    close_database(db)

    db = open_database(url)
    bind_database(db)
    try:
        old = User.get(User.email == "old@example.org")
        assert old.email_verified is True
        with db.atomic():
            assert account_links.request_reset("old@example.org", 24)
        row = MailOutbox.get()
        assert row.petition_id is None and row.lane == mail_outbox.TRANSACTIONAL and row.secret
        assert "mail_outbox_lane_state_next_attempt_at" in {
            index.name for index in db.get_indexes("mail_outbox")
        }
    finally:
        close_database(db)
