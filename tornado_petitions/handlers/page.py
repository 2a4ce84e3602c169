"""The web pages: ``GET /`` (the list, sign-in, filing, the admins' dashboard) and ``GET /petitions/{id}``.

Both are one HTML document each, rendered with the signed-in user (if any)
and the lifecycle table and limits the scripts need. Everything else they do
goes through the public HTTP API and the WebSocket channels, authenticated
by the session cookie that sign-in sets. ``/petitions/{id}`` also carries the
petition's title and description in ``<title>`` and Open Graph tags, so a
shared link previews without running a script.
"""

from __future__ import annotations

import secrets

import tornado.web

from .. import petition_store, visibility, wire
from ..errors import ApiError
from ..lifecycle import DEFAULT_REJECTION_REASON, NOTE_REQUIRED, REJECTION_REASONS, STATUSES, TRANSITIONS
from ..roles import ROLES, permissions_by_role
from .base import SESSION_COOKIE, ServiceMixin
from .routing import Route

# The script modules, by the bare names they import each other with (see the import map).
SCRIPT_MODULES = (
    "api.js",
    "feed.js",
    "render.js",
    "session.js",
    "dashboard.js",
    "people.js",
    "fraud_panel.js",
    "app.js",
    "petition.js",
    "chart.js",
)
# The chart library, vendored from its npm package (static/vendor/uplot/README.md).
UPLOT_VERSION = "1.6.32"
# Open Graph descriptions are previews: a couple of sentences, not the whole text.
PREVIEW_CHARS = 300


class WebPageHandler(ServiceMixin, tornado.web.RequestHandler):
    """Shared by the pages: security headers, a CSP nonce, the import map, the signed-in user."""

    route = "page"
    signed_in_user_id: int | str = "-"

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Frame-Options", "DENY")

    def render_page(self, template: str, status: int = 200, **namespace) -> None:
        """Render ``template`` with a fresh nonce, the import map and ``page_config`` (JSON)."""
        # Reading the token sets the ``_xsrf`` cookie the script echoes in X-XSRFToken.
        self.xsrf_token  # noqa: B018
        nonce = secrets.token_urlsafe(16)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'nonce-%s'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" % nonce,
        )
        config = namespace.pop("page_config", {})
        self.render(
            template,
            nonce=nonce,
            page_config=wire.dumps_for_html(config),
            import_map=wire.dumps_for_html(
                {"imports": {name: self.static_url(name) for name in SCRIPT_MODULES}}
            ),
            **namespace,
        )

    async def signed_in_user(self) -> dict | None:
        """The user the session cookie stands for, or None (no cookie, or one no longer valid)."""
        token = self.session_token()
        if not token:
            return None
        try:
            identity = await self.authenticate(token)
        except ApiError:
            # Revoked or expired: forget it, or the page's sockets would offer it and get 401.
            self.clear_cookie(SESSION_COOKIE, path="/")
            return None
        self.signed_in_user_id = identity.user_id
        return identity.to_dict()

    def page_config(self, user: dict | None) -> dict:
        """What the scripts take from the server instead of repeating it: who, lifecycle, limits."""
        limits = self.config.limits
        return {
            "user": user,
            # Signed-out visitors may sign with their email (a confirmation link is mailed).
            "anonymous_signing": bool(self.config.smtp_url),
            "roles": list(ROLES),
            "permissions": permissions_by_role(),
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
                "postcode_max": limits.postcode_max,
            },
        }

    def write_error(self, status_code: int, **kwargs) -> None:
        """A page's own errors are HTML pages (a person reads them), not the API's JSON."""
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.render_page("not_found.html" if status_code == 404 else "error.html", status=status_code)


class PageHandler(WebPageHandler):
    """``GET /``: the public list for everyone; filing and "My petitions" signed in; the dashboard for admins."""

    async def get(self) -> None:
        user = await self.signed_in_user()
        self.render_page("index.html", page_config=self.page_config(user))

    async def head(self) -> None:
        await self.get()


class PetitionPageHandler(WebPageHandler):
    """``GET /petitions/{id}``: one petition's page, live, with its chart; a 404 page for an unknown id."""

    async def get(self, petition_id: str) -> None:
        try:
            if not (petition_id.isascii() and petition_id.isdigit() and len(petition_id) <= 15):
                raise ApiError(404, "not_found", "no such petition")
            petition = await self.runner.run(petition_store.get_petition, int(petition_id))
            user = await self.signed_in_user()
            if not visibility.may_see(petition, self.identity if user is not None else None):
                raise ApiError(404, "not_found", "no such petition")
        except ApiError as error:
            if error.status != 404:
                raise
            self.send_error(404)
            return
        config = self.page_config(user)
        config["petition"] = petition
        self.render_page(
            "petition.html",
            page_config=config,
            petition=petition,
            preview=_preview(petition["description"]),
            page_url=f"{self.config.public_base_url()}/petitions/{petition['petition_id']}",
            uplot_version=UPLOT_VERSION,
            limits=self.config.limits,
        )

    async def head(self, petition_id: str) -> None:
        await self.get(petition_id)


def _preview(text: str) -> str:
    """The description as a one-paragraph preview of at most PREVIEW_CHARS characters."""
    flat = " ".join(text.split())
    if len(flat) <= PREVIEW_CHARS:
        return flat
    return flat[: PREVIEW_CHARS - 1].rsplit(" ", 1)[0] + "…"


routes = [
    Route("/", PageHandler),
    # Any text after /petitions/: the page answers a 404 page to what is not a petition id.
    Route("/petitions/{id}", PetitionPageHandler, pattern=r"/petitions/([^/]+)/?"),
]
