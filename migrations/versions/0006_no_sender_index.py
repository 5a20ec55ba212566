"""no index on the inbound sender

``inbound_messages.from_address`` had an index that no query of the gateway uses (messages
are found by mailbox and UID, by Message-ID and content, by disposition and by case), and
every version of every inbound row paid for it: a row is written four times (stored, its
attempt counted, decided, moved), and PostgreSQL adds an entry to each index for each new
version of a row whose update it cannot keep on the same page.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch_op:
        batch_op.drop_index("ix_inbound_messages_from_address")


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch_op:
        batch_op.create_index("ix_inbound_messages_from_address", ["from_address"], unique=False)
