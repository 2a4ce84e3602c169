"""Absolute URLs the service writes start with ``--public-url``, never with the request's ``Host`` header.

(Mail links are built from the same ``Settings.public_base_url``: tests/test_mail.py checks them.)
"""

from __future__ import annotations

import dataclasses
import re

import pytest

PUBLIC_URL = "https://petitions.example.org"
SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.fixture
def public_url() -> str | None:
    return None


@pytest.fixture
def settings(settings, public_url):
    return dataclasses.replace(settings, public_url=public_url)


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize("public_url", [None, PUBLIC_URL + "/"])
@pytest.mark.gen_test(timeout=30)
async def test_open_graph_url_is_the_public_url_whatever_the_host_header(api, app, public_url):
    ann = await api.register("ann@example.org")
    petition = await api.file_petition(ann["token"], "Fix the streetlight")
    page = await api.call("GET", f"/petitions/{petition['petition_id']}", headers=SPOOFED)
    assert page.status == 200, page
    assert "evil.example" not in page.body
    match = re.search(r'<meta property="og:url" content="([^"]*)">', page.body)
    assert match, page.body
    base = PUBLIC_URL if public_url else f"http://localhost:{app.config.port}"
    assert match[1] == f"{base}/petitions/{petition['petition_id']}"
