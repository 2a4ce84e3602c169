"""The statements every request runs, written out once as SQL instead of built by Peewee each time.

Peewee compiles a query's SQL anew on every execution; on the create path
that compiling was most of the request's CPU time (docs/performance.md).
The few statements on the hot path (token lookup, next seq, petition and
event inserts, one petition by id) live here as text with ``?``
placeholders and run on whichever database the models are bound to
(``%s`` placeholders for PostgreSQL).  Everything else stays Peewee.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from . import petition_row
from .models import database_proxy

IDENTIFY = (
    'SELECT u."id", u."email", u."name", u."role", t."expires_at", t."revoked_at", u."email_verified"'
    ' FROM "auth_token" AS t JOIN "user" AS u ON u."id" = t."user_id" WHERE t."token_hash" = ?'
)
NEXT_SEQ = 'UPDATE "event_counter" SET "value" = "value" + 1 WHERE "id" = 1 RETURNING "value"'
INSERT_PETITION = petition_row.INSERT_SQL
INSERT_EVENT = (
    'INSERT INTO "petition_event" ("seq", "petition_id", "author_id", "kind", "actor_id", "from_status",'
    ' "to_status", "note", "milestone", "petition_json", "created_at", "public")'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
NEWEST_SEQ = 'SELECT "value" FROM "event_counter" WHERE "id" = 1'
# A signature batch: one statement per request, so each learns its own outcome.
# An account's signature is validated at once ...
INSERT_SIGNATURE = (
    'INSERT INTO "signature" ("petition_id", "user_id", "state", "name", "email", "email_domain", "address",'
    ' "country", "postcode", "region", "created_at", "validated_at")'
    " VALUES (?, ?, 'validated', ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING \"id\""
)
# ... one without an account waits for its link.
INSERT_PENDING_SIGNATURE = (
    'INSERT INTO "signature" ("petition_id", "state", "name", "email", "email_domain", "address",'
    ' "country", "postcode", "region", "token_hash", "token_expires_at", "created_at")'
    " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING \"id\""
)
# ... and one the fraud screen caught is kept, never counted, never mailed (``user_id`` NULL without an account).
INSERT_FRAUDULENT_SIGNATURE = (
    'INSERT INTO "signature" ("petition_id", "user_id", "state", "name", "email", "email_domain", "address",'
    ' "country", "postcode", "region", "created_at")'
    " VALUES (?, ?, 'fraudulent', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING \"id\""
)
SIGNATURE_OF_PERSON = (
    'SELECT "id", "state", "user_id" FROM "signature" WHERE "petition_id" = ? AND "email" = ?'
)
RENEW_LINK = 'UPDATE "signature" SET "token_hash" = ?, "token_expires_at" = ? WHERE "id" = ?'
DELETE_SIGNATURE = (
    'DELETE FROM "signature" WHERE "petition_id" = ? AND "user_id" = ? RETURNING "state", "country", "region"'
)
# ... and one per petition the batch changed, however many signatures it holds.
FOLD_COUNT = (
    'UPDATE "petition" SET "signature_count" = "signature_count" + ?, "count_version" = "count_version" + 1,'
    ' "count_seq" = ?, "count_changed_at" = ? WHERE "id" = ?'
    ' RETURNING "signature_count", "count_version", "author_id", "milestones", "country_counts", "region_counts"'
)
# A second one only when the batch signed from somewhere (the row is already locked by FOLD_COUNT).
FOLD_PLACES = 'UPDATE "petition" SET "country_counts" = ?, "region_counts" = ? WHERE "id" = ?'
# The columns and their order come from petition_row, as for the list queries.
PETITION_BY_ID = petition_row.SELECT_SQL + ' WHERE "petition"."id" = ?'


@functools.lru_cache(maxsize=64)
def _in_style(param: str, text: str) -> str:
    return text if param == "?" else text.replace("?", param)


def execute(text: str, params: tuple = ()) -> Any:
    """Run one statement above on the bound database; returns the DB-API cursor."""
    db = database_proxy.obj
    return db.execute_sql(_in_style(db.param, text), params)


def timestamp(value: Any) -> datetime.datetime | None:
    """A DATETIME column as read back: SQLite gives the text it stored, PostgreSQL a datetime."""
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value
