"""Email addresses: which ones the service takes, and the one form it stores and sends to.

Syntax only, by ``email-validator`` (no DNS lookup: the service may run
where DNS does not reach the internet).  Every stored address is ASCII, so
any SMTP server can take it without SMTPUTF8: a domain written in Unicode
(``ann@bücher.example``) is kept in its IDNA form
(``ann@xn--bcher-kva.example``), and a local part that is not ASCII is
refused, because no relay is obliged to carry it and an account we could
never mail is worse than a clear "no" when it is made.
"""

from __future__ import annotations

import email_validator
from email_validator.rfc_constants import EMAIL_MAX_LENGTH

# RFC 5321's limit, which email-validator enforces whatever --max-email says.
MAX_LENGTH = EMAIL_MAX_LENGTH
# Domains that never take mail (RFC 6761 and friends); email-validator refuses them and ends in them.
SPECIAL_USE_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


class AddressError(ValueError):
    """Not an address the service can mail; the message says why, in a sentence for the user."""


def normalize(address: str) -> str:
    """``address`` as stored and sent to (ASCII, domain lowercased); raises ``AddressError`` otherwise.

    Refuses what a mail header could not carry (CR/LF, spaces, controls),
    display-name forms (``Ann <ann@example.org>``), quoted local parts,
    domain literals, special-use domains (``.test``, ``.local``, ...) and
    non-ASCII local parts.
    """
    try:
        valid = email_validator.validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except email_validator.EmailNotValidError as error:
        raise AddressError(str(error)) from None
    return valid.ascii_email


def canonical(address: str) -> str:
    """The one form of every way of writing ``address`` (Unicode or IDNA domain, any case): what an account is keyed by.

    ``normalize``'s form lowercased, or, for text that is no address, the text lowercased.
    """
    try:
        return normalize(address).lower()
    except AddressError:
        return address.lower()


def stored_forms(address: str) -> list[str]:
    """The stored forms an account given as ``address`` may have: ``canonical`` and the older plain lowercase.

    Accounts made before addresses were normalized were stored lowercased as
    typed (a Unicode domain stayed Unicode), so signing in looks for both.
    """
    forms = [canonical(address), address.lower()]
    return forms[:1] if forms[0] == forms[1] else forms
