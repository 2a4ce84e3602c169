"""Every tunable of the service in one dataclass, built once at start-up.

To add a setting: add a field whose default is ``setting(default, "--flag", "help")``
to ``Settings`` (or ``Limits``/``RateLimits``).  That one line is its flag, its
environment variable (PETITIONS_ + the flag in capitals, ``-`` as ``_``), its default
and its help: ``serve --help`` and the table in docs/operations.md (regenerate it with
``python -m tornado_petitions settings --markdown``) both read it.  A plain default
(no ``setting``) is for tests and benchmarks only and gets no flag.  The text's type
comes from the default (a bool takes 1/0 true/false, a tuple is comma-separated, a None
default is optional text, empty meaning unset); ``parse=`` handles anything else (an
optional number, ``networks``), ``choices=`` restricts the values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class Declaration:
    """How an operator sets one field: its flag, help and, when the default's type is not enough, parser."""

    flag: str
    help: str
    # Text to value; unset: from the default's type (bool 1/0 true/false, tuple comma-separated,
    # None-default text with empty meaning unset).
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None

    @property
    def variable(self) -> str:
        """The environment variable that stands in for the flag."""
        return "PETITIONS_" + self.flag[2:].upper().replace("-", "_")


class SettingsError(ValueError):
    """A setting's value the service cannot run with, found at start-up; ``serve`` exits 2 saying which."""


