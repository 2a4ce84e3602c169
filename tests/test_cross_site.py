"""Cross-site writes: what a page of another site (or a sibling subdomain that plants cookies) can forge.

A form post carries cookies, a query string and a ``text/plain`` or
urlencoded body, but no custom header and no ``application/json``: each
layer refuses it on its own (XSRF token from the header only, 415 for a
body that is not JSON, the ``Origin`` check on cookie-authenticated writes).
Bearer clients are not affected by any of them.
"""

from __future__ import annotations

import dataclasses
import json
from http.cookies import SimpleCookie

import pytest


@pytest.fixture
def db_backend() -> str:
    """Nothing here depends on the database: SQLite alone is enough."""
    return "sqlite"


PETITION = {"title": "Forged or not", "description": "Who sent this?"}
FOREIGN = "https://evil.example"


async def session(api, email: str = "ann@example.org") -> tuple[str, str]:
    """A signed-in session: (its token, a Cookie header carrying it and an ``_xsrf=abc`` cookie)."""
    token = (await api.register(email))["token"]
    return token, f"petitions_session={token}; _xsrf=abc"


async def filed(api) -> list[str]:
    return [p["title"] for p in (await api.get("/api/petitions")).body["petitions"]]


@pytest.mark.gen_test
async def test_the_reported_forgery_is_refused_and_files_nothing(api):
    _, cookie = await session(api)
    response = await api.call(
        "POST",
        "/api/petitions?_xsrf=abc",
        raw=json.dumps(PETITION).encode(),
        headers={"Cookie": cookie, "Content-Type": "text/plain", "Origin": FOREIGN},
    )
    assert response.status == 403, response.body
    assert await filed(api) == []


@pytest.mark.gen_test
async def test_the_xsrf_token_in_the_query_string_or_a_form_body_is_not_read(api):
    _, cookie = await session(api)
    from_query = await api.call("POST", "/api/petitions?_xsrf=abc", PETITION, headers={"Cookie": cookie})
    assert from_query.status == 403, from_query.body
    assert from_query.body["error"]["code"] == "xsrf_failed"
    assert "X-XSRFToken" in from_query.body["error"]["message"]
    from_form = await api.call(
        "POST",
        "/api/auth/logout",
        raw=b"_xsrf=abc",
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert from_form.status == 403, from_form.body
    assert from_form.body["error"]["code"] == "xsrf_failed"
    # The header is what counts: the same request with it is the page's own.
    own = await api.call("POST", "/api/petitions", PETITION, headers={"Cookie": cookie, "X-XSRFToken": "abc"})
    assert own.status == 201, own.body
    assert await filed(api) == [PETITION["title"]]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", ""], ids=["text", "form", "none"]
)
async def test_a_body_that_is_not_json_is_415_even_with_a_bearer_token(api, content_type):
    token, _ = await session(api)
    headers = {"Content-Type": content_type}
    response = await api.call(
        "POST", "/api/petitions", raw=json.dumps(PETITION).encode(), token=token, headers=headers
    )
    assert response.status == 415, response.body
    assert response.body["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.body["error"]["message"]
    patch = await api.call("PATCH", "/api/me", raw=b'{"email_updates": false}', token=token, headers=headers)
    assert patch.status == 415, patch.body
    assert await filed(api) == []
    # Parameters and case do not matter; a bodiless DELETE needs no Content-Type.
    ok = await api.call(
        "POST",
        "/api/petitions",
        PETITION,
        token=token,
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert ok.status == 201, ok.body
    path = f"/api/petitions/{ok.body['petition_id']}/signatures"
    assert (await api.call("POST", path, token=token, headers={"Content-Type": ""})).status == 201
    assert (await api.call("DELETE", path, token=token, headers={"Content-Type": ""})).status == 200


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "https://sub.localhost"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["origin", "sibling-origin", "null-origin", "sec-fetch-cross-site", "sec-fetch-same-site"],
)
async def test_a_cookie_write_from_another_site_is_refused_even_with_a_matching_token(api, headers):
    # A sibling subdomain can plant ``_xsrf=abc``; the header itself needs a CORS preflight no one answers.
    _, cookie = await session(api)
    forged = {"Cookie": cookie, "X-XSRFToken": "abc", **headers}
    response = await api.call("POST", "/api/petitions", PETITION, headers=forged)
    assert response.status == 403, response.body
    assert response.body["error"]["code"] == "cross_site_write"
    assert "Authorization: Bearer" in response.body["error"]["message"]
    assert await filed(api) == []


@pytest.mark.gen_test
async def test_this_sites_page_and_bearer_clients_anywhere_may_write(api, base_url):
    token, cookie = await session(api)
    own = {"Cookie": cookie, "X-XSRFToken": "abc", "Origin": base_url, "Sec-Fetch-Site": "same-origin"}
    assert (await api.call("POST", "/api/petitions", PETITION, headers=own)).status == 201
    # A Bearer token cannot be forged by another site, so its Origin does not matter.
    bearer = await api.call("POST", "/api/petitions", PETITION, token=token, headers={"Origin": FOREIGN})
    assert bearer.status == 201, bearer.body


class TestBehindAProxy:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, public_url="https://petitions.example/")

    @pytest.mark.gen_test
    async def test_the_public_url_is_this_site_whatever_the_host_header(self, api):
        _, cookie = await session(api)
        own = {"Cookie": cookie, "X-XSRFToken": "abc", "Origin": "https://petitions.example"}
        assert (await api.call("POST", "/api/petitions", PETITION, headers=own)).status == 201
        sibling = {**own, "Origin": "https://evil.petitions.example"}
        refused = await api.call("POST", "/api/petitions", PETITION, headers=sibling)
        assert refused.status == 403 and refused.body["error"]["code"] == "cross_site_write"


