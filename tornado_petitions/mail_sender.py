"""The tasks that drain the mail outbox through an SMTP server, without ever blocking a request.

Started by ``PetitionsApplication.start`` only when ``--smtp-url`` is set.
Mail travels in two lanes (``mail_outbox.lane_of``): transactional mail (a
link to verify an email, reset a password or confirm a signature: someone
is waiting) goes first and unpaced; notifications go at no more than
``--mail-per-second``.  Each lane has a few couriers (``mail_courier``),
each leasing due rows of its lane (``mail_outbox.claim``) and sending them
over its own kept-open aiosmtplib connection, so a million notifications
waiting never delay a confirmation by more than one mail's send.  A row is
marked sent only after the server accepted it.  While the server is down (or
answers 421) it gives its leases back and tries again with a backoff that
never exceeds ``--mail-retry-max`` (10 s); a 4xx for one mail retries that
row later; a 5xx gives that row up with a log line.  A row that cannot be
mailed at all (an address stored before addresses were checked, a header
that cannot be written) is marked failed with why, and the batch goes on:
one row never holds up the others.

Headers are built from parts (``email.headerregistry.Address``: display
name and address apart), and text from users is made one line without
controls or bidi overrides first, so no name or title can add a recipient
or a header.

The one window that can send a mail twice: the server accepted it and the
process died before ``mark_sent`` committed.  Nothing can be lost: a row
stays pending until it is marked, and a dead sender's lease runs out.
"""

from __future__ import annotations

import asyncio
import email.errors
import email.policy
import email.utils
import logging
import re
import secrets
import unicodedata
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

import aiosmtplib

from . import account_mail, mail_outbox, signature_mail
from .db_runner import DatabaseRunner
from .mail_courier import SMTP_TIMEOUT, MailCourier
from .metrics import ServiceMetrics
from .settings import Settings, SettingsError

log = logging.getLogger("tornado_petitions.mail")

# SMTP connections per lane, each kept open for many mails: transactional mail (links someone
# waits for) never queues behind notifications, and a slow reply holds up one connection only.
TRANSACTIONAL_COURIERS = 2
NOTIFICATION_COURIERS = 2

_MILESTONE_TEXT = {
    "response": "It has reached {threshold:,} signatures, so the government will respond to it.",
    "debate": "It has reached {threshold:,} signatures, so it will be considered for a debate.",
}


# Characters that reorder or hide text (Unicode bidi embeddings, overrides, isolates and marks):
# in a display name or subject they can make a mail claim to be from or about something else.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# The mail as sent: 7-bit, so no server needs SMTPUTF8 or 8BITMIME for it (every address stored is
# ASCII, other text goes as encoded words and a base64 or quoted-printable body).
_WIRE_POLICY = email.policy.SMTP.clone(cte_type="7bit")
# What a URL in a header may hold: printable ASCII, no spaces (so no line breaks either).
_HEADER_URL = re.compile(r"[!-~]+")


def _one_line(text: str) -> str:
    """Header-safe text: one line, no control characters or bidi controls (a title or a name could carry them)."""
    kept = "".join(" " if unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS else c for c in text)
    return " ".join(kept.split())


def _status_label(status: str) -> str:
    return status.replace("_", " ")


