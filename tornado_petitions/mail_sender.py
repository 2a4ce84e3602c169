"""The task that drains the mail outbox through an SMTP server, paced, without ever blocking a request.

Started by ``PetitionsApplication.start`` only when ``--smtp-url`` is set.
It leases due rows (``mail_outbox.claim``), sends each over one kept-open
aiosmtplib connection at no more than ``--mail-per-second``, and marks the
row sent only after the server accepted it.  While the server is down (or
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

from . import account_mail, addresses, mail_outbox, signature_mail
from .db_runner import DatabaseRunner
from .metrics import ServiceMetrics
from .settings import Settings, SettingsError

log = logging.getLogger("tornado_petitions.mail")

# Seconds past a put-off row's due time that the sender looks for it again.
RETRY_MARGIN = 0.05
# Seconds one SMTP command may take before the connection counts as down.
SMTP_TIMEOUT = 10.0

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
        # About two seconds of mail per claim; the lease covers sending all of it twice over.
        self._batch = max(1, min(100, int(rate * 2)))
        self._lease = 2 * self._batch / rate + SMTP_TIMEOUT + 5
        try:
            self._from = Address(addr_spec=settings.mail_from)
        except (ValueError, IndexError, email.errors.HeaderParseError) as error:
            raise SettingsError(f"--mail-from must be an email address (user@host): {error}") from None
        if not settings.mail_from.isascii() or self._from.addr_spec != settings.mail_from:
            raise SettingsError("--mail-from must be an ASCII email address (user@host), nothing else")
        if not _HEADER_URL.fullmatch(settings.public_base_url()):
            raise SettingsError("--public-url must be a URL without spaces or non-ASCII characters")
        self._domain = self._from.domain or "localhost"
        self._smtp: aiosmtplib.SMTP | None = None
        self._next_send = 0.0
        self._outage = 0  # consecutive failed tries while the server is unreachable
        self._depth_at = 0.0
        self._wake = asyncio.Event()
        self._retry_at: float | None = None  # loop time of the earliest row this sender put off (4xx)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start draining in the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop after the mail in flight, give back the leases, close the SMTP connection."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.runner.run(mail_outbox.release, self.owner)
        await self._disconnect(polite=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not end mail for the life of the process.
                log.exception("mail sender step failed; trying again in 1 s")
                await asyncio.sleep(1.0)

    async def _drain_once(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._depth_at >= 1.0:
            self._depth_at = loop.time()
            self.metrics.mail_depth.set(await self.runner.run(mail_outbox.depth))
        claimed_at = loop.time()
        rows = await self.runner.run(
            mail_outbox.claim, self.owner, self._batch, self._lease, mail_outbox.TRANSACTIONAL
        ) or await self.runner.run(mail_outbox.claim, self.owner, self._batch, self._lease)
        if self._retry_at is not None and self._retry_at < claimed_at:
            self._retry_at = None  # this claim came after the put-off rows fell due
        if not rows:
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives
            # as the event is set (CPython gh-86296), and stop() then waited for ever.
            try:
                async with asyncio.timeout(self._idle_wait()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            return
        renew_at = loop.time() + self._lease / 2
        for index, row in enumerate(rows):
            if not await self._deliver(row):
                await self.runner.run(mail_outbox.release, self.owner)
                await asyncio.sleep(self._outage_delay())
                return
            if loop.time() >= renew_at:
                rest = [r["row_id"] for r in rows[index + 1 :]]
                await self.runner.run(mail_outbox.renew, self.owner, rest, self._lease)
                renew_at = loop.time() + self._lease / 2

    def _idle_wait(self) -> float:
        """Seconds to wait for a wake-up: ``--mail-poll-seconds``, or less when a row put off is due sooner."""
        wait = self.settings.mail_poll_seconds
        if self._retry_at is not None:
            # A little past the time: the row's due time is the database clock's, not the loop's.
            wait = min(wait, self._retry_at - asyncio.get_running_loop().time() + RETRY_MARGIN)
        return max(wait, 0.0)

    def _outage_delay(self) -> float:
        return min(self.settings.mail_retry_max, 0.25 * 2 ** min(self._outage, 10))

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
            now = loop.time()
        self._next_send = max(now, self._next_send) + self._interval

    async def _deliver(self, row: dict) -> bool:
        """Send one row and record the outcome; False when the server is unreachable (try again later)."""
        if not row["email_updates"] and row["kind"] not in mail_outbox.TRANSACTIONAL_KINDS:
            await self.runner.run(mail_outbox.mark_skipped, row["row_id"])
            return True
        try:
            recipient = addresses.normalize(row["email"])
            data = self.compose(row, recipient).as_bytes(policy=_WIRE_POLICY)
        except (ValueError, TypeError, email.errors.MessageError) as error:
            # An address stored before addresses were checked, or a header that cannot be written.
            return await self._unsendable(row, f"cannot be mailed: {error}")
        await self._pace()
        try:
            smtp = await self._connection()
        except (OSError, aiosmtplib.SMTPException) as error:
            # Refused greeting, failed login, no route: the server's trouble (or ours), never this mail's.
            await self._unreachable(error)
            return False
        try:
            await smtp.sendmail(self._from.addr_spec, [recipient], data)
        except aiosmtplib.SMTPSenderRefused as error:
            # Our --mail-from is refused: every mail would be; keep them all until that is fixed.
            await self._unreachable(error)
            return False
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0] if error.recipients else None
            if refused is None:
                return await self._refused(row, 550, str(error))
            return await self._refused(row, refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as error:
            return await self._refused(row, error.code, error.message)
        except (OSError, aiosmtplib.SMTPException) as error:
            await self._unreachable(error)
            return False
        await self.runner.run(mail_outbox.mark_sent, row["row_id"])
        self.metrics.mail_sent.inc()
        if self._outage:
            log.info("SMTP server %s:%d is back; sending mail", self._host, self._port)
            self._outage = 0
        return True

    async def _refused(self, row: dict, code: int, text: str) -> bool:
        if code == 421 or code < 400:  # "service not available": the server, not this mail
            await self._unreachable(aiosmtplib.SMTPResponseException(code, text))
            return False
        await self._reset()
        if code < 500:
            delay = min(self.settings.mail_retry_max, 0.5 * 2 ** min(row["attempts"], 10))
            await self.runner.run(mail_outbox.retry_later, row["row_id"], delay, f"{code} {text}")
            due = asyncio.get_running_loop().time() + delay
            self._retry_at = due if self._retry_at is None else min(self._retry_at, due)
            self.metrics.mail_retries.inc()
            return True
        return await self._unsendable(row, f"{code} {_one_line(text)}", "refused for good")

    async def _unsendable(self, row: dict, reason: str, what: str = "not sent") -> bool:
        """Give ``row`` up for good: mark it failed with ``reason``, log it, count it; the batch goes on."""
        log.warning(
            "mail %d (%s) to user %s %s: %s", row["row_id"], row["change_key"], row["user_id"], what, reason
        )
        await self.runner.run(mail_outbox.mark_failed, row["row_id"], reason)
        self.metrics.mail_failed.inc()
        return True

    async def _unreachable(self, error: Exception) -> None:
        if not self._outage:
            log.warning(
                "SMTP server %s:%d not taking mail (%s); mail waits in the outbox, retrying at most %.0f s apart",
                self._host,
                self._port,
                _one_line(str(error)) or type(error).__name__,
                self.settings.mail_retry_max,
            )
        self._outage += 1
        self.metrics.mail_retries.inc()
        await self._disconnect(polite=False)

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._tls,
            timeout=SMTP_TIMEOUT,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp

    async def _reset(self) -> None:
        """After a refused mail: RSET, so the next mail starts a clean transaction (or reconnect)."""
        if self._smtp is None:
            return
        try:
            await self._smtp.rset()
        except (OSError, aiosmtplib.SMTPException):
            await self._disconnect(polite=False)

    async def _disconnect(self, polite: bool) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            if polite:
                await asyncio.wait_for(smtp.quit(), 1.0)
            else:
                smtp.close()
        except (OSError, aiosmtplib.SMTPException):  # TimeoutError is an OSError
            smtp.close()

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
