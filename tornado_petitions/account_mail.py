"""The mail about an account itself: the link to verify its email, "you have an account", a password reset.

Sent whatever the account's ``email_updates`` say (they stop notifications,
not the mail someone asked for), with no unsubscribe link.  The link's token
comes from the outbox row (``secret``), kept there only until it is sent.
"""

from __future__ import annotations

import email.utils
from email.headerregistry import Address
from email.message import EmailMessage

from .mail_outbox import ACCOUNT_EXISTS, PASSWORD_RESET, VERIFY_EMAIL
from .settings import Settings


def verify_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url()}/account/verify/{token}"


def reset_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url()}/account/reset/{token}"


def _text(settings: Settings, row: dict) -> tuple[str, list[str]]:
    hours = f"{settings.link_hours:g}"
    site = settings.public_base_url() + "/"
    if row["kind"] == VERIFY_EMAIL:
        return "Verify your email address", [
            f"Hello {row['name']},",
            "",
            "To finish creating your petitions account, open this link and press the button:",
            verify_url(settings, row["secret"]),
            "",
            f"The link works once, for {hours} hours. If you did not create an account, ignore this",
            "email: nothing happens without the link.",
        ]
    if row["kind"] == ACCOUNT_EXISTS:
        return "You already have an account", [
            f"Hello {row['name']},",
            "",
            "Someone (perhaps you) tried to create a petitions account with this address.",
            f"You already have one: sign in at {site}",
            "",
            "Forgot your password, or never finished signing up? Set a new password here:",
            reset_url(settings, row["secret"]),
            "",
            f"The link works once, for {hours} hours. If this was not you, ignore this email.",
        ]
    if row["kind"] != PASSWORD_RESET:
        raise ValueError(f"not an account mail: {row['kind']}")
    return "Reset your password", [
        f"Hello {row['name']},",
        "",
        "To choose a new password for your petitions account, open this link:",
        reset_url(settings, row["secret"]),
        "",
        f"The link works once, for {hours} hours; setting the password signs out every other session.",
        "If you did not ask for this, ignore this email: your password stays as it is.",
    ]


def compose(settings: Settings, row: dict, *, to: Address, sender: Address, domain: str) -> EmailMessage:
    """The plain-text mail of one ``VERIFY_EMAIL``, ``ACCOUNT_EXISTS`` or ``PASSWORD_RESET`` outbox row.

    ``to`` and ``sender`` come built from parts (``MailSender``), so no name can add a header.
    """
    if not row.get("secret"):
        raise ValueError("the link's token is gone (the row was sent before)")
    subject, lines = _text(settings, row)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = f"<outbox-{row['row_id']}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    return message
