"""Roles on every route and channel: citizens, moderators (the lifecycle and the office), admins (also people).

Each test runs on SQLite and PostgreSQL against the real server; sockets are
real WebSocket clients.
"""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from tests.conftest import read_json
from tests.test_sockets import handshake
from tornado_petitions.accounts import Identity
from tornado_petitions.models import User, utcnow
from tornado_petitions.roles import GRANTS, ROLES, Permission, allows
from tornado_petitions.token_cache import TokenCache


async def set_role(api, admin: dict, user: dict, role: str):
    return await api.patch(f"/api/admin/users/{user['user']['user_id']}", {"role": role}, admin["token"])


def assert_forbidden(response) -> None:
    assert response.status == 403, response.body
    assert response.body["error"]["code"] == "forbidden", response.body


def test_the_table_gives_moderators_the_office_and_admins_also_people_blocks_and_invalidations():
    assert set(GRANTS) == set(ROLES) and GRANTS["citizen"] == frozenset()
    office = {
        Permission.CHANGE_STATUS,
        Permission.VIEW_QUEUES,
        Permission.VIEW_TRENDING,
        Permission.ADMIN_FEED,
    }
    assert office | {Permission.DASHBOARD} <= GRANTS["moderator"]
    for permission in (
        Permission.CHANGE_ROLES,
        Permission.LIST_USERS,
        Permission.BLOCK_USERS,
        Permission.INVALIDATE_SIGNATURES,
        Permission.READ_AUDIT,
    ):
        assert not allows("moderator", permission) and allows("admin", permission)
        assert not allows("citizen", permission)
    assert GRANTS["moderator"] < GRANTS["admin"] == frozenset(Permission)
    assert not allows("superuser", Permission.VIEW_QUEUES)  # an unknown role holds nothing


@pytest.mark.gen_test
async def test_a_moderator_publishes_and_rejects_but_may_not_touch_people_or_the_audit_log(
    api, sockets, make_user
):
    make_user("admin")
    moderator = make_user("moderator")
    ann = await api.register("ann@example.org", "Ann")
    first = await api.file_petition(ann["token"], "More benches")
    second = await api.file_petition(ann["token"], "Fewer benches")

    feed = await sockets.connect("/ws/admin", moderator["token"])
    assert (await read_json(feed))["type"] == "hello"
    moved = await api.patch(
        f"/api/petitions/{first['petition_id']}/status", {"status": "under_review"}, moderator["token"]
    )
    assert moved.status == 200 and moved.body["status"] == "under_review"
    rejected = await api.patch(
        f"/api/petitions/{second['petition_id']}/status",
        {"status": "rejected", "note": "Contradicts petition 1.", "reason": "duplicate"},
        moderator["token"],
    )
    assert rejected.status == 200 and rejected.body["status"] == "rejected"
    events = [await read_json(feed) for _ in range(2)]
    assert [(e["event"], e["to_status"]) for e in events] == [
        ("status_changed", "under_review"),
        ("status_changed", "rejected"),
    ]
    assert {e["actor"]["user_id"] for e in events} == {moderator["user"]["user_id"]}
    assert (await api.get("/api/admin/queues", moderator["token"])).status == 200

    me = await api.get("/api/me", moderator["token"])
    assert me.body["role"] == "moderator"
    assert "change_status" in me.body["permissions"] and "admin_feed" in me.body["permissions"]
    for withheld in ("change_roles", "list_users", "block_users", "invalidate_signatures", "read_audit"):
        assert withheld not in me.body["permissions"]

    assert_forbidden(await set_role(api, moderator, ann, "moderator"))
    assert_forbidden(await set_role(api, moderator, moderator, "admin"))
    assert_forbidden(await api.get("/api/admin/users", moderator["token"]))
    refused = await api.get("/api/admin/audit", moderator["token"])
    assert_forbidden(refused)
    assert "only admins may read the audit log" == refused.body["error"]["message"]
    assert (await api.get(f"/api/petitions/{second['petition_id']}")).body["status"] == "rejected"
    assert User.get_by_id(ann["user"]["user_id"]).role == "citizen"


@pytest.mark.gen_test
async def test_a_citizen_gets_403_on_everything_of_the_office(api, make_user):
    make_user("admin")
    ann = await api.register("ann@example.org", "Ann")
    bob = await api.register("bob@example.org", "Bob")
    petition = await api.file_petition(ann["token"])
    status_path = f"/api/petitions/{petition['petition_id']}/status"
    assert_forbidden(await api.patch(status_path, {"status": "under_review"}, ann["token"]))
    assert_forbidden(await api.get("/api/admin/queues", ann["token"]))
    assert_forbidden(await api.get("/api/admin/users", ann["token"]))
    assert_forbidden(await api.get("/api/admin/audit", ann["token"]))
    assert_forbidden(await set_role(api, ann, ann, "admin"))
    assert_forbidden(await handshake(api, "/ws/admin", ann["token"]))
    assert_forbidden(await handshake(api, f"/ws/petitions/my/{bob['user']['user_id']}", ann["token"]))
    assert (await api.get("/api/me", ann["token"])).body["permissions"] == []
    # Without a token the office's routes are 401, not 403.
    assert (await api.get("/api/admin/audit")).status == 401
    assert (await api.get(f"/api/petitions/{petition['petition_id']}")).body["status"] == "submitted"


