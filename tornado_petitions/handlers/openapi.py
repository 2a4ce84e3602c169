"""``GET /api/openapi.json``: the OpenAPI 3 document of the HTTP API."""

from __future__ import annotations

from ..openapi import document_json
from .base import BaseHandler
from .routing import Route


class OpenApiHandler(BaseHandler):
    """Serves the document built from this server's settings (its limits are the real ones)."""

    def get(self) -> None:
        self.finish(document_json(self.config))


routes = [
    Route("/api/openapi.json", OpenApiHandler, {"get": "openapi"}),
]
