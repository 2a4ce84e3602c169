"""Full-text search over petition titles and descriptions, and the list orders it ranks.

SQLite keeps an FTS5 table (``petition_search``) whose content is the
``petition`` table itself; PostgreSQL keeps a ``tsvector`` column
(``petition.search_document``, title weighted A, description B) under a
GIN index.  Triggers in the database keep either in step with every insert
and every change of a title or description, inside the transaction that
writes the petition; a status change or a new signature does not touch
them.  ``install`` creates them and fills them from the petitions already
there, once.

What a user types is never handed to either query language: ``words``
keeps only runs of letters and digits, and the query strings are built
from those, each word quoted, the last one a prefix.

PostgreSQL uses the ``simple`` configuration (lower-casing, no stemming,
no stop words): petitions are written in any language, ``english``
stemming would mangle the others, and it would make the two databases
find different things.  SQLite's tokenizer also folds accents ("mas"
finds "Más"); PostgreSQL's ``simple`` does not (that needs the
``unaccent`` extension).
"""

from __future__ import annotations

import datetime
import functools
import operator
import re

import peewee

from . import visibility
from .models import Petition, Signature, database_proxy, utcnow
from .signature_states import COUNTED

SORTS = ("newest", "relevance", "popular", "trending")
# ``trending`` counts the signatures of this many last hours.
TRENDING_HOURS = 24
# How many petitions ``similar`` returns at most.
SIMILAR_LIMIT = 5
# sort=relevance ranks this many newest matches (the filters applied first).
RELEVANCE_WINDOW = 300
# ``similar`` compares at most this many words of a title, each bringing this many newest titles.
SIMILAR_WORDS = 10
SIMILAR_CANDIDATES = 50
# A query uses at most this many words (``q`` is at most 200 characters anyway).
MAX_WORDS = 32
# bm25 weights of the FTS5 columns (title, description), and ts_rank's weights of D, C, B, A:
# a title match outranks a match in the description only.
_BM25_RANK = "bm25(10.0, 1.0)"
_TS_WEIGHTS = "{0.05, 0.1, 0.2, 1.0}"
_TS_CONFIG = "simple"
# Words too common in petition titles to say two petitions are alike.
_NOT_ALIKE = frozenset(
    "a an and are at be by for from in into is it of on or our please the their this to we with".split()
)
_WORD = re.compile(r"[^\W_]+")

_fts = peewee.Table("petition_search", ("rowid", "rank", "petition_search"))
_document = peewee.Column(Petition, "search_document")
# PostgreSQL: titles alone, under an expression index whose statistics tell rare title words from common.
_title_document = peewee.fn.to_tsvector(peewee.SQL(f"'{_TS_CONFIG}'::regconfig"), Petition.title)


def words(text: str) -> list[str]:
    """The words of what a user typed: runs of letters and digits, lower-cased; all else is a separator."""
    return _WORD.findall(text.lower())[:MAX_WORDS]


def fts5_query(terms: list[str], *, titles_only: bool = False, prefix: bool = True) -> str:
    """An FTS5 query: every one of ``terms`` (in any order), each quoted so no operator survives, the last a prefix."""
    quoted = [f'"{term}"' for term in terms]
    if prefix:
        quoted[-1] += "*"
    query = " ".join(quoted)
    return f"title : ({query})" if titles_only else query


def tsquery_text(terms: list[str], *, prefix: bool = True) -> str:
    """``fts5_query`` for PostgreSQL's ``to_tsquery`` (titles alone have their own index there)."""
    quoted = [f"'{term}'" for term in terms]
    if prefix:
        quoted[-1] += ":*"
    return " & ".join(quoted)


def _is_postgres() -> bool:
    return isinstance(database_proxy.obj, peewee.PostgresqlDatabase)


def _tsquery(text: str) -> peewee.Node:
    return peewee.fn.to_tsquery(peewee.SQL(f"'{_TS_CONFIG}'::regconfig"), text)


def _fts_match(match: str) -> peewee.Expression:
    return peewee.Expression(_fts.petition_search, "MATCH", match)


def _matching(
    query: peewee.ModelSelect, terms: list[str], *, titles_only: bool = False, prefix: bool = True
) -> peewee.ModelSelect:
    """``query`` narrowed to petitions matching every one of ``terms`` (in titles only, with ``titles_only``).

    On SQLite the FTS5 table is joined, so a newest-first walk (``_newest``)
    reads its matches in rowid order and stops at a page, never collecting
    every match of a common word first.
    """
    if _is_postgres():
        document = _title_document if titles_only else _document
        return query.where(peewee.Expression(document, "@@", _tsquery(tsquery_text(terms, prefix=prefix))))
    match = _fts_match(fts5_query(terms, titles_only=titles_only, prefix=prefix))
    return query.switch(Petition).join(_fts, on=(_fts.rowid == Petition.id)).where(match)


