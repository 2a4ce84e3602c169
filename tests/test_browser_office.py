"""The admin dashboard in real Chromium: rejecting with a reason chosen from the list the page config carries."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, card, open_page, sign_in


def test_an_admin_rejects_with_a_reason(browser, service, page_errors):
    token = service.call(
        "POST", "/api/auth/register", {"email": "c@example.org", "name": "Carla", "password": PASSWORD}
    )[1]["token"]
    status, petition, _ = service.call(
        "POST", "/api/petitions", {"title": "More buses", "description": "Line 4 is full."}, token
    )
    assert status == 201
    admin = open_page(browser, service, page_errors)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    dashboard_card = card(admin, "dashboard-list", petition["petition_id"])
    reason = dashboard_card.get_by_label("Reason, if rejected")
    expect(reason).to_be_visible()
    expect(reason).to_have_value("other")
    expect(reason.locator("option")).to_have_count(7)
    reason.select_option("duplicate")
    dashboard_card.get_by_label(re.compile("Note to the author")).fill("Same as petition 3.")
    dashboard_card.get_by_role("button", name="Reject").click()
    expect(dashboard_card.locator(".badge")).to_have_text("Rejected")
    # Rejected, the only move is Reconsider: no reason to choose.
    expect(reason).to_be_hidden()
    status, body, _ = service.call("GET", f"/api/petitions/{petition['petition_id']}")
    assert body["rejection"] == {"reason": "duplicate", "note": "Same as petition 3."}


def test_a_moderators_dashboard_has_no_people_or_audit_panel_and_an_admins_changes_a_role(
    browser, service, page_errors
):
    service.create_user("mo@example.org", PASSWORD, name="Mo Moderator", role="moderator")
    service.call(
        "POST", "/api/auth/register", {"email": "c@example.org", "name": "Carla", "password": PASSWORD}
    )
    moderator = open_page(browser, service, page_errors)
    sign_in(moderator, "mo@example.org", PASSWORD)
    expect(moderator.locator("#dashboard")).to_be_visible()
    expect(moderator.locator("#account-name")).to_have_text("Mo Moderator (moderator)")
    expect(moderator.locator("#queues")).to_be_visible()
    expect(moderator.locator("#people")).to_be_hidden()
    expect(moderator.locator("#audit")).to_be_hidden()

    admin = open_page(browser, service, page_errors)
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    people = admin.locator("#people")
    expect(people).to_be_visible()
    expect(admin.locator("#audit")).to_be_visible()
    carla = people.locator(".person", has_text="c@example.org")
    expect(carla).to_be_visible()
    carla.get_by_label("Role of Carla").select_option("moderator")
    carla.get_by_role("button", name="Change role").click()
    expect(carla.locator(".card-message")).to_have_text("Carla is now moderator.")
    expect(admin.locator("#audit-list .audit-entry").first).to_contain_text("Ada Admin · role change user #")
    expect(admin.locator("#audit-list .audit-entry").first).to_contain_text("citizen → moderator")

    # Demoted, the moderator's open dashboard closes (4403) and the page becomes a citizen's.
    mo = people.locator(".person", has_text="mo@example.org")
    mo.get_by_label("Role of Mo Moderator").select_option("citizen")
    mo.get_by_role("button", name="Change role").click()
    expect(mo.locator(".card-message")).to_have_text("Mo Moderator is now citizen.")
    expect(moderator.locator("#dashboard")).to_be_hidden()
    expect(moderator.locator("#citizen")).to_be_visible()
    expect(moderator.locator("#notice")).to_have_text("Your role is now citizen.")
    expect(moderator.locator("#connection")).to_have_attribute("data-state", "connected")

    # The last admin cannot demote themselves: the panel says why and keeps the role.
    ada = people.locator(".person", has_text=ADMIN_EMAIL)
    ada.get_by_label("Role of Ada Admin").select_option("moderator")
    ada.get_by_role("button", name="Change role").click()
    expect(ada.locator(".card-message")).to_contain_text("last admin")
    expect(ada.get_by_label("Role of Ada Admin")).to_have_value("admin")
