"""The office's people over HTTP (admins): list the accounts, change a user's role.

A role change applies at once: every process forgets the user's cached
tokens and closes (4403) their sockets the new role may not hold.
"""

from __future__ import annotations

from .. import moderation
from ..roles import Permission
from .base import BaseHandler
from .query import QueryReader
from .routing import Route


class UsersHandler(BaseHandler):
    """``GET /api/admin/users?q=&cursor=&limit=``: accounts, newest first, emails included."""

    async def get(self) -> None:
        await self.require(Permission.LIST_USERS)
        query = QueryReader(self)
        text = query.text("q", 200)
        before = query.integer("cursor")
        limit = query.integer("limit", 1, self.config.limits.page_size_max) or 20
        query.check()
        users, next_cursor = await self.runner.run(moderation.list_users, text, before, limit)
        self.write_json({"users": users, "next_cursor": next_cursor})


class UserRoleHandler(BaseHandler):
    """``PATCH /api/admin/users/{user_id}`` ``{"role"}``: the user with the new role (409 ``last_admin``)."""

    async def patch(self, user_id: str) -> None:
        identity = await self.require(Permission.CHANGE_ROLES)
        body = self.read_body("RoleChange")
        user = await self.runner.run(moderation.change_role, self.actor(identity), int(user_id), body.role)
        # Committed: from now on no process may act on the old role.
        self.tokens.evict_user(user["user_id"])
        self.publisher.role_changed(user["user_id"], user["role"])
        self.write_json(user)


routes = [
    Route("/api/admin/users", UsersHandler, {"get": "listUsers"}),
    Route("/api/admin/users/{user_id}", UserRoleHandler, {"patch": "changeRole"}),
]
