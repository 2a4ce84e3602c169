"""Accounts over HTTP: register, login, logout, me, token expiry and revocation, stored secrets."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os

import argon2
import pytest

from tornado_petitions import accounts
from tornado_petitions.accounts import hash_token, verify_password
from tornado_petitions.models import AuthToken, User

# OWASP's argon2id parameters, as the stored hash says them.
ARGON2ID_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


@pytest.mark.gen_test
async def test_register_login_me_logout(api):
    registered = await api.register("Ann@Example.org", "Ann", "correct horse")
    assert registered["user"] == {
        "user_id": registered["user"]["user_id"],
        "email": "ann@example.org",
        "name": "Ann",
        "role": "citizen",
        "email_verified": False,
    }
    login = await api.post("/api/auth/login", {"email": "ann@example.org", "password": "correct horse"})
    assert login.status == 200
    token = login.body["token"]
    assert token != registered["token"]
    assert "petitions_session=" in login.headers.get("Set-Cookie")
    assert "HttpOnly" in login.headers.get("Set-Cookie")
    assert "SameSite=Lax" in login.headers.get("Set-Cookie")

    me = await api.get("/api/me", token)
    assert me.status == 200 and me.body["email"] == "ann@example.org"

    logout = await api.post("/api/auth/logout", token=token)
    assert logout.status == 204
    after = await api.get("/api/me", token)
    assert after.status == 401
    assert after.body["error"]["code"] == "invalid_token"
    # The other token of the same user still works: logout revokes one token.
    assert (await api.get("/api/me", registered["token"])).status == 200


@pytest.mark.gen_test
async def test_secrets_are_stored_hashed(api, app):
    registered = await api.register("bob@example.org", "Bob", "a long passphrase")
    user = User.get(User.email == "bob@example.org")
    assert "a long passphrase" not in user.password_hash
    assert user.password_hash.startswith(ARGON2ID_PREFIX)
    assert verify_password("a long passphrase", user.password_hash)
    assert not verify_password("a long passphrasE", user.password_hash)
    stored = [row.token_hash for row in AuthToken.select()]
    assert registered["token"] not in stored
    assert hash_token(registered["token"]) in stored


@pytest.mark.gen_test
async def test_wrong_password_and_unknown_email_look_the_same(api):
    await api.register("cat@example.org", "Cat", "right password")
    wrong = await api.post("/api/auth/login", {"email": "cat@example.org", "password": "wrong password"})
    unknown = await api.post("/api/auth/login", {"email": "nobody@example.org", "password": "whatever1"})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body


@pytest.mark.gen_test
async def test_duplicate_email_is_409(api):
    await api.register("dan@example.org")
    again = await api.post(
        "/api/auth/register", {"email": "DAN@example.org", "name": "D", "password": "12345678"}
    )
    assert again.status == 409
    assert again.body["error"]["code"] == "email_taken"


@pytest.mark.gen_test
async def test_register_names_every_invalid_field(api):
    response = await api.post("/api/auth/register", {"email": "no-at-sign", "name": "", "password": "short"})
    assert response.status == 422
    assert set(response.body["error"]["fields"]) == {"email", "name", "password"}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "password, message",
    [
        (" " * 8, "must not be only whitespace"),
        ("\t\n \r\f\v\t\n", "must not be only whitespace"),
        (" " * 3, "must be at least 8 characters"),
        ("seven77", "must be at least 8 characters"),
    ],
    ids=["eight-spaces", "ascii-whitespace", "three-spaces", "seven-characters"],
)
async def test_a_short_or_only_whitespace_password_is_422_naming_password(api, password, message):
    body = {"email": "fay@example.org", "name": "Fay", "password": password}
    response = await api.post("/api/auth/register", body)
    assert response.status == 422, response.body
    assert response.body["error"]["fields"] == {"password": message}


@pytest.mark.gen_test
async def test_a_password_is_kept_as_sent_spaces_and_all(api):
    await api.register("gil@example.org", password="  ab  cd  ")
    assert (
        await api.post("/api/auth/login", {"email": "gil@example.org", "password": "ab  cd"})
    ).status == 401
    signed_in = await api.post("/api/auth/login", {"email": "gil@example.org", "password": "  ab  cd  "})
    assert signed_in.status == 200


def scrypt_hash(password: str) -> str:
    """A hash as the service stored them before argon2id: ``scrypt$n$r$p$salt$key``."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "old_hash",
    [scrypt_hash, argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash],
    ids=["scrypt", "weaker-argon2id"],
)
async def test_an_older_hash_is_upgraded_at_the_next_sign_in(api, old_hash):
    accounts.create_user("hal@example.org", "Hal", old_hash("an old passphrase"))
    stored = User.get(User.email == "hal@example.org").password_hash
    assert not stored.startswith(ARGON2ID_PREFIX)
    wrong = await api.post("/api/auth/login", {"email": "hal@example.org", "password": "not it at all"})
    assert wrong.status == 401
    assert User.get(User.email == "hal@example.org").password_hash == stored  # a failure upgrades nothing
    body = {"email": "hal@example.org", "password": "an old passphrase"}
    assert (await api.post("/api/auth/login", body)).status == 200
    upgraded = User.get(User.email == "hal@example.org").password_hash
    assert upgraded.startswith(ARGON2ID_PREFIX)
    assert verify_password("an old passphrase", upgraded)
    assert (await api.post("/api/auth/login", body)).status == 200
    assert User.get(User.email == "hal@example.org").password_hash == upgraded  # upgraded once


@pytest.mark.gen_test
async def test_missing_and_bad_tokens_are_401(api):
    assert (await api.get("/api/me")).status == 401
    assert (await api.get("/api/me", "not-a-real-token")).status == 401
    basic = await api.call("GET", "/api/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status == 401
    assert basic.body["error"]["code"] == "unauthorized"


class TestExpiry:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, token_ttl_seconds=0.5)

    @pytest.mark.gen_test
    async def test_expired_token_is_401(self, api):
        registered = await api.register("eve@example.org")
        assert (await api.get("/api/me", registered["token"])).status == 200  # now in the token cache
        await asyncio.sleep(0.6)
        expired = await api.get("/api/me", registered["token"])
        assert expired.status == 401
        assert expired.body["error"]["code"] == "token_expired"
