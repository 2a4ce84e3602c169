"""Mailed account links: verifying a new account's email, and resetting a password.

A link's token is 256 random bits (64 hex digits); the ``account_link`` row keeps only its
SHA-256 (as sign-in tokens are kept), and the outbox row that mails it
keeps the token only until the mail is sent.  A link works once, until
``--link-hours`` after it was made.

Each function runs in one transaction with the mail it queues, so a link
and its mail commit or roll back together.  Registration answers alike for
a new and a taken email: a new account gets a link to verify it, the owner
of an existing one a note saying so, with a reset link (a registration
someone else started under their address then cannot be finished by them).
"""

from __future__ import annotations

import datetime
import secrets

from . import accounts, mail_outbox
from .errors import ApiError
from .models import AccountLink, User, utcnow

VERIFY = "verify"
RESET = "reset"

_GONE = "this link is unknown, used or expired; ask for a new one"


def _create(user_id: int, purpose: str, hours: float) -> str:
    token = secrets.token_hex(32)  # 64 characters: what a link's {token} matches
    AccountLink.create(
        user=user_id,
        purpose=purpose,
        token_hash=accounts.hash_token(token),
        expires_at=utcnow() + datetime.timedelta(hours=hours),
    )
    return token


def _mail_link(user_id: int, purpose: str, kind: str, hours: float) -> None:
    mail_outbox.queue_account_mail(user_id, kind, _create(user_id, purpose, hours))


def link_is_live(purpose: str, token: str) -> bool:
    """Whether ``token`` is a ``purpose`` link that would still work (for the link's page; changes nothing)."""
    return (
        AccountLink.select()
        .where(
            (AccountLink.token_hash == accounts.hash_token(token))
            & (AccountLink.purpose == purpose)
            & AccountLink.used_at.is_null()
            & (AccountLink.expires_at > utcnow())
        )
        .exists()
    )


def _use(purpose: str, token: str) -> int:
    """Spend a live ``purpose`` link; its user's id.  404 when unknown, used or expired.

    The conditional update is what makes a link single-use: of two requests
    racing with one token, one updates the row and the other finds it used.
    """
    now = utcnow()
    found = (
        AccountLink.select(AccountLink.id, AccountLink.user)
        .where(
            (AccountLink.token_hash == accounts.hash_token(token))
            & (AccountLink.purpose == purpose)
            & AccountLink.used_at.is_null()
            & (AccountLink.expires_at > now)
        )
        .tuples()
        .first()
    )
    if found is None:
        raise ApiError(404, "not_found", _GONE)
    link_id, user_id = found
    spent = (
        AccountLink.update(used_at=now)
        .where((AccountLink.id == link_id) & AccountLink.used_at.is_null())
        .execute()
    )
    if not spent:
        raise ApiError(404, "not_found", _GONE)
    return user_id


def register(email: str, name: str, password_hash: str, hours: float) -> None:
    """Register with verification: mail a new account its link, or an existing one a note and reset link.

    Returns nothing the caller could answer differently with.  Two
    registrations of one new email at once: the second finds the first's
    account and mails its owner the note.
    """
    db = User._meta.database
    with db.atomic():
        user = accounts.find_user_for_login(email)
        if user is None:
            try:
                user = accounts.create_user(email, name, password_hash, email_verified=False)
            except ApiError:  # taken meanwhile (409)
                user = accounts.find_user_for_login(email)
                if user is None:
                    raise
            else:
                _mail_link(user.id, VERIFY, mail_outbox.VERIFY_EMAIL, hours)
                return
        _mail_link(user.id, RESET, mail_outbox.ACCOUNT_EXISTS, hours)


def verify(token: str) -> User:
    """Spend a verification link: its account's email is verified.  404 when the link does not work."""
    with User._meta.database.atomic():
        user_id = _use(VERIFY, token)
        User.update(email_verified=True).where(User.id == user_id).execute()
        return User.get_by_id(user_id)


def request_reset(email: str, hours: float) -> bool:
    """Mail a reset link to the account with ``email``; False (and no mail) when there is none."""
    with User._meta.database.atomic():
        user = accounts.find_user_for_login(email)
        if user is None:
            return False
        _mail_link(user.id, RESET, mail_outbox.PASSWORD_RESET, hours)
        return True


def reset(token: str, password_hash: str) -> tuple[User, list[str]]:
    """Spend a reset link: set the password, verify the email, revoke every token; (user, revoked token hashes).

    The person proved they read mail at the address, so the email counts as
    verified.  The user's other reset links stop working too.
    """
    with User._meta.database.atomic():
        user_id = _use(RESET, token)
        AccountLink.update(used_at=utcnow()).where(
            (AccountLink.user == user_id) & (AccountLink.purpose == RESET) & AccountLink.used_at.is_null()
        ).execute()
        User.update(password_hash=password_hash, email_verified=True).where(User.id == user_id).execute()
        revoked = accounts.revoke_all_tokens(user_id)
        return User.get_by_id(user_id), revoked
