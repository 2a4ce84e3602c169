"""Several processes sharing PostgreSQL and Redis: every event reaches every socket in every process once, in order.

Each test runs real ``python -m tornado_petitions serve`` processes on a
fresh PostgreSQL database and the shared Redis server, on a Redis channel
of its own, and real WebSocket clients against them.  Redis trouble is made
by killing this test's Redis connections (never by stopping the server other
tests share), or by pointing a process at a port where no Redis listens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from pathlib import Path

import pytest
import redis
import tornado.httpclient
import tornado.websocket

from tests.conftest import Api, read_json
from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tests.workers import free_port, unique_name


class Cluster:
    """Processes sharing one database and one Redis channel, plus JSON and socket clients to them."""

    def __init__(self, directory: Path, db_url: str, redis_url: str) -> None:
        self.directory = directory
        self.db_url = db_url
        self.redis_url = redis_url
        self.channel = unique_name("tp-test-")
        self.processes: list[LiveServer] = []
        self.sockets: list[tornado.websocket.WebSocketClientConnection] = []
        self._http: tornado.httpclient.AsyncHTTPClient | None = None

    def start(
        self, *names: str, redis_url: str | None = "default", flags: tuple[str, ...] = ()
    ) -> list[LiveServer]:
        """Start processes together (they race to create the schema) and wait until all answer.

        ``flags`` come after the generous rate limits, so they may set smaller ones.
        """
        url = self.redis_url if redis_url == "default" else redis_url
        redis_flags = ("--redis-channel", self.channel, *(("--redis", url) if url else ()))
        # Counts frames every 100 ms: a test waits a tick, well within LIVE_TIMEOUT.
        flags = (*GENEROUS_RATE_FLAGS, "--count-interval", "0.1", *redis_flags, *flags)
        started = [
            LiveServer(self.directory, *flags, db_url=self.db_url, name=name).launch() for name in names
        ]
        self.processes += started
        for process in started:
            process.wait_ready(20.0)
        return started

    def stop(self) -> list[int]:
        try:
            for client in self.sockets:
                client.close()
            if self._http is not None:
                self._http.close()
        finally:
            codes = [process.stop() for process in self.processes]  # never leave a server behind
            self.delete_redis_keys()
        return codes

    def delete_redis_keys(self) -> None:
        """Drop what this cluster left in the shared Redis (rate-limit counters under its prefix)."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(f"{self.channel}:*"):
                client.delete(key)
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in self.processes)

    def redis_connections(self, process: LiveServer | None = None, subscribed: bool | None = None):
        """This cluster's connections to Redis; the bridge names them ``tornado_petitions:<channel>:<pid>``."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            prefix = f"tornado_petitions:{self.channel}:events:"
            found = [c for c in client.client_list() if c.get("name", "").startswith(prefix)]
        finally:
            client.close()
        if process is not None:
            found = [c for c in found if c["name"] == f"{prefix}{process.process.pid}"]
        if subscribed is not None:
            found = [c for c in found if (int(c.get("sub", 0)) > 0) == subscribed]
        return found

    def subscriptions(self) -> int:
        """How many of this cluster's processes are subscribed to its channel right now."""
        return len(self.redis_connections(subscribed=True))

    async def wait_subscribed(self, count: int) -> None:
        for _ in range(500):
            if self.subscriptions() == count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.subscriptions()} of {count} processes subscribed:\n{self.logs()}")

    def kill_redis_connections(
        self, process: LiveServer | None = None, subscribed: bool | None = None
    ) -> int:
        """Kill this cluster's connections to Redis (all, or one process's, or its subscription); how many."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            found = self.redis_connections(process, subscribed)
            return sum(client.client_kill_filter(_id=c["id"]) for c in found)
        finally:
            client.close()

    async def call(self, process: LiveServer, method: str, path: str, body=None, token=None):
        """(status, parsed body) of one request to ``process``."""
        response = await self.api(process).call(method, path, body, token)
        return response.status, response.body or None

    def api(self, process: LiveServer) -> Api:
        """The suite's JSON client for ``process`` (whole responses, headers included)."""
        if self._http is None:
            self._http = tornado.httpclient.AsyncHTTPClient()
        return Api(self._http, process.url)

    async def register(self, process: LiveServer, email: str) -> dict:
        status, body = await self.call(
            process,
            "POST",
            "/api/auth/register",
            {"email": email, "name": email.split("@")[0], "password": "correct horse"},
        )
        assert status == 201, body
        return body

    async def file_petition(self, process: LiveServer, token: str, title: str) -> dict:
        status, body = await self.call(
            process, "POST", "/api/petitions", {"title": title, "description": "Please."}, token
        )
        assert status == 201, body
        return body

    async def sign(self, process: LiveServer, token: str, petition_id: int, signing: bool = True) -> dict:
        status, body = await self.call(
            process, "POST" if signing else "DELETE", f"/api/petitions/{petition_id}/signatures", token=token
        )
        assert status == (201 if signing else 200), body
        return body

    async def connect(self, process: LiveServer, path: str, token: str):
        request = tornado.httpclient.HTTPRequest(
            process.ws_url + path, headers={"Authorization": "Bearer " + token}
        )
        client = await tornado.websocket.websocket_connect(request)
        self.sockets.append(client)
        return client


