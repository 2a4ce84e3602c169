"""Email addresses through the API: what a mail header could not carry is 422, the stored form signs in."""

from __future__ import annotations

import dataclasses
import io

import pytest

from tornado_petitions import accounts, cli
from tornado_petitions.models import User

REFUSED = [
    "crlf@example.org\r\nBcc: x@evil.example",
    "crlf@example.org\nBcc: x@evil.example",
    "bob smith@example.org",
    "bob@exam ple.org",
    "\u00fclrich@example.org",  # a local part that is not ASCII (see tornado_petitions/addresses.py)
    "Ann <ann@example.org>",
    '"quoted"@example.org',
    "ann@localhost",
    "ann@example.test",
    "ann@[192.0.2.1]",
    "ann@example.org\u202e",
    "ann@exa\u200bmple.org",
    "ann..lee@example.org",
    "ann@example..org",
    "a@b@example.org",
]


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=30)
async def test_register_refuses_an_address_a_mail_header_could_not_carry(api):
    for email in REFUSED:
        answer = await api.post("/api/auth/register", {"email": email, "name": "N", "password": "12345678"})
        assert answer.status == 422, (email, answer.body)
        assert answer.body["error"]["code"] == "invalid_fields"
        assert set(answer.body["error"]["fields"]) == {"email"}, (email, answer.body)
        assert answer.body["error"]["fields"]["email"].startswith("must be an email address: ")
    assert User.select().count() == 0


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=30)
async def test_the_normalized_address_is_stored_and_every_way_of_writing_it_signs_in(api):
    registered = await api.register("  Ann@B\u00fccher.EXAMPLE\r\n", "Ann", "correct horse")
    assert registered["user"]["email"] == "ann@xn--bcher-kva.example"
    for typed in ("ann@xn--bcher-kva.example", "ANN@b\u00fccher.example", " ann@B\u00dcCHER.example "):
        login = await api.post("/api/auth/login", {"email": typed, "password": "correct horse"})
        assert login.status == 200, (typed, login.body)
        assert login.body["user"]["user_id"] == registered["user"]["user_id"]
    again = await api.post(
        "/api/auth/register", {"email": "ann@xn--BCHER-kva.example", "name": "A", "password": "12345678"}
    )
    assert again.status == 409 and again.body["error"]["code"] == "email_taken"


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.gen_test(timeout=30)
async def test_an_account_stored_before_addresses_were_normalized_still_signs_in(api):
    # An older version stored the address lowercased as typed: a Unicode domain stayed Unicode.
    old = User.create(
        email="old@b\u00fccher.example", name="Old", password_hash=accounts.hash_password("correct horse")
    )
    for typed in ("old@b\u00fccher.example", "Old@B\u00fccher.Example"):
        login = await api.post("/api/auth/login", {"email": typed, "password": "correct horse"})
        assert login.status == 200, (typed, login.body)
        assert login.body["user"]["user_id"] == old.id
    # One with an address that is no longer taken can still sign in with what it registered.
    spaced = User.create(
        email="bob smith@example.org", name="Bob", password_hash=accounts.hash_password("correct horse")
    )
    login = await api.post("/api/auth/login", {"email": "bob smith@example.org", "password": "correct horse"})
    assert login.status == 200 and login.body["user"]["user_id"] == spaced.id


def test_create_user_refuses_a_bad_address_and_stores_the_normalized_one(tmp_path, monkeypatch, capsys):
    db = f"sqlite:///{tmp_path / 'petitions.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("admin password\n"))
    assert (
        cli.main(
            ["create-user", "--email", "admin@example.org\r\nBcc: x@evil.example", "--name", "A", "--db", db]
        )
        == 2
    )
    assert "--email: " in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("admin password\n"))
    assert cli.main(["create-user", "--email", "Admin@B\u00fccher.example", "--name", "A", "--db", db]) == 0
    assert "created citizen admin@xn--bcher-kva.example" in capsys.readouterr().out


class TestSignInLimit:
    """Sign-in failures are limited per (account, client address): one account however it is written."""

    @pytest.fixture
    def settings(self, settings):
        rates = dataclasses.replace(settings.rate_limits, login_per_email=3)
        return dataclasses.replace(settings, rate_limits=rates)

    @pytest.mark.parametrize("db_backend", ["sqlite"])
    @pytest.mark.gen_test(timeout=30)
    async def test_every_way_of_writing_an_address_shares_one_allowance_of_failures(self, api):
        await api.register("ann@b\u00fccher.example", "Ann", "correct horse")
        spellings = ["ann@b\u00fccher.example", "ann@xn--bcher-kva.example", "ANN@B\u00dcCHER.EXAMPLE"]
        for typed in spellings:
            answer = await api.post("/api/auth/login", {"email": typed, "password": "wrong password"})
            assert answer.status == 401, (typed, answer.body)
        answer = await api.post(
            "/api/auth/login", {"email": "Ann@XN--BCHER-KVA.example", "password": "wrong"}
        )
        assert answer.status == 429, answer.body
