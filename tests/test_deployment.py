"""docs/deployment.md as written: its nginx configuration in front of two ``serve --xheaders`` processes.

The nginx block is read from the document and run by Debian's nginx (in the
foreground, with its own prefix, logs and temporary directories), only its
ports replaced by the test's.  The processes share PostgreSQL and a Redis
channel of their own.  Clients connect to nginx from different loopback
addresses (all of 127.0.0.0/8 is this machine on Linux), so the processes
must tell them apart by what nginx forwards.  The environment file and the
unit's command line of the document are parsed by the real command line.
"""

from __future__ import annotations

import collections
import contextlib
import grp
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tests.workers import free_port, unique_name
from tornado_petitions import cli
from tornado_petitions.settings import Settings

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
# Within a second or two on a loaded machine; far below any timeout of nginx's.
LIVE_TIMEOUT = 5.0


def fenced_block(language: str, containing: str) -> str:
    """The one ```language block of the document that contains ``containing``."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", DOCUMENT.read_text(), re.S | re.M)
    found = [text for info, text in blocks if info == language and containing in text]
    assert len(found) == 1, f"{len(found)} ```{language} blocks with {containing!r} in {DOCUMENT}"
    return found[0]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should appear once in the document's block:\n{text}"
    return text.replace(old, new)


def nginx_binary() -> str:
    """Debian's nginx; its absence fails the test (scripts/install-test-deps.sh installs it)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("nginx is not installed: scripts/install-test-deps.sh installs Debian's")
    return found


