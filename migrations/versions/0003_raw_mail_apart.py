"""raw inbound mail in a table of its own (inbound_raw)

An inbound row is updated three times per message (attempt, decision, moved); SQLite
rewrites a row's whole record on every update, so a 13 KB message was written four times
(and its overflow pages went through the WAL each time). The bytes now sit in
``inbound_raw``, written once. On PostgreSQL the new column is compressed with lz4 where
available, as migration 0002 did for the old one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _lz4(table: str, column: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"DO $$ BEGIN ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4; "
        "EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN "
        "RAISE NOTICE 'compression lz4 not available'; END $$"
    )


def upgrade() -> None:
    op.create_table(
        "inbound_raw",
        sa.Column("inbound_message_id", ID, autoincrement=False, nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["inbound_message_id"], ["inbound_messages.id"],
                                name=op.f("fk_inbound_raw_inbound_message_id_inbound_messages")),
        sa.PrimaryKeyConstraint("inbound_message_id", name=op.f("pk_inbound_raw")),
    )
    _lz4("inbound_raw", "raw")
    op.execute("INSERT INTO inbound_raw (inbound_message_id, raw) "
               "SELECT id, raw FROM inbound_messages WHERE raw IS NOT NULL")
    op.drop_column("inbound_messages", "raw")  # SQLite 3.35+: a native DROP COLUMN


def downgrade() -> None:
    op.add_column("inbound_messages", sa.Column("raw", sa.LargeBinary(), nullable=True))
    _lz4("inbound_messages", "raw")
    op.execute("UPDATE inbound_messages SET raw = (SELECT r.raw FROM inbound_raw r "
               "WHERE r.inbound_message_id = inbound_messages.id)")
    op.drop_table("inbound_raw")
