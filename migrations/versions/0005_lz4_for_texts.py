"""the customer's new text, timeline bodies and queued mail compressed with lz4 on PostgreSQL

PostgreSQL compresses a value over about 2 KB with pglz by default, on every row written: a
reply's new text (stored on its inbound row and again as the body of its timeline event) and
every queued mail (the whole MIME message, text and HTML). lz4 takes a fraction of pglz's
CPU at about the same size, as for raw mail (migration 0002). Applies to values written from
now on. Where lz4 is not available the columns keep the default. SQLite: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [("inbound_messages", "new_text"), ("case_events", "body"), ("outbox", "data")]


def _set_compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    statements = " ".join(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method};"
                          for table, column in COLUMNS)
    op.execute(
        "DO $$ BEGIN " + statements + " EXCEPTION WHEN feature_not_supported OR syntax_error "
        f"OR invalid_parameter_value THEN RAISE NOTICE 'compression {method} not available'; END $$"
    )


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
