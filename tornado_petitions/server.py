"""Building the application (``make_app``) and running it until SIGTERM (``serve``, ``main``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

import peewee
import tornado.httpserver
import tornado.web

from . import event_log, fraud_store, mail_outbox, petition_store, signature_privacy, signature_store
from .body_limit import LimitedHTTPServer
from .db_runner import DatabaseRunner
from .handlers import ROUTES
from .handlers.base import NotFoundHandler, StaticHandler
from .handlers.sockets import write_shared
from .hub import CLOSE_GOING_AWAY, SocketHub
from .invalidations import InvalidationRunner
from .mail_sender import MailSender
from .metrics import ServiceMetrics
from .models import bind_database, close_database, open_database
from .publisher import Publisher
from .rate_limit import Limiter, RateLimiter, RedisRateLimiter
from .redaction import redact_path
from .settings import Settings
from .signature_batcher import SignatureBatcher
from .signature_screen import SignatureScreen
from .signers import RegionTable
from .token_cache import TokenCache

if TYPE_CHECKING:
    from .redis_bridge import RedisBridge

log = logging.getLogger("tornado_petitions")
access_log = logging.getLogger("tornado_petitions.access")

# How long shutdown waits for in-flight requests and closing sockets (seconds).
SHUTDOWN_GRACE = 5.0

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class PetitionsApplication(tornado.web.Application):
    """The Tornado application plus the services it owns, started and stopped together."""

    def __init__(
        self,
        handlers: list,
        *,
        settings: Settings,
        db: peewee.Database,
        runner: DatabaseRunner,
        hub: SocketHub,
        publisher: Publisher,
        metrics: ServiceMetrics,
        rate_limiter: Limiter,
        signatures: SignatureBatcher,
        tokens: TokenCache,
        milestones: signature_store.Milestones,
        regions: RegionTable,
        screen: SignatureScreen,
        invalidations: InvalidationRunner,
        **tornado_settings: Any,
    ) -> None:
        super().__init__(
            handlers,
            config=settings,
            screen=screen,
            invalidations=invalidations,
            regions=regions,
            tokens=tokens,
            hub=hub,
            publisher=publisher,
            signatures=signatures,
            runner=runner,
            metrics=metrics,
            rate_limiter=rate_limiter,
            **tornado_settings,
        )
        self.config = settings
        self.db = db
        self.runner = runner
        self.hub = hub
        self.publisher = publisher
        self.metrics = metrics
        self.rate_limiter = rate_limiter
        self.milestones = milestones
        self.screen = screen
        self.invalidations = invalidations
        self.in_flight: set[tornado.web.RequestHandler] = set()
        # The key of unsubscribe links (set in start()); the sender exists only with --smtp-url.
        self.mail_key = b""
        self.mail_sender: MailSender | None = None
        signatures.mail_queued = self.mail_queued
        self._privacy: asyncio.Task | None = None
        self._reloading_blocks: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the hub's heartbeat (from the newest committed seq), the Redis bridge and the mail sender.

        Loads the blocks and resumes the invalidations a restart interrupted.
        """
        _, newest = await self.runner.run(event_log.log_bounds)
        self.hub.start(newest, await self.runner.run(petition_store.withheld_petition_ids))
        await self.reload_blocks()
        await self.publisher.connect()
        await self.invalidations.resume()
        self.mail_key = await self.runner.run(mail_outbox.unsubscribe_key, self.config.mail_secret)
        if self.config.smtp_url:
            self.mail_sender = MailSender(self.config, self.runner, self.metrics, self.mail_key)
            self.mail_sender.start()
        self._privacy = asyncio.get_running_loop().create_task(self._anonymize_daily())

    async def _anonymize_daily(self) -> None:
        """Erase what ``--anonymize-days`` and ``--link-hours`` say to erase, now and then once a day."""
        while True:
            try:
                await self.runner.run(signature_privacy.anonymize, self.config.anonymize_days)
            except Exception:
                log.exception("anonymizing signatures failed; trying again in a day")
            await asyncio.sleep(signature_privacy.INTERVAL)

    async def reload_blocks(self) -> None:
        """Hold every stored block in the screen (at start, and whenever any process changed one)."""
        self.screen.blocklist.replace(await self.runner.run(fraud_store.block_values))

    def blocks_changed_elsewhere(self) -> None:
        """Another process changed a block (announced through Redis): reload them here too."""
        self._reloading_blocks = asyncio.get_running_loop().create_task(self.reload_blocks())

    def mail_queued(self) -> None:
        """A committed change queued mail: wake the sender (if mail is on) instead of waiting for its poll."""
        if self.mail_sender is not None:
            self.mail_sender.wake()

    async def shutdown(self) -> None:
        """Close every socket with 1001, let in-flight requests finish, close Redis and the database."""
        self.hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
        if self._privacy is not None:
            self._privacy.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while (self.in_flight or _open_sockets(self.hub)) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await self.invalidations.stop()
        self.hub.stop()
        await self.publisher.disconnect()
        if self.mail_sender is not None:
            await self.mail_sender.stop()
        await self.rate_limiter.close()
        self.runner.shutdown()
        close_database(self.db)


