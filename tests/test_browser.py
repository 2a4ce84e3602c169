"""The web page in real Chromium (Debian's, driven by Playwright): live through a whole lifecycle.

The service runs as ``python -m tornado_petitions serve`` in a subprocess, so
restarting it is a real SIGTERM and start; the pages are never reloaded.
Screenshots land in ``test-output/browser/``.  Fixtures and helpers: tests/browser.py.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import WebSocketRoute, expect

from tests.browser import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    card,
    file_petition,
    open_page,
    register,
    screenshot,
    sign_in,
)
from tests.live_server import LiveServer


def test_citizen_and_admin_stay_live_through_a_server_restart(browser, service, page_errors, tmp_path):
    citizen = open_page(browser, service, page_errors)
    admin = open_page(browser, service, page_errors)
    socket_urls: list[str] = []
    for page in (citizen, admin):
        page.on("websocket", lambda ws: socket_urls.append(ws.url))

    register(citizen, "Carla Citizen", "carla@example.org")
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(admin.locator("#dashboard")).to_be_visible()
    expect(admin.locator("#dashboard-empty")).to_be_visible()

    # Filed in one browser, on the admin's dashboard without a reload.
    petition_id = file_petition(citizen, "Fix the streetlight on Elm Street", "It has been dark for weeks.")
    on_dashboard = card(admin, "dashboard-list", petition_id)
    expect(on_dashboard).to_contain_text("Fix the streetlight on Elm Street")
    expect(on_dashboard.locator(".badge")).to_have_text("Submitted")
    # The moves offered are the lifecycle table's, rendered by the server into the page.
    expect(on_dashboard.locator(".moves button")).to_have_text(["Move to under review", "Reject"])

    # The admin decides; the citizen sees status and note within 2 s, without a reload.
    on_dashboard.get_by_label("Note to the author").fill("We are looking at it this week.")
    on_dashboard.get_by_role("button", name="Move to under review").click()
    mine = card(citizen, "mine-list", petition_id)
    expect(mine.locator(".badge")).to_have_text("Under review", timeout=2000)
    expect(mine.locator(".response-text")).to_have_text("We are looking at it this week.", timeout=2000)
    expect(card(citizen, "all-list", petition_id).locator(".badge")).to_have_text(
        "Under review", timeout=2000
    )
    expect(on_dashboard.locator(".moves button")).to_have_text(
        ["Move to in progress", "Move to resolved", "Reject"]
    )
    expect(on_dashboard.locator(".card-activity")).to_contain_text("by Ada Admin")

    # Restart while both pages stay open; a change lands while they are disconnected.
    sockets_before = len(socket_urls)
    admin_token = service.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    service.stop_cleanly()
    for page in (citizen, admin):
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", re.compile("reconnecting|offline")
        )
    side = LiveServer(tmp_path, db_url=service.db_url, name="side")
    side.start()
    status, body, _ = side.call(
        "PATCH",
        f"/api/petitions/{petition_id}/status",
        {"status": "in_progress", "note": "Crew booked for Monday.", "version": 2},
        admin_token,
    )
    assert status == 200, body
    side.stop_cleanly()
    service.start()

    for page in (citizen, admin):
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(mine.locator(".badge")).to_have_text("In progress")
    expect(mine.locator(".response-text")).to_have_text("Crew booked for Monday.")
    expect(card(citizen, "all-list", petition_id).locator(".badge")).to_have_text("In progress")
    expect(on_dashboard.locator(".badge")).to_have_text("In progress")
    expect(on_dashboard.locator(".card-activity")).to_contain_text("Crew booked for Monday.")
    # The event feeds resumed from the last seq they had seen rather than starting over.
    resumed = socket_urls[sockets_before:]
    assert any("/ws/petitions?since=" in url for url in resumed), resumed
    assert any("/ws/admin?since=" in url for url in resumed), resumed

    # A second citizen signs in their own browser; the count moves on every page.
    signer = open_page(browser, service, page_errors)
    register(signer, "Sam Signer", "sam@example.org")
    signer_card = card(signer, "all-list", petition_id)
    signer_card.get_by_role("button", name=re.compile("^Sign")).click()
    for locator in (
        signer_card,
        card(citizen, "mine-list", petition_id),
        card(citizen, "all-list", petition_id),
        on_dashboard,
    ):
        expect(locator.locator(".signatures")).to_have_text("1 signature")
    expect(signer_card.get_by_role("button", name=re.compile("^Withdraw"))).to_be_visible()
    expect(on_dashboard.locator(".card-activity")).to_contain_text("Crew booked for Monday.")

    screenshot(citizen, "citizen.png")
    screenshot(admin, "admin.png")
    screenshot(signer, "second-citizen.png")


def test_cookie_post_without_the_xsrf_token_is_refused(browser, service, page_errors):
    page = open_page(browser, service, page_errors)
    register(page, "Carla Citizen", "carla@example.org")
    # The session cookie is HttpOnly: the page's script never sees the token.
    assert "petitions_session" not in page.evaluate("document.cookie")
    post = """async (withToken) => {
        const headers = {"Content-Type": "application/json"};
        if (withToken) {
            const xsrf = document.cookie.split("; ").find((c) => c.startsWith("_xsrf="));
            headers["X-XSRFToken"] = decodeURIComponent(xsrf.slice("_xsrf=".length));
        }
        const response = await fetch("/api/petitions", {
            method: "POST", headers, credentials: "same-origin",
            body: JSON.stringify({title: "Forged petition", description: "Should never exist"}),
        });
        return {status: response.status, body: await response.json()};
    }"""
    refused = page.evaluate(post, False)
    assert refused["status"] == 403
    assert refused["body"]["error"]["code"] == "xsrf_failed"
    # The same request with the token goes through: the token is the only difference.
    accepted = page.evaluate(post, True)
    assert accepted["status"] == 201, accepted
    status, body, _ = service.call("GET", "/api/petitions")
    assert [p["title"] for p in body["petitions"]] == ["Forged petition"]


def test_field_errors_show_next_to_their_fields(browser, service, page_errors):
    page = open_page(browser, service, page_errors)
    page.locator("#guest").get_by_role("button", name="Create account").click()
    page.get_by_label("Your name").fill("Carla")
    page.locator("#register-email").fill("not-an-email")
    page.locator("#register-password").fill("short")
    page.locator("#register-form").get_by_role("button", name="Create account").click()
    expect(page.locator("#register-email-error")).to_have_text(
        "Must be an email address: An email address must have an @-sign."
    )
    expect(page.locator("#register-password-error")).to_contain_text("at least 8")
    expect(page.locator("#register-password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#register-name-error")).to_be_hidden()

    page.locator("#register-email").fill("carla@example.org")
    page.locator("#register-password").fill(PASSWORD)
    page.locator("#register-form").get_by_role("button", name="Create account").click()
    expect(page.locator("#account-name")).to_have_text("Carla")
    page.get_by_label("Title").fill("ab")
    page.get_by_role("button", name="File petition").click()
    expect(page.locator("#petition-title-error")).to_contain_text("at least 3")
    expect(page.locator("#petition-description-error")).to_be_visible()
    expect(page.locator("#petition-title")).to_be_focused()
    expect(page.locator("#mine-empty")).to_be_visible()


def test_usable_by_keyboard_on_a_360_px_screen(browser, service, page_errors):
    page = open_page(browser, service, page_errors, viewport={"width": 360, "height": 740})
    # The header's "Create account" is a few Tabs away and opens the dialog on the name field.
    for _ in ("skip link", "brand", "Sign in", "Create account"):
        page.keyboard.press("Tab")
    expect(page.locator("#open-register")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#register-name")).to_be_focused()
    page.keyboard.type("Kim Keyboard")
    page.keyboard.press("Tab")
    page.keyboard.type("kim@example.org")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#account-name")).to_have_text("Kim Keyboard")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    page.locator("#petition-title").focus()
    page.keyboard.type("Benches in the park")
    page.keyboard.press("Tab")
    page.keyboard.type("There is nowhere to sit.")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="File petition")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#mine-list .card")).to_have_count(1)
    # Nothing sticks out sideways at 360 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Every form control has a label.
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, textarea, select')]
             .filter((el) => !el.closest('[hidden]') && el.labels.length === 0).map((el) => el.id || el.name)"""
    )
    assert unlabelled == []
    screenshot(page, "citizen-360px.png")


