"""Rate limits (429 with Retry-After) and size limits (413, 422, 1009, 4429), each set small through settings."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from tests.conftest import read_json
from tornado_petitions.errors import ApiError
from tornado_petitions.hub import CLOSE_TOO_MANY_SOCKETS
from tornado_petitions.rate_limit import RateLimiter, Rule
from tornado_petitions.settings import Limits, RateLimits, Settings

RATES = RateLimits(
    window_seconds=60.0,
    login_per_email=3,
    login_per_address=5,
    register_per_address=4,
    signatures_per_user=2,
    filing_window_seconds=24 * 3600.0,
    filings_per_user=3,
    filings_per_address=4,
)
LIMITS = Limits(body_bytes=2_000, ws_message_bytes=256, note_max=50, title_max=40, description_max=300)


@pytest.fixture
def db_backend() -> str:
    """Limits live in this process's memory, not the database: SQLite alone is enough."""
    return "sqlite"


@pytest.fixture
def settings(db_url) -> Settings:
    # Behind a load balancer: tests choose client addresses with X-Forwarded-For.
    return Settings(db_url=db_url, rate_limits=RATES, limits=LIMITS, max_sockets_per_user=2, xheaders=True)


def assert_too_many(response, window_seconds: float = RATES.window_seconds) -> int:
    """A 429 in the documented shape; returns its Retry-After (whole seconds within the window)."""
    assert response.status == 429, response.body
    assert response.body["error"]["code"] == "too_many_requests"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    return retry_after


async def login(api, email: str, password: str = "wrong password", address: str | None = None):
    headers = {"X-Forwarded-For": address} if address else None
    return await api.call("POST", "/api/auth/login", {"email": email, "password": password}, headers=headers)


@pytest.mark.gen_test(timeout=30)
async def test_sign_in_failures_per_email_and_address_are_limited_even_with_the_right_password(api):
    await api.register("ann@example.org", password="correct horse")
    for _ in range(RATES.login_per_email):
        assert (await login(api, "ann@example.org", address="198.51.100.7")).status == 401
    # The same address, differently cased, is the same account.
    assert_too_many(await login(api, "ANN@example.org", "correct horse", address="198.51.100.7"))
    # Another account from the same address still gets its tries (the address limit is higher).
    assert (await login(api, "bob@example.org", address="198.51.100.7")).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_no_one_elses_failures_lock_an_owner_out_not_even_a_botnets(api):
    await api.register("admin@example.org", password="correct horse")
    # Many addresses, each up to its limit of failures for this account and one over.
    for bot in range(8):
        address = f"203.0.113.{bot}"
        for _ in range(RATES.login_per_email):
            assert (await login(api, "admin@example.org", address=address)).status == 401
        assert_too_many(await login(api, "admin@example.org", address=address))
    owner = await login(api, "admin@example.org", "correct horse", address="192.0.2.10")
    assert owner.status == 200, owner.body
    # With no forwarded address: the peer's own, which no bot used either.
    assert (await login(api, "admin@example.org", "correct horse")).status == 200


@pytest.mark.gen_test(timeout=30)
async def test_only_failed_sign_ins_count(api):
    await api.register("ann@example.org", password="correct horse")
    for _ in range(RATES.login_per_address + 2):
        assert (await login(api, "ann@example.org", "correct horse", address="192.0.2.1")).status == 200
    # Failures after those successes get their full allowance.
    for _ in range(RATES.login_per_email):
        assert (await login(api, "ann@example.org", address="192.0.2.1")).status == 401
    assert_too_many(await login(api, "ann@example.org", address="192.0.2.1"))


@pytest.mark.gen_test(timeout=30)
async def test_sign_in_attempts_per_address_are_limited_across_emails(api):
    for number in range(RATES.login_per_address):
        assert (await login(api, f"user{number}@example.org")).status == 401
    assert_too_many(await login(api, "someone-new@example.org"))
    # The refusal counted against no (email, address) pair: that email still has its tries elsewhere
    # and, once this address's window ends, here too.
    assert (await login(api, "someone-new@example.org", address="192.0.2.2")).status == 401


async def file(api, token: str, title: str, address: str | None = None):
    headers = {"X-Forwarded-For": address} if address else None
    body = {"title": title, "description": "Filed to test the limits."}
    return await api.call("POST", "/api/petitions", body, token, headers=headers)


