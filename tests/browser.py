"""What the browser tests share: Chromium, where screenshots go, the admin account.

The service they test is ``python -m tornado_petitions serve`` as a user runs
it: ``tests.live_server.LiveServer``, so a restart is a real SIGTERM and a real
start on the same port and database.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "browser"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin password"
