"""whether an inbound message was moved: a row in inbound_moved, not a column

The ``moved`` flag was the fourth write of every inbound row (stored, attempt counted,
decided, moved). On PostgreSQL each update writes a new version of the whole row, the
decided row's trail and text included, and, when the page has no room for it, an entry in
each of the table's indexes. A narrow row inserted once into ``inbound_moved`` records the
same fact; ``InboundMessage.moved`` reads it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_moved",
        sa.Column("inbound_message_id", ID, autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["inbound_message_id"], ["inbound_messages.id"],
                                name=op.f("fk_inbound_moved_inbound_message_id_inbound_messages")),
        sa.PrimaryKeyConstraint("inbound_message_id", name=op.f("pk_inbound_moved")),
    )
    op.execute("INSERT INTO inbound_moved (inbound_message_id) SELECT id FROM inbound_messages WHERE moved")
    op.drop_column("inbound_messages", "moved")  # SQLite 3.35+: a native DROP COLUMN


def downgrade() -> None:
    op.add_column("inbound_messages",
                  sa.Column("moved", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE inbound_messages SET moved = true "
               "WHERE id IN (SELECT inbound_message_id FROM inbound_moved)")
    op.drop_table("inbound_moved")
