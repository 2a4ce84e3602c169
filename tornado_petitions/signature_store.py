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
import logging
from collections.abc import Sequence

import peewee

from . import event_log, mail_outbox, petition_store, statements, wire
from .accounts import Identity
from .counts import CountChange
from .errors import ApiError
from .events import Event
from .lifecycle import SIGNING_STATUSES, accepts_signatures, milestones_crossed
from .models import Petition, database_proxy, iso, utcnow

log = logging.getLogger("tornado_petitions.signatures")

# A resume also resends the counts changed this recently, whatever their
# count_seq: a batch committed in one process can reach another process's
# sockets after a lifecycle event committed later (docs/architecture.md, "Signatures").
RESUME_MARGIN = datetime.timedelta(seconds=30)

BUCKETS = ("minute", "hour", "day")


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureRequest:
    """One signature to add (``signing``) or withdraw, as a handler asked for it."""

    actor: Identity
    petition_id: int
    signing: bool


@dataclasses.dataclass(frozen=True)
class Milestones:
    """The thresholds a count may cross (``--response-threshold``, ``--debate-threshold``), and whether to mail."""

    response_threshold: int = 10_000
    debate_threshold: int = 100_000
    mail: bool = False


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


def apply_batch(requests: Sequence[SignatureRequest], milestones: Milestones = Milestones()) -> BatchOutcome:
    """Write a batch of signatures and withdrawals in one transaction; each request gets its own outcome.

    A request for a petition that does not exist gets 404, one that takes no
    signatures (closed, rejected, resolved) 409 ``not_open``, a second
    signature 409 ``already_signed``, a withdrawal of none 409
    ``not_signed``; the others commit together.  Raises only when the
    transaction itself fails (then nothing of the batch is written).
    A count that reached a threshold then records its milestone
    (``record_milestones``).
    """
    outcomes: list[dict | ApiError | int] = []
    deltas: dict[int, int] = {}
    signers: dict[int, Identity] = {}  # the last signer of each petition: a milestone's actor
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
                    signers[pid] = request.actor
                    outcomes.append(pid)
            else:
                row = statements.execute(statements.DELETE_SIGNATURE, (pid, request.actor.user_id))
                if row.fetchone() is None:
                    outcomes.append(ApiError(409, "not_signed", "you have not signed this petition"))
                else:
                    deltas[pid] = deltas.get(pid, 0) - 1
                    outcomes.append(pid)
        counts: list[CountChange] = []
        due: list[int] = []  # petitions whose count reached a threshold they have no milestone for
        if deltas:
            newest_seq = statements.execute(statements.NEWEST_SEQ).fetchone()[0]
            for pid, delta in sorted(deltas.items()):
                if delta == 0:
                    continue
                fold = (delta, newest_seq, now, pid)
                count, version, author_id, reached = statements.execute(
                    statements.FOLD_COUNT, fold
                ).fetchone()
                counts.append(CountChange(pid, author_id, count, version))
                if delta > 0 and _milestones_due(count, reached, milestones):
                    due.append(pid)
        petitions = {pid: petition_store.get_petition(pid) for pid in deltas}
    events = []
    for pid in due:
        try:
            events += record_milestones(pid, signers[pid], milestones)
        except Exception:
            # The signatures are committed whatever happens here; the next batch on this petition tries again.
            log.exception("could not record the milestones of petition %d", pid)
    results = [petitions[item] if isinstance(item, int) else item for item in outcomes]
    return BatchOutcome(results=results, counts=counts, events=events)


def _milestones_due(count: int, reached_json: str, milestones: Milestones) -> list[str]:
    if count < min(milestones.response_threshold, milestones.debate_threshold):
        return []  # the usual case on the hot path: no JSON to read
    reached = {entry["milestone"] for entry in wire.loads(reached_json)}
    return milestones_crossed(count, reached, milestones.response_threshold, milestones.debate_threshold)


class _NothingToRecord(Exception):
    """Another batch (perhaps in another process) recorded the milestone first: roll back our seq."""


def record_milestones(petition_id: int, actor: Identity, milestones: Milestones) -> list[Event]:
    """Write the ``milestone`` event of each threshold the petition's count has reached for the first time.

    Its own transaction, taking the seq counter first and then the
    petition's row, in the order every lifecycle change takes them (a
    batch holds the row first, so doing this inside it could deadlock with
    a status change).  Under the row lock the milestones are read again, so
    each is written exactly once however many batches and processes saw the
    count cross.  Sets ``awaiting_response`` on the response milestone;
    queues the signers' mail when mail is on.
    """
    try:
        with Petition._meta.database.atomic():
            seq = event_log.take_seq()
            query = Petition.select(Petition.signature_count, Petition.milestones).where(
                Petition.id == petition_id
            )
            if database_proxy.obj.for_update:  # SQLite: the counter update already holds the only write lock
                query = query.for_update()
            row = query.tuples().first()
            crossed = _milestones_due(row[0], row[1], milestones)
            if not crossed:
                raise _NothingToRecord()
            reached = wire.loads(row[1])
            events = []
            for index, name in enumerate(crossed):
                if index:
                    seq = event_log.take_seq()
                reached.append({"milestone": name, "at": iso(utcnow())})
                changes = {Petition.milestones: wire.dumps(reached)}
                if name == "response":
                    changes[Petition.awaiting_response] = True
                Petition.update(changes).where(Petition.id == petition_id).execute()
                petition = petition_store.get_petition(petition_id)
                events.append(event_log.record_event(seq, "milestone", petition, actor, milestone=name))
                if milestones.mail:
                    mail_outbox.queue_milestone_mail(petition_id, name)
    except _NothingToRecord:
        return []
    return events


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
