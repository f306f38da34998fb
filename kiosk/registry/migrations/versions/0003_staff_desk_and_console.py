"""staff accounts and sessions; verification policy, opening days and fair share per
institution; promotion policy; offers on places; pending accounts; the notice outbox;
duplicate flags; audit subject and institution

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 22:00:00
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _search_name(first: str, last: str) -> str:
    """As kiosk.registry.domain.search_name was when this revision was written."""
    text = unicodedata.normalize("NFKD", f"{first} {last}")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.casefold().replace("-", " ").split())


def upgrade() -> None:
    op.add_column("institutions", sa.Column("verification", sa.String(10), nullable=False,
                                            server_default="open"))
    op.add_column("institutions", sa.Column("pending_days", sa.Integer(), nullable=False,
                                            server_default="14"))
    op.add_column("institutions", sa.Column("opening_days", sa.JSON(), nullable=True))
    op.add_column("institutions", sa.Column("seat_quota", sa.Integer(), nullable=True))
    # Adding columns only: libraries and staff refer to this table, and SQLite could add a
    # constraint only by copying it, which its foreign keys refuse inside the migration.
    op.execute("UPDATE institutions SET opening_days = '[1, 2, 3, 4, 5, 6]'")

    with op.batch_alter_table("programme") as batch:
        batch.add_column(sa.Column("promotion", sa.String(10), nullable=False,
                                   server_default="grant"))
        batch.add_column(sa.Column("offer_days", sa.Integer(), nullable=False,
                                   server_default="3"))
        batch.add_column(sa.Column("fair_share", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_check_constraint("promotion_known", "promotion IN ('grant', 'offer')")

    with op.batch_alter_table("places") as batch:
        batch.add_column(sa.Column("offer_expires_at", sa.DateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_places_status_known"), type_="check")
        batch.create_check_constraint("status_known",
                                      "status IN ('seated', 'waiting', 'offered')")
        batch.create_check_constraint("expiry_only_offered",
                                      "(status = 'offered') = (offer_expires_at IS NOT NULL)")

    # Plain ALTER TABLE … ADD COLUMN, never a batch copy: dropping the old patrons table on
    # SQLite would cascade to every place and enrolment.
    op.add_column("patrons", sa.Column("pending_since", sa.DateTime(), nullable=True))
    op.add_column("patrons", sa.Column("identity_checked_at", sa.DateTime(), nullable=True))
    op.add_column("patrons", sa.Column("identity_checked_by", sa.String(80), nullable=False,
                                       server_default=""))
    op.add_column("patrons", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.add_column("patrons", sa.Column("search_name", sa.String(130), nullable=False,
                                       server_default=""))
    op.create_index("ix_patrons_search_name", "patrons", ["search_name"])
    patrons = sa.table("patrons", sa.column("id", sa.Integer), sa.column("first_name", sa.String),
                       sa.column("last_name", sa.String), sa.column("search_name", sa.String))
    conn = op.get_bind()
    for pid, first, last in conn.execute(sa.select(patrons.c.id, patrons.c.first_name,
                                                   patrons.c.last_name)).all():
        conn.execute(patrons.update().where(patrons.c.id == pid)
                     .values(search_name=_search_name(first, last)))

    op.add_column("audit_log", sa.Column("subject", sa.String(40), nullable=False,
                                         server_default=""))
    op.add_column("audit_log", sa.Column("institution", sa.String(12), nullable=False,
                                         server_default=""))
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(60), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("institution_id", sa.Integer(),
                  sa.ForeignKey("institutions.id", name="fk_staff_institution_id_institutions"),
                  nullable=True),
        sa.Column("library_id", sa.Integer(),
                  sa.ForeignKey("libraries.id", name="fk_staff_library_id_libraries"),
                  nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.CheckConstraint("role IN ('librarian', 'coordinator', 'it_admin')",
                           name="ck_staff_role_known"),
        sa.CheckConstraint("role != 'librarian' OR institution_id IS NOT NULL",
                           name="ck_staff_librarian_has_institution"),
        sa.PrimaryKeyConstraint("id", name="pk_staff"),
        sa.UniqueConstraint("username", name="uq_staff_username"),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.Integer(),
                  sa.ForeignKey("staff.id", ondelete="CASCADE",
                                name="fk_staff_sessions_staff_id_staff"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("place", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_staff_sessions_token_hash"),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patron_id", sa.Integer(),
                  sa.ForeignKey("patrons.id", ondelete="CASCADE",
                                name="fk_notices_patron_id_patrons"), nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
    )
    op.create_index("ix_notices_due", "notices", ["sent_at", "next_attempt_at"])
    op.create_table(
        "duplicate_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patron_id", sa.Integer(),
                  sa.ForeignKey("patrons.id", ondelete="CASCADE",
                                name="fk_duplicate_flags_patron_id_patrons"), nullable=False),
        sa.Column("other_id", sa.Integer(),
                  sa.ForeignKey("patrons.id", ondelete="CASCADE",
                                name="fk_duplicate_flags_other_id_patrons"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(80), nullable=False),
        sa.Column("resolution", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_duplicate_flags"),
        sa.UniqueConstraint("patron_id", "other_id", name="uq_duplicate_flags_patron_id"),
    )


def downgrade() -> None:
    op.drop_table("duplicate_flags")
    op.drop_index("ix_notices_due", table_name="notices")
    op.drop_table("notices")
    op.drop_table("staff_sessions")
    op.drop_table("staff")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_at")
        batch.drop_column("institution")
        batch.drop_column("subject")
    with op.batch_alter_table("patrons") as batch:
        batch.drop_index("ix_patrons_search_name")
        for column in ("search_name", "must_change_password", "identity_checked_by",
                       "identity_checked_at", "pending_since"):
            batch.drop_column(column)
    # The old schema has no offers: a held seat becomes a seat (the counts stay true).
    op.execute("UPDATE places SET status = 'seated', seated_at = requested_at, "
               "offer_expires_at = NULL WHERE status = 'offered'")
    with op.batch_alter_table("places") as batch:
        batch.drop_constraint(op.f("ck_places_expiry_only_offered"), type_="check")
        batch.drop_constraint(op.f("ck_places_status_known"), type_="check")
        batch.create_check_constraint("status_known", "status IN ('seated', 'waiting')")
        batch.drop_column("offer_expires_at")
    with op.batch_alter_table("programme") as batch:
        batch.drop_constraint(op.f("ck_programme_promotion_known"), type_="check")
        for column in ("fair_share", "offer_days", "promotion"):
            batch.drop_column(column)
    with op.batch_alter_table("institutions") as batch:
        for column in ("seat_quota", "opening_days", "pending_days", "verification"):
            batch.drop_column(column)
