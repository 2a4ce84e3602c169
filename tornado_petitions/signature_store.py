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

from . import event_log, mail_outbox, petition_store, signature_states, statements, visibility, wire
from .accounts import Identity
from .counts import CountChange
from .errors import ApiError
from .events import Event
from .lifecycle import SIGNING_STATUSES, accepts_signatures, milestones_crossed
from .models import Petition, Signature, database_proxy, iso, utcnow
from .signers import canonical_email, email_domain

log = logging.getLogger("tornado_petitions.signatures")

# A resume also resends the counts changed this recently, whatever their
# count_seq: a batch committed in one process can reach another process's
# sockets after a lifecycle event committed later (docs/architecture.md, "Signatures").
RESUME_MARGIN = datetime.timedelta(seconds=30)

BUCKETS = ("minute", "hour", "day")


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureRequest:
    """One signature to add (``signing``) or withdraw, as a handler asked for it.

    ``actor`` is the account signing, or None for a signer without one, who
    then gives ``name`` and ``email`` and is mailed a link: the outbox row's
    ``change_key`` and the link's ``token_hash`` (``signers.new_confirmation``),
    good until ``link_expires_at``.
    """

    actor: Identity | None
    petition_id: int
    signing: bool
    address: str | None = None
    country: str | None = None
    postcode: str | None = None
    region: str | None = None
    name: str | None = None
    email: str | None = None
    change_key: str | None = None
    token_hash: str | None = None
    link_expires_at: datetime.datetime | None = None
    # The fraud screen caught it: stored fraudulent, answered as a good one, never counted or mailed.
    fraudulent: bool = False


# The answer to a signature without an account, whatever happened to it: the mail says which.
PENDING_ANSWER = {
    "state": signature_states.PENDING,
    "message": "Check your email: your signature counts once you follow the link we sent you.",
}


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


class CountFolds:
    """What one transaction changes in the counts: per petition the count's delta and its places' deltas."""

    def __init__(self) -> None:
        self.deltas: dict[int, int] = {}
        self.countries: dict[int, dict[str, int]] = {}
        self.regions: dict[int, dict[str, int]] = {}

    def add(self, petition_id: int, delta: int, country: str | None, region: str | None) -> None:
        self.deltas[petition_id] = self.deltas.get(petition_id, 0) + delta
        for key, places in ((country, self.countries), (region, self.regions)):
            if key is not None:
                counts = places.setdefault(petition_id, {})
                counts[key] = counts.get(key, 0) + delta

    def apply(self, now: datetime.datetime, milestones: Milestones) -> tuple[list[CountChange], list[int]]:
        """One ``FOLD_COUNT`` per petition that changed (and a ``FOLD_PLACES`` when it was signed from somewhere).

        Returns the count changes to publish and the petitions whose count
        reached a threshold they have no milestone for.
        """
        counts: list[CountChange] = []
        due: list[int] = []
        if not self.deltas:
            return counts, due
        newest_seq = statements.execute(statements.NEWEST_SEQ).fetchone()[0]
        for pid, delta in sorted(self.deltas.items()):
            countries, regions = self.countries.get(pid), self.regions.get(pid)
            if delta == 0 and not countries and not regions:
                continue
            row = statements.execute(statements.FOLD_COUNT, (delta, newest_seq, now, pid)).fetchone()
            count, version, author_id, reached, country_json, region_json = row
            if countries or regions:
                folded = (_folded(country_json, countries), _folded(region_json, regions), pid)
                statements.execute(statements.FOLD_PLACES, folded)
            counts.append(CountChange(pid, author_id, count, version))
            if delta > 0 and _milestones_due(count, reached, milestones):
                due.append(pid)
        return counts, due


def _folded(stored: str | None, deltas: dict[str, int] | None) -> str:
    """A places JSON map with ``deltas`` added; places that fall to zero are dropped."""
    counts = wire.loads(stored) if stored else {}
    for key, delta in (deltas or {}).items():
        counts[key] = counts.get(key, 0) + delta
    return wire.dumps({key: value for key, value in sorted(counts.items()) if value})


def _petition_states(petition_ids: set[int]) -> dict[int, tuple[str, datetime.datetime | None]]:
    """The status and closing time of each existing public petition among ``petition_ids``.

    One that is not public (``visibility``) is left out: signing it is 404, as for one that does not exist.
    """
    query = Petition.select(Petition.id, Petition.status, Petition.closes_at).where(
        Petition.id.in_(sorted(petition_ids)) & visibility.public_petitions()
    )
    return {pid: (status, closes_at) for pid, status, closes_at in query.tuples()}


