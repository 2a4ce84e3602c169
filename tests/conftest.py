"""One app per test on a fresh SQLite file, served on a real port; helpers for HTTP and sockets.

pytest-tornado provides ``io_loop``, ``http_port``, ``base_url``,
``http_client`` and the ``gen_test`` marker; ``app`` and ``http_server`` are
ours so the server is built exactly as ``serve`` builds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from typing import Any

import pytest
import tornado.httpclient
import tornado.ioloop
import tornado.websocket

from tests.workers import WORKER, unique_name
from tornado_petitions.server import make_app, make_server
from tornado_petitions.settings import RateLimits, Settings

# Chromium, the live service and the page helpers of the browser tests.
pytest_plugins = ["tests.browser"]

# Under pytest-xdist (``make test``: ``--dist worksteal``) each worker starts on a contiguous
# share of the collection and idle workers take tests from the busiest one's queue.  The modules
# with the longest tests (``--durations=30`` says which) come first, so no long test starts
# last while the other workers idle.  Contiguous shares also keep a module's tests, and so
# its module-scoped ``serve`` process, on one worker unless another takes some.
SLOW_MODULES_FIRST = (
    "test_packaging.py",
    "test_schemathesis.py",
    "test_mail.py",
    "test_viral.py",
    "test_browser.py",
    "test_scale_out.py",
    "test_public_pages.py",
    "test_ws_fuzz.py",
    "test_sockets.py",
    "test_process.py",
    "test_deployment.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the slow modules first (a stable sort: each module's own order is kept)."""
    if WORKER != "main":
        order = {name: index for index, name in enumerate(SLOW_MODULES_FIRST)}
        items.sort(key=lambda item: order.get(item.path.name, len(order)))


# Tests sign in far more often than a person would; the rate-limit tests set their own.
# tests/live_server.py passes the same to ``serve`` processes as flags.
# Signatures of one petition from one address an hour, and the trending threshold, in tests.
GENEROUS_PER_ADDRESS = 1_000_000
GENEROUS_RATES = RateLimits(
    login_per_email=100_000,
    login_per_address=100_000,
    register_per_address=100_000,
    signatures_per_user=100_000,
    filings_per_user=100_000,
    filings_per_address=100_000,
    account_mails_per_email=100_000,
    password_resets_per_address=100_000,
)


