"""Who a signer is: the canonical email that makes one person one signature, and where they sign from.

Everything here is pure (no database): the canonical form of an address,
its domain, the disposable-mail check, the ISO 3166-1 country codes, the
postcode's region (``--regions-file``) and the confirmation link's token.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets

from disposable_email_domains import blocklist as _DISPOSABLE_DOMAINS

from . import addresses
from .errors import ApiError
from .settings import SettingsError

# The domains whose mailboxes ignore dots in the local part and answer to both names.
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# ISO 3166-1 alpha-2: the officially assigned codes.
COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)


def canonical_email(address: str) -> str:
    """The one form of an address that stands for its person: what "one signature each" compares.

    The account form (``addresses.canonical``: lower-cased, the domain in
    IDNA); a ``+tag`` dropped from the local part; for gmail.com and
    googlemail.com the dots dropped too and the two domains made one.
    """
    local, _, domain = addresses.canonical(address.strip()).rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def email_domain(address: str) -> str:
    """The domain of an address, lower-cased (what domain blocks and trending compare)."""
    return address.strip().lower().rpartition("@")[2]


def refuse_disposable(address: str) -> None:
    """422 naming ``email`` when the address is at a disposable-mail domain (or a subdomain of one)."""
    labels = email_domain(address).split(".")
    for start in range(len(labels) - 1):
        if ".".join(labels[start:]) in _DISPOSABLE_DOMAINS:
            raise ApiError(
                422,
                "invalid_fields",
                "invalid fields: email",
                fields={"email": "must not be a disposable-mail address"},
            )


def normal_postcode(postcode: str | None) -> str | None:
    """A postcode as stored and looked up: upper-case, without spaces; None when blank."""
    if postcode is None:
        return None
    return "".join(postcode.split()).upper() or None


class RegionTable:
    """Postcode prefixes and their regions (``--regions-file``); the longest matching prefix wins."""

    def __init__(self, prefixes: dict[str, str]) -> None:
        self._prefixes = {normal_postcode(prefix): region for prefix, region in prefixes.items() if prefix}
        self._longest = max((len(prefix) for prefix in self._prefixes), default=0)

    @classmethod
    def from_csv(cls, path: str) -> RegionTable:
        """Read ``postcode_prefix,region`` rows; a header row naming ``postcode_prefix`` is skipped.

        Raises ``SettingsError`` (``serve`` exits 2 saying why) for a file it cannot read or a
        row without two fields, naming the line.
        """
        prefixes: dict[str, str] = {}
        try:
            with open(path, newline="", encoding="utf-8") as source:
                for line, row in enumerate(csv.reader(source), start=1):
                    if not row or (line == 1 and row[0].strip().lower() == "postcode_prefix"):
                        continue
                    if len(row) != 2 or not row[0].strip() or not row[1].strip():
                        raise SettingsError(f"--regions-file {path}:{line}: expected postcode_prefix,region")
                    prefixes[row[0]] = row[1].strip()
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise SettingsError(f"--regions-file {path}: {error}") from None
        return cls(prefixes)

    def region(self, postcode: str | None) -> str | None:
        """The region of ``postcode`` (already ``normal_postcode``d), or None."""
        if not postcode:
            return None
        for length in range(min(len(postcode), self._longest), 0, -1):
            region = self._prefixes.get(postcode[:length])
            if region is not None:
                return region
        return None


def new_confirmation(key: bytes) -> tuple[str, str]:
    """A fresh ``(change_key, token_hash)`` for a confirmation mail under the mail ``key``.

    The outbox row keeps ``change_key`` (random, 128 bits); the link's token
    is ``confirmation_token(key, change_key)``, computed when the mail is
    written; the signature keeps only ``token_hash``.
    """
    change_key = f"confirm:{secrets.token_hex(16)}"
    return change_key, token_hash(confirmation_token(key, change_key))


def confirmation_token(key: bytes, change_key: str) -> str:
    """The token of the link in the mail with outbox key ``change_key`` (an HMAC under the mail key)."""
    return hmac.new(key, change_key.encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """What the signature row keeps of its link's token."""
    return hashlib.sha256(token.encode()).hexdigest()
