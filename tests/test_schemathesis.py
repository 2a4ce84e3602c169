"""Schemathesis against the live server: every operation, zero server errors, every response as documented.

The schema is the document the server builds for its default settings
(``test_openapi`` checks the server serves exactly that).  The server is a
real ``serve`` process; requests carry an admin's Bearer token, so the admin
operation is exercised past its 403, on petitions that exist.  The last
test runs the ``st`` command as a user would, with every phase (the
stateful one follows the document's links from a petition just filed to its
reads, status moves, signing and withdrawing) and every default check,
nothing excluded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from tests.live_server import GENEROUS_RATE_FLAGS, LiveServer
from tests.schemathesis_cases import leaves_out_authorization
from tests.smtp_catcher import SmtpCatcher
from tornado_petitions.mail_outbox import unsubscribe_token
from tornado_petitions.openapi import build_document
from tornado_petitions.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin password"
MAIL_SECRET = "schemathesis mail secret"
# The example budget per operation: enough to cover each schema's corners, small enough for CI.
EXAMPLES_PER_OPERATION = 30

# The checks' settings, shared with the ``st run`` below: schemathesis.toml at the root.
CONFIG_FILE = ROOT / "schemathesis.toml"
CONFIG = SchemathesisConfig.from_path(str(CONFIG_FILE))
schema = schemathesis.openapi.from_dict(build_document(Settings()), config=CONFIG)


@pytest.fixture(scope="module")
def catcher():
    server = SmtpCatcher().start()
    yield server
    server.stop()


def confirmation_token(server: LiveServer, catcher: SmtpCatcher) -> str:
    """Sign petition 1 without an account; the token of the link mailed for it."""
    signer = {"name": "Sam", "email": "sam@example.org", "country": "GB"}
    assert server.call("POST", "/api/petitions/1/signatures", signer)[0] == 202
    deadline = time.monotonic() + 20.0
    while "sam@example.org" not in catcher.recipients() and time.monotonic() < deadline:
        time.sleep(0.05)
    [message] = [message for to, message in catcher.messages if to == "sam@example.org"]
    return re.search(r"/signatures/confirm/([0-9A-Za-z]+)", message.get_content()).group(1)


@pytest.fixture(scope="module")
def live(tmp_path_factory, catcher):
    server = LiveServer(
        tmp_path_factory.mktemp("schemathesis"),
        *GENEROUS_RATE_FLAGS,
        "--mail-secret",
        MAIL_SECRET,
        f"--smtp-url={catcher.url}",
        # Registration signs in at once, as the stateful links expect (test_account_mail.py verifies).
        "--verify-email=off",
    )
    server.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, admin=True)
    server.start()
    server.admin_token = server.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    # A citizen whose unsubscribe link the hooks hand to schemathesis (it cannot guess an HMAC).
    citizen = server.register("reader@example.org")["user"]["user_id"]
    server.unsubscribe = f"{citizen}/{unsubscribe_token(MAIL_SECRET.encode(), citizen)}"
    # Petitions 1..6 exist, in several statuses, so small generated ids reach real rows.
    for number, moves in enumerate(
        ([], ["under_review"], ["rejected"], ["under_review", "in_progress"], [], [])
    ):
        body = {"title": f"Petition number {number}", "description": "Something to fix."}
        status, petition, _ = server.call("POST", "/api/petitions", body, server.admin_token)
        assert status == 201, petition
        for target in moves:
            change = {"status": target, "note": "looked at it"}
            path = f"/api/petitions/{petition['petition_id']}/status"
            assert server.call("PATCH", path, change, server.admin_token)[0] == 200
    # A signature without an account whose confirmation token the hooks hand to schemathesis.
    try:
        server.confirm_token = confirmation_token(server, catcher)
    except BaseException:
        server.stop()
        raise
    yield server
    log = server.stop_cleanly()
    assert "Traceback" not in log, log
    assert " 500 " not in log, log


def call_kwargs(live: LiveServer, case) -> dict:
    """Where to send ``case`` and with which token (none for a case that tests leaving it out)."""
    if leaves_out_authorization(case):
        return {"base_url": live.url}
    token = live.admin_token
    if case.operation.path == "/api/auth/logout":
        # Logging out revokes the token it is called with: give it a token of its own.
        token = live.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)["token"]
    return {"base_url": live.url, "headers": {"Authorization": f"Bearer {token}"}}


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None)
def test_api_conforms_to_its_document(case, live):
    case.call_and_validate(**call_kwargs(live, case))


# About a minute on an idle machine; several times that on cores shared with other test workers.
@pytest.mark.timeout(900)
def test_schemathesis_run_with_every_check_and_the_stateful_phase_finds_nothing(live, tmp_path):
    """``st run`` as docs/testing.md gives it: every phase (stateful too), every default check, nothing excluded."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
        "PETITIONS_URL": live.url,
        "PETITIONS_ADMIN_EMAIL": ADMIN_EMAIL,
        "PETITIONS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PETITIONS_UNSUBSCRIBE": live.unsubscribe,
        "PETITIONS_CONFIRM_TOKEN": live.confirm_token,
    }
    command = [str(Path(sys.executable).with_name("st")), "--no-color", "--config-file", str(CONFIG_FILE)]
    command += ["run", live.url + "/api/openapi.json"]
    command += ["--max-examples", str(EXAMPLES_PER_OPERATION), "--generation-database", "none"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Stateful" in done.stdout and "No issues found" in done.stdout, done.stdout
