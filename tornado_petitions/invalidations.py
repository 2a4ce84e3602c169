"""Invalidations: the office takes back signatures matching some conditions, in batches off the request.

An invalidation is a row (``models.Invalidation``) holding its conditions,
how many signatures matched when it was asked for, how many it has
invalidated, and how far it has come.  ``InvalidationRunner`` runs it as a
background task, one short transaction per batch (at most ``batch_size``
signatures, over a bounded range of ids), yielding to the event loop between
batches: each batch moves its signatures to ``invalidated`` and folds the
lower counts (count, by country, by region) in the same transaction, and the
counts go out through the ordinary ``counts`` frames.  Milestones reached
stay reached.  A run is bounded to the signatures that existed when it was
asked for, and a run still ``running`` when the process stopped is resumed
at start-up from its last batch (every transition is conditional, so
resuming, or two processes running one, never counts a signature twice).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

import peewee

from . import audit, signature_states, wire
from .audit import Actor
from .counts import CountChange
from .db_runner import DatabaseRunner
from .errors import ApiError
from .models import Invalidation, Signature, database_proxy, iso, utcnow
from .signature_store import CountFolds, Milestones
from .signers import canonical_email

log = logging.getLogger("tornado_petitions.invalidations")

RUNNING = "running"
COMPLETED = "completed"
CANCELLED = "cancelled"
CONDITIONS = ("petition_id", "address", "domain", "email", "country", "since", "until")
# Signatures a batch may invalidate, and ids a batch may walk past: each batch is short however sparse the matches.
BATCH_SIZE = 500
SCAN_IDS = 20_000
_TAKEN_BACK = (signature_states.VALIDATED, signature_states.PENDING)


@dataclasses.dataclass(frozen=True)
class Conditions:
    """What an invalidation matches: every condition given must hold (``email`` canonical)."""

    petition_id: int | None = None
    address: str | None = None
    domain: str | None = None
    email: str | None = None
    country: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    @classmethod
    def from_body(cls, body: Any) -> Conditions:
        """The conditions of a request body; 422 naming the fields when none is given."""
        values = {name: getattr(body, name) for name in CONDITIONS}
        if all(value is None for value in values.values()):
            raise ApiError(
                422,
                "invalid_fields",
                "an invalidation needs at least one condition",
                fields={name: "give at least one condition" for name in CONDITIONS},
            )
        if values["email"] is not None:
            values["email"] = canonical_email(values["email"])
        if values["domain"] is not None:
            values["domain"] = values["domain"].strip().lower()
        for name in ("since", "until"):
            moment = values[name]
            if moment is not None and moment.tzinfo is not None:  # stored naive UTC, as every time here
                values[name] = moment.astimezone(datetime.UTC).replace(tzinfo=None)
        return cls(**values)

    def to_dict(self) -> dict:
        found = {name: getattr(self, name) for name in CONDITIONS if getattr(self, name) is not None}
        return {
            name: iso(value) if isinstance(value, datetime.datetime) else value
            for name, value in found.items()
        }

    @classmethod
    def from_dict(cls, stored: dict) -> Conditions:
        values = dict(stored)
        for name in ("since", "until"):
            if values.get(name):
                values[name] = datetime.datetime.fromisoformat(values[name].removesuffix("Z"))
        return cls(**values)

    def where(self, *, walking_ids: bool = False) -> peewee.Expression:
        """The signatures these conditions match, whatever their state.

        ``walking_ids``: for a batch, which reads a bounded range of ids; the
        petition is then compared as an expression, so no planner takes a
        petition's index and sorts all its signatures for every batch.
        """
        clause = Signature.id > 0
        petition = Signature.petition + 0 if walking_ids else Signature.petition
        for column, value in (
            (petition, self.petition_id),
            (Signature.address, self.address),
            (Signature.email_domain, self.domain),
            (Signature.email, self.email),
            (Signature.country, self.country),
        ):
            if value is not None:
                clause &= column == value
        if self.since is not None:
            clause &= Signature.created_at >= self.since
        if self.until is not None:
            clause &= Signature.created_at < self.until
        return clause


def newest_signature_id() -> int:
    """The newest signature's id: a run takes back only signatures up to it."""
    return Signature.select(peewee.fn.MAX(Signature.id)).scalar() or 0


def count_matching(conditions: Conditions, up_to_id: int | None = None) -> int:
    """How many signatures (up to ``up_to_id``) an invalidation with these conditions would take back now."""
    clause = conditions.where() & Signature.state.in_(_TAKEN_BACK)
    if up_to_id is not None:
        clause &= Signature.id <= up_to_id
    return Signature.select().where(clause).count()


def count_off_the_loop(conditions: Conditions, up_to_id: int | None = None) -> int:
    """``count_matching`` on a connection of the calling thread's own (``DatabaseRunner.offload``).

    A count over a viral petition's signatures reads every matching row (a
    hundred thousand take a good part of a second on SQLite): too long to
    hold the event loop, where SQLite work otherwise runs.
    """
    with database_proxy.obj.connection_context():
        return count_matching(conditions, up_to_id)


