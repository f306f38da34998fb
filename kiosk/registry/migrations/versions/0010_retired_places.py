"""retired institutions and libraries: the coordinator retires a library or an institution
in the console (kiosk/registry/libraries_admin.py); its patrons keep their accounts, the
kiosks stop offering it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new column with a default: SQLite adds it in place, no copy of the table.
    for table in ("institutions", "libraries"):
        op.add_column(table, sa.Column("retired", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade() -> None:
    for table in ("libraries", "institutions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("retired")
