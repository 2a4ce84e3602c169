"""A real SMTP server (aiosmtpd) in the test process, on a free port, keeping every mail it accepts.

It runs in aiosmtpd's own thread and loop, so it serves the in-loop app and
``serve`` subprocesses alike.  ``refuse`` makes it answer chosen recipients
with an SMTP error, to test temporary (4xx) and permanent (5xx) refusals.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.workers import free_port


class SmtpCatcher:
    """Start with ``start()``, stop with ``stop()``; ``messages`` holds (recipient, parsed mail) pairs."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._messages: list[tuple[str, EmailMessage]] = []
        # recipient (or "MAIL FROM") -> [reply, how many more times (None: always)]
        self.refuse: dict[str, list] = {}
        # One entry per SMTP connection that sent MAIL FROM (kept, so no two share an identity).
        self._sessions: list = []
        self.controller: Controller | None = None

    def start(self) -> SmtpCatcher:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self._lock:
            if not any(seen is session for seen in self._sessions):
                self._sessions.append(session)
            rule = self.refuse.get("MAIL FROM")
            if rule is not None and (rule[1] is None or rule[1] > 0):
                if rule[1] is not None:
                    rule[1] -= 1
                return rule[0]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            rule = self.refuse.get(address)
            if rule is not None and (rule[1] is None or rule[1] > 0):
                if rule[1] is not None:
                    rule[1] -= 1
                return rule[0]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            for recipient in envelope.rcpt_tos:
                self._messages.append((recipient, message))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[tuple[str, EmailMessage]]:
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many SMTP connections have sent mail (or tried to)."""
        with self._lock:
            return len(self._sessions)

    def recipients(self) -> list[str]:
        return [recipient for recipient, _ in self.messages]

    def wait_sync(self, count: int, timeout: float) -> list[tuple[str, EmailMessage]]:
        """Block until ``count`` mails arrived (for tests whose server is another process)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    async def wait(self, count: int, timeout: float) -> list[tuple[str, EmailMessage]]:
        """Wait, without blocking the test's loop (the in-loop app sends from it), for ``count`` mails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.messages
