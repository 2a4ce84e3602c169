"""Prometheus metrics of one application, in a registry of its own (tests build many apps)."""

from __future__ import annotations

import datetime
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .fanout_budget import FanoutBudget

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Every figure ``GET /metrics`` shows; the hub and handlers move them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.open_sockets = Gauge(
            "petitions_open_sockets", "Open WebSockets by channel", ["channel"], registry=r
        )
        self.messages = Counter(
            "petitions_ws_messages_sent", "WebSocket messages sent", ["channel"], registry=r
        )
        self.bytes = Counter(
            "petitions_ws_bytes_sent", "WebSocket bytes sent (frames)", ["channel"], registry=r
        )
        self.pruned = Counter(
            "petitions_ws_heartbeat_pruned", "Sockets closed for not answering pings", registry=r
        )
        self.slow = Counter(
            "petitions_ws_slow_consumers_closed", "Sockets closed for a full backlog", registry=r
        )
        self.refused = Counter(
            "petitions_ws_handshakes_refused", "WebSocket handshakes refused", ["reason"], registry=r
        )
        self.requests = Counter(
            "petitions_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "petitions_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery = Histogram(
            "petitions_event_commit_to_send_seconds",
            "Time from an event's commit to its fan-out",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter("petitions_events_delivered", "Events fanned out", registry=r)
        self.fanout_seconds = Counter(
            "petitions_counts_fanout_cpu_seconds",
            "CPU time of the feeds' counts ticks (their fan-out), seconds",
            registry=r,
        )
        self.fanout_budget = Gauge(
            "petitions_counts_fanout_budget",
            "Share of the process the feeds' counts fan-out may take (--fanout-budget)",
            registry=r,
        )
        self.count_interval = Gauge(
            "petitions_counts_interval_seconds",
            "Interval of the feeds' counts frames now in use (the budget's choice)",
            registry=r,
        )
        self.fanout_cost = Gauge(
            "petitions_counts_fanout_cost_seconds",
            "CPU time of one counts tick's fan-out, smoothed",
            registry=r,
        )
        self.mail_depth = Gauge("petitions_mail_outbox_depth", "Mails waiting in the outbox", registry=r)
        self.mail_sent = Counter("petitions_mail_sent", "Mails the SMTP server accepted", registry=r)
        self.mail_failed = Counter(
            "petitions_mail_failed",
            "Mails given up: refused for good (5xx), or not mailable (an address stored unchecked)",
            registry=r,
        )
        self.mail_retries = Counter(
            "petitions_mail_retries",
            "Tries deferred: SMTP server down or a temporary (4xx) refusal",
            registry=r,
        )
        for channel in ("user", "public", "admin"):
            self.open_sockets.labels(channel)
            self.messages.labels(channel)
            self.bytes.labels(channel)

    def socket_opened(self, channel: str) -> None:
        self.open_sockets.labels(channel).inc()

    def socket_closed(self, channel: str) -> None:
        self.open_sockets.labels(channel).dec()

    def messages_sent(self, channel: str, count: int, size: int) -> None:
        self.messages.labels(channel).inc(count)
        self.bytes.labels(channel).inc(size)

    def socket_pruned(self) -> None:
        self.pruned.inc()

    def slow_consumer_closed(self) -> None:
        self.slow.inc()

    def handshake_refused(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def event_delivered(self, created_at: str) -> None:
        """Count an event and observe how long after its commit timestamp it went out."""
        self.events.inc()
        committed = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        self.delivery.observe(max(0.0, time.time() - committed.timestamp()))

    def counts_fanout(self, seconds: float) -> None:
        """Count one counts tick's fan-out CPU time."""
        self.fanout_seconds.inc(seconds)

    def watch_fanout_budget(self, budget: FanoutBudget) -> None:
        """Show ``budget``'s share, interval and smoothed cost as they are at each scrape."""
        self.fanout_budget.set_function(lambda: budget.share)
        self.count_interval.set_function(lambda: budget.interval)
        self.fanout_cost.set_function(lambda: budget.cost or 0.0)

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