def _not_open(petition_id: int, status: str) -> ApiError:
    state = "closed" if status in SIGNING_STATUSES else status
    return ApiError(409, "not_open", f"petition {petition_id} is {state}: it takes no signatures")


def _sign_with_account(request: SignatureRequest, now: datetime.datetime) -> bool:
    """Insert an account's validated signature; False when that account or that person already signed."""
    actor = request.actor
    assert actor is not None
    person = (actor.name, canonical_email(actor.email), email_domain(actor.email))
    place = (request.address, request.country, request.postcode, request.region)
    row = (request.petition_id, actor.user_id, *person, *place, now, now)
    return statements.execute(statements.INSERT_SIGNATURE, row).fetchone() is not None


def _sign_fraudulently(request: SignatureRequest, now: datetime.datetime) -> bool:
    """Keep a signature the screen caught as ``fraudulent``; False when that account or person signed already."""
    actor = request.actor
    if actor is not None:
        person = (actor.user_id, actor.name, canonical_email(actor.email), email_domain(actor.email))
    else:
        assert request.email is not None
        person = (None, request.name, canonical_email(request.email), email_domain(request.email))
    place = (request.address, request.country, request.postcode, request.region)
    row = (request.petition_id, *person, *place, now)
    return statements.execute(statements.INSERT_FRAUDULENT_SIGNATURE, row).fetchone() is not None


def _sign_without_account(request: SignatureRequest, now: datetime.datetime) -> None:
    """Insert a pending signature and queue its link; a person who signed already is mailed which.

    A person still pending gets a fresh link (the old one stops working);
    one already counted, or signed from an account, gets a note instead.
    """
    assert request.email is not None and request.name is not None and request.change_key is not None
    person = canonical_email(request.email)
    place = (request.address, request.country, request.postcode, request.region)
    row = (request.petition_id, request.name, person, email_domain(request.email), *place)
    link = (request.token_hash, request.link_expires_at)
    kind = mail_outbox.SIGN_CONFIRM
    if statements.execute(statements.INSERT_PENDING_SIGNATURE, (*row, *link, now)).fetchone() is None:
        found = statements.execute(statements.SIGNATURE_OF_PERSON, (request.petition_id, person)).fetchone()
        if found is not None and found[1] == signature_states.PENDING and found[2] is None:
            statements.execute(statements.RENEW_LINK, (*link, found[0]))
        else:
            kind = mail_outbox.SIGN_AGAIN
    mail_outbox.queue_signer_mail(request.change_key, kind, request.petition_id, request.email, request.name)


def apply_batch(requests: Sequence[SignatureRequest], milestones: Milestones = Milestones()) -> BatchOutcome:
    """Write a batch of signatures and withdrawals in one transaction; each request gets its own outcome.

    A request for a petition that does not exist gets 404, one that takes no
    signatures (closed, rejected, resolved) 409 ``not_open``, a second
    signature of one account or one person 409 ``already_signed``, a
    withdrawal of none 409 ``not_signed``; a signature without an account
    ``PENDING_ANSWER`` (counted once confirmed, ``confirm``); the others
    commit together.  Raises only when the transaction itself fails (then
    nothing of the batch is written).  A count that reached a threshold then
    records its milestone (``record_milestones``).
    """
    outcomes: list[dict | ApiError | int] = []
    folds = CountFolds()
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
            elif request.actor is None:
                if request.fraudulent:
                    _sign_fraudulently(request, now)  # no mail, whatever happened: the answer is the same
                else:
                    _sign_without_account(request, now)
                outcomes.append(PENDING_ANSWER)
            elif request.signing and request.fraudulent:
                if _sign_fraudulently(request, now):
                    outcomes.append(pid)  # the petition as a good signature would see it, its count unmoved
                else:
                    outcomes.append(ApiError(409, "already_signed", "you have already signed this petition"))
            elif request.signing:
                if _sign_with_account(request, now):
                    folds.add(pid, 1, request.country, request.region)
                    signers[pid] = request.actor
                    outcomes.append(pid)
                else:
                    outcomes.append(ApiError(409, "already_signed", "you have already signed this petition"))
            else:
                row = statements.execute(statements.DELETE_SIGNATURE, (pid, request.actor.user_id)).fetchone()
                if row is None:
                    outcomes.append(ApiError(409, "not_signed", "you have not signed this petition"))
                else:
                    if row[0] == signature_states.COUNTED:
                        folds.add(pid, -1, row[1], row[2])
                    outcomes.append(pid)
        counts, due = folds.apply(now, milestones)
        petitions = {pid: petition_store.get_petition(pid) for pid in folds.deltas}
        for item in outcomes:  # a withdrawal of an uncounted signature changed no count
            if isinstance(item, int) and item not in petitions:
                petitions[item] = petition_store.get_petition(item)
    events = []
    for pid in due:
        events += _record_milestones_quietly(pid, signers[pid], milestones)
    results = [petitions[item] if isinstance(item, int) else item for item in outcomes]
    return BatchOutcome(results=results, counts=counts, events=events)


