"""a practice registry: `programme.practice` marks the demo's (and a training registry's)
programme, so every page can say "practice, not real data", a reset is allowed there only, and
`kiosk demo` refuses a registry that holds a real programme

A registry made before this revision is marked when it still holds the demo's staff accounts
with the demo's own passwords (printed in the README): that registry is a demo whatever else it
holds, and no real one may keep those accounts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

import json
from importlib import resources

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _demo_password_hashes() -> list[str]:
    text = resources.files("kiosk.data").joinpath("demo_data.json").read_text(encoding="utf-8")
    return [person["password_hash"] for person in json.loads(text).get("staff", [])]


def upgrade() -> None:
    op.add_column("programme", sa.Column("practice", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    staff = sa.table("staff", sa.column("password_hash", sa.String))
    programme = sa.table("programme", sa.column("practice", sa.Boolean))
    demo_staff = sa.select(sa.func.count()).select_from(staff).where(
        staff.c.password_hash.in_(_demo_password_hashes()))
    if op.get_bind().scalar(demo_staff):
        op.execute(programme.update().values(practice=True))


def downgrade() -> None:
    with op.batch_alter_table("programme") as batch:
        batch.drop_column("practice")
