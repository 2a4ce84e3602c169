"""Petitions over HTTP: filing, reading, listing, the whole lifecycle table, signatures, history."""

from __future__ import annotations

import pytest

from tornado_petitions.lifecycle import STATUSES, TRANSITIONS

# A path from `submitted` to each status, so every row of the lifecycle table can be tested.
PATH_TO = {
    "submitted": [],
    "under_review": ["under_review"],
    "in_progress": ["under_review", "in_progress"],
    "resolved": ["under_review", "resolved"],
    "rejected": ["rejected"],
}


async def move(api, token, petition, status, note="because", version=None):
    body = {"status": status, "note": note}
    if version is not None:
        body["version"] = version
    return await api.patch(f"/api/petitions/{petition['petition_id']}/status", body, token)


async def petition_in(api, citizen, admin, status):
    petition = await api.file_petition(citizen["token"])
    for step in PATH_TO[status]:
        response = await move(api, admin["token"], petition, step)
        assert response.status == 200, response.body
        petition = response.body
    assert petition["status"] == status
    return petition


@pytest.mark.gen_test
async def test_file_and_read_a_petition(api):
    ann = await api.register("ann@example.org", "Ann")
    created = await api.file_petition(
        ann["token"], "Más bancos en el parque 🌳", category="parks", location="Elm St"
    )
    assert created["status"] == "submitted"
    assert created["signature_count"] == 0 and created["version"] == 1
    assert created["category"] == "parks" and created["location"] == "Elm St"
    assert created["submitted_at"].endswith("Z")
    assert "email" not in created["author"]
    fetched = await api.get(f"/api/petitions/{created['petition_id']}")
    assert fetched.status == 200 and fetched.body == created
    mine = await api.get("/api/petitions/my", ann["token"])
    assert [p["petition_id"] for p in mine.body["petitions"]] == [created["petition_id"]]


@pytest.mark.gen_test
async def test_every_lifecycle_move(api, make_admin):
    citizen = await api.register("ann@example.org")
    admin = make_admin()
    for source in STATUSES:
        for target in STATUSES:
            petition = await petition_in(api, citizen, admin, source)
            response = await move(api, admin["token"], petition, target)
            if target in TRANSITIONS[source]:
                assert response.status == 200, (source, target, response.body)
                assert response.body["status"] == target
                assert response.body["version"] == petition["version"] + 1
                assert response.body["response"] == "because"
            else:
                assert response.status == 409, (source, target)
                assert response.body["error"]["code"] == "invalid_transition"
                assert response.body["error"]["allowed"] == list(TRANSITIONS[source])
                unchanged = await api.get(f"/api/petitions/{petition['petition_id']}")
                assert unchanged.body["status"] == source


@pytest.mark.gen_test
async def test_rejecting_needs_a_note(api, make_admin):
    citizen = await api.register("ann@example.org")
    admin = make_admin()
    petition = await api.file_petition(citizen["token"])
    response = await move(api, admin["token"], petition, "rejected", note="   ")
    assert response.status == 422
    assert "note" in response.body["error"]["fields"]
    assert (await move(api, admin["token"], petition, "rejected", note="Out of scope")).status == 200


@pytest.mark.gen_test
async def test_stale_version_is_409_and_changes_nothing(api, make_admin):
    citizen = await api.register("ann@example.org")
    first, second = make_admin("a1@example.org"), make_admin("a2@example.org")
    petition = await api.file_petition(citizen["token"])
    ok = await move(api, first["token"], petition, "under_review", version=1)
    assert ok.status == 200 and ok.body["version"] == 2
    stale = await move(api, second["token"], petition, "rejected", note="no", version=1)
    assert stale.status == 409
    assert stale.body["error"]["code"] == "version_conflict"
    now = await api.get(f"/api/petitions/{petition['petition_id']}")
    assert now.body["status"] == "under_review" and now.body["version"] == 2


@pytest.mark.gen_test
async def test_only_admins_change_status(api):
    citizen = await api.register("ann@example.org")
    petition = await api.file_petition(citizen["token"])
    response = await move(api, citizen["token"], petition, "under_review")
    assert response.status == 403
    assert (await move(api, None, petition, "under_review")).status == 401


