"""The audit log: every moderator's and admin's action, written in that action's own transaction.

``record`` is the one call an action makes, inside its ``db.atomic()``, so
an action and its entry commit or roll back together.  Entries are never
changed or deleted (the table's triggers refuse it, and ``prune-events``
prunes only the event log); ``entries`` pages them newest first.
"""

from __future__ import annotations

import dataclasses

from . import wire
from .accounts import Identity
from .models import AuditEntry, iso

# Every action an entry may name (the ``action=`` filter takes one of these).
ACTIONS = ("status_change", "hide", "role_change", "block", "unblock", "invalidation")
TARGET_TYPES = ("petition", "user", "invalidation", "block")


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acted and from where: the identity of the request and its client address."""

    identity: Identity
    address: str


def record(actor: Actor, action: str, target_type: str, target_id: int, details: dict) -> None:
    """Append one entry; call it inside the action's transaction (it opens none of its own).

    Raises ValueError for an action or target type not declared above, so a
    typo fails the action's tests rather than writing an entry no filter finds.
    """
    if action not in ACTIONS or target_type not in TARGET_TYPES:
        raise ValueError(f"undeclared audit action {action!r} or target type {target_type!r}")
    AuditEntry.insert(
        actor_id=actor.identity.user_id,
        actor_name=actor.identity.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=wire.dumps(details),
        address=actor.address,
    ).execute()


def entries(
    actor_id: int | None, action: str | None, before: int | None, limit: int
) -> tuple[list[dict], int | None]:
    """One page of entries, newest first, and the cursor of the next page (None on the last)."""
    query = AuditEntry.select().order_by(AuditEntry.id.desc()).limit(limit + 1)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(query)
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return [_entry_dict(row) for row in page], next_cursor


def _entry_dict(row: AuditEntry) -> dict:
    return {
        "entry_id": row.id,
        "at": iso(row.created_at),
        "actor": {"user_id": row.actor_id, "name": row.actor_name},
        "action": row.action,
        "target": {"type": row.target_type, "id": row.target_id},
        "details": wire.loads(row.details),
        "address": row.address,
    }
