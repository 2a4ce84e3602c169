"""Fraud an office can see and undo: quiet per-address limits, blocks, trending alerts, invalidations."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.conftest import read_json
from tornado_petitions.models import Signature


@pytest.fixture
def settings(settings, catcher):
    return dataclasses.replace(
        settings,
        smtp_url=catcher.url,
        verify_email="off",  # the tests register their signers as the API does without mail
        mail_per_second=500.0,
        xheaders=True,
        signatures_per_address=3,
        trending_threshold=4,
        invalidation_batch=7,
        response_threshold=3,
    )


def from_address(address: str) -> dict:
    return {"X-Forwarded-For": address}


async def sign_as(api, pid: int, citizen: dict, address: str):
    return await api.call(
        "POST", f"/api/petitions/{pid}/signatures", token=citizen["token"], headers=from_address(address)
    )


async def sign_by_mail(api, pid: int, email: str, address: str):
    body = {"name": "Signer", "email": email, "country": "GB"}
    return await api.call("POST", f"/api/petitions/{pid}/signatures", body, headers=from_address(address))


def states(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for (state,) in Signature.select(Signature.state).where(Signature.petition == pid).tuples():
        found[state] = found.get(state, 0) + 1
    return found


async def count_of(api, pid: int) -> int:
    return (await api.get(f"/api/petitions/{pid}")).body["signature_count"]


async def new_petition(api, email: str = "author@example.org") -> int:
    author = await api.register(email)
    return (await api.file_petition(author["token"]))["petition_id"]


@pytest.mark.gen_test(timeout=60)
async def test_past_the_limit_a_signature_is_kept_fraudulent_answered_the_same_and_never_mailed(
    api, catcher, make_citizens
):
    pid = await new_petition(api)
    answers = [await sign_by_mail(api, pid, f"person{i}@example.net", "203.0.113.7") for i in range(4)]
    assert [answer.status for answer in answers] == [202] * 4
    assert all(answer.body == answers[0].body for answer in answers)
    await catcher.wait(3, 20.0)
    await asyncio.sleep(0.5)  # a fourth mail would show by now
    assert sorted(recipient for recipient, _ in catcher.messages) == [
        f"person{i}@example.net" for i in range(3)
    ]
    assert states(pid) == {"pending": 3, "fraudulent": 1}

    # An account's signature: the 201 with the petition, as a good one gets, and the count unmoved.
    citizens = make_citizens(4)
    signed = [await sign_as(api, pid, citizen, "198.51.100.20") for citizen in citizens]
    assert [answer.status for answer in signed] == [201] * 4
    assert [answer.body["signature_count"] for answer in signed] == [1, 2, 3, 3]
    assert await count_of(api, pid) == 3
    assert states(pid) == {"pending": 3, "validated": 3, "fraudulent": 2}
    # Another address is not held back, and another petition from the same address counts.
    assert (await sign_as(api, pid, make_citizens(1, "other")[0], "198.51.100.21")).body[
        "signature_count"
    ] == 4
    second = await new_petition(api, "author2@example.org")
    assert (await sign_as(api, second, citizens[3], "198.51.100.20")).body["signature_count"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_domain_and_network_blocks_catch_new_signatures_until_lifted(
    api, catcher, make_admin, make_citizens
):
    admin = make_admin()
    pid = await new_petition(api)
    made = []
    for kind, value in (
        ("domain", "Spam.Example"),
        ("address", "198.51.100.0/24"),
        ("address", "2001:db8::/32"),
    ):
        answer = await api.post(
            "/api/admin/blocks", {"kind": kind, "value": value, "note": "storm"}, admin["token"]
        )
        assert answer.status == 201, answer.body
        made.append(answer.body)
    assert [block["value"] for block in made] == ["spam.example", "198.51.100.0/24", "2001:db8::/32"]
    listed = await api.get("/api/admin/blocks", admin["token"])
    assert [block["block_id"] for block in listed.body["blocks"]] == [b["block_id"] for b in reversed(made)]
    bad = await api.post("/api/admin/blocks", {"kind": "address", "value": "10.0.0.300/8"}, admin["token"])
    assert bad.status == 422 and "value" in bad.body["error"]["fields"]
    again = await api.post("/api/admin/blocks", {"kind": "domain", "value": "spam.example"}, admin["token"])
    assert again.status == 409

    # A subdomain of a blocked domain: the same 202, no mail.
    caught = await sign_by_mail(api, pid, "bot@mail.spam.example", "192.0.2.1")
    good = await sign_by_mail(api, pid, "human@example.net", "192.0.2.2")
    assert caught.status == good.status == 202 and caught.body == good.body
    await catcher.wait(1, 20.0)
    await asyncio.sleep(0.5)
    assert [recipient for recipient, _ in catcher.messages] == ["human@example.net"]

    citizens = make_citizens(4)
    for citizen, address in zip(citizens, ("198.51.100.9", "2001:db8::1", "198.51.101.1"), strict=False):
        assert (await sign_as(api, pid, citizen, address)).status == 201
    assert await count_of(api, pid) == 1  # only the one from outside every block
    assert states(pid) == {"fraudulent": 3, "pending": 1, "validated": 1}

    lifted = await api.delete(f"/api/admin/blocks/{made[1]['block_id']}", admin["token"])
    assert lifted.status == 204
    assert (await api.delete(f"/api/admin/blocks/{made[1]['block_id']}", admin["token"])).status == 404
    assert (await sign_as(api, pid, citizens[3], "198.51.100.10")).body["signature_count"] == 2
    assert states(pid)["fraudulent"] == 3  # what a block caught stays caught
    # Each block and the unblock are in the audit log, with who and from where (the forwarded address).
    audited = (await api.get("/api/admin/audit?action=block", admin["token"])).body["entries"]
    assert [(e["target"], e["details"]["value"]) for e in audited] == [
        ({"type": "block", "id": b["block_id"]}, b["value"]) for b in reversed(made)
    ]
    unblocked = (await api.get("/api/admin/audit?action=unblock", admin["token"])).body["entries"]
    assert [(e["target"]["id"], e["actor"]["user_id"]) for e in unblocked] == [
        (made[1]["block_id"], admin["user"]["user_id"])
    ]


@pytest.mark.gen_test(timeout=60)
async def test_one_trending_alert_per_address_and_domain_and_the_trending_lists(
    api, sockets, make_admin, make_citizens
):
    admin = make_admin()
    feed = await sockets.connect("/ws/admin", admin["token"])
    assert (await read_json(feed))["type"] == "hello"
    pid = await new_petition(api)
    for citizen in make_citizens(7):
        assert (await sign_as(api, pid, citizen, "203.0.113.50")).status == 201
    alerts = []
    while True:
        try:
            frame = await read_json(feed, timeout=1.0)
        except TimeoutError:
            break
        if frame["type"] == "alert":
            alerts.append(frame)
    assert sorted(alerts, key=lambda alert: alert["kind"]) == [
        {
            "type": "alert",
            "kind": "trending_address",
            "petition_id": pid,
            "value": "203.0.113.50",
            "count": 5,
        },
        {"type": "alert", "kind": "trending_domain", "petition_id": pid, "value": "example.org", "count": 5},
    ]
    for citizen in make_citizens(2, "late"):
        await sign_as(api, pid, citizen, "203.0.113.51")
    trending = await api.get(f"/api/admin/petitions/{pid}/trending", admin["token"])
    assert trending.status == 200
    assert trending.body == {
        "window_s": 3600,
        "addresses": [{"value": "203.0.113.50", "count": 7}, {"value": "203.0.113.51", "count": 2}],
        "domains": [{"value": "example.org", "count": 9}],  # fraudulent ones too
    }
    assert (await api.get("/api/admin/petitions/999999/trending", admin["token"])).status == 404


async def wait_for_run(api, admin, run_id: int, done) -> dict:
    for _ in range(400):
        run = (await api.get(f"/api/admin/invalidations/{run_id}", admin["token"])).body
        if done(run):
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"invalidation {run_id} never got there: {run}")


@pytest.mark.gen_test(timeout=90)
async def test_an_invalidation_counts_first_then_takes_back_in_batches_and_the_count_falls_live(
    app, api, sockets, make_admin, make_citizens
):
    app.screen.per_address = 1000
    admin = make_admin()
    pid = await new_petition(api)
    storm, honest = make_citizens(30, "storm"), make_citizens(5, "honest")
    for citizen in storm:
        await sign_as(api, pid, citizen, "203.0.113.9")
    for i, citizen in enumerate(honest):
        await sign_as(api, pid, citizen, f"192.0.2.{i + 1}")
    assert await count_of(api, pid) == 35

    nothing = await api.post("/api/admin/invalidations", {"dry_run": True}, admin["token"])
    assert nothing.status == 422 and nothing.body["error"]["code"] == "invalid_fields"
    conditions = {"petition_id": pid, "address": "203.0.113.9"}
    dry = await api.post("/api/admin/invalidations", {**conditions, "dry_run": True}, admin["token"])
    assert dry.status == 200 and dry.body == {"matched": 30}
    assert await count_of(api, pid) == 35

    watcher = await sockets.connect("/ws/petitions")
    assert (await read_json(watcher))["type"] == "hello"
    started = await api.post("/api/admin/invalidations", conditions, admin["token"])
    assert started.status == 202, started.body
    assert started.body["state"] == "running" and started.body["matched"] == 30
    run = await wait_for_run(api, admin, started.body["invalidation_id"], lambda r: r["state"] != "running")
    assert (run["state"], run["matched"], run["invalidated"]) == ("completed", 30, 30)
    assert run["conditions"] == conditions and run["created_by"] == admin["user"]["user_id"]
    assert await count_of(api, pid) == 5
    assert states(pid) == {"invalidated": 30, "validated": 5}

    seen = []
    while not seen or seen[-1] != 5:
        frame = await read_json(watcher)
        if frame["type"] == "counts" and str(pid) in frame["counts"]:
            seen.append(frame["counts"][str(pid)])
    assert seen == sorted(seen, reverse=True) and seen[-1] == 5  # it only falls, batch by batch


@pytest.mark.gen_test(timeout=90)
async def test_a_cancelled_invalidation_stops_between_batches_keeping_what_it_did(
    app, api, make_admin, make_citizens
):
    app.screen.per_address = 1000
    app.invalidations.pause = 0.1  # batches of 7, a tenth of a second apart: time to cancel half-way
    admin = make_admin()
    pid = await new_petition(api)
    for citizen in make_citizens(40):
        await sign_as(api, pid, citizen, "203.0.113.9")
    started = await api.post("/api/admin/invalidations", {"address": "203.0.113.9"}, admin["token"])
    run_id = started.body["invalidation_id"]
    await wait_for_run(api, admin, run_id, lambda r: r["invalidated"] > 0)
    cancelled = await api.delete(f"/api/admin/invalidations/{run_id}", admin["token"])
    assert cancelled.status == 200 and cancelled.body["state"] == "cancelled"
    await asyncio.sleep(0.5)
    run = (await api.get(f"/api/admin/invalidations/{run_id}", admin["token"])).body
    assert run["state"] == "cancelled" and 0 < run["invalidated"] < 40
    assert run["invalidated"] == cancelled.body["invalidated"]  # no batch after the cancel
    assert await count_of(api, pid) == 40 - run["invalidated"]
    assert states(pid) == {"invalidated": run["invalidated"], "validated": 40 - run["invalidated"]}
    assert (await api.get("/api/admin/invalidations/999999", admin["token"])).status == 404


@pytest.mark.gen_test(timeout=60)
async def test_milestones_reached_stay_reached_when_the_count_falls(app, api, make_admin, make_citizens):
    app.screen.per_address = 1000
    admin = make_admin()
    pid = await new_petition(api)
    citizens = make_citizens(3)
    for citizen in citizens:
        await sign_as(api, pid, citizen, "203.0.113.9")
    petition = (await api.get(f"/api/petitions/{pid}")).body
    started = await api.post("/api/admin/invalidations", {"petition_id": pid}, admin["token"])
    await wait_for_run(api, admin, started.body["invalidation_id"], lambda r: r["state"] == "completed")
    after = (await api.get(f"/api/petitions/{pid}")).body
    (entry,) = (await api.get("/api/admin/audit?action=invalidation", admin["token"])).body["entries"]
    assert entry["target"] == {"type": "invalidation", "id": started.body["invalidation_id"]}
    assert entry["details"] == {"conditions": {"petition_id": pid}, "matched": 3}
    assert [m["milestone"] for m in petition["milestones"]] == ["response"]
    assert after["signature_count"] == 0 and after["milestones"] == petition["milestones"]


@pytest.mark.gen_test(timeout=30)
async def test_citizens_may_not_block_invalidate_or_see_trending(api):
    citizen = await api.register("citizen@example.org")
    token = citizen["token"]
    calls = [
        ("GET", "/api/admin/blocks", None),
        ("POST", "/api/admin/blocks", {"kind": "domain", "value": "example.org"}),
        ("DELETE", "/api/admin/blocks/1", None),
        ("GET", "/api/admin/petitions/1/trending", None),
        ("POST", "/api/admin/invalidations", {"domain": "example.org"}),
        ("GET", "/api/admin/invalidations/1", None),
        ("DELETE", "/api/admin/invalidations/1", None),
    ]
    for method, path, body in calls:
        answer = await api.call(method, path, body, token)
        assert answer.status == 403, (method, path, answer.body)
        assert (await api.call(method, path, body)).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_a_run_left_running_by_a_restart_is_resumed_at_start(app, api, make_admin, make_citizens):
    from tornado_petitions import accounts, audit, invalidations

    app.screen.per_address = 1000
    admin = make_admin()
    pid = await new_petition(api)
    for citizen in make_citizens(10):
        await sign_as(api, pid, citizen, "203.0.113.9")
    # Recorded as a request would, but its process stopped before running a batch.
    identity = accounts.Identity(admin["user"]["user_id"], "admin@example.org", "Admin", "admin", "", None)
    actor = audit.Actor(identity, "127.0.0.1")
    conditions = invalidations.Conditions(petition_id=pid)
    newest = invalidations.newest_signature_id()
    run = invalidations.create(actor, conditions, invalidations.count_matching(conditions, newest), newest)
    assert run["state"] == "running" and (await count_of(api, pid)) == 10
    await app.invalidations.resume()  # what start() does
    done = await wait_for_run(api, admin, run["invalidation_id"], lambda r: r["state"] == "completed")
    assert done["invalidated"] == 10 and await count_of(api, pid) == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_confirmation_link_of_an_invalidated_signature_no_longer_works(
    api, catcher, make_admin, http_client, base_url
):
    """The mailed link, followed after the office took the signature back: a 404 page and a 404 post, never a 500."""
    import re

    admin = make_admin()
    pid = await new_petition(api)
    assert (await sign_by_mail(api, pid, "late@example.net", "198.51.100.7")).status == 202
    await catcher.wait(1, 20.0)
    (_, message), *_ = catcher.messages
    body = message.get_body(("plain",)).get_content()
    token = re.search(r"/signatures/confirm/([0-9A-Za-z]+)", body).group(1)
    assert (await api.post("/api/signatures/confirm", {"token": token})).status == 200
    started = await api.post("/api/admin/invalidations", {"email": "late@example.net"}, admin["token"])
    assert started.status == 202, started.body
    await wait_for_run(api, admin, started.body["invalidation_id"], lambda r: r["state"] == "completed")
    assert states(pid) == {"invalidated": 1}

    page = await http_client.fetch(f"{base_url}/signatures/confirm/{token}", raise_error=False)
    assert page.code == 404
    again = await api.post("/api/signatures/confirm", {"token": token})
    assert again.status == 404 and again.body["error"]["code"] == "not_found"
    assert await count_of(api, pid) == 0
