"""members who sign in with their library card: each institution's member system (SIP2), and
patrons linked to a library card (institution + barcode), who have no password, e-mail or
date of birth of ours

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_systems",
        sa.Column("institution_id", sa.Integer(),
                  sa.ForeignKey("institutions.id", ondelete="CASCADE",
                                name="fk_member_systems_institution_id_institutions"),
                  nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("login_user", sa.String(100), nullable=False),
        sa.Column("password_file", sa.String(500), nullable=False),
        sa.Column("location_code", sa.String(100), nullable=False),
        sa.Column("sip_institution", sa.String(100), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", name="pk_member_systems"),
    )
    # SQLite copies the table to drop NOT NULL; kiosk.registry.schema.upgrade turns its
    # foreign keys off meanwhile, or dropping the old copy would cascade to sessions and seats.
    with op.batch_alter_table("patrons") as batch:
        batch.add_column(sa.Column("member_institution_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("member_barcode", sa.String(40), nullable=True))
        batch.create_foreign_key("fk_patrons_member_institution_id_institutions",
                                 "institutions", ["member_institution_id"], ["id"])
        batch.alter_column("email", existing_type=sa.String(254), nullable=True)
        batch.alter_column("birth_date", existing_type=sa.Date(), nullable=True)
        batch.create_index("ix_patrons_member", ["member_institution_id", "member_barcode"],
                           unique=True)


def downgrade() -> None:
    op.execute("DELETE FROM patrons WHERE member_barcode IS NOT NULL")
    with op.batch_alter_table("patrons") as batch:
        batch.drop_index("ix_patrons_member")
        batch.alter_column("birth_date", existing_type=sa.Date(), nullable=False)
        batch.alter_column("email", existing_type=sa.String(254), nullable=False)
        batch.drop_constraint("fk_patrons_member_institution_id_institutions",
                              type_="foreignkey")
        batch.drop_column("member_barcode")
        batch.drop_column("member_institution_id")
    op.drop_table("member_systems")
