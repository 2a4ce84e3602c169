"""One SMTP connection of the mail sender, kept open for many mails, draining one lane of the outbox.

``MailSender`` runs a few couriers per lane (``mail_outbox.TRANSACTIONAL``
and ``NOTIFICATION``).  Each leases rows of its lane under its own owner
name (so giving its leases back after an outage never frees a row another
courier is sending), sends them over its connection, and marks each row
sent only after the server accepted it.  Notification couriers take a
slot from the sender's shared pace (``--mail-per-second``) before each
mail; transactional ones do not wait for anything but the server.
"""

from __future__ import annotations

import asyncio
import email.errors
import logging
from typing import TYPE_CHECKING

import aiosmtplib

from . import addresses, mail_outbox

if TYPE_CHECKING:
    from .mail_sender import MailSender

log = logging.getLogger("tornado_petitions.mail")

# Seconds past a put-off row's due time that the courier looks for it again.
RETRY_MARGIN = 0.05
# Seconds one SMTP command may take before the connection counts as down.
SMTP_TIMEOUT = 10.0


class MailCourier:
    """Drains ``lane`` over one kept-open connection until ``sender.stopping``."""

    def __init__(
        self, sender: MailSender, lane: int, owner: str, batch: int, lease: float, *, polls: bool
    ) -> None:
        self.sender = sender
        self.settings = sender.settings
        self.runner = sender.runner
        self.metrics = sender.metrics
        self.lane = lane
        self.owner = owner  # this courier's name on the leases it takes
        self.paced = lane == mail_outbox.NOTIFICATION
        self._batch = batch
        self._lease = lease
        # One courier per lane looks at the outbox now and then (mail other processes queued);
        # the others sleep until woken: by a change here, or by a sibling that found a full batch.
        self.polls = polls
        self._smtp: aiosmtplib.SMTP | None = None
        self._outage = 0  # consecutive failed tries while the server is unreachable
        self._retry_at: float | None = None  # loop time of the earliest row this courier put off (4xx)

    async def run(self) -> None:
        """Claim and send until the sender stops; a failed step is logged and tried again."""
        while not self.sender.stopping:
            try:
                await self._drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not end mail for the life of the process.
                log.exception("mail sender step failed; trying again in 1 s")
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Give back this courier's leases and close its connection politely."""
        await self.runner.run(mail_outbox.release, self.owner)
        await self._disconnect(polite=True)

    async def _drain_once(self) -> None:
        loop = asyncio.get_running_loop()
        await self.sender.refresh_depth()
        claimed_at = loop.time()
        wake = self.sender.wake_event(self.lane)
        wake.clear()  # before the claim: a row queued after it wakes the wait below
        rows = await self.runner.run(mail_outbox.claim, self.owner, self._batch, self._lease, self.lane)
        if self._retry_at is not None and self._retry_at < claimed_at:
            self._retry_at = None  # this claim came after the put-off rows fell due
        if len(rows) == self._batch:
            wake.set()  # there may be more: a sibling courier takes the next batch
        if not rows:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
                # cancellation of a stop that lands as the event is set.
                async with asyncio.timeout(self._idle_wait()):
                    await wake.wait()
            except TimeoutError:
                pass
            return
        renew_at = loop.time() + self._lease / 2
        for index, row in enumerate(rows):
            if self.sender.stopping:
                return  # the rest are released by close()
            if not await self._deliver(row):
                await self.runner.run(mail_outbox.release, self.owner)
                await asyncio.sleep(self._outage_delay())
                return
            if loop.time() >= renew_at:
                rest = [r["row_id"] for r in rows[index + 1 :]]
                await self.runner.run(mail_outbox.renew, self.owner, rest, self._lease)
                renew_at = loop.time() + self._lease / 2

    def _idle_wait(self) -> float | None:
        """Seconds to wait for a wake-up: ``--mail-poll-seconds`` (None: until woken), less when a row put off is due sooner."""
        wait = self.settings.mail_poll_seconds if self.polls else None
        if self._retry_at is not None:
            # A little past the time: the row's due time is the database clock's, not the loop's.
            due = self._retry_at - asyncio.get_running_loop().time() + RETRY_MARGIN
            wait = due if wait is None else min(wait, due)
        return None if wait is None else max(wait, 0.0)

    def _outage_delay(self) -> float:
        return min(self.settings.mail_retry_max, 0.25 * 2 ** min(self._outage, 10))

    async def _deliver(self, row: dict) -> bool:
        """Send one row and record the outcome; False when the server is unreachable (try again later)."""
        if not row["email_updates"] and row["kind"] not in mail_outbox.TRANSACTIONAL_KINDS:
            await self.runner.run(mail_outbox.mark_skipped, row["row_id"])
            return True
        try:
            recipient = addresses.normalize(row["email"])
            data = self.sender.wire_bytes(row, recipient)
        except (ValueError, TypeError, email.errors.MessageError) as error:
            # An address stored before addresses were checked, or a header that cannot be written.
            return await self._unsendable(row, f"cannot be mailed: {error}")
        if self.paced:
            await self.sender.pace()
        try:
            smtp = await self._connection()
        except (OSError, aiosmtplib.SMTPException) as error:
            # Refused greeting, failed login, no route: the server's trouble (or ours), never this mail's.
            await self._unreachable(error)
            return False
        try:
            await smtp.sendmail(self.sender.mail_from.addr_spec, [recipient], data)
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
            log.info("SMTP server %s is back; sending mail", self.sender.server_name)
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
        return await self._unsendable(row, f"{code} {self.sender.one_line(text)}", "refused for good")

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
                "SMTP server %s not taking mail (%s); mail waits in the outbox, retrying at most %.0f s apart",
                self.sender.server_name,
                self.sender.one_line(str(error)) or type(error).__name__,
                self.settings.mail_retry_max,
            )
        self._outage += 1
        self.metrics.mail_retries.inc()
        await self._disconnect(polite=False)

    async def _connection(self) -> aiosmtplib.SMTP:
        """The kept-open connection, or a new one when there is none (first mail, or after an outage)."""
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = self.sender.new_connection()
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
                async with asyncio.timeout(1.0):
                    await smtp.quit()
            else:
                smtp.close()
        except (OSError, aiosmtplib.SMTPException):  # TimeoutError is an OSError
            smtp.close()
