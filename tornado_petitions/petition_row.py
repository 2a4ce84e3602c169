"""The columns a petition is read from and written with, declared once, and the rows that name them.

A petition is read two ways: by Peewee-built list queries and by the
one-by-id statement kept as SQL text on the hot path (``statements``).  Both
select ``COLUMNS`` in this order, and every row is read by name through
``PetitionRow``, so a column added here reaches all of them and cannot
shift another.  A new petition is written the same way, through
``NewPetitionRow`` and ``INSERT_SQL``.
"""

from __future__ import annotations

import collections

import peewee

from .models import Petition, User

# The name a row is read by, and the column it comes from.
COLUMNS: tuple[tuple[str, peewee.Field], ...] = (
    ("id", Petition.id),
    ("title", Petition.title),
    ("description", Petition.description),
    ("category", Petition.category),
    ("location", Petition.location),
    ("author_id", Petition.author),
    ("author_name", User.name),
    ("status", Petition.status),
    ("signature_count", Petition.signature_count),
    ("version", Petition.version),
    ("response", Petition.response),
    ("submitted_at", Petition.submitted_at),
    ("updated_at", Petition.updated_at),
    ("closes_at", Petition.closes_at),
    ("milestones", Petition.milestones),
    ("awaiting_response", Petition.awaiting_response),
    ("rejection_reason", Petition.rejection_reason),
    ("country_counts", Petition.country_counts),
    ("region_counts", Petition.region_counts),
    ("published", Petition.published),
)

# A namedtuple: a fetched row becomes one with a single tuple copy, and
# ``_make`` raises on a wrong column count instead of shifting names.
PetitionRow = collections.namedtuple("PetitionRow", [name for name, _ in COLUMNS])
PetitionRow.__doc__ = "One petition row as selected by ``COLUMNS``, read by name."


def select() -> peewee.ModelSelect:
    """Every petition column and its author's name; callers add ``where``, ``order_by`` and ``limit``."""
    return Petition.select(*(column for _, column in COLUMNS)).join(User, on=(Petition.author == User.id))


# ``select()`` written out as SQL text, for ``statements``.
SELECT_SQL = (
    "SELECT "
    + ", ".join(f'"{column.model._meta.table_name}"."{column.column_name}"' for _, column in COLUMNS)
    + ' FROM "petition" JOIN "user" ON "user"."id" = "petition"."author_id"'
)


# The columns a new petition is written with; the others take their defaults.
NewPetitionRow = collections.namedtuple(
    "NewPetitionRow",
    [
        "title",
        "description",
        "category",
        "location",
        "author_id",
        "status",
        "signature_count",
        "version",
        "submitted_at",
        "updated_at",
        "closes_at",
        "milestones",
        "awaiting_response",
        "published",
    ],
)
NewPetitionRow.__doc__ = "The values of a new petition, by column name, in ``INSERT_SQL``'s order."

INSERT_SQL = (
    'INSERT INTO "petition" ("'
    + '", "'.join(NewPetitionRow._fields)
    + '") VALUES ('
    + ", ".join("?" * len(NewPetitionRow._fields))
    + ') RETURNING "id"'
)
