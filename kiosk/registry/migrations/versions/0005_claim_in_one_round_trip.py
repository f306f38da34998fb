"""the claim in one round trip on PostgreSQL: kiosk_claim(), the seat ledger's server-side
function (kiosk/registry/ledger.py); nothing on SQLite, where the ledger runs the same steps
in-process

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 21:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Under READ COMMITTED each statement of a VOLATILE plpgsql function takes a fresh snapshot:
# the place is read *after* the lock was granted, so a place committed by the lock's previous
# holder (this patron's other claim) is seen. The rules are those of `Ledger.grant_or_queue`
# (domain.decide_claim, promotion.may_take_seat): the contract and seat suites run both.
# `p_now` is read by the caller before the call, so a claim that waited for the lock carries
# the moment it was sent (the storm reports how far such stamps fall out of queue order).
# `needs_sweep`: a newcomer on a full programme (or under a quota) while offers have lapsed;
# nothing was changed, the lock is held, and the ledger ends those offers in Python first.
CLAIM = """
CREATE OR REPLACE FUNCTION kiosk_claim(
    p_patron integer, p_course integer, p_now timestamp without time zone,
    p_pending boolean, p_institution integer, p_quota integer)
RETURNS TABLE (standing varchar, queue_position integer, granted boolean, joined boolean,
               needs_sweep boolean, new_course boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_cap integer; v_taken integer; v_next integer; v_waiting integer; v_fair boolean;
    v_status varchar; v_queue integer; v_may boolean; v_held integer; v_new boolean;
BEGIN
    -- The course choice first, before the lock: the patron's own row, it decides nothing.
    INSERT INTO enrolments (patron_id, course_id, created_at)
    VALUES (p_patron, p_course, p_now) ON CONFLICT DO NOTHING;
    v_new := FOUND;
    SELECT p.cap, p.seats_taken, p.next_queue_no, p.waiting, p.fair_share
      INTO v_cap, v_taken, v_next, v_waiting, v_fair
      FROM programme p WHERE p.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the programme is not set up';
    END IF;
    SELECT pl.status, pl.queue_no INTO v_status, v_queue
      FROM places pl WHERE pl.patron_id = p_patron;
    IF FOUND THEN  -- a seat belongs to the patron: a second course takes no second seat
        RETURN QUERY SELECT v_status,
            CASE WHEN v_status = 'waiting' THEN
                (SELECT count(*)::integer + 1 FROM places w
                  WHERE w.status = 'waiting' AND w.queue_no < v_queue) END,
            false, false, false, v_new;
        RETURN;
    END IF;
    IF (v_taken >= v_cap OR (v_fair AND p_quota IS NOT NULL))
       AND EXISTS (SELECT 1 FROM places o
                    WHERE o.status = 'offered' AND o.offer_expires_at <= p_now) THEN
        RETURN QUERY SELECT NULL::varchar, NULL::integer, false, false, true, v_new;
        RETURN;
    END IF;
    v_may := NOT p_pending;
    IF v_may AND v_fair AND p_quota IS NOT NULL THEN
        SELECT count(*) INTO v_held FROM places h
          JOIN patrons pa ON pa.id = h.patron_id
          JOIN libraries li ON li.id = pa.library_id
         WHERE h.status IN ('seated', 'offered') AND li.institution_id = p_institution;
        v_may := v_held < p_quota;
    END IF;
    IF v_may AND v_taken < v_cap THEN
        UPDATE programme SET seats_taken = seats_taken + 1
         WHERE id = 1 AND seats_taken + 1 <= cap;
        IF FOUND THEN
            INSERT INTO places (patron_id, status, requested_at, seated_at)
            VALUES (p_patron, 'seated', p_now, p_now);
            RETURN QUERY SELECT 'seated'::varchar, NULL::integer, true, false, false, v_new;
            RETURN;
        END IF;
    END IF;
    UPDATE programme SET next_queue_no = next_queue_no + 1, waiting = waiting + 1
     WHERE id = 1;
    INSERT INTO places (patron_id, status, queue_no, requested_at)
    VALUES (p_patron, 'waiting', v_next, p_now);
    RETURN QUERY SELECT 'waiting'::varchar, v_waiting + 1, false, true, false, v_new;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS kiosk_claim(integer, integer, "
                   "timestamp without time zone, boolean, integer, integer)")
