"""The office's fraud tools over HTTP: blocks and invalidations (admins), trending signers (the office)."""

from __future__ import annotations

from .. import fraud_store, invalidations, petition_store
from ..errors import ApiError
from ..roles import Permission
from ..signature_screen import BlockValueError, normal_block_value
from .base import BaseHandler
from .routing import Route


class BlocksHandler(BaseHandler):
    """``GET /api/admin/blocks`` lists every block; ``POST`` adds one, acting on new signatures at once."""

    async def get(self) -> None:
        await self.require(Permission.BLOCK_USERS)
        self.write_json({"blocks": await self.runner.run(fraud_store.list_blocks)})

    async def post(self) -> None:
        identity = await self.require(Permission.BLOCK_USERS)
        body = self.read_body("Block")
        try:
            value = normal_block_value(body.kind, body.value)
        except BlockValueError as error:
            raise ApiError(
                422, "invalid_fields", f"invalid fields: value ({error})", fields={"value": str(error)}
            ) from None
        actor = self.actor(identity)
        block = await self.runner.run(fraud_store.create_block, actor, body.kind, value, body.note or "")
        self.screen.blocklist.add(body.kind, value)
        self.publisher.blocks_changed()
        self.write_json(block, 201)


class BlockHandler(BaseHandler):
    """``DELETE /api/admin/blocks/{id}``: lift a block (signatures it caught stay fraudulent)."""

    async def delete(self, block_id: str) -> None:
        identity = await self.require(Permission.BLOCK_USERS)
        await self.runner.run(fraud_store.delete_block, self.actor(identity), int(block_id))
        await self.application.reload_blocks()  # type: ignore[attr-defined]
        self.publisher.blocks_changed()
        self.set_status(204)
        self.finish()


class TrendingHandler(BaseHandler):
    """``GET /api/admin/petitions/{id}/trending``: who signed this petition most in the last hour."""

    async def get(self, petition_id: str) -> None:
        await self.require(Permission.VIEW_TRENDING)
        await self.runner.run(petition_store.get_petition, int(petition_id))  # 404 if none
        self.write_json(await self.runner.run(fraud_store.trending, int(petition_id)))


class InvalidationsHandler(BaseHandler):
    """``POST /api/admin/invalidations``: count (``dry_run``) or take back the signatures matching the conditions."""

    async def post(self) -> None:
        identity = await self.require(Permission.INVALIDATE_SIGNATURES)
        body = self.read_body("Invalidation")
        conditions = invalidations.Conditions.from_body(body)
        newest = await self.runner.run(invalidations.newest_signature_id)
        matched = await self.runner.offload(invalidations.count_off_the_loop, conditions, newest)
        if body.dry_run:
            self.write_json({"matched": matched})
            return
        run = await self.runner.run(invalidations.create, self.actor(identity), conditions, matched, newest)
        if run["state"] == invalidations.RUNNING:
            self.invalidations.start(run["invalidation_id"])
        self.write_json({key: run[key] for key in ("invalidation_id", "state", "matched")}, 202)


class InvalidationHandler(BaseHandler):
    """``GET /api/admin/invalidations/{id}`` shows a run's progress; ``DELETE`` cancels it before its next batch."""

    async def get(self, invalidation_id: str) -> None:
        await self.require(Permission.INVALIDATE_SIGNATURES)
        self.write_json(await self.runner.run(invalidations.get, int(invalidation_id)))

    async def delete(self, invalidation_id: str) -> None:
        await self.require(Permission.INVALIDATE_SIGNATURES)
        self.write_json(await self.runner.run(invalidations.cancel, int(invalidation_id)))


routes = [
    Route("/api/admin/blocks", BlocksHandler, {"get": "listBlocks", "post": "createBlock"}),
    Route("/api/admin/blocks/{id}", BlockHandler, {"delete": "deleteBlock"}),
    Route("/api/admin/petitions/{id}/trending", TrendingHandler, {"get": "petitionTrending"}),
    Route("/api/admin/invalidations", InvalidationsHandler, {"post": "createInvalidation"}),
    Route(
        "/api/admin/invalidations/{id}",
        InvalidationHandler,
        {"get": "getInvalidation", "delete": "cancelInvalidation"},
    ),
]
