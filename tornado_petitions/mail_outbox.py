"""The mail outbox: rows written in the transaction of the change that causes a mail, then sent.

``queue_status_mail`` and ``queue_milestone_mail`` run inside the caller's
transaction (they never commit on their own), so a change and its mails
commit or roll back together.  Call them only when mail is on
(``Settings.smtp_url`` set): without an SMTP server nothing is queued.

``queue_account_mail`` queues the mail about an account itself (its link
to verify the email or reset the password, ``account_links``); it carries
the link's token in ``secret`` only until the mail is sent.  Every row has
a lane (``lane_of`` its kind): transactional mail, which someone is
waiting for, is claimed before and apart from notifications.

The sender (``mail_sender.MailSender``) leases pending rows of one lane
with ``claim``, and marks each one sent, failed or to be retried.  ``(change_key, user)`` is
unique: one change never queues one person twice, however often it is
retried or however many of its recipients overlap (an author who signed).

Unsubscribe links carry ``unsubscribe_token``: an HMAC of the user id under
a key from the settings, or generated once and kept in the database.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from typing import Any

import peewee

from .models import MailOutbox, Petition, ServiceSecret, Signature, User, utcnow
from .signature_states import COUNTED

# The mail a signer without an account gets: the link that counts the signature, or a
# note that this person has signed already.  Neither is a notification: no unsubscribing.
SIGN_CONFIRM = "sign_confirm"
SIGN_AGAIN = "sign_again"
SIGNER_KINDS = frozenset({SIGN_CONFIRM, SIGN_AGAIN})

# Lanes: someone is waiting for a transactional mail (a link to verify, reset or confirm), so
# the sender takes those first and unpaced; notifications go after, at --mail-per-second.
TRANSACTIONAL = 0
NOTIFICATION = 1
# Mail about the account itself, always sent (unsubscribing stops notifications only).
VERIFY_EMAIL = "verify_email"
ACCOUNT_EXISTS = "account_exists"
PASSWORD_RESET = "password_reset"
ACCOUNT_KINDS = frozenset({VERIFY_EMAIL, ACCOUNT_EXISTS, PASSWORD_RESET})
# With a signer's confirmation link and "already signed" note.
TRANSACTIONAL_KINDS = ACCOUNT_KINDS | SIGNER_KINDS


def lane_of(kind: str) -> int:
    """The lane a mail of ``kind`` travels in."""
    return TRANSACTIONAL if kind in TRANSACTIONAL_KINDS else NOTIFICATION


_FIELDS = [
    MailOutbox.change_key,
    MailOutbox.user,
    MailOutbox.petition,
    MailOutbox.kind,
    MailOutbox.lane,
    MailOutbox.title,
    MailOutbox.status,
    MailOutbox.note,
    MailOutbox.milestone,
    MailOutbox.state,
    MailOutbox.attempts,
    MailOutbox.next_attempt_at,
    MailOutbox.created_at,
]


def _constants(change_key: str, kind: str, note: str | None, milestone: str | None) -> dict:
    now = utcnow()
    return {
        "key": peewee.Value(change_key),
        "kind": peewee.Value(kind),
        "lane": peewee.Value(lane_of(kind)),
        "note": peewee.Value(note),
        "milestone": peewee.Value(milestone),
        "rest": (peewee.Value("pending"), peewee.Value(0), peewee.Value(now), peewee.Value(now)),
    }


def _row(c: dict, recipient: peewee.Field, petition: peewee.Field) -> tuple:
    """The outbox columns (``_FIELDS``) selected for each ``recipient`` of ``petition``."""
    return (
        c["key"],
        recipient,
        petition,
        c["kind"],
        c["lane"],
        Petition.title,
        Petition.status,
        c["note"],
        c["milestone"],
        *c["rest"],
    )


def _queue_author(petition_id: int, c: dict) -> None:
    query = (
        Petition.select(*_row(c, Petition.author, Petition.id))
        .join(User, on=(Petition.author == User.id))
        .where((Petition.id == petition_id) & (User.email_updates == True))  # noqa: E712
    )
    MailOutbox.insert_from(query, _FIELDS).on_conflict_ignore().execute()


def _queue_signers(petition_id: int, c: dict) -> None:
    query = (
        Signature.select(*_row(c, Signature.user, Signature.petition))
        .join(Petition, on=(Signature.petition == Petition.id))
        .join(User, on=(Signature.user == User.id))
        .where(
            (Signature.petition == petition_id) & (Signature.state == COUNTED) & (User.email_updates == True)  # noqa: E712
        )
    )
    MailOutbox.insert_from(query, _FIELDS).on_conflict_ignore().execute()


def queue_status_mail(seq: int, petition_id: int, note: str | None) -> None:
    """Queue the mails of the status change with event ``seq``: the author always, signers if ``note``.

    Runs inside the caller's transaction, after the petition row was updated
    (title and new status are read from it).
    """
    constants = _constants(f"status:{seq}", "status_changed", note, None)
    _queue_author(petition_id, constants)
    if note:
        _queue_signers(petition_id, constants)


def queue_milestone_mail(petition_id: int, milestone: str) -> None:
    """Queue one mail to the author and each signer (with email updates on) of a reached milestone.

    One ``INSERT ... SELECT`` over the signers, inside the caller's
    transaction (the one that records the milestone).  Queueing the same
    milestone twice adds nothing: the key is ``milestone:<petition_id>:<milestone>``.
    """
    constants = _constants(f"milestone:{petition_id}:{milestone}", "milestone", None, milestone)
    _queue_author(petition_id, constants)
    _queue_signers(petition_id, constants)


def queue_signer_mail(change_key: str, kind: str, petition_id: int, email: str, name: str) -> None:
    """Queue a ``SIGN_CONFIRM`` or ``SIGN_AGAIN`` mail to a signer without an account, at ``email``.

    Inside the caller's transaction (the one that wrote the signature).
    ``change_key`` is fresh for each mail; the link's token is derived from
    it when the mail is written (``signers.confirmation_token``).
    """
    constants = _constants(change_key, kind, None, None)
    query = Petition.select(
        *_row(constants, peewee.Value(None), Petition.id), peewee.Value(email), peewee.Value(name)
    ).where(Petition.id == petition_id)
    fields = [*_FIELDS, MailOutbox.to_email, MailOutbox.to_name]
    MailOutbox.insert_from(query, fields).on_conflict_ignore().execute()


def queue_account_mail(user_id: int, kind: str, secret: str) -> None:
    """Queue one ``ACCOUNT_KINDS`` mail to ``user_id`` carrying the link token ``secret``.

    Inside the caller's transaction (the one that made the link).  The token
    stays in the row only until the mail is sent (``_finish`` clears it).
    """
    now = utcnow()
    MailOutbox.insert(
        change_key=f"account:{secrets.token_hex(16)}",
        user=user_id,
        petition=None,
        kind=kind,
        lane=lane_of(kind),
        secret=secret,
        title="",
        status="",
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    ).execute()


# -- what the sender does with the rows -------------------------------------------


def _ready(now: datetime.datetime, lane: int) -> peewee.Expression:
    free = MailOutbox.lease_until.is_null() | (MailOutbox.lease_until < now)
    due = (MailOutbox.state == "pending") & (MailOutbox.next_attempt_at <= now)
    return (MailOutbox.lane == lane) & due & free


def claim(owner: str, limit: int, lease_seconds: float, lane: int = NOTIFICATION) -> list[dict[str, Any]]:
    """Lease up to ``limit`` rows of ``lane`` that are due, oldest first, to ``owner``; returns them with the recipient.

    A row leased by a live sender is skipped, so several processes never
    send the same row; a lease of a process that died runs out after
    ``lease_seconds`` and the row is sent by whoever claims next.
    """
    now = utcnow()
    db = MailOutbox._meta.database
    ids = [
        row_id
        for (row_id,) in MailOutbox.select(MailOutbox.id)
        .where(_ready(now, lane))
        .order_by(MailOutbox.id)
        .limit(limit)
        .tuples()
    ]
    if not ids:
        return []
    with db.atomic():
        until = now + datetime.timedelta(seconds=lease_seconds)
        # The lease test again here: on PostgreSQL a row another process leased meanwhile is re-checked.
        MailOutbox.update(lease_owner=owner, lease_until=until).where(
            MailOutbox.id.in_(ids) & _ready(now, lane)
        ).execute()
    query = (
        MailOutbox.select(
            MailOutbox.id,
            MailOutbox.change_key,
            MailOutbox.kind,
            MailOutbox.petition,
            MailOutbox.title,
            MailOutbox.status,
            MailOutbox.note,
            MailOutbox.milestone,
            MailOutbox.attempts,
            User.id,
            peewee.fn.COALESCE(MailOutbox.to_email, User.email),
            peewee.fn.COALESCE(MailOutbox.to_name, User.name),
            # A signer without an account is mailed only what they asked for: always.
            peewee.fn.COALESCE(User.email_updates, True),
            MailOutbox.secret,
        )  # fmt: skip
        .join(User, peewee.JOIN.LEFT_OUTER, on=(MailOutbox.user == User.id))
        .where((MailOutbox.lease_owner == owner) & (MailOutbox.state == "pending") & MailOutbox.id.in_(ids))
        .order_by(MailOutbox.id)
    )
    names = ("row_id", "change_key", "kind", "petition_id", "title", "status", "note", "milestone")
    names += ("attempts", "user_id", "email", "name", "email_updates", "secret")
    return [dict(zip(names, row, strict=True)) for row in query.tuples()]


def renew(owner: str, ids: list[int], lease_seconds: float) -> None:
    """Extend ``owner``'s lease on ``ids`` (those still pending) by ``lease_seconds`` from now."""
    until = utcnow() + datetime.timedelta(seconds=lease_seconds)
    MailOutbox.update(lease_until=until).where(
        MailOutbox.id.in_(ids) & (MailOutbox.lease_owner == owner) & (MailOutbox.state == "pending")
    ).execute()


