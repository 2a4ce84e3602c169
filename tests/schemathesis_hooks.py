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
import urllib.request

import schemathesis


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
        token = sign_in() if case.operation.path == "/api/auth/logout" else data
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
