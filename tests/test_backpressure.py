"""A client that stops reading is closed with 4008 once its backlog passes the bound; others never wait."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import read_json
from tests.rawws import RawWebSocket

BACKLOG = 64 * 1024


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, max_backlog=BACKLOG)


@pytest.mark.gen_test(timeout=60)
async def test_reader_that_stops_is_closed_4008_and_others_keep_up(api, sockets, app, http_port):
    ann = await api.register("ann@example.org")
    reader = await sockets.connect("/ws/petitions", ann["token"])
    await read_json(reader)
    stalled = await RawWebSocket.connect(
        http_port, "/ws/petitions?token=" + ann["token"], receive_buffer=4096
    )
    assert app.hub.count("public") == 2

    description = "x" * 9_000  # ~9 KB per event on the wire
    sent = 0
    while app.hub.count("public") == 2:
        await api.file_petition(ann["token"], f"Petition {sent}", description=description)
        sent += 1
        message = await read_json(reader)  # the healthy client gets each event at once
        assert message["seq"] == sent
        # Kernel buffers on loopback take a few MB before the server's own backlog grows.
        assert sent < 2000, "the stalled socket was never closed"

    assert b"petitions_ws_slow_consumers_closed_total 1.0" in app.metrics.render()
    # Whatever it had queued is bounded; once it reads, the last frame is the 4008 close.
    assert await stalled.close_code() == 4008
    stalled.close()
    await api.file_petition(ann["token"], "After the slow one left")
    assert (await read_json(reader))["seq"] == sent + 1
