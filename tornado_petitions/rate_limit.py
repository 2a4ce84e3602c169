"""Per-key attempt limits in fixed windows: in this process's memory, or shared through Redis.

A ``Rule`` is a key (such as ``file-user:42``), a limit and a window of its
own: sign-in failures are counted by the minute, filings by the day.  A
refused attempt is not counted, and an attempt can be taken back
(``undo``), so a rule can count only what should count (sign-in failures,
filings made).  ``RateLimiter``
counts in this process only, so N processes allow up to N times the limit;
``RedisRateLimiter`` (with ``--redis``) keeps one counter per key and window
in Redis for every process of the deployment, and counts in this process
while Redis does not answer (docs/operations.md "Rate limits").
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .errors import ApiError

log = logging.getLogger("tornado_petitions.redis")


def too_many(retry_after: int) -> ApiError:
    """The 429 every limiter raises: ``retry_after`` whole seconds until the window ends."""
    return ApiError(
        429,
        "too_many_requests",
        f"too many attempts; try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


@dataclasses.dataclass(frozen=True)
class Rule:
    """One limit: at most ``limit`` attempts for ``key`` in each window of ``window_seconds``."""

    key: str
    limit: int
    window_seconds: float


@dataclasses.dataclass(frozen=True)
class Counted:
    """An attempt a limiter counted, kept so it can be taken back (``undo``)."""

    rule: Rule
    window: float  # which window it was counted in: its start (in memory) or its number (Redis)
    redis_name: str | None = None  # the Redis counter, when Redis counted it


class Limiter:
    """What both limiters share: counting against several rules at once, and taking counts back."""

    async def hit(self, rule: Rule) -> Counted:
        """Count one attempt under ``rule``; 429 (counting nothing) if the window already has ``limit``."""
        raise NotImplementedError

    async def undo(self, counted: Counted) -> None:
        """Take back one counted attempt (nothing if its window has ended)."""
        raise NotImplementedError

    async def hit_all(self, *rules: Rule) -> list[Counted]:
        """Count one attempt under every rule, or under none: the first refusal takes back the others' counts."""
        counted: list[Counted] = []
        try:
            for rule in rules:
                counted.append(await self.hit(rule))
        except ApiError:
            await self.undo_all(counted)
            raise
        return counted

    async def undo_all(self, counted: list[Counted]) -> None:
        """Take back what ``hit_all`` counted: an attempt that turned out not to count (a success)."""
        for one in counted:
            await self.undo(one)

    async def close(self) -> None:
        """Release what the limiter holds."""


class RateLimiter(Limiter):
    """Counts attempts per key in this process, in fixed windows of each rule's length."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        # Per window length: when the current window started, and the counts in it.
        self._windows: dict[float, tuple[float, dict[str, int]]] = {}

    def _current(self, window_seconds: float) -> tuple[float, dict[str, int]]:
        now = self._clock()
        start, counts = self._windows.get(window_seconds, (now, {}))
        if now - start >= window_seconds:
            start, counts = now, {}
        self._windows[window_seconds] = (start, counts)
        return start, counts

    async def hit(self, rule: Rule) -> Counted:
        start, counts = self._current(rule.window_seconds)
        count = counts.get(rule.key, 0)
        if count >= rule.limit:
            raise too_many(max(1, math.ceil(start + rule.window_seconds - self._clock())))
        counts[rule.key] = count + 1
        return Counted(rule, start)

    async def undo(self, counted: Counted) -> None:
        start, counts = self._current(counted.rule.window_seconds)
        if start == counted.window and counts.get(counted.rule.key, 0) > 0:
            counts[counted.rule.key] -= 1


class RedisRateLimiter(Limiter):
    """Counts attempts per key in Redis, one counter per key and window shared by every process.

    Windows are numbered from the Unix epoch (``time.time() // window``), so
    processes agree on them as far as their clocks agree.  Keys are stored as
    ``<prefix>:rate:<window number>:<sha256 of the key>``: no email or address
    in clear.  If Redis does not answer within ``socket_timeout`` seconds the
    attempt is counted by ``fallback`` (this process only), and so is every
    attempt in the next ``retry_interval`` seconds; requests never fail or
    wait long because of Redis.  One warning is logged per outage.

    Concurrent attempts at the limit may each add one before seeing the
    count: each then takes its count back and is refused, so the counter
    settles at the limit and no attempt over it is let through.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        fallback: RateLimiter | None = None,
        socket_timeout: float = 0.25,
        retry_interval: float = 1.0,
        clock=time.time,
    ) -> None:
        self.prefix = f"{prefix}:rate"
        self.fallback = fallback if fallback is not None else RateLimiter()
        self.retry_interval = retry_interval  # seconds of counting locally after a failure
        self.down = False  # Redis failed and has not answered since
        self._clock = clock
        self._retry_at = 0.0  # monotonic time before which Redis is not tried again
        self._where = urlparse(redis_url).hostname or redis_url
        self._client = aioredis.Redis.from_url(
            redis_url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _name(self, key: str, window: int) -> str:
        return f"{self.prefix}:{window}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def hit(self, rule: Rule) -> Counted:
        if self.down and time.monotonic() < self._retry_at:
            return await self.fallback.hit(rule)
        now = self._clock()
        window = int(now // rule.window_seconds)
        name = self._name(rule.key, window)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                # Never before the window ends, since the first hit comes after its start.
                pipe.expire(name, math.ceil(rule.window_seconds), nx=True)
                count, _ = await pipe.execute()
            if count > rule.limit:
                await self._client.decr(name)
        except (RedisError, OSError) as error:
            self._went_down(error)
            return await self.fallback.hit(rule)
        if self.down:
            self.down = False
            log.info("rate limits shared through redis at %s again", self._where)
        if count > rule.limit:
            raise too_many(max(1, math.ceil((window + 1) * rule.window_seconds - now)))
        return Counted(rule, window, name)

    async def undo(self, counted: Counted) -> None:
        if counted.redis_name is None:  # counted by the fallback while Redis was down
            return await self.fallback.undo(counted)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.decr(counted.redis_name)
                # Should the counter have expired meanwhile, the -1 left behind expires too.
                pipe.expire(counted.redis_name, math.ceil(counted.rule.window_seconds), nx=True)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._went_down(error)

    def _went_down(self, error: Exception) -> None:
        if not self.down:
            log.warning(
                "rate limits counted in this process only: redis at %s unreachable (%s)",
                self._where,
                error,
            )
        self.down = True
        self._retry_at = time.monotonic() + self.retry_interval

    async def close(self) -> None:
        """Disconnect from Redis."""
        await self._client.aclose()
