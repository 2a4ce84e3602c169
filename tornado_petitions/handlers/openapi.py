"""``GET /api/openapi.json`` and ``GET /api/asyncapi.json``: the documents of the HTTP API and the live channels."""

from __future__ import annotations

from .. import asyncapi
from ..openapi import document_json
from .base import BaseHandler
from .routing import Route


class OpenApiHandler(BaseHandler):
    """Serves the document built from this server's settings (its limits are the real ones)."""

    def get(self) -> None:
        self.finish(document_json(self.config))


class AsyncApiHandler(BaseHandler):
    """Serves the AsyncAPI 3.0 document of the WebSocket channels, built from the frames' declarations."""

    def get(self) -> None:
        self.finish(asyncapi.document_json(self.config))


routes = [
    Route("/api/openapi.json", OpenApiHandler, {"get": "openapi"}),
    Route("/api/asyncapi.json", AsyncApiHandler, {"get": "asyncapi"}),
]
