"""What the browser tests share: Chromium, the service, page-error watching, sign-in helpers, screenshots.

The service they test is ``python -m tornado_petitions serve`` as a user runs
it: ``tests.live_server.LiveServer``, so a restart is a real SIGTERM and a real
start on the same port and database.  The fixtures here reach every test
module through ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "browser"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin password"
PASSWORD = "a long password"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium for one module's tests, never longer.

    While Playwright's sync API is started it leaves its own event loop marked
    as the thread's running loop between calls, so a non-browser test after it
    in the same process (an xdist worker runs many modules) could not run an
    event loop of its own: the browser stops with its module.
    """
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/install-test-deps.sh (make test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The worker's Chromium for one test; the contexts (cookies, storage, pages) it opened are closed after it."""
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture
def service(tmp_path) -> Iterator[LiveServer]:
    """The service with an admin account; rate limits generous (tests register hundreds of signers)."""
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS)
    server.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, name="Ada Admin", admin=True)
    server.start()
    yield server
    server.stop_cleanly()


class PageErrors:
    """Uncaught script errors of the pages under test: a test fails if any page threw.

    Every page's console errors and requests are kept too, for the tests that
    want none of the first and every one of the second to their own server.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self.requests: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(f"{page.url}: {message.text}") if message.type == "error" else None
            ),
        )
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda socket: self.requests.append(socket.url))
        # Anything the Content-Security-Policy blocked would be a broken page.
        page.on(
            "console",
            lambda message: (
                self.errors.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        return page


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    watcher = PageErrors()
    yield watcher
    assert watcher.errors == []


def open_page(browser: Browser, service: LiveServer, errors: PageErrors, path: str = "/", **options) -> Page:
    """A fresh browser context (no cookies) on ``path``, signed out and live on the public feed."""
    context = browser.new_context(viewport=options.pop("viewport", {"width": 1200, "height": 900}), **options)
    context.set_default_timeout(10_000)
    page = errors.watch(context.new_page())
    page.goto(service.url + path)
    expect(page.locator("#guest")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def fill_registration(page: Page, name: str, email: str) -> None:
    """Fill and send the registration form of the (open) sign-in dialog."""
    expect(page.locator("#signin")).to_be_visible()
    page.get_by_label("Your name").fill(name)
    page.locator("#register-email").fill(email)
    page.locator("#register-password").fill(PASSWORD)
    page.locator("#register-form").get_by_role("button", name="Create account").click()
    expect(page.locator("#account-name")).to_have_text(name)
    expect(page.locator("#signin")).to_be_hidden()


def register(page: Page, name: str, email: str) -> None:
    """Register from the header's "Create account" button; back on the page, live."""
    page.locator("#guest").get_by_role("button", name="Create account").click()
    fill_registration(page, name, email)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def sign_in(page: Page, email: str, password: str) -> None:
    """Sign in from the header's "Sign in" button; back on the page, live."""
    page.locator("#guest").get_by_role("button", name="Sign in").click()
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill(password)
    page.locator("#login-form").get_by_role("button", name="Sign in").click()
    expect(page.locator("#account")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def file_petition(page: Page, title: str, description: str) -> int:
    page.get_by_label("Title").fill(title)
    page.get_by_label("What should change, and why?").fill(description)
    page.get_by_role("button", name="File petition").click()
    card = page.locator("#mine-list .card", has_text=title)
    expect(card).to_be_visible()
    return int(card.get_attribute("data-petition-id"))


def card(page: Page, list_id: str, petition_id: int):
    return page.locator(f"#{list_id} [data-petition-id='{petition_id}']")


def screenshot(page: Page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=True)
