"""The public pages in real Chromium: the signed-out list, a petition's own page with its chart, and
signing from it after registering in place; a shared link's preview; resume after a restart.

The service runs as ``python -m tornado_petitions serve`` (tests.live_server), signatures come through
its HTTP API from threads, as many people's would. Fixtures and helpers: tests/browser.py.
"""

from __future__ import annotations

import html
import re
import time
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import Page, expect

from tests.browser import PASSWORD, fill_registration, open_page, screenshot
from tests.live_server import LiveServer

VIRAL_SIGNATURES = 300


def citizens(service: LiveServer, count: int, prefix: str) -> list[str]:
    """Register ``count`` accounts (a few at a time: each costs a password hash); their tokens."""

    def one(number: int) -> str:
        return service.register(f"{prefix}{number}@example.org", f"Signer {number}", PASSWORD)["token"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def sign_all(service: LiveServer, petition_id: int, tokens: list[str]) -> float:
    """Sign once with every token, 16 at a time; ``time.monotonic()`` when the last 201 arrived."""

    def one(token: str) -> int:
        return service.call("POST", f"/api/petitions/{petition_id}/signatures", token=token)[0]

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, tokens))
    assert statuses == [201] * len(tokens), sorted(set(statuses))
    return time.monotonic()


def file(
    service: LiveServer, token: str, title: str, description: str = "It has been dark for weeks."
) -> dict:
    body = {"title": title, "description": description, "category": "Roads", "location": "Elm Street"}
    status, petition, _ = service.call("POST", "/api/petitions", body, token)
    assert status == 201, petition
    return petition


def only_own_host(page_errors, service: LiveServer) -> list[str]:
    """Every request the pages made that did not go to the service (data: URLs are the page's own)."""
    own = (service.url + "/", service.ws_url + "/", "data:")
    return [url for url in page_errors.requests if not url.startswith(own)]


def chart_total(page: Page) -> str:
    return page.locator("#chart").get_attribute("data-total")


def test_a_signed_out_visitor_watches_a_petition_go_viral(browser, service, page_errors):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    file(service, author, "More buses on line 4", "Line 4 is full every morning.")
    petition = file(
        service, author, "Fix the streetlight on Elm Street", "It has been dark for weeks.\nPlease."
    )
    petition_id = petition["petition_id"]
    tokens = citizens(service, VIRAL_SIGNATURES, "viral")

    page = open_page(browser, service, page_errors)
    cards = page.locator("#all-list .card")
    expect(cards.locator(".card-title")).to_have_text(
        ["Fix the streetlight on Elm Street", "More buses on line 4"]
    )
    expect(page.locator("#guest-intro")).to_be_visible()
    expect(cards.first.locator("button.sign")).to_be_hidden()  # signing happens on the petition's page
    screenshot(page, "signed-out-list.png")

    page.get_by_role("link", name="Fix the streetlight on Elm Street").click()
    expect(page).to_have_url(f"{service.url}/petitions/{petition_id}")
    expect(page).to_have_title("Fix the streetlight on Elm Street · Petitions")
    expect(page.locator("#petition-title")).to_have_text("Fix the streetlight on Elm Street")
    expect(page.locator("#petition-meta")).to_contain_text("by Alex Author · Roads · Elm Street")
    expect(page.locator("#history li")).to_have_count(1)
    expect(page.locator("#history li").first).to_contain_text("Filed by Alex Author")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#chart canvas")).to_be_visible()
    expect(page.locator("#chart")).to_have_attribute("data-total", "0")

    # Three waves of signatures through the API: the count and the chart follow each, live.
    first_wave = VIRAL_SIGNATURES // 3
    sign_all(service, petition_id, tokens[:first_wave])
    expect(page.locator("#petition-count")).to_have_text(str(first_wave), timeout=3000)
    points_after_first_wave = int(page.locator("#chart").get_attribute("data-points"))
    last = sign_all(service, petition_id, tokens[first_wave:])
    expect(page.locator("#petition-count")).to_have_text(str(VIRAL_SIGNATURES), timeout=2000)
    expect(page.locator("#chart")).to_have_attribute("data-total", str(VIRAL_SIGNATURES), timeout=2000)
    assert time.monotonic() - last < 2.0
    assert int(page.locator("#chart").get_attribute("data-points")) > points_after_first_wave
    expect(page.locator("#chart-caption")).to_contain_text(f"{VIRAL_SIGNATURES} signatures")
    screenshot(page, "petition-chart.png")

    # A reload draws the same total from the timeline endpoint.
    page.reload()
    expect(page.locator("#chart")).to_have_attribute("data-total", str(VIRAL_SIGNATURES))
    expect(page.locator("#petition-count")).to_have_text(str(VIRAL_SIGNATURES))
    # The list a visitor goes back to is live too.
    page.get_by_role("link", name="← All petitions").click()
    expect(page.locator(f"#all-list [data-petition-id='{petition_id}'] .signatures")).to_have_text(
        f"{VIRAL_SIGNATURES} signatures"
    )
    assert page_errors.console_errors == []
    assert only_own_host(page_errors, service) == []


