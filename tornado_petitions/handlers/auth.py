"""Accounts over HTTP: register (and verify the email), log in, log out, reset a password, and who am I."""

from __future__ import annotations

import functools

from .. import account_links, accounts, addresses, mail_outbox, roles
from ..errors import ApiError
from ..rate_limit import Rule
from .base import SESSION_COOKIE, BaseHandler, ServiceMixin
from .routing import Route


class SignInHandler(BaseHandler):
    """Shared by register and login: issue a token and set the page's session cookie.

    The session cookie does not authenticate these requests, so a stale one
    (a client that keeps cookies) needs no XSRF token.  What protects a
    browser from being signed in by another site (login CSRF) is the
    ``Origin`` / ``Sec-Fetch-Site`` check in ``prepare``.
    """

    def prepare(self) -> None:
        super().prepare()
        self.refuse_cross_site("cross_site_sign_in", "sign-in")

    def check_xsrf_cookie(self) -> None:
        """Nothing to check: the cookie is not what authenticates a sign-in (see ``prepare``)."""

    async def signed_in(self, user, status: int) -> None:
        token = await self.runner.run(accounts.issue_token, user, self.config.token_ttl_seconds)
        self.signed_in_user_id = user.id  # for the access log line
        self.set_session_cookie(token)
        self.write_json({"user": user.to_dict(), "token": token}, status)

    def mail_rule(self, email: str) -> Rule:
        """Mail an account asks for, counted per address mailed: no one makes the service flood a mailbox."""
        rates = self.config.rate_limits
        return Rule(
            f"account-mail:{addresses.canonical(email)}",
            rates.account_mails_per_email,
            rates.mail_window_seconds,
        )


# What a registration with email verification answers, whether or not the email had an account.
REGISTERED_MESSAGE = (
    "Check your email: we sent a message to this address. Open the link in it to finish; "
    "it works for {hours:g} hours."
)


class RegisterHandler(SignInHandler):
    """``POST /api/auth/register``: a new citizen account, signed in at once, or (verifying email) mailed a link.

    With verification on the answer is 202 and the same whether or not the
    email has an account, after the same work (the password is hashed
    either way, one transaction queues one mail), so neither the answer nor
    its timing tells who has an account; the mail tells the address's owner.
    """

    async def post(self) -> None:
        body = self.read_body("Register")
        rates = self.config.rate_limits
        address_rule = Rule(
            "register:" + self.client_address(), rates.register_per_address, rates.window_seconds
        )
        if not self.config.verifies_email():
            await self.rate_limiter.hit(address_rule)
            password_hash = await self.runner.offload(accounts.hash_password, body.password)
            # Not verified (nobody read a mail), though it signs in and counts as if it were.
            user = await self.runner.run(
                functools.partial(accounts.create_user, email_verified=False),
                body.email,
                body.name,
                password_hash,
            )
            await self.signed_in(user, 201)
            return
        await self.rate_limiter.hit_all(address_rule, self.mail_rule(body.email))
        password_hash = await self.runner.offload(accounts.hash_password, body.password)
        await self.runner.run(
            account_links.register, body.email, body.name, password_hash, self.config.link_hours
        )
        self.application.mail_queued()
        self.write_json({"message": REGISTERED_MESSAGE.format(hours=self.config.link_hours)}, 202)


class VerifyEmailHandler(SignInHandler):
    """``POST /api/auth/verify`` ``{token}``: spend the mailed link, verify the email, sign in (200 ``{user, token}``)."""

    async def post(self) -> None:
        body = self.read_body("VerifyEmail")
        user = await self.runner.run(account_links.verify, body.token)
        await self.signed_in(user, 200)


# A reset request's answer, whether or not the email has an account.
RESET_MESSAGE = (
    "If an account uses this address, we sent it a link to set a new password; it works for {hours:g} hours."
)


class PasswordResetHandler(SignInHandler):
    """``POST /api/auth/password-reset`` ``{email}``: 202 always; a reset link is mailed only to an account.

    Limited per client address and per email (each request may mail that
    address).  A sign-in step, so a browser of another site is refused too.
    """

    async def post(self) -> None:
        body = self.read_body("PasswordReset")
        rates = self.config.rate_limits
        await self.rate_limiter.hit_all(
            Rule(
                "reset-address:" + self.client_address(),
                rates.password_resets_per_address,
                rates.mail_window_seconds,
            ),
            self.mail_rule(body.email),
        )
        if self.config.smtp_url and await self.runner.run(
            account_links.request_reset, body.email, self.config.link_hours
        ):
            self.application.mail_queued()
        self.write_json({"message": RESET_MESSAGE.format(hours=self.config.link_hours)}, 202)


