"""Operations endpoints: liveness and Prometheus metrics."""

from __future__ import annotations

import functools
import ipaddress

from ..errors import ApiError
from ..models import SchemaVersion
from .base import BaseHandler
from .routing import Route


def _database_answers() -> bool:
    return SchemaVersion.select().exists()


class HealthHandler(BaseHandler):
    """``GET /healthz``: 200 while the process and its database answer, 503 otherwise."""

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


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def address_allowed(address: str, cidrs: tuple[str, ...]) -> bool:
    """Whether ``address`` is in one of ``cidrs``; an IPv4-mapped IPv6 address counts as its IPv4 one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(cidrs))


class MetricsHandler(BaseHandler):
    """``GET /metrics``: Prometheus text exposition, for addresses in ``--metrics-allow`` only (others 403).

    The figures tell anyone who can read them how busy the service is and
    which requests fail; scrapers run next to it, not on the internet.  With
    ``--xheaders`` the address is the one the load balancer forwards.
    """

    def prepare(self) -> None:
        super().prepare()
        if not address_allowed(self.client_address(), self.config.metrics_allow):
            raise ApiError(403, "forbidden", "metrics are served only to the addresses in --metrics-allow")

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.metrics.render())


routes = [
    Route("/healthz", HealthHandler, {"get": "health"}),
    Route("/metrics", MetricsHandler, {"get": "metrics"}),
]
