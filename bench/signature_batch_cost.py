"""µs per signature of ``signature_store.apply_batch`` on SQLite: the group commit's own cost.

Run: ``python -m bench.signature_batch_cost [signatures] [batch]`` from the
repository root.  Builds a fresh database in a temporary directory, files one
petition, creates the signers directly, then times only ``apply_batch``
(one transaction per batch of ``batch`` signatures).
"""

from __future__ import annotations

import sys
import tempfile
import time

from tornado_petitions import accounts, petition_store, signature_store
from tornado_petitions.models import bind_database, close_database, open_database
from tornado_petitions.signature_store import SignatureRequest


def main(total: int = 20_000, batch: int = 500, rounds: int = 3) -> None:
    """Print the best of ``rounds`` (the machine may be shared: the best is the least disturbed)."""
    best = min(one_round(total, batch) for _ in range(rounds))
    print(
        f"{total} signatures in batches of {batch}: {best * 1e6 / total:.1f} µs per signature (best of {rounds})"
    )


def one_round(total: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        db = open_database(f"sqlite:///{directory}/bench.db")
        bind_database(db)
        with db.connection_context():
            author = accounts.create_user("author@example.org", "Author", "x")
            identity = accounts.identify(accounts.hash_token(accounts.issue_token(author, 3600)))
            petition, _ = petition_store.create_petition(identity, "A petition", "Text", None, None, 180.0)
            signers = []
            with db.atomic():
                for i in range(total):
                    user = accounts.create_user(f"s{i}@example.org", f"Signer {i}", "x")
                    token = accounts.issue_token(user, 3600)
                    signers.append(accounts.identify(accounts.hash_token(token)))
            requests = [SignatureRequest(s, petition["petition_id"], signing=True) for s in signers]
            started = time.perf_counter()
            for start in range(0, total, batch):
                signature_store.apply_batch(requests[start : start + batch])
            elapsed = time.perf_counter() - started
            count = petition_store.get_petition(petition["petition_id"])["signature_count"]
        close_database(db)
    assert count == total, count
    return elapsed


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
