"""Search and the list orders, on SQLite (FTS5) and PostgreSQL (tsvector): ranking, prefixes, hostile text.

Every test here runs on both databases (``db_url``), against the real server.
"""

from __future__ import annotations

import datetime
import urllib.parse

import peewee
import pytest

from tornado_petitions import models, petition_store
from tornado_petitions.models import Signature, utcnow


async def titles(api, query: str) -> list[str]:
    response = await api.get("/api/petitions?" + query)
    assert response.status == 200, response.body
    return [p["title"] for p in response.body["petitions"]]


def q(text: str, **extra: str) -> str:
    return urllib.parse.urlencode({"q": text, **extra})


async def file(api, token: str, title: str, description: str = "Something should change.") -> dict:
    response = await api.post("/api/petitions", {"title": title, "description": description}, token)
    assert response.status == 201, response.body
    return response.body


@pytest.mark.gen_test
async def test_a_title_match_ranks_above_a_description_match(api):
    ann = await api.register("ann@example.org")
    await file(api, ann["token"], "Safer bicycle lanes on Elm Street", "Paint and kerbs.")
    await file(api, ann["token"], "Plant more trees", "Shade for the bicycle lanes, bicycle parking too.")
    await file(api, ann["token"], "Longer library hours", "Open on Sundays.")
    ranked = ["Safer bicycle lanes on Elm Street", "Plant more trees"]
    assert await titles(api, q("bicycle", sort="relevance")) == ranked
    assert await titles(api, q("BICYCLE lan", sort="relevance")) == ranked
    # The default order is still newest first, search or not.
    assert await titles(api, q("bicycle")) == ranked[::-1]


@pytest.mark.gen_test
async def test_words_in_any_order_and_the_last_one_as_a_prefix(api):
    ann = await api.register("ann@example.org")
    await file(api, ann["token"], "Climate action for the harbour", "Flooding every winter.")
    await file(api, ann["token"], "Harbour ferry timetable", "The ferry leaves too early.")
    assert await titles(api, q("harbour climate")) == ["Climate action for the harbour"]
    assert await titles(api, q("action climate harbour")) == ["Climate action for the harbour"]
    assert await titles(api, q("clim")) == ["Climate action for the harbour"]
    assert await titles(api, q("ferry tim")) == ["Harbour ferry timetable"]
    assert await titles(api, q("winter flood")) == ["Climate action for the harbour"]
    # Only the last word is a prefix; an earlier one must be whole.
    assert await titles(api, q("clim harbour")) == []
    assert await titles(api, q("climate ferry")) == []
    # No word at all (only punctuation) matches nothing, and relevance without q is newest first.
    assert await titles(api, q("%")) == []
    assert await titles(api, "sort=relevance") == [
        "Harbour ferry timetable",
        "Climate action for the harbour",
    ]