# The PostgreSQL server the tests create their databases on, and the Redis server they share.
# Both must be running: a test that needs one FAILS when it is missing (CI has both).
PG_SERVER_URL = os.environ.get("PETITIONS_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_TEST_URL = os.environ.get("PETITIONS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _pg_run(database: str, *statements: str) -> None:
    """Run statements on ``database``, each committed on its own (CREATE/DROP DATABASE need that)."""
    import psycopg2

    connection = psycopg2.connect(f"{PG_SERVER_URL}/{database}", connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


class PostgresDatabases:
    """This worker's test databases: a test gets an empty one, which is emptied after it for the next.

    CREATE DATABASE and DROP DATABASE take most of a second each on a busy
    server; dropping and re-creating the ``public`` schema (every table, index
    and sequence the service makes lives there) takes a few milliseconds, and
    leaves a database as empty as a new one.
    """

    def __init__(self) -> None:
        self.free: list[str] = []
        self.made: list[str] = []

    def take(self) -> str:
        if self.free:
            return self.free.pop()
        name = unique_name("tp_")
        _pg_run("postgres", f"CREATE DATABASE {name}")
        self.made.append(name)
        return name

    def give_back(self, name: str) -> None:
        """Empty ``name`` for the next test (its connections killed first); drop it if that fails."""
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        try:
            _pg_run(
                name,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}",
                "SET lock_timeout = '5s'",
                "DROP SCHEMA public CASCADE",
                "CREATE SCHEMA public",
            )
        except Exception:
            self.drop(name)
            raise
        self.free.append(name)

    def drop(self, name: str) -> None:
        _pg_run("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.remove(name)

    def drop_all(self) -> None:
        for name in list(self.made):
            self.drop(name)


@pytest.fixture(scope="session")
def postgres_databases():
    """The worker's databases (see PostgresDatabases), all dropped when the worker ends."""
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases):
    """An empty PostgreSQL database of this test's alone, emptied again (connections and all) after it."""
    name = postgres_databases.take()
    yield f"{PG_SERVER_URL}/{name}"
    postgres_databases.give_back(name)


@pytest.fixture
def redis_url() -> str:
    """The shared Redis server; fails the test (not skips it) when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        assert client.ping(), "Redis at %s does not answer PING" % REDIS_TEST_URL
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture
def catcher():
    """A real SMTP server (aiosmtpd) on a free port for one test; what it received is in ``messages``."""
    from tests.smtp_catcher import SmtpCatcher

    server = SmtpCatcher().start()
    yield server
    server.stop()


@pytest.fixture
def io_loop():
    """pytest-tornado's loop, made without ``IOLoop.make_current``.

    That one calls ``asyncio.get_event_loop()``, which makes a second loop
    nobody closes; a later ``asyncio.run`` drops it and the leak surfaces as
    an unraisable ResourceWarning (an error here) in whichever test runs then.
    """
    asyncio_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(asyncio_loop)
    loop = tornado.ioloop.IOLoop.current()
    yield loop
    loop.close(all_fds=True)
    asyncio.set_event_loop(None)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request) -> str:
    """Which database a test runs on: every test using ``db_url`` runs on both.

    A test meaningful on one only says so with
    ``@pytest.mark.parametrize("db_backend", ["sqlite"])``.
    """
    return request.param


@pytest.fixture
def db_url(request, db_backend, tmp_path) -> str:
    if db_backend == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'petitions.db'}"


@pytest.fixture
def settings(db_url) -> Settings:
    """Settings for one test; override this fixture (or use ``dataclasses.replace``) to vary them."""
    # Counts frames every 50 ms, so tests wait for a tick without sleeping a second.
    # Tests sign from one address (127.0.0.1) by the hundred: the fraud screen's tests set their own limits.
    return Settings(
        db_url=db_url,
        rate_limits=GENEROUS_RATES,
        xsrf_cookies=True,
        count_interval=0.05,
        signatures_per_address=GENEROUS_PER_ADDRESS,
        trending_threshold=GENEROUS_PER_ADDRESS,
    )


@pytest.fixture
def app(io_loop, settings):
    application = make_app(settings)
    io_loop.run_sync(application.start)
    yield application
    io_loop.run_sync(application.shutdown)


@pytest.fixture
def http_server(request, io_loop, _unused_port, app):
    server = make_server(app)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=30)


def json_request(
    method: str, body: Any, token: str | None, raw: bytes | None, headers: dict | None
) -> tuple[bytes | None, dict]:
    """The body and headers of a JSON API request, as every test client sends them."""
    all_headers = {"Content-Type": "application/json"}
    if token:
        all_headers["Authorization"] = "Bearer " + token
    all_headers.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is None and method in ("POST", "PATCH", "PUT"):
        data = b""
    return data, all_headers


@dataclasses.dataclass
class Response:
    status: int
    body: Any
    headers: Any


class Api:
    """A JSON client for the server under test; never raises on an error status."""

    def __init__(self, client: tornado.httpclient.AsyncHTTPClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict | None = None,
    ) -> Response:
        data, all_headers = json_request(method, body, token, raw, headers)
        response = await self.client.fetch(
            self.base_url + path,
            method=method,
            body=data,
            headers=all_headers,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        text = response.body.decode() if response.body else ""
        parsed = (
            json.loads(text)
            if text and response.headers.get("Content-Type", "").startswith("application/json")
            else text
        )
        return Response(response.code, parsed, response.headers)

    async def get(self, path: str, token: str | None = None) -> Response:
        return await self.call("GET", path, token=token)

    async def post(self, path: str, body: Any = None, token: str | None = None) -> Response:
        return await self.call("POST", path, body, token)

    async def patch(self, path: str, body: Any = None, token: str | None = None) -> Response:
        return await self.call("PATCH", path, body, token)

    async def delete(self, path: str, token: str | None = None) -> Response:
        return await self.call("DELETE", path, token=token)

    async def register(self, email: str, name: str = "Citizen", password: str = "correct horse") -> dict:
        """Register and return ``{"user", "token"}``; fails the test on any other answer."""
        response = await self.post("/api/auth/register", {"email": email, "name": name, "password": password})
        assert response.status == 201, response.body
        return response.body

    async def file_petition(self, token: str, title: str = "Fix the streetlight", **extra) -> dict:
        body = {"title": title, "description": "It has been dark for weeks.", **extra}
        response = await self.post("/api/petitions", body, token)
        assert response.status == 201, response.body
        return response.body


@pytest.fixture
def api(http_client, base_url) -> Api:
    return Api(http_client, base_url)


@pytest.fixture
def make_admin(app):
    """Create an admin account directly (as ``create-user --admin`` does) and sign it in."""
    from tornado_petitions import accounts

    def create(email: str = "admin@example.org", name: str = "Admin") -> dict:
        user = accounts.create_user(email, name, accounts.hash_password("admin password"), "admin")
        token = accounts.issue_token(user, app.config.token_ttl_seconds)
        return {"user": user.to_dict(), "token": token}

    return create


@pytest.fixture
def make_user(app):
    """An account of a role made directly (as ``create-user --role`` does), signed in."""
    from tornado_petitions import accounts

    def create(role: str, email: str | None = None, name: str | None = None) -> dict:
        email = email or f"{role}@example.org"
        user = accounts.create_user(email, name or role.title(), accounts.hash_password("a password"), role)
        token = accounts.issue_token(user, app.config.token_ttl_seconds)
        return {"user": user.to_dict(), "token": token}

    return create


@pytest.fixture
def make_citizens(app):
    """Create ``n`` signed-in citizens directly (one password hash for all): signers for a storm."""
    from tornado_petitions import accounts

    def create(n: int, prefix: str = "signer") -> list[dict]:
        password_hash = accounts.hash_password("signer password")
        made = []
        for i in range(n):
            user = accounts.create_user(f"{prefix}{i}@example.org", f"Signer {i}", password_hash)
            made.append(
                {"user": user.to_dict(), "token": accounts.issue_token(user, app.config.token_ttl_seconds)}
            )
        return made

    return create


class SocketClients:
    """Opens WebSocket clients to the server under test and closes every one at tear-down."""

    def __init__(self, base_url: str) -> None:
        self.ws_base = "ws" + base_url[len("http") :]
        self.clients: list[tornado.websocket.WebSocketClientConnection] = []

    async def connect(
        self, path: str, token: str | None = None, headers: dict | None = None
    ) -> tornado.websocket.WebSocketClientConnection:
        request = tornado.httpclient.HTTPRequest(self.ws_base + path, headers=headers or {})
        if token:
            request.headers["Authorization"] = "Bearer " + token
        client = await tornado.websocket.websocket_connect(request)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def sockets(http_server, base_url):
    clients = SocketClients(base_url)
    yield clients
    clients.close_all()


async def read_json(client, timeout: float = 5.0) -> dict | None:
    """The next message of a tornado client as JSON (None once closed)."""
    import asyncio

    message = await asyncio.wait_for(client.read_message(), timeout)
    return None if message is None else json.loads(message)