class MailSender:
    """Drains the outbox at a set pace; ``start()`` in the running loop, ``await stop()`` to end."""

    def __init__(
        self, settings: Settings, runner: DatabaseRunner, metrics: ServiceMetrics, key: bytes
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.metrics = metrics
        self.key = key
        self.owner = secrets.token_hex(8)  # this process's name on the leases it takes
        url = urlparse(settings.smtp_url or "")
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise SettingsError("--smtp-url must be smtp://host:port or smtps://host:port")
        self._tls = url.scheme == "smtps"
        self._host = url.hostname
        self._port = url.port or (465 if self._tls else 25)
        self._username = unquote(url.username) if url.username else None
        self._password = unquote(url.password) if url.password else None
        rate = max(settings.mail_per_second, 0.001)
        self._interval = 1.0 / rate
        # About two seconds of mail per claim (split between the couriers); the lease covers
        # sending all of it twice over.
        self._batch = max(1, min(100, int(rate * 2 / NOTIFICATION_COURIERS)))
        self._lease = 2 * self._batch * NOTIFICATION_COURIERS / rate + SMTP_TIMEOUT + 5
        try:
            self._from = Address(addr_spec=settings.mail_from)
        except (ValueError, IndexError, email.errors.HeaderParseError) as error:
            raise SettingsError(f"--mail-from must be an email address (user@host): {error}") from None
        if not settings.mail_from.isascii() or self._from.addr_spec != settings.mail_from:
            raise SettingsError("--mail-from must be an ASCII email address (user@host), nothing else")
        if not _HEADER_URL.fullmatch(settings.public_base_url()):
            raise SettingsError("--public-url must be a URL without spaces or non-ASCII characters")
        self._domain = self._from.domain or "localhost"
        self.mail_from = self._from
        self._next_send = 0.0
        self._depth_at = 0.0
        self.stopping = False
        self._wake = {lane: asyncio.Event() for lane in (mail_outbox.TRANSACTIONAL, mail_outbox.NOTIFICATION)}
        # Transactional mail: small claims, so a few couriers share a burst; the lease covers a
        # slow server.  Notifications: about two seconds of mail per claim, leased for twice that.
        self.couriers = [
            MailCourier(
                self, mail_outbox.TRANSACTIONAL, f"{self.owner}-t{n}", 10, 10 * SMTP_TIMEOUT, polls=n == 0
            )
            for n in range(TRANSACTIONAL_COURIERS)
        ] + [
            MailCourier(
                self, mail_outbox.NOTIFICATION, f"{self.owner}-n{n}", self._batch, self._lease, polls=n == 0
            )
            for n in range(NOTIFICATION_COURIERS)
        ]
        self._tasks: list[asyncio.Task] = []

    one_line = staticmethod(_one_line)

    @property
    def server_name(self) -> str:
        return f"{self._host}:{self._port}"

    def start(self) -> None:
        """Start every courier in the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(courier.run()) for courier in self.couriers]

    def wake(self) -> None:
        """Something was queued: every lane looks now rather than at its next poll."""
        for event in self._wake.values():
            event.set()

    def wake_event(self, lane: int) -> asyncio.Event:
        """What a courier of ``lane`` waits on while its lane is empty."""
        return self._wake[lane]

    async def stop(self) -> None:
        """Stop after the mails in flight, give back the leases, close the SMTP connections."""
        self.stopping = True
        self.wake()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for courier in self.couriers:
            await courier.close()

    async def refresh_depth(self) -> None:
        """Set the outbox depth gauge, at most once a second whichever courier asks."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._depth_at >= 1.0:
            self._depth_at = loop.time()
            self.metrics.mail_depth.set(await self.runner.run(mail_outbox.depth))

    async def pace(self) -> None:
        """Wait for the next notification slot (``--mail-per-second`` across every notification courier).

        The slot is taken before the wait, so couriers waiting together get
        successive slots rather than one each.
        """
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_send)
        self._next_send = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def new_connection(self) -> aiosmtplib.SMTP:
        """An SMTP client for ``--smtp-url``, not yet connected."""
        return aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._tls,
            timeout=SMTP_TIMEOUT,
        )

    def wire_bytes(self, row: dict, recipient: str) -> bytes:
        """The mail of ``row`` as sent (7-bit); raises ``ValueError`` when it cannot be built."""
        return self.compose(row, recipient).as_bytes(policy=_WIRE_POLICY)

    def unsubscribe_url(self, user_id: int) -> str:
        """The signed link that stops mail to ``user_id``."""
        token = mail_outbox.unsubscribe_token(self.key, user_id)
        return f"{self.settings.public_base_url()}/unsubscribe/{user_id}/{token}"

    def compose(self, row: dict, recipient: str) -> EmailMessage:
        """The plain-text mail of one outbox row to ``recipient`` (``addresses.normalize``d), with one-click unsubscribe (RFC 8058).

        Raises ``ValueError`` when a header cannot be built from the row.
        """
        if row["kind"] in mail_outbox.SIGNER_KINDS:
            return signature_mail.compose(self.settings, self.key, row, self._domain, self._from, recipient)
        if row["kind"] in mail_outbox.ACCOUNT_KINDS:
            to = Address(display_name=_one_line(row["name"]), addr_spec=recipient)
            return account_mail.compose(self.settings, row, to=to, sender=self._from, domain=self._domain)
        title = _one_line(row["title"])
        link = f"{self.settings.public_base_url()}/petitions/{row['petition_id']}"
        unsubscribe = self.unsubscribe_url(row["user_id"])
        lines = [row["title"], ""]
        if row["kind"] == "milestone":
            threshold = (
                self.settings.response_threshold
                if row["milestone"] == "response"
                else self.settings.debate_threshold
            )
            subject = f"Petition milestone: {title}"
            lines.append(
                _MILESTONE_TEXT.get(row["milestone"], "It has reached a milestone.").format(
                    threshold=threshold
                )
            )
            lines.append(f"Its status: {_status_label(row['status'])}.")
        else:
            subject = f"Petition {_status_label(row['status'])}: {title}"
            lines.append(f"New status: {_status_label(row['status'])}.")
        if row["note"]:
            lines += ["", "Note from the petitions office:", row["note"]]
        lines += [
            "",
            f"Read the petition: {link}",
            "",
            "-- ",
            "You receive this because you started or signed this petition.",
            f"To stop these emails: {unsubscribe}",
        ]
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = Address(display_name=_one_line(row["name"]), addr_spec=recipient)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        # The same id on a resend (the one crash window), so a mail client can fold the two.
        message["Message-ID"] = f"<outbox-{row['row_id']}@{self._domain}>"
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content("\n".join(lines) + "\n")
        return message