def _newest(text: str | None) -> peewee.Node:
    """Newest first, as the database walks a query ``filter_text`` made from ``text``."""
    return _fts.rowid.desc() if text and words(text) and not _is_postgres() else Petition.id.desc()


def _newest_ids(query: peewee.ModelSelect, newest: peewee.Node, count: int) -> peewee.ModelSelect:
    return query.select(Petition.id).order_by(newest).limit(count)


def filter_text(query: peewee.ModelSelect, text: str) -> peewee.ModelSelect:
    """``query`` narrowed to petitions whose title or description has every word of ``text``.

    A text without a single word (only punctuation, say) matches nothing.
    """
    terms = words(text)
    if not terms:
        return query.where(peewee.SQL("1 = 0"))
    return _matching(query, terms)


def order(query: peewee.ModelSelect, sort: str, text: str | None) -> peewee.ModelSelect:
    """``query`` (already filtered by ``filter_text`` when there is a text) in the order ``sort`` names.

    ``relevance`` without a text is newest first; every order ends with the
    newest first, so pages are stable.
    """
    newest = Petition.id.desc()
    if sort == "popular":
        return query.order_by(Petition.signature_count.desc(), newest)
    if sort == "trending":
        since = utcnow() - datetime.timedelta(hours=TRENDING_HOURS)
        recent = peewee.fn.COUNT(Signature.id)
        # Ordered inside, so the database can walk the counts in order and stop at a page.
        counts = (
            Signature.select(Signature.petition.alias("petition_id"), recent.alias("recent"))
            .where((Signature.created_at >= since) & (Signature.state == COUNTED))  # what counts trends
            .group_by(Signature.petition)
            .order_by(recent.desc(), Signature.petition.desc())
            .alias("trend")
        )
        joined = query.join(counts, on=(counts.c.petition_id == Petition.id))
        return joined.order_by(counts.c.recent.desc(), counts.c.petition_id.desc())
    terms = words(text or "")
    if sort == "relevance" and terms:
        return _by_rank(query, terms)
    return query.order_by(_newest(text))


def _by_rank(query: peewee.ModelSelect, terms: list[str]) -> peewee.ModelSelect:
    """The ``RELEVANCE_WINDOW`` newest matches, best first: ts_rank over weights A/B, or bm25 over (title, description).

    Ranking every match of a common word reads every matching row (a third
    of the table for "street"); the window bounds a search's cost at any
    size.  It is an id range, which FTS5 walks without visiting older rows.
    """
    window = _newest_ids(query, _newest(" ".join(terms)), RELEVANCE_WINDOW).alias("window")
    oldest = peewee.Select([window], [peewee.fn.MIN(window.c.id)])
    if _is_postgres():
        weights = peewee.SQL(f"'{_TS_WEIGHTS}'")
        rank = peewee.fn.ts_rank(weights, _document, _tsquery(tsquery_text(terms)))
        return query.where(Petition.id >= oldest).order_by(rank.desc(), Petition.id.desc())
    # An id range FTS5 walks directly; bm25 (the table's rank) is computed for the window only.
    return query.where(_fts.rowid >= oldest).order_by(_fts.rank, Petition.id.desc())


def publicly_listed() -> peewee.Expression:
    """The petitions anyone may be shown as similar: public ones (``visibility``) not rejected (yet)."""
    return visibility.public_petitions() & (Petition.status != "rejected")


def similar_ids(query: peewee.ModelSelect, title: str) -> list[int]:
    """The ids of up to ``SIMILAR_LIMIT`` listed petitions of ``query`` whose titles look like ``title``.

    Each word of ``title`` brings the ``SIMILAR_CANDIDATES`` newest titles
    that have it (the full-text index finds them; a common word costs no
    more than a rare one), and the candidates are ranked by the share of
    words their title and ``title`` have in common, then newest first.
    """
    terms = [term for term in words(title) if len(term) > 1 and term not in _NOT_ALIKE][:SIMILAR_WORDS]
    if not terms:
        return []
    query = query.where(publicly_listed())
    last = len(terms) - 1
    per_word = [
        _newest_ids(
            _matching(query, [term], titles_only=True, prefix=n == last), _newest(term), SIMILAR_CANDIDATES
        ).alias(f"w{n}")
        for n, term in enumerate(terms)
    ]
    ids = functools.reduce(operator.or_, (peewee.Select([part], [part.c.id]) for part in per_word))
    rows = query.where(Petition.id.in_(ids)).select(Petition.id, Petition.title).tuples()
    wanted, prefix = set(terms[:-1]), terms[-1]
    scored = []
    for petition_id, candidate in rows:
        theirs = set(words(candidate)) - _NOT_ALIKE
        # The last word as typed so far: the first of their words it begins, if any.
        completed = next((word for word in sorted(theirs) if word.startswith(prefix)), prefix)
        ours = wanted | {completed}
        scored.append((-len(ours & theirs) / len(ours | theirs), -petition_id))
    scored.sort()
    return [-petition_id for _, petition_id in scored[:SIMILAR_LIMIT]]