def setting(
    default: Any,
    flag: str,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field an operator can set with ``flag`` or its environment variable."""
    return dataclasses.field(default=default, metadata={"setting": Declaration(flag, help, parse, choices)})


@dataclasses.dataclass(frozen=True)
class DeclaredSetting:
    """One settable field: its dotted path in ``Settings`` (``limits.body_bytes``), default and declaration."""

    path: str
    default: Any
    declaration: Declaration

    def parse(self, text: str) -> Any:
        """The flag's or variable's text as the type the field has; raises ``ValueError`` if it is not one."""
        if self.declaration.parse is not None:
            return self.declaration.parse(text)
        if isinstance(self.default, bool):
            return switch(text)
        if isinstance(self.default, tuple):
            return comma_separated(text)
        if self.default is None:  # an optional URL or key: empty means unset
            return text or None
        return type(self.default)(text)


def switch(text: str) -> bool:
    """A boolean as operators write it: 1, true, yes or on; anything else is off."""
    return text.lower() in ("1", "true", "yes", "on")


def auto_switch(text: str) -> str:
    """``auto``, ``on`` or ``off``; 1/0, true/false and yes/no are on and off; raises ``ValueError`` otherwise."""
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return "on"
    if word in ("0", "false", "no", "off"):
        return "off"
    if word == "auto":
        return "auto"
    raise ValueError(f"{text!r} is not auto, on or off")


def comma_separated(text: str) -> tuple[str, ...]:
    """``a, b,,c`` as ``("a", "b", "c")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins without trailing slashes, as browsers send them."""
    return tuple(origin.rstrip("/") for origin in comma_separated(text))


def networks(text: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); raises ``ValueError`` on an invalid one."""
    return tuple(str(ipaddress.ip_network(part)) for part in comma_separated(text))


def declared_settings(cls: type | None = None, prefix: str = "") -> Iterator[DeclaredSetting]:
    """Every field of ``Settings`` declared with ``setting``, nested dataclasses included, in order."""
    for field in dataclasses.fields(cls or Settings):
        if "setting" in field.metadata:
            yield DeclaredSetting(prefix + field.name, field.default, field.metadata["setting"])
        elif field.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(
            field.default_factory
        ):
            yield from declared_settings(field.default_factory, f"{prefix}{field.name}.")


def settings_with(values: dict[str, Any]) -> Settings:
    """``Settings()`` with the values given by dotted path (``{"limits.body_bytes": 1024}``)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        group, _, name = path.partition(".")
        if name:
            nested.setdefault(group, {})[name] = value
        else:
            top[group] = value
    defaults = Settings()
    for group, fields in nested.items():
        top[group] = dataclasses.replace(getattr(defaults, group), **fields)
    return dataclasses.replace(defaults, **top)


def markdown_table() -> str:
    """The settings table of docs/operations.md: flag, variable, default and meaning of each setting."""
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    for declared in declared_settings():
        default = "" if declared.default == "" else f"`{declared.default}`"
        rows.append(
            f"| `{declared.declaration.flag}` | `{declared.declaration.variable}` | {default} "
            f"| {declared.declaration.help} |"
        )
    return "\n".join(rows) + "\n"


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
    body_bytes: int = setting(64 * 1024, "--max-body-bytes", "largest request body; larger is 413")
    ws_message_bytes: int = setting(
        4 * 1024, "--max-ws-message-bytes", "largest client WebSocket message; larger is closed 1009"
    )
    page_size_max: int = 100


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """Attempts allowed per window; a setting so tests and operators can tune them.

    Each limit counts in windows of its own length: sign-in failures,
    registrations and signatures per ``window_seconds`` (a minute), filings
    per ``filing_window_seconds`` (a day).
    """

    window_seconds: float = setting(
        60.0, "--rate-window", "seconds of the sign-in, registration and signature rate-limit windows"
    )
    # Failed sign-ins per (email, client address), so no one else's failures lock an owner out.
    login_per_email: int = setting(
        10, "--login-per-email", "failed sign-ins per email and client address per window"
    )
    # Failed sign-ins per client address, whatever the emails.
    login_per_address: int = setting(
        50, "--login-per-address", "failed sign-ins per client address per window, whatever the emails"
    )
    register_per_address: int = setting(
        20, "--register-per-address", "registrations per client address per window"
    )
    signatures_per_user: int = setting(60, "--signatures-per-user", "signatures per user per window")
    filing_window_seconds: float = setting(
        24 * 3600.0, "--filing-window", "seconds of the filing rate-limit window"
    )
    filings_per_user: int = setting(10, "--filings-per-user", "petitions one user may file per filing window")
    filings_per_address: int = setting(
        30, "--filings-per-address", "petitions filed from one client address per filing window"
    )
    # Signatures without an account per (canonical) email: each one mails that address.
    signature_mails_per_email: int = setting(
        5,
        "--signature-mails-per-email",
        "signatures without an account (each mails the address) per email per window",
    )
    # Mail an account asks for (verification, "you have an account", password reset), counted
    # per ``mail_window_seconds`` (an hour), so no one can make the service flood a mailbox.
    mail_window_seconds: float = setting(
        3600.0, "--mail-window", "seconds of the account-mail rate-limit window"
    )
    account_mails_per_email: int = setting(
        5,
        "--account-mails-per-email",
        "verification and password-reset mails to one address per mail window",
    )
    password_resets_per_address: int = setting(
        30, "--password-resets-per-address", "password-reset requests from one client address per mail window"
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``serve`` accepts as flags or environment variables (see ``cli.py``)."""

    port: int = setting(8000, "--port", "HTTP and WebSocket port")
    host: str = setting("", "--host", "address to bind, empty for all")
    db_url: str = setting(
        "sqlite:///petitions.db", "--db", "sqlite:///file.db or postgresql://user@host:5432/name"
    )
    redis_url: str | None = setting(None, "--redis", "redis:// URL to share events between processes")
    redis_channel: str = setting("tornado_petitions", "--redis-channel", "prefix of the Redis channel")
    allowed_origins: tuple[str, ...] = setting(
        (), "--allowed-origins", "extra WebSocket origins, comma-separated", parse=origins
    )
    ping_interval: float = setting(20.0, "--ping-interval", "seconds between heartbeat pings")
    ping_timeout: float = setting(
        20.0, "--ping-timeout", "seconds a socket has to answer a ping before a 4000 close"
    )
    max_sockets_per_user: int = setting(
        20, "--max-sockets-per-user", "sockets one user may hold; one more is closed 4429"
    )
    max_anonymous_sockets_per_address: int = setting(
        200,
        "--max-anonymous-sockets-per-address",
        "public-feed sockets without an account one address may hold; one more is closed 4429",
    )
    # Seconds between counts frames: signatures reach watchers as one conflated frame a tick.
    count_interval: float = setting(
        1.0, "--count-interval", "seconds between counts frames (signature counts, conflated)"
    )
    # The share of the process the feeds' counts fan-out may take: past it, their interval stretches
    # (never below count_interval, never above max_count_interval).  User channels stay at count_interval.
    fanout_budget: float = setting(
        0.2,
        "--fanout-budget",
        "share of the process the feeds' counts frames may take; past it their interval stretches",
    )
    max_count_interval: float = setting(
        5.0,
        "--max-count-interval",
        "longest the fan-out budget may stretch the feeds' count interval to, seconds",
    )
    # Signature counts that oblige a response and a debate (milestone events).
    response_threshold: int = setting(
        10_000, "--response-threshold", "signatures that oblige a response (a milestone)"
    )
    debate_threshold: int = setting(
        100_000, "--debate-threshold", "signatures that put a petition up for debate (a milestone)"
    )
    max_backlog: int = setting(
        1024 * 1024, "--max-backlog", "bytes of unsent frames before a socket is closed 4008"
    )
    max_replay: int = setting(
        10_000, "--max-replay", "events a resume (?since=N) may replay; more is a reset"
    )
    max_replay_bytes: int = setting(
        4 * 1024 * 1024, "--max-replay-bytes", "bytes of frames a resume may replay; more is a reset"
    )
    max_list: int = setting(
        200, "--max-list", "petitions in a user channel's list (the newest; more: truncated)"
    )
    token_ttl_seconds: float = setting(30 * 24 * 3600, "--token-ttl", "seconds a sign-in token lives")
    secure_cookies: bool = setting(
        False,
        "--secure-cookies",
        "mark the session and XSRF cookies Secure (behind HTTPS; automatic for https requests)",
    )
    # Behind a load balancer: take the client address and scheme from X-Forwarded-For/-Proto
    # (X-Real-IP) so per-address rate limits and logs see clients, not the proxy.
    xheaders: bool = setting(
        False, "--xheaders", "trust X-Forwarded-For/-Proto from a load balancer in front"
    )
    # Accept permessage-deflate when a client offers it (per-socket CPU and memory: docs/performance.md).
    ws_compression: bool = setting(
        False, "--ws-compression", "accept permessage-deflate (costs CPU and ~160 KB a socket)"
    )
    xsrf_cookies: bool = True
    db_workers: int = setting(4, "--db-workers", "threads for database work off the event loop (PostgreSQL)")
    # None: run database work inline for SQLite and in the executor otherwise.
    db_inline: bool | None = None
    log_level: str = setting(
        "info",
        "--log-level",
        "debug, info, warning or error; logs go to stderr",
        choices=("debug", "info", "warning", "error"),
    )
    # The petitions office (docs/api.md "The petitions office"); its thresholds are above.
    # Days a petition takes signatures after it is filed (closes_at = submitted_at + this).
    signing_days: float = setting(
        180.0, "--signing-days", "days a petition takes signatures after it is filed"
    )
    # Days a submitted petition may wait for moderation before its queue entry is overdue.
    moderation_days: float = setting(
        7.0, "--moderation-days", "days a submitted petition waits before it is overdue"
    )
    # New petitions are public only once a moderator moves them on from submitted (``visibility``).
    premoderation: bool = setting(
        False,
        "--premoderation",
        "new petitions are seen only by their authors and the office until a moderator publishes them",
    )
    # Mail: unset smtp_url means no outbox rows are written and no sender runs.
    smtp_url: str | None = setting(
        None, "--smtp-url", "smtp://[user:password@]host:port (smtps:// for TLS); unset: no mail"
    )
    mail_from: str = setting("petitions@localhost", "--mail-from", "the From address of every mail")
    mail_per_second: float = setting(10.0, "--mail-per-second", "mails sent per second at most")
    # Longest wait between two tries while the SMTP server is down or answers 4xx (seconds).
    mail_retry_max: float = setting(
        10.0, "--mail-retry-max", "longest wait in seconds between tries while SMTP fails"
    )
    # Longest an idle sender waits before looking at the outbox again (seconds): mail this process
    # queues wakes it at once, so this bounds how late it sees mail another process queued.
    mail_poll_seconds: float = setting(
        0.5,
        "--mail-poll-seconds",
        "longest an idle mail sender waits before looking for mail other processes queued",
    )
    # The address links in mails point at; unset: http://localhost:<port>.
    public_url: str | None = setting(
        None,
        "--public-url",
        "the service's address in mail links and Open Graph tags (default http://localhost:PORT)",
    )
    # Networks (CIDRs) whose clients may read /metrics; with xheaders, the forwarded address counts.
    metrics_allow: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"),
        "--metrics-allow",
        "CIDRs whose clients may read /metrics, comma-separated; others get 403",
        parse=networks,
    )
    # Key of the HMAC that signs unsubscribe links; unset: generated once and kept in the database.
    mail_secret: str | None = setting(
        None,
        "--mail-secret",
        "key signing unsubscribe and confirmation links (default: generated, kept in the database)",
    )
    # Hours a mailed link (a signature's confirmation, an email verification, a password reset)
    # works; unconfirmed signatures are deleted after it.
    link_hours: float = setting(
        24.0,
        "--link-hours",
        "hours a mailed link (confirmation, verification, reset) works; unconfirmed signatures are deleted after",
    )
    # Days after a petition stops taking signatures until its signers' personal data is erased.
    anonymize_days: float = setting(
        180.0,
        "--anonymize-days",
        "days after signing stops until signers' names, emails, addresses and postcodes are erased",
    )
    # CSV of postcode_prefix,region: signatures are counted by region too (longest prefix wins).
    regions_file: str | None = setting(
        None, "--regions-file", "CSV of postcode_prefix,region: count signatures by region too"
    )
    verify_email: str = setting(
        "auto",
        "--verify-email",
        "auto, on or off: new accounts sign in only after opening a mailed link (auto: with --smtp-url)",
        parse=auto_switch,
        choices=("auto", "on", "off"),
    )
    # Signatures of one petition from one client address within an hour before more are stored fraudulent
    # (quietly: answered as good ones); counted by each process for the attempts it serves.
    signatures_per_address: int = setting(
        20,
        "--signatures-per-address",
        "signatures of one petition from one address an hour; more are stored fraudulent, answered as good",
    )
    # Signatures of one petition from one address or email domain within an hour that alert the admins.
    trending_threshold: int = setting(
        100,
        "--trending-threshold",
        "signatures of one petition from one address or domain an hour that alert the admin channel",
    )
    # Signatures an invalidation takes back per transaction (a batch; the loop runs between batches).
    invalidation_batch: int = setting(
        500, "--invalidation-batch", "signatures an invalidation takes back per transaction"
    )
    limits: Limits = dataclasses.field(default_factory=Limits)
    rate_limits: RateLimits = dataclasses.field(default_factory=RateLimits)

    def verifies_email(self) -> bool:
        """Whether registration waits for the mailed link (``verify_email``; ``auto``: when mail is on)."""
        if self.verify_email == "auto":
            return bool(self.smtp_url)
        return self.verify_email == "on"

    def public_base_url(self) -> str:
        """Where mails link to, without a trailing slash."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")
