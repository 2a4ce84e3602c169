"""What the office keeps and reads to catch fraud: blocks, and who signs a petition most this hour.

Synchronous, like every store: the caller picks the thread (``DatabaseRunner``).
"""

from __future__ import annotations

import datetime

import peewee

from . import audit
from .audit import Actor
from .errors import ApiError
from .models import Block, Signature, iso, utcnow
from .signature_screen import WINDOW_SECONDS

TRENDING_LIMIT = 20


def _block_dict(block: Block) -> dict:
    return {
        "block_id": block.id,
        "kind": block.kind,
        "value": block.value,
        "note": block.note,
        "created_by": block.created_by_id,
        "created_at": iso(block.created_at),
    }


def list_blocks() -> list[dict]:
    """Every block, newest first."""
    return [_block_dict(block) for block in Block.select().order_by(Block.id.desc())]


def block_values() -> list[tuple[str, str]]:
    """Every block as ``(kind, value)``: what a ``BlockList`` loads."""
    return list(Block.select(Block.kind, Block.value).tuples())


def create_block(actor: Actor, kind: str, value: str, note: str) -> dict:
    """Store a block (``value`` already normalized) and its audit entry; 409 ``already_blocked`` if it exists."""
    try:
        with Block._meta.database.atomic():
            block = Block.create(kind=kind, value=value, note=note, created_by=actor.identity.user_id)
            audit.record(actor, "block", "block", block.id, {"kind": kind, "value": value, "note": note})
    except peewee.IntegrityError:
        raise ApiError(409, "already_blocked", f"{kind} {value} is already blocked") from None
    return _block_dict(block)


def delete_block(actor: Actor, block_id: int) -> None:
    """Remove a block and record who lifted it; 404 if there is none with this id."""
    with Block._meta.database.atomic():
        block = Block.get_or_none(Block.id == block_id)
        if block is None:
            raise ApiError(404, "not_found", f"block {block_id} does not exist")
        block.delete_instance()
        audit.record(actor, "unblock", "block", block_id, {"kind": block.kind, "value": block.value})


def trending(petition_id: int, now: datetime.datetime | None = None) -> dict:
    """The addresses and email domains that signed ``petition_id`` most in the last hour, most first.

    Every stored attempt counts, fraudulent ones included; read from the
    signatures themselves, so it is the whole deployment's view.  Served by
    the (petition, address, created_at) and (petition, email_domain,
    created_at) indexes.
    """
    since = (now or utcnow()) - datetime.timedelta(seconds=WINDOW_SECONDS)
    lists = {}
    for name, column in (("addresses", Signature.address), ("domains", Signature.email_domain)):
        count = peewee.fn.COUNT(Signature.id)
        query = (
            Signature.select(column, count)
            .where(
                (Signature.petition == petition_id) & (Signature.created_at >= since) & column.is_null(False)
            )
            .group_by(column)
            .order_by(count.desc(), column)
            .limit(TRENDING_LIMIT)
        )
        lists[name] = [{"value": value, "count": n} for value, n in query.tuples()]
    return {"window_s": WINDOW_SECONDS, **lists}
