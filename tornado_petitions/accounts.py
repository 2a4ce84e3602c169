"""Accounts: password hashing with argon2id, and random tokens kept only as hashes."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import secrets

import argon2
import peewee

from . import addresses, statements
from .errors import ApiError
from .models import AuthToken, User, utcnow

# OWASP's first argon2id configuration (m=19 MiB, t=2, p=1): ~20 ms a hash on this machine's
# cores.  Chosen over RFC 9106's low-memory profile (64 MiB, t=3, p=4: ~100 ms and 64 MiB a
# hash) because sign-in hashes run two at a time in a small pool (``DatabaseRunner.offload``)
# that anyone may keep busy with wrong passwords; OWASP rates the two as equally strong.
PASSWORD_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Hashes made before argon2id (``scrypt$n$r$p$salt$key``): still verified, replaced at sign-in.
SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    """A self-describing argon2id hash (``$argon2id$v=19$m=...``) with a random salt."""
    return PASSWORD_HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash, argon2id or legacy scrypt."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return PASSWORD_HASHER.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced at the next sign-in: scrypt, or argon2id with other parameters."""
    if stored.startswith("scrypt$"):
        return True
    try:
        return PASSWORD_HASHER.check_needs_rehash(stored)
    except argon2.exceptions.InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, key = stored.split("$")
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def replace_password_hash(user: User, old: str, new: str) -> None:
    """Store ``new`` in place of ``old`` (a sign-in's upgrade); nothing if the password changed meanwhile."""
    User.update(password_hash=new).where(User.id == user.id, User.password_hash == old).execute()
    user.password_hash = new


# Verifying against this when the email is unknown keeps timing from telling
# which emails have accounts.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request or socket acts as, and until when its token is good."""

    user_id: int
    email: str
    name: str
    role: str
    token_hash: str
    expires_at: datetime.datetime
    email_verified: bool = True

    def to_dict(self) -> dict:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "email_verified": self.email_verified,
        }


def create_user(
    email: str, name: str, password_hash: str, role: str = "citizen", *, email_verified: bool = True
) -> User:
    """Insert a user; 409 if the email is taken (compared case-insensitively).

    ``email_verified=False`` only for a registration that waits for its mailed
    link; accounts an operator makes (``create-user``) are verified.
    """
    try:
        with User._meta.database.atomic():
            return User.create(
                email=email.lower(),
                name=name,
                role=role,
                password_hash=password_hash,
                email_verified=email_verified,
            )
    except peewee.IntegrityError:
        raise ApiError(409, "email_taken", "an account with this email already exists") from None


def find_user_for_login(email: str) -> User | None:
    """The user with this email (in its stored form, or as an account made before normalizing stored it), or None."""
    forms = addresses.stored_forms(email)
    found = {user.email: user for user in User.select().where(User.email.in_(forms))}
    return next((found[form] for form in forms if form in found), None)


def password_hash_for_check(user: User | None) -> str:
    """The hash to verify a login against: the user's, or a dummy one of the same cost."""
    return user.password_hash if user is not None else _DUMMY_HASH


def issue_token(user: User, ttl_seconds: float) -> str:
    """Make a new random token for ``user``; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    AuthToken.create(
        user=user,
        token_hash=hash_token(token),
        expires_at=utcnow() + datetime.timedelta(seconds=ttl_seconds),
    )
    return token


def identify(token_hash: str) -> Identity:
    """The identity a token (by its ``hash_token``) stands for; 401 when unknown, revoked or expired.

    Runs on every authenticated request the token cache cannot answer, so
    its one query is plain SQL (``statements.IDENTIFY``) rather than built
    by Peewee each time.
    """
    row = statements.execute(statements.IDENTIFY, (token_hash,)).fetchone()
    if row is None or row[5] is not None:
        raise ApiError(401, "invalid_token", "the token is unknown or revoked")
    user_id, email, name, role, expires_at, _, email_verified = row
    expires_at = statements.timestamp(expires_at)
    if expires_at <= utcnow():
        raise ApiError(401, "token_expired", "the token has expired; sign in again")
    return Identity(
        user_id=user_id,
        email=email,
        name=name,
        role=role,
        token_hash=token_hash,
        expires_at=expires_at,
        email_verified=bool(email_verified),
    )


def revoke_all_tokens(user_id: int) -> list[str]:
    """Revoke every token of ``user_id`` still in force; returns their hashes (to evict and close their sockets)."""
    live = AuthToken.select(AuthToken.token_hash).where(
        (AuthToken.user == user_id) & AuthToken.revoked_at.is_null()
    )
    hashes = [token_hash for (token_hash,) in live.tuples()]
    AuthToken.update(revoked_at=utcnow()).where(AuthToken.token_hash.in_(hashes)).execute()
    return hashes


def revoke_token(token_hash: str) -> None:
    """Revoke one token; later use answers 401."""
    AuthToken.update(revoked_at=utcnow()).where(
        AuthToken.token_hash == token_hash, AuthToken.revoked_at.is_null()
    ).execute()