def _open_sockets(hub: SocketHub) -> int:
    return sum(hub.count(channel) for channel in ("user", "public", "admin"))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line and request metrics; the path is logged without its query (tokens) or link token."""
    request = handler.request
    status = handler.get_status()
    seconds = request.request_time()
    identity = getattr(handler, "identity", None)
    access_log.info(
        "%s %s %d %.1fms user=%s ip=%s",
        request.method,
        redact_path(request.path),
        status,
        seconds * 1000,
        identity.user_id if identity is not None else getattr(handler, "signed_in_user_id", "-"),
        request.remote_ip,
    )
    metrics = handler.application.settings.get("metrics")
    if metrics is not None:
        metrics.request_done(getattr(handler, "route", "static"), request.method, status, seconds)


def make_app(settings: Settings, db: peewee.Database | None = None) -> PetitionsApplication:
    """Build the whole application from explicit settings; tests, benchmarks and ``main`` share it.

    ``db`` defaults to the database ``settings.db_url`` names; tables are
    created if missing.  Call ``await app.start()`` inside the running loop
    before serving, and ``await app.shutdown()`` to stop.
    """
    if settings.verifies_email() and not settings.smtp_url:
        raise ValueError("verify_email on needs smtp_url: the links are mailed")
    db = db if db is not None else open_database(settings.db_url, pool_size=settings.db_workers + 2)
    bind_database(db)
    runner = DatabaseRunner(db, inline=settings.db_inline, workers=settings.db_workers)
    metrics = ServiceMetrics()

    async def load_user_list(user_id: int, limit: int) -> tuple[list, bool]:
        return await runner.run(petition_store.user_petitions, user_id, limit)

    async def load_events_after(seq: int, limit: int) -> list:
        return await runner.run(event_log.events_after, seq, limit)

    async def load_counts_since(seq: int) -> list:
        return await runner.run(signature_store.counts_changed_since, seq)

    async def load_log_bounds() -> tuple[int, int]:
        return await runner.run(event_log.log_bounds)

    async def load_sizes_after(seq: int, limit: int) -> tuple[int, int, int | None]:
        return await runner.run(event_log.sizes_after, seq, limit)

    hub = SocketHub(
        load_user_list=load_user_list,
        load_events_after=load_events_after,
        load_counts_since=load_counts_since,
        load_log_bounds=load_log_bounds,
        load_sizes_after=load_sizes_after,
        metrics=metrics,
        write_shared=write_shared,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_sockets_per_user=settings.max_sockets_per_user,
        max_anonymous_sockets_per_address=settings.max_anonymous_sockets_per_address,
        count_interval=settings.count_interval,
        fanout_budget=settings.fanout_budget,
        max_count_interval=settings.max_count_interval,
        max_replay=settings.max_replay,
        max_replay_bytes=settings.max_replay_bytes,
        max_list=settings.max_list,
        max_backlog=settings.max_backlog,
    )
    publisher: Publisher = hub
    bridge: RedisBridge | None = None
    # One process on SQLite sees every logout itself; several processes trust the cache
    # only while Redis carries their logouts to each other (``bridge`` is bound below).
    tokens = TokenCache(
        lambda: bridge.subscribed if bridge is not None else isinstance(db, peewee.SqliteDatabase)
    )
    rate_limiter: Limiter = RateLimiter()
    if settings.redis_url:
        from .redis_bridge import RedisBridge

        publisher = bridge = RedisBridge(hub, settings.redis_url, settings.redis_channel, tokens=tokens)
        # One counter per key and window for every process; this process's own while Redis is down.
        rate_limiter = RedisRateLimiter(settings.redis_url, settings.redis_channel, fallback=rate_limiter)
    screen = SignatureScreen(
        per_address=settings.signatures_per_address,
        trending_threshold=settings.trending_threshold,
        alert=lambda alert: publisher.publish_alert(alert.frame()),
    )
    milestones = signature_store.Milestones(
        settings.response_threshold, settings.debate_threshold, mail=bool(settings.smtp_url)
    )
    app = PetitionsApplication(
        [route.rule() for route in ROUTES],
        settings=settings,
        db=db,
        runner=runner,
        hub=hub,
        publisher=publisher,
        metrics=metrics,
        rate_limiter=rate_limiter,
        signatures=SignatureBatcher(
            runner, functools.partial(signature_store.apply_batch, milestones=milestones), publisher
        ),
        tokens=tokens,
        milestones=milestones,
        screen=screen,
        invalidations=InvalidationRunner(
            runner, lambda changes: publisher.publish_counts(changes), batch_size=settings.invalidation_batch
        ),
        regions=RegionTable.from_csv(settings.regions_file) if settings.regions_file else RegionTable({}),
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        xsrf_cookies=settings.xsrf_cookies,
        # Not sent on another site's requests at all; Secure over HTTPS (``ServiceMixin.set_cookie``).
        xsrf_cookie_kwargs={"samesite": "Lax"},
        websocket_max_message_size=settings.limits.ws_message_bytes,
        compress_response=False,
        template_path=os.path.join(_PACKAGE_DIR, "templates"),
        static_path=os.path.join(_PACKAGE_DIR, "static"),
        static_handler_class=StaticHandler,
    )
    if bridge is not None:
        bridge.blocks_changed_elsewhere = app.blocks_changed_elsewhere
    return app


def make_server(app: PetitionsApplication) -> tornado.httpserver.HTTPServer:
    """The HTTP server for ``app``: a body over the limit, whatever its size, gets the JSON 413."""
    return LimitedHTTPServer(
        app,
        body_limit=app.config.limits.body_bytes,
        metrics=app.metrics,
        idle_connection_timeout=60,
        xheaders=app.config.xheaders,
        body_timeout=30,
    )


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM or SIGINT, then stop cleanly."""
    app = make_app(settings)
    await app.start()
    server = make_server(app)
    server.listen(settings.port, settings.host)
    log.info("serving on port %d, database %s", settings.port, _safe_url(settings.db_url))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("stopping: closing sockets, finishing requests")
    server.stop()
    await app.shutdown()
    await server.close_all_connections()
    log.info("stopped")


def _safe_url(url: str) -> str:
    """A database URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = credentials.split(":")[0] + ":***@" + host
    return scheme + sep + rest
