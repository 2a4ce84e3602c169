"""The command line: ``serve``, ``create-user`` and ``prune-events``.

Flags win over environment variables, which win over the defaults in
``settings.Settings``.  Passwords are read from a prompt or stdin, never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import os
import sys

from . import accounts, petition_store
from .errors import ApiError
from .models import bind_database, close_database, open_database
from .settings import Settings

_DEFAULTS = Settings()


def _env(name: str, default: object) -> object:
    return os.environ.get(name, default)


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in text.split(",") if origin.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tornado_petitions", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the service", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(_env("PETITIONS_PORT", _DEFAULTS.port)),
        help="HTTP port (env PETITIONS_PORT)",
    )
    serve.add_argument(
        "--host",
        default=_env("PETITIONS_HOST", _DEFAULTS.host),
        help="address to bind, empty for all (env PETITIONS_HOST)",
    )
    _add_db(serve)
    serve.add_argument(
        "--redis",
        default=_env("PETITIONS_REDIS", None),
        help="redis:// URL to share events between processes (env PETITIONS_REDIS)",
    )
    serve.add_argument(
        "--redis-channel",
        default=_env("PETITIONS_REDIS_CHANNEL", _DEFAULTS.redis_channel),
        help="prefix of the Redis channel (env PETITIONS_REDIS_CHANNEL)",
    )
    serve.add_argument(
        "--allowed-origins",
        default=_env("PETITIONS_ALLOWED_ORIGINS", ""),
        help="extra WebSocket origins, comma-separated (env PETITIONS_ALLOWED_ORIGINS)",
    )
    serve.add_argument(
        "--ping-interval",
        type=float,
        default=float(_env("PETITIONS_PING_INTERVAL", _DEFAULTS.ping_interval)),
        help="seconds between heartbeat pings (env PETITIONS_PING_INTERVAL)",
    )
    serve.add_argument(
        "--ping-timeout",
        type=float,
        default=float(_env("PETITIONS_PING_TIMEOUT", _DEFAULTS.ping_timeout)),
        help="seconds a socket has to answer a ping (env PETITIONS_PING_TIMEOUT)",
    )
    serve.add_argument(
        "--max-sockets-per-user",
        type=int,
        default=int(_env("PETITIONS_MAX_SOCKETS_PER_USER", _DEFAULTS.max_sockets_per_user)),
        help="sockets one user may hold (env PETITIONS_MAX_SOCKETS_PER_USER)",
    )
    serve.add_argument(
        "--max-backlog",
        type=int,
        default=int(_env("PETITIONS_MAX_BACKLOG", _DEFAULTS.max_backlog)),
        help="bytes of unsent frames before a socket is closed 4008 (env PETITIONS_MAX_BACKLOG)",
    )
    serve.add_argument(
        "--token-ttl",
        type=float,
        default=float(_env("PETITIONS_TOKEN_TTL", _DEFAULTS.token_ttl_seconds)),
        help="seconds a sign-in token lives (env PETITIONS_TOKEN_TTL)",
    )
    serve.add_argument(
        "--secure-cookies",
        action="store_true",
        default=_env("PETITIONS_SECURE_COOKIES", "") == "1",
        help="mark the session cookie Secure, behind HTTPS (env PETITIONS_SECURE_COOKIES=1)",
    )
    serve.add_argument(
        "--xheaders",
        action="store_true",
        default=_env("PETITIONS_XHEADERS", "") == "1",
        help="trust X-Forwarded-For/-Proto from a load balancer in front (env PETITIONS_XHEADERS=1)",
    )
    serve.add_argument(
        "--db-workers",
        type=int,
        default=int(_env("PETITIONS_DB_WORKERS", _DEFAULTS.db_workers)),
        help="threads for database work off the event loop (env PETITIONS_DB_WORKERS)",
    )
    _add_limits(serve)
    serve.add_argument(
        "--log-level",
        default=_env("PETITIONS_LOG_LEVEL", _DEFAULTS.log_level),
        choices=["debug", "info", "warning", "error"],
        help="log level; logs go to stderr (env PETITIONS_LOG_LEVEL)",
    )

    create = commands.add_parser("create-user", help="create an account; the password is read from stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="make the account an admin")
    _add_db(create)

    prune = commands.add_parser("prune-events", help="delete old events from the log")
    prune.add_argument("--keep", type=int, required=True, help="how many newest events to keep")
    _add_db(prune)
    return parser


# (flag, environment variable, Limits or RateLimits field, help) of each limit ``serve`` accepts.
_SIZE_FLAGS = (
    ("--max-body-bytes", "PETITIONS_MAX_BODY_BYTES", "body_bytes", "largest request body; larger is 413"),
    (
        "--max-ws-message-bytes",
        "PETITIONS_MAX_WS_MESSAGE_BYTES",
        "ws_message_bytes",
        "largest client WebSocket message; larger closes the socket 1009",
    ),
)
_RATE_FLAGS = (
    ("--rate-window", "PETITIONS_RATE_WINDOW", "window_seconds", "seconds of each rate-limit window"),
    (
        "--login-per-email",
        "PETITIONS_LOGIN_PER_EMAIL",
        "login_per_email",
        "sign-in attempts per email per window",
    ),
    (
        "--login-per-address",
        "PETITIONS_LOGIN_PER_ADDRESS",
        "login_per_address",
        "sign-in attempts per client address per window",
    ),
    (
        "--register-per-address",
        "PETITIONS_REGISTER_PER_ADDRESS",
        "register_per_address",
        "registrations per client address per window",
    ),
    (
        "--signatures-per-user",
        "PETITIONS_SIGNATURES_PER_USER",
        "signatures_per_user",
        "signatures per user per window",
    ),
)


def _add_limits(parser: argparse.ArgumentParser) -> None:
    for flags, defaults in ((_SIZE_FLAGS, _DEFAULTS.limits), (_RATE_FLAGS, _DEFAULTS.rate_limits)):
        for flag, variable, field, text in flags:
            default = getattr(defaults, field)
            parser.add_argument(
                flag,
                type=type(default),
                default=type(default)(_env(variable, default)),
                help=f"{text} (env {variable})",
            )


def _limits_from_args(args: argparse.Namespace) -> dict:
    """The ``limits`` and ``rate_limits`` settings the limit flags ask for."""

    def values(flags: tuple) -> dict:
        return {field: getattr(args, flag[2:].replace("-", "_")) for flag, _, field, _ in flags}

    return {
        "limits": dataclasses.replace(_DEFAULTS.limits, **values(_SIZE_FLAGS)),
        "rate_limits": dataclasses.replace(_DEFAULTS.rate_limits, **values(_RATE_FLAGS)),
    }


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=_env("PETITIONS_DB", _DEFAULTS.db_url),
        help="sqlite:///file.db or postgresql://... (env PETITIONS_DB)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` a parsed ``serve`` command line asks for."""
    return Settings(
        port=args.port,
        host=args.host,
        db_url=args.db,
        redis_url=args.redis or None,
        redis_channel=args.redis_channel,
        allowed_origins=_origins(args.allowed_origins),
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_sockets_per_user=args.max_sockets_per_user,
        max_backlog=args.max_backlog,
        token_ttl_seconds=args.token_ttl,
        secure_cookies=args.secure_cookies,
        xheaders=args.xheaders,
        db_workers=args.db_workers,
        log_level=args.log_level,
        **_limits_from_args(args),
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
    if len(password) < Settings().limits.password_min:
        print(f"the password must be at least {Settings().limits.password_min} characters", file=sys.stderr)
        return 2
    db = open_database(args.db)
    bind_database(db)
    try:
        user = accounts.create_user(
            args.email, args.name, accounts.hash_password(password), "admin" if args.admin else "citizen"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    # Peewee's debug lines carry query parameters (password hashes, token hashes).
    logging.getLogger("peewee").setLevel(max(logging.INFO, logging.getLogger().level))
    from .server import serve

    asyncio.run(serve(settings))
    return 0
