"""What one pytest-xdist worker owns: its name, its own block of ports, its own database and Redis names.

``make test`` runs the suite in several workers at once (``-n``, see the
Makefile).  Each worker is a process of its own, told its name (``gw0``,
``gw1``, ...) in ``PYTEST_XDIST_WORKER``; a run without xdist is ``main``.
Temporary files are per worker already (pytest gives each its own
``tmp_path`` root); what else two workers could share is named here.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import secrets
import socket

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
WORKER_INDEX = int(re.sub(r"\D", "", WORKER) or 0)

# Each worker takes ports from a block of its own, below the kernel's ephemeral range
# (32768-60999 on Linux): a port picked there can never be taken by some client's outgoing
# connection between the pick and the server's bind, nor by another worker.
FIRST_PORT = 10_000
PORTS_PER_WORKER = 500
_BLOCK_START = FIRST_PORT + PORTS_PER_WORKER * (WORKER_INDEX % 44)  # 44 blocks end below 32 000
# A random start in the block, so two runs at once (two people on one machine) rarely meet.
_next_in_block = itertools.count(random.randrange(PORTS_PER_WORKER))


def free_port() -> int:
    """A port of this worker's block that nothing listens on now (a server binds it next)."""
    for _ in range(PORTS_PER_WORKER):
        port = _BLOCK_START + next(_next_in_block) % PORTS_PER_WORKER
        with socket.socket() as sock:
            # As the servers bind (Tornado and asyncio set it): a port whose old connections
            # linger in TIME_WAIT is free, one with a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {WORKER}'s block {_BLOCK_START}-{_BLOCK_START + PORTS_PER_WORKER}")


def unique_name(prefix: str) -> str:
    """A name no other test and no other worker uses: ``<prefix><worker>_<random hex>``.

    For what lives outside the test's temporary directory: PostgreSQL databases,
    Redis channels and key prefixes.  The worker is in it so a leftover says whose it was.
    """
    return f"{prefix}{WORKER.lower()}_{secrets.token_hex(6)}"