@pytest.fixture
def cluster(io_loop, tmp_path, postgres_url, redis_url):
    group = Cluster(tmp_path, postgres_url, redis_url)
    yield group
    codes = group.stop()
    assert codes == [0] * len(codes), group.logs()


# Live means well under the bridge's safety-net log read (every 5 s while subscribed), so a
# broken Redis path fails these tests rather than passing late.
LIVE_TIMEOUT = 3.0


async def read_until(client, seq: int, timeout: float = LIVE_TIMEOUT) -> list[dict]:
    """Messages up to and including the first one carrying ``seq`` or more, each within ``timeout``."""
    messages = []
    while True:
        message = await read_json(client, timeout)
        assert message is not None, f"socket closed after {messages}"
        messages.append(message)
        if message.get("seq", 0) >= seq and message["type"] in ("event", "update"):
            return messages


async def hello_seq(client) -> int:
    message = await read_json(client)
    assert message["type"] == "hello", message
    return message["seq"]


def event_seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] == "event"]


async def assert_quiet(client) -> None:
    """Nothing more is queued for ``client``: the next answer is the pong to our ping."""
    await client.write_message('{"type":"ping"}')
    assert await read_json(client) == {"type": "pong"}


async def replay(cluster: Cluster, process: LiveServer, path: str, token: str, since: int) -> list[dict]:
    """What the event log says ``path`` should have carried after ``since`` (a resume from the log)."""
    client = await cluster.connect(process, f"{path}?since={since}", token)
    messages = []
    while (message := await read_json(client))["type"] != "hello":
        messages.append(message)
    client.close()
    return messages


def latest_counts(messages: list[dict]) -> dict[int, int]:
    """What the counts frames among ``messages`` say, the later ones winning."""
    latest = {}
    for message in messages:
        if message["type"] == "counts":
            latest.update({int(pid): count for pid, count in message["counts"].items()})
    return latest


async def read_counts_until(
    client, expected: dict[int, int], read: list[dict] = (), timeout: float = LIVE_TIMEOUT
) -> list[dict]:
    """Messages until the counts frames (``read`` ones included) show ``expected`` (id -> count)."""
    messages, latest = [], latest_counts(read)
    while any(latest.get(pid) != count for pid, count in expected.items()):
        message = await read_json(client, timeout)
        assert message is not None, f"socket closed after {messages}"
        messages.append(message)
        if message["type"] == "counts":
            latest.update({int(pid): count for pid, count in message["counts"].items()})
    return messages


