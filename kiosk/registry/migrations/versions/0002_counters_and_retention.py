"""waiting counter on the programme row; programme end date and patron activity for retention;
the maintenance message

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD_COUNTS = "seats_taken >= 0 AND over_cap >= 0"
_NEW_COUNTS = "seats_taken >= 0 AND over_cap >= 0 AND waiting >= 0"


def upgrade() -> None:
    # batch mode: SQLite cannot alter a CHECK constraint in place (the table is copied).
    with op.batch_alter_table("programme") as batch:
        batch.add_column(sa.Column("waiting", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("ends_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("maintenance", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("maintenance_until", sa.DateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_programme_counts_non_negative"), type_="check")
        batch.create_check_constraint("counts_non_negative", _NEW_COUNTS)
    # The counter starts as what the rows say; from now on it moves with them, under the lock.
    op.execute("UPDATE programme SET waiting = "
               "(SELECT count(*) FROM places WHERE status = 'waiting')")
    with op.batch_alter_table("programme") as batch:
        batch.alter_column("waiting", server_default=None)
    with op.batch_alter_table("patrons") as batch:
        batch.add_column(sa.Column("last_active_at", sa.DateTime(), nullable=True))
    # Nobody has logged in under the new rules yet: their sign-up is their last known activity.
    op.execute("UPDATE patrons SET last_active_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        batch.drop_column("last_active_at")
    with op.batch_alter_table("programme") as batch:
        batch.drop_constraint(op.f("ck_programme_counts_non_negative"), type_="check")
        batch.create_check_constraint("counts_non_negative", _OLD_COUNTS)
        batch.drop_column("maintenance_until")
        batch.drop_column("maintenance")
        batch.drop_column("ends_on")
        batch.drop_column("waiting")