def cookie_attributes(response, name: str) -> dict[str, str | bool]:
    for header in response.headers.get_list("Set-Cookie"):
        cookie = SimpleCookie(header)
        if name in cookie:
            morsel = cookie[name]
            return {key: morsel[key] for key in ("samesite", "secure", "httponly") if morsel[key]}
    raise AssertionError(f"no {name} cookie set")


@pytest.mark.gen_test
async def test_the_xsrf_cookie_is_same_site_lax(api):
    page = await api.get("/")
    assert page.status == 200
    assert cookie_attributes(page, "_xsrf") == {"samesite": "Lax"}


class TestBehindHttps:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, xheaders=True)

    @pytest.mark.gen_test
    async def test_cookies_are_secure_when_the_request_came_over_https(self, api):
        https = {"X-Forwarded-Proto": "https"}
        page = await api.call("GET", "/", headers=https)
        assert cookie_attributes(page, "_xsrf") == {"samesite": "Lax", "secure": True}
        body = {"email": "ivy@example.org", "name": "Ivy", "password": "correct horse"}
        registered = await api.call("POST", "/api/auth/register", body, headers=https)
        attributes = cookie_attributes(registered, "petitions_session")
        assert attributes == {"samesite": "Lax", "secure": True, "httponly": True}
        # Over plain HTTP (without --secure-cookies) a Secure cookie would never come back.
        assert cookie_attributes(await api.get("/"), "_xsrf") == {"samesite": "Lax"}


class TestSecureCookies:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, secure_cookies=True)

    @pytest.mark.gen_test
    async def test_secure_cookies_marks_both_cookies_secure(self, api):
        assert cookie_attributes(await api.get("/"), "_xsrf") == {"samesite": "Lax", "secure": True}
        body = {"email": "jo@example.org", "name": "Jo", "password": "correct horse"}
        registered = await api.post("/api/auth/register", body)
        assert cookie_attributes(registered, "petitions_session")["secure"] is True
