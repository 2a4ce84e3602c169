"""Signatures: written in batches, counted per petition once a batch, read back as counts and timelines.

A signature is state, not an event: it is a row of ``signature``, and what
it changes is the petition's count.  ``apply_batch`` writes every request
of a batch in one transaction (group commit) with one statement per
request, so each still learns its own outcome (201, or 409 for a
duplicate), and then one ``FOLD_COUNT`` per petition the batch touched, so
no row is written once per signature.  Like ``petition_store``, every
function is synchronous and runs inside the caller's choice of thread.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

import peewee

from . import petition_store, statements
from .accounts import Identity
from .counts import CountChange
from .errors import ApiError
from .events import Event
from .lifecycle import SIGNING_STATUSES, accepts_signatures
from .models import Petition, database_proxy, iso, utcnow

# A resume also resends the counts changed this recently, whatever their
# count_seq: a batch committed in one process can reach another process's
# sockets after a lifecycle event committed later (README "Counts").
RESUME_MARGIN = datetime.timedelta(seconds=30)

BUCKETS = ("minute", "hour", "day")


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureRequest:
    """One signature to add (``signing``) or withdraw, as a handler asked for it."""

    actor: Identity
    petition_id: int
    signing: bool


@dataclasses.dataclass
class BatchOutcome:
    """What one committed batch did: per request the petition after it (or the error), and what to publish."""

    results: list[dict | ApiError]
    counts: list[CountChange]
    events: list[Event]


def _petition_states(petition_ids: set[int]) -> dict[int, tuple[str, datetime.datetime | None]]:
    """The status and closing time of each existing petition among ``petition_ids``."""
    query = Petition.select(Petition.id, Petition.status, Petition.closes_at).where(
        Petition.id.in_(sorted(petition_ids))
    )
    return {pid: (status, closes_at) for pid, status, closes_at in query.tuples()}


def _not_open(petition_id: int, status: str) -> ApiError:
    state = "closed" if status in SIGNING_STATUSES else status
    return ApiError(409, "not_open", f"petition {petition_id} is {state}: it takes no signatures")


def apply_batch(requests: Sequence[SignatureRequest]) -> BatchOutcome:
    """Write a batch of signatures and withdrawals in one transaction; each request gets its own outcome.

    A request for a petition that does not exist gets 404, one that takes no
    signatures (closed, rejected, resolved) 409 ``not_open``, a second
    signature 409 ``already_signed``, a withdrawal of none 409
    ``not_signed``; the others commit together.  Raises only when the
    transaction itself fails (then nothing of the batch is written).
    """
    outcomes: list[dict | ApiError | int] = []
    deltas: dict[int, int] = {}
    with Petition._meta.database.atomic():
        now = utcnow()
        states = _petition_states({request.petition_id for request in requests})
        for request in requests:
            pid = request.petition_id
            if pid not in states:
                outcomes.append(ApiError(404, "not_found", f"petition {pid} does not exist"))
            elif not accepts_signatures(*states[pid], now):
                outcomes.append(_not_open(pid, states[pid][0]))
            elif request.signing:
                row = statements.execute(statements.INSERT_SIGNATURE, (pid, request.actor.user_id, now))
                if row.fetchone() is None:
                    outcomes.append(ApiError(409, "already_signed", "you have already signed this petition"))
                else:
                    deltas[pid] = deltas.get(pid, 0) + 1
                    outcomes.append(pid)
            else:
                row = statements.execute(statements.DELETE_SIGNATURE, (pid, request.actor.user_id))
                if row.fetchone() is None:
                    outcomes.append(ApiError(409, "not_signed", "you have not signed this petition"))
                else:
                    deltas[pid] = deltas.get(pid, 0) - 1
                    outcomes.append(pid)
        counts: list[CountChange] = []
        if deltas:
            newest_seq = statements.execute(statements.NEWEST_SEQ).fetchone()[0]
            for pid, delta in sorted(deltas.items()):
                if delta == 0:
                    continue
                fold = (delta, newest_seq, now, pid)
                count, version, author_id = statements.execute(statements.FOLD_COUNT, fold).fetchone()
                counts.append(CountChange(pid, author_id, count, version))
        petitions = {pid: petition_store.get_petition(pid) for pid in deltas}
    results = [petitions[item] if isinstance(item, int) else item for item in outcomes]
    return BatchOutcome(results=results, counts=counts, events=[])


def counts_changed_since(seq: int) -> list[CountChange]:
    """The count of every petition whose count changed after lifecycle seq ``seq`` (or very recently).

    One index range over ``count_seq`` (and ``count_changed_at``): a resume
    after a million signatures costs one row per petition that changed, not
    a row per signature.
    """
    recent = utcnow() - RESUME_MARGIN
    query = Petition.select(
        Petition.id, Petition.author, Petition.signature_count, Petition.count_version
    ).where(
        (Petition.count_seq >= seq) & (Petition.count_version > 0) | (Petition.count_changed_at >= recent)
    )
    return [CountChange(*row) for row in query.tuples()]


def _bucket_sql(db: peewee.Database, bucket: str) -> str:
    if isinstance(db, peewee.PostgresqlDatabase):
        return f"date_trunc('{bucket}', \"created_at\")"
    pattern = {"minute": "%Y-%m-%d %H:%M:00", "hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}
    return f"strftime('{pattern[bucket]}', \"created_at\")"


def timeline(petition_id: int, bucket: str) -> list[dict]:
    """The signature count at the end of each ``bucket`` that saw a signature, oldest first.

    Counted from the signatures held now (a withdrawn one is gone from
    every bucket), so the last point is the petition's count.  404 if the
    petition does not exist.
    """
    petition_store.get_petition(petition_id)
    start = _bucket_sql(database_proxy.obj, bucket)
    sql = (
        f'SELECT {start} AS "at", COUNT(*) FROM "signature" WHERE "petition_id" = ?'
        ' GROUP BY "at" ORDER BY "at"'
    )
    total = 0
    points = []
    for at, count in statements.execute(sql, (petition_id,)).fetchall():
        total += count
        points.append({"at": iso(statements.timestamp(at)), "total": total})
    return points
