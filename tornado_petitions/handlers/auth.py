"""Accounts over HTTP: register, log in, log out, and who am I."""

from __future__ import annotations

from .. import accounts, addresses, mail_outbox, roles
from ..errors import ApiError
from ..rate_limit import Rule
from .base import SESSION_COOKIE, BaseHandler
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


class RegisterHandler(SignInHandler):
    """``POST /api/auth/register``: a new citizen account, signed in at once."""

    async def post(self) -> None:
        body = self.read_body("Register")
        rates = self.config.rate_limits
        await self.rate_limiter.hit(
            Rule("register:" + self.client_address(), rates.register_per_address, rates.window_seconds)
        )
        password_hash = await self.runner.offload(accounts.hash_password, body.password)
        user = await self.runner.run(accounts.create_user, body.email, body.name, password_hash)
        await self.signed_in(user, 201)


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
    Route("/api/auth/login", LoginHandler, {"post": "login"}),
    Route("/api/auth/logout", LogoutHandler, {"post": "logout"}),
    Route("/api/me", MeHandler, {"get": "me", "patch": "changeMe"}),
]