def test_a_shared_link_previews_with_the_title_escaped(browser, service, page_errors):
    author = service.register("author@example.org", "Alex <b>Author</b>", PASSWORD)["token"]
    title = '<script>alert("x")</script> & <!--<script> "quotes"'
    description = "Line one </script><img src=x onerror=alert(1)>\n\nLine two."
    petition = file(service, author, title, description)
    path = f"/petitions/{petition['petition_id']}"

    status, document, headers = service.call("GET", path)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "nonce-" in headers["Content-Security-Policy"]
    escaped = html.escape(title, quote=True)
    assert re.search(r"<title>(.*?)</title>", document, re.S).group(1) == f"{escaped} · Petitions"
    og_title = re.search(r'<meta property="og:title" content="([^"]*)">', document).group(1)
    assert html.unescape(og_title) == title
    og_description = re.search(r'<meta property="og:description" content="([^"]*)">', document).group(1)
    assert html.unescape(og_description) == " ".join(description.split())
    assert "<script>alert" not in document and "<img src=x" not in document
    # The page config (JSON in a <script>) holds no "<" at all, so no title can end or bend it.
    config = re.search(r'<script type="application/json" id="page-config">(.*?)</script>', document, re.S)
    assert "<" not in config.group(1)

    for unknown in ("/petitions/999999", "/petitions/abc", "/petitions/0"):
        status, document, headers = service.call("GET", unknown)
        assert status == 404, unknown
        assert headers["Content-Type"].startswith("text/html")
        assert "There is no such petition" in document

    # In the browser the same title is text: no script ran, no dialog opened.
    page = open_page(browser, service, page_errors, path)
    page.on("dialog", lambda dialog: page_errors.errors.append(f"a dialog opened: {dialog.message}"))
    expect(page.locator("#petition-title")).to_have_text(title)
    expect(page.locator("#petition-meta")).to_contain_text("by Alex <b>Author</b>")
    expect(page.locator("#petition-description")).to_contain_text("</script><img src=x onerror=alert(1)>")
    assert page.title() == f"{title} · Petitions"
    assert page.locator("#petition img").count() == 0


def test_sign_when_signed_out_registers_in_place_and_signs(browser, service, page_errors):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    petition = file(service, author, "Trees on Oak Road", "Shade for the school run.")
    path = f"/petitions/{petition['petition_id']}"
    page = open_page(browser, service, page_errors, path)
    sign = page.locator("#sign-button")
    expect(sign).to_have_text("Sign this petition")

    sign.click()
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#signin-reason")).to_contain_text("to sign “Trees on Oak Road”")
    expect(page.locator("#register-name")).to_be_focused()
    fill_registration(page, "Sam Signer", "sam@example.org")
    expect(sign).to_have_text("Withdraw my signature")
    expect(page.locator("#petition-count")).to_have_text("1")
    expect(page.locator("#sign-message")).to_contain_text("your signature is counted")
    expect(page).to_have_url(service.url + path)
    expect(sign).to_be_focused()
    status, body, _ = service.call("GET", f"/api/petitions/{petition['petition_id']}")
    assert body["signature_count"] == 1

    # Closing the dialog instead of signing in leaves the page as it was.
    other = open_page(browser, service, page_errors, path)
    other.locator("#sign-button").click()
    other.keyboard.press("Escape")
    expect(other.locator("#signin")).to_be_hidden()
    expect(other.locator("#sign-button")).to_have_text("Sign this petition")
    expect(other.locator("#sign-button")).to_be_focused()
    # Signing in (not registering) as someone who already signed: the button says so, nothing doubles.
    other.locator("#sign-button").click()
    other.locator("#login-email").fill("sam@example.org")
    other.locator("#login-password").fill(PASSWORD)
    other.locator("#login-form").get_by_role("button", name="Sign in").click()
    expect(other.locator("#sign-button")).to_have_text("Withdraw my signature")
    expect(other.locator("#sign-message")).to_contain_text("already signed")
    expect(other.locator("#petition-count")).to_have_text("1")
    other.locator("#sign-button").click()
    expect(other.locator("#petition-count")).to_have_text("0")
    expect(page.locator("#petition-count")).to_have_text("0")  # the first page, live
    expect(other.locator("#sign-button")).to_have_text("Sign this petition")


