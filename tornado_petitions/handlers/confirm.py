"""The page a confirmation mail links to: ``GET`` shows a Confirm button and changes nothing, its form ``POST`` counts.

Mail scanners follow links, so opening the link never counts a signature;
the button's form post does, through the same ``confirm_signature`` as
``POST /api/signatures/confirm``.  The token in the path is the credential
(no cookie session to forge), so the form needs no XSRF token.
"""

from __future__ import annotations

from .. import signature_store, signers
from ..errors import ApiError
from .page import WebPageHandler
from .petitions import confirm_signature
from .routing import Route

_TEXT = {
    "pending": (
        "Confirm your signature",
        "Press the button to confirm: only then does your signature count.",
    ),
    "validated": ("Your signature counts", "Thank you: your signature is confirmed and counted, once."),
    "gone": (
        "This link does not work",
        "It is unknown or has expired. Sign the petition again for a new one.",
    ),
    "not_open": ("Signing has stopped", "This petition no longer takes signatures."),
}


class ConfirmSignaturePageHandler(WebPageHandler):
    """``GET`` and ``POST /signatures/confirm/{token}``."""

    def check_xsrf_cookie(self) -> None:
        """The link's token authenticates the post; there is no cookie session to forge."""

    def _show(self, state: str, petition: dict | None, status: int = 200) -> None:
        heading, text = _TEXT[state]
        self.render_page(
            "confirm_signature.html", status, heading=heading, text=text, state=state, petition=petition
        )

    async def get(self, token: str) -> None:
        found = await self.runner.run(signature_store.link_state, signers.token_hash(token))
        if found is None:
            self._show("gone", None, 404)
            return
        petition, state = found
        self._show(state, petition)

    async def post(self, token: str) -> None:
        try:
            answer = await confirm_signature(self, token)
        except ApiError as error:
            if error.status not in (404, 409):
                raise
            self._show("gone" if error.status == 404 else "not_open", None, error.status)
            return
        found = await self.runner.run(signature_store.link_state, signers.token_hash(token))
        self._show(answer["state"], found[0] if found else None)


routes = [
    Route("/signatures/confirm/{token}", ConfirmSignaturePageHandler),
]
