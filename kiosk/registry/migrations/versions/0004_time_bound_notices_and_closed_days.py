"""time-bound notices (not after the offer's end; obsolete once it is over); each
institution's closed days (public holidays, one-off closures); a pending account's own
number of days (the institution's at sign-up)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE … ADD COLUMN on both databases: nullable, no default, nothing copied.
    # Notices queued before this revision have no end: the sender still checks their offer.
    op.add_column("notices", sa.Column("not_after", sa.DateTime(), nullable=True))
    op.add_column("notices", sa.Column("obsolete_at", sa.DateTime(), nullable=True))
    op.create_table(
        "closed_days",
        sa.Column("institution_id", sa.Integer(),
                  sa.ForeignKey("institutions.id", ondelete="CASCADE",
                                name="fk_closed_days_institution_id_institutions"),
                  nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "day", name="pk_closed_days"),
    )
    op.add_column("patrons", sa.Column("pending_days", sa.Integer(), nullable=True))
    # Accounts pending now keep the days they were told: their institution's, as of today.
    op.execute("UPDATE patrons SET pending_days = (SELECT institutions.pending_days "
               "FROM libraries JOIN institutions ON institutions.id = libraries.institution_id "
               "WHERE libraries.id = patrons.library_id) WHERE pending_since IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        batch.drop_column("pending_days")
    op.drop_table("closed_days")
    # Nothing refers to notices: SQLite may copy it to drop the columns.
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("obsolete_at")
        batch.drop_column("not_after")
