"""The service as an operator runs it: the CLI, SIGTERM with sockets open, resume across a restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import websockets.asyncio.client
from websockets.exceptions import ConnectionClosed

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer


def run_async(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_serve_help_lists_every_setting():
    result = subprocess.run(
        [sys.executable, "-m", "tornado_petitions", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--port",
        "--db",
        "--redis",
        "--allowed-origins",
        "--ping-interval",
        "--ping-timeout",
        "--max-sockets-per-user",
        "--max-backlog",
        "--redis-channel",
        "--log-level",
        "--filings-per-user",
        "--filings-per-address",
        "--filing-window",
        "--login-per-email",
        "--login-per-address",
    ):
        assert flag in result.stdout
        assert "PETITIONS_" in result.stdout


def test_create_user_refuses_a_password_registration_would_refuse(tmp_path):
    for password, problem in (("        ", "only whitespace"), ("short", "at least 8 characters")):
        refused = subprocess.run(
            [sys.executable, "-m", "tornado_petitions", "create-user", "--email", "root@example.org"]
            + ["--name", "Root", "--db", f"sqlite:///{tmp_path / 'petitions.db'}"],
            input=password + "\n",
            text=True,
            capture_output=True,
        )
        assert refused.returncode == 2 and problem in refused.stderr, refused.stderr


def test_create_user_reads_the_password_from_stdin_and_the_admin_works(tmp_path):
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS).start()
    try:
        server.create_user("root@example.org", "admin password 1", name="Root", admin=True)
        duplicate = subprocess.run(
            [
                sys.executable,
                "-m",
                "tornado_petitions",
                "create-user",
                "--email",
                "root@example.org",
                "--name",
                "Again",
                "--db",
                server.db_url,
            ],
            input="another password\n",
            text=True,
            capture_output=True,
        )
        assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
        admin = server.sign_in("root@example.org", "admin password 1")
        assert admin["user"]["role"] == "admin"
        citizen = server.register("ann@example.org")
        status, petition, _ = server.call(
            "POST", "/api/petitions", {"title": "Fix it", "description": "Please"}, citizen["token"]
        )
        assert status == 201
        for target in ("under_review", "in_progress", "resolved"):
            status, body, _ = server.call(
                "PATCH",
                f"/api/petitions/{petition['petition_id']}/status",
                {"status": target, "note": "progress"},
                admin["token"],
            )
            assert status == 200 and body["status"] == target
    finally:
        assert server.stop() == 0


def test_settings_fall_back_to_environment_variables(tmp_path):
    server = LiveServer(tmp_path, env={"PETITIONS_MAX_SOCKETS_PER_USER": "1"})
    server.start()
    try:
        ann = server.register("ann@example.org")

        async def two_sockets():
            url = f"{server.ws_url}/ws/petitions?token={ann['token']}"
            async with websockets.asyncio.client.connect(url) as first:
                await first.recv()
                async with websockets.asyncio.client.connect(url) as second:
                    try:
                        await second.recv()
                    except ConnectionClosed as closed:
                        return closed.rcvd.code
            return None

        assert run_async(two_sockets()) == 4429
    finally:
        server.stop()


def test_sigterm_closes_every_socket_with_1001_and_exits_0(tmp_path):
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS).start()
    server.create_user("root@example.org", "admin password 1", admin=True)
    admin = server.sign_in("root@example.org", "admin password 1")
    ann = server.register("ann@example.org")
    paths = ["/ws/petitions", "/ws/admin", f"/ws/petitions/my/{ann['user']['user_id']}"]

    async def scenario():
        clients = []
        for path in paths:
            token = admin["token"] if path == "/ws/admin" else ann["token"]
            client = await websockets.asyncio.client.connect(f"{server.ws_url}{path}?token={token}")
            await client.recv()
            clients.append(client)
        server.process.send_signal(signal.SIGTERM)
        codes = []
        for client in clients:
            try:
                while True:
                    await client.recv()
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
        return codes

    assert run_async(scenario()) == [1001, 1001, 1001]
    assert server.process.wait(15) == 0
    server.stop()
    assert "stopped" in server.log()


def test_resume_across_a_restart_on_the_same_sqlite_file(tmp_path):
    server = LiveServer(tmp_path, *GENEROUS_RATE_FLAGS).start()
    ann = server.register("ann@example.org")

    def file(title):
        status, body, _ = server.call(
            "POST", "/api/petitions", {"title": title, "description": "x"}, ann["token"]
        )
        assert status == 201
        return body

    async def read_seq(url):
        async with websockets.asyncio.client.connect(url) as client:
            assert json.loads(await client.recv())["type"] == "hello"
            file("Before the restart")
            return json.loads(await client.recv())["seq"]

    seen = run_async(read_seq(f"{server.ws_url}/ws/petitions?token={ann['token']}"))
    assert server.stop() == 0

    # Changes made while the client was away, by a process that has since gone.
    server.start()
    missed = [file(f"Missed {i}")["title"] for i in range(3)]
    assert server.stop() == 0
    server.start()
    try:

        async def resume():
            url = f"{server.ws_url}/ws/petitions?token={ann['token']}&since={seen}"
            async with websockets.asyncio.client.connect(url) as client:
                replay = []
                while (message := json.loads(await client.recv()))["type"] != "hello":
                    replay.append(message)
                file("After the restart")
                live = json.loads(await client.recv())
                return replay, message, live

        replay, hello, live = run_async(resume())
        assert [m["seq"] for m in replay] == [seen + 1, seen + 2, seen + 3]
        assert [m["petition"]["title"] for m in replay] == missed
        assert hello["seq"] == seen + 3
        assert live["seq"] == seen + 4
    finally:
        assert server.stop() == 0


def test_serve_refuses_a_mail_setting_it_cannot_use_in_one_line(tmp_path):
    """A --mail-from no header can carry stops ``serve`` at start: exit 2 and one line naming the flag."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tornado_petitions",
            "serve",
            "--port=0",
            f"--db=sqlite:///{tmp_path / 'refused.db'}",
            "--smtp-url=smtp://127.0.0.1:1",
            "--mail-from=not an address",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("python -m tornado_petitions: error: --mail-from")
    )


def test_serve_refuses_a_regions_file_it_cannot_read_in_one_line(tmp_path):
    """A --regions-file that is missing or has a bad row stops ``serve``: exit 2 and one line naming it."""
    bad = tmp_path / "regions.csv"
    bad.write_text("postcode_prefix,region\nSW1,London,extra\n")
    for path in (bad, tmp_path / "missing.csv"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tornado_petitions",
                "serve",
                "--port=0",
                f"--db=sqlite:///{tmp_path / 'refused.db'}",
                f"--regions-file={path}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "--regions-file" in result.stderr.strip().splitlines()[-1]
