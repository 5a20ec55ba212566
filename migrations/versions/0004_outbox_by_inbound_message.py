"""an index on outbox.inbound_message_id

Before an inbound message is answered, the gateway asks which answers to it are queued
already (so a message decided again after a crash is not answered twice), by
``outbox.inbound_message_id``: without an index, every group of messages read the whole
outbox, which only grows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_outbox_inbound_message_id"), "outbox", ["inbound_message_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_inbound_message_id"), table_name="outbox")