@pytest.mark.gen_test(timeout=60)
async def test_change_through_a_reaches_sockets_on_a_and_b_once_in_order(cluster):
    a, b = cluster.start("a", "b")
    ann = await cluster.register(a, "ann@example.org")
    bob = await cluster.register(b, "bob@example.org")
    feeds = [await cluster.connect(p, "/ws/petitions", ann["token"]) for p in (a, b, b)]
    starts = [await hello_seq(feed) for feed in feeds]
    mine_on_b = await cluster.connect(b, f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
    assert (await read_json(mine_on_b))["petitions"] == []

    petition = await cluster.file_petition(a, ann["token"], "Light the park")
    pid = petition["petition_id"]
    await cluster.sign(a, bob["token"], pid)
    await cluster.sign(a, bob["token"], pid, signing=False)
    last = (await cluster.sign(a, ann["token"], pid))["signature_count"]
    assert last == 1

    for feed, start in zip(feeds, starts, strict=True):
        messages = await read_until(feed, start + 1)
        assert [(m["event"], m["seq"]) for m in messages] == [("created", start + 1)]
        # Signatures are no events: every process's sockets get the count, conflated.
        counted = await read_counts_until(feed, {pid: 1})
        assert {m["type"] for m in counted} == {"counts"} and all(m["seq"] == start + 1 for m in counted)
        await assert_quiet(feed)
    # The author's own channel on B ends up showing the last state, never an older one after a newer.
    updates = await read_until(mine_on_b, starts[1] + 1)
    while updates[-1]["petitions"][0]["signature_count"] != 1:
        updates.append(await read_json(mine_on_b, LIVE_TIMEOUT))
    assert [u["seq"] for u in updates] == sorted(u["seq"] for u in updates)


@pytest.mark.gen_test(timeout=60)
async def test_resume_on_b_after_changes_on_a(cluster):
    a, b = cluster.start("a", "b")
    ann = await cluster.register(a, "ann@example.org")
    on_a = await cluster.connect(a, "/ws/petitions", ann["token"])
    await hello_seq(on_a)
    first = await cluster.file_petition(a, ann["token"], "Seen on A")
    seen = (await read_json(on_a))["seq"]
    on_a.close()  # A goes away for this client; it comes back through B

    missed = [await cluster.file_petition(a, ann["token"], f"Missed {i}") for i in range(3)]
    await cluster.sign(a, ann["token"], first["petition_id"])

    on_b = await cluster.connect(b, f"/ws/petitions?since={seen}", ann["token"])
    replayed = []
    while (message := await read_json(on_b))["type"] != "hello":
        replayed.append(message)
    assert event_seqs(replayed) == [seen + 1, seen + 2, seen + 3]
    assert [m["petition"]["title"] for m in replayed[:3]] == [p["title"] for p in missed]
    # Then one counts frame for the signature made while away, not one message per signature.
    assert replayed[3:] == [{"type": "counts", "seq": seen + 3, "counts": {str(first["petition_id"]): 1}}]
    assert message["seq"] == seen + 3

    await cluster.file_petition(a, ann["token"], "Live from A")
    live = (await read_until(on_b, seen + 4))[-1]  # perhaps after a counts frame of the tick
    assert live["seq"] == seen + 4 and live["petition"]["title"] == "Live from A"
    await assert_quiet(on_b)


@pytest.mark.gen_test(timeout=60)
async def test_a_password_reset_on_a_closes_the_accounts_sockets_on_b_4401(cluster):
    import re

    from tests.smtp_catcher import SmtpCatcher

    catcher = SmtpCatcher().start()
    try:
        mail = ("--smtp-url", catcher.url, "--verify-email", "off", "--mail-per-second", "100")
        a, b = cluster.start("a", "b", flags=mail)
        ann = await cluster.register(a, "ann@example.org")
        on_b = await cluster.connect(b, "/ws/petitions", ann["token"])
        await hello_seq(on_b)
        assert (await cluster.call(b, "GET", "/api/me", token=ann["token"]))[0] == 200  # B caches the token
        status, _ = await cluster.call(a, "POST", "/api/auth/password-reset", {"email": "ann@example.org"})
        assert status == 202
        messages = await catcher.wait(1, timeout=15)
        token = re.search(r"/account/reset/([0-9A-Za-z_-]+)", messages[0][1].get_content()).group(1)
        body = {"token": token, "password": "a new passphrase"}
        status, answer = await cluster.call(a, "POST", "/api/auth/password-reset/confirm", body)
        assert status == 200, answer
        assert await read_json(on_b) is None
        assert on_b.close_code == 4401
        assert (await cluster.call(b, "GET", "/api/me", token=ann["token"]))[0] == 401
        assert (await cluster.call(b, "GET", "/api/me", token=answer["token"]))[0] == 200
    finally:
        catcher.stop()


@pytest.mark.gen_test(timeout=60)
async def test_logout_on_a_closes_that_tokens_sockets_on_b_4401(cluster):
    a, b = cluster.start("a", "b")
    ann = await cluster.register(a, "ann@example.org")
    other = await cluster.register(a, "bob@example.org")
    on_b = await cluster.connect(b, "/ws/petitions", ann["token"])
    bystander = await cluster.connect(b, "/ws/petitions", other["token"])
    await hello_seq(on_b)
    start = await hello_seq(bystander)
    assert (await cluster.call(b, "GET", "/api/me", token=ann["token"]))[0] == 200  # B caches the token
    status, _ = await cluster.call(a, "POST", "/api/auth/logout", token=ann["token"])
    assert status == 204
    assert await read_json(on_b) is None
    assert on_b.close_code == 4401
    # The revocation that closed the socket also evicted B's cached token.
    assert (await cluster.call(b, "GET", "/api/me", token=ann["token"]))[0] == 401
    # Only that token's sockets: the other user's socket on B still gets events.
    await cluster.file_petition(a, other["token"], "After the logout")
    assert event_seqs(await read_until(bystander, start + 1)) == [start + 1]


async def write_concurrently(
    cluster: Cluster, processes, users: list[dict], petitions: list[dict], rounds: int
) -> int:
    """Every user signs and withdraws on every petition and files one petition a round, all at once.

    Alternates processes; returns how many lifecycle events (filings) it made.
    """

    async def one_user(index: int, user: dict) -> int:
        filed = 0
        for round_ in range(rounds):
            for petition in petitions:
                process = processes[(index + round_) % len(processes)]
                await cluster.sign(process, user["token"], petition["petition_id"])
                await cluster.sign(
                    processes[-1 - index % len(processes)],
                    user["token"],
                    petition["petition_id"],
                    signing=False,
                )
            # Every user keeps one signature on the first petition, so the final count is not zero.
            if round_ == rounds - 1:
                await cluster.sign(
                    processes[index % len(processes)], user["token"], petitions[0]["petition_id"]
                )
            await cluster.file_petition(processes[index % len(processes)], user["token"], f"Filed {round_}")
            filed += 1
        return filed

    counts = await asyncio.gather(*(one_user(i, u) for i, u in enumerate(users)))
    return sum(counts)


async def assert_every_socket_saw_the_log(cluster, feeds, starts, token, end_seq, counts) -> None:
    """Each socket got exactly the lifecycle events after its start, in order, once, and the final counts."""
    for (process, path, feed), start in zip(feeds, starts, strict=True):
        messages = await read_until(feed, end_seq)
        seqs = event_seqs(messages)
        assert seqs == list(range(start + 1, end_seq + 1)), f"{process.name}{path}: {seqs}"
        messages += await read_counts_until(feed, counts, messages)
        await assert_quiet(feed)
        events = [m for m in messages if m["type"] == "event"]
        replayed = await replay(cluster, process, path, token, start)
        assert events == [m for m in replayed if m["type"] == "event"]
        # The resume from the same start converges to the same counts.
        assert {int(k): v for k, v in replayed[-1]["counts"].items() if int(k) in counts} == counts


async def server_counts(cluster: Cluster, process, petitions: list[dict]) -> dict[int, int]:
    """The count of each petition as the API says it now."""
    counts = {}
    for petition in petitions:
        _, body = await cluster.call(process, "GET", f"/api/petitions/{petition['petition_id']}")
        counts[petition["petition_id"]] = body["signature_count"]
    return counts


@pytest.mark.gen_test(timeout=90)
async def test_concurrent_writers_through_both_processes_give_one_gapless_order(cluster):
    a, b = cluster.start("a", "b")
    admin = await cluster.register(a, "admin@example.org")  # any signed-in user may read the feed
    users = [await cluster.register((a, b)[i % 2], f"user{i}@example.org") for i in range(6)]
    petitions = [await cluster.file_petition(a, admin["token"], f"Petition {i}") for i in range(3)]
    feeds = [
        (p, "/ws/petitions", await cluster.connect(p, "/ws/petitions", admin["token"])) for p in (a, a, b, b)
    ]
    starts = [await hello_seq(feed) for _, _, feed in feeds]
    assert len(set(starts)) == 1

    filed = await write_concurrently(cluster, (a, b), users, petitions, rounds=3)
    end = starts[0] + filed
    counts = await server_counts(cluster, b, petitions)
    assert counts == {petitions[0]["petition_id"]: len(users), petitions[1]["petition_id"]: 0} | {
        petitions[2]["petition_id"]: 0
    }

    await assert_every_socket_saw_the_log(cluster, feeds, starts, admin["token"], end, counts)
    for petition in petitions:
        status, body = await cluster.call(a, "GET", f"/api/petitions/{petition['petition_id']}/events")
        assert [e["event"] for e in body["events"]] == ["created"]


@pytest.mark.gen_test(timeout=90)
async def test_redis_connections_killed_while_writing_lose_nothing(cluster):
    a, b = cluster.start("a", "b")
    reader = await cluster.register(a, "reader@example.org")
    users = [await cluster.register((a, b)[i % 2], f"user{i}@example.org") for i in range(4)]
    petitions = [await cluster.file_petition(b, reader["token"], f"Petition {i}") for i in range(2)]
    feeds = [(p, "/ws/petitions", await cluster.connect(p, "/ws/petitions", reader["token"])) for p in (a, b)]
    starts = [await hello_seq(feed) for _, _, feed in feeds]
    assert cluster.subscriptions() == 2

    killed = 0
    writing = asyncio.ensure_future(write_concurrently(cluster, (a, b), users, petitions, rounds=4))
    while not writing.done():
        killed += cluster.kill_redis_connections()
        await asyncio.sleep(0.05)
    filed = await writing
    assert killed >= 4, "the test killed no Redis connection: it proves nothing"

    counts = await server_counts(cluster, a, petitions)
    await assert_every_socket_saw_the_log(cluster, feeds, starts, reader["token"], starts[0] + filed, counts)
    # The bridges came back: a change on one process reaches the other live again.
    await cluster.wait_subscribed(2)
    petition = await cluster.file_petition(a, reader["token"], "After the storm")
    for _, _, feed in feeds:
        message = (await read_until(feed, starts[0] + filed + 1))[-1]  # perhaps after a counts frame
        assert message["petition"]["petition_id"] == petition["petition_id"]
    assert "subscription to" in cluster.logs()  # the reconnect path really ran


@pytest.mark.gen_test(timeout=60)
async def test_process_without_redis_still_serves_and_delivers_from_the_log(cluster, tmp_path):
    (a,) = cluster.start("a")
    (b,) = cluster.start("b", redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    # Redis down is not unhealthy (200), and /healthz says which process has its subscription.
    health = [await cluster.call(process, "GET", "/healthz") for process in (a, b)]
    assert [(status, body["redis"]) for status, body in health] == [
        (200, "subscribed"),
        (200, "reconnecting"),
    ]
    ann = await cluster.register(b, "ann@example.org")
    on_a = await cluster.connect(a, "/ws/petitions", ann["token"])
    on_b = await cluster.connect(b, "/ws/petitions", ann["token"])
    start_a, start_b = await hello_seq(on_a), await hello_seq(on_b)

    made_on_b = await cluster.file_petition(b, ann["token"], "Made where Redis is down")
    made_on_a = await cluster.file_petition(a, ann["token"], "Made where Redis is up")
    for feed, start in ((on_a, start_a), (on_b, start_b)):
        messages = await read_until(feed, start + 2)
        assert [m["petition"]["petition_id"] for m in messages] == [
            made_on_b["petition_id"],
            made_on_a["petition_id"],
        ]
        await assert_quiet(feed)
    assert "not reachable" in b.log() or "reconnecting" in b.log()


@pytest.mark.gen_test(timeout=60)
async def test_events_published_while_a_subscription_is_down_come_from_the_log(cluster):
    a, b = cluster.start("a", "b")
    ann = await cluster.register(a, "ann@example.org")
    on_b = await cluster.connect(b, "/ws/petitions", ann["token"])
    start = await hello_seq(on_b)
    for round_ in range(3):
        assert cluster.kill_redis_connections(b, subscribed=True) == 1
        # Published by A at once; B is between subscriptions and never sees it on Redis.
        await cluster.file_petition(a, ann["token"], f"While B was away {round_}")
        messages = await read_until(on_b, start + round_ + 1)
        assert event_seqs(messages) == [start + round_ + 1]
        await cluster.wait_subscribed(2)
    await assert_quiet(on_b)


@pytest.mark.gen_test(timeout=60)
async def test_a_publish_that_fails_is_sent_again_and_the_request_still_succeeds(cluster):
    a, b = cluster.start("a", "b")
    ann = await cluster.register(a, "ann@example.org")
    on_a = await cluster.connect(a, "/ws/petitions", ann["token"])
    on_b = await cluster.connect(b, "/ws/petitions", ann["token"])
    starts = [await hello_seq(on_a), await hello_seq(on_b)]
    await cluster.file_petition(a, ann["token"], "Opens A's publishing connection")
    for feed, start in zip((on_a, on_b), starts, strict=True):
        await read_until(feed, start + 1)  # on B: A's publishing connection is up
    for round_ in range(1, 4):
        assert cluster.kill_redis_connections(a, subscribed=False) == 1
        # The commit stands whatever Redis does; A's own sockets have it at once.
        await cluster.file_petition(a, ann["token"], f"Published after a kill {round_}")
        for feed, start in zip((on_a, on_b), starts, strict=True):
            messages = await read_until(feed, start + 1 + round_)
            assert event_seqs(messages)[-1] == start + 1 + round_
    for feed in (on_a, on_b):
        await assert_quiet(feed)
    assert "publishing 1 event(s) to redis failed" in a.log()


# Shared windows are numbered from the epoch: an hour makes a test straddling two of them rare,
# and ``wait_out_a_closing_window`` makes it impossible.
RATE_WINDOW = 3600
SMALL_LOGIN_LIMIT_FLAGS = ("--login-per-email=3", f"--rate-window={RATE_WINDOW}")


async def wait_out_a_closing_window() -> None:
    """If the shared window ends within 5 s (once an hour), wait for the next one."""
    left = RATE_WINDOW - time.time() % RATE_WINDOW
    if left < 5:
        await asyncio.sleep(left + 0.05)


async def sign_in(cluster: Cluster, process: LiveServer, password: str = "wrong password"):
    return await cluster.api(process).post(
        "/api/auth/login", {"email": "ann@example.org", "password": password}
    )


def assert_too_many(response) -> int:
    """A 429 in the documented shape; returns its Retry-After (whole seconds within the window)."""
    assert response.status == 429, response.body
    assert response.body["error"]["code"] == "too_many_requests"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= RATE_WINDOW
    return retry_after


@pytest.mark.gen_test(timeout=60)
async def test_sign_in_attempts_for_one_email_are_limited_across_processes_together(cluster):
    a, b = cluster.start("a", "b", flags=SMALL_LOGIN_LIMIT_FLAGS)
    await cluster.register(a, "ann@example.org")
    await wait_out_a_closing_window()
    # A success is taken back from the shared counters: only failures count.
    assert (await sign_in(cluster, b, "correct horse")).status == 200
    assert [(await sign_in(cluster, p)).status for p in (a, b, a)] == [401, 401, 401]
    # Three attempts in all, at most two on either process: with counters per process both
    # would still let the right password in.
    for process in (b, a):
        retry_after = assert_too_many(await sign_in(cluster, process, "correct horse"))
        # From the end of the shared window, the same on every process.
        assert abs(retry_after - (RATE_WINDOW - time.time() % RATE_WINDOW)) <= 2

    # The counters live under the deployment's prefix, with no email or address in clear.
    window = int(time.time() // RATE_WINDOW)
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        stored = {key.decode(): int(client.get(key)) for key in client.scan_iter(f"{cluster.channel}:*")}
        ttl = client.ttl(next(iter(stored)))
    finally:
        client.close()

    def name(key: str) -> str:
        return f"{cluster.channel}:rate:{window}:{hashlib.sha256(key.encode()).hexdigest()}"

    assert stored == {
        name("register:127.0.0.1"): 1,
        # Failures only: the refused attempts (the right password among them) counted nothing.
        name("login-email:ann@example.org 127.0.0.1"): 3,
        name("login-address:127.0.0.1"): 3,
    }
    assert 0 < ttl <= RATE_WINDOW


@pytest.mark.gen_test(timeout=60)
async def test_with_redis_unreachable_sign_in_limits_still_apply_in_each_process(cluster):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    a, b = cluster.start("a", "b", redis_url=nowhere, flags=SMALL_LOGIN_LIMIT_FLAGS)
    await cluster.register(a, "ann@example.org")
    for process in (a, b):
        assert [(await sign_in(cluster, process)).status for _ in range(3)] == [401, 401, 401]
        assert_too_many(await sign_in(cluster, process, "correct horse"))
    for process in (a, b):
        # One warning for the outage, not one per attempt.
        assert process.log().count("rate limits counted in this process only") == 1, process.log()


@pytest.fixture
def settings(settings):
    """Behind a load balancer (``--xheaders``), with two registrations per client address."""
    rates = dataclasses.replace(settings.rate_limits, register_per_address=2)
    return dataclasses.replace(settings, xheaders=True, rate_limits=rates)


@pytest.mark.gen_test
async def test_behind_a_load_balancer_limits_apply_per_client_not_per_proxy(api):
    async def register(email: str, client_address: str) -> int:
        body = {"email": email, "name": "N", "password": "correct horse"}
        response = await api.call(
            "POST", "/api/auth/register", body, headers={"X-Forwarded-For": client_address}
        )
        return response.status

    assert [await register(f"a{i}@example.org", "203.0.113.1") for i in range(3)] == [201, 201, 429]
    assert await register("b@example.org", "203.0.113.2") == 201


@pytest.mark.gen_test(timeout=90)
async def test_a_milestone_crossed_through_both_processes_is_written_once(cluster):
    a, b = cluster.start("a", "b", flags=("--response-threshold", "20"))
    author = await cluster.register(a, "author@example.org")
    signers = await asyncio.gather(*(cluster.register((a, b)[i % 2], f"s{i}@example.org") for i in range(40)))
    feeds = [await cluster.connect(p, "/ws/petitions", author["token"]) for p in (a, b)]
    for feed in feeds:
        await hello_seq(feed)
    petition = await cluster.file_petition(a, author["token"], "Going viral")
    pid = petition["petition_id"]
    starts = [(await read_until(feed, 1))[-1]["seq"] for feed in feeds]  # the created event, everywhere
    await asyncio.gather(*(cluster.sign((a, b)[i % 2], s["token"], pid) for i, s in enumerate(signers)))

    for feed, start in zip(feeds, starts, strict=True):
        messages = await read_until(feed, start + 1)
        messages += await read_counts_until(feed, {pid: 40}, messages)
        await assert_quiet(feed)
        events = [m for m in messages if m["type"] == "event"]
        assert [(e["event"], e["milestone"], e["seq"]) for e in events] == [
            ("milestone", "response", start + 1)
        ]
    _, history = await cluster.call(b, "GET", f"/api/petitions/{pid}/events")
    assert [e["event"] for e in history["events"]] == ["created", "milestone"]
    _, now = await cluster.call(a, "GET", f"/api/petitions/{pid}")
    assert now["signature_count"] == 40 and now["awaiting_response"] is True
    assert [m["milestone"] for m in now["milestones"]] == ["response"]


@pytest.mark.gen_test(timeout=60)
async def test_a_role_change_on_a_applies_on_b_at_once_and_closes_its_office_socket_4403(cluster):
    a, b = cluster.start("a", "b")
    a.create_user("ada@example.org", "admin password", name="Ada", admin=True)
    a.create_user("mo@example.org", "moderator password", name="Mo", role="moderator")

    async def login(process, email: str, password: str) -> dict:
        status, body = await cluster.call(
            process, "POST", "/api/auth/login", {"email": email, "password": password}
        )
        assert status == 200, body
        return body

    ada = await login(a, "ada@example.org", "admin password")
    mo = await login(b, "mo@example.org", "moderator password")
    office = await cluster.connect(b, "/ws/admin", mo["token"])
    await hello_seq(office)
    assert (await cluster.call(b, "GET", "/api/admin/queues", token=mo["token"]))[0] == 200  # B caches it

    path = f"/api/admin/users/{mo['user']['user_id']}"
    status, body = await cluster.call(a, "PATCH", path, {"role": "citizen"}, ada["token"])
    assert status == 200 and body["role"] == "citizen"
    assert await read_json(office) is None
    assert office.close_code == 4403
    # Closed by the announcement that also evicted B's cached token: its role is read afresh.
    status, body = await cluster.call(b, "GET", "/api/admin/queues", token=mo["token"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await cluster.call(b, "GET", "/api/me", token=mo["token"]))[1]["role"] == "citizen"


@pytest.mark.gen_test(timeout=60)
async def test_with_premoderation_feeds_on_b_hear_of_a_petition_filed_on_a_once_published(cluster):
    a, b = cluster.start("a", "b", flags=("--premoderation",))
    a.create_user("office@example.org", "office password", name="Office", admin=True)
    office = (
        await cluster.call(
            a, "POST", "/api/auth/login", {"email": "office@example.org", "password": "office password"}
        )
    )[1]
    ann = await cluster.register(a, "ann@example.org")
    bob = await cluster.register(b, "bob@example.org")
    public_on_b = await cluster.connect(b, "/ws/petitions", bob["token"])
    start = await hello_seq(public_on_b)
    admin_on_b = await cluster.connect(b, "/ws/admin", office["token"])
    await hello_seq(admin_on_b)

    pid = (await cluster.file_petition(a, ann["token"], "Light the pier"))["petition_id"]
    assert [m["event"] for m in await read_until(admin_on_b, start + 1)] == ["created"]
    assert (await cluster.call(b, "GET", f"/api/petitions/{pid}", token=bob["token"]))[0] == 404
    await assert_quiet(public_on_b)
    status, _ = await cluster.call(
        a, "PATCH", f"/api/petitions/{pid}/status", {"status": "under_review"}, office["token"]
    )
    assert status == 200
    messages = await read_until(public_on_b, start + 2)
    assert [(m["event"], m["seq"]) for m in messages if m["type"] == "event"] == [
        ("status_changed", start + 2)
    ]
    await cluster.sign(b, bob["token"], pid)
    counted = await read_counts_until(public_on_b, {pid: 1})
    assert all(m["type"] == "counts" for m in counted)
    # Hidden through A: B's public feed hears nothing of it from then on, and a resume on B replays nothing.
    status, _ = await cluster.call(
        a,
        "PATCH",
        f"/api/petitions/{pid}/status",
        {"status": "rejected", "note": "Spam.", "reason": "fake"},
        office["token"],
    )
    assert status == 200
    assert [m["to_status"] for m in await read_until(admin_on_b, start + 3) if m["type"] == "event"] == [
        "under_review",
        "rejected",
    ]
    await assert_quiet(public_on_b)
    assert await replay(cluster, b, "/ws/petitions", bob["token"], start) == []


@pytest.mark.gen_test(timeout=60)
async def test_a_block_made_on_a_catches_signatures_on_b_and_an_alert_on_a_reaches_admins_on_b(cluster):
    a, b = cluster.start("a", "b", flags=("--trending-threshold", "1"))
    a.create_user("admin@example.org", "admin password", admin=True)
    admin = a.sign_in("admin@example.org", "admin password")
    alerts_on_b = await cluster.connect(b, "/ws/admin", admin["token"])
    await hello_seq(alerts_on_b)
    author = await cluster.register(a, "author@example.org")
    pid = (await cluster.file_petition(a, author["token"], "Watch the signers"))["petition_id"]
    signers = [await cluster.register(a, f"s{i}@spam.example") for i in range(10)]

    await cluster.sign(a, signers[0]["token"], pid)
    await cluster.sign(a, signers[1]["token"], pid)  # the second from one address and domain on A
    alerts = set()
    while len(alerts) < 2:
        frame = await read_json(alerts_on_b, LIVE_TIMEOUT)
        if frame["type"] == "alert":
            assert frame["petition_id"] == pid and frame["count"] == 2, frame
            alerts.add((frame["kind"], frame["value"]))
    assert alerts == {("trending_address", "127.0.0.1"), ("trending_domain", "spam.example")}

    status, _ = await cluster.call(
        a, "POST", "/api/admin/blocks", {"kind": "domain", "value": "spam.example"}, admin["token"]
    )
    assert status == 201
    # B reloads its blocks when A announces the change: from then on its signatures from the domain
    # are stored fraudulent, answered as good ones with the count unmoved.
    counts = [(await cluster.sign(b, signer["token"], pid))["signature_count"] for signer in signers[2:]]
    assert counts[-1] == counts[-2] and counts[-1] <= 3, counts
