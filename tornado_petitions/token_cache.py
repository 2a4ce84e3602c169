"""Identities of tokens seen recently, so a signed-in request costs no token query.

A viral petition is thousands of signed-in requests a second, each of
which used to look its token up.  Tokens are 256 random bits and only
their SHA-256 is kept (here too), so a hit is one hash and one dict
lookup.  Revocation stays immediate: a logout evicts its token here, a
role change every token of its user, and with Redis every process evicts
them when the announcement arrives.  Where a
revocation could be missed (several processes and Redis unreachable, or
PostgreSQL without Redis) the cache is not used at all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .accounts import Identity
from .models import utcnow


class TokenCache:
    """A bounded map token hash -> Identity, each entry trusted for at most ``ttl`` seconds."""

    def __init__(self, trusted: Callable[[], bool], *, ttl: float = 60.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._trusted = trusted
        self._entries: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        # Moves on every eviction, so an identity read before one is not cached after it (``put``).
        self.generation = 0

    def get(self, token_hash: str) -> Identity | None:
        """The cached identity, or None when absent, stale, expired, or the cache cannot be trusted now."""
        if not self._trusted():
            return None
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        cached_at, identity = entry
        if time.monotonic() - cached_at > self.ttl or identity.expires_at <= utcnow():
            del self._entries[token_hash]
            return None
        return identity

    def put(self, identity: Identity, generation: int | None = None) -> None:
        """Remember an identity just read from the database; the oldest entry goes when full.

        ``generation`` is ``self.generation`` as it was before the read: if an
        eviction came meanwhile (a role change committed while the read was
        in flight), the identity may be stale and is not kept.
        """
        if not self._trusted() or (generation is not None and generation != self.generation):
            return
        self._entries[identity.token_hash] = (time.monotonic(), identity)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict(self, token_hash: str) -> None:
        """Forget a revoked token (a logout here, or one announced by another process)."""
        self.generation += 1
        self._entries.pop(token_hash, None)

    def evict_user(self, user_id: int) -> None:
        """Forget every token of ``user_id`` (their role changed): one pass over the cache, as role changes are rare."""
        self.generation += 1
        for token_hash in [
            key for key, (_, identity) in self._entries.items() if identity.user_id == user_id
        ]:
            del self._entries[token_hash]

    def clear(self) -> None:
        """Forget everything: revocations may have been missed (the Redis subscription dropped)."""
        self.generation += 1
        self._entries.clear()
