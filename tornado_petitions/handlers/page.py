"""The web page at ``GET /``: one HTML document, with the lifecycle table and limits the script needs.

Everything else the page does goes through the public HTTP API and the
WebSocket channels, authenticated by the session cookie that sign-in sets.
"""

from __future__ import annotations

import secrets

import tornado.web

from .. import wire
from ..lifecycle import DEFAULT_REJECTION_REASON, NOTE_REQUIRED, REJECTION_REASONS, STATUSES, TRANSITIONS
from .base import ServiceMixin

# The script modules, by the bare names they import each other with (see the import map).
SCRIPT_MODULES = ("api.js", "feed.js", "render.js", "app.js")


class PageHandler(ServiceMixin, tornado.web.RequestHandler):
    """``GET /``: the page, with a fresh ``_xsrf`` cookie and a strict Content-Security-Policy."""

    route = "/"

    def get(self) -> None:
        # Reading the token sets the ``_xsrf`` cookie the script echoes in X-XSRFToken.
        self.xsrf_token  # noqa: B018
        nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'nonce-%s'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" % nonce,
        )
        self.render(
            "index.html",
            nonce=nonce,
            page_config=wire.dumps_for_html(self.page_config()),
            import_map=wire.dumps_for_html(
                {"imports": {name: self.static_url(name) for name in SCRIPT_MODULES}}
            ),
        )

    def head(self) -> None:
        self.get()

    def page_config(self) -> dict:
        """What the script takes from the server instead of repeating it: lifecycle and limits."""
        limits = self.config.limits
        return {
            "statuses": list(STATUSES),
            "transitions": {status: list(targets) for status, targets in TRANSITIONS.items()},
            "note_required": sorted(NOTE_REQUIRED),
            "rejection_reasons": list(REJECTION_REASONS),
            "default_rejection_reason": DEFAULT_REJECTION_REASON,
            "limits": {
                "title_min": limits.title_min,
                "title_max": limits.title_max,
                "description_max": limits.description_max,
                "category_max": limits.category_max,
                "location_max": limits.location_max,
                "note_max": limits.note_max,
                "name_max": limits.name_max,
                "email_max": limits.email_max,
                "password_min": limits.password_min,
                "password_max": limits.password_max,
            },
        }


default_handlers = [
    (r"/", PageHandler),
]