def test_signing_out_in_one_tab_sends_the_other_back_to_sign_in(browser, service, page_errors):
    first = open_page(browser, service, page_errors)
    register(first, "Carla Citizen", "carla@example.org")
    second = page_errors.watch(first.context.new_page())
    second.goto(service.url + "/")
    expect(second.locator("#connection")).to_have_attribute("data-state", "connected")
    first.get_by_role("button", name="Sign out").click()
    expect(first.locator("#guest")).to_be_visible()
    # The server closed the other tab's sockets with 4401: no retry loop with the dead session;
    # the tab is signed out, says so, and follows the public list anonymously.
    expect(second.locator("#guest")).to_be_visible()
    expect(second.locator("#notice")).to_contain_text("Sign in again")
    expect(second.locator("#citizen")).to_be_hidden()
    expect(second.locator("#connection")).to_have_attribute("data-state", "connected")


def test_a_stale_dashboard_gets_a_version_conflict_and_the_fresh_state(browser, service, page_errors):
    citizen_token = service.call(
        "POST", "/api/auth/register", {"email": "c@example.org", "name": "Carla", "password": PASSWORD}
    )[1]["token"]
    status, petition, _ = service.call(
        "POST", "/api/petitions", {"title": "More buses", "description": "Line 4 is full."}, citizen_token
    )
    assert status == 201
    status, _, _ = service.call(
        "POST", "/api/petitions", {"title": "Fix potholes", "description": "Main St."}, citizen_token
    )
    assert status == 201
    admin = open_page(browser, service, page_errors)
    frozen = {"on": False}

    def hold_admin_feed(route: WebSocketRoute) -> None:
        # Stands for a slow network: while frozen, the server's events do not reach the page.
        server = route.connect_to_server()
        server.on_message(lambda message: None if frozen["on"] else route.send(message))

    admin.route_web_socket(re.compile(r"/ws/admin"), hold_admin_feed)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    dashboard_card = card(admin, "dashboard-list", petition["petition_id"])
    expect(dashboard_card.locator(".badge")).to_have_text("Submitted")
    # Oldest waiting first, although the API lists newest first.
    expect(admin.locator("#dashboard-list .card-title")).to_have_text(["More buses", "Fix potholes"])

    frozen["on"] = True
    other_admin = service.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    status, body, _ = service.call(
        "PATCH", f"/api/petitions/{petition['petition_id']}/status", {"status": "under_review"}, other_admin
    )
    assert status == 200, body
    dashboard_card.get_by_label(re.compile("Note to the author")).fill("Not our department.")
    dashboard_card.get_by_role("button", name="Reject").click()
    expect(dashboard_card.locator(".card-message")).to_contain_text(
        "Someone else changed this petition first"
    )
    expect(dashboard_card.locator(".badge")).to_have_text("Under review")
    expect(dashboard_card.get_by_label(re.compile("Note to the author"))).to_have_value("Not our department.")
    screenshot(admin, "admin-version-conflict.png")
    status, body, _ = service.call("GET", f"/api/petitions/{petition['petition_id']}")
    assert body["status"] == "under_review" and "response" not in body, json.dumps(body)

    # A rejection without a note is stopped at the note field.
    dashboard_card.get_by_label(re.compile("Note to the author")).fill("")
    dashboard_card.get_by_role("button", name="Reject").click()
    expect(dashboard_card.locator("[data-error-for='note']")).to_contain_text("required")

    # With the note, the rejection goes through from the fresh version; closed petitions sink below open ones.
    frozen["on"] = False
    dashboard_card.get_by_label(re.compile("Note to the author")).fill("Not our department.")
    dashboard_card.get_by_role("button", name="Reject").click()
    expect(dashboard_card.locator(".badge")).to_have_text("Rejected")
    expect(dashboard_card.locator(".response-text")).to_have_text("Not our department.")
    expect(dashboard_card.locator(".moves button")).to_have_text(["Reconsider"])
    expect(admin.locator("#dashboard-list .card-title")).to_have_text(["Fix potholes", "More buses"])


