"""The service as an operator runs it: ``python -m tornado_petitions serve`` in a subprocess on a free port.

For tests that need a server outside pytest-tornado's loop (schemathesis,
hypothesis with synchronous clients), the process's real stderr (logs), a real
restart (the browser tests) or several processes on one database (scale-out).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import GENEROUS_PER_ADDRESS, GENEROUS_RATES, json_request
from tests.workers import free_port

# conftest's GENEROUS_RATES as ``serve`` flags; rate-limit tests pass their own.
GENEROUS_RATE_FLAGS = tuple(
    f"--{field.replace('_', '-')}={getattr(GENEROUS_RATES, field)}"
    for field in (
        "login_per_email",
        "login_per_address",
        "register_per_address",
        "signatures_per_user",
        "filings_per_user",
        "filings_per_address",
        "account_mails_per_email",
        "password_resets_per_address",
    )
) + (f"--signatures-per-address={GENEROUS_PER_ADDRESS}", f"--trending-threshold={GENEROUS_PER_ADDRESS}")


class LiveServer:
    """One ``serve`` process; its stderr (the logs) kept in ``<name>.log``, appended across restarts.

    It runs on a fresh SQLite file in ``directory`` unless given ``db_url`` (another
    process's database, or PostgreSQL).  The port is picked once, so ``stop()`` then
    ``start()`` is a real restart on the same port and database.
    """

    def __init__(
        self,
        directory: Path,
        *flags: str,
        db_url: str | None = None,
        name: str = "server",
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.name = name
        self.db_url = db_url or f"sqlite:///{directory / 'live.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = directory / f"{name}.log"
        self.flags = flags
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> LiveServer:
        """Start the process and return once ``/healthz`` answers; raise with its log if it does not."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> LiveServer:
        """Start the process without waiting: several started together race to create the schema."""
        command = [sys.executable, "-m", "tornado_petitions", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--db", self.db_url, *self.flags]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.directory
        )
        return self

    def wait_ready(self, timeout: float = 15.0) -> LiveServer:
        """Return once ``/healthz`` answers 200; stop the process and raise with its log if it does not."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log()}")

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

    def stop_cleanly(self) -> str:
        """``stop()``, asserting a clean exit (0; the log is the message); returns the log."""
        code = self.stop()
        log = self.log()
        assert code == 0, log
        return log

    def log(self) -> str:
        """Everything the process wrote to stderr and stdout so far."""
        return self.log_path.read_text(errors="replace")

    def create_user(
        self, email: str, password: str, name: str = "Admin", admin: bool = False, role: str | None = None
    ) -> None:
        """``create-user`` from the shell, the password on stdin as an operator would (``--admin`` or ``--role``)."""
        command = [sys.executable, "-m", "tornado_petitions", "create-user", "--email", email, "--name", name]
        command += ["--db", self.db_url] + (["--admin"] if admin else [])
        command += ["--role", role] if role else []
        done = subprocess.run(command, input=password + "\n", text=True, capture_output=True, env=self.env)
        assert done.returncode == 0, done.stderr

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
        data, all_headers = json_request(method, body, token, raw, headers)
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
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