async def reset_password(handler: ServiceMixin, token: str, password: str):
    """Spend a reset link: the new password, every other token revoked (their sockets closed 4401); the user.

    Shared by the JSON endpoint and the link's page.  404 when the link does
    not work, checked before the password is hashed.
    """
    if not await handler.runner.run(account_links.link_is_live, account_links.RESET, token):
        raise ApiError(404, "not_found", "this link is unknown, used or expired; ask for a new one")
    password_hash = await handler.runner.offload(accounts.hash_password, password)
    user, revoked = await handler.runner.run(account_links.reset, token, password_hash)
    for token_hash in revoked:
        handler.tokens.evict(token_hash)
        handler.publisher.close_token(token_hash)
    return user


class PasswordResetConfirmHandler(SignInHandler):
    """``POST /api/auth/password-reset/confirm`` ``{token, password}``: set the password and sign in."""

    async def post(self) -> None:
        body = self.read_body("PasswordResetConfirm")
        user = await reset_password(self, body.token, body.password)
        await self.signed_in(user, 200)


class LoginHandler(SignInHandler):
    """``POST /api/auth/login``: a token (and the page's session cookie) for email + password.

    Failures are limited per (email, client address) and per address, never
    per email alone: a botnet guessing one account's password from many
    addresses does not stop its owner signing in from theirs.  Each attempt
    is counted before the password is checked (so concurrent guesses cannot
    slip past the limit) and taken back once it succeeds: only failures count.
    """

    async def post(self) -> None:
        body = self.read_body("Login")
        email, password = body.email, body.password
        rates, address = self.config.rate_limits, self.client_address()
        # Every spelling of one address (case, Unicode or IDNA domain) shares one allowance.
        account = addresses.canonical(email)
        attempt = await self.rate_limiter.hit_all(
            Rule(f"login-email:{account} {address}", rates.login_per_email, rates.window_seconds),
            Rule(f"login-address:{address}", rates.login_per_address, rates.window_seconds),
        )
        user = await self.runner.run(accounts.find_user_for_login, email)
        stored = accounts.password_hash_for_check(user)
        if not await self.runner.offload(accounts.verify_password, password, stored) or user is None:
            raise ApiError(401, "bad_credentials", "wrong email or password")
        await self.rate_limiter.undo_all(attempt)
        if self.config.verifies_email() and not user.email_verified:
            raise ApiError(
                403,
                "email_not_verified",
                "open the link we mailed to this address to verify it first; "
                "no mail? reset your password to get a new link",
            )
        if accounts.needs_rehash(stored):
            upgraded = await self.runner.offload(accounts.hash_password, password)
            await self.runner.run(accounts.replace_password_hash, user, stored, upgraded)
        await self.signed_in(user, 200)


class LogoutHandler(BaseHandler):
    """``POST /api/auth/logout``: revoke the caller's token and close its sockets."""

    async def post(self) -> None:
        # Even when the token turns out revoked or expired (401): the browser forgets it, so the
        # page's anonymous sockets stop offering a dead cookie (cookies survive the error reply).
        self.clear_cookie(SESSION_COOKIE, path="/")
        identity = await self.current_identity()
        await self.runner.run(accounts.revoke_token, identity.token_hash)
        self.tokens.evict(identity.token_hash)
        self.publisher.close_token(identity.token_hash)
        self.set_status(204)
        self.finish()


class MeHandler(BaseHandler):
    """``GET /api/me``: the signed-in user and whether they get mail; ``PATCH`` ``{"email_updates"}`` sets it."""

    async def get(self) -> None:
        identity = await self.current_identity()
        await self._write_me(identity)

    async def patch(self) -> None:
        identity = await self.current_identity()
        body = self.read_body("MeChange")
        await self.runner.run(mail_outbox.set_email_updates, identity.user_id, body.email_updates)
        await self._write_me(identity)

    async def _write_me(self, identity) -> None:
        me = identity.to_dict()
        me["permissions"] = roles.permissions_of(identity.role)
        me["email_updates"] = await self.runner.run(mail_outbox.email_updates, identity.user_id)
        self.write_json(me)


routes = [
    Route("/api/auth/register", RegisterHandler, {"post": "register"}),
    Route("/api/auth/verify", VerifyEmailHandler, {"post": "verifyEmail"}),
    Route("/api/auth/login", LoginHandler, {"post": "login"}),
    Route("/api/auth/logout", LogoutHandler, {"post": "logout"}),
    Route("/api/auth/password-reset", PasswordResetHandler, {"post": "requestPasswordReset"}),
    Route("/api/auth/password-reset/confirm", PasswordResetConfirmHandler, {"post": "resetPassword"}),
    Route("/api/me", MeHandler, {"get": "me", "patch": "changeMe"}),
]