# -- the index itself ---------------------------------------------------------------

_SQLITE_SCHEMA = (
    "CREATE VIRTUAL TABLE petition_search USING fts5(title, description, content='petition',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    f"INSERT INTO petition_search(petition_search, rank) VALUES ('rank', '{_BM25_RANK}')",
    "CREATE TRIGGER petition_search_insert AFTER INSERT ON petition BEGIN"
    " INSERT INTO petition_search(rowid, title, description) VALUES (new.id, new.title, new.description);"
    " END",
    "CREATE TRIGGER petition_search_delete AFTER DELETE ON petition BEGIN"
    " INSERT INTO petition_search(petition_search, rowid, title, description)"
    " VALUES ('delete', old.id, old.title, old.description);"
    " END",
    "CREATE TRIGGER petition_search_update AFTER UPDATE OF title, description ON petition BEGIN"
    " INSERT INTO petition_search(petition_search, rowid, title, description)"
    " VALUES ('delete', old.id, old.title, old.description);"
    " INSERT INTO petition_search(rowid, title, description) VALUES (new.id, new.title, new.description);"
    " END",
    # Fills the index from the petitions already there.
    "INSERT INTO petition_search(petition_search) VALUES ('rebuild')",
)
_PG_DOCUMENT = (
    f"setweight(to_tsvector('{_TS_CONFIG}'::regconfig, coalesce({{row}}title, '')), 'A')"
    f" || setweight(to_tsvector('{_TS_CONFIG}'::regconfig, coalesce({{row}}description, '')), 'B')"
)
_PG_SCHEMA = (
    "ALTER TABLE petition ADD COLUMN search_document tsvector",
    # The planner weighs an index scan against walking newest first by each word's frequency; the
    # default target keeps ~1,000 most common lexemes, so every rarer word looked common. 1000: ~10,000.
    "ALTER TABLE petition ALTER COLUMN search_document SET STATISTICS 1000",
    "CREATE OR REPLACE FUNCTION petition_search_document() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN NEW.search_document := {_PG_DOCUMENT.format(row='NEW.')}; RETURN NEW; END $$",
    "CREATE TRIGGER petition_search_document BEFORE INSERT OR UPDATE OF title, description ON petition"
    " FOR EACH ROW EXECUTE FUNCTION petition_search_document()",
    # Fills the column for the petitions already there.
    f"UPDATE petition SET search_document = {_PG_DOCUMENT.format(row='')}",
    "CREATE INDEX IF NOT EXISTS petition_search_document ON petition USING GIN (search_document)",
    f"CREATE INDEX IF NOT EXISTS petition_search_title ON petition USING GIN (to_tsvector('{_TS_CONFIG}'::regconfig, title))",
    "ALTER INDEX petition_search_title ALTER COLUMN 1 SET STATISTICS 1000",
    "ANALYZE petition",
)
# The orders other than newest: most signatures, and signatures of the last hours per petition.
_ORDER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS petition_popular ON petition (signature_count, id)",
    "CREATE INDEX IF NOT EXISTS signature_recent ON signature (created_at, petition_id)",
)


def install(db: peewee.Database) -> None:
    """Create the search index and its triggers if this database lacks them, filled from its petitions.

    Runs at start-up inside the schema transaction, so a database made by
    an older version gets a full index before the first request.
    """
    if isinstance(db, peewee.PostgresqlDatabase):
        present = db.execute_sql(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'petition'"
            " AND column_name = 'search_document'"
        ).fetchone()
        schema = _PG_SCHEMA
    else:
        present = db.execute_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'petition_search'"
        ).fetchone()
        schema = _SQLITE_SCHEMA
    if not present:
        for statement in schema:
            db.execute_sql(statement)
    for statement in _ORDER_INDEXES:
        db.execute_sql(statement)