class Nginx:
    """The document's nginx block, its two upstream ports and its listen port replaced, run in the foreground."""

    def __init__(self, directory: Path, upstream_ports: tuple[int, int], port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        block = fenced_block("nginx", "upstream petitions")
        block = replace_once(block, "server 127.0.0.1:8001;", f"server 127.0.0.1:{upstream_ports[0]};")
        block = replace_once(block, "server 127.0.0.1:8002;", f"server 127.0.0.1:{upstream_ports[1]};")
        block = replace_once(block, "listen 80;", f"listen 127.0.0.1:{self.port};")
        self.config_path = directory / "nginx.conf"
        self.config_path.write_text(self._main_config(block))
        self.process: subprocess.Popen | None = None

    def _main_config(self, server_block: str) -> str:
        """nginx.conf around the block, as Debian's includes conf.d/ inside ``http``; everything in ``directory``."""
        where = self.directory
        # A master started as root hands connections to workers running as "user"; this one may read ``where``.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
        temp = "\n".join(
            f"    {kind}_temp_path {where / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""daemon off;
{user if os.geteuid() == 0 else ""}
worker_processes 1;
pid {where / "nginx.pid"};
error_log {where / "error.log"} info;
events {{
    worker_connections 256;
}}
http {{
    access_log {where / "access.log"};
{temp}
{server_block}
}}
"""

    def start(self, timeout: float = 10.0) -> None:
        command = [nginx_binary(), "-p", str(self.directory), "-e", str(self.directory / "error.log")]
        self.process = subprocess.Popen(
            [*command, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"nginx exited {self.process.returncode}:\n{self.log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"nginx did not listen within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: open sockets are not waited for
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Front:
    """Two ``serve --xheaders`` processes on one database and Redis channel, behind the document's nginx.

    ``call`` and ``connect`` go through nginx from a chosen loopback source address.
    """

    def __init__(self, directory: Path, db_url: str, redis_url: str) -> None:
        self.directory = directory
        self.db_url = db_url
        self.redis_url = redis_url
        self.channel = unique_name("tp-test-")
        self.processes: list[LiveServer] = []
        self.nginx: Nginx | None = None
        self.sockets = contextlib.ExitStack()  # every client socket, closed in stop()

    def start(self, *flags: str) -> tuple[LiveServer, LiveServer]:
        """Start both processes (``flags`` after the generous rate limits) and nginx; wait for all three.

        The processes' ``--public-url`` is nginx's address, as the document tells an operator to set it.
        """
        front_port = free_port()
        flags = (
            *GENEROUS_RATE_FLAGS,
            "--xheaders",
            "--public-url",
            f"http://127.0.0.1:{front_port}",
            "--redis",
            self.redis_url,
            "--redis-channel",
            self.channel,
            *flags,
        )
        self.processes = [
            LiveServer(self.directory, *flags, db_url=self.db_url, name=name).launch() for name in ("a", "b")
        ]
        for process in self.processes:
            process.wait_ready(20.0)
        nginx_directory = self.directory / "nginx"
        nginx_directory.mkdir()
        self.nginx = Nginx(nginx_directory, (self.processes[0].port, self.processes[1].port), front_port)
        self.nginx.start()
        return self.processes[0], self.processes[1]

    def stop(self) -> list[int]:
        """Close the clients, stop nginx, then the processes (each even if the one before failed); their codes."""
        try:
            self.sockets.close()
        finally:
            try:
                if self.nginx is not None:
                    self.nginx.stop()
            finally:
                codes = [process.stop() for process in self.processes]  # never leave a server behind
                self.delete_redis_keys()
        return codes

    def delete_redis_keys(self) -> None:
        """Drop what the processes left in the shared Redis (rate-limit counters under the channel)."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(f"{self.channel}:*"):
                client.delete(key)
        finally:
            client.close()

    def logs(self) -> str:
        parts = [f"--- {p.name}\n{p.log()}" for p in self.processes]
        return "\n".join(parts + [f"--- nginx\n{self.nginx.log() if self.nginx else ''}"])

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        source: str = "127.0.0.2",
        headers: dict | None = None,
    ) -> tuple[int, object]:
        """(status, parsed JSON or text) of one request through nginx from ``source``."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = "Bearer " + token
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.nginx.port, timeout=10, source_address=(source, 0)
        )
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None, all_headers)
            response = connection.getresponse()
            text = response.read().decode()
            is_json = response.getheader("Content-Type", "").startswith("application/json") and text
            return response.status, json.loads(text) if is_json else text
        finally:
            connection.close()

    def register(self, email: str, source: str = "127.0.0.2") -> dict:
        body = {"email": email, "name": email.split("@")[0], "password": "correct horse"}
        status, answer = self.call("POST", "/api/auth/register", body, source=source)
        assert status == 201, answer
        return answer

    def connect(self, path: str, source: str = "127.0.0.2", origin: str | None = None):
        """A WebSocket through nginx whose TCP connection comes from ``source``."""
        sock = socket.create_connection(
            ("127.0.0.1", self.nginx.port), timeout=10, source_address=(source, 0)
        )
        connecting = websockets.sync.client.connect(
            self.nginx.ws_url + path, sock=sock, origin=origin, open_timeout=10
        )
        return self.sockets.enter_context(connecting)


@pytest.fixture
def front(tmp_path, postgres_url, redis_url):
    nginx_binary()
    group = Front(tmp_path, postgres_url, redis_url)
    yield group
    codes = group.stop()
    assert codes == [0] * len(codes), group.logs()


def file_petition(process: LiveServer, token: str, title: str) -> int:
    """File through one process directly (not through nginx); the petition's id."""
    status, body, _ = process.call(
        "POST", "/api/petitions", {"title": title, "description": "Please."}, token
    )
    assert status == 201, body
    return body["petition_id"]


def read_message(client, timeout: float = LIVE_TIMEOUT) -> dict:
    return json.loads(client.recv(timeout=timeout))


def next_event(client) -> dict:
    """The next lifecycle event, past any counts frames."""
    while (message := read_message(client))["type"] != "event":
        assert message["type"] == "counts", message
    return message


def hello_seq(client) -> int:
    message = read_message(client)
    assert message["type"] == "hello", message
    return message["seq"]


def close_code(client) -> int | None:
    """The code of the close frame that ends ``client``, past any frames still queued before it."""
    try:
        while True:
            client.recv(timeout=LIVE_TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_a_socket_through_nginx_gets_hello_and_the_events_made_through_either_process(front):
    a, b = front.start()
    ann = front.register("ann@example.org")
    # Round robin puts one on each process; one is a browser's, with the Origin of the site nginx serves.
    feeds = [front.connect("/ws/petitions"), front.connect("/ws/petitions", origin=front.nginx.url)]
    start = {hello_seq(feed) for feed in feeds}.pop()

    through_a = file_petition(a, ann["token"], "Filed through A")
    through_b = file_petition(b, ann["token"], "Filed through B")
    for feed in feeds:
        events = [next_event(feed), next_event(feed)]
        assert [(e["seq"], e["petition"]["petition_id"]) for e in events] == [
            (start + 1, through_a),
            (start + 2, through_b),
        ]

    # The processes see the host, port and scheme the client used (a forged scheme is replaced).
    status, page = front.call("GET", f"/petitions/{through_a}", headers={"X-Forwarded-Proto": "https"})
    assert status == 200
    assert f'<meta property="og:url" content="{front.nginx.url}/petitions/{through_a}">' in page


def test_per_address_limits_count_the_client_address_nginx_forwards_not_nginxs(front):
    # Shared windows are numbered from the epoch: an hour's, so the three registrations cannot
    # straddle two (a minute's could, on a busy machine, and the third would pass).
    front.start(
        "--register-per-address", "2", "--max-anonymous-sockets-per-address", "1", "--rate-window", "3600"
    )

    def register(email: str, source: str, headers: dict | None = None) -> int:
        body = {"email": email, "name": "N", "password": "correct horse"}
        return front.call("POST", "/api/auth/register", body, source=source, headers=headers)[0]

    # Counted for both processes together (Redis), per address: a forged address does not help.
    forged = {"X-Forwarded-For": "127.0.0.9", "X-Real-IP": "127.0.0.9"}
    from_2 = [register(f"two{i}@example.org", "127.0.0.2", forged if i == 2 else None) for i in range(3)]
    assert from_2 == [201, 201, 429]
    assert register("three@example.org", "127.0.0.3") == 201

    # One anonymous socket per address per process: of three from 127.0.0.2, round robin puts two
    # on one process, which refuses the second with 4429.
    outcomes = collections.Counter()
    for _ in range(3):
        feed = front.connect("/ws/petitions", source="127.0.0.2")
        try:
            outcomes[read_message(feed)["type"]] += 1
        except ConnectionClosed as closed:
            outcomes[closed.rcvd.code] += 1
    assert outcomes == {"hello": 2, 4429: 1}, front.logs()
    # Both processes now hold 127.0.0.2's one socket; had they counted nginx's address, they would
    # refuse every other client too.
    assert [read_message(front.connect("/ws/petitions", source="127.0.0.3"))["type"]] == ["hello"]


def test_sockets_of_a_stopping_process_close_1001_and_resume_through_nginx_missing_nothing(front):
    a, b = front.start()
    ann = front.register("ann@example.org")
    feeds = [front.connect("/ws/petitions") for _ in range(4)]  # two on each process
    start = {hello_seq(feed) for feed in feeds}.pop()
    file_petition(a, ann["token"], "Seen by all")
    assert {next_event(feed)["seq"] for feed in feeds} == {start + 1}

    a.process.send_signal(signal.SIGTERM)
    assert a.process.wait(15) == 0, a.log()
    # Made while A's sockets are away, through the process that is left.
    missed = [file_petition(b, ann["token"], f"Made meanwhile {i}") for i in range(2)]

    on_a, on_b = [], []
    for feed in feeds:
        try:
            event = next_event(feed)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1001, closed
            on_a.append(feed)
            continue
        assert (event["seq"], event["petition"]["petition_id"]) == (start + 2, missed[0])
        assert next_event(feed)["seq"] == start + 3
        on_b.append(feed)
    assert len(on_a) == len(on_b) == 2, front.logs()

    # Each reconnects through nginx (which finds A gone and goes to B) from the seq it had.
    resumed = []
    for _ in on_a:
        feed = front.connect(f"/ws/petitions?since={start + 1}")
        replayed = []
        while (message := read_message(feed))["type"] != "hello":
            replayed.append(message)
        events = [m for m in replayed if m["type"] == "event"]
        assert [(e["seq"], e["petition"]["petition_id"]) for e in events] == [
            (start + 2, missed[0]),
            (start + 3, missed[1]),
        ]
        assert message["seq"] == start + 3
        resumed.append(feed)

    live = file_petition(b, ann["token"], "Live after the resume")
    for feed in resumed + on_b:
        event = next_event(feed)
        assert (event["seq"], event["petition"]["petition_id"]) == (start + 4, live)


def test_the_environment_file_and_the_units_command_line_give_the_settings_behind_nginx(monkeypatch, capsys):
    environment_file = fenced_block("sh", "# /etc/tornado-petitions/env")
    unit = fenced_block("ini", "# /etc/systemd/system/tornado-petitions@.service")
    assert "EnvironmentFile=/etc/tornado-petitions/env\n" in unit
    variables = dict(
        line.split("=", 1) for line in environment_file.splitlines() if line and not line.startswith("#")
    )
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    program, *arguments = shlex.split(exec_start.replace("%i", "8001"))
    assert program.endswith("/bin/tornado-petitions")

    for name in list(os.environ):
        if name.startswith("PETITIONS_"):
            monkeypatch.delenv(name)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--help"])
    known = set(re.findall(r"\(env\s+(PETITIONS_\w+)\)", capsys.readouterr().out))
    assert set(variables) - known == set()

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = cli.settings_from_args(cli.build_parser().parse_args(arguments))
    assert (settings.host, settings.port, settings.xheaders) == ("127.0.0.1", 8001, True)
    assert settings.db_url.startswith("postgresql://") and settings.redis_url.startswith("redis://")
    assert settings.secure_cookies and settings.public_url.startswith("https://")

    # nginx keeps an idle socket open longer than the pings that keep it from being idle.
    nginx = fenced_block("nginx", "upstream petitions")
    timeouts = [int(seconds) for seconds in re.findall(r"proxy_(?:read|send)_timeout (\d+)s;", nginx)]
    assert len(timeouts) == 2 and min(timeouts) > settings.ping_interval > 0
    assert Settings().ping_interval == settings.ping_interval


def test_systemd_accepts_the_unit(tmp_path):
    environment_file = fenced_block("sh", "# /etc/tornado-petitions/env")
    unit = fenced_block("ini", "# /etc/systemd/system/tornado-petitions@.service")
    (tmp_path / "env").write_text(environment_file)
    unit = replace_once(
        unit, "EnvironmentFile=/etc/tornado-petitions/env", f"EnvironmentFile={tmp_path / 'env'}"
    )
    # systemd-analyze checks that the program exists: this Python stands in for the installed command.
    unit = replace_once(unit, "/opt/tornado-petitions/bin/tornado-petitions", sys.executable)
    (tmp_path / "tornado-petitions@.service").write_text(unit)
    verify = ["systemd-analyze", "verify", str(tmp_path / "tornado-petitions@8001.service")]
    done = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
