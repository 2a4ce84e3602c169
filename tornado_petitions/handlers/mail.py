"""The unsubscribe link every mail carries (``List-Unsubscribe``), for people and for one-click mail clients."""

from __future__ import annotations

import html

import tornado.web

from .. import mail_outbox
from ..errors import ApiError
from .base import ServiceMixin
from .routing import Route

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>%(title)s</h1><p>%(text)s</p>%(form)s</main></body></html>
"""

_FORM = '<form method="post"><button type="submit">Stop emails about petitions</button></form>'


class UnsubscribeHandler(ServiceMixin, tornado.web.RequestHandler):
    """``GET /unsubscribe/{user_id}/{token}`` asks to confirm; ``POST`` (the form, or RFC 8058 one-click) stops mail.

    GET changes nothing, so a mail scanner that follows links cannot
    unsubscribe anyone.  The HMAC token is the credential, not a cookie, so
    POST needs no XSRF token.
    """

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header(
            "Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'"
        )

    def check_xsrf_cookie(self) -> None:
        """The signed link authenticates the request; there is no cookie session to forge."""

    def _check(self, user_id: str, token: str) -> int:
        if not mail_outbox.token_matches(self.application.mail_key, int(user_id), token):
            raise ApiError(404, "not_found", "this unsubscribe link is not valid")
        return int(user_id)

    def _page(self, title: str, text: str, form: bool) -> None:
        values = {"title": html.escape(title), "text": html.escape(text), "form": _FORM if form else ""}
        self.finish(_PAGE % values)

    async def get(self, user_id: str, token: str) -> None:
        user = self._check(user_id, token)
        if not await self.runner.run(mail_outbox.email_updates, user):
            self._page("You are unsubscribed", "You get no emails about petitions.", form=False)
            return
        self._page(
            "Stop emails?", "You will no longer get emails about petitions you started or signed.", True
        )

    async def post(self, user_id: str, token: str) -> None:
        user = self._check(user_id, token)
        await self.runner.run(mail_outbox.set_email_updates, user, False)
        self._page("You are unsubscribed", "You will get no more emails about petitions.", form=False)


routes = [
    Route(
        "/unsubscribe/{user_id}/{token}",
        UnsubscribeHandler,
        {"get": "unsubscribePage", "post": "unsubscribe"},
    ),
]