@pytest.mark.gen_test(timeout=30)
async def test_filings_are_limited_per_user_and_per_address_in_a_day_window(api):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    cara = await api.register("cara@example.org")
    # A refused body takes no slot.
    assert (await file(api, ann["token"], "")).status == 422
    for number in range(RATES.filings_per_user):
        assert (await file(api, ann["token"], f"Ann's petition {number}")).status == 201
    refused = await file(api, ann["token"], "One too many")
    retry_after = assert_too_many(refused, RATES.filing_window_seconds)
    assert retry_after > RATES.window_seconds  # the filing window is its own, not the minute's
    # Per address: Bob, from the same address, files the address's last one, then is refused too.
    assert RATES.filings_per_address == RATES.filings_per_user + 1
    assert (await file(api, bob["token"], "Bob's petition")).status == 201
    assert_too_many(await file(api, bob["token"], "Bob's second"), RATES.filing_window_seconds)
    # Bob's refusal took no slot of his own: from another address he files his second.
    assert (await file(api, bob["token"], "Bob's second", "192.0.2.3")).status == 201
    assert (await file(api, cara["token"], "Cara's petition", "192.0.2.4")).status == 201
    titles = [p["title"] for p in (await api.get("/api/petitions")).body["petitions"]]
    anns = [f"Ann's petition {number}" for number in range(RATES.filings_per_user)]
    assert sorted(titles) == sorted([*anns, "Bob's petition", "Bob's second", "Cara's petition"])


@pytest.mark.gen_test(timeout=30)
async def test_registrations_per_address_are_limited(api):
    for number in range(RATES.register_per_address):
        await api.register(f"user{number}@example.org")
    body = {"email": "one-more@example.org", "name": "One", "password": "correct horse"}
    assert_too_many(await api.post("/api/auth/register", body))
    # Nothing was created for the refused attempt.
    assert (await login(api, "one-more@example.org", "correct horse")).status == 401


@pytest.mark.gen_test(timeout=30)
async def test_signatures_per_user_are_limited(api):
    ann = await api.register("ann@example.org")
    bob = await api.register("bob@example.org")
    ids = [(await api.file_petition(ann["token"], f"Petition {n}"))["petition_id"] for n in range(3)]
    for petition_id in ids[:2]:
        assert (await api.post(f"/api/petitions/{petition_id}/signatures", token=bob["token"])).status == 201
    assert_too_many(await api.post(f"/api/petitions/{ids[2]}/signatures", token=bob["token"]))
    assert (await api.get(f"/api/petitions/{ids[2]}")).body["signature_count"] == 0
    # Limits are per user: Ann still signs.
    assert (await api.post(f"/api/petitions/{ids[2]}/signatures", token=ann["token"])).status == 201


class TestWindow:
    @pytest.fixture
    def settings(self, db_url) -> Settings:
        # The window opens at start-up: 3 s, so the attempts (each a password hash) fit in it
        # even on a machine busy with other tests.
        rates = dataclasses.replace(RATES, window_seconds=3.0)
        return Settings(db_url=db_url, rate_limits=rates)

    @pytest.mark.gen_test(timeout=30)
    async def test_attempts_are_allowed_again_in_the_next_window(self, api):
        for _ in range(RATES.login_per_email):
            await login(api, "ann@example.org")
        response = await login(api, "ann@example.org")
        assert response.status == 429 and 1 <= int(response.headers["Retry-After"]) <= 3
        for _ in range(250):
            await asyncio.sleep(0.02)
            response = await login(api, "ann@example.org")
            if response.status != 429:
                break
        assert response.status == 401


@pytest.mark.gen_test
async def test_retry_after_counts_down_to_the_end_of_the_window():
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    await limiter.hit(Rule("k", 1, 60.0))
    now[0] += 14.5
    with pytest.raises(ApiError) as refused:
        await limiter.hit(Rule("k", 1, 60.0))
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "46"}
    await limiter.hit(Rule("other", 1, 60.0))  # keys are counted apart
    now[0] += 45.5
    await limiter.hit(Rule("k", 1, 60.0))  # a new window


@pytest.mark.gen_test
async def test_each_window_length_is_its_own_window_and_counts_can_be_taken_back():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    day = Rule("filings", 2, 86_400.0)
    await limiter.hit(day)
    now[0] += 61.0  # a minute window would have ended
    counted = await limiter.hit(day)
    with pytest.raises(ApiError) as refused:
        await limiter.hit(day)
    assert refused.value.headers == {"Retry-After": str(86_400 - 61)}
    await limiter.undo(counted)
    taken = await limiter.hit_all(day, Rule("minute", 1, 60.0))
    # All or none: the second rule's refusal takes back the first one's count.
    with pytest.raises(ApiError):
        await limiter.hit_all(Rule("other-day", 1, 86_400.0), Rule("minute", 1, 60.0))
    await limiter.hit(Rule("other-day", 1, 86_400.0))
    assert len(taken) == 2


@pytest.mark.gen_test
async def test_body_over_the_limit_is_413_json_and_at_the_limit_is_read(api):
    ann = await api.register("ann@example.org")
    padding = " " * (LIMITS.body_bytes - len(json.dumps({"title": "Lamp", "description": "Dark"})))
    at_limit = json.dumps({"title": "Lamp", "description": "Dark"}).replace(",", "," + padding, 1).encode()
    assert len(at_limit) == LIMITS.body_bytes
    response = await api.call("POST", "/api/petitions", raw=at_limit, token=ann["token"])
    assert response.status == 201, response.body
    response = await api.call("POST", "/api/petitions", raw=at_limit + b" ", token=ann["token"])
    assert response.status == 413
    assert response.body["error"]["code"] == "payload_too_large"


