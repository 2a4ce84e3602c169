"""The web page's search in real Chromium: the filing form shows look-alike petitions, the list box searches words.

Fixtures and helpers: tests/browser.py.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser import PASSWORD, open_page, register, screenshot


def test_the_filing_form_shows_similar_petitions_and_the_search_box_finds_words(
    browser, service, page_errors
):
    author = service.call(
        "POST", "/api/auth/register", {"email": "a@example.org", "name": "Alex", "password": PASSWORD}
    )[1]["token"]
    filed = {}
    for title in ("Repair the potholes on Mill Road", "Longer opening hours for the library"):
        status, body, _ = service.call(
            "POST", "/api/petitions", {"title": title, "description": "Please."}, author
        )
        assert status == 201, body
        filed[title] = body["petition_id"]
    page = open_page(browser, service, page_errors)
    register(page, "Carla Citizen", "carla@example.org")

    # Typing a title (debounced) shows the petition it may duplicate, linked to its page.
    similar = page.locator("#similar")
    expect(similar).to_be_hidden()
    page.locator("#petition-title").press_sequentially("Fix the Mill Road pothol", delay=20)
    link = similar.get_by_role("link", name="Repair the potholes on Mill Road")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", f"/petitions/{filed['Repair the potholes on Mill Road']}")
    expect(similar.get_by_role("link")).to_have_count(1)
    screenshot(page, "similar-petitions.png")
    page.locator("#petition-title").fill("Skate park by the river")
    expect(similar).to_be_hidden()

    # The public list's search box: words in any order, the last one a prefix.
    page.locator("#search").fill("road pot")
    page.locator("#list-filters").get_by_role("button", name="Search").click()
    expect(page.locator("#all-list .card-title")).to_have_text(["Repair the potholes on Mill Road"])
    # A petition filed while searching appears live only when it matches.
    for title in ("Mill Road potholes again", "Library opening hours"):
        status, body, _ = service.call(
            "POST", "/api/petitions", {"title": title, "description": "Now."}, author
        )
        assert status == 201, body
    expect(page.locator("#all-list .card-title")).to_have_text(
        ["Mill Road potholes again", "Repair the potholes on Mill Road"]
    )
