"""The audit log over HTTP (admins): who did what to which petition or user, from where."""

from __future__ import annotations

from .. import audit
from ..roles import Permission
from .base import BaseHandler
from .query import QueryReader
from .routing import Route


class AuditHandler(BaseHandler):
    """``GET /api/admin/audit?actor=&action=&cursor=&limit=``: entries, newest first."""

    async def get(self) -> None:
        await self.require(Permission.READ_AUDIT)
        query = QueryReader(self)
        actor = query.integer("actor")
        action = query.choice("action", audit.ACTIONS)
        before = query.integer("cursor")
        limit = query.integer("limit", 1, self.config.limits.page_size_max) or 20
        query.check()
        entries, next_cursor = await self.runner.run(audit.entries, actor, action, before, limit)
        self.write_json({"entries": entries, "next_cursor": next_cursor})


routes = [
    Route("/api/admin/audit", AuditHandler, {"get": "auditLog"}),
]
