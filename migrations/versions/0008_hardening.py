"""outbox: an index on (kind, created_at), for the hourly cap of automatic answers

The cap counts the automatic answers queued to anybody in the last hour, for every group of
inbound messages that would answer; by kind and creation time that is a short range of this
index, where the index on kind alone walked every automatic answer ever queued.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_kind_created", "outbox", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_kind_created", table_name="outbox")
