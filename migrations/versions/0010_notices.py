"""notices: list suspension, maintenance sequence, due mails, who got what

Distribution lists count permanent failures from ``failures_since`` and carry
``suspended_at``; notices get the iCalendar sequence, services, instructions, the incident
warning mark and the RCA due date; a notice update is one mail, due at ``due_at`` (indexed:
the scheduler finds due mail by it); ``notice_deliveries`` records each address a mail of a
notice went to, beside its outbox row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("distribution_lists") as batch:
        batch.add_column(sa.Column("failures_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE distribution_lists SET failures_since = created_at")
    with op.batch_alter_table("distribution_lists") as batch:
        batch.alter_column("failures_since", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("services", sa.Text(), nullable=True))
        batch.add_column(sa.Column("instructions", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("warned_for", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rca_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_notices_next_update_at"), ["next_update_at"], unique=False)
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("sequence", existing_type=sa.Integer(), server_default=None)
    with op.batch_alter_table("notice_updates") as batch:
        batch.add_column(sa.Column("state", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.Text(), nullable=True))
        batch.create_index(batch.f("ix_notice_updates_due_at"), ["due_at"], unique=False)
    op.create_table(
        "notice_deliveries",
        sa.Column("id", ID, nullable=False),
        sa.Column("notice_id", ID, nullable=False),
        sa.Column("update_id", ID, nullable=False),
        sa.Column("organisation_id", ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("outbox_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"],
                                name=op.f("fk_notice_deliveries_notice_id_notices")),
        sa.ForeignKeyConstraint(["update_id"], ["notice_updates.id"],
                                name=op.f("fk_notice_deliveries_update_id_notice_updates")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_notice_deliveries_organisation_id_organisations")),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"],
                                name=op.f("fk_notice_deliveries_outbox_id_outbox")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_deliveries")),
        sa.UniqueConstraint("update_id", "organisation_id", "address",
                            name=op.f("uq_notice_deliveries_update_id_organisation_id_address")),
    )
    failed = sa.text("status IN ('failed', 'bounced')")
    op.create_index("ix_outbox_recipients_failed", "outbox_recipients", ["outbox_id"],
                    postgresql_where=failed, sqlite_where=failed)
    with op.batch_alter_table("notice_deliveries") as batch:
        batch.create_index("ix_notice_deliveries_list", ["organisation_id", "address"], unique=False)
        batch.create_index(batch.f("ix_notice_deliveries_notice_id"), ["notice_id"], unique=False)
        batch.create_index(batch.f("ix_notice_deliveries_outbox_id"), ["outbox_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_recipients_failed", table_name="outbox_recipients")
    op.drop_table("notice_deliveries")
    with op.batch_alter_table("notice_updates") as batch:
        batch.drop_index(batch.f("ix_notice_updates_due_at"))
        for column in ("outcome", "sent_at", "due_at", "state"):
            batch.drop_column(column)
    with op.batch_alter_table("notices") as batch:
        batch.drop_index(batch.f("ix_notices_next_update_at"))
        for column in ("rca_due_at", "warned_for", "sequence", "instructions", "services"):
            batch.drop_column(column)
    with op.batch_alter_table("distribution_lists") as batch:
        batch.drop_column("suspended_at")
        batch.drop_column("failures_since")
