"""What only PostgreSQL can get wrong: pooled connections across threads, and seqs under concurrent writers.

The rest of the suite runs on PostgreSQL too (``db_backend`` in conftest);
these tests are about the database server itself.
"""

from __future__ import annotations

import asyncio
import time

import psycopg2
import pytest

from tests.conftest import read_json
from tornado_petitions.server import make_app

pytestmark = pytest.mark.parametrize("db_backend", ["postgresql"])


def backends(db_url: str, terminate: bool = False, settle: bool = False) -> int:
    """How many other connections the test database has.

    With ``terminate`` they are killed first (as a database restart would);
    with ``settle`` the count is awaited down to zero for up to 2 s, since a
    backend takes a moment to leave once terminated or closed.
    """
    connection = psycopg2.connect(db_url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            others = "datname = current_database() AND pid <> pg_backend_pid()"
            if terminate:
                cursor.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
            for _ in range(200):
                cursor.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")
                count = cursor.fetchone()[0]
                if count == 0 or not (terminate or settle):
                    break
                time.sleep(0.01)
            return count
    finally:
        connection.close()


@pytest.mark.gen_test
async def test_connections_the_server_dropped_are_replaced_not_reused(api, settings):
    ann = await api.register("ann@example.org")
    await asyncio.gather(*(api.file_petition(ann["token"], f"Before {i}") for i in range(8)))
    assert backends(settings.db_url) >= 1
    for round_ in range(3):
        assert backends(settings.db_url, terminate=True) == 0  # as a database restart would
        answers = await asyncio.gather(
            *(api.get("/api/petitions?limit=1") for _ in range(8)),
            api.post("/api/petitions", {"title": f"After {round_}", "description": "x"}, ann["token"]),
        )
        assert [a.status for a in answers] == [200] * 8 + [201]


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_writers_with_rollbacks_leave_no_gap(api, sockets, settings, make_admin):
    """Refused changes roll back their seq; the feed and the log stay gapless and ordered."""
    users = [await api.register(f"user{i}@example.org") for i in range(6)]
    admin = make_admin()
    petitions = [await api.file_petition(users[0]["token"], f"Petition {i}") for i in range(6)]
    feed = await sockets.connect("/ws/petitions", users[0]["token"])
    start = (await read_json(feed))["seq"]

    # Each petition is moved twice at once: one 200, one 409 that took a seq and gave it back;
    # signatures (twice each: one 201, one 409) go on between them.
    moves = [
        api.patch(f"/api/petitions/{p['petition_id']}/status", {"status": "under_review"}, admin["token"])
        for p in petitions
        for _ in range(2)
    ]
    path = f"/api/petitions/{petitions[0]['petition_id']}/signatures"
    signs = [api.post(path, token=u["token"]) for u in users for _ in range(2)]
    answers = await asyncio.gather(*moves, *signs)
    assert sorted(a.status for a in answers[: len(moves)]) == [200] * 6 + [409] * 6
    assert sorted(a.status for a in answers[len(moves) :]) == [201] * 6 + [409] * 6

    messages = []
    while len([m for m in messages if m["type"] == "event"]) < 6:
        messages.append(await read_json(feed))
    assert [m["seq"] for m in messages if m["type"] == "event"] == list(range(start + 1, start + 7))
    history = (await api.get(f"/api/petitions/{petitions[0]['petition_id']}/events")).body["events"]
    assert [e["event"] for e in history] == ["created", "status_changed"]
    assert (await api.get(path[: -len("/signatures")])).body["signature_count"] == 6


def test_shutdown_closes_every_pooled_connection(io_loop, settings):
    app = make_app(settings)
    io_loop.run_sync(app.start)

    async def busy() -> None:
        from tornado_petitions import event_log

        await asyncio.gather(*(app.runner.run(event_log.log_bounds) for _ in range(20)))

    io_loop.run_sync(busy)
    assert backends(settings.db_url) >= 1
    io_loop.run_sync(app.shutdown)
    assert backends(settings.db_url, settle=True) == 0
