"""Prometheus metrics of one daemon process, served on a loopback port when
``[metrics] enabled``. Counters move with the work this process does; the gauges of shared
state (outbox, quarantine) are refreshed from the database every ``refresh_seconds``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gateway.domain import OutboxStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.outbound.sender import SendStats

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """One registry per process (tests make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter("gateway_inbound_messages", "Inbound messages decided, by disposition",
                               ["disposition"], registry=r)
        self.latency = Histogram(
            "gateway_inbound_decision_seconds",
            "From the message's fetch to the commit of its decision", buckets=LATENCY_BUCKETS, registry=r)
        self.imap_connects = Counter("gateway_imap_connects", "IMAP logins that succeeded, by mailbox",
                                     ["mailbox"], registry=r)
        self.imap_failures = Counter("gateway_imap_failures", "Failed IMAP connections or rounds, by mailbox",
                                     ["mailbox"], registry=r)
        self.sends = Counter("gateway_outbox_sends",
                             "Outbox send attempts by result (sent, 4xx, 5xx, expired)",
                             ["result"], registry=r)
        self.outbox = Gauge("gateway_outbox_messages", "Outbox rows by status", ["status"], registry=r)
        self.outbox_oldest = Gauge("gateway_outbox_oldest_waiting_seconds",
                                   "Age of the oldest outbox row still to be sent (0: none)", registry=r)
        self.quarantined = Gauge("gateway_quarantined_messages", "Inbound messages in quarantine", registry=r)
        self.scheduler_lag = Gauge(
            "gateway_scheduler_lag_seconds",
            "How long the earliest due automatic mail has been due (0: none)", registry=r)
        self._server: Any = None

    def decided(self, disposition: str, seconds: float | None) -> None:
        self.inbound.labels(disposition).inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def sent(self, stats: SendStats) -> None:
        for result, count in (("sent", stats.sent), ("4xx", stats.retrying), ("5xx", stats.failed),
                              ("expired", stats.expired)):
            if count:
                self.sends.labels(result).inc(count)

    async def refresh(self, engine: AsyncEngine, now: datetime, next_due: datetime | None = None) -> None:
        """The gauges of what every replica shares, from the database; ``next_due``: the
        scheduler's earliest due time."""
        from gateway.operations.status import shared_counts

        counts = await shared_counts(engine)
        for status in OutboxStatus:
            self.outbox.labels(status.value).set(counts.outbox.get(status.value, 0))
        oldest = counts.oldest_waiting_at
        self.outbox_oldest.set(0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
        self.quarantined.set(counts.quarantined)
        self.scheduler_lag.set(0 if next_due is None else max(0.0, (now - next_due).total_seconds()))

    def serve(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (a thread of this process); returns the port (0: any free one)."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
