"""The servers a benchmark starts: tornado_petitions and its peers, each fresh, on a free port.

Each ``Server`` starts its process (pinned to core 0 where ``taskset`` and a
second core allow), waits for it to answer, signs in the users the
benchmark needs, makes one change at a time on ``trigger()``, reports its
RSS and CPU time from ``/proc``, and is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .http_client import HttpConnection

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
PASSWORD = "bench-password-1"
SERVER_CORE, CLIENT_CORE = 0, 1
# ``--ours-src DIR``: run tornado_petitions from another checkout (say, before a change).
OURS_SRC: Path | None = None
PINNED = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peers_python(peers: Path) -> str:
    """The peers' own venv (made on first use from their requirements.txt), so ours stays untouched."""
    venv = CACHE / "venv-peers"
    stamp = venv / ".installed"
    requirements = peers / "requirements.txt"
    if not stamp.exists() or stamp.read_text() != requirements.read_text():
        print(f"# creating {venv} from {requirements}", file=sys.stderr, flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        stamp.write_text(requirements.read_text())
    return str(venv / "bin" / "python")


def socketio_dir(peers: Path) -> Path | None:
    """A writable copy of the Socket.IO peer with its packages (``npm ci``); None without Node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    target = CACHE / "socketio_node"
    source = peers / "socketio_node"
    lock = (source / "package-lock.json").read_text()
    if not (target / "node_modules").is_dir() or (target / "package-lock.json").read_text() != lock:
        print(f"# npm ci in {target}", file=sys.stderr, flush=True)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json", "server.js"):
            shutil.copyfile(source / name, target / name)
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=target, capture_output=True)
        if done.returncode != 0:
            print(f"# npm ci failed: {done.stderr.decode()[-500:]}", file=sys.stderr)
            return None
    shutil.copyfile(source / "server.js", target / "server.js")
    return target


class Server:
    """One server process under test."""

    name = "server"
    greetings = 1  # messages a feed socket gets on connect before any event
    socketio = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.ws_path = "/ws/petitions"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def cwd(self) -> Path:
        return ROOT

    @property
    def health_port(self) -> int:
        return self.port

    async def start(self) -> None:
        """Start the process and wait until ``/healthz`` answers; raises with the log tail if it dies."""
        self.log = self.workdir / f"{self.name.replace(' ', '_')}-{self.port}.log"
        pin = ["taskset", "-c", str(SERVER_CORE)] if PINNED else []
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [*pin, *self.command()], stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.cwd
            )
        for _ in range(1500):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                conn = await HttpConnection("127.0.0.1", self.health_port).open()
                status, _ = await conn.request("GET", "/healthz")
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer /healthz in 30 s")

    async def prepare(self, authors: int = 1) -> None:
        """Sign in what ``trigger`` and the HTTP load need (``authors`` citizens)."""

    async def trigger(self) -> None:
        """Make one change that every feed socket receives; returns once the server answered."""
        raise NotImplementedError

    def rss_kb(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ApiServer(Server):
    """A server with the petitions HTTP API: an admin moves one citizen's petition back and forth."""

    async def prepare(self, authors: int = 1) -> None:
        self.api = await HttpConnection("127.0.0.1", self.port).open()
        self.admin_token = await self.admin()
        self.tokens = [
            await self.register(f"citizen{i}@bench.example", f"Citizen {i}") for i in range(authors)
        ]
        status, petition = await self.api.json(
            "POST", "/api/petitions", _petition_body(0), token=self.tokens[0]
        )
        assert status == 201, (status, petition)
        self.petition_id = petition["petition_id"]
        self.statuses = self.cycle()

    async def register(self, email: str, name: str) -> str:
        document = {"email": email, "name": name, "password": PASSWORD}
        status, answer = await self.api.json("POST", "/api/auth/register", document)
        assert status in (200, 201), (status, answer)
        return answer["token"]

    async def admin(self) -> str:
        raise NotImplementedError

    def cycle(self):
        while True:
            yield "resolved"
            yield "in_progress"

    async def trigger(self) -> None:
        path = f"/api/petitions/{self.petition_id}/status"
        status, answer = await self.api.json(
            "PATCH", path, {"status": next(self.statuses)}, token=self.admin_token
        )
        assert status == 200, (status, answer)


def _petition_body(n: int) -> dict:
    return {
        "title": f"Fix the streetlight number {n}",
        "description": "It has been out for three weeks; the corner is dark at night.",
        "category": "infrastructure",
        "location": "Elm St",
    }


class OurServer(ApiServer):
    """tornado_petitions from this checkout, SQLite file, access log on (``info`` to a file)."""

    name = "tornado_petitions"

    def __init__(self, workdir: Path, *, executor: bool = False, compression: bool = False) -> None:
        super().__init__(workdir)
        self.executor = executor
        self.compression = compression  # --ws-compression: accept the clients' permessage-deflate
        self.db_url = f"sqlite:///{workdir}/petitions-{self.port}.db"
        if executor:
            self.name = "tornado_petitions (executor)"

    @property
    def cwd(self) -> Path:
        return OURS_SRC or ROOT

    def env(self) -> dict[str, str]:
        if OURS_SRC is None:
            return dict(os.environ)
        return {**os.environ, "PYTHONPATH": f"{OURS_SRC}{os.pathsep}{ROOT}"}

    def command(self) -> list[str]:
        module = "bench.executor_serve" if self.executor else "tornado_petitions"
        flags = ["--port", str(self.port), "--host", "127.0.0.1", "--db", self.db_url]
        flags += ["--max-sockets-per-user", "100000"] + (["--ws-compression"] if self.compression else [])
        # The create scenario files thousands of petitions from a few accounts on one address.
        flags += ["--filings-per-user", "100000000", "--filings-per-address", "100000000"]
        # ... and every signer signs from it too: the quiet per-address limit would store them fraudulent.
        if "--signatures-per-address" in self._serve_help():
            flags += ["--signatures-per-address", "1000000000", "--trending-threshold", "1000000000"]
        return [sys.executable, "-m", module, "serve", *flags]

    def _serve_help(self) -> str:
        """``serve --help`` of the checkout measured: which flags it has (an older one lacks newer flags)."""
        done = subprocess.run(
            [sys.executable, "-m", "tornado_petitions", "serve", "--help"],
            capture_output=True, text=True, cwd=self.cwd, env=self.env(), check=True,
        )  # fmt: skip
        return done.stdout

    async def start(self) -> None:
        create = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tornado_petitions", "create-user", "--admin",
            "--email", "admin@bench.example", "--name", "Admin", "--db", self.db_url,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=self.cwd, env=self.env(),
        )  # fmt: skip
        await create.communicate(PASSWORD.encode() + b"\n")
        assert create.returncode == 0, "create-user failed"
        await super().start()

    async def admin(self) -> str:
        document = {"email": "admin@bench.example", "password": PASSWORD}
        status, answer = await self.api.json("POST", "/api/auth/login", document)
        assert status == 200, (status, answer)
        return answer["token"]

    async def prepare(self, authors: int = 1) -> None:
        await super().prepare(authors)
        self.ws_path = f"/ws/petitions?token={self.tokens[0]}"
        for target in ("under_review", "in_progress"):
            status, answer = await self.api.json(
                "PATCH", f"/api/petitions/{self.petition_id}/status", {"status": target},
                token=self.admin_token,
            )  # fmt: skip
            assert status == 200, (status, answer)


