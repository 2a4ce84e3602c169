"""Logs: one access line per request, one line per socket open and close, and never a token or password.

The server is a real ``serve`` process at ``--log-level debug`` (the most it
ever writes); its whole stderr is searched for every secret the test used.
"""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

PASSWORD = "hunter2-correct-horse"
WRONG_PASSWORD = "wrong-battery-staple"
UNKNOWN_USER_PASSWORD = "nobody-knows-this-one"
MALFORMED_BODY_PASSWORD = "half-sent-secret-password"
BOGUS_TOKEN = "bogus-token-c2VjcmV0LXRva2Vu"


@pytest.fixture
def live(tmp_path):
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS, "--log-level", "debug").start()
    yield server
    server.stop()


def ws_open(live: LiveServer, path: str, headers: dict | None = None):
    return connect(live.ws_url + path, additional_headers=headers or {}, open_timeout=5, close_timeout=2)


def exercise(live: LiveServer) -> tuple[list[str], dict]:
    """Everything that handles a secret, successful and not; returns (secrets, facts for assertions)."""
    ann = live.register("ann@example.org", "Ann", PASSWORD)
    ann_id = ann["user"]["user_id"]
    assert (
        live.call("POST", "/api/auth/login", {"email": "ann@example.org", "password": WRONG_PASSWORD})[0]
        == 401
    )
    unknown = {"email": "nobody@example.org", "password": UNKNOWN_USER_PASSWORD}
    assert live.call("POST", "/api/auth/login", unknown)[0] == 401
    second = live.sign_in("ann@example.org", PASSWORD)["token"]
    malformed = ('{"email": "bob@example.org", "password": "%s' % MALFORMED_BODY_PASSWORD).encode()
    assert live.call("POST", "/api/auth/register", raw=malformed)[0] == 400

    # Tokens in query strings: answered, and logged by path only.
    assert live.call("GET", f"/api/me?token={ann['token']}", token=ann["token"])[0] == 200
    assert live.call("GET", f"/api/me?token={BOGUS_TOKEN}", token=BOGUS_TOKEN)[0] == 401
    # Tornado logs its own 400s and XSRF 403s with the request line: the query must not be in it.
    assert live.call("GET", f"/api/petitions?token={second}&q=%ff")[0] == 400
    cookie = {"Cookie": f"petitions_session={second}"}
    status, body, _ = live.call("POST", f"/api/petitions?token={second}", {"title": "abc"}, headers=cookie)
    assert status == 403 and body["error"]["code"] == "xsrf_failed", body

    # WebSocket handshakes with ?token=: accepted, refused 401 and 403, and a header token.
    with ws_open(live, f"/ws/petitions?token={ann['token']}") as public:
        assert '"hello"' in public.recv(timeout=5)
    with ws_open(live, f"/ws/petitions/my/{ann_id}?token={second}&since=%ff") as mine:
        assert '"update"' in mine.recv(timeout=5)
    with ws_open(live, "/ws/petitions", {"Authorization": f"Bearer {second}"}) as feed:
        assert '"hello"' in feed.recv(timeout=5)
    for path, status in ((f"/ws/petitions?token={BOGUS_TOKEN}", 401), (f"/ws/admin?token={second}", 403)):
        with pytest.raises(InvalidStatus) as refused:
            ws_open(live, path)
        assert refused.value.response.status_code == status
    assert live.call("POST", "/api/auth/logout", token=second)[0] == 204
    return [
        PASSWORD,
        WRONG_PASSWORD,
        UNKNOWN_USER_PASSWORD,
        MALFORMED_BODY_PASSWORD,
        BOGUS_TOKEN,
        ann["token"],
        second,
    ], {"ann_id": ann_id}


def test_no_token_or_password_ever_reaches_the_log(live):
    secrets, _ = exercise(live)
    log = live.stop_cleanly()
    assert "GET /api/me 200" in log, log  # the log was written, and at debug level
    for secret in secrets:
        assert secret not in log, f"{secret!r} appears in the log:\n{log}"
    assert "token=" not in log, log
    assert "?" not in "".join(re.findall(r"(?:GET|POST|PATCH|DELETE) \S+", log)), log


def test_one_access_line_per_request_and_one_line_per_socket_open_and_close(live):
    _, facts = exercise(live)
    log = live.stop_cleanly()
    access = [line for line in log.splitlines() if "tornado_petitions.access" in line]
    # method, path without query, status, time, user id (or "-" when anonymous)
    pattern = re.compile(r"(GET|POST|PATCH|DELETE) (/\S*) (\d{3}) \d+\.\dms user=(\S+) ip=")
    parsed = [pattern.search(line) for line in access]
    assert all(parsed), access
    lines = {(m[1], m[2], m[3], m[4]) for m in parsed}
    ann = str(facts["ann_id"])
    assert ("POST", "/api/auth/register", "201", ann) in lines  # the new user, once signed in
    assert ("POST", "/api/auth/login", "401", "-") in lines
    assert ("GET", "/api/me", "200", ann) in lines
    assert ("GET", "/api/me", "401", "-") in lines
    assert ("POST", "/api/auth/logout", "204", ann) in lines
    assert ("GET", "/ws/petitions", "101", ann) in lines
    assert ("GET", "/ws/petitions", "401", "-") in lines
    assert ("GET", "/ws/admin", "403", ann) in lines
    opens = re.findall(r"socket open channel=(\w+) user=(\d+)", log)
    closes = re.findall(r"socket close channel=(\w+) user=(\d+) code=(\S+)", log)
    assert sorted(opens) == sorted([("public", ann), ("user", ann), ("public", ann)]), log
    assert sorted((channel, user) for channel, user, _ in closes) == sorted(opens), log
    assert {code for _, _, code in closes} <= {"1000", "1005"}, closes
