"""A signature's states, as named constants, and one function per transition between them.

``pending`` waits for its emailed link; ``validated`` counts; ``fraudulent``
is kept and never counted; ``invalidated`` was counted and was taken back
by the office.  Only these functions change a signature's state, each from
the states it may leave, so a transition run twice changes nothing the
second time (a confirmation link followed twice counts once).  They run
inside the caller's transaction and return what the caller must fold into
the counts.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from . import statements

PENDING = "pending"
VALIDATED = "validated"
FRAUDULENT = "fraudulent"
INVALIDATED = "invalidated"
STATES = (PENDING, VALIDATED, FRAUDULENT, INVALIDATED)
# The one state a petition's count, its by-country and by-region counts and its timeline count.
COUNTED = VALIDATED

_VALIDATE = (
    'UPDATE "signature" SET "state" = ?, "validated_at" = ?'
    ' WHERE "token_hash" = ? AND "state" = ? AND "token_expires_at" > ?'
    ' RETURNING "petition_id", "country", "region"'
)
_FRAUDULENT = 'UPDATE "signature" SET "state" = ? WHERE "id" = ? AND "state" = ?'
_INVALIDATE = 'UPDATE "signature" SET "state" = ? WHERE "id" = ? AND "state" = ? RETURNING "petition_id", "country", "region"'


def validate(token_hash: str, now: datetime.datetime) -> tuple[int, str | None, str | None] | None:
    """pending -> validated, by the hash of a link's token that has not expired.

    Returns ``(petition_id, country, region)`` to count, or None when no
    pending signature has this live token (unknown, expired, or validated already).
    """
    row = statements.execute(_VALIDATE, (VALIDATED, now, token_hash, PENDING, now)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def mark_fraudulent(signature_id: int) -> bool:
    """pending -> fraudulent: kept, never counted, never mailed. False if it was not pending."""
    return statements.execute(_FRAUDULENT, (FRAUDULENT, signature_id, PENDING)).rowcount > 0


def invalidate_batch(signature_ids: Sequence[int]) -> tuple[list[tuple[int, str | None, str | None]], int]:
    """pending or validated -> invalidated for many signatures in two statements.

    Returns ``(petition_id, country, region)`` of each validated one changed
    (the caller folds ``-1`` into its counts) and how many pending ones were
    changed.  Ids no longer in either state are left alone, so a batch run
    twice changes nothing the second time.
    """
    if not signature_ids:
        return [], 0
    marks = ", ".join("?" * len(signature_ids))
    update = f'UPDATE "signature" SET "state" = ? WHERE "id" IN ({marks}) AND "state" = ?'
    counted = statements.execute(
        update + ' RETURNING "petition_id", "country", "region"', (INVALIDATED, *signature_ids, VALIDATED)
    ).fetchall()
    pending = statements.execute(update, (INVALIDATED, *signature_ids, PENDING)).rowcount
    return [(row[0], row[1], row[2]) for row in counted], pending


def invalidate(signature_ids: Sequence[int]) -> list[tuple[int, str | None, str | None, bool]]:
    """pending or validated -> invalidated; per signature changed ``(petition_id, country, region, was_counted)``.

    The caller folds ``-1`` into the counts of each one that was counted.
    """
    changed = []
    for signature_id in signature_ids:
        for state in (VALIDATED, PENDING):
            row = statements.execute(_INVALIDATE, (INVALIDATED, signature_id, state)).fetchone()
            if row is not None:
                changed.append((row[0], row[1], row[2], state == COUNTED))
                break
    return changed
