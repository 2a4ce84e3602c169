"""Every URL the server answers, declared once: the router, the OpenAPI document and docs/api.md read it.

To add a route: append ``Route("/api/things/{id}", ThingHandler, {"get": "getThing"})`` to the
``routes`` list that ends its handler module (a new module also goes into ``handlers/__init__.py``),
write the operation with that ``operationId`` in ``openapi.py``'s ``_operations``, and add its row
to the route table in docs/api.md; tests/test_routes.py names what is missing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import tornado.web

# What each path parameter matches in the router; the OpenAPI document describes them (openapi.py).
PARAMETER_PATTERNS = {
    "id": r"[0-9]{1,15}",
    "user_id": r"[0-9]{1,15}",
    "token": r"[0-9A-Za-z]{1,64}",
}


@dataclasses.dataclass(frozen=True)
class Route:
    """One path: its handler and, for the HTTP API, the OpenAPI operation id of each method it serves.

    ``path`` is written as OpenAPI and the docs write it (``/api/petitions/{id}``); it is also the
    route label of the request metrics.  The router's regex is the path with each ``{name}`` as
    its ``PARAMETER_PATTERNS`` group, unless ``pattern`` says otherwise.
    """

    path: str
    handler: type[tornado.web.RequestHandler]
    # Method (lower case) -> operationId; empty for WebSockets and web pages, outside the JSON API.
    operations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pattern: str | None = None

    @property
    def parameters(self) -> list[str]:
        """The names of the path's parameters, in order."""
        return re.findall(r"\{(\w+)\}", self.path)

    def regex(self) -> str:
        """The router's pattern for this path."""
        if self.pattern is not None:
            return self.pattern
        parts = re.split(r"\{(\w+)\}", self.path)
        return "".join(
            f"({PARAMETER_PATTERNS[part]})" if index % 2 else re.escape(part)
            for index, part in enumerate(parts)
        )

    def rule(self) -> tornado.web.URLSpec:
        """The Tornado rule; the handler learns its ``route`` (the metrics label) from it."""
        return tornado.web.url(self.regex(), self.handler, {"route": self.path})
