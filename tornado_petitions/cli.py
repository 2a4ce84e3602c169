"""The command line: ``serve``, ``settings``, ``create-user``, ``prune-events`` and ``anonymize``.

Installed, it is the ``tornado-petitions`` command; ``python -m tornado_petitions``
is the same.  Flags win over environment variables, which win over the defaults in
``settings.Settings``.  Passwords are read from a prompt or stdin, never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import logging
import os
import sys

from . import __version__, accounts, addresses, event_log, redaction, validation
from .errors import ApiError
from .models import bind_database, close_database, open_database
from .roles import ROLES
from .settings import (
    DeclaredSetting,
    Settings,
    SettingsError,
    declared_settings,
    markdown_table,
    settings_with,
)

_DEFAULTS = Settings()


def _add_setting(parser: argparse.ArgumentParser, declared: DeclaredSetting) -> None:
    """``declared``'s flag: its environment variable, when set, replaces the default."""
    flag, variable = declared.declaration.flag, declared.declaration.variable
    default = declared.default
    if variable in os.environ:
        default = declared.parse(os.environ[variable])
    help_text = f"{declared.declaration.help} (env {variable})"
    if isinstance(declared.default, bool):
        parser.add_argument(flag, dest=declared.path, action="store_true", default=default, help=help_text)
        return
    parser.add_argument(
        flag,
        dest=declared.path,
        type=lambda text, declared=declared: _argument(declared, text),
        metavar=flag[2:].upper().replace("-", "_"),
        default=default,
        choices=declared.declaration.choices,
        help=help_text,
    )


def _argument(declared: DeclaredSetting, text: str) -> object:
    """A flag's value; text its setting cannot take is a usage error that says why."""
    try:
        return declared.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _declared(path: str) -> DeclaredSetting:
    (declared,) = (declared for declared in declared_settings() if declared.path == path)
    return declared


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
    for declared in declared_settings():
        _add_setting(serve, declared)

    table = commands.add_parser("settings", help="print the settings serve takes")
    table.add_argument("--markdown", action="store_true", help="as the table in docs/operations.md")

    create = commands.add_parser("create-user", help="create an account; the password is read from stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    role = create.add_mutually_exclusive_group()
    role.add_argument("--role", choices=ROLES, default="citizen", help="the account's role")
    role.add_argument(
        "--admin",
        dest="role",
        action="store_const",
        const="admin",
        default="citizen",
        help="short for --role admin",
    )
    _add_db(create)

    prune = commands.add_parser("prune-events", help="delete old events from the log")
    prune.add_argument("--keep", type=int, required=True, help="how many newest events to keep")
    _add_db(prune)

    anonymize = commands.add_parser(
        "anonymize",
        help="erase signers of long-closed petitions and delete unconfirmed signatures now (the server does it daily)",
    )
    _add_setting(anonymize, _declared("anonymize_days"))
    _add_db(anonymize)
    return parser


def _add_db(parser: argparse.ArgumentParser) -> None:
    _add_setting(parser, _declared("db_url"))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` a parsed ``serve`` command line asks for."""
    return settings_with({declared.path: getattr(args, declared.path) for declared in declared_settings()})


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
    db = open_database(args.db_url)
    bind_database(db)
    try:
        user = accounts.create_user(email, args.name, accounts.hash_password(password), args.role)
    except ApiError as error:
        print(error.message, file=sys.stderr)
        return 1
    finally:
        close_database(db)
    print(f"created {user.role} {user.email} (user_id {user.id})")
    return 0


def prune_events(args: argparse.Namespace) -> int:
    db = open_database(args.db_url)
    bind_database(db)
    try:
        _, newest = event_log.log_bounds()
        keep_after = max(0, newest - max(0, args.keep))
        removed = event_log.prune_events(keep_after)
    finally:
        close_database(db)
    print(f"removed {removed} events; clients resuming from before seq {keep_after} will get a reset")
    return 0


def print_settings(args: argparse.Namespace) -> int:
    """Every ``serve`` setting, as the table docs/operations.md keeps (``--markdown``) or one a line."""
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    for declared in declared_settings():
        print(f"{declared.declaration.flag} {declared.declaration.variable}={declared.default!r}")
    return 0


def anonymize(args: argparse.Namespace) -> int:
    from . import signature_privacy

    db = open_database(args.db_url)
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
    if args.command == "settings":
        return print_settings(args)
    settings = settings_from_args(args)
    if settings.verifies_email() and not settings.smtp_url:
        build_parser(prog).error("--verify-email on needs --smtp-url: the links are mailed")
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

    try:
        asyncio.run(serve(settings))
    except SettingsError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