def _finish(row_id: int, state: str, error: str | None = None) -> None:
    # A link token is kept only while its mail may still be sent.
    changes: dict = {
        MailOutbox.state: state,
        MailOutbox.lease_until: None,
        MailOutbox.error: error,
        MailOutbox.secret: None,
    }
    if state == "sent":
        changes[MailOutbox.sent_at] = utcnow()
    MailOutbox.update(changes).where((MailOutbox.id == row_id) & (MailOutbox.state == "pending")).execute()


def mark_sent(row_id: int) -> None:
    """The SMTP server accepted the mail: never send this row again."""
    _finish(row_id, "sent")


def mark_failed(row_id: int, error: str) -> None:
    """The SMTP server refused the mail for good (5xx): keep the row, with why, and send it no more."""
    _finish(row_id, "failed", error[:1000])


def mark_skipped(row_id: int) -> None:
    """The recipient unsubscribed after the row was queued: not sent, and not pending."""
    _finish(row_id, "skipped")


def retry_later(row_id: int, delay_seconds: float, error: str) -> None:
    """A temporary refusal (4xx) for this row: try it again after ``delay_seconds``, lease released."""
    MailOutbox.update(
        attempts=MailOutbox.attempts + 1,
        next_attempt_at=utcnow() + datetime.timedelta(seconds=delay_seconds),
        lease_until=None,
        error=error[:1000],
    ).where((MailOutbox.id == row_id) & (MailOutbox.state == "pending")).execute()


