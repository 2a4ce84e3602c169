"""Email verification and password reset in real Chromium, with the links the real SMTP catcher received."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser import PASSWORD, open_page
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tests.smtp_catcher import SmtpCatcher

LINK = re.compile(r"http://localhost:[0-9]+(/account/(?:verify|reset)/[0-9A-Za-z_-]+)")


@pytest.fixture
def catcher() -> Iterator[SmtpCatcher]:
    server = SmtpCatcher().start()
    yield server
    server.stop()


@pytest.fixture
def service(tmp_path, catcher) -> Iterator[LiveServer]:
    """The service sending mail, so new accounts verify their email (``--verify-email auto``)."""
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS, "--smtp-url", catcher.url, "--mail-per-second", "100")
    server.start()
    yield server
    server.stop_cleanly()


def mailed_path(catcher: SmtpCatcher, count: int) -> str:
    """The path of the link in the ``count``-th mail (the server's public URL is localhost)."""
    messages = catcher.wait_sync(count, timeout=15)
    assert len(messages) >= count, catcher.recipients()
    found = LINK.findall(messages[count - 1][1].get_content())
    assert len(found) == 1
    return urlsplit(found[0]).path


def test_register_then_the_mailed_link_verifies_and_signs_in(browser, service, catcher, page_errors):
    page = open_page(browser, service, page_errors)
    page.locator("#guest").get_by_role("button", name="Create account").click()
    page.get_by_label("Your name").fill("Carla Citizen")
    page.locator("#register-email").fill("carla@example.org")
    page.locator("#register-password").fill(PASSWORD)
    page.locator("#register-form").get_by_role("button", name="Create account").click()
    expect(page.locator("#register-sent")).to_contain_text("Check your email")
    expect(page.locator("#guest")).to_be_visible()  # not signed in yet

    # Signing in before verifying says what to do.
    page.locator("#login-email").fill("carla@example.org")
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-form").get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-form [data-error-for='form']")).to_contain_text("verify")

    page.goto(service.url + mailed_path(catcher, 1))
    expect(page.get_by_role("heading", name="Verify your email")).to_be_visible()
    page.get_by_role("button", name="Verify my email and sign in").click()
    page.wait_for_url(service.url + "/")
    expect(page.locator("#account-name")).to_have_text("Carla Citizen")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def test_forgot_password_mails_a_link_whose_page_sets_a_new_one(browser, service, catcher, page_errors):
    service.create_user("dan@example.org", "old password", name="Dan")
    page = open_page(browser, service, page_errors)
    page.locator("#guest").get_by_role("button", name="Sign in").click()
    page.locator("#login-email").fill("dan@example.org")
    page.get_by_role("button", name="Forgot your password?").click()
    expect(page.locator("#login-sent")).to_contain_text("we sent it a link")

    page.goto(service.url + mailed_path(catcher, 1))
    page.get_by_role("textbox", name="New password").fill("short")
    page.get_by_role("button", name="Set the password and sign in").click()
    expect(page.locator("#reset-error")).to_contain_text("at least 8")
    page.get_by_role("textbox", name="New password").fill("a brand new password")
    page.get_by_role("button", name="Set the password and sign in").click()
    page.wait_for_url(service.url + "/")
    expect(page.locator("#account-name")).to_have_text("Dan")
    assert service.sign_in("dan@example.org", "a brand new password")["user"]["email_verified"] is True
