"""User text cannot hide or reorder the page: titles and names hold visible characters and no bidi controls,
and pages show every piece of user text isolated (``dir="auto"``), so even a name stored before the rule
cannot reverse the page's own words."""

from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from tests.browser import open_page

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
INVISIBLE_TITLES = [
    "\u200b\u200b\u200b",
    "\u00a0\u00a0\u00a0",
    " \u200b\u00a0\u2060\ufeff\u3000 ",
    "\u2028\u2029\u00ad",
]
RTL_TITLE = "תיקון הפנס ברחוב"

sqlite_only = pytest.mark.parametrize("db_backend", ["sqlite"])


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_bidi_controls_in_a_title_or_a_name_are_422_naming_the_field(api):
    ann = await api.register("ann@example.org")
    for control in BIDI_CONTROLS:
        filed = await api.post(
            "/api/petitions", {"title": f"Fix {control}the light", "description": "x"}, ann["token"]
        )
        assert filed.status == 422 and set(filed.body["error"]["fields"]) == {"title"}, (
            repr(control),
            filed.body,
        )
        assert "bidirectional" in filed.body["error"]["fields"]["title"]
        body = {"email": f"u{ord(control)}@example.org", "name": f"Eve{control}", "password": "correct horse"}
        registered = await api.post("/api/auth/register", body)
        assert registered.status == 422 and set(registered.body["error"]["fields"]) == {"name"}, (
            registered.body
        )
    # Descriptions are prose: a bidi control there is left alone (shown isolated).
    filed = await api.post(
        "/api/petitions", {"title": "Fix the light", "description": "a \u202e b"}, ann["token"]
    )
    assert filed.status == 201, filed.body


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_a_title_or_name_of_only_invisible_characters_is_422(api):
    ann = await api.register("ann@example.org")
    for title in INVISIBLE_TITLES:
        filed = await api.post("/api/petitions", {"title": title, "description": "x"}, ann["token"])
        assert filed.status == 422, (repr(title), filed.body)
        assert set(filed.body["error"]["fields"]) == {"title"}
        assert "visible" in filed.body["error"]["fields"]["title"], filed.body
    for name in ("\u200b", "\u00a0", "\u3000\u2060"):
        body = {"email": "nobody@example.org", "name": name, "password": "correct horse"}
        registered = await api.post("/api/auth/register", body)
        assert registered.status == 422 and set(registered.body["error"]["fields"]) == {"name"}, (
            registered.body
        )
    # Right-to-left text, accents and a title padded by invisible characters are fine.
    for title in (RTL_TITLE, "Café\u200b", "\u00a0Fix it\u00a0"):
        filed = await api.post("/api/petitions", {"title": title, "description": "x"}, ann["token"])
        assert filed.status == 201, (title, filed.body)
    assert (await api.register("sara@example.org", name="سارة"))["user"]["name"] == "سارة"


@sqlite_only
@pytest.mark.gen_test(timeout=30)
async def test_the_document_states_the_rules(api):
    schemas = (await api.get("/api/openapi.json")).body["components"]["schemas"]
    for schema, field in (("NewPetition", "title"), ("Register", "name")):
        pattern = schemas[schema]["properties"][field]["pattern"]
        assert re.fullmatch(pattern, "Fix the light") and not re.fullmatch(pattern, "\u200b\u200b\u200b")
        assert not re.fullmatch(pattern, "Fix \u202ethe light")


def test_a_name_stored_before_the_rule_cannot_reverse_the_pages_words(browser, service, page_errors):
    """An override (U+202E) already in the database stays inside its own isolate on the page."""
    token = service.register("eve@example.org", "Eve", "correct horse")["token"]
    status, petition, _ = service.call(
        "POST", "/api/petitions", {"title": "Fix the light", "description": "Dark."}, token
    )
    assert status == 201, petition
    connection = sqlite3.connect(service.db_url.removeprefix("sqlite:///"))
    with connection:
        connection.execute("UPDATE user SET name = ? WHERE email = ?", ("Eve\u202e", "eve@example.org"))
    connection.close()

    status, document, _ = service.call("GET", f"/petitions/{petition['petition_id']}")
    assert '<h1 id="petition-title" class="petition-title" dir="auto">' in document
    assert 'by <bdi dir="auto">Eve\u202e</bdi>' in document

    page = open_page(browser, service, page_errors, f"/petitions/{petition['petition_id']}")
    meta = page.locator("#petition-meta")
    expect(meta).to_contain_text("filed")
    expect(meta.locator('bdi[dir="auto"]')).to_have_text("Eve\u202e")
    for selector in ("#petition-title", "#petition-description", "#response-text"):
        expect(page.locator(selector)).to_have_attribute("dir", "auto")
    # Laid out left to right: the "f" of "filed" is drawn left of its "d".
    order = page.evaluate(
        """() => {
          const walker = document.createTreeWalker(document.getElementById("petition-meta"), NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const at = node.data.indexOf("filed");
            if (at < 0) continue;
            const x = (offset) => {
              const range = document.createRange();
              range.setStart(node, at + offset);
              range.setEnd(node, at + offset + 1);
              return range.getBoundingClientRect().left;
            };
            return [x(0), x(4)];
          }
          return null;
        }"""
    )
    assert order is not None and order[0] < order[1], order
