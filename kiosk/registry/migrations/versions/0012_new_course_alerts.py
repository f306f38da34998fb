"""new-course alerts: a patron's subscriptions by category (with their own consent), the
courses published and waiting to be told, the courses each patron was told about, and the
one-click unsubscribe address of a notice (kiosk/registry/alerts.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("unsubscribe_url", sa.String(500), nullable=False,
                                   server_default=""))
    op.create_table(
        "alert_subscriptions",
        sa.Column("patron_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(20), nullable=False),
        sa.Column("consented_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patron_id"], ["patrons.id"], ondelete="CASCADE",
                                name="fk_alert_subscriptions_patron_id_patrons"),
        sa.ForeignKeyConstraint(["category_code"], ["categories.code"], ondelete="CASCADE",
                                name="fk_alert_subscriptions_category_code_categories"),
        sa.PrimaryKeyConstraint("patron_id", "category_code", name="pk_alert_subscriptions"),
    )
    op.create_table(
        "course_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("told_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], ondelete="CASCADE",
                                name="fk_course_publications_course_id_courses"),
        sa.PrimaryKeyConstraint("id", name="pk_course_publications"),
    )
    op.create_index("ix_course_publications_due", "course_publications",
                    ["told_at", "published_at"])
    op.create_table(
        "alerts_sent",
        sa.Column("patron_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patron_id"], ["patrons.id"], ondelete="CASCADE",
                                name="fk_alerts_sent_patron_id_patrons"),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], ondelete="CASCADE",
                                name="fk_alerts_sent_course_id_courses"),
        sa.PrimaryKeyConstraint("patron_id", "course_id", name="pk_alerts_sent"),
    )


def downgrade() -> None:
    op.drop_table("alerts_sent")
    op.drop_index("ix_course_publications_due", table_name="course_publications")
    op.drop_table("course_publications")
    op.drop_table("alert_subscriptions")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("unsubscribe_url")
