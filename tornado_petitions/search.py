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
import re

import peewee

from .models import Petition, Signature, database_proxy, utcnow

SORTS = ("newest", "relevance", "popular", "trending")
# ``trending`` counts the signatures of this many last hours.
TRENDING_HOURS = 24
# How many petitions ``similar`` returns at most.
SIMILAR_LIMIT = 5
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


def words(text: str) -> list[str]:
    """The words of what a user typed: runs of letters and digits, lower-cased; all else is a separator."""
    return _WORD.findall(text.lower())[:MAX_WORDS]


def fts5_query(terms: list[str], operator: str = " ", column: str | None = None) -> str:
    """An FTS5 query of ``terms``, each quoted (no operator survives), the last one a prefix.

    ``operator`` " " means every word (in any order), " OR " any of them.
    """
    quoted = [f'"{term}"' for term in terms]
    quoted[-1] += "*"
    query = operator.join(quoted)
    return f"{column} : ({query})" if column else query


def tsquery_text(terms: list[str], operator: str = " & ", weight: str = "") -> str:
    """A ``to_tsquery`` string of ``terms``, each quoted, the last one a prefix; ``weight`` "A": titles only."""
    quoted = [f"'{term}'" + (f":{weight}" if weight else "") for term in terms]
    quoted[-1] = f"'{terms[-1]}':*{weight}"
    return operator.join(quoted)


def _is_postgres() -> bool:
    return isinstance(database_proxy.obj, peewee.PostgresqlDatabase)


def _tsquery(text: str) -> peewee.Node:
    return peewee.fn.to_tsquery(peewee.SQL(f"'{_TS_CONFIG}'::regconfig"), text)


def _matching_ids(match: str) -> peewee.Node:
    return _fts.select(_fts.rowid).where(peewee.Expression(_fts.petition_search, "MATCH", match))


def filter_text(query: peewee.ModelSelect, text: str) -> peewee.ModelSelect:
    """``query`` narrowed to petitions whose title or description has every word of ``text``.

    A text without a single word (only punctuation, say) matches nothing.
    """
    terms = words(text)
    if not terms:
        return query.where(peewee.SQL("1 = 0"))
    if _is_postgres():
        return query.where(peewee.Expression(_document, "@@", _tsquery(tsquery_text(terms))))
    return query.where(Petition.id.in_(_matching_ids(fts5_query(terms))))


def order(query: peewee.ModelSelect, sort: str, text: str | None) -> peewee.ModelSelect:
    """``query`` (already filtered by ``filter_text`` when there is a text) in the order ``sort`` names.

    ``relevance`` needs a text; every order ends with the newest first, so
    pages are stable.
    """
    newest = Petition.id.desc()
    if sort == "popular":
        return query.order_by(Petition.signature_count.desc(), newest)
    if sort == "trending":
        since = utcnow() - datetime.timedelta(hours=TRENDING_HOURS)
        recent = peewee.fn.COUNT(Signature.id)
        counts = (
            Signature.select(Signature.petition.alias("petition_id"), recent.alias("recent"))
            .where(Signature.created_at >= since)
            .group_by(Signature.petition)
            .alias("trend")
        )
        joined = query.join(counts, on=(counts.c.petition_id == Petition.id))
        return joined.order_by(counts.c.recent.desc(), newest)
    if sort == "relevance" and text and words(text):
        return _by_rank(query, words(text))
    return query.order_by(newest)


def _by_rank(query: peewee.ModelSelect, terms: list[str]) -> peewee.ModelSelect:
    if _is_postgres():
        rank = peewee.fn.ts_rank(peewee.SQL(f"'{_TS_WEIGHTS}'"), _document, _tsquery(tsquery_text(terms)))
        return query.order_by(rank.desc(), Petition.id.desc())
    ranked = (
        _fts.select(_fts.rowid, _fts.rank)
        .where(peewee.Expression(_fts.petition_search, "MATCH", fts5_query(terms)))
        .alias("ranked")
    )
    joined = query.join(ranked, on=(ranked.c.rowid == Petition.id))
    return joined.order_by(ranked.c.rank, Petition.id.desc())


def publicly_listed() -> peewee.Expression:
    """The petitions anyone may be shown as similar: every one not rejected (yet)."""
    return Petition.status != "rejected"


def similar(query: peewee.ModelSelect, title: str) -> peewee.ModelSelect | None:
    """``query`` narrowed to listed petitions whose titles share a word with ``title``, most alike first.

    None when ``title`` has no word that could tell petitions apart.
    """
    terms = [term for term in words(title) if len(term) > 1 and term not in _NOT_ALIKE]
    if not terms:
        return None
    query = query.where(publicly_listed())
    if _is_postgres():
        match = _tsquery(tsquery_text(terms, " | ", weight="A"))
        rank = peewee.fn.ts_rank(_document, match)
        query = query.where(peewee.Expression(_document, "@@", match)).order_by(
            rank.desc(), Petition.id.desc()
        )
    else:
        match_titles = fts5_query(terms, " OR ", column="title")
        ranked = (
            _fts.select(_fts.rowid, _fts.rank)
            .where(peewee.Expression(_fts.petition_search, "MATCH", match_titles))
            .alias("ranked")
        )
        query = query.join(ranked, on=(ranked.c.rowid == Petition.id))
        query = query.order_by(ranked.c.rank, Petition.id.desc())
    return query.limit(SIMILAR_LIMIT)


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
    "CREATE OR REPLACE FUNCTION petition_search_document() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN NEW.search_document := {_PG_DOCUMENT.format(row='NEW.')}; RETURN NEW; END $$",
    "CREATE TRIGGER petition_search_document BEFORE INSERT OR UPDATE OF title, description ON petition"
    " FOR EACH ROW EXECUTE FUNCTION petition_search_document()",
    # Fills the column for the petitions already there.
    f"UPDATE petition SET search_document = {_PG_DOCUMENT.format(row='')}",
    "CREATE INDEX petition_search_document ON petition USING GIN (search_document)",
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
