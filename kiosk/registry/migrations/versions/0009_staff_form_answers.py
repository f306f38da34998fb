"""staff_form_answers: a staff form sent again (a double click, a lost answer) is answered
once, with the first answer (kiosk/staff/once.py); purged with the idempotency keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_form_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state IN ('running', 'done')",
                           name="ck_staff_form_answers_state_known"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"],
                                name="fk_staff_form_answers_staff_id_staff",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_staff_form_answers"),
        sa.UniqueConstraint("staff_id", "key", name="uq_staff_form_answers_staff_id"),
    )
    op.create_index("ix_staff_form_answers_created", "staff_form_answers", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_staff_form_answers_created", table_name="staff_form_answers")
    op.drop_table("staff_form_answers")
