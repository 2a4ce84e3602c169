"""Petitions: every change and its event row (``event_log``) in one transaction.

Every function here is synchronous and self-contained (no ``await`` inside
a transaction); the caller decides whether it runs on the event loop or in
the database executor.  Write functions return the event to publish, which
the caller hands to the hub only after this function returned, that is,
after the commit.
"""

from __future__ import annotations

import datetime

import peewee

from . import event_log, mail_outbox, petition_row, search, statements, visibility, wire
from .accounts import Identity
from .errors import ApiError
from .events import Event
from .lifecycle import DEFAULT_REJECTION_REASON, NOTE_REQUIRED, allowed_targets
from .models import Petition, Signature, iso, utcnow
from .petition_row import NewPetitionRow, PetitionRow


def _petition_dict(row: PetitionRow) -> dict:
    """A petition as the API shows it; timestamps as read back (text on SQLite) or as datetimes."""
    status = row.status
    milestones = row.milestones
    country_counts = row.country_counts
    petition = {
        "petition_id": row.id,
        "title": row.title,
        "description": row.description,
        "category": row.category,
        "location": row.location,
        "author": {"user_id": row.author_id, "name": row.author_name},
        "status": status,
        "signature_count": row.signature_count,
        "version": row.version,
        "submitted_at": iso(statements.timestamp(row.submitted_at)),
        "updated_at": iso(statements.timestamp(row.updated_at)),
        "closes_at": iso(statements.timestamp(row.closes_at)),
        "milestones": wire.loads(milestones) if milestones else [],
        "awaiting_response": bool(row.awaiting_response),
        "signatures_by_country": wire.loads(country_counts) if country_counts else {},
        "published": bool(row.published),
    }
    region_counts = row.region_counts
    if region_counts and region_counts != "{}":
        petition["signatures_by_region"] = wire.loads(region_counts)
    response = row.response
    if response is not None:
        petition["response"] = response
    if status == "rejected":
        petition["rejection"] = {"reason": row.rejection_reason or DEFAULT_REJECTION_REASON, "note": response}
    return petition


def _load(petition_id: int) -> dict:
    row = statements.execute(statements.PETITION_BY_ID, (petition_id,)).fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"petition {petition_id} does not exist")
    return _petition_dict(PetitionRow._make(row))


def _petitions(query: peewee.ModelSelect) -> list[dict]:
    """Run a ``petition_row.select()`` query: Peewee writes the SQL, rows are shaped here.

    Peewee's DATETIME converter tries strptime formats one by one; for a
    page of 20 that was a third of a list request.
    """
    cursor = Petition._meta.database.execute_sql(*query.sql())
    make = PetitionRow._make
    return [_petition_dict(make(row)) for row in cursor.fetchall()]


def petition_history(petition_id: int) -> list[dict]:
    """Every event of one petition, oldest first; 404 if the petition does not exist."""
    _load(petition_id)
    return [event.history_entry() for event in event_log.petition_events(petition_id)]


def get_petition(petition_id: int) -> dict:
    """One petition; 404 if there is none with this id."""
    return _load(petition_id)


def list_petitions(
    *,
    limit: int,
    cursor: int | None = None,
    status: str | None = None,
    author: int | None = None,
    category: str | None = None,
    text: str | None = None,
    sort: str = "newest",
    public_only: bool = True,
) -> tuple[list[dict], int | None]:
    """A page of petitions in the order ``sort`` names, and the cursor of the next page (None at the end).

    ``public_only`` (everyone but the office) leaves out the petitions
    ``visibility`` does not make public.

    ``newest`` pages by id (the cursor is the last id shown, so new
    petitions never shift a page); the other orders change as signatures
    come in and page by position (the cursor is how many were shown).
    """
    query = petition_row.select()
    if public_only:
        query = query.where(visibility.public_petitions())
    if status is not None:
        query = query.where(Petition.status == status)
    if author is not None:
        query = query.where(Petition.author == author)
    if category is not None:
        query = query.where(Petition.category == category)
    if text:
        query = search.filter_text(query, text)
    query = search.order(query, sort, text)
    by_id = sort == "newest"
    if by_id and cursor is not None:
        query = query.where(Petition.id < cursor)
    offset = 0 if by_id else (cursor or 0)
    rows = _petitions(query.limit(limit + 1).offset(offset or None))
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, page[-1]["petition_id"] if by_id else offset + limit


def similar_petitions(title: str) -> list[dict]:
    """Up to ``search.SIMILAR_LIMIT`` listed petitions whose titles look like ``title``, most alike first."""
    ids = search.similar_ids(petition_row.select(), title)
    found = (
        {p["petition_id"]: p for p in _petitions(petition_row.select().where(Petition.id.in_(ids)))}
        if ids
        else {}
    )
    return [found[petition_id] for petition_id in ids if petition_id in found]


def user_petitions(user_id: int, limit: int | None = None) -> tuple[list[dict], bool]:
    """The newest ``limit`` (None: all) petitions ``user_id`` filed, newest first, and whether there are more.

    The user channel asks for ``--max-list``, so one prolific author's list
    is never one frame of megabytes.
    """
    query = petition_row.select().where(Petition.author == user_id).order_by(Petition.id.desc())
    if limit is None:
        return _petitions(query), False
    rows = _petitions(query.limit(limit + 1))
    return rows[:limit], len(rows) > limit


def withheld_petition_ids() -> list[int]:
    """Every petition not public (``visibility``): the hub keeps their counts off the public feed."""
    query = Petition.select(Petition.id).where(~visibility.public_petitions())
    return [petition_id for (petition_id,) in query.tuples()]