def test_public_list_pages_and_filters_by_status_while_live(browser, service, page_errors):
    author = service.call(
        "POST", "/api/auth/register", {"email": "a@example.org", "name": "Alex", "password": PASSWORD}
    )[1]["token"]
    for number in range(1, 106):
        status, _, _ = service.call(
            "POST", "/api/petitions", {"title": f"Petition {number}", "description": "text"}, author
        )
        assert status == 201
    admin_token = service.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    page = open_page(browser, service, page_errors)
    register(page, "Carla Citizen", "carla@example.org")
    cards = page.locator("#all-list .card")
    expect(cards).to_have_count(100)
    expect(cards.first.locator(".card-title")).to_have_text("Petition 105")
    page.get_by_role("button", name="Show older petitions").click()
    expect(cards).to_have_count(105)
    expect(page.get_by_role("button", name="Show older petitions")).to_be_hidden()

    page.locator("#status-filter").select_option("under_review")
    expect(page.locator("#all-empty")).to_be_visible()
    # A petition that moves into the filtered status appears live; one that leaves it goes.
    status, _, _ = service.call("PATCH", "/api/petitions/3/status", {"status": "under_review"}, admin_token)
    assert status == 200
    expect(page.locator("#all-list .card-title")).to_have_text(["Petition 3"])
    status, _, _ = service.call("PATCH", "/api/petitions/3/status", {"status": "in_progress"}, admin_token)
    assert status == 200
    expect(page.locator("#all-empty")).to_be_visible()
    page.locator("#status-filter").select_option("in_progress")
    expect(page.locator("#all-list .card-title")).to_have_text(["Petition 3"])


