"""The command line: ``serve``, ``create-user``, ``prune-events`` and ``anonymize``.

Installed, it is the ``tornado-petitions`` command; ``python -m tornado_petitions``
is the same.  Flags win over environment variables, which win over the defaults in
``settings.Settings``.  Passwords are read from a prompt or stdin, never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import importlib.metadata
import ipaddress
import logging
import os
import sys

from . import __version__, accounts, addresses, petition_store, redaction, validation
from .errors import ApiError
from .models import bind_database, close_database, open_database
from .settings import Settings

_DEFAULTS = Settings()


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in text.split(",") if origin.strip())


def _networks(text: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); an invalid one is a usage error."""
    try:
        return tuple(str(ipaddress.ip_network(part.strip())) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _switch(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


# Every ``serve`` setting: (flag, Settings field, help).  The environment
# variable is PETITIONS_ + the flag's name; ``limits.x`` and ``rate_limits.x``
# name fields of the nested dataclasses.  Types and defaults come from Settings.
_SERVE_FLAGS = (
    ("--port", "port", "HTTP and WebSocket port"),
    ("--host", "host", "address to bind, empty for all"),
    ("--db", "db_url", "sqlite:///file.db or postgresql://user@host:5432/name"),
    ("--redis", "redis_url", "redis:// URL to share events between processes"),
    ("--redis-channel", "redis_channel", "prefix of the Redis channel"),
    ("--allowed-origins", "allowed_origins", "extra WebSocket origins, comma-separated"),
    ("--ping-interval", "ping_interval", "seconds between heartbeat pings"),
    ("--ping-timeout", "ping_timeout", "seconds a socket has to answer a ping before a 4000 close"),
    ("--max-sockets-per-user", "max_sockets_per_user", "sockets one user may hold; one more is closed 4429"),
    (
        "--max-anonymous-sockets-per-address",
        "max_anonymous_sockets_per_address",
        "public-feed sockets without an account one address may hold; one more is closed 4429",
    ),
    ("--count-interval", "count_interval", "seconds between counts frames (signature counts, conflated)"),
    ("--max-backlog", "max_backlog", "bytes of unsent frames before a socket is closed 4008"),
    ("--token-ttl", "token_ttl_seconds", "seconds a sign-in token lives"),
    (
        "--secure-cookies",
        "secure_cookies",
        "mark the session and XSRF cookies Secure (behind HTTPS; automatic for https requests)",
    ),
    ("--xheaders", "xheaders", "trust X-Forwarded-For/-Proto from a load balancer in front"),
    ("--ws-compression", "ws_compression", "accept permessage-deflate (costs CPU and ~160 KB a socket)"),
    (
        "--metrics-allow",
        "metrics_allow",
        "CIDRs whose clients may read /metrics, comma-separated; others get 403",
    ),
    ("--db-workers", "db_workers", "threads for database work off the event loop (PostgreSQL)"),
    ("--max-body-bytes", "limits.body_bytes", "largest request body; larger is 413"),
    (
        "--max-ws-message-bytes",
        "limits.ws_message_bytes",
        "largest client WebSocket message; larger is closed 1009",
    ),
    (
        "--rate-window",
        "rate_limits.window_seconds",
        "seconds of the sign-in, registration and signature rate-limit windows",
    ),
    (
        "--login-per-email",
        "rate_limits.login_per_email",
        "failed sign-ins per email and client address per window",
    ),
    (
        "--login-per-address",
        "rate_limits.login_per_address",
        "failed sign-ins per client address per window, whatever the emails",
    ),
    (
        "--register-per-address",
        "rate_limits.register_per_address",
        "registrations per client address per window",
    ),
    ("--signatures-per-user", "rate_limits.signatures_per_user", "signatures per user per window"),
    ("--filing-window", "rate_limits.filing_window_seconds", "seconds of the filing rate-limit window"),
    ("--filings-per-user", "rate_limits.filings_per_user", "petitions one user may file per filing window"),
    (
        "--filings-per-address",
        "rate_limits.filings_per_address",
        "petitions filed from one client address per filing window",
    ),
    (
        "--signature-mails-per-email",
        "rate_limits.signature_mails_per_email",
        "signatures without an account (each mails the address) per email per window",
    ),
    ("--log-level", "log_level", "debug, info, warning or error; logs go to stderr"),
    ("--response-threshold", "response_threshold", "signatures that oblige a response (a milestone)"),
    ("--debate-threshold", "debate_threshold", "signatures that put a petition up for debate (a milestone)"),
    ("--signing-days", "signing_days", "days a petition takes signatures after it is filed"),
    ("--moderation-days", "moderation_days", "days a submitted petition waits before it is overdue"),
    ("--smtp-url", "smtp_url", "smtp://[user:password@]host:port (smtps:// for TLS); unset: no mail"),
    ("--mail-from", "mail_from", "the From address of every mail"),
    ("--mail-per-second", "mail_per_second", "mails sent per second at most"),
    ("--mail-retry-max", "mail_retry_max", "longest wait in seconds between tries while SMTP fails"),
    (
        "--mail-poll-seconds",
        "mail_poll_seconds",
        "longest an idle mail sender waits before looking for mail other processes queued",
    ),
    (
        "--public-url",
        "public_url",
        "the service's address in mail links and Open Graph tags (default http://localhost:PORT)",
    ),
    (
        "--mail-secret",
        "mail_secret",
        "key signing unsubscribe and confirmation links (default: generated, kept in the database)",
    ),
    ("--link-hours", "link_hours", "hours a mailed link works; unconfirmed signatures are deleted after"),
    (
        "--anonymize-days",
        "anonymize_days",
        "days after signing stops until signers' names, emails, addresses and postcodes are erased",
    ),
    ("--regions-file", "regions_file", "CSV of postcode_prefix,region: count signatures by region too"),
)


def _default(field: str) -> object:
    value: object = _DEFAULTS
    for part in field.split("."):
        value = getattr(value, part)
    return value


def _parse(field: str, text: str) -> object:
    """A flag's or variable's text as the type its Settings field has."""
    default = _default(field)
    if field == "allowed_origins":
        return _origins(text)
    if field == "metrics_allow":
        return _networks(text)
    if isinstance(default, bool):
        return _switch(text)
    if default is None:  # an optional URL: empty means unset
        return text or None
    return type(default)(text)


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    for flag, field, text in _SERVE_FLAGS:
        variable = "PETITIONS_" + flag[2:].upper().replace("-", "_")
        default = _default(field)
        if variable in os.environ:
            default = _parse(field, os.environ[variable])
        help_text = f"{text} (env {variable})"
        if isinstance(_default(field), bool):
            parser.add_argument(flag, dest=field, action="store_true", default=default, help=help_text)
            continue
        parser.add_argument(
            flag,
            dest=field,
            type=lambda text, field=field: _parse(field, text),
            metavar=flag[2:].upper().replace("-", "_"),
            default=default,
            choices=("debug", "info", "warning", "error") if field == "log_level" else None,
            help=help_text,
        )


def installed_version() -> str:
    """The version of the installed distribution; the source's own when run from a checkout."""
    try:
        return importlib.metadata.version("tornado_petitions")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser(prog: str = "tornado-petitions") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the service", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    _add_serve_flags(serve)

    create = commands.add_parser("create-user", help="create an account; the password is read from stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="make the account an admin")
    _add_db(create)

    prune = commands.add_parser("prune-events", help="delete old events from the log")
    prune.add_argument("--keep", type=int, required=True, help="how many newest events to keep")
    _add_db(prune)

    anonymize = commands.add_parser(
        "anonymize",
        help="erase signers of long-closed petitions and delete unconfirmed signatures now (the server does it daily)",
    )
    anonymize.add_argument(
        "--anonymize-days",
        type=float,
        default=float(os.environ.get("PETITIONS_ANONYMIZE_DAYS", _DEFAULTS.anonymize_days)),
        help="days after signing stops until signers are erased (env PETITIONS_ANONYMIZE_DAYS)",
    )
    _add_db(anonymize)
    return parser


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("PETITIONS_DB", _DEFAULTS.db_url),
        help="sqlite:///file.db or postgresql://... (env PETITIONS_DB)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` a parsed ``serve`` command line asks for."""
    top: dict = {}
    nested: dict[str, dict] = {"limits": {}, "rate_limits": {}}
    for _, field, _ in _SERVE_FLAGS:
        value = getattr(args, field)
        group, _, name = field.rpartition(".")
        (nested[group] if group else top)[name] = value
    return dataclasses.replace(
        _DEFAULTS,
        **top,
        limits=dataclasses.replace(_DEFAULTS.limits, **nested["limits"]),
        rate_limits=dataclasses.replace(_DEFAULTS.rate_limits, **nested["rate_limits"]),
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("passwords differ")
        return password
    return sys.stdin.readline().rstrip("\n")


def create_user(args: argparse.Namespace) -> int:
    password = _read_password()
    problem = validation.new_password_problem(_DEFAULTS.limits, password)
    if problem is not None:
        print(f"the password {problem}", file=sys.stderr)
        return 2
    try:
        email = addresses.normalize(args.email.strip())
    except addresses.AddressError as error:
        print(f"--email: {error}", file=sys.stderr)
        return 2
    db = open_database(args.db)
    bind_database(db)
    try:
        user = accounts.create_user(
            email, args.name, accounts.hash_password(password), "admin" if args.admin else "citizen"
        )
    except ApiError as error:
        print(error.message, file=sys.stderr)
        return 1
    finally:
        close_database(db)
    print(f"created {user.role} {user.email} (user_id {user.id})")
    return 0


def prune_events(args: argparse.Namespace) -> int:
    db = open_database(args.db)
    bind_database(db)
    try:
        _, newest = petition_store.log_bounds()
        keep_after = max(0, newest - max(0, args.keep))
        removed = petition_store.prune_events(keep_after)
    finally:
        close_database(db)
    print(f"removed {removed} events; clients resuming from before seq {keep_after} will get a reset")
    return 0


def anonymize(args: argparse.Namespace) -> int:
    from . import signature_privacy

    db = open_database(args.db)
    bind_database(db)
    try:
        with db.connection_context():
            erased, purged = signature_privacy.anonymize(args.anonymize_days)
    finally:
        close_database(db)
    print(f"erased {erased} signers of closed petitions; deleted {purged} unconfirmed signatures")
    return 0


def main(argv: list[str] | None = None, prog: str = "tornado-petitions") -> int:
    """The ``tornado-petitions`` console script (``python -m tornado_petitions`` passes its own ``prog``)."""
    args = build_parser(prog).parse_args(argv)
    if args.command == "anonymize":
        return anonymize(args)
    if args.command == "create-user":
        return create_user(args)
    if args.command == "prune-events":
        return prune_events(args)
    settings = settings_from_args(args)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Tornado's own lines carry request lines and exception texts: secrets out of every line.
    redaction.install()
    # Peewee's debug lines carry query parameters (password hashes, token hashes).
    logging.getLogger("peewee").setLevel(max(logging.INFO, logging.getLogger().level))
    from .server import serve

    asyncio.run(serve(settings))
    return 0
