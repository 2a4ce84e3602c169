"""Who may do what: the three roles and the one table of the actions each may take.

Handlers and channels name the permission an action needs
(``BaseHandler.require``, ``ChannelSocketHandler.authorize``); only this
table says which roles hold it, so a new action or a changed rule is one
line here.  Everything not granted is 403 ``forbidden``.
"""

from __future__ import annotations

import enum

from .errors import ApiError

ROLES = ("citizen", "moderator", "admin")


class Permission(enum.StrEnum):
    """An action beyond what every signed-in citizen may do; the value says it in words."""

    CHANGE_STATUS = "change a petition's status"
    VIEW_QUEUES = "read the office's queues"
    VIEW_TRENDING = "read what is trending"
    ADMIN_FEED = "open the admin feed"
    DASHBOARD = "use the office's dashboard"
    READ_USER_CHANNELS = "open another user's channel"
    SEE_WITHHELD = "see petitions not public (awaiting moderation, or hidden)"
    LIST_USERS = "list the accounts"
    CHANGE_ROLES = "change a user's role"
    BLOCK_USERS = "block or unblock a user"
    INVALIDATE_SIGNATURES = "invalidate signatures"
    READ_AUDIT = "read the audit log"


# What the lifecycle and the office need: moderators and admins alike.
_OFFICE = frozenset(
    {
        Permission.CHANGE_STATUS,
        Permission.VIEW_QUEUES,
        Permission.VIEW_TRENDING,
        Permission.ADMIN_FEED,
        Permission.DASHBOARD,
        Permission.READ_USER_CHANNELS,
        Permission.SEE_WITHHELD,
    }
)
# The office's people and its safeguards: admins only.
_ADMINISTRATION = frozenset(
    {
        Permission.LIST_USERS,
        Permission.CHANGE_ROLES,
        Permission.BLOCK_USERS,
        Permission.INVALIDATE_SIGNATURES,
        Permission.READ_AUDIT,
    }
)

GRANTS: dict[str, frozenset[Permission]] = {
    "citizen": frozenset(),
    "moderator": _OFFICE,
    "admin": _OFFICE | _ADMINISTRATION,
}


def allows(role: str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``; an unknown role holds nothing."""
    return permission in GRANTS.get(role, frozenset())


def require(role: str, permission: Permission) -> None:
    """Raise 403 ``forbidden`` (naming the action and who may take it) unless ``role`` holds ``permission``."""
    if not allows(role, permission):
        holders = " and ".join(f"{name}s" for name in ROLES if allows(name, permission))
        raise ApiError(403, "forbidden", f"only {holders} may {permission.value}")


def permissions_of(role: str) -> list[str]:
    """The names of ``role``'s permissions, as ``GET /api/me`` and the page's config show them."""
    return sorted(permission.name.lower() for permission in GRANTS.get(role, frozenset()))


def permissions_by_role() -> dict[str, list[str]]:
    """Each role's ``permissions_of``: the web page shows only what the signed-in role may do."""
    return {role: permissions_of(role) for role in ROLES}