def create(actor: Actor, conditions: Conditions, matched: int, newest: int) -> dict:
    """Record a run of ``matched`` signatures up to id ``newest`` and its audit entry; the runner then takes it in batches."""
    with Invalidation._meta.database.atomic():
        row = Invalidation.create(
            conditions=wire.dumps(conditions.to_dict()),
            state=RUNNING if matched else COMPLETED,
            matched=matched,
            max_signature_id=newest,
            created_by=actor.identity.user_id,
            finished_at=None if matched else utcnow(),
        )
        audit.record(
            actor,
            "invalidation",
            "invalidation",
            row.id,
            {"conditions": conditions.to_dict(), "matched": matched},
        )
    return describe(row)


def describe(row: Invalidation) -> dict:
    return {
        "invalidation_id": row.id,
        "state": row.state,
        "matched": row.matched,
        "invalidated": row.invalidated,
        "conditions": wire.loads(row.conditions),
        "created_by": row.created_by_id,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
    }


def get(invalidation_id: int) -> dict:
    """One run as it stands; 404 if there is none."""
    row = Invalidation.get_or_none(Invalidation.id == invalidation_id)
    if row is None:
        raise ApiError(404, "not_found", f"invalidation {invalidation_id} does not exist")
    return describe(row)


def cancel(invalidation_id: int) -> dict:
    """Stop a running invalidation before its next batch (what it invalidated stays so); 404 if none."""
    Invalidation.update(state=CANCELLED, finished_at=utcnow()).where(
        (Invalidation.id == invalidation_id) & (Invalidation.state == RUNNING)
    ).execute()
    return get(invalidation_id)


def running_ids() -> list[int]:
    """The runs left ``running`` (by a restart): the runner resumes them."""
    return [
        row[0] for row in Invalidation.select(Invalidation.id).where(Invalidation.state == RUNNING).tuples()
    ]


def run_batch(invalidation_id: int, batch_size: int = BATCH_SIZE) -> tuple[list[CountChange], bool]:
    """Invalidate the run's next batch in one transaction; the counts it lowered and whether the run is over."""
    with Invalidation._meta.database.atomic():
        row = Invalidation.get_or_none(Invalidation.id == invalidation_id)
        if row is None or row.state != RUNNING:
            return [], True
        start = row.last_signature_id
        end = min(row.max_signature_id, start + SCAN_IDS)
        conditions = Conditions.from_dict(wire.loads(row.conditions))
        query = (
            Signature.select(Signature.id)
            .where(
                conditions.where(walking_ids=True)
                & (Signature.id > start)
                & (Signature.id <= end)
                & Signature.state.in_(_TAKEN_BACK)
            )
            .order_by(Signature.id)
            .limit(batch_size)
        )
        ids = [signature_id for (signature_id,) in query.tuples()]
        reached = ids[-1] if len(ids) == batch_size else end
        counted, pending = signature_states.invalidate_batch(ids)
        folds = CountFolds()
        for petition_id, country, region in counted:
            folds.add(petition_id, -1, country, region)
        now = utcnow()
        counts, _ = folds.apply(now, Milestones())  # a falling count reaches no milestone
        finished = reached >= row.max_signature_id
        changes: dict[Any, Any] = {
            Invalidation.invalidated: Invalidation.invalidated + len(counted) + pending,
            Invalidation.last_signature_id: max(row.last_signature_id, reached),
        }
        if finished:
            changes[Invalidation.state] = COMPLETED
            changes[Invalidation.finished_at] = now
        Invalidation.update(changes).where(Invalidation.id == invalidation_id).execute()
    return counts, finished


class InvalidationRunner:
    """Runs invalidations as background tasks, a short batch at a time; publishes each batch's counts.

    ``publish_counts`` takes the lowered counts after each batch committed
    (the application's publisher).
    """

    def __init__(
        self,
        runner: DatabaseRunner,
        publish_counts: Callable[[list[CountChange]], None],
        *,
        batch_size: int = BATCH_SIZE,
        pause: float = 0.0,
    ) -> None:
        self.batch_size = batch_size
        self.pause = pause  # seconds between batches; 0 still yields to the loop
        self._runner = runner
        self._publish_counts = publish_counts
        self._tasks: dict[int, asyncio.Task] = {}

    def start(self, invalidation_id: int) -> None:
        """Begin (or resume) running one invalidation in the background; nothing if it runs here already."""
        if invalidation_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(invalidation_id))
        self._tasks[invalidation_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(invalidation_id, None))

    async def resume(self) -> None:
        """Start every run a restart left ``running``."""
        for invalidation_id in await self._runner.run(running_ids):
            log.info("resuming invalidation %d", invalidation_id)
            self.start(invalidation_id)

    async def stop(self) -> None:
        """Stop every run between batches; each stays ``running`` and resumes at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, invalidation_id: int) -> None:
        while True:
            try:
                counts, finished = await self._runner.run(run_batch, invalidation_id, self.batch_size)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a batch of invalidation %d failed; trying again in a second", invalidation_id)
                await asyncio.sleep(1.0)
                continue
            if counts:
                self._publish_counts(counts)
            if finished:
                return
            await asyncio.sleep(self.pause)
