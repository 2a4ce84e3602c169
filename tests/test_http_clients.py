"""Ordinary Python HTTP clients against a real ``serve`` process, as a new user would write them.

A client that keeps cookies (``httpx.Client``) registers, signs in as
someone else, files, signs and signs out without an XSRF token; a browser
of another site cannot sign anyone in; a body of any size over the limit is
answered with the JSON 413 (never a reset), and the server goes on serving.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tornado_petitions.settings import Limits

LIMIT = Limits().body_bytes
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


def json_bearer(token: str) -> dict:
    """For a raw JSON body (``content=``), which httpx sends without a Content-Type."""
    return {**bearer(token), "Content-Type": "application/json"}


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


# -- bodies over the limit -------------------------------------------------------------


def petition_body(size: int) -> bytes:
    """A JSON petition of exactly ``size`` bytes."""
    head, tail = b'{"title": "Big one", "description": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert str(LIMIT) in error["message"]


@pytest.fixture(scope="module")
def ann_token(live) -> str:
    return live.register("big@clients.org", "Big", PASSWORD)["token"]


def still_serving(live: LiveServer) -> None:
    assert live.call("GET", "/healthz")[0] == 200


def test_a_body_at_the_limit_is_read(live, client, ann_token):
    response = client.post("/api/petitions", content=petition_body(LIMIT), headers=json_bearer(ann_token))
    assert response.status_code == 422, response.text  # read and parsed: the description is too long
    assert set(response.json()["error"]["fields"]) == {"description"}


@pytest.mark.parametrize("size", [LIMIT + 1, 2_000_000, 50_000_000], ids=["limit+1", "2MB", "50MB"])
def test_a_body_over_the_limit_with_content_length_is_the_json_413(live, client, ann_token, size):
    response = client.post("/api/petitions", content=petition_body(size), headers=json_bearer(ann_token))
    assert_413(response)
    assert response.headers["Connection"] == "close"
    still_serving(live)


def test_a_chunked_body_over_the_limit_is_the_json_413(live, client, ann_token):
    def chunks():
        yield b'{"title": "Chunked", "description": "'
        for _ in range(64):
            yield b"x" * 16384
        yield b'"}'

    response = client.post("/api/petitions", content=chunks(), headers=json_bearer(ann_token))
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert_413(response)
    still_serving(live)


def test_a_chunked_body_under_the_limit_is_read(live, client, ann_token):
    def chunks():
        yield b'{"title": "Chunked", '
        yield b'"description": "small"}'

    response = client.post("/api/petitions", content=chunks(), headers=json_bearer(ann_token))
    assert response.status_code == 201, response.text


def test_an_oversized_content_length_with_expect_100_continue_is_answered_without_the_body(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/petitions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"100" not in answer.split(b"\r\n")[0]
    assert b'"payload_too_large"' in answer
    still_serving(live)


def test_a_client_that_stops_sending_after_the_413_gets_it(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/petitions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\n\r\n" + b"x" * 100_000
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413 "), head
    still_serving(live)


# -- signatures --------------------------------------------------------------------------


def test_withdrawing_a_signature_never_made_is_409_not_signed(live, client, ann_token):
    filed = client.post(
        "/api/petitions", json={"title": "Never signed", "description": "Nobody."}, headers=bearer(ann_token)
    )
    path = f"/api/petitions/{filed.json()['petition_id']}/signatures"
    response = client.delete(path, headers=bearer(ann_token))
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "not_signed"
    assert client.delete("/api/petitions/999999/signatures", headers=bearer(ann_token)).status_code == 404