def test_a_session_revoked_while_disconnected_goes_back_to_sign_in(browser, service, page_errors, tmp_path):
    page = open_page(browser, service, page_errors)
    register(page, "Carla Citizen", "carla@example.org")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "petitions_session")
    service.stop_cleanly()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    side = LiveServer(tmp_path, db_url=service.db_url, name="side")
    side.start()
    assert side.call("POST", "/api/auth/logout", token=token)[0] == 204
    side.stop_cleanly()
    service.start()
    # The handshake is refused with 401, which a browser only sees as 1006: the page asks /api/me,
    # signs out (the server drops the dead cookie) and goes on anonymously.
    expect(page.locator("#guest")).to_be_visible(timeout=20_000)
    expect(page.locator("#notice")).to_contain_text("Sign in again")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert [c for c in page.context.cookies() if c["name"] == "petitions_session"] == []


def test_too_many_sockets_backs_off_instead_of_hammering(browser, tmp_path, page_errors):
    service = LiveServer(tmp_path, "--max-sockets-per-user", "2")
    service.start()
    try:
        first = open_page(browser, service, page_errors)
        register(first, "Carla Citizen", "carla@example.org")
        attempts: list[str] = []
        second = page_errors.watch(first.context.new_page())
        second.on("websocket", lambda ws: attempts.append(ws.url))
        second.goto(service.url + "/")
        # Both of the second tab's sockets are refused with 4429 (the first tab holds the two allowed).
        expect(second.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        second.wait_for_timeout(1500)  # a plain backoff would have retried several times by now
        assert len(attempts) == 2, attempts
        expect(first.locator("#connection")).to_have_attribute("data-state", "connected")
    finally:
        service.stop_cleanly()


def test_signatures_follow_the_user_to_another_browser(browser, service, page_errors):
    author = service.call(
        "POST", "/api/auth/register", {"email": "a@example.org", "name": "Alex", "password": PASSWORD}
    )[1]["token"]
    status, petition, _ = service.call(
        "POST", "/api/petitions", {"title": "Trees on Oak Road", "description": "Shade."}, author
    )
    assert status == 201
    petition_id = petition["petition_id"]
    first = open_page(browser, service, page_errors)
    register(first, "Sam Signer", "sam@example.org")
    first_card = card(first, "all-list", petition_id)
    first_card.get_by_role("button", name="Sign: Trees on Oak Road").click()
    expect(first_card.get_by_role("button", name=re.compile("^Withdraw"))).to_be_visible()

    # A fresh context shares no cookies or storage with the first: only the server knows who signed.
    second = page_errors.watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
    second.context.set_default_timeout(10_000)
    public_feeds: list[WebSocketRoute] = []

    def pass_through(route: WebSocketRoute) -> None:
        route.connect_to_server()
        public_feeds.append(route)

    second.route_web_socket(re.compile(r"/ws/petitions(\?.*)?$"), pass_through)
    # What an earlier version of the page left behind is cleared on load.
    second.context.add_init_script("localStorage.setItem('petitions.signed.2', '[]')")
    changes: list[tuple[str, int]] = []
    second.on(
        "response",
        lambda response: (
            changes.append((response.request.method, response.status))
            if response.url.endswith("/signatures") and response.request.method != "GET"
            else None
        ),
    )
    second.goto(service.url + "/")
    sign_in(second, "sam@example.org", PASSWORD)
    del public_feeds[:-1]  # the anonymous one before signing in is gone
    second_card = card(second, "all-list", petition_id)
    expect(second_card.locator("button.sign")).to_have_text("Withdraw signature")
    assert changes == []  # right from the start, not after a Sign answered 409
    assert second.evaluate("Object.keys(localStorage)") == []

    # Withdrawn in the first browser: the event moves the count but does not say whose signature went...
    first_card.get_by_role("button", name=re.compile("^Withdraw")).click()
    expect(second_card.locator(".signatures")).to_have_text("0 signatures")
    expect(second_card.locator("button.sign")).to_have_text("Withdraw signature")
    # ...so a resumed feed asks the server again.
    public_feeds[-1].close(code=1001, reason="going away")
    expect(second_card.locator("button.sign")).to_have_text("Sign")
    assert len(public_feeds) == 2 and "?since=" in public_feeds[1].url, [r.url for r in public_feeds]
    assert changes == []
    second.context.close()