@pytest.mark.gen_test
async def test_a_role_change_applies_at_once_to_a_token_already_issued_and_closes_the_office_socket_4403(
    api, sockets, make_user
):
    admin = make_user("admin")
    ann = await api.register("ann@example.org", "Ann")
    # Used once, so the token is in the token cache with the citizen role.
    assert_forbidden(await api.get("/api/admin/queues", ann["token"]))

    promoted = await set_role(api, admin, ann, "moderator")
    assert promoted.status == 200
    assert promoted.body == {**ann["user"], "role": "moderator"}
    assert (await api.get("/api/admin/queues", ann["token"])).status == 200
    assert (await api.get("/api/me", ann["token"])).body["role"] == "moderator"

    office = await sockets.connect("/ws/admin", ann["token"])
    assert (await read_json(office))["type"] == "hello"
    own = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
    assert (await read_json(own))["type"] == "update"

    demoted = await set_role(api, admin, ann, "citizen")
    assert demoted.status == 200 and demoted.body["role"] == "citizen"
    assert_forbidden(await api.get("/api/admin/queues", ann["token"]))
    assert await read_json(office) is None
    assert office.close_code == 4403
    # The citizen's own channel stays open and live.
    await api.file_petition(ann["token"], "Still mine")
    update = await read_json(own)
    assert update["type"] == "update" and update["petitions"][0]["title"] == "Still mine"
    assert_forbidden(await handshake(api, "/ws/admin", ann["token"]))


@pytest.mark.gen_test
async def test_the_last_admin_cannot_be_demoted(api, make_user):
    ada = make_user("admin", "ada@example.org", "Ada")
    last = await set_role(api, ada, ada, "moderator")
    assert last.status == 409 and last.body["error"]["code"] == "last_admin", last.body
    assert (await api.get("/api/admin/users", ada["token"])).status == 200  # still an admin

    bea = make_user("admin", "bea@example.org", "Bea")
    assert (await set_role(api, ada, ada, "moderator")).status == 200
    assert (await set_role(api, bea, bea, "citizen")).status == 409
    # Unchanged is fine, even for the last admin.
    assert (await set_role(api, bea, bea, "admin")).status == 200


@pytest.mark.gen_test
async def test_a_role_change_of_an_unknown_user_or_to_an_unknown_role_is_refused(api, make_user):
    admin = make_user("admin")
    missing = await api.patch("/api/admin/users/999999", {"role": "moderator"}, admin["token"])
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
    bad = await set_role(api, admin, admin, "superuser")
    assert bad.status == 422 and bad.body["error"]["fields"] == {
        "role": "must be one of citizen, moderator, admin"
    }
    absent = await api.patch(f"/api/admin/users/{admin['user']['user_id']}", {}, admin["token"])
    assert absent.status == 422 and absent.body["error"]["fields"] == {"role": "is required"}


@pytest.mark.gen_test
async def test_admins_list_users_with_emails_by_name_or_email_in_pages(api, make_user):
    admin = make_user("admin", "ada@example.org", "Ada")
    for i in range(5):
        await api.register(f"person{i}@example.org", f"Person {i}")
    await api.register("zed@elsewhere.org", "Zed 100%")

    first = await api.get("/api/admin/users?q=PERSON&limit=2", admin["token"])
    assert first.status == 200
    assert [user["email"] for user in first.body["users"]] == ["person4@example.org", "person3@example.org"]
    assert set(first.body["users"][0]) == {"user_id", "email", "name", "role", "email_verified"}
    names = [user["name"] for user in first.body["users"]]
    cursor = first.body["next_cursor"]
    while cursor is not None:
        page = await api.get(f"/api/admin/users?q=person&limit=2&cursor={cursor}", admin["token"])
        names += [user["name"] for user in page.body["users"]]
        cursor = page.body["next_cursor"]
    assert names == [f"Person {i}" for i in (4, 3, 2, 1, 0)]
    # % and _ are literal characters, not LIKE wildcards.
    percent = await api.get("/api/admin/users?q=0%25", admin["token"])
    assert [user["name"] for user in percent.body["users"]] == ["Zed 100%"]
    assert (await api.get("/api/admin/users?q=_", admin["token"])).body["users"] == []
    every = await api.get("/api/admin/users", admin["token"])
    assert len(every.body["users"]) == 7 and every.body["next_cursor"] is None
    bad = await api.get("/api/admin/users?cursor=x&limit=0&qq=Person", admin["token"])
    assert bad.status == 422 and set(bad.body["error"]["fields"]) == {"cursor", "limit", "qq"}
    assert bad.body["error"]["fields"]["qq"] == "is not a parameter of this route"


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_create_user_takes_a_role_and_admin_stays_its_short_form(tmp_path, db_url):
    def create(email: str, *flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tornado_petitions", "create-user", "--email", email]
        command += ["--name", "N", "--db", db_url, *flags]
        return subprocess.run(command, input="a long password\n", text=True, capture_output=True)

    assert "created moderator m@example.org" in create("m@example.org", "--role", "moderator").stdout
    assert "created admin a@example.org" in create("a@example.org", "--admin").stdout
    assert "created citizen c@example.org" in create("c@example.org").stdout
    refused = create("x@example.org", "--role", "owner")
    assert refused.returncode == 2 and "invalid choice: 'owner'" in refused.stderr


def test_an_identity_read_before_a_role_change_is_not_cached_after_it():
    """A request that read the old role while the change committed must not put it back in the cache."""
    cache = TokenCache(lambda: True)
    identity = Identity(
        user_id=7,
        email="ann@example.org",
        name="Ann",
        role="moderator",
        token_hash="ab" * 32,
        expires_at=utcnow() + datetime.timedelta(hours=1),
    )
    generation = cache.generation  # the request starts reading the token's row
    cache.evict_user(7)  # meanwhile a role change commits and evicts the user's tokens
    cache.put(identity, generation)
    assert cache.get(identity.token_hash) is None
    cache.put(identity, cache.generation)  # a read after the change is cached
    assert cache.get(identity.token_hash) == identity
    cache.evict_user(7)
    assert cache.get(identity.token_hash) is None
