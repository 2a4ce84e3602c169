"""Operations endpoints: liveness and Prometheus metrics."""

from __future__ import annotations

from ..models import SchemaVersion
from .base import BaseHandler


def _database_answers() -> bool:
    return SchemaVersion.select().exists()


class HealthHandler(BaseHandler):
    """``GET /healthz``: 200 while the process and its database answer, 503 otherwise."""

    route = "/healthz"

    async def get(self) -> None:
        try:
            database_ok = await self.runner.run(_database_answers)
        except Exception:
            database_ok = False
        document = {
            "ok": database_ok,
            "database": "ok" if database_ok else "unavailable",
            "seq": self.hub.last_seq,
            "redis": self._redis_state(),
        }
        self.write_json(document, 200 if database_ok else 503)

    def _redis_state(self) -> str:
        """Redis down is not unhealthy: sockets still get every event, from the log."""
        if self.publisher is self.hub:
            return "off"
        return "subscribed" if self.publisher.subscribed else "reconnecting"


class MetricsHandler(BaseHandler):
    """``GET /metrics``: Prometheus text exposition."""

    route = "/metrics"

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.metrics.render())


default_handlers = [
    (r"/healthz", HealthHandler),
    (r"/metrics", MetricsHandler),
]
