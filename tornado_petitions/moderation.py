"""What the office does to petitions and people, each change with its audit entry in one transaction.

Synchronous, like ``petition_store``: the caller runs these through the
database runner and publishes what they return only after they returned,
that is, after the commit.
"""

from __future__ import annotations

import peewee

from . import audit, petition_store
from .audit import Actor
from .errors import ApiError
from .events import Event
from .lifecycle import DEFAULT_REJECTION_REASON, HIDING_REASONS
from .models import User
from .roles import ROLES


def change_status(
    actor: Actor,
    petition_id: int,
    target: str,
    note: str | None,
    version: int | None,
    reason: str | None,
    mail: bool,
) -> tuple[dict, Event]:
    """``petition_store.change_status`` plus its audit entry: ``hide`` for a hiding rejection, else ``status_change``."""
    with User._meta.database.atomic():
        petition, event = petition_store.change_status(
            actor.identity, petition_id, target, note, version, reason, mail
        )
        details = {"from": event.from_status, "to": target, "note": note, "version": petition["version"]}
        action = "status_change"
        if target == "rejected":
            details["reason"] = reason or DEFAULT_REJECTION_REASON
            if details["reason"] in HIDING_REASONS:
                action = "hide"
        audit.record(actor, action, "petition", petition_id, details)
    return petition, event


def change_role(actor: Actor, user_id: int, role: str) -> dict:
    """Give ``user_id`` the role ``role``; 404 for no such user, 409 when it would leave no admin.

    Admins' rows are locked first (``FOR UPDATE`` on PostgreSQL; SQLite has
    one writer), so two admins demoting each other at once cannot both pass
    the last-admin check.  An unchanged role writes no audit entry.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    db = User._meta.database
    with db.atomic():
        admins = User.select(User.id).where(User.role == "admin")
        if isinstance(db, peewee.PostgresqlDatabase):
            admins = admins.for_update()
        admin_ids = {row.id for row in admins}
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise ApiError(404, "not_found", f"no user {user_id}")
        if user.role == role:
            return user.to_dict()
        if admin_ids == {user_id}:
            raise ApiError(409, "last_admin", "this is the last admin: make another admin first")
        previous = user.role
        User.update(role=role).where(User.id == user_id).execute()
        audit.record(actor, "role_change", "user", user_id, {"from": previous, "to": role})
        user.role = role
    return user.to_dict()


def list_users(text: str | None, before: int | None, limit: int) -> tuple[list[dict], int | None]:
    """One page of accounts, newest first, whose name or email contains ``text`` (any case)."""
    query = User.select().order_by(User.id.desc()).limit(limit + 1)
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(_like(User.name, pattern) | _like(User.email, pattern))
    if before is not None:
        query = query.where(User.id < before)
    rows = list(query)
    page = rows[:limit]
    return [user.to_dict() for user in page], page[-1].id if len(rows) > limit else None


def _like(column: peewee.Field, pattern: str) -> peewee.Node:
    """``LOWER(column) LIKE pattern`` with ``\\`` escaping ``%`` and ``_`` (the same on SQLite and PostgreSQL)."""
    return peewee.NodeList((peewee.fn.LOWER(column), peewee.SQL("LIKE"), pattern, peewee.SQL("ESCAPE '\\'")))