FIELD_CASES = [
    ("/api/petitions", {"title": "x" * (LIMITS.title_max + 1), "description": "ok"}, "title"),
    ("/api/petitions", {"title": "Lamp", "description": "d" * (LIMITS.description_max + 1)}, "description"),
    ("/api/petitions", {"title": "Lamp", "description": "ok", "category": "c" * 101}, "category"),
    ("/api/petitions", {"title": "Lamp", "description": "ok", "location": "l" * 101}, "location"),
    ("/api/petitions/{id}/status", {"status": "rejected", "note": "n" * (LIMITS.note_max + 1)}, "note"),
]


@pytest.mark.parametrize(("path", "body", "field"), FIELD_CASES, ids=[case[2] for case in FIELD_CASES])
@pytest.mark.gen_test
async def test_each_text_field_over_its_limit_is_422_naming_it(api, make_admin, path, body, field):
    admin = make_admin()
    petition = await api.file_petition(admin["token"], "Lamp")
    path = path.replace("{id}", str(petition["petition_id"]))
    method = "PATCH" if path.endswith("/status") else "POST"
    response = await api.call(method, path, body, admin["token"])
    assert response.status == 422, response.body
    assert set(response.body["error"]["fields"]) == {field}
    # One character less is accepted.
    body = {**body, field: body[field][:-1]}
    response = await api.call(method, path, body, admin["token"])
    assert response.status in (200, 201), response.body


@pytest.mark.gen_test
async def test_account_fields_over_their_limits_are_422_each_named(api):
    limits = LIMITS
    body = {
        "email": "a@" + "e" * (limits.email_max - 1),
        "name": "n" * (limits.name_max + 1),
        "password": "p" * (limits.password_max + 1),
    }
    response = await api.post("/api/auth/register", body)
    assert response.status == 422
    assert set(response.body["error"]["fields"]) == {"email", "name", "password"}


@pytest.mark.gen_test
async def test_websocket_message_over_the_limit_closes_1009_and_at_the_limit_is_answered(api, sockets):
    ann = await api.register("ann@example.org")
    client = await sockets.connect("/ws/petitions", ann["token"])
    assert (await read_json(client))["type"] == "hello"
    ping = '{"type":"ping","pad":"%s"}'
    at_limit = ping % ("x" * (LIMITS.ws_message_bytes - len(ping % "")))
    assert len(at_limit) == LIMITS.ws_message_bytes
    await client.write_message(at_limit)
    assert await read_json(client) == {"type": "pong"}
    await client.write_message(at_limit + " ")
    assert await read_json(client) is None
    assert client.close_code == 1009


@pytest.mark.gen_test
async def test_one_socket_more_than_the_per_user_limit_is_closed_4429(api, sockets):
    ann = await api.register("ann@example.org")
    kept = [await sockets.connect("/ws/petitions", ann["token"]) for _ in range(2)]
    for client in kept:
        assert (await read_json(client))["type"] == "hello"
    extra = await sockets.connect("/ws/petitions", ann["token"])
    assert await read_json(extra) is None
    assert extra.close_code == CLOSE_TOO_MANY_SOCKETS
    assert extra.close_reason
    # The user's other sockets are untouched, and another user is not limited by Ann's count.
    await kept[0].write_message('{"type":"ping"}')
    assert await read_json(kept[0]) == {"type": "pong"}
    bob = await api.register("bob@example.org")
    other = await sockets.connect("/ws/petitions", bob["token"])
    assert (await read_json(other))["type"] == "hello"


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # "²": isdigit() holds, int() raises
        "limit=%D9%A3",  # Arabic-Indic 3: only ASCII digits count
        "cursor=" + "1" * 5000,  # past int()'s digit limit
        "author=%205",  # no silent trimming of numbers
        "status=%20submitted",
        "limit=1&limit=2",  # ambiguous: given twice
        "q=" + "x" * 201,
    ],
)
@pytest.mark.gen_test
async def test_query_values_outside_the_rules_are_422_never_500(api, query):
    response = await api.get("/api/petitions?" + query)
    assert response.status == 422, response.body
    assert response.body["error"]["code"] == "invalid_fields"


@pytest.mark.gen_test
async def test_empty_filters_mean_no_filter(api):
    ann = await api.register("ann@example.org")
    await api.file_petition(ann["token"])
    response = await api.get("/api/petitions?status=&author=&category=&q=&limit=&cursor=")
    assert response.status == 200 and len(response.body["petitions"]) == 1


@pytest.mark.parametrize("since", ["%C2%B2", "%ff", "-1", "1e3", "9" * 40])
@pytest.mark.gen_test
async def test_a_malformed_since_is_ignored_and_the_socket_works(api, sockets, since):
    ann = await api.register("ann@example.org")
    client = await sockets.connect(f"/ws/petitions?since={since}", ann["token"])
    assert (await read_json(client))["type"] == "hello"
    await client.write_message('{"type":"ping"}')
    assert await read_json(client) == {"type": "pong"}
