"""Per-key attempt limits in fixed windows: in this process's memory, or shared through Redis.

Keys are strings such as ``login-email:ann@example.org``.  ``RateLimiter``
counts in this process only, so N processes allow up to N times the limit;
``RedisRateLimiter`` (with ``--redis``) keeps one counter per key and window
in Redis for every process of the deployment, and counts in this process
while Redis does not answer (docs/operations.md "Rate limits").
"""

from __future__ import annotations

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


class RateLimiter:
    """Counts attempts per key in this process; ``hit`` raises a 429 with ``Retry-After`` past the limit."""

    def __init__(self, window_seconds: float, clock=time.monotonic) -> None:
        self.window = window_seconds
        self._clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}

    async def hit(self, key: str, limit: int) -> None:
        """Count one attempt for ``key``; 429 if this is more than ``limit`` in the window."""
        now = self._clock()
        if now - self._window_start >= self.window:
            self._window_start = now
            self._counts.clear()
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > limit:
            raise too_many(max(1, math.ceil(self._window_start + self.window - now)))

    async def close(self) -> None:
        """Nothing to release; here so both limiters have one interface."""


class RedisRateLimiter:
    """Counts attempts per key in Redis, one counter per key and window shared by every process.

    Windows are numbered from the Unix epoch (``time.time() // window``), so
    processes agree on them as far as their clocks agree.  Keys are stored as
    ``<prefix>:rate:<window number>:<sha256 of the key>``: no email or address
    in clear.  If Redis does not answer within ``socket_timeout`` seconds the
    attempt is counted by ``fallback`` (this process only), and so is every
    attempt in the next ``retry_interval`` seconds; requests never fail or
    wait long because of Redis.  One warning is logged per outage.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        window_seconds: float,
        *,
        fallback: RateLimiter | None = None,
        socket_timeout: float = 0.25,
        retry_interval: float = 1.0,
        clock=time.time,
    ) -> None:
        self.window = window_seconds
        self.prefix = f"{prefix}:rate"
        self.fallback = fallback if fallback is not None else RateLimiter(window_seconds)
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

    async def hit(self, key: str, limit: int) -> None:
        """Count one attempt for ``key`` in every process; 429 if this is more than ``limit`` in the window."""
        if self.down and time.monotonic() < self._retry_at:
            return await self.fallback.hit(key, limit)
        now = self._clock()
        window = int(now // self.window)
        name = f"{self.prefix}:{window}:{hashlib.sha256(key.encode()).hexdigest()}"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                # Never before the window ends, since the first hit comes after its start.
                pipe.expire(name, math.ceil(self.window), nx=True)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            if not self.down:
                log.warning(
                    "rate limits counted in this process only: redis at %s unreachable (%s)",
                    self._where,
                    error,
                )
            self.down = True
            self._retry_at = time.monotonic() + self.retry_interval
            return await self.fallback.hit(key, limit)
        if self.down:
            self.down = False
            log.info("rate limits shared through redis at %s again", self._where)
        if count > limit:
            raise too_many(max(1, math.ceil((window + 1) * self.window - now)))

    async def close(self) -> None:
        """Disconnect from Redis."""
        await self._client.aclose()
