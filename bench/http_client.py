"""A lean keep-alive HTTP/1.1 client and a closed-loop load generator for the benchmarks.

The load generator shares one core with the WebSocket clients, so it must
cost far less than the servers it drives: one asyncio stream per
connection, no parsing beyond the status line and ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import ujson

Request = tuple[str, str, bytes | None, dict[str, str]]


class HttpConnection:
    """One keep-alive connection; ``request`` sends one request and reads its whole answer.

    Raises ``ConnectionError`` when the server closes the connection or answers
    without ``Content-Length`` (every server measured here sends one).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> HttpConnection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self._writer is None or self._reader.at_eof():  # never opened, or closed while idle
            self.close()
            await self.open()
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        start = head.lower().find(b"\r\ncontent-length:")
        if start < 0:
            raise ConnectionError(f"no Content-Length in the answer to {method} {path}: {head[:200]!r}")
        end = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : end])
        return status, await self._reader.readexactly(length)

    async def json(
        self, method: str, path: str, document: object = None, token: str | None = None
    ) -> tuple[int, object]:
        """Send ``document`` as JSON (with a Bearer token if given); the answer parsed as JSON."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = ujson.dumps(document).encode() if document is not None else None
        status, answer = await self.request(method, path, body, headers)
        return status, ujson.loads(answer) if answer else None


@dataclasses.dataclass
class LoadResult:
    """What a closed-loop run saw: latencies (seconds) and when each request finished."""

    seconds: float
    ok: int
    errors: int
    latencies: list[float]
    finished_at: list[float]
    answers: list[bytes]
    started: float = 0.0  # time.perf_counter() at the start; finished_at counts from it

    def rate(self, start: float = 0.0, end: float | None = None) -> float:
        """Successful requests a second between ``start`` and ``end`` seconds into the run."""
        end = self.seconds if end is None else end
        done = sum(1 for t in self.finished_at if start <= t < end)
        return done / max(end - start, 1e-9)


async def closed_loop(
    host: str,
    port: int,
    make_request: Callable[[int, int], Request],
    *,
    concurrency: int,
    seconds: float,
    expect: int,
    keep_answers: bool = False,
) -> LoadResult:
    """``concurrency`` connections each sending the next request as soon as the last one answered.

    ``make_request(worker, n)`` builds request ``n`` of worker ``worker``;
    answers whose status is not ``expect`` count as errors.
    """
    latencies: list[float] = []
    finished: list[float] = []
    answers: list[bytes] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        conn = await HttpConnection(host, port).open()
        n = 0
        try:
            while (now := time.perf_counter()) < deadline:
                method, path, body, headers = make_request(index, n)
                n += 1
                status, answer = await conn.request(method, path, body, headers)
                done = time.perf_counter()
                if status == expect:
                    latencies.append(done - now)
                    finished.append(done - start)
                    if keep_answers:
                        answers.append(answer)
                else:
                    errors += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return LoadResult(
        time.perf_counter() - start, len(latencies), errors, latencies, finished, answers, start
    )
