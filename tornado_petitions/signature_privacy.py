"""Keeping no more of signers than the counts need: erasure after closing, unconfirmed signatures deleted.

``--anonymize-days`` after a petition stops taking signatures (its closing
time passed, or a status that takes none was reached), its signers' names,
emails, addresses, postcodes and link tokens are erased; state, country and
region stay, so every count stays as it was.  A pending signature whose link
ran out (``--link-hours``) is deleted: it never counted.  The server runs
``anonymize`` daily; ``python -m tornado_petitions anonymize`` runs it at once.
"""

from __future__ import annotations

import datetime
import logging

from .lifecycle import SIGNING_STATUSES
from .models import Petition, Signature, utcnow
from .signature_states import PENDING

log = logging.getLogger("tornado_petitions.privacy")

# How often the server runs ``anonymize`` (seconds).
INTERVAL = 24 * 3600.0


def petitions_due(days: float, now: datetime.datetime) -> list[int]:
    """Petitions that stopped taking signatures at least ``days`` ago and still hold their signers' data."""
    cutoff = now - datetime.timedelta(days=days)
    stopped = (Petition.closes_at <= cutoff) | (
        Petition.status.not_in(sorted(SIGNING_STATUSES)) & (Petition.updated_at <= cutoff)
    )
    query = Petition.select(Petition.id).where(stopped & Petition.signers_erased_at.is_null())
    return [pid for (pid,) in query.tuples()]


def anonymize(days: float) -> tuple[int, int]:
    """Erase the signers of every petition due; delete pending signatures past their link. Returns both numbers.

    One transaction per petition, so a large petition does not hold the
    others; run twice, the second run finds nothing to do.
    """
    now = utcnow()
    purged = (
        Signature.delete().where((Signature.state == PENDING) & (Signature.token_expires_at <= now)).execute()
    )
    erased = 0
    for petition_id in petitions_due(days, now):
        with Petition._meta.database.atomic():
            erased += (
                Signature.update(
                    name=None, email=None, email_domain=None, address=None, postcode=None, token_hash=None
                )
                .where(Signature.petition == petition_id)
                .execute()
            )
            Petition.update(signers_erased_at=now).where(Petition.id == petition_id).execute()
    if erased or purged:
        log.info("erased %d signers of closed petitions; deleted %d unconfirmed signatures", erased, purged)
    return erased, purged
