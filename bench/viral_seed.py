"""Fill a tornado_petitions SQLite file for the viral benchmark, before (or between) server runs.

Registering through the API costs one password hash per user, so the users
the storm needs are written straight into the database through the
server's own ``accounts`` and models (one hash shared by every account;
``accounts.issue_token`` makes each token as a sign-in would):

``python -m bench.viral_seed users --db sqlite:///F --signers S --admins A --out tokens.json``

and a million signatures are bulk-inserted with one ``INSERT ... SELECT``
over a recursive CTE each (users first, then their signatures), every
other column copied from a row the server wrote itself:

``python -m bench.viral_seed signatures --db F --count N --petitions 1,2,3``

It runs as a subprocess in the server's environment, so it writes the
schema of the checkout being measured (``--ours-src``).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time

import ujson

TOKEN_TTL = 7 * 24 * 3600.0


def seed_users(args: argparse.Namespace) -> None:
    from tornado_petitions import accounts
    from tornado_petitions.models import User, bind_database, close_database, open_database

    db = open_database(args.db)
    bind_database(db)
    started = time.monotonic()
    shared_hash = accounts.hash_password(args.password)
    kinds = [("author", 1, "citizen"), ("admin", args.admins, "admin"), ("signer", args.signers, "citizen")]
    tokens: dict[str, list] = {}
    with db.atomic():
        for kind, count, role in kinds:
            rows = [
                {
                    "email": f"{kind}{i}@viral.example",
                    "name": f"{kind.title()} {i}",
                    "role": role,
                    "password_hash": shared_hash,
                }
                for i in range(count)
            ]
            for start in range(0, len(rows), 5000):
                User.insert_many(rows[start : start + 5000]).execute()
            users = User.select().where(User.email.startswith(f"{kind}")).order_by(User.id)
            tokens[kind] = [[user.id, accounts.issue_token(user, TOKEN_TTL)] for user in users]
    close_database(db)
    with open(args.out, "w") as out:
        ujson.dump(tokens, out)
    print(
        f"seeded {sum(c for _, c, _ in kinds)} users in {time.monotonic() - started:.1f} s", file=sys.stderr
    )


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def seed_signatures(args: argparse.Namespace) -> None:
    """``count`` users, each signing one of ``petitions`` (round robin); counts brought up to date."""
    petitions = [int(p) for p in args.petitions.split(",")]
    conn = sqlite3.connect(args.db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=off")
    started = time.monotonic()
    template_user = conn.execute('SELECT max(id) FROM "user"').fetchone()[0]
    template_signature = conn.execute('SELECT max(id) FROM "signature"').fetchone()[0]
    assert template_signature is not None, "sign once through the server first: its row is the template"
    first = template_user + 1
    ids = ",".join(str(p) for p in petitions)
    conn.execute("BEGIN")
    cte = f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {args.count - 1})"
    user_columns = [c for c in _columns(conn, "user") if c != "id"]
    chosen = {"email": "'bulk' || i || '@viral.example'", "name": "'Bulk ' || i"}
    select = ", ".join(chosen.get(c, f't."{c}"') for c in user_columns)
    names = ", ".join(f'"{c}"' for c in user_columns)
    conn.execute(
        f'INSERT INTO "user" (id, {names}) {cte} SELECT {first} + i, {select} FROM n, '
        f'(SELECT * FROM "user" WHERE id = {template_user}) t'
    )
    signature_columns = [c for c in _columns(conn, "signature") if c not in ("id", "petition_id", "user_id")]
    select = ", ".join(f't."{c}"' for c in signature_columns)
    names = ", ".join(f'"{c}"' for c in signature_columns)
    petition_of = f"(SELECT value FROM json_each('[{ids}]') WHERE key = i % {len(petitions)})"
    conn.execute(
        f'INSERT INTO "signature" (petition_id, user_id, {names}) {cte} SELECT {petition_of}, {first} + i, '
        f'{select} FROM n, (SELECT * FROM "signature" WHERE id = {template_signature}) t'
    )
    # The count as the server keeps it; a count_version (docs/architecture.md) moves as a folded batch would move it.
    bump = ', "count_version" = "count_version" + 1' if "count_version" in _columns(conn, "petition") else ""
    conn.execute(
        'UPDATE "petition" SET signature_count = '
        f'(SELECT count(*) FROM "signature" s WHERE s.petition_id = "petition".id){bump}'
        f" WHERE id IN ({ids})"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"inserted {args.count} signatures in {time.monotonic() - started:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.viral_seed", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    users = commands.add_parser("users")
    users.add_argument("--db", required=True, help="sqlite:///FILE")
    users.add_argument("--signers", type=int, required=True)
    users.add_argument("--admins", type=int, default=10)
    users.add_argument("--password", default="bench-password-1")
    users.add_argument("--out", required=True)
    signatures = commands.add_parser("signatures")
    signatures.add_argument("--db", required=True, help="the SQLite file (the server stopped)")
    signatures.add_argument("--count", type=int, required=True)
    signatures.add_argument("--petitions", required=True, help="petition ids, comma-separated")
    args = parser.parse_args(argv)
    (seed_users if args.command == "users" else seed_signatures)(args)


if __name__ == "__main__":
    main()
