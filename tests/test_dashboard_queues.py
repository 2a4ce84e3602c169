"""The admins' dashboard in real Chromium: the petitions office's queues (GET /api/admin/queues),
their counts kept live, overdue markers, filtering by queue; by status alone where a server has none.

Fixtures and helpers: tests/browser.py.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterator

import pytest
from playwright.sync_api import Route, expect

from tests.browser import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, card, open_page, screenshot, sign_in
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer


@pytest.fixture
def office(tmp_path) -> Iterator[LiveServer]:
    """The service with low thresholds: 2 signatures oblige a response, 3 a debate."""
    server = LiveServer(
        tmp_path, *GENEROUS_RATE_FLAGS, "--response-threshold", "2", "--debate-threshold", "3"
    )
    server.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, name="Ada Admin", admin=True)
    server.start()
    yield server
    server.stop_cleanly()


def file(service: LiveServer, token: str, title: str) -> int:
    status, petition, _ = service.call(
        "POST", "/api/petitions", {"title": title, "description": "Text."}, token
    )
    assert status == 201, petition
    return petition["petition_id"]


def filed_days_ago(service: LiveServer, petition_id: int, days: int) -> None:
    """Backdate a petition in the database, as if it had been waiting that long."""
    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(days=days)
    path = service.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE petition SET submitted_at = ? WHERE id = ?",
            (then.strftime("%Y-%m-%d %H:%M:%S.%f"), petition_id),
        )
    connection.close()


def test_the_dashboard_shows_the_queues_live_and_filters_by_them(browser, office, page_errors):
    author = office.register("author@example.org", "Alex Author", PASSWORD)["token"]
    waiting = file(office, author, "Reopen the library on Sundays")
    filed_days_ago(office, waiting, 10)
    fresh = file(office, author, "A crossing by the school")
    popular = file(office, author, "Save the old cinema")
    signers = [office.register(f"s{n}@example.org", f"Signer {n}", PASSWORD)["token"] for n in range(3)]

    admin = open_page(browser, office, page_errors)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    queues = admin.locator("#queues")
    moderation = queues.locator("[data-queue='moderation']")
    awaiting = queues.locator("[data-queue='awaiting_response']")
    debate = queues.locator("[data-queue='debate']")
    expect(moderation).to_have_accessible_name("Moderation: 3, 1 overdue")
    expect(awaiting.locator(".queue-count")).to_have_text("0")
    expect(debate.locator(".queue-count")).to_have_text("0")

    # Signatures cross both thresholds: the milestones move the queues, live.
    for token in signers:
        assert office.call("POST", f"/api/petitions/{popular}/signatures", token=token)[0] == 201
    expect(awaiting.locator(".queue-count")).to_have_text("1")
    expect(debate.locator(".queue-count")).to_have_text("1")
    expect(card(admin, "dashboard-list", popular).locator(".signatures")).to_have_text("3 signatures")
    expect(card(admin, "dashboard-list", popular).locator(".card-meta")).to_contain_text(
        "awaiting a response · up for debate"
    )

    # Filtering by a queue: its petitions only, oldest first, the overdue one marked.
    moderation.click()
    expect(moderation).to_have_attribute("aria-pressed", "true")
    titles = admin.locator("#dashboard-list .card-title")
    expect(titles).to_have_text(
        ["Reopen the library on Sundays", "A crossing by the school", "Save the old cinema"]
    )
    expect(card(admin, "dashboard-list", waiting).locator(".overdue")).to_be_visible()
    expect(card(admin, "dashboard-list", fresh).locator(".overdue")).to_be_hidden()
    screenshot(admin, "admin-queues.png")
    debate.click()
    expect(titles).to_have_text(["Save the old cinema"])
    expect(admin.locator("#dashboard-filter")).to_have_value("queue:debate")

    # A decision with a note answers the response queue and takes the petition out of moderation.
    popular_card = card(admin, "dashboard-list", popular)
    popular_card.get_by_label("Note to the author").fill("We will answer in the chamber.")
    popular_card.get_by_role("button", name="Move to under review").click()
    expect(awaiting.locator(".queue-count")).to_have_text("0")
    expect(moderation).to_have_accessible_name("Moderation: 2, 1 overdue")
    expect(titles).to_have_text(["Save the old cinema"])  # still up for debate
    admin.locator("#dashboard-filter").select_option("")
    expect(moderation).to_have_attribute("aria-pressed", "false")
    expect(titles).to_have_count(3)

    # The petition's own page lists the milestones and the decision in its history.
    visitor = open_page(browser, office, page_errors, f"/petitions/{popular}")
    expect(visitor.locator("#history li")).to_have_count(4)
    expect(visitor.locator("#history li.history-milestone")).to_have_count(2)
    expect(visitor.locator("#history li").nth(1)).to_contain_text("Reached the response threshold")
    expect(visitor.locator("#history li").nth(2)).to_contain_text("Reached the debate threshold")
    expect(visitor.locator("#history li").nth(3)).to_contain_text("We will answer in the chamber.")
    expect(visitor.locator("#response-text")).to_have_text("We will answer in the chamber.")
    expect(visitor.locator("#petition-count")).to_have_text("3")


def test_without_queues_on_the_server_the_dashboard_filters_by_status(browser, service, page_errors):
    author = service.register("author@example.org", "Alex Author", PASSWORD)["token"]
    file(service, author, "Reopen the library on Sundays")
    admin = open_page(browser, service, page_errors)

    def no_queues(route: Route) -> None:
        # Stands for a server from before the petitions office: the route does not exist.
        route.fulfill(status=404, json={"error": {"code": "not_found", "message": "no route"}})

    admin.route("**/api/admin/queues", no_queues)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(admin.locator("#dashboard-list .card")).to_have_count(1)
    expect(admin.locator("#queues")).to_be_hidden()
    assert "queue:moderation" not in admin.locator("#dashboard-filter option").evaluate_all(
        "(options) => options.map((option) => option.value)"
    )
    admin.locator("#dashboard-filter").select_option("under_review")
    expect(admin.locator("#dashboard-empty")).to_be_visible()
    admin.locator("#dashboard-filter").select_option("submitted")
    expect(admin.locator("#dashboard-list .card")).to_have_count(1)
