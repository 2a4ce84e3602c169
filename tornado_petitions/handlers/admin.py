"""What only admins read over HTTP: the office's work queues."""

from __future__ import annotations

from .. import petition_store
from .base import BaseHandler
from .routing import Route


class QueuesHandler(BaseHandler):
    """``GET /api/admin/queues``: moderation (with ``overdue``), awaiting response, debate; oldest first."""

    async def get(self) -> None:
        await self.require_admin()
        limit = self.config.limits.page_size_max
        queues = await self.runner.run(petition_store.admin_queues, self.config.moderation_days, limit)
        self.write_json(queues)


routes = [
    Route("/api/admin/queues", QueuesHandler, {"get": "adminQueues"}),
]