class SeedServer(ApiServer):
    """The seed design (FastAPI + uvicorn), access log on."""

    name = "seed_fastapi"
    greetings = 0

    def __init__(self, workdir: Path, peers: Path) -> None:
        super().__init__(workdir)
        self.peers = peers

    def command(self) -> list[str]:
        app = str(self.peers / "seed_fastapi" / "app.py")
        return [
            peers_python(self.peers),
            app,
            "--port",
            str(self.port),
            "--db",
            f"{self.workdir}/seed-{self.port}.db",
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "SEED_ACCESS_LOG": "1"}

    async def admin(self) -> str:
        return await self.register("admin@bench.example", "Admin")


class BroadcastServer(Server):
    """``ws_broadcast``: the floor, one serialized event per ``POST /trigger``."""

    def __init__(self, workdir: Path, peers: Path, *, raw: bool) -> None:
        super().__init__(workdir)
        self.peers = peers
        self.raw = raw
        self.http_port = free_port()
        self.name = "ws_broadcast --raw" if raw else "ws_broadcast"

    @property
    def health_port(self) -> int:
        return self.http_port

    def command(self) -> list[str]:
        app = str(self.peers / "ws_broadcast" / "app.py")
        flags = ["--port", str(self.port), "--http-port", str(self.http_port)]
        return [peers_python(self.peers), app, *flags, *(["--raw"] if self.raw else [])]

    async def prepare(self, authors: int = 1) -> None:
        self.api = await HttpConnection("127.0.0.1", self.http_port).open()

    async def trigger(self) -> None:
        status, answer = await self.api.request("POST", "/trigger", b"")
        assert status == 201, (status, answer)


class SocketIOServer(BroadcastServer):
    """``socketio_node``: Socket.IO 4.8 on Node, ``io.emit()`` once per ``POST /trigger``."""

    socketio = True
    greetings = 1  # the namespace's "40{...}" answer

    def __init__(self, workdir: Path, peers: Path, node_dir: Path) -> None:
        super().__init__(workdir, peers, raw=False)
        self.node_dir = node_dir
        self.name = "socketio_node"
        self.ws_path = "/socket.io/?EIO=4&transport=websocket"

    def command(self) -> list[str]:
        flags = ["--port", str(self.port), "--http-port", str(self.http_port)]
        return ["node", str(self.node_dir / "server.js"), *flags]