@pytest.mark.gen_test
async def test_signatures(api):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    petition = await api.file_petition(ann["token"])
    path = f"/api/petitions/{petition['petition_id']}/signatures"
    signed = await api.post(path, token=bob["token"])
    assert signed.status == 201 and signed.body["signature_count"] == 1
    twice = await api.post(path, token=bob["token"])
    assert twice.status == 409 and twice.body["error"]["code"] == "already_signed"
    assert (await api.post(path, token=ann["token"])).body["signature_count"] == 2
    withdrawn = await api.delete(path, bob["token"])
    assert withdrawn.status == 200 and withdrawn.body["signature_count"] == 1
    again = await api.delete(path, bob["token"])
    assert again.status == 409 and again.body["error"]["code"] == "not_signed"
    assert (await api.post(path)).status == 401
    assert (await api.post("/api/petitions/999999/signatures", token=bob["token"])).status == 404
    fetched = await api.get(f"/api/petitions/{petition['petition_id']}")
    assert fetched.body["signature_count"] == 1
    assert (await api.get("/api/me/signatures", ann["token"])).body == {
        "petition_ids": [petition["petition_id"]]
    }
    assert (await api.get("/api/me/signatures", bob["token"])).body == {"petition_ids": []}
    assert (await api.get("/api/me/signatures")).status == 401


@pytest.mark.gen_test
async def test_history_lists_who_did_what(api, make_admin):
    ann = await api.register("ann@example.org", "Ann")
    admin = make_admin(name="Alice Admin")
    petition = await api.file_petition(ann["token"])
    await move(api, admin["token"], petition, "under_review", note="Looking into it")
    await api.post(f"/api/petitions/{petition['petition_id']}/signatures", token=ann["token"])
    history = await api.get(f"/api/petitions/{petition['petition_id']}/events")
    assert history.status == 200
    events = history.body["events"]
    # Signatures are state (the count), not history.
    assert [e["event"] for e in events] == ["created", "status_changed"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[1]["actor"]["name"] == "Alice Admin"
    assert events[1]["from_status"] == "submitted" and events[1]["to_status"] == "under_review"
    assert events[1]["note"] == "Looking into it"
    assert (await api.get("/api/petitions/424242/events")).status == 404


@pytest.mark.gen_test
async def test_list_filters_and_cursor_pages(api, make_admin):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    admin = make_admin()
    made = []
    for i in range(7):
        author = ann if i % 2 == 0 else bob
        made.append(
            await api.file_petition(
                author["token"], f"Petition number {i}", category="roads" if i < 3 else "parks"
            )
        )
    await move(api, admin["token"], made[0], "under_review")

    everything = await api.get("/api/petitions")
    assert [p["petition_id"] for p in everything.body["petitions"]] == [
        p["petition_id"] for p in reversed(made)
    ]
    assert everything.body["next_cursor"] is None

    seen, cursor = [], None
    while True:
        page = await api.get("/api/petitions?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status == 200 and len(page.body["petitions"]) <= 3
        seen += [p["petition_id"] for p in page.body["petitions"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == [p["petition_id"] for p in reversed(made)]

    reviewing = await api.get("/api/petitions?status=under_review")
    assert [p["petition_id"] for p in reviewing.body["petitions"]] == [made[0]["petition_id"]]
    by_bob = await api.get(f"/api/petitions?author={bob['user']['user_id']}")
    assert {p["author"]["user_id"] for p in by_bob.body["petitions"]} == {bob["user"]["user_id"]}
    roads = await api.get("/api/petitions?category=roads")
    assert len(roads.body["petitions"]) == 3
    text = await api.get("/api/petitions?q=NUMBER%205")
    assert [p["title"] for p in text.body["petitions"]] == ["Petition number 5"]
    wildcard = await api.get("/api/petitions?q=%25")
    assert wildcard.body["petitions"] == []


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "cursor=-1", "status=open", "author=x"]
)
async def test_list_rejects_bad_queries(api, query):
    response = await api.get("/api/petitions?" + query)
    assert response.status == 422
    assert response.body["error"]["fields"]


@pytest.mark.gen_test
async def test_unknown_petition_and_route(api):
    assert (await api.get("/api/petitions/123456")).body["error"]["code"] == "not_found"
    assert (await api.get("/api/petitions/abc")).status == 404
    nowhere = await api.get("/api/nowhere")
    assert nowhere.status == 404 and nowhere.body["error"]["code"] == "not_found"
    wrong_method = await api.call("PUT", "/api/petitions")
    assert wrong_method.status == 405 and wrong_method.body["error"]["code"] == "method_not_allowed"
