"""a patron's id is never given again, so a pseudonym in the audit log (patron#97) and on the
academy's platform (kiosk-97) keeps meaning one person after an erasure: on SQLite the patrons
table is rebuilt with AUTOINCREMENT, its counter starting past every id ever used; on
PostgreSQL nothing to do (a sequence never gives a number twice)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The highest patron id the registry has ever given, as far as it can still tell: the rows
# there are, the pseudonyms of the audit log (an erasure is always audited) and the academy's
# outbox, which outlives erased patrons.
HIGHEST_EVER = sa.text("""
    SELECT max(n) FROM (
        SELECT max(id) AS n FROM patrons
        UNION ALL SELECT max(CAST(substr(subject, 8) AS INTEGER)) FROM audit_log
                  WHERE subject LIKE 'patron#%'
        UNION ALL SELECT max(CAST(substr(actor, 8) AS INTEGER)) FROM audit_log
                  WHERE actor LIKE 'patron#%'
        UNION ALL SELECT max(patron_id) FROM academy_changes
    ) AS used
""")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # SQLite copies the table (rows, indexes, constraints, foreign keys); its foreign keys
    # are off meanwhile (kiosk.registry.schema.upgrade), or dropping the old copy would
    # cascade to sessions and seats.
    with op.batch_alter_table("patrons", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}):
        pass
    # Without AUTOINCREMENT, ids above today's highest row may have been given and erased:
    # the counter starts past them too.
    highest = bind.execute(HIGHEST_EVER).scalar() or 0
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'patrons'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('patrons', :seq)"),
                 {"seq": highest})


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("patrons", recreate="always",
                              table_kwargs={"sqlite_autoincrement": False}):
        pass
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'patrons'"))
