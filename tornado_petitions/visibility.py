"""Who may see a petition: the one rule of what is public, in Python and in SQL.

A petition is public once it is published and while it is not hidden.

- Published: filed without ``--premoderation``, or moved on from
  ``submitted`` by a moderator (to ``under_review`` or ``in_progress``).
  It is a fact stored on the petition (``published``) when it happens, not
  read from the setting at each look: what was filed under pre-moderation
  waits for a moderator even if the setting is turned off later, and every
  process agrees whatever flags it was started with.  A petition rejected
  straight from ``submitted`` under pre-moderation stays unpublished.
- Hidden: rejected with a reason in ``HIDING_REASONS`` (offensive, fake),
  whatever the setting.  Reconsidering it (back to ``under_review``)
  makes it public again.

A petition that is not public is seen only by its author and by the roles
holding ``Permission.SEE_WITHHELD`` (``roles``: moderators and admins; 404
for everyone else); its events go only to the
admin channel and its author's channel.  Each event records whether its
petition was public right after it (``Event.public``), so the public feed,
live and on resume, hears of a pre-moderated petition first when it is
published, and nothing of it from its hiding on.
"""

from __future__ import annotations

import peewee

from . import roles
from .accounts import Identity
from .models import Petition
from .roles import Permission

# Rejection reasons that hide a petition from the public.
HIDING_REASONS = frozenset({"offensive", "fake"})
# The statuses whose reaching publishes a petition filed under pre-moderation.
PUBLISHING_STATUSES = frozenset({"under_review", "in_progress", "resolved"})


def is_public(published: bool, status: str, rejection_reason: str | None) -> bool:
    """Whether anyone at all may see a petition with these fields: published, and not hidden."""
    return bool(published) and not (status == "rejected" and rejection_reason in HIDING_REASONS)


def petition_is_public(petition: dict) -> bool:
    """``is_public`` of a petition as the API shows it (``petition_store``'s dict)."""
    rejection = petition.get("rejection")
    return is_public(petition["published"], petition["status"], rejection and rejection["reason"])


def public_petitions() -> peewee.Expression:
    """``is_public`` as a condition on ``petition`` rows: for lists, search and similar titles."""
    # COALESCE: a NULL reason (rows from before reasons) is not hiding, and NOT of it stays true.
    reason = peewee.fn.COALESCE(Petition.rejection_reason, "")
    hidden = (Petition.status == "rejected") & reason.in_(sorted(HIDING_REASONS))
    return (Petition.published == True) & ~hidden  # noqa: E712


def sees_everything(identity: Identity | None) -> bool:
    """Whether ``identity`` (None: signed out) sees petitions that are not public, whoever filed them."""
    return identity is not None and roles.allows(identity.role, Permission.SEE_WITHHELD)


def may_see(petition: dict, identity: Identity | None) -> bool:
    """Whether ``identity`` may see ``petition``: anyone a public one; its author and the office the others."""
    if petition_is_public(petition):
        return True
    return identity is not None and (
        identity.user_id == petition["author"]["user_id"] or sees_everything(identity)
    )


def publishes(status: str) -> bool:
    """Whether moving a petition to ``status`` publishes it (when it was not yet)."""
    return status in PUBLISHING_STATUSES
