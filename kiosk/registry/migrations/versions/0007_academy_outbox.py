"""the academy's outbox: academy_changes, one row per "this patron changed", sent over SCIM
(kiosk/registry/academy.py, academy_sender.py)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "academy_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patron_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_academy_changes"),
    )
    op.create_index("ix_academy_changes_due", "academy_changes", ["done_at", "patron_id"])


def downgrade() -> None:
    op.drop_index("ix_academy_changes_due", table_name="academy_changes")
    op.drop_table("academy_changes")
