"""Sharing committed events between processes through one Redis pub/sub channel.

Every process publishes each event it commits to ``<prefix>:events`` and
hands every event it receives there to its own hub, its own events
included: the hub orders by seq and drops seqs it already delivered, so an
event arriving twice (locally and from Redis) or late is harmless.

Redis pub/sub delivers at most once, so Redis is only the fast path; the
event log is the truth.  Whenever the subscription is (re)established, and
every ``catch_up_interval`` seconds while it is not, the hub reads the log
from the last seq it delivered.  Events this process fails to publish are
kept (up to ``outbox_limit``) and published again once Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .counts import CountChange, changes_from_wire, changes_to_wire
from .events import Event
from .hub import SocketHub
from .token_cache import TokenCache

log = logging.getLogger("tornado_petitions.redis")

# Prefix of a role change on the revocations channel (a token hash is 64 hex digits, never this).
_ROLE_CHANGE = "role:"


class RedisBridge:
    """Publishes this process's committed events to Redis and feeds the hub what Redis carries.

    A ``Publisher`` standing in front of the hub: ``publish`` is called
    right after a commit and never raises.
    """

    def __init__(
        self,
        hub: SocketHub,
        redis_url: str,
        channel_prefix: str,
        *,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
        catch_up_interval: float = 1.0,
        connected_sweep_interval: float = 5.0,
        start_timeout: float = 2.0,
        outbox_limit: int = 10_000,
        tokens: TokenCache | None = None,
    ) -> None:
        self.hub = hub
        # Evicted on every logout announced here; cleared when the subscription (re)starts.
        self.tokens = tokens if tokens is not None else TokenCache(lambda: False)
        self.channel = f"{channel_prefix}:events"
        # Token hashes revoked by a logout, so every process closes their sockets (4401), and
        # role changes ("role:<user_id>:<role>"), so every process forgets the user's cached
        # tokens and closes the sockets the new role may not hold (4403).
        self.revocations = f"{channel_prefix}:revoked"
        # Signature counts after each committed batch, for every process's conflator.
        self.counts = f"{channel_prefix}:counts"
        # Office news for every process: alerts for its admin sockets, and "blocks changed: reload them".
        self.office = f"{channel_prefix}:office"
        self.blocks_changed_elsewhere: Callable[[], None] = lambda: None
        self.subscribed = False
        self.reconnect_min = reconnect_min  # seconds, doubled after each failed attempt
        self.reconnect_max = reconnect_max
        self.catch_up_interval = catch_up_interval  # seconds between log reads while unsubscribed
        self.connected_sweep_interval = connected_sweep_interval  # ... and while subscribed
        self.start_timeout = start_timeout
        self.outbox_limit = outbox_limit
        self._url = redis_url
        self._where = urlparse(redis_url).hostname or redis_url
        self._client: aioredis.Redis | None = None
        self._outbox: list[tuple[str, str]] = []  # (channel, message)
        self._sending = 0  # events in the batch being published now
        self._outbox_ready = asyncio.Event()
        self._subscribed_once = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._caught_up_at = 0.0  # loop time of the last read of the log

    # -- lifetime -----------------------------------------------------------

    async def connect(self) -> None:
        """Connect and subscribe; waits up to ``start_timeout`` seconds for the first subscription.

        If Redis does not answer by then the process starts anyway: the hub
        reads events from the log until the subscription comes up.
        """
        # redis-py's own retries would reconnect and resubscribe silently;
        # this class reconnects itself so it knows when to read the log.
        self._client = aioredis.Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2.0,
            socket_keepalive=True,
            health_check_interval=10,
            # CLIENT LIST shows which channel and process a connection serves.
            client_name=re.sub(r"[^!-~]", "_", f"tornado_petitions:{self.channel}:{os.getpid()}"),
        )
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-listen"),
            asyncio.create_task(self._send(), name="redis-send"),
            asyncio.create_task(self._sweep(), name="redis-sweep"),
        ]
        try:
            await asyncio.wait_for(self._subscribed_once.wait(), self.start_timeout)
        except TimeoutError:
            log.warning("redis at %s not reachable yet: serving, reading events from the log", self._where)

    async def disconnect(self) -> None:
        """Publish what is still queued (for at most a second), then disconnect."""
        send_task = self._tasks[1] if len(self._tasks) > 1 else None
        for task in self._tasks:
            if task is not send_task:
                task.cancel()
        if send_task is not None:
            if self._outbox:
                self._outbox_ready.set()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 1.0
                while (self._outbox or self._sending) and loop.time() < deadline and not send_task.done():
                    await asyncio.sleep(0.01)
            send_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- publishing ---------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Deliver a just-committed event to local sockets now and queue it for the other processes."""
        self.hub.publish(event)
        self._queue(self.channel, event.to_wire())

    def publish_counts(self, changes: Iterable[CountChange]) -> None:
        """Hand a committed batch's counts to the local hub now and queue them for the other processes."""
        changes = list(changes)
        self.hub.publish_counts(changes)
        self._queue(self.counts, changes_to_wire(changes))

    def publish_alert(self, message: str) -> None:
        """Send an alert to this process's admin sockets now and to every other process's."""
        self.hub.publish_alert(message)
        self._queue(self.office, message)

    def blocks_changed(self) -> None:
        """Have every other process reload its blocks (this one has its own already)."""
        self._queue(self.office, _RELOAD_BLOCKS)

    def close_token(self, token_hash: str) -> None:
        """Close this process's sockets of a revoked token now, and have every other process do so."""
        self.hub.close_token(token_hash)
        self._queue(self.revocations, token_hash)

    def role_changed(self, user_id: int, role: str) -> None:
        """Apply a committed role change to this process's sockets now, and have every other process do so."""
        self.hub.role_changed(user_id, role)
        self._queue(self.revocations, f"{_ROLE_CHANGE}{user_id}:{role}")

    def _queue(self, channel: str, message: str) -> None:
        self._outbox.append((channel, message))
        if len(self._outbox) > self.outbox_limit:
            # The dropped ones are in the log: other processes read them from there.
            del self._outbox[: len(self._outbox) - self.outbox_limit]
        self._outbox_ready.set()

    async def _send(self) -> None:
        """Publish queued events in batches; on failure keep them and retry with backoff."""
        delay = self.reconnect_min
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                self._sending = len(batch)
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for channel, message in batch:
                            pipe.publish(channel, message)
                        await pipe.execute()
                    delay = self.reconnect_min
                except (RedisError, OSError) as error:
                    self._outbox[:0] = batch
                    del self._outbox[: max(0, len(self._outbox) - self.outbox_limit)]
                    log.warning(
                        "publishing %d event(s) to redis failed (%s); retrying in %.2fs",
                        len(self._outbox),
                        error,
                        delay,
                    )
                    await asyncio.sleep(_jitter(delay))
                    delay = min(delay * 2, self.reconnect_max)
                finally:
                    self._sending = 0

    # -- receiving ----------------------------------------------------------

    async def _listen(self) -> None:
        """Stay subscribed: reconnect with backoff and read the log each time the subscription is up."""
        delay = self.reconnect_min
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel, self.revocations, self.counts, self.office)
                counts_channel = self.counts.encode()
                office_channel = self.office.encode()
                async for message in pubsub.listen():
                    kind = message["type"]
                    is_events = message["channel"] == self.channel.encode()
                    if kind == "message" and is_events:
                        self._receive(message["data"])
                    elif kind == "message" and message["channel"] == counts_channel:
                        self._receive_counts(message["data"])
                    elif kind == "message" and message["channel"] == office_channel:
                        self._receive_office(message["data"])
                    elif kind == "message":
                        self._receive_revocation(message["data"].decode(errors="replace"))
                    elif kind == "subscribe" and is_events:
                        # Subscribed from here on: what was published before is in the log.
                        # Logouts published while we were away were missed: forget every cached token.
                        self.tokens.clear()
                        self.subscribed = True
                        delay = self.reconnect_min
                        log.info("subscribed to redis channel %s at %s", self.channel, self._where)
                        self._caught_up_at = asyncio.get_running_loop().time()
                        await self.hub.catch_up()
                        self._subscribed_once.set()
            except (RedisError, OSError) as error:
                log.warning(
                    "redis subscription to %s lost (%s); reconnecting in %.2fs", self.channel, error, delay
                )
            except Exception:
                # Anything unexpected must not end the subscription for good.
                log.exception("redis subscription to %s failed; reconnecting in %.2fs", self.channel, delay)
            finally:
                self.subscribed = False
                await _close_quietly(pubsub)
            await asyncio.sleep(_jitter(delay))
            delay = min(delay * 2, self.reconnect_max)

    def _receive(self, data: bytes) -> None:
        try:
            event = Event.from_wire(data)
        except (ValueError, TypeError) as error:
            log.warning("ignoring a malformed message on %s: %s", self.channel, error)
            return
        self.hub.publish(event)

    def _receive_revocation(self, data: str) -> None:
        """A logout (a token hash) or a role change (``role:<user_id>:<role>``) in another process."""
        if not data.startswith(_ROLE_CHANGE):
            self.tokens.evict(data)
            self.hub.close_token(data)
            return
        user_id, _, role = data[len(_ROLE_CHANGE) :].partition(":")
        if not user_id.isdigit():
            log.warning("ignoring a malformed role change on %s: %r", self.revocations, data)
            return
        self.tokens.evict_user(int(user_id))
        self.hub.role_changed(int(user_id), role)

    def _receive_counts(self, data: bytes) -> None:
        try:
            changes = changes_from_wire(data)
        except (ValueError, TypeError) as error:
            log.warning("ignoring a malformed message on %s: %s", self.counts, error)
            return
        self.hub.publish_counts(changes)

    def _receive_office(self, data: bytes) -> None:
        text = data.decode(errors="replace")
        if text == _RELOAD_BLOCKS:
            self.blocks_changed_elsewhere()
        elif text.startswith('{"type":"alert"'):
            self.hub.publish_alert(text)
        else:
            log.warning("ignoring a malformed message on %s", self.office)

    async def _sweep(self) -> None:
        """Read the log now and then: often while unsubscribed, rarely (a safety net) while subscribed."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.catch_up_interval)
            if self.subscribed and loop.time() - self._caught_up_at < self.connected_sweep_interval:
                continue
            self._caught_up_at = loop.time()
            await self.hub.catch_up()


_RELOAD_BLOCKS = "reload-blocks"


def _jitter(delay: float) -> float:
    """``delay`` seconds, give or take a quarter, so processes do not reconnect in step."""
    return delay * random.uniform(0.75, 1.25)


async def _close_quietly(pubsub: aioredis.client.PubSub) -> None:
    try:
        await pubsub.aclose()
    except (RedisError, OSError):
        pass
