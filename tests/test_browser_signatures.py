"""Signing with an email in real Chromium: the form beside sign-in, the mailed link's page, the count going live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import PASSWORD, open_page
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

PUBLIC_URL_PATTERN = re.compile(r"(http://127\.0\.0\.1:[0-9]+/signatures/confirm/[0-9A-Za-z]+)")


@pytest.fixture
def service(tmp_path, catcher):
    """The service sending mail, its links pointing at itself."""
    server = LiveServer(
        tmp_path,
        *GENEROUS_RATE_FLAGS,
        f"--smtp-url={catcher.url}",
        "--verify-email=off",
        "--mail-per-second=100",
    )
    server.flags += (f"--public-url={server.url}",)
    server.start()
    yield server
    server.stop_cleanly()


def test_a_visitor_signs_with_an_email_and_the_count_moves_once_confirmed(
    browser, service, catcher, page_errors
):
    author = service.call(
        "POST", "/api/auth/register", {"email": "a@example.org", "name": "Alex", "password": PASSWORD}
    )[1]["token"]
    petition = service.call(
        "POST", "/api/petitions", {"title": "Trees on Oak Road", "description": "x"}, author
    )[1]
    page = open_page(browser, service, page_errors, f"/petitions/{petition['petition_id']}")

    page.get_by_role("button", name="Sign this petition").click()
    form = page.locator("#sign-email-form")
    expect(form).to_be_visible()
    expect(form.get_by_role("button", name="Sign in instead")).to_be_visible()
    form.get_by_label("Name").fill("Sam Signer")
    form.get_by_label("Email").fill("sam@example.org")
    form.get_by_label(re.compile("^Country")).fill("gb")
    form.get_by_role("button", name="Email me the link").click()
    expect(page.locator("#sign-message")).to_contain_text("Check your email")
    expect(page.locator("#petition-count")).to_have_text("0")

    [(_, message)] = catcher.wait_sync(1, 20.0)
    link = PUBLIC_URL_PATTERN.search(message.get_content()).group(1)
    confirm = page.context.new_page()
    confirm.goto(link)
    expect(confirm.get_by_role("heading", name="Confirm your signature")).to_be_visible()
    confirm.get_by_role("button", name="Confirm my signature").click()
    expect(confirm.get_by_role("heading", name="Your signature counts")).to_be_visible()

    # The petition's page, still open, is live: the count and the country move.
    expect(page.locator("#petition-count")).to_have_text("1")
    page.reload()
    expect(page.locator("#by-country")).to_have_text("GB: 1")
