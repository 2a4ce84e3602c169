"""What the browser tests share: the service as a real, restartable process, and a small JSON client.

The page is tested against ``python -m tornado_petitions serve`` exactly as a
user runs it (a subprocess on a real port and SQLite file), so a restart is a
real SIGTERM and a real start on the same port and database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "browser"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``python -m tornado_petitions serve`` on one port and one database file, started and stopped at will."""

    def __init__(self, db_path: Path, log_path: Path, port: int | None = None, flags: tuple = ()) -> None:
        self.db_url = f"sqlite:///{db_path}"
        self.flags = tuple(flags)
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start and wait until ``/healthz`` answers; raises AssertionError if it never does."""
        log = open(self.log_path, "a")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tornado_petitions",
                "serve",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--db",
                self.db_url,
                "--log-level",
                "info",
                *self.flags,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited early; see {self.log_path}"
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"the server did not answer /healthz within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM and wait: a clean stop exits 0 (it closes every socket with 1001 first)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the server did not stop within 15 s of SIGTERM") from None
        assert code == 0, f"the server exited {code} on SIGTERM; see {self.log_path}"

    def create_user(self, email: str, name: str, password: str, admin: bool = False) -> None:
        """``create-user`` as an operator runs it, with the password on stdin."""
        command = [
            sys.executable,
            "-m",
            "tornado_petitions",
            "create-user",
            "--email",
            email,
            "--name",
            name,
            "--db",
            self.db_url,
        ]
        if admin:
            command.append("--admin")
        done = subprocess.run(command, input=password + "\n", capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One JSON request with an optional Bearer token: ``(status, parsed body)``, never raising."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, json.loads(text) if text else None

    def login(self, email: str, password: str) -> str:
        status, body = self.call("POST", "/api/auth/login", {"email": email, "password": password})
        assert status == 200, body
        return body["token"]
