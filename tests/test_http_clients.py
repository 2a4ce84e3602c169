"""Ordinary Python HTTP clients against a real ``serve`` process, as a new user would write them.

A client that keeps cookies (``httpx.Client``) registers, signs in as
someone else, files, signs and signs out without an XSRF token; a browser
of another site cannot sign anyone in; a body of any size over the limit is
answered with the JSON 413 (never a reset), and the server goes on serving.
"""

from __future__ import annotations

import httpx
import pytest

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("clients"), *GENEROUS_RATE_FLAGS).start()
    yield server
    log = server.stop_cleanly()
    assert "Traceback" not in log, log


@pytest.fixture
def client(live):
    with httpx.Client(base_url=live.url, timeout=30) as session:
        yield session


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_cookie_keeping_client_registers_signs_in_again_files_signs_and_signs_out(client):
    ann = client.post(
        "/api/auth/register", json={"email": "ann@clients.org", "name": "Ann", "password": PASSWORD}
    )
    assert ann.status_code == 201, ann.text
    assert "petitions_session" in client.cookies
    # A second registration and two sign-ins, each with the previous session cookie in the jar.
    bob = client.post(
        "/api/auth/register", json={"email": "bob@clients.org", "name": "Bob", "password": PASSWORD}
    )
    assert bob.status_code == 201, bob.text
    again = client.post("/api/auth/login", json={"email": "ann@clients.org", "password": PASSWORD})
    assert again.status_code == 200, again.text
    assert (
        client.post("/api/auth/login", json={"email": "bob@clients.org", "password": PASSWORD}).status_code
        == 200
    )
    token = again.json()["token"]
    # Bearer calls that also carry a (now someone else's) session cookie.
    filed = client.post(
        "/api/petitions", json={"title": "Cookie jars", "description": "They work."}, headers=bearer(token)
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["author"]["name"] == "Ann"
    path = f"/api/petitions/{filed.json()['petition_id']}/signatures"
    signed = client.post(path, headers=bearer(token))
    assert signed.status_code == 201, signed.text
    assert signed.json()["signature_count"] == 1
    assert client.get("/api/me", headers=bearer(token)).json()["email"] == "ann@clients.org"
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_a_cookie_alone_cannot_write_and_the_refusal_says_what_to_send(client):
    body = {"email": "cara@clients.org", "name": "Cara", "password": PASSWORD}
    assert client.post("/api/auth/register", json=body).status_code == 201
    refused = client.post("/api/petitions", json={"title": "No token", "description": "Only a cookie."})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "xsrf_failed"
    assert "X-XSRFToken" in error["message"] and "Authorization: Bearer" in error["message"]
    # Reading with the cookie alone is fine: the page does it.
    assert client.get("/api/me").json()["email"] == "cara@clients.org"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["origin", "null-origin", "sec-fetch-cross-site", "sec-fetch-same-site"],
)
@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register"])
def test_sign_in_from_another_site_is_refused_saying_what_to_send(live, path, headers):
    body = {"email": "dan@clients.org", "name": "Dan", "password": PASSWORD}
    with httpx.Client(base_url=live.url) as browser:
        response = browser.post(path, json=body, headers=headers)
    assert response.status_code == 403, response.text
    assert "Set-Cookie" not in response.headers
    error = response.json()["error"]
    assert error["code"] == "cross_site_sign_in"
    assert "Authorization: Bearer" in error["message"]


def test_sign_in_from_this_site_is_accepted(live):
    live.register("erin@clients.org", "Erin", PASSWORD)
    own = {"Origin": live.url, "Sec-Fetch-Site": "same-origin"}
    with httpx.Client(base_url=live.url) as browser:
        body = {"email": "erin@clients.org", "password": PASSWORD}
        assert browser.post("/api/auth/login", json=body, headers=own).status_code == 200
        typed = {"Sec-Fetch-Site": "none"}
        assert browser.post("/api/auth/login", json=body, headers=typed).status_code == 200