HOSTILE = [
    '"',
    '"climate',
    'climate"',
    "'",
    "''",
    "\\",
    "*",
    "clim*",
    "**",
    "-climate",
    "^climate",
    "+climate",
    "climate:",
    "title:climate",
    "title : climate",
    "{title description}: climate",
    "NEAR(climate harbour)",
    "NEAR(climate harbour, 2)",
    "climate NEAR harbour",
    "climate AND",
    "OR climate",
    "NOT",
    "climate NOT harbour",
    "(",
    "(climate",
    "climate)",
    "()",
    "climate & harbour",
    "climate | harbour",
    "!climate",
    "climate <-> harbour",
    "climate:*",
    "climate:A",
    "a:* & b",
    "%",
    "_",
    "%clim%",
    "Robert'); DROP TABLE petition;--",
    "💥",
    "ñ Más",
    "\u0301",
    "² ٣ ⅷ ǅ İstanbul ß",
    "中文 请愿",
    "\u200d\u202e clim \u2028",
    "x" * 200,
    " ".join(["a"] * 100),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("sort", ["newest", "relevance", "popular", "trending"])
async def test_hostile_query_strings_are_answered_never_a_500(api, sort):
    ann = await api.register("ann@example.org")
    await file(api, ann["token"], "Climate action for the harbour", "Flooding every winter.")
    for text in HOSTILE:
        response = await api.get("/api/petitions?" + q(text, sort=sort))
        assert response.status == 200, (text, response.status, response.body)
        similar = await api.get("/api/petitions/similar?" + urllib.parse.urlencode({"title": text}))
        assert similar.status == 200, (text, similar.status, similar.body)
    # Operators are words like any other: a quote or a star around a word still finds it.
    assert await titles(api, q('"climate')) == ["Climate action for the harbour"]
    assert await titles(api, q("(climate AND")) == []  # "and" is a word, and not in this petition
    assert await titles(api, q("NEAR(climate harbour)")) == []  # "near" is a word too
    assert await titles(api, q("clim*")) == ["Climate action for the harbour"]


@pytest.mark.gen_test
async def test_similar_finds_a_near_duplicate_title_and_not_an_unrelated_one(api, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    duplicate = await file(api, ann["token"], "Repair the potholes on Mill Road")
    await file(api, ann["token"], "Longer opening hours for the library", "Potholes are not the point.")
    rejected = await file(api, ann["token"], "Mill Road potholes are dangerous")
    moved = await api.patch(
        f"/api/petitions/{rejected['petition_id']}/status",
        {"status": "rejected", "note": "dup"},
        admin["token"],
    )
    assert moved.status == 200
    found = await api.get("/api/petitions/similar?title=" + urllib.parse.quote("Fix the Mill Road potholes"))
    assert found.status == 200
    assert [p["petition_id"] for p in found.body["petitions"]] == [duplicate["petition_id"]]
    # As the title is typed, its last word counts as a prefix.
    typing = await api.get("/api/petitions/similar?title=" + urllib.parse.quote("pothol"))
    assert [p["petition_id"] for p in typing.body["petitions"]] == [duplicate["petition_id"]]
    # Common words alone say nothing.
    assert (await api.get("/api/petitions/similar?title=for%20the")).body == {"petitions": []}
    assert (await api.get("/api/petitions/similar?title=%20")).body == {"petitions": []}
    assert (await api.get("/api/petitions/similar")).status == 422
    too_long = await api.get("/api/petitions/similar?title=" + "x" * 201)
    assert too_long.status == 422 and too_long.body["error"]["fields"] == {
        "title": "must be at most 200 characters"
    }


@pytest.mark.gen_test
async def test_similar_returns_at_most_five_most_alike_first(api):
    ann = await api.register("ann@example.org")
    for n in range(7):
        await file(api, ann["token"], f"Bus shelter number {n}")
    best = await file(api, ann["token"], "Bus shelter at the bus station")
    found = await api.get("/api/petitions/similar?title=" + urllib.parse.quote("bus station shelter"))
    ids = [p["petition_id"] for p in found.body["petitions"]]
    assert len(ids) == 5 and ids[0] == best["petition_id"]


def age_signatures(petition_id: int, hours: float) -> None:
    """Move a petition's signatures into the past, as if signed ``hours`` ago."""
    with models.database_proxy.obj.connection_context():
        when = utcnow() - datetime.timedelta(hours=hours)
        Signature.update(created_at=when).where(Signature.petition == petition_id).execute()


@pytest.mark.gen_test
async def test_popular_and_trending_orders_and_their_pages(api, make_citizens):
    ann = await api.register("ann@example.org")
    old_favourite = await file(api, ann["token"], "Old favourite")
    rising = await file(api, ann["token"], "Rising fast")
    quiet = await file(api, ann["token"], "Quiet one")
    steady = await file(api, ann["token"], "Steady one")
    citizens = make_citizens(5)
    for petition, signers in ((old_favourite, 5), (rising, 2), (steady, 1)):
        for citizen in citizens[:signers]:
            path = f"/api/petitions/{petition['petition_id']}/signatures"
            assert (await api.post(path, token=citizen["token"])).status == 201
    age_signatures(old_favourite["petition_id"], hours=30)

    assert await titles(api, "sort=popular") == ["Old favourite", "Rising fast", "Steady one", "Quiet one"]
    # Trending counts the last 24 hours only, and lists only petitions signed in them.
    assert await titles(api, "sort=trending") == ["Rising fast", "Steady one"]
    assert await titles(api, q("one", sort="popular")) == ["Steady one", "Quiet one"]
    assert await titles(api, q("one", sort="trending")) == ["Steady one"]
    del quiet

    for sort in ("popular", "newest", "relevance"):
        seen, cursor = [], None
        while True:
            query = f"sort={sort}&limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = await api.get("/api/petitions?" + query)
            assert page.status == 200 and len(page.body["petitions"]) <= 3
            seen += [p["title"] for p in page.body["petitions"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(["Old favourite", "Rising fast", "Quiet one", "Steady one"]), sort
        assert len(seen) == 4
    assert (await api.get("/api/petitions?sort=oldest")).status == 422


@pytest.mark.gen_test
async def test_the_index_stays_in_step_through_status_changes_and_signatures(api, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    petition = await file(api, ann["token"], "Streetlights on Quay Lane", "Dark since March.")
    path = f"/api/petitions/{petition['petition_id']}"
    for status in ("under_review", "in_progress"):
        assert (await api.patch(path + "/status", {"status": status}, admin["token"])).status == 200
        assert await titles(api, q("quay streetlights")) == ["Streetlights on Quay Lane"]
    assert (await api.post(path + "/signatures", token=ann["token"])).status == 201
    assert await titles(api, q("march dark", sort="relevance")) == ["Streetlights on Quay Lane"]
    assert await titles(api, q("quay", status="in_progress")) == ["Streetlights on Quay Lane"]
    assert await titles(api, q("quay", status="submitted")) == []


def _drop_search_index(db: peewee.Database) -> None:
    """Take the database back to before search existed (schema version 2)."""
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("DROP TRIGGER petition_search_document ON petition")
        db.execute_sql("ALTER TABLE petition DROP COLUMN search_document")
        db.execute_sql("DROP INDEX petition_search_title")
    else:
        for name in ("insert", "update", "delete"):
            db.execute_sql(f"DROP TRIGGER petition_search_{name}")
        db.execute_sql("DROP TABLE petition_search")
    db.execute_sql("DROP INDEX petition_popular")
    models.SchemaVersion.update(version=2).execute()


def test_an_older_database_gets_its_index_filled_at_start_up(db_url):
    db = models.open_database(db_url)
    try:
        models.bind_database(db)
        with db.connection_context():
            author = models.User.create(email="ann@example.org", name="Ann", password_hash="-")
            models.Petition.create(title="Recycling bins by the school", description="Bins.", author=author)
            _drop_search_index(db)
            models.Petition.create(title="Recycling bins at the station", description="Bins.", author=author)
        models.bind_database(db)
        with db.connection_context():
            page, _ = petition_store.list_petitions(limit=10, text="recycling bins")
            assert [p["title"] for p in page] == [
                "Recycling bins at the station",
                "Recycling bins by the school",
            ]
            assert models.SchemaVersion.get().version == models.SCHEMA_VERSION
            models.Petition.create(title="Recycling glass", description="Bottles.", author=author)
            page, _ = petition_store.list_petitions(limit=10, text="recycl", sort="relevance")
            assert len(page) == 3
    finally:
        models.close_database(db)


@pytest.mark.gen_test
async def test_relevance_pages_cover_every_match_once(api):
    ann = await api.register("ann@example.org")
    for n in range(5):
        await file(api, ann["token"], f"Bicycle parking number {n}", "Racks.")
        await file(api, ann["token"], f"Bench number {n}", "Near the bicycle racks.")
    seen, cursor = [], None
    while True:
        page = await api.get(
            "/api/petitions?"
            + q("bicycle", sort="relevance", limit="3", **({"cursor": str(cursor)} if cursor else {}))
        )
        assert page.status == 200
        seen += [p["title"] for p in page.body["petitions"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 10 and len(set(seen)) == 10
    # Every title match first.
    assert all(title.startswith("Bicycle") for title in seen[:5])
