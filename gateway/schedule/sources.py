"""The one list of timed work the scheduler runs. A new kind of due work is one line here."""

from __future__ import annotations

from gateway.clock import Clock
from gateway.config import Settings
from gateway.notices.sources import notice_sources
from gateway.schedule.followups import FollowupWork
from gateway.schedule.mailing import mailer_at
from gateway.schedule.scheduler import DueWork

__all__ = ["default_sources", "mailer_at"]


def default_sources(settings: Settings, clock: Clock | None = None) -> list[DueWork]:
    """Every source of due work, in the order a pass runs them. ``clock`` tells a source's
    schedule listing what is already overdue (default: the system clock)."""
    return [
        FollowupWork(settings, clock),
        *notice_sources(settings),
    ]
