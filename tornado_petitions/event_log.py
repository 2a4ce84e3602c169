"""The event log: lifecycle events appended in their change's transaction, read back in seq order, pruned.

Every lifecycle change (created, status changed, milestone) takes the next
seq from the counter row and appends its event row in the transaction that
makes the change, so a seq is taken, and becomes visible, in commit order.
Readers get ``Event``s: replays and gap fills (``events_after``), a
petition's history (``petition_events``), and the range a client may resume
from (``log_bounds``).  Like the stores, every function is synchronous and
runs inside the caller's choice of thread.
"""

from __future__ import annotations

import peewee

from . import statements, visibility, wire
from .accounts import Identity
from .events import KINDS, Event
from .models import EventCounter, PetitionEvent, User, database_proxy, iso, utcnow


def take_seq() -> int:
    """Take the next seq from the counter row, locking it until this transaction ends."""
    return statements.execute(statements.NEXT_SEQ).fetchone()[0]


def record_event(
    seq: int,
    kind: str,
    petition: dict,
    actor: Identity,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str | None = None,
    milestone: str | None = None,
) -> Event:
    """Append the event row for a change already written in the current transaction.

    ``petition`` is the petition right after the change; whether it is public
    then (``visibility``) is kept with the event, for the public feed.
    """
    now = utcnow()
    petition_json = wire.dumps(petition)
    author_id = petition["author"]["user_id"]
    public = visibility.petition_is_public(petition)
    row = (seq, petition["petition_id"], author_id, kind, actor.user_id, from_status, to_status, note)
    statements.execute(statements.INSERT_EVENT, (*row, milestone, petition_json, now, public))
    return Event(
        seq=seq,
        kind=kind,
        petition_id=petition["petition_id"],
        author_id=petition["author"]["user_id"],
        actor_id=actor.user_id,
        actor_name=actor.name,
        from_status=from_status,
        to_status=to_status,
        note=note,
        created_at=iso(now),
        petition_json=petition_json,
        milestone=milestone,
        public=public,
    )


def _event_from_row(row: tuple) -> Event:
    (
        seq,
        kind,
        petition_id,
        author_id,
        actor_id,
        actor_name,
        from_status,
        to_status,
        note,
        milestone,
        created_at,
        petition_json,
        public,
    ) = row
    return Event(
        seq=seq,
        kind=kind,
        petition_id=petition_id,
        author_id=author_id,
        actor_id=actor_id,
        actor_name=actor_name,
        from_status=from_status,
        to_status=to_status,
        note=note,
        created_at=iso(created_at),
        petition_json=petition_json,
        milestone=milestone,
        public=bool(public),
    )


def _events_query() -> peewee.ModelSelect:
    return (
        PetitionEvent.select(
            PetitionEvent.seq,
            PetitionEvent.kind,
            PetitionEvent.petition,
            PetitionEvent.author_id,
            PetitionEvent.actor,
            User.name,
            PetitionEvent.from_status,
            PetitionEvent.to_status,
            PetitionEvent.note,
            PetitionEvent.milestone,
            PetitionEvent.created_at,
            PetitionEvent.petition_json,
            PetitionEvent.public,
        )
        .join(User, on=(PetitionEvent.actor == User.id))
        .where(
            # Logs written before signatures became state hold "signed" rows: never replayed or listed.
            PetitionEvent.kind.in_(KINDS)
        )
    )


def petition_events(petition_id: int) -> list[Event]:
    """Every retained event of one petition, oldest first."""
    query = _events_query().where(PetitionEvent.petition == petition_id).order_by(PetitionEvent.seq)
    return [_event_from_row(row) for row in query.tuples()]


def events_after(seq: int, limit: int) -> list[Event]:
    """Up to ``limit`` events with a seq above ``seq``, in seq order."""
    query = _events_query().where(PetitionEvent.seq > seq).order_by(PetitionEvent.seq).limit(limit)
    return [_event_from_row(row) for row in query.tuples()]


_SIZES_AFTER = (
    'SELECT COUNT(*), SUM({size}("petition_json") + COALESCE({size}("note"), 0)), MAX("seq") FROM'
    ' (SELECT "seq", "petition_json", "note" FROM "petition_event" WHERE "seq" > ? AND "kind" IN ({kinds})'
    ' ORDER BY "seq" LIMIT ?) AS "page"'
)


def sizes_after(seq: int, limit: int) -> tuple[int, int, int | None]:
    """Of the next ``limit`` events after ``seq``: how many there are, the length of their petitions and notes, the last seq.

    What a replay of them would send, measured in the database without
    bringing the events into Python (PostgreSQL reads a value's size from
    its header; SQLite counts characters, a lower bound of bytes).
    """
    db = database_proxy.obj
    size = "OCTET_LENGTH" if isinstance(db, peewee.PostgresqlDatabase) else "LENGTH"
    sql = _SIZES_AFTER.format(size=size, kinds=", ".join("?" * len(KINDS)))
    count, length, last = statements.execute(sql, (seq, *KINDS, limit)).fetchone()
    return count, length or 0, last


def log_bounds() -> tuple[int, int]:
    """(oldest retained seq - 1, newest committed seq): the range ``since`` may resume from."""
    newest = EventCounter.select(EventCounter.value).where(EventCounter.id == 1).scalar() or 0
    oldest = PetitionEvent.select(peewee.fn.MIN(PetitionEvent.seq)).scalar()
    return ((oldest - 1) if oldest is not None else newest), newest


def prune_events(keep_after_seq: int) -> int:
    """Delete events at or below ``keep_after_seq``; returns how many went."""
    return PetitionEvent.delete().where(PetitionEvent.seq <= keep_after_seq).execute()
