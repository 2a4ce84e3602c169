"""The service as an operator runs it: ``python -m tornado_petitions serve`` in a subprocess on a free port.

For tests that need a server outside pytest-tornado's loop (schemathesis,
hypothesis with synchronous clients) or the process's real stderr (logs).
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

# Tests sign in far more often than a person would; rate-limit tests pass their own flags.
GENEROUS_RATE_FLAGS = (
    "--login-per-email=100000",
    "--login-per-address=100000",
    "--register-per-address=100000",
    "--signatures-per-user=100000",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One ``serve`` process on a fresh SQLite file; its stderr (the logs) kept in a file."""

    def __init__(self, directory: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.db_url = f"sqlite:///{directory / 'live.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = directory / "server.log"
        self.flags = flags
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> LiveServer:
        """Start the process and return once ``/healthz`` answers; raise with its log if it does not."""
        command = [sys.executable, "-m", "tornado_petitions", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--db", self.db_url, *self.flags]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.directory
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for exit; returns the exit code (0 after a clean shutdown)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        """Everything the process wrote to stderr and stdout so far."""
        return self.log_path.read_text(errors="replace")

    def create_user(self, email: str, password: str, name: str = "Admin", admin: bool = False) -> None:
        """``create-user`` from the shell, the password on stdin as an operator would."""
        command = [sys.executable, "-m", "tornado_petitions", "create-user", "--email", email, "--name", name]
        command += ["--db", self.db_url] + (["--admin"] if admin else [])
        subprocess.run(
            command, input=password + "\n", text=True, check=True, capture_output=True, env=self.env
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, parsed JSON or text, headers) of one request; never raises on an error status."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PATCH", "PUT"):
            data = b""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", "Bearer " + token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, payload, response_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, payload, response_headers = error.code, error.read(), error.headers
        text = payload.decode()
        is_json = response_headers.get("Content-Type", "").startswith("application/json") and text
        return status, json.loads(text) if is_json else text, response_headers

    def sign_in(self, email: str, password: str) -> dict:
        status, body, _ = self.call("POST", "/api/auth/login", {"email": email, "password": password})
        assert status == 200, body
        return body

    def register(self, email: str, name: str = "Citizen", password: str = "correct horse") -> dict:
        body = {"email": email, "name": name, "password": password}
        status, answer, _ = self.call("POST", "/api/auth/register", body)
        assert status == 201, answer
        return answer
