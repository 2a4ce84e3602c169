"""Every tunable of the service in one dataclass, built once at start-up."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits on what clients send (characters unless named otherwise)."""

    title_min: int = 3
    title_max: int = 200
    description_max: int = 10_000
    category_max: int = 100
    location_max: int = 100
    note_max: int = 2_000
    name_max: int = 100
    email_max: int = 254
    postcode_max: int = 16
    password_min: int = 8
    password_max: int = 1_000
    body_bytes: int = 64 * 1024
    ws_message_bytes: int = 4 * 1024
    page_size_max: int = 100


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """Attempts allowed per window; a setting so tests and operators can tune them.

    Each limit counts in windows of its own length: sign-in failures,
    registrations and signatures per ``window_seconds`` (a minute), filings
    per ``filing_window_seconds`` (a day).
    """

    window_seconds: float = 60.0
    # Failed sign-ins per (email, client address), so no one else's failures lock an owner out.
    login_per_email: int = 10
    # Failed sign-ins per client address, whatever the emails.
    login_per_address: int = 50
    register_per_address: int = 20
    signatures_per_user: int = 60
    filing_window_seconds: float = 24 * 3600.0
    filings_per_user: int = 10
    filings_per_address: int = 30
    # Signatures without an account per (canonical) email: each one mails that address.
    signature_mails_per_email: int = 5


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``serve`` accepts as flags or environment variables (see ``cli.py``)."""

    port: int = 8000
    host: str = ""
    db_url: str = "sqlite:///petitions.db"
    redis_url: str | None = None
    redis_channel: str = "tornado_petitions"
    allowed_origins: tuple[str, ...] = ()
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    max_sockets_per_user: int = 20
    max_anonymous_sockets_per_address: int = 200
    # Seconds between counts frames: signatures reach watchers as one conflated frame a tick.
    count_interval: float = 1.0
    # Signature counts that oblige a response and a debate (milestone events).
    response_threshold: int = 10_000
    debate_threshold: int = 100_000
    max_backlog: int = 1024 * 1024
    max_replay: int = 10_000
    token_ttl_seconds: float = 30 * 24 * 3600
    secure_cookies: bool = False
    # Behind a load balancer: take the client address and scheme from X-Forwarded-For/-Proto
    # (X-Real-IP) so per-address rate limits and logs see clients, not the proxy.
    xheaders: bool = False
    # Accept permessage-deflate when a client offers it (per-socket CPU and memory: docs/performance.md).
    ws_compression: bool = False
    xsrf_cookies: bool = True
    db_workers: int = 4
    # None: run database work inline for SQLite and in the executor otherwise.
    db_inline: bool | None = None
    log_level: str = "info"
    # The petitions office (docs/api.md "The petitions office"); its thresholds are above.
    # Days a petition takes signatures after it is filed (closes_at = submitted_at + this).
    signing_days: float = 180.0
    # Days a submitted petition may wait for moderation before its queue entry is overdue.
    moderation_days: float = 7.0
    # Mail: unset smtp_url means no outbox rows are written and no sender runs.
    smtp_url: str | None = None
    mail_from: str = "petitions@localhost"
    mail_per_second: float = 10.0
    # Longest wait between two tries while the SMTP server is down or answers 4xx (seconds).
    mail_retry_max: float = 10.0
    # Longest an idle sender waits before looking at the outbox again (seconds): mail this process
    # queues wakes it at once, so this bounds how late it sees mail another process queued.
    mail_poll_seconds: float = 0.5
    # The address links in mails point at; unset: http://localhost:<port>.
    public_url: str | None = None
    # Networks (CIDRs) whose clients may read /metrics; with xheaders, the forwarded address counts.
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # Key of the HMAC that signs unsubscribe links; unset: generated once and kept in the database.
    mail_secret: str | None = None
    # Hours a mailed link (a signature's confirmation) works; unconfirmed signatures are deleted after it.
    link_hours: float = 24.0
    # Days after a petition stops taking signatures until its signers' personal data is erased.
    anonymize_days: float = 180.0
    # CSV of postcode_prefix,region: signatures are counted by region too (longest prefix wins).
    regions_file: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    rate_limits: RateLimits = dataclasses.field(default_factory=RateLimits)

    def public_base_url(self) -> str:
        """Where mails link to, without a trailing slash."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")
