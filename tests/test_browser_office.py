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
