"""What every handler shares: the application's services, authentication, JSON in and out, errors."""

from __future__ import annotations

import datetime
import hmac
import http
import logging
from typing import Any
from urllib.parse import urlparse

import tornado.web

from .. import accounts, petition_store, roles, validation, visibility, wire
from ..accounts import Identity
from ..audit import Actor
from ..db_runner import DatabaseRunner
from ..errors import ApiError
from ..hub import SocketHub
from ..invalidations import InvalidationRunner
from ..metrics import ServiceMetrics
from ..publisher import Publisher
from ..rate_limit import Limiter
from ..redaction import redact_path
from ..roles import Permission
from ..settings import Settings
from ..signature_batcher import SignatureBatcher
from ..signature_screen import SignatureScreen
from ..signers import RegionTable
from ..token_cache import TokenCache

log = logging.getLogger("tornado_petitions.handlers")

SESSION_COOKIE = "petitions_session"

# What a refused cookie-authenticated write should send instead.
XSRF_HELP = (
    "a request authenticated by the session cookie needs the XSRF token: echo the _xsrf cookie "
    "in an X-XSRFToken header; API clients send Authorization: Bearer <token> instead"
)

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_fields",
    429: "too_many_requests",
}


class ServiceMixin:
    """Typed access to the services ``make_app`` put in the application settings.

    Mixed into HTTP and WebSocket handlers alike.
    """

    application: tornado.web.Application
    request: Any
    identity: Identity | None = None
    # The request metrics' label: the path of the handler's ``Route``, or what a class without one says.
    route = "other"

    def initialize(self, route: str | None = None, **kwargs: Any) -> None:
        """Tornado passes the ``Route``'s path (``routing.Route.rule``); the rest is the handler's own."""
        if route is not None:
            self.route = route
        super().initialize(**kwargs)

    @property
    def config(self) -> Settings:
        return self.application.settings["config"]

    @property
    def hub(self) -> SocketHub:
        return self.application.settings["hub"]

    @property
    def publisher(self) -> Publisher:
        """Where committed events go: the hub itself, or the Redis bridge in front of it."""
        return self.application.settings["publisher"]

    @property
    def signatures(self) -> SignatureBatcher:
        """Where signatures go: batched, committed, then answered."""
        return self.application.settings["signatures"]

    @property
    def regions(self) -> RegionTable:
        """Postcode prefixes to regions (``--regions-file``; empty without it)."""
        return self.application.settings["regions"]

    @property
    def tokens(self) -> TokenCache:
        """Identities of tokens seen recently (the hot path's authentication)."""
        return self.application.settings["tokens"]

    @property
    def runner(self) -> DatabaseRunner:
        return self.application.settings["runner"]

    @property
    def metrics(self) -> ServiceMetrics:
        return self.application.settings["metrics"]

    @property
    def screen(self) -> SignatureScreen:
        return self.application.settings["screen"]

    @property
    def invalidations(self) -> InvalidationRunner:
        return self.application.settings["invalidations"]

    @property
    def rate_limiter(self) -> Limiter:
        return self.application.settings["rate_limiter"]

    def bearer_token(self) -> str | None:
        """The token in ``Authorization: Bearer``, if the request has one."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None

    def session_token(self) -> str | None:
        """The token in the web page's session cookie, if any."""
        return self.get_cookie(SESSION_COOKIE) or None  # type: ignore[attr-defined]

    async def authenticate(self, token: str | None) -> Identity:
        """The identity behind ``token``; 401 when missing, unknown, revoked or expired."""
        if not token:
            raise ApiError(401, "unauthorized", "sign in first: send a Bearer token")
        token_hash = accounts.hash_token(token)
        identity = self.tokens.get(token_hash)
        if identity is None:
            generation = self.tokens.generation
            identity = await self.runner.run(accounts.identify, token_hash)
            self.tokens.put(identity, generation)
        self.identity = identity
        return identity

    def cross_site_origin(self) -> str | None:
        """Where a cross-site browser request comes from; None for this site, an allowed origin, or no browser.

        ``Origin`` decides when present: this site is the request's ``Host``
        or the ``--public-url`` (behind a proxy that rewrites ``Host``), and an
        ``--allowed-origins`` site is let in too (it is cross-site by
        ``Sec-Fetch-Site``); without it, a ``Sec-Fetch-Site`` other than
        ``same-origin`` or ``none`` (typed in the address bar) is
        cross-site.  Clients that send neither header are not browsers.
        """
        origin = self.request.headers.get("Origin")
        if origin is not None:
            if origin in self.config.allowed_origins:
                return None
            netloc = urlparse(origin).netloc.lower()
            if netloc == self.request.host.lower():
                return None
            if self.config.public_url and origin.lower() == _origin_of(self.config.public_url):
                return None
            return origin
        site = self.request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return f"Sec-Fetch-Site: {site}"
        return None

    def refuse_cross_site(self, code: str, what: str) -> None:
        """403 ``code`` if a browser of another site sent this request (``cross_site_origin``), saying what to do."""
        origin = self.cross_site_origin()
        if origin is not None:
            raise ApiError(
                403,
                code,
                f"{what} from another site ({origin}) is refused: use this site's page, "
                "or add the site to --allowed-origins; API clients send no Origin header "
                "and use Authorization: Bearer <token>",
            )

    def client_address(self) -> str:
        """The client's address: the peer's, or the forwarded one with ``--xheaders``."""
        return self.request.remote_ip or "unknown"

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        """Every cookie the service sets (session, ``_xsrf``) is Secure over HTTPS or with ``--secure-cookies``."""
        if self.config.secure_cookies or self.request.protocol == "https":
            kwargs["secure"] = True
        super().set_cookie(name, value, *args, **kwargs)  # type: ignore[misc]

    def set_session_cookie(self, token: str) -> None:
        """Sign the web page in: an HttpOnly, SameSite=Lax cookie carrying the token (Secure: ``set_cookie``)."""
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=self.config.token_ttl_seconds
        )
        self.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="Lax",
            expires=expires,
            path="/",
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error, ours or Tornado's, as ``{"error": {"code", "message"}}``."""
        error = _api_error(status_code, kwargs.get("exc_info"))
        if error.status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))  # type: ignore[attr-defined]
        self.finish_with_error(error)

    def finish_with_error(self, error: ApiError) -> None:
        """Answer with ``error``'s status, headers and JSON body (also a refused socket handshake)."""
        self.set_status(error.status)  # type: ignore[attr-defined]
        for name, value in error.headers.items():
            self.set_header(name, value)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json; charset=UTF-8")  # type: ignore[attr-defined]
        self.finish(wire.dumps(error.body()))  # type: ignore[attr-defined]

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this handler implements, for the ``Allow`` header of a 405 (RFC 9110)."""
        base = tornado.web.RequestHandler
        return [
            m
            for m in cls.SUPPORTED_METHODS  # type: ignore[attr-defined]
            if getattr(cls, m.lower()) is not getattr(base, m.lower())
        ]

    def _request_summary(self) -> str:
        # Tornado's summary (in its warning and error lines) shows the query, where a ?token= may be.
        return f"{self.request.method} {redact_path(self.request.path)} ({self.request.remote_ip})"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Tornado's logging of a failed request, minus the request's ``repr`` (its query string)."""
        if isinstance(value, ApiError):
            return
        if isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)  # type: ignore[misc]
            return
        log.error("uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))


class BaseHandler(ServiceMixin, tornado.web.RequestHandler):
    """HTTP JSON handlers: body parsing, authentication, XSRF for cookie sessions, JSON errors."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> None:
        # Tracked so a graceful shutdown can wait for requests still running.
        self.application.in_flight.add(self)
        self.require_json_body()

    def on_finish(self) -> None:
        self.application.in_flight.discard(self)

    def require_json_body(self) -> None:
        """415 for a body that is not ``application/json``: no plain HTML form can post to a JSON endpoint.

        A form's ``text/plain`` or urlencoded body is sent cross-site without
        a preflight; JSON is not.  Bodiless requests (``DELETE``, an empty
        ``POST``) need no Content-Type.
        """
        if self.request.method not in ("POST", "PATCH", "PUT") or not self.request.body:
            return
        media_type = self.request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the body must be JSON sent with Content-Type: application/json, "
                f"not {media_type or 'no Content-Type'}",
            )

    def check_xsrf_cookie(self) -> None:
        """A write the session cookie authenticates must come from this site and carry the XSRF token.

        Bearer clients cannot be forged and need neither.  A browser of
        another site (``Origin``, else ``Sec-Fetch-Site``) is 403
        ``cross_site_write``.  The token is read from the ``X-XSRFToken``
        header only, never the query string or a form body (Tornado reads
        its ``_xsrf`` argument): a site that can plant an ``_xsrf`` cookie
        (a sibling subdomain) still cannot add a header to a form post.  A
        missing or wrong token is 403 ``xsrf_failed`` saying what to send.
        """
        if self.bearer_token() is not None or self.session_token() is None:
            return
        self.refuse_cross_site("cross_site_write", "a change")
        sent = self.request.headers.get("X-XSRFToken", "")
        _, token, _ = self._decode_xsrf_token(sent)
        _, expected, _ = self._get_raw_xsrf_token()
        if not token or not hmac.compare_digest(token, expected):
            raise ApiError(403, "xsrf_failed", XSRF_HELP)

    async def current_identity(self) -> Identity:
        """The signed-in caller (Bearer token first, then the session cookie), or 401."""
        if self.identity is not None:
            return self.identity
        return await self.authenticate(self.bearer_token() or self.session_token())

    async def viewer(self) -> Identity | None:
        """The signed-in caller, or None when signed out (or with a token no longer good): for reads anyone may make."""
        if self.identity is not None:
            return self.identity
        token = self.bearer_token() or self.session_token()
        if not token:
            return None
        try:
            return await self.authenticate(token)
        except ApiError as error:
            if error.status != 401:
                raise
            return None

    async def visible_petition(self, petition_id: int) -> dict:
        """The petition if the caller may see it (``visibility``); 404, as for one that does not exist, if not."""
        petition = await self.runner.run(petition_store.get_petition, petition_id)
        if not visibility.may_see(petition, await self.viewer()):
            raise ApiError(404, "not_found", f"petition {petition_id} does not exist")
        return petition

    async def require(self, permission: Permission) -> Identity:
        """The signed-in caller if their role holds ``permission`` (``roles.GRANTS``); 401 or 403 otherwise."""
        identity = await self.current_identity()
        roles.require(identity.role, permission)
        return identity

    def actor(self, identity: Identity) -> Actor:
        """``identity`` acting from this request's client address, for the audit log."""
        return Actor(identity, self.client_address())

    def read_body(self, name: str) -> Any:
        """The body as the request model ``name`` (``validation.py``); 400 when not JSON, 422 naming every bad field."""
        return validation.read_body(self.config.limits, name, self.request.body)

    def write_json(self, document: Any, status: int = 200) -> None:
        """Finish the response with ``document`` encoded by ujson."""
        self.set_status(status)
        self.finish(wire.dumps(document))


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as a browser's ``Origin`` header says it."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _api_error(status_code: int, exc_info: Any) -> ApiError:
    if exc_info is not None:
        error = exc_info[1]
        if isinstance(error, ApiError):
            return error
        if isinstance(error, tornado.web.HTTPError) and error.status_code < 500:
            message = error.log_message or http.HTTPStatus(error.status_code).phrase
            if error.args and error.log_message:
                message = error.log_message % error.args
            code = _ERROR_CODES.get(error.status_code, "error")
            if error.status_code == 403 and "xsrf" in (error.log_message or "").lower():
                code = "xsrf_failed"
            return ApiError(error.status_code, code, message)
    if status_code >= 500:
        return ApiError(500, "internal_error", "the server failed to handle the request")
    phrase = (
        http.HTTPStatus(status_code).phrase if status_code in http.HTTPStatus._value2member_map_ else "error"
    )
    return ApiError(status_code, _ERROR_CODES.get(status_code, "error"), phrase)


class NotFoundHandler(BaseHandler):
    """Any path no route claims: a JSON 404 rather than Tornado's HTML page."""

    route = "unmatched"

    def prepare(self) -> None:
        raise ApiError(404, "not_found", f"no route for {self.request.path}")


class StaticHandler(ServiceMixin, tornado.web.StaticFileHandler):
    """``/static/``: Tornado's file handler with the API's JSON errors, and a 404 for a path no file can have."""

    route = "static"

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        """Tornado's check, where a NUL (``/static/%00``) is a missing file rather than a ValueError (500)."""
        if "\x00" in absolute_path:
            raise ApiError(404, "not_found", "no such file")
        return super().validate_absolute_path(root, absolute_path)