def signed_petition_ids(user_id: int) -> list[int]:
    """The petitions ``user_id`` has signed, newest signature first."""
    query = (
        Signature.select(Signature.petition).where(Signature.user == user_id).order_by(Signature.id.desc())
    )
    return [petition_id for (petition_id,) in query.tuples()]


def create_petition(
    author: Identity,
    title: str,
    description: str,
    category: str | None,
    location: str | None,
    signing_days: float = 180.0,
    premoderation: bool = False,
) -> tuple[dict, Event]:
    """File a petition (status ``submitted``, closing ``signing_days`` from now) and its ``created`` event.

    With ``premoderation`` it is filed unpublished: public only once a moderator moves it on.
    """
    with Petition._meta.database.atomic():
        seq = event_log.take_seq()
        now = utcnow()
        new = NewPetitionRow(
            title=title,
            description=description,
            category=category,
            location=location,
            author_id=author.user_id,
            status="submitted",
            signature_count=0,
            version=1,
            submitted_at=now,
            updated_at=now,
            closes_at=now + datetime.timedelta(days=signing_days),
            milestones="[]",
            awaiting_response=False,
            published=not premoderation,
        )
        petition_id = statements.execute(statements.INSERT_PETITION, new).fetchone()[0]
        # What _load would read back, without reading it back.
        petition = _petition_dict(
            PetitionRow(
                id=petition_id,
                author_name=author.name,
                response=None,
                rejection_reason=None,
                country_counts="{}",
                region_counts="{}",
                **new._asdict(),
            )
        )
        event = event_log.record_event(seq, "created", petition, author, to_status="submitted")
    return petition, event


def change_status(
    actor: Identity,
    petition_id: int,
    target: str,
    note: str | None,
    version: int | None,
    reason: str | None = None,
    mail: bool = False,
) -> tuple[dict, Event]:
    """Move a petition along the lifecycle; 409 on a disallowed move or a stale version.

    ``reason`` (one of ``REJECTION_REASONS``, default ``other``) is kept on a
    move to ``rejected``.  A note clears ``awaiting_response``.  With
    ``mail``, the author's mail (and with a note every signer's) is queued
    in the same transaction.
    """
    with Petition._meta.database.atomic():
        seq = event_log.take_seq()  # taken first: it serializes writers before the row is read
        current = _load(petition_id)
        if version is not None and version != current["version"]:
            raise ApiError(
                409,
                "version_conflict",
                f"petition {petition_id} is at version {current['version']}, not {version}",
            )
        allowed = allowed_targets(current["status"])
        if target not in allowed:
            raise ApiError(
                409,
                "invalid_transition",
                f"cannot move a {current['status']} petition to {target}",
                allowed=allowed,
            )
        if target in NOTE_REQUIRED and not note:
            raise ApiError(
                422,
                "invalid_fields",
                f"a note is required to move to {target}",
                fields={"note": "is required for this status"},
            )
        changes = {
            Petition.status: target,
            Petition.version: Petition.version + 1,
            Petition.updated_at: utcnow(),
        }
        if note:
            changes[Petition.response] = note
            changes[Petition.awaiting_response] = False
        changes[Petition.rejection_reason] = (
            (reason or DEFAULT_REJECTION_REASON) if target == "rejected" else None
        )
        if visibility.publishes(target):
            changes[Petition.published] = True
        Petition.update(changes).where(Petition.id == petition_id).execute()
        if mail:
            mail_outbox.queue_status_mail(seq, petition_id, note)
        petition = _load(petition_id)
        event = event_log.record_event(
            seq,
            "status_changed",
            petition,
            actor,
            from_status=current["status"],
            to_status=target,
            note=note,
        )
    return petition, event


def _milestone_time(petition: dict, milestone: str) -> str:
    return next((m["at"] for m in petition["milestones"] if m["milestone"] == milestone), "")


def admin_queues(moderation_days: float, limit: int = 100) -> dict:
    """What the office must act on, each list oldest first and at most ``limit`` long, with totals.

    ``moderation``: submitted petitions, ``overdue`` once waiting longer than
    ``moderation_days``; ``awaiting_response``: past the response milestone
    with no answer yet (oldest milestone first); ``debate``: past the debate
    milestone and neither resolved nor rejected (oldest milestone first).
    """
    now = utcnow()
    due = now - datetime.timedelta(days=moderation_days)
    moderation_query = petition_row.select().where(Petition.status == "submitted")
    moderation = _petitions(moderation_query.order_by(Petition.submitted_at, Petition.id).limit(limit))
    for petition in moderation:
        petition["overdue"] = datetime.datetime.fromisoformat(petition["submitted_at"][:-1]) < due
    # Both milestone queues are small (petitions past 10,000 signatures), so they are sorted here.
    awaiting = _petitions(petition_row.select().where(Petition.awaiting_response == True))  # noqa: E712
    awaiting.sort(key=lambda p: (_milestone_time(p, "response"), p["petition_id"]))
    debate_query = petition_row.select().where(
        Petition.milestones.contains('"debate"') & Petition.status.not_in(("resolved", "rejected"))
    )
    debate = _petitions(debate_query)
    debate.sort(key=lambda p: (_milestone_time(p, "debate"), p["petition_id"]))
    return {
        "moderation": moderation,
        "awaiting_response": awaiting[:limit],
        "debate": debate[:limit],
        "counts": {
            "moderation": Petition.select().where(Petition.status == "submitted").count(),
            "awaiting_response": len(awaiting),
            "debate": len(debate),
        },
    }
