"""What the office (moderators and admins) reads over HTTP: its work queues."""

from __future__ import annotations

from .. import petition_store
from ..roles import Permission
from .base import BaseHandler
from .routing import Route


class QueuesHandler(BaseHandler):
    """``GET /api/admin/queues``: moderation (with ``overdue``), awaiting response, debate; oldest first."""

    async def get(self) -> None:
        await self.require(Permission.VIEW_QUEUES)
        limit = self.config.limits.page_size_max
        queues = await self.runner.run(petition_store.admin_queues, self.config.moderation_days, limit)
        self.write_json(queues)


routes = [
    Route("/api/admin/queues", QueuesHandler, {"get": "adminQueues"}),
]