def _record_milestones_quietly(petition_id: int, actor: Identity, milestones: Milestones) -> list[Event]:
    try:
        return record_milestones(petition_id, actor, milestones)
    except Exception:
        # The signatures are committed whatever happens here; the next count change tries again.
        log.exception("could not record the milestones of petition %d", petition_id)
        return []


def link_state(token_hash: str) -> tuple[dict, str] | None:
    """What a confirmation link stands for, changing nothing: its petition and ``pending`` or ``validated``.

    None for an unknown token, one whose signature is still pending past its link's life, or one
    the office has since set aside (fraudulent, invalidated): that link no longer works.
    """
    found = (
        Signature.select(Signature.petition, Signature.state, Signature.token_expires_at)
        .where(Signature.token_hash == token_hash)
        .tuples()
        .first()
    )
    if found is None:
        return None
    petition_id, state, expires_at = found
    if state not in (signature_states.PENDING, signature_states.VALIDATED):
        return None
    if state == signature_states.PENDING and (expires_at is None or expires_at <= utcnow()):
        return None
    return petition_store.get_petition(petition_id), state


def confirm(token_hash: str, milestones: Milestones = Milestones()) -> tuple[dict, BatchOutcome]:
    """Count the pending signature whose link has this token hash: ``{"petition_id", "state": "validated"}``.

    Its own transaction: the state change and the count's fold commit
    together, so a confirmation answered is a count kept.  A link followed
    again answers the same and counts nothing; an unknown or expired one is
    404; a petition that stopped taking signatures meanwhile is 409
    ``not_open`` (and the signature stays pending).
    """
    folds = CountFolds()
    with Petition._meta.database.atomic():
        now = utcnow()
        validated = signature_states.validate(token_hash, now)
        if validated is None:
            row = Signature.select(Signature.petition, Signature.state).where(
                Signature.token_hash == token_hash
            )
            found = row.tuples().first()
            if found is None or found[1] != signature_states.VALIDATED:
                raise ApiError(404, "not_found", "this confirmation link is unknown or has expired")
            return {"petition_id": found[0], "state": signature_states.VALIDATED}, BatchOutcome([], [], [])
        pid, country, region = validated
        state = _petition_states({pid}).get(pid)
        if state is None:  # hidden since it was signed: as for a petition that does not exist
            raise ApiError(404, "not_found", f"petition {pid} does not exist")  # rolls the validation back
        status, closes_at = state
        if not accepts_signatures(status, closes_at, now):
            raise _not_open(pid, status)  # rolls the validation back
        folds.add(pid, 1, country, region)
        counts, due = folds.apply(now, milestones)
        petition = petition_store.get_petition(pid) if due else None
    events = []
    if petition is not None:
        author = petition["author"]
        actor = Identity(author["user_id"], "", author["name"], "citizen", "", now)
        events = _record_milestones_quietly(pid, actor, milestones)
    return {"petition_id": pid, "state": signature_states.VALIDATED}, BatchOutcome([], counts, events)


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
        return f"date_trunc('{bucket}', \"validated_at\")"
    pattern = {"minute": "%Y-%m-%d %H:%M:00", "hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}
    return f"strftime('{pattern[bucket]}', \"validated_at\")"


def timeline(petition_id: int, bucket: str) -> list[dict]:
    """The signature count at the end of each ``bucket`` that saw a signature counted, oldest first.

    Counted from the validated signatures held now, by when each was
    validated (a withdrawn or invalidated one is gone from every bucket), so
    the last point is the petition's count.  404 if the
    petition does not exist.
    """
    petition_store.get_petition(petition_id)
    start = _bucket_sql(database_proxy.obj, bucket)
    sql = (
        f'SELECT {start} AS "at", COUNT(*) FROM "signature" WHERE "petition_id" = ? AND "state" = \'validated\''
        ' GROUP BY "at" ORDER BY "at"'
    )
    total = 0
    points = []
    for at, count in statements.execute(sql, (petition_id,)).fetchall():
        total += count
        points.append({"at": iso(statements.timestamp(at)), "total": total})
    return points
