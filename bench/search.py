"""Search at scale: p50/p99 of ``q`` on 100,000 petitions, full-text index against the old LIKE scan.

``python -m bench.search`` fills a fresh SQLite file and a fresh PostgreSQL
database (``--pg``, a server URL; ``--pg ''`` skips it) with ``--petitions``
petitions written straight into the database (titles and descriptions drawn
from a civic word list with a Zipf-like spread, so some words are common and
some rare), signatures of the last three days for ``trending``, then times
``petition_store.list_petitions`` in process: the query and the shaping of
one page of 20, no HTTP.

The old query is the one ``q`` ran before full-text search: ``title LIKE
'%w%' OR description LIKE '%w%'``, newest first, on the same data.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import peewee

COMMON_WORDS = (
    "the of and to in for on a with our at by from more new please city local community public"
    " street road park school parking traffic safety bus station library hours council housing"
    " children water trees lights crossing speed limit noise rent bins recycling cycle lane"
    " pavement repair bridge market playground hospital clinic elderly students teachers"
).split()
RARE_WORDS = (
    "zeppelin quarry aqueduct bandstand lido tramway allotment orchard footbridge towpath"
    " heliport observatory apiary boathouse cobbles bollards sundial fountain pergola arboretum"
).split()
VERBS = "Fix Repair Protect Save Build Open Stop Improve Extend Reduce Restore Fund Keep Ban Add".split()
PLACES = "Mill Road, High Street, Elm Park, the harbour, North Quay, Station Square, the old town".split(", ")
# The words timed: one in about a fifth of the petitions, one in a few dozen, and a prefix.
COMMON, RARE, PREFIX, TWO_COMMON = "street", "zeppelin", "recyc", "road street"
SIGNATURE_DAYS = 3


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """The words descriptions are drawn from and their weights: civic words common, made-up ones rare."""
    made_up = [
        "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(3000)
    ]
    words = COMMON_WORDS + made_up + RARE_WORDS
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(COMMON_WORDS) + len(made_up))]
    weights += [weights[-1] * 0.05] * len(RARE_WORDS)
    return words, weights


def petition_rows(count: int, author_id: int, seed: int = 7) -> list[tuple]:
    from tornado_petitions.petition_row import NewPetitionRow

    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    cumulative = list(itertools.accumulate(weights))
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    rows = []
    for number in range(count):
        topic = rng.choices(words, cum_weights=cumulative)[0]
        title = f"{rng.choice(VERBS)} the {topic} {rng.choice(('on', 'at', 'near'))} {rng.choice(PLACES)}"
        body = " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(30, 90)))
        description = body[0].upper() + body[1:] + "."
        submitted = now - datetime.timedelta(minutes=count - number)
        signatures = int(rng.paretovariate(1.2)) - 1
        rows.append(
            NewPetitionRow(
                title=title,
                description=description,
                category=None,
                location=None,
                author_id=author_id,
                status="submitted",
                signature_count=signatures,
                version=1,
                submitted_at=submitted,
                updated_at=submitted,
                closes_at=submitted + datetime.timedelta(days=180),
                milestones="[]",
                awaiting_response=False,
                published=True,
            )
        )
    return rows


def fill(db_url: str, count: int) -> None:
    """Bind a fresh database, then write ``count`` petitions, users and recent signatures straight in."""
    from tornado_petitions import models, statements

    db = models.open_database(db_url)
    models.bind_database(db)
    started = time.monotonic()
    with db.connection_context():
        with db.atomic():
            author = models.User.create(email="author@bench.example", name="Author", password_hash="-")
            rows = petition_rows(count, author.id)
            insert = statements._in_style(
                db.param, statements.INSERT_PETITION.removesuffix(' RETURNING "id"')
            )
            cursor = db.cursor()
            for start in range(0, len(rows), 5000):
                cursor.executemany(insert, rows[start : start + 5000])
            users = [
                {"email": f"s{i}@bench.example", "name": f"S{i}", "password_hash": "-"} for i in range(500)
            ]
            models.User.insert_many(users).execute()
            user_ids = [u.id for u in models.User.select(models.User.id)]
            rng = random.Random(11)
            now = models.utcnow()
            # Signatures on the newest tenth of the petitions, spread over the last days.
            petition_ids = [p for (p,) in models.Petition.select(models.Petition.id).tuples()][-count // 10 :]
            signatures = [
                {
                    "petition": petition_id,
                    "user": user_id,
                    "created_at": now - datetime.timedelta(hours=rng.uniform(0, 24 * SIGNATURE_DAYS)),
                }
                for petition_id, user_id in {
                    (rng.choice(petition_ids), rng.choice(user_ids)) for _ in range(min(count, 50_000))
                }
            ]
            for start in range(0, len(signatures), 5000):
                models.Signature.insert_many(signatures[start : start + 5000]).execute()
        db.execute_sql("ANALYZE")
        if not isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("INSERT INTO petition_search(petition_search) VALUES ('optimize')")
    print(f"  filled {count} petitions in {time.monotonic() - started:.1f} s", file=sys.stderr)
    models.close_database(db)


def old_like_query(text: str) -> list[dict]:
    """What ``q`` ran before full-text search, on the same tables."""
    from tornado_petitions import petition_row, petition_store
    from tornado_petitions.models import Petition

    query = petition_row.select().where(Petition.title.contains(text) | Petition.description.contains(text))
    return petition_store._petitions(query.order_by(Petition.id.desc()).limit(21))


def timed(call: Callable[[], object], runs: int) -> tuple[float, float, int]:
    """(p50, p99) in milliseconds of ``runs`` calls after two warm-ups, and how many rows the last gave."""
    for _ in range(2):
        result = call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    rows = len(result[0]) if isinstance(result, tuple) else len(result)  # type: ignore[arg-type]
    return statistics.median(samples), p99, rows


def measure(db_url: str, runs: int, old_runs: int) -> list[tuple[str, str, float, float, int]]:
    from tornado_petitions import models, petition_store, search
    from tornado_petitions.models import Petition

    db = models.open_database(db_url)
    models.bind_database(db)
    results = []
    cases: list[tuple[str, str, Callable[[], object], int]] = []
    words = (("common", COMMON), ("rare", RARE), ("prefix", PREFIX), ("two common", TWO_COMMON))
    with db.connection_context():
        matches = {word: search.filter_text(Petition.select(), word).count() for _, word in words}
    for label, word in words:
        for sort in ("newest", "relevance"):
            cases.append(
                (
                    f"q={word} ({label}, {matches[word]} matches)",
                    sort,
                    lambda w=word, s=sort: petition_store.list_petitions(limit=20, text=w, sort=s),
                    runs,
                )
            )
        cases.append(
            (
                f"q={word} ({label}, {matches[word]} matches)",
                "old LIKE",
                lambda w=word: old_like_query(w),
                old_runs,
            )
        )
    for sort in ("popular", "trending"):
        cases.append(("no q", sort, lambda s=sort: petition_store.list_petitions(limit=20, sort=s), runs))
    title = f"Repair the {RARE} near Mill Road"
    cases.append(("similar", title, lambda: petition_store.similar_petitions(title), runs))
    with db.connection_context():
        for what, sort, call, n in cases:
            p50, p99, rows = timed(call, n)
            results.append((what, sort, p50, p99, rows))
            print(
                f"  {what:24} {sort:10} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  ({rows} rows)", file=sys.stderr
            )
    models.close_database(db)
    return results


def _pg_admin(server_url: str, statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(server_url + "/postgres", connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--petitions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per full-text case")
    parser.add_argument("--old-runs", type=int, default=30, help="timed calls per LIKE case (slow)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL; '' skips")
    args = parser.parse_args()
    tables = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'search.db'}"
        print("SQLite", file=sys.stderr)
        fill(url, args.petitions)
        tables["SQLite"] = measure(url, args.runs, args.old_runs)
    if args.pg:
        name = "bench_search_" + secrets.token_hex(4)
        _pg_admin(args.pg, f"CREATE DATABASE {name}")
        try:
            print("PostgreSQL", file=sys.stderr)
            fill(f"{args.pg}/{name}", args.petitions)
            tables["PostgreSQL"] = measure(f"{args.pg}/{name}", args.runs, args.old_runs)
        finally:
            _pg_admin(args.pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print("| database | query | order | p50 ms | p99 ms | rows |\n|---|---|---|---:|---:|---:|")
    for database, rows in tables.items():
        for what, sort, p50, p99, count in rows:
            print(f"| {database} | {what} | {sort} | {p50:.2f} | {p99:.2f} | {count} |")


if __name__ == "__main__":
    main()