def test_signed_out_pages_resume_after_a_restart_with_the_counts_made_meanwhile(
    browser, service, page_errors, tmp_path
):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    petition = file(service, author, "Benches in the park", "There is nowhere to sit.")
    petition_id = petition["petition_id"]
    tokens = citizens(service, 25, "later")
    sign_all(service, petition_id, tokens[:5])
    listing = open_page(browser, service, page_errors)
    watching = open_page(browser, service, page_errors, f"/petitions/{petition_id}")
    on_list = listing.locator(f"#all-list [data-petition-id='{petition_id}']")
    expect(on_list.locator(".signatures")).to_have_text("5 signatures")
    expect(watching.locator("#chart")).to_have_attribute("data-total", "5")
    sockets: list[str] = []
    for page in (listing, watching):
        page.on("websocket", lambda socket: sockets.append(socket.url))

    service.stop_cleanly()
    for page in (listing, watching):
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", re.compile("reconnecting|offline")
        )
    side = LiveServer(tmp_path, db_url=service.db_url, name="side")
    side.start()
    sign_all(side, petition_id, tokens[5:])
    admin = side.sign_in("admin@example.org", "admin password")["token"]
    status, _, _ = side.call(
        "PATCH", f"/api/petitions/{petition_id}/status", {"status": "under_review", "note": "Looking."}, admin
    )
    assert status == 200
    side.stop_cleanly()
    service.start()

    for page in (listing, watching):
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(on_list.locator(".signatures")).to_have_text("25 signatures")
    expect(on_list.locator(".badge")).to_have_text("Under review")
    expect(watching.locator("#petition-count")).to_have_text("25")
    expect(watching.locator("#chart")).to_have_attribute("data-total", "25")
    expect(watching.locator("#petition-status")).to_have_text("Under review")
    expect(watching.locator("#response-text")).to_have_text("Looking.")
    expect(watching.locator("#history li")).to_have_count(2)
    assert all("?since=" in url for url in sockets) and len(sockets) >= 2, sockets


def test_the_petition_page_at_360_px_by_keyboard(browser, service, page_errors):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    petition = file(service, author, "A rather long petition title that has to wrap on a small phone screen")
    page = open_page(browser, service, page_errors, viewport={"width": 360, "height": 740})
    # From the list to the petition by keyboard: Tab to the card's link, Enter.
    link = page.get_by_role("link", name=petition["title"])
    for _ in range(12):
        page.keyboard.press("Tab")
        if link.evaluate("(element) => element === document.activeElement"):
            break
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{service.url}/petitions/{petition['petition_id']}")
    expect(page.locator("#chart canvas")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator("#sign-button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#register-name")).to_be_focused()
    page.keyboard.type("Kim Keyboard")
    page.keyboard.press("Tab")
    page.keyboard.type("kim@example.org")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#sign-button")).to_have_text("Withdraw my signature")
    expect(page.locator("#petition-count")).to_have_text("1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "petition-360px.png")


def test_signed_out_search_and_status_filter_stay_live(browser, service, page_errors):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    file(service, author, "Fix the streetlight on Elm Street")
    file(service, author, "More buses on line 4", "The buses are full.")
    page = open_page(browser, service, page_errors)
    titles = page.locator("#all-list .card-title")
    expect(titles).to_have_count(2)

    page.get_by_label("Search").fill("BUSES")
    page.get_by_label("Search").press("Enter")
    expect(titles).to_have_text(["More buses on line 4"])
    # A new petition that matches appears live; one that does not, does not.
    file(service, author, "Night buses at weekends")
    file(service, author, "Benches in the park")
    expect(titles).to_have_text(["Night buses at weekends", "More buses on line 4"])
    page.locator("#status-filter").select_option("under_review")
    expect(page.locator("#all-empty")).to_have_text("No petitions match.")
    admin = service.sign_in("admin@example.org", "admin password")["token"]
    status, _, _ = service.call("PATCH", "/api/petitions/2/status", {"status": "under_review"}, admin)
    assert status == 200
    expect(titles).to_have_text(["More buses on line 4"])
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Search").click()
    expect(titles).to_have_text(["More buses on line 4"])
    page.locator("#status-filter").select_option("")
    expect(titles).to_have_count(4)


def test_too_many_signed_out_pages_from_one_address_back_off(browser, tmp_path, page_errors):
    service = LiveServer(tmp_path, "--max-anonymous-sockets-per-address", "1")
    service.start()
    try:
        first = open_page(browser, service, page_errors)
        attempts: list[str] = []
        second = page_errors.watch(first.context.new_page())
        second.on("websocket", lambda socket: attempts.append(socket.url))
        second.goto(service.url + "/")
        # Refused with 4429 (the first page holds this address's one socket): a long backoff, no hammering.
        expect(second.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        second.wait_for_timeout(1500)  # a plain backoff would have retried several times by now
        assert len(attempts) == 1, attempts
        expect(first.locator("#connection")).to_have_attribute("data-state", "connected")
    finally:
        service.stop_cleanly()
