"""Resume cost after a million signatures: connect with ``?since=N`` and time the socket up to ``hello``.

Ten petitions are filed and signed once each through the server; then the
server stops and ``bench.viral_seed signatures`` bulk-inserts the
signatures (and their users) into its SQLite file; the server starts on a
copy, takes one more signature per petition through the API, and each
``since`` is timed ``--resume-repeats`` times from connect to ``hello``.
The protocol promises one counts frame, not a frame per signature.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

import ujson

from .http_client import HttpConnection
from .scenarios import percentile
from .viral_client import handshake
from .viral_server import Accounts, ViralServer, public_path

RESUME_PETITIONS = 10
_MILLION: dict[str, tuple[Path, list[int], int]] = {}


async def until_hello(port: int, path: str) -> tuple[float, list[bytes], int]:
    """Open ``path``, read frames up to ``hello``: (seconds from connect to hello, the frames, bytes)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake("127.0.0.1", port, path))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head[9:12] == b"101", head[:200]
        frames: list[bytes] = []
        size = len(head)
        while not frames or b'"hello"' not in frames[-1][:24]:
            first = await reader.readexactly(2)
            length, extra = first[1] & 0x7F, 0
            if length >= 126:
                extra = 2 if length == 126 else 8
                length = int.from_bytes(await reader.readexactly(extra), "big")
            frames.append(await reader.readexactly(length))
            size += 2 + extra + length
        return time.monotonic() - started, frames, size
    finally:
        writer.close()


async def _million(workdir: Path, template: Path, accounts: Accounts, count: int, interval: float):
    """Once per bench: petitions filed and signed through the server, then ``count`` signatures bulk-inserted."""
    key = f"{workdir}:{count}"
    if key in _MILLION:
        return _MILLION[key]
    server = ViralServer(workdir, template, interval)
    await server.start()
    try:
        api = await HttpConnection("127.0.0.1", server.port).open()
        author = accounts.author[1]
        ids = []
        for n in range(RESUME_PETITIONS):
            body = {
                "title": f"Resume petition {n}",
                "description": "Signed a million times.",
                "category": "roads",
            }
            status, petition = await api.json("POST", "/api/petitions", body, token=author)
            assert status == 201, (status, petition)
            ids.append(petition["petition_id"])
            status, _ = await api.json(
                "POST", f"/api/petitions/{ids[-1]}/signatures", token=accounts.signers[-1 - n][1]
            )
            assert status == 201, status
        _, frames, _ = await until_hello(server.port, public_path(server, accounts.author[1]))
        before = ujson.loads(frames[-1])["seq"]
    finally:
        server.stop()
    started = time.monotonic()
    seed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.viral_seed", "signatures", "--db", str(server.db_file),
        "--count", str(count), "--petitions", ",".join(map(str, ids)), cwd=server.cwd, env=server.env(),
    )  # fmt: skip
    assert await seed.wait() == 0, "bench.viral_seed signatures failed"
    print(f"# {count:,} signatures bulk-inserted in {time.monotonic() - started:.1f} s", file=sys.stderr)
    million = workdir / f"viral-million-{count}.db"
    shutil.copyfile(server.db_file, million)
    _MILLION[key] = million, ids, before
    return _MILLION[key]


async def resume_cost(
    workdir: Path, template: Path, accounts: Accounts, count: int, interval: float, repeats: int
) -> dict:
    """Resume with ``?since=`` after ``count`` signatures: connect-to-hello time and what came before hello."""
    million, ids, before = await _million(workdir, template, accounts, count, interval)
    server = ViralServer(workdir, million, interval)
    await server.start()
    try:
        api = await HttpConnection("127.0.0.1", server.port).open()
        for n, petition_id in enumerate(ids):  # count changes after ``before``, through the server
            token = accounts.signers[-1 - RESUME_PETITIONS - n][1]
            status, _ = await api.json("POST", f"/api/petitions/{petition_id}/signatures", token=token)
            assert status == 201, status
        status, petition = await api.json("GET", f"/api/petitions/{ids[0]}")
        expected = petition["signature_count"]
        path = public_path(server, accounts.author[1])
        _, frames, _ = await until_hello(server.port, path)
        now = ujson.loads(frames[-1])["seq"]
        await asyncio.sleep(interval + 0.2)
        document = {"scenario": "viral_resume", "server": server.name, "signatures": count, "count": expected}
        joiner = "&" if "?" in path else "?"
        for label, since in (("none", None), ("0", 0), ("before", before), ("now", now)):
            target = path if since is None else f"{path}{joiner}since={since}"
            times, sizes, counted = [], [], None
            for _ in range(repeats):
                elapsed, frames, size = await until_hello(server.port, target)
                times.append(elapsed)
                sizes.append((len(frames) - 1, size))
                for frame in frames:
                    if b'"counts"' in frame[:24]:
                        counted = ujson.loads(frame)["counts"].get(str(ids[0]))
            document.update(
                {
                    f"resume_{label}_median_ms": statistics.median(times) * 1000,
                    f"resume_{label}_p99_ms": percentile(times, 0.99) * 1000,
                    f"resume_{label}_frames": max(f for f, _ in sizes),
                    f"resume_{label}_bytes": max(b for _, b in sizes),
                    f"resume_{label}_count": counted,  # petition 1's count in the counts frame, if any
                }
            )
        return document
    finally:
        server.stop()
