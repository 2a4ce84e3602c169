"""The mail of a signer without an account: the link that counts the signature, or "you signed already"."""

from __future__ import annotations

import email.utils
from email.headerregistry import Address
from email.message import EmailMessage

from .mail_outbox import SIGN_CONFIRM
from .settings import Settings
from .signers import confirmation_token


def confirm_url(settings: Settings, key: bytes, change_key: str) -> str:
    """The link in a confirmation mail: its token is derived from the outbox row's key, never stored."""
    return f"{settings.public_base_url()}/signatures/confirm/{confirmation_token(key, change_key)}"


def compose(
    settings: Settings, key: bytes, row: dict, domain: str, sender: Address, recipient: str
) -> EmailMessage:
    """The plain-text mail of one ``SIGN_CONFIRM`` or ``SIGN_AGAIN`` outbox row to ``recipient`` (normalized).

    Raises ``ValueError`` when a header cannot be built from the row.
    """
    from .mail_sender import _one_line  # header-safe text, one rule for every mail (imported late: a cycle)

    title = _one_line(row["title"])
    petition_url = f"{settings.public_base_url()}/petitions/{row['petition_id']}"
    hours = f"{settings.link_hours:g}"
    if row["kind"] == SIGN_CONFIRM:
        subject = f"Confirm your signature: {title}"
        lines = [
            f"Thank you for signing “{row['title']}”.",
            "",
            "Your signature counts once you confirm it. Open this link and press Confirm:",
            confirm_url(settings, key, row["change_key"]),
            "",
            f"The link works for {hours} hours. If you did not sign, ignore this email:",
            "nothing is counted without the confirmation.",
        ]
    else:
        subject = f"You have already signed: {title}"
        lines = [
            f"Someone (perhaps you) tried to sign “{row['title']}” with this address.",
            "",
            "This address has already signed it, so nothing changed: each person counts once.",
        ]
    lines += ["", f"The petition: {petition_url}"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(display_name=_one_line(row["name"] or ""), addr_spec=recipient)
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = f"<outbox-{row['row_id']}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    return message
