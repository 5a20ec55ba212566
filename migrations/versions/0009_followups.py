"""auto follow-up: the timer's cycle and next due time on the case; business hours per organisation

A case's follow-up timer is its cycle number (one per request of care's), the step reached in
that cycle (``followups_sent``) and the instant the next step is due (``followup_due_at``,
indexed: the scheduler finds due work by it, never by a scan). Organisations get their
business hours (local, default 09:00-17:00) for the response targets.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("followup_cycle", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("cases", sa.Column("followup_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_cases_followup_due_at"), "cases", ["followup_due_at"])
    op.add_column("organisations", sa.Column("business_hours", sa.String(11), nullable=False,
                                             server_default="09:00-17:00"))
    # A timer that was running before this revision is a first cycle; its next step is found
    # by the scheduler at its next pass (due now: it works out the step from the start time).
    op.execute("UPDATE cases SET followup_cycle = 1, followup_due_at = followup_started_at "
               "WHERE followup_started_at IS NOT NULL")


def downgrade() -> None:
    op.drop_column("organisations", "business_hours")
    op.drop_index(op.f("ix_cases_followup_due_at"), table_name="cases")
    op.drop_column("cases", "followup_due_at")
    op.drop_column("cases", "followup_cycle")
