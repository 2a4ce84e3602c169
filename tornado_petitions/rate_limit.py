"""Per-key attempt limits in fixed windows, kept in this process's memory.

Keys are strings such as ``login-email:ann@example.org``; each process
counts on its own, so N processes allow up to N times the limit (noted in
the README's Operating section).
"""

from __future__ import annotations

import math
import time

from .errors import ApiError


class RateLimiter:
    """Counts attempts per key; ``hit`` raises a 429 with ``Retry-After`` past the limit."""

    def __init__(self, window_seconds: float, clock=time.monotonic) -> None:
        self.window = window_seconds
        self._clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}

    def hit(self, key: str, limit: int) -> None:
        """Count one attempt for ``key``; 429 if this is more than ``limit`` in the window."""
        now = self._clock()
        if now - self._window_start >= self.window:
            self._window_start = now
            self._counts.clear()
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > limit:
            retry_after = max(1, math.ceil(self._window_start + self.window - now))
            raise ApiError(
                429,
                "too_many_requests",
                f"too many attempts; try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
