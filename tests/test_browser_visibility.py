"""Pre-moderation and hiding in real Chromium: what a signed-out page shows, live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, card, open_page, register, screenshot
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer


@pytest.fixture
def service(tmp_path) -> Iterator[LiveServer]:
    """The service with ``--premoderation`` and an admin account."""
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS, "--premoderation")
    server.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, name="Ada Admin", admin=True)
    server.start()
    yield server
    server.stop_cleanly()


def test_a_petition_reaches_a_signed_out_page_only_once_a_moderator_publishes_it(
    browser, service, page_errors
):
    token = service.call(
        "POST", "/api/auth/register", {"email": "c@example.org", "name": "Carla", "password": PASSWORD}
    )[1]["token"]
    status, shown, _ = service.call(
        "POST", "/api/petitions", {"title": "Published first", "description": "Already seen."}, token
    )
    assert status == 201
    admin_token = service.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    path = f"/api/petitions/{shown['petition_id']}/status"
    assert service.call("PATCH", path, {"status": "under_review"}, admin_token)[0] == 200

    page = open_page(browser, service, page_errors)
    expect(card(page, "all-list", shown["petition_id"])).to_be_visible()
    status, waiting, _ = service.call(
        "POST", "/api/petitions", {"title": "Awaiting a moderator", "description": "Not yet."}, token
    )
    assert status == 201 and waiting["published"] is False
    pending = card(page, "all-list", waiting["petition_id"])
    # A later event proves the feed went on past the filing without showing it.
    path = f"/api/petitions/{shown['petition_id']}/status"
    assert service.call("PATCH", path, {"status": "in_progress"}, admin_token)[0] == 200
    expect(card(page, "all-list", shown["petition_id"]).locator(".badge")).to_have_text("In progress")
    expect(pending).to_have_count(0)
    # Its own page is a 404 to the signed-out visitor.
    other = page.context.new_page()
    assert other.goto(f"{service.url}/petitions/{waiting['petition_id']}").status == 404
    other.close()

    path = f"/api/petitions/{waiting['petition_id']}/status"
    assert service.call("PATCH", path, {"status": "under_review"}, admin_token)[0] == 200
    expect(pending).to_be_visible()
    expect(pending.locator(".card-title")).to_have_text("Awaiting a moderator")
    screenshot(page, "premoderation-published.png")


def test_a_page_open_on_a_petition_hidden_since_says_it_is_gone(browser, service, page_errors):
    status, petition, _ = service.call(
        "POST",
        "/api/petitions",
        {"title": "Buy my miracle pills", "description": "Not a petition."},
        service.register("spam@example.org", "Spammer")["token"],
    )
    assert status == 201
    admin_token = service.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    path = f"/api/petitions/{petition['petition_id']}/status"
    assert service.call("PATCH", path, {"status": "under_review"}, admin_token)[0] == 200
    page = open_page(browser, service, page_errors)
    register(page, "Carla Citizen", "carla@example.org")
    page.goto(f"{service.url}/petitions/{petition['petition_id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    button = page.get_by_role("button", name="Sign this petition")
    expect(button).to_be_enabled()

    body = {"status": "rejected", "note": "Advertising.", "reason": "fake"}
    assert service.call("PATCH", path, body, admin_token)[0] == 200
    # The public feed says nothing of it; the signature's 404 is how the page learns.
    button.click()
    expect(page.locator("#notice")).to_have_text("This petition is no longer available.")
    expect(button).to_be_disabled()
