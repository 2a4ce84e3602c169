"""Odd requests: every strange path or method is a 4xx (JSON, or the HTML page on page routes), never a 500,
and no log line — Tornado's own warnings included — carries a ``token=`` value or a mailed link's token.

The server is a real ``serve`` process at ``--log-level debug``; its whole stderr is searched.
"""

from __future__ import annotations

import http.client
import json

import pytest

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

QUERY_SECRET = "c2VjcmV0LXF1ZXJ5LXRva2Vu"
LINK_SECRET = "bGluay10b2tlbi1zZWNyZXQ"
LONG = "a" * 4000

# Paths under each prefix the service serves, with what would trip a naive handler.
ODD_PATHS = [
    "/static/%00",
    "/static/app.js%00",
    "/static/%ff",
    "/static/..%2fserver.py",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/../server.py",
    "/static/a%2fb",
    "/static/",
    "/static/" + LONG,
    "/api/%00",
    "/api/petitions/%00",
    "/api/petitions/%ff",
    "/api/petitions/1%2f2",
    "/api/petitions/99999999999999999999",
    "/api/petitions/1/../../me",
    "/api/petitions?limit=%ff",
    "/api/" + LONG,
    "/petitions/%00",
    "/petitions/%ff",
    "/petitions/..%2f",
    "/petitions/99999999999999999999",
    "/petitions/" + "%ff" * 1000,
    "/ws/petitions",
    "/ws/petitions/%00",
    "/ws/petitions/my/%ff",
    "/ws/admin/" + LONG,
    "/unsubscribe/1/%ff",
    "/%ff",
]
ODD_METHODS = ["FOO", "OPTIONS", "TRACE", "PROPFIND"]
METHOD_PATHS = ["/static/app.js", "/api/petitions", "/petitions/1", "/ws/petitions", "/", "/unsubscribe/1/x"]


def is_page(path: str) -> bool:
    """Page routes answer people with the HTML error page; everything else answers with JSON."""
    bare = path.split("?")[0]
    return bare == "/" or bare.startswith("/petitions/")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("odd"), *GENEROUS_RATE_FLAGS, "--log-level", "debug")
    server.start()
    yield server
    server.stop()


def raw_request(live: LiveServer, method: str, path: str) -> tuple[int, str, bytes, str | None]:
    """(status, Content-Type, body, Allow) of one request sent exactly as given (no client-side quoting)."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        content_type, allow = response.getheader("Content-Type", ""), response.getheader("Allow")
        return response.status, content_type, response.read(), allow
    finally:
        connection.close()


def assert_clean_refusal(method: str, path: str, status: int, content_type: str, body: bytes) -> None:
    assert 400 <= status < 500, (method, path, status, body[:200])
    if is_page(path):
        assert content_type.startswith("text/html"), (method, path, status, content_type)
        return
    assert content_type.startswith("application/json"), (method, path, status, content_type, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] and error["message"], (method, path, error)


@pytest.mark.parametrize("path", ODD_PATHS)
def test_an_odd_path_is_a_4xx_with_a_json_error_or_the_html_page(live, path):
    target = f"{path}{'&' if '?' in path else '?'}token={QUERY_SECRET}"
    status, content_type, body, _ = raw_request(live, "GET", target)
    assert_clean_refusal("GET", path, status, content_type, body)


@pytest.mark.parametrize("method", ODD_METHODS)
@pytest.mark.parametrize("path", METHOD_PATHS)
def test_an_odd_method_is_a_405_with_allow(live, method, path):
    status, content_type, body, allow = raw_request(live, method, f"{path}?token={QUERY_SECRET}")
    assert status == 405, (method, path, status, body[:200])
    assert allow and "GET" in allow and method not in allow, (method, path, allow)
    assert_clean_refusal(method, path, status, content_type, body)


def test_no_log_line_carries_a_query_token_or_a_link_token(live):
    link_paths = [
        f"/unsubscribe/1/{LINK_SECRET}",
        f"/signatures/confirm/{LINK_SECRET}",
        f"/account/verify/{LINK_SECRET}",
        f"/account/reset/{LINK_SECRET}",
    ]
    for path in link_paths:
        raw_request(live, "GET", f"{path}?token={QUERY_SECRET}")
        assert raw_request(live, "FOO", path)[0] == 405
    # Tornado writes its own warning lines for these, with the request line.
    for path in ("/static/%00", "/static/%ff", "/static/..%2fserver.py", "/petitions/%ff"):
        raw_request(live, "GET", f"{path}?token={QUERY_SECRET}&since=1")
    log = live.stop_cleanly()
    assert "WARNING tornado.general: 400 GET /static/%ff" in log, log  # Tornado's lines are searched too
    assert "FOO /unsubscribe/1/*** 405" in log, log
    assert "GET /account/reset/*** 404" in log, log
    assert "GET /signatures/confirm/*** 404" in log, log
    assert QUERY_SECRET not in log, log
    assert LINK_SECRET not in log, log
    assert "token=" not in log, log
    assert "Traceback" not in log and " ERROR " not in log, log
