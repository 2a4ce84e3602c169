"""Where database work runs: inline on the event loop, or in a thread pool.

SQLite statements here take tens of microseconds, less than a hop to a
thread and back, so by default they run inline (see bench/ for the
measurement).  A network database (PostgreSQL) always runs in the pool so
the loop never waits on a socket to the database.  Password hashing always
runs in a pool of its own: argon2id takes tens of milliseconds of CPU.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

T = TypeVar("T")


class DatabaseRunner:
    """Runs synchronous database functions where the settings say, behind one ``await``."""

    def __init__(self, db: peewee.Database, *, inline: bool | None, workers: int) -> None:
        self.db = db
        self.inline = isinstance(db, peewee.SqliteDatabase) if inline is None else inline
        self._db_pool = (
            None if self.inline else concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="db")
        )
        self._cpu_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="kdf")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` with the database; exceptions propagate to the caller."""
        if self._db_pool is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, self._checked_out, fn, args)

    def _checked_out(self, fn: Callable[..., T], args: tuple) -> T:
        # A pooled connection per call: the pool checks it on the way out, so a
        # connection the server dropped (restart, idle kill) is replaced, not
        # kept by this thread to fail every later call.
        with self.db.connection_context():
            return fn(*args)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a CPU-heavy ``fn(*args)`` (a password KDF) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu_pool, fn, *args)

    def shutdown(self) -> None:
        """Wait for running work to finish and stop the pools."""
        if self._db_pool is not None:
            self._db_pool.shutdown(wait=True)
        self._cpu_pool.shutdown(wait=True)