def release(owner: str) -> None:
    """Give back every lease ``owner`` holds (the SMTP server went away, or the sender stops)."""
    MailOutbox.update(lease_until=None).where(
        (MailOutbox.lease_owner == owner) & (MailOutbox.state == "pending")
    ).execute()


def depth() -> int:
    """How many mails are waiting to be sent."""
    return MailOutbox.select().where(MailOutbox.state == "pending").count()


# -- unsubscribing ---------------------------------------------------------------


def unsubscribe_key(configured: str | None) -> bytes:
    """The key unsubscribe links are signed with: ``configured``, or one generated once and stored.

    Every process on one database reads the same stored key, so a link
    mailed by one is honoured by all, across restarts.
    """
    if configured:
        return configured.encode()
    ServiceSecret.insert(name="unsubscribe", value=secrets.token_hex(32)).on_conflict_ignore().execute()
    return ServiceSecret.get(ServiceSecret.name == "unsubscribe").value.encode()


def unsubscribe_token(key: bytes, user_id: int) -> str:
    """The unguessable part of ``user_id``'s unsubscribe link (128 bits of an HMAC-SHA256)."""
    return hmac.new(key, b"unsubscribe:%d" % user_id, hashlib.sha256).hexdigest()[:32]


def token_matches(key: bytes, user_id: int, token: str) -> bool:
    """Constant-time check of an unsubscribe link's token."""
    return hmac.compare_digest(unsubscribe_token(key, user_id), token)


def set_email_updates(user_id: int, enabled: bool) -> bool:
    """Turn mail to ``user_id`` on or off; False if there is no such user."""
    return bool(User.update(email_updates=enabled).where(User.id == user_id).execute())


def email_updates(user_id: int) -> bool:
    """Whether ``user_id`` receives mail."""
    return bool(User.select(User.email_updates).where(User.id == user_id).scalar())
