"""Bad input gets a clear JSON error with the right status: never a 500, never a half-written change."""

from __future__ import annotations

import json

import pytest

from tornado_petitions.models import EventCounter, Petition, PetitionEvent

NASTY_VALUES = [
    None,
    0,
    -1,
    1.5,
    True,
    [],
    {},
    ["a"],
    {"$ne": 1},
    "",
    " ",
    "\x00",
    "a" * 100_000,
    "'; DROP TABLE petition; --",
    '" OR 1=1 --',
    "<script>alert(1)</script>",
    "💥" * 50,
    "\ud800",
    2**70,
    "%",
    "_",
]


def state() -> tuple:
    """Everything a failed request must leave untouched."""
    return (Petition.select().count(), PetitionEvent.select().count(), EventCounter.get_by_id(1).value)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "raw, status",
    [
        (b"{not json", 400),
        (b"", 400),
        (b"\xff\xfe", 400),
        (b"[1, 2", 400),
        (b"[]", 422),
        (b'"a string"', 422),
        (b"null", 422),
        (b"12", 422),
    ],
)
async def test_malformed_bodies(api, raw, status):
    ann = await api.register("ann@example.org")
    before = state()
    response = await api.call("POST", "/api/petitions", raw=raw, token=ann["token"])
    assert response.status == status
    assert set(response.body["error"]) >= {"code", "message"}
    assert state() == before


@pytest.mark.gen_test
async def test_oversized_body_is_413(api):
    ann = await api.register("ann@example.org")
    body = json.dumps({"title": "big", "description": "x" * 200_000}).encode()
    response = await api.call("POST", "/api/petitions", raw=body, token=ann["token"])
    assert response.status == 413
    assert response.body["error"]["code"] == "payload_too_large"


@pytest.mark.gen_test(timeout=60)  # a password hash for each of its sign-ins, on a busy machine
async def test_every_field_of_every_write_survives_nasty_values(api, make_admin):
    ann = await api.register("ann@example.org")
    admin = make_admin()
    petition = await api.file_petition(ann["token"])
    targets = [
        (
            "POST",
            "/api/petitions",
            ann["token"],
            {"title": "Valid title", "description": "Valid"},
            ["title", "description", "category", "location", "unknown_field"],
        ),
        (
            "PATCH",
            f"/api/petitions/{petition['petition_id']}/status",
            admin["token"],
            {"status": "under_review"},
            ["status", "note", "version", "reason"],
        ),
        ("PATCH", "/api/me", ann["token"], {"email_updates": True}, ["email_updates"]),
        (
            "POST",
            "/api/auth/register",
            None,
            {"email": "x@y.org", "name": "X", "password": "12345678"},
            ["email", "name", "password"],
        ),
        (
            "POST",
            "/api/auth/login",
            None,
            {"email": "ann@example.org", "password": "12345678"},
            ["email", "password"],
        ),
    ]
    for method, path, token, valid, fields in targets:
        for field in fields:
            for value in NASTY_VALUES:
                body = dict(valid, **{field: value})
                raw = json.dumps(body).encode()
                response = await api.call(method, path, raw=raw, token=token)
                assert response.status < 500, (method, path, field, value, response.body)
                assert (
                    isinstance(response.body, dict) and "error" in response.body or response.status < 300
                ), (method, path, field, value, response.body)
                if response.status == 422:
                    assert response.body["error"]["fields"]
                if path.endswith("/status") and response.status == 200:
                    # Put it back so the next value meets the same petition.
                    petition = response.body
                    path_back = f"/api/petitions/{petition['petition_id']}/status"
                    await api.patch(path_back, {"status": "rejected", "note": "reset"}, admin["token"])
                    await api.patch(path_back, {"status": "under_review"}, admin["token"])


@pytest.mark.gen_test
async def test_sql_looking_and_unicode_text_is_stored_verbatim(api):
    ann = await api.register("ann@example.org")
    title = "Robert'); DROP TABLE petition;-- 💥 ñ"
    created = await api.file_petition(ann["token"], title, description='" OR 1=1 -- <b>x</b>')
    fetched = await api.get(f"/api/petitions/{created['petition_id']}")
    assert fetched.body["title"] == title
    assert fetched.body["description"] == '" OR 1=1 -- <b>x</b>'
    found = await api.get("/api/petitions?q=" + "DROP%20TABLE")
    assert [p["petition_id"] for p in found.body["petitions"]] == [created["petition_id"]]


@pytest.mark.gen_test
async def test_limits_on_text_fields(api):
    ann = await api.register("ann@example.org")
    cases = {
        "title": ["ab", "x" * 201],
        "description": ["", "x" * 10_001],
        "category": ["x" * 101],
        "location": ["x" * 101],
    }
    for field, values in cases.items():
        for value in values:
            body = {"title": "Valid title", "description": "Valid", field: value}
            response = await api.post("/api/petitions", body, ann["token"])
            assert response.status == 422, (field, len(value))
            assert field in response.body["error"]["fields"]
    ok = {"title": "x" * 200, "description": "x" * 10_000, "category": "c" * 100, "location": "l" * 100}
    assert (await api.post("/api/petitions", ok, ann["token"])).status == 201


@pytest.mark.gen_test
async def test_huge_ids_and_query_values(api):
    assert (await api.get("/api/petitions/" + "9" * 40)).status == 404
    assert (await api.get("/api/petitions/999999999999999")).status == 404
    assert (await api.get("/api/petitions?cursor=" + "9" * 40)).status == 422
    assert (await api.get("/api/petitions?q=" + "x" * 5000)).status == 422
