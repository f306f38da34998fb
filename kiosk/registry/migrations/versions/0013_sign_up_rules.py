"""sign-up rules per institution: whether its sign-up asks for a phone number and a postcode
(not asked, optional, required) and its minimum age, set by the coordinator in the console
(kiosk/registry/signup_rules.py); existing institutions keep the programme's rules

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New columns with a default (or none): SQLite adds them in place, no copy of the table.
    # The defaults are the rules every institution had: phone optional, postcode required,
    # the minimum age the registry's MIN_AGE setting (NULL).
    op.add_column("institutions", sa.Column("sign_up_phone", sa.String(10), nullable=False,
                                            server_default="optional"))
    op.add_column("institutions", sa.Column("sign_up_postcode", sa.String(10), nullable=False,
                                            server_default="required"))
    op.add_column("institutions", sa.Column("min_age", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.drop_column("min_age")
        batch.drop_column("sign_up_postcode")
        batch.drop_column("sign_up_phone")
