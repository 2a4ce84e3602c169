"""``/metrics`` answers only addresses in ``--metrics-allow`` (default loopback); others get a JSON 403.

Real ``serve`` processes: one with the default list, one behind a (pretend)
load balancer with ``--xheaders``, where the forwarded client address counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_server import LiveServer


def metrics_status(live: LiveServer, forwarded_for: str | None = None) -> tuple[int, object]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    status, body, _ = live.call("GET", "/metrics", headers=headers)
    return status, body


@pytest.fixture
def default_server(tmp_path):
    server = LiveServer(tmp_path, name="default").start()
    yield server
    server.stop()


@pytest.fixture
def proxied_server(tmp_path):
    server = LiveServer(
        tmp_path, "--xheaders", "--metrics-allow", "10.0.0.0/8, 2001:db8::/32", name="proxied"
    )
    yield server.start()
    server.stop()


def test_by_default_only_loopback_reads_metrics_and_a_forwarded_header_is_not_believed(default_server):
    status, body = metrics_status(default_server)
    assert status == 200 and "petitions_" in body, body
    # Without --xheaders the header is the client's word, not its address: loopback still.
    assert metrics_status(default_server, "203.0.113.9")[0] == 200


def test_behind_a_proxy_the_forwarded_address_decides(proxied_server):
    for allowed in ("10.1.2.3", "2001:db8::7"):
        status, body = metrics_status(proxied_server, allowed)
        assert status == 200 and "petitions_" in body, (allowed, body)
    for refused in ("203.0.113.9", "127.0.0.1", "11.0.0.1", "2001:db9::1"):
        status, body = metrics_status(proxied_server, refused)
        assert status == 403, (refused, body)
        assert body["error"]["code"] == "forbidden" and "--metrics-allow" in body["error"]["message"], body
    # The loopback address itself is not in this list either; /healthz stays open to everyone.
    assert metrics_status(proxied_server)[0] == 403
    assert proxied_server.call("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.9"})[0] == 200


def test_an_invalid_network_is_a_usage_error(tmp_path):
    command = [sys.executable, "-m", "tornado_petitions", "serve", "--metrics-allow", "10.0.0.0/33"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "metrics-allow" in done.stderr, done.stderr
