"""The fraud panel in real Chromium: an alert arrives live and an admin invalidates from it in two clicks."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import ADMIN_EMAIL, ADMIN_PASSWORD, open_page, sign_in
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer


def test_an_admin_sees_an_alert_arrive_and_invalidates_from_it(browser, tmp_path, page_errors):
    service = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS, "--xheaders", "--trending-threshold", "3")
    service.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, name="Ada Admin", admin=True)
    service.start()
    try:
        author = service.register("author@example.org")
        status, petition, _ = service.call(
            "POST",
            "/api/petitions",
            {"title": "More buses", "description": "Line 4 is full."},
            author["token"],
        )
        assert status == 201
        pid = petition["petition_id"]
        admin = open_page(browser, service, page_errors)
        sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        expect(admin.locator("#fraud-empty")).to_be_visible()

        storm = {"X-Forwarded-For": "203.0.113.77"}
        for i in range(4):
            signer = service.register(f"bot{i}@bots.example")
            path = f"/api/petitions/{pid}/signatures"
            assert service.call("POST", path, token=signer["token"], headers=storm)[0] == 201
        honest = service.register("human@example.net")
        path = f"/api/petitions/{pid}/signatures"
        assert (
            service.call("POST", path, token=honest["token"], headers={"X-Forwarded-For": "192.0.2.5"})[0]
            == 201
        )

        alert = admin.locator(".fraud-alert", has_text="Address 203.0.113.77")
        expect(alert).to_contain_text(f"4 signatures of petition #{pid}")
        expect(admin.locator(".fraud-alert", has_text="Email domain bots.example")).to_be_visible()
        alert.get_by_role("button", name="Preview").click()
        expect(alert.locator(".fraud-status")).to_have_text("4 signatures would be invalidated.")
        alert.get_by_role("button", name="Invalidate 4").click()
        expect(alert.locator(".fraud-status")).to_have_text(re.compile(r"completed: 4 of 4 invalidated"))
        assert service.call("GET", f"/api/petitions/{pid}")[1]["signature_count"] == 1

        alert.get_by_role("button", name="Trending").click()
        expect(admin.locator("#fraud-trending-addresses li").first).to_have_text("203.0.113.77: 4")
    finally:
        service.stop_cleanly()
