"""Prometheus metrics scraped over HTTP while the daemon works on real mail (Dovecot, the SMTP
server, both databases): the counters and gauges move with the traffic."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.operations.metrics import Metrics
from gateway.outbound.transport import SmtpTransport
from testkit.mails import DEEP_MAIL, new_mail, reply, sent_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, add_customer, open_case, open_world, settings_for
from tests.plugins.smtp import smtp_settings


@pytest.fixture
async def served():
    metrics = Metrics()
    port = metrics.serve("127.0.0.1", 0)
    yield metrics, port
    metrics.close()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return response.read().decode()

    text = await asyncio.to_thread(get)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_move_with_traffic(
    db_url: str, imap_account, clock: FrozenClock, smtp_server: RecordingSmtpServer, served,
) -> None:
    metrics, port = served
    smtp = smtp_settings(smtp_server)
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()], smtp=smtp,
                            limits={"max_mime_depth": 2})
    async with open_world(settings, clock) as app:
        await add_customer(app)
        case = await open_case(app)
        original = await sent_mail(app, case.id)
        before = await scrape(port)
        assert before.get(("gateway_inbound_messages_total", (("disposition", "applied"),))) is None

        imap_account.append(reply(original, sender=ANA, text="Both dropped after 30 seconds."))
        imap_account.append(new_mail(sender="stranger@example.org", subject="Hello", text="Open a case"))
        imap_account.append(DEEP_MAIL)
        smtp_server.refuse_recipient("stranger@example.org", "550 5.1.1 no such user")
        await run_once(app, metrics, smtp)

        after = await scrape(port)
        assert after[("gateway_inbound_messages_total", (("disposition", "applied"),))] == 1
        assert after[("gateway_inbound_messages_total", (("disposition", "refused_new_case"),))] == 1
        assert after[("gateway_inbound_messages_total", (("disposition", "quarantined"),))] == 1
        assert after[("gateway_inbound_decision_seconds_count", ())] == 3
        assert after[("gateway_imap_connects_total", (("mailbox", "test"),))] == 1
        assert after[("gateway_outbox_sends_total", (("result", "sent"),))] == 1  # the acknowledgement
        assert after[("gateway_outbox_sends_total", (("result", "5xx"),))] == 1  # the refusal to a 550
        assert after[("gateway_outbox_messages", (("status", "sent"),))] == 1
        assert after[("gateway_outbox_messages", (("status", "failed"),))] == 1
        assert after[("gateway_outbox_oldest_waiting_seconds", ())] == 0
        assert after[("gateway_quarantined_messages", ())] == 1
        assert after[("gateway_scheduler_lag_seconds", ())] == 0  # nothing due after the pass
        await metrics.refresh(app.engine, clock.now(), clock.now() - timedelta(seconds=90))
        assert (await scrape(port))[("gateway_scheduler_lag_seconds", ())] == 90

        imap_account.append(new_mail(sender="other@example.org", subject="Again", text="x"))
        await run_once(app, metrics, smtp)
        again = await scrape(port)
        assert again[("gateway_inbound_messages_total", (("disposition", "refused_new_case"),))] == 2
        assert again[("gateway_outbox_sends_total", (("result", "sent"),))] == 2
        assert again[("gateway_imap_connects_total", (("mailbox", "test"),))] == 2


async def test_metrics_count_imap_failures(db_url: str, imap_account, clock: FrozenClock, served) -> None:
    metrics, port = served
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(password="wrong")])
    async with open_world(settings, clock) as app:
        with pytest.raises(Exception, match=r"(?i)auth|login"):
            await Daemon(app, metrics=metrics).run_once()
    assert (await scrape(port))[("gateway_imap_failures_total", (("mailbox", "test"),))] == 1


async def run_once(app: App, metrics: Metrics, smtp) -> None:
    await Daemon(app, transport=SmtpTransport(smtp), metrics=metrics).run_once()
