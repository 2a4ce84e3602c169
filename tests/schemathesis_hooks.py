"""Schemathesis hooks for ``st run`` (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): an admin's token.

Every operation gets the admin's Bearer token as schemathesis' own auth, so
its checks know what authentication is (and can leave it out on purpose).
``POST /api/auth/logout`` revokes the token it is called with, so each call
of it signs in afresh instead of revoking the one the others use.  The
server and the admin come from ``PETITIONS_URL``, ``PETITIONS_ADMIN_EMAIL``
and ``PETITIONS_ADMIN_PASSWORD``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request

import schemathesis

from tests.schemathesis_cases import leaves_out_authorization


def sign_in() -> str:
    body = {"email": os.environ["PETITIONS_ADMIN_EMAIL"], "password": os.environ["PETITIONS_ADMIN_PASSWORD"]}
    request = urllib.request.Request(
        os.environ["PETITIONS_URL"] + "/api/auth/login",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


@schemathesis.auth()
class AdminToken:
    """The admin's token for every call; a token of its own for each logout."""

    def get(self, case, context) -> str:
        return sign_in()

    def set(self, case, data: str, context) -> None:
        if leaves_out_authorization(case):
            return
        token = sign_in() if case.operation.path == "/api/auth/logout" else data
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """An unsubscribe link carries an HMAC no generator can guess: a well-formed one becomes a real link.

    ``PETITIONS_UNSUBSCRIBE`` is ``<user_id>/<token>`` of a citizen of the
    server under test; negative cases keep what was generated (and get 404).
    """
    if case.operation.path == "/api/signatures/confirm":
        _real_confirmation(case)
        return
    link = os.environ.get("PETITIONS_UNSUBSCRIBE")
    if not link or not case.operation.path.startswith("/unsubscribe/"):
        return
    if case.meta is not None and case.meta.generation.mode.value != "positive":
        return
    params = case.path_parameters or {}
    user_id, token = params.get("user_id"), params.get("token")
    if isinstance(user_id, int) and isinstance(token, str) and re.fullmatch("[0-9a-f]{32}", token):
        real_user, real_token = link.split("/")
        case.path_parameters = {**params, "user_id": int(real_user), "token": real_token}


def _real_confirmation(case) -> None:
    """A confirmation token is an HMAC too: a well-formed body gets the real one (``PETITIONS_CONFIRM_TOKEN``)."""
    token = os.environ.get("PETITIONS_CONFIRM_TOKEN")
    if not token or (case.meta is not None and case.meta.generation.mode.value != "positive"):
        return
    if isinstance(case.body, dict) and isinstance(case.body.get("token"), str):
        case.body = {**case.body, "token": token}
