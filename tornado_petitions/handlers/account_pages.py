"""The pages the account mails link to: verify an email, set a new password.

``GET`` shows a button (or the new-password form) and changes nothing,
since mail scanners follow links; the page's own form ``POST`` does the
work, through the same functions as ``POST /api/auth/verify`` and
``/api/auth/password-reset/confirm``, then signs the browser in and sends
it to the front page.  The token in the path is the credential, so the
form needs no XSRF token; signing in from another site's form is refused
(``Origin``), as for the JSON sign-in.
"""

from __future__ import annotations

from .. import account_links, accounts, validation
from ..errors import ApiError
from .auth import reset_password
from .page import WebPageHandler
from .routing import Route

_GONE = (
    "This link does not work",
    "It is unknown, was used already, or has expired. Ask for a new one: "
    "sign in and choose “Forgot your password?”, or register again.",
)


class AccountLinkPage(WebPageHandler):
    """What the verify and reset pages share: the page, the dead-link page, the sign-in and redirect."""

    purpose = ""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # The path holds the token: a Referer carries the origin only.  Not no-referrer: the
        # browser would then send the form's post with "Origin: null", refused as cross-site.
        self.set_header("Referrer-Policy", "strict-origin")

    def check_xsrf_cookie(self) -> None:
        """The link's token authenticates the post; there is no cookie session to forge."""

    def show(self, state: str, heading: str, text: str, status: int = 200, error: str = "") -> None:
        limits = self.config.limits
        self.render_page(
            "account_link.html",
            status,
            state=state,
            heading=heading,
            text=text,
            error=error,
            password_min=limits.password_min,
            password_max=limits.password_max,
        )

    def gone(self) -> None:
        self.show("gone", *_GONE, status=404)

    async def get(self, token: str) -> None:
        if not await self.runner.run(account_links.link_is_live, self.purpose, token):
            self.gone()
            return
        self.ask()

    def ask(self, status: int = 200, error: str = "") -> None:
        raise NotImplementedError

    async def sign_in_and_leave(self, user) -> None:
        token = await self.runner.run(accounts.issue_token, user, self.config.token_ttl_seconds)
        self.signed_in_user_id = user.id
        self.set_session_cookie(token)
        self.redirect("/", status=303)

    def refuse_other_sites(self) -> bool:
        """Render a 403 page and say True if another site's form posted here (login CSRF)."""
        if self.cross_site_origin() is None:
            return False
        self.show(
            "gone", "Open the link from your email", "This form was sent from another site.", status=403
        )
        return True


class VerifyEmailPageHandler(AccountLinkPage):
    """``GET`` and ``POST /account/verify/{token}``."""

    purpose = account_links.VERIFY

    def ask(self, status: int = 200, error: str = "") -> None:
        self.show("verify", "Verify your email", "Press the button to verify your email address and sign in.")

    async def post(self, token: str) -> None:
        if self.refuse_other_sites():
            return
        try:
            user = await self.runner.run(account_links.verify, token)
        except ApiError as error:
            if error.status != 404:
                raise
            self.gone()
            return
        await self.sign_in_and_leave(user)


class ResetPasswordPageHandler(AccountLinkPage):
    """``GET`` and ``POST /account/reset/{token}`` (the form's ``password``)."""

    purpose = account_links.RESET

    def ask(self, status: int = 200, error: str = "") -> None:
        self.show(
            "reset",
            "Choose a new password",
            "Your other sessions are signed out when you set it.",
            status=status,
            error=error,
        )

    async def post(self, token: str) -> None:
        if self.refuse_other_sites():
            return
        password = self.get_body_argument("password", "")
        problem = validation.new_password_problem(self.config.limits, password)
        if problem is not None:
            self.ask(422, f"The password {problem}.")
            return
        try:
            user = await reset_password(self, token, password)
        except ApiError as error:
            if error.status != 404:
                raise
            self.gone()
            return
        await self.sign_in_and_leave(user)


routes = [
    Route("/account/verify/{token}", VerifyEmailPageHandler),
    Route("/account/reset/{token}", ResetPasswordPageHandler),
]
