"""Request handlers, one module per resource, each ending in its ``routes`` (see ``routing.py``)."""

from __future__ import annotations

from . import (
    account_pages,
    admin,
    audit,
    auth,
    confirm,
    fraud,
    mail,
    openapi,
    page,
    people,
    petitions,
    sockets,
    system,
)
from .routing import Route

# In the router's order: the first route whose pattern matches a path serves it.
ROUTES: list[Route] = [
    *auth.routes,
    *petitions.routes,
    *admin.routes,
    *people.routes,
    *audit.routes,
    *fraud.routes,
    *mail.routes,
    *confirm.routes,
    *account_pages.routes,
    *sockets.routes,
    *system.routes,
    *openapi.routes,
    *page.routes,
]
