"""The viral benchmark's server and accounts: tornado_petitions on a copy of a seeded database.

``seed_template`` makes, once per bench, a database file holding the
petition's author, 10 admins and the signers with their tokens (through
``bench.viral_seed``, in the server's environment); each measurement
starts ``ViralServer`` on a fresh copy of it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import ujson

from .targets import OurServer, Server

ADMINS = 10


class ViralServer(OurServer):
    """tornado_petitions on a copy of a seeded database, anonymous sockets uncapped for the one client address."""

    def __init__(self, workdir: Path, template: Path, interval: float) -> None:
        super().__init__(workdir)
        self.interval = interval
        self.db_file = Path(self.db_url[len("sqlite:///") :])
        shutil.copyfile(template, self.db_file)

    async def start(self) -> None:
        """Start the server (the admins are seeded, so no ``create-user`` first)."""
        await Server.start(self)

    def command(self) -> list[str]:
        flags = []
        if self.anonymous:
            flags += ["--max-anonymous-sockets-per-address", "1000000"]
        if "--count-interval" in serve_help(self):
            flags += ["--count-interval", str(self.interval)]
        return [*super().command(), *flags]

    @property
    def anonymous(self) -> bool:
        """Whether this checkout's public feed opens without a token (an older --ours-src checkout needs one)."""
        return "--max-anonymous-sockets-per-address" in serve_help(self)


_HELP: dict[str, str] = {}


def serve_help(server: OurServer) -> str:
    """``serve --help`` of the checkout being measured (its flags say what it supports)."""
    key = str(server.cwd)
    if key not in _HELP:
        done = subprocess.run(
            [sys.executable, "-m", "tornado_petitions", "serve", "--help"],
            capture_output=True, text=True, cwd=server.cwd, env=server.env(), check=True,
        )  # fmt: skip
        _HELP[key] = done.stdout
    return _HELP[key]


class Accounts:
    """The seeded users: ``[user_id, token]`` pairs of the author, the admins and the signers."""

    def __init__(self, document: dict) -> None:
        self.author = document["author"][0]
        self.admins = document["admin"]
        self.signers = document["signer"]


async def seed_template(workdir: Path, signers: int) -> tuple[Path, Accounts]:
    """A database file holding the author, the admins and ``signers`` citizens with tokens."""
    probe = OurServer(workdir)
    path = workdir / "viral-template.db"
    out = workdir / "viral-tokens.json"
    seed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.viral_seed", "users", "--db", f"sqlite:///{path}",
        "--signers", str(signers), "--admins", str(ADMINS), "--out", str(out), cwd=probe.cwd, env=probe.env(),
    )  # fmt: skip
    assert await seed.wait() == 0, "bench.viral_seed users failed"
    return path, Accounts(ujson.loads(out.read_text()))


def public_path(server: Server, token: str) -> str:
    """The public feed: anonymous where the checkout allows it, else with ``token``."""
    return "/ws/petitions" if getattr(server, "anonymous", False) else f"/ws/petitions?token={token}"
