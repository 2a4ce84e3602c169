"""``GET /metrics`` shows the figures moving while clients connect and petitions change."""

from __future__ import annotations

import asyncio

import pytest
import tornado.httpclient
import tornado.websocket
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import read_json
from tornado_petitions.settings import Settings


@pytest.fixture
def db_backend() -> str:
    """The figures come from the hub and handlers, not the database: SQLite alone is enough."""
    return "sqlite"


@pytest.fixture
def settings(settings) -> Settings:
    return Settings(db_url=settings.db_url, rate_limits=settings.rate_limits, max_sockets_per_user=3)


class Scrape(dict):
    """One scrape: ``{(sample name, frozenset of label items): value}``."""

    def get_value(self, name: str, **labels: str) -> float:
        return self.get((name, frozenset(labels.items())), 0.0)


async def scrape(api) -> Scrape:
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = Scrape()
    for family in text_string_to_metric_families(response.body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def eventually(api, predicate, attempts: int = 100) -> Scrape:
    """Scrape until ``predicate(scrape)`` holds (the hub moves figures after the response)."""
    for _ in range(attempts):
        figures = await scrape(api)
        if predicate(figures):
            return figures
        await asyncio.sleep(0.02)
    raise AssertionError(f"figures never matched: {figures}")


def sockets_open(figures: Scrape, channel: str) -> float:
    return figures.get_value("petitions_open_sockets", channel=channel)


def sent(figures: Scrape, channel: str) -> float:
    return figures.get_value("petitions_ws_messages_sent_total", channel=channel)


@pytest.mark.gen_test(timeout=30)
async def test_figures_move_as_clients_connect_and_petitions_change(api, sockets, make_admin):
    admin = make_admin()
    ann = await api.register("ann@example.org", "Ann")
    before = await scrape(api)
    for channel in ("user", "public", "admin"):
        assert sockets_open(before, channel) == 0
        assert sent(before, channel) == 0

    public = await sockets.connect("/ws/petitions", ann["token"])
    mine = await sockets.connect(f"/ws/petitions/my/{ann['user']['user_id']}", ann["token"])
    admin_feed = await sockets.connect("/ws/admin", admin["token"])
    for client in (public, mine, admin_feed):
        await read_json(client)  # hello / update: registered with the hub
    connected = await scrape(api)
    assert [sockets_open(connected, c) for c in ("user", "public", "admin")] == [1, 1, 1]

    petition = await api.file_petition(ann["token"])
    path = f"/api/petitions/{petition['petition_id']}"
    assert (await api.post(path + "/signatures", token=admin["token"])).status == 201
    change = {"status": "under_review", "note": "looking"}
    assert (await api.patch(path + "/status", change, admin["token"])).status == 200
    for client in (public, admin_feed):
        # The signature travels as a counts frame, flushed before the status change.
        assert [(await read_json(client))["type"] for _ in range(3)] == ["event", "counts", "event"]
    # The user channel may fold the count change into the status change's list.
    changed = await eventually(api, lambda f: sent(f, "user") >= 2)
    assert sent(changed, "public") == 3 and sent(changed, "admin") == 3
    for channel in ("public", "admin"):
        assert changed.get_value("petitions_ws_bytes_sent_total", channel=channel) > 3 * 40
    assert changed.get_value("petitions_events_delivered_total") == 2
    assert changed.get_value("petitions_event_commit_to_send_seconds_count") == 2

    # HTTP requests by route, method and status, and the latency histogram by route.
    requests = "petitions_http_requests_total"
    assert changed.get_value(requests, route="/api/petitions", method="POST", status="201") == 1
    assert changed.get_value(requests, route="/api/petitions/{id}/status", method="PATCH", status="200") == 1
    assert changed.get_value(requests, route="/api/auth/register", method="POST", status="201") == 1
    assert changed.get_value(requests, route="/metrics", method="GET", status="200") >= 2
    # WebSocket handshakes by channel route (bounded labels: no user ids).
    assert changed.get_value(requests, route="/ws/petitions", method="GET", status="101") == 1
    assert changed.get_value(requests, route="/ws/petitions/my/{user_id}", method="GET", status="101") == 1
    assert changed.get_value(requests, route="/ws/admin", method="GET", status="101") == 1
    latency = "petitions_http_request_seconds"
    assert changed.get_value(latency + "_count", route="/api/petitions/{id}/signatures") == 1
    assert changed.get_value(latency + "_bucket", route="/api/petitions/{id}/signatures", le="+Inf") == 1
    assert (await api.get("/api/petitions/999999")).status == 404
    assert (await api.get("/no/such/page")).status == 404
    errors = await scrape(api)
    assert errors.get_value(requests, route="/api/petitions/{id}", method="GET", status="404") == 1
    assert errors.get_value(requests, route="unmatched", method="GET", status="404") == 1

    # Closing sockets brings the gauges back down.
    public.close()
    mine.close()
    closed = await eventually(api, lambda f: sockets_open(f, "public") == 0 and sockets_open(f, "user") == 0)
    assert sockets_open(closed, "admin") == 1


@pytest.mark.gen_test(timeout=30)
async def test_refused_handshakes_are_counted_by_reason(api, sockets, base_url):
    ann = await api.register("ann@example.org")
    ws_base = "ws" + base_url[len("http") :]

    async def refused(path: str, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = tornado.httpclient.HTTPRequest(ws_base + path, headers=headers)
        with pytest.raises(tornado.httpclient.HTTPClientError) as failure:
            await tornado.websocket.websocket_connect(request)
        return failure.value.code

    assert await refused("/ws/admin") == 401
    assert await refused("/ws/petitions", "not-a-token") == 401
    assert await refused("/ws/admin", ann["token"]) == 403
    kept = [await sockets.connect("/ws/petitions", ann["token"]) for _ in range(3)]
    for client in kept:
        await read_json(client)
    extra = await sockets.connect("/ws/petitions", ann["token"])
    assert await read_json(extra) is None and extra.close_code == 4429

    figures = await scrape(api)
    refusals = "petitions_ws_handshakes_refused_total"
    assert figures.get_value(refusals, reason="unauthorized") == 1
    assert figures.get_value(refusals, reason="invalid_token") == 1
    assert figures.get_value(refusals, reason="forbidden") == 1
    assert figures.get_value(refusals, reason="too_many_sockets") == 1
    assert sockets_open(figures, "public") == 3
    requests = "petitions_http_requests_total"
    assert figures.get_value(requests, route="/ws/petitions", method="GET", status="401") == 1
    assert figures.get_value(requests, route="/ws/admin", method="GET", status="401") == 1
    assert figures.get_value(requests, route="/ws/admin", method="GET", status="403") == 1
    # The families an operator alerts on exist from the start, at zero until something happens.
    assert figures.get_value("petitions_ws_heartbeat_pruned_total") == 0
    assert figures.get_value("petitions_ws_slow_consumers_closed_total") == 0
