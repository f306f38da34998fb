"""the claim and the release in one round trip on PostgreSQL: kiosk_claim() and
kiosk_release(), the seat ledger's server-side functions (kiosk/registry/ledger.py); nothing
on SQLite, where the ledger runs the same steps in-process

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
# `p_now` is the caller's clock when it sent the call. A claim stamps its place with it: the
# moment the patron asked (the storm reports how far such stamps fall out of queue order, by
# at most one wait for the lock). A release stamps the seats it hands out with `p_now` plus the
# wait for the lock (`clock_timestamp() - statement_timestamp()`): the moment the seat was
# given, on the caller's clock, so promotions are stamped in the order of the line.
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

# A patron gives up their place (`p_only`: only if it is that one, else nothing changes and
# `had` is NULL); their course choices go with it; a freed seat is served at once to the first
# in line who is not pending — the common case ("grant", no fair share, no lapsed offer). In
# any other case `needs_sweep`: the release is done, the lock held, and the ledger serves the
# line in Python (offers over opening days, quotas). The rules are those of `Ledger.release`
# and `Ledger.promote` with `promotion.choose`.
RELEASE = """
CREATE OR REPLACE FUNCTION kiosk_release(
    p_patron integer, p_now timestamp without time zone, p_only varchar)
RETURNS TABLE (had varchar, promoted integer[], needs_sweep boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_cap integer; v_taken integer; v_waiting integer; v_policy varchar; v_fair boolean;
    v_status varchar; v_n integer; v_ids integer[]; v_now timestamp without time zone;
BEGIN
    SELECT p.cap, p.seats_taken, p.waiting, p.promotion, p.fair_share
      INTO v_cap, v_taken, v_waiting, v_policy, v_fair
      FROM programme p WHERE p.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the programme is not set up';
    END IF;
    v_now := p_now + (clock_timestamp() - statement_timestamp());
    SELECT pl.status INTO v_status FROM places pl WHERE pl.patron_id = p_patron;
    IF NOT FOUND THEN
        v_status := 'none';
    END IF;
    IF p_only IS NOT NULL AND v_status <> p_only THEN
        RETURN QUERY SELECT NULL::varchar, '{}'::integer[], false;
        RETURN;
    END IF;
    DELETE FROM enrolments e WHERE e.patron_id = p_patron;
    IF v_status = 'none' THEN
        RETURN QUERY SELECT v_status, '{}'::integer[], false;
        RETURN;
    END IF;
    DELETE FROM places pl WHERE pl.patron_id = p_patron;
    IF v_status = 'waiting' THEN
        UPDATE programme SET waiting = waiting - 1 WHERE id = 1;
        RETURN QUERY SELECT v_status, '{}'::integer[], false;
        RETURN;
    END IF;
    UPDATE programme SET seats_taken = seats_taken - 1, over_cap = greatest(over_cap - 1, 0)
     WHERE id = 1;
    v_taken := v_taken - 1;
    IF v_policy <> 'grant' OR v_fair OR EXISTS (
            SELECT 1 FROM places o WHERE o.status = 'offered' AND o.offer_expires_at <= v_now)
    THEN
        RETURN QUERY SELECT v_status, '{}'::integer[], true;
        RETURN;
    END IF;
    v_n := least(v_cap - v_taken, v_waiting);
    v_ids := '{}';
    IF v_n > 0 THEN
        SELECT coalesce(array_agg(c.patron_id ORDER BY c.queue_no), '{}') INTO v_ids
          FROM (SELECT w.patron_id, w.queue_no FROM places w
                  JOIN patrons pa ON pa.id = w.patron_id
                 WHERE w.status = 'waiting' AND pa.pending_since IS NULL
                 ORDER BY w.queue_no LIMIT v_n) c;
    END IF;
    IF cardinality(v_ids) > 0 THEN
        UPDATE programme SET seats_taken = seats_taken + cardinality(v_ids),
                             waiting = waiting - cardinality(v_ids)
         WHERE id = 1 AND seats_taken + cardinality(v_ids) <= cap;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a promotion would pass the cap';
        END IF;
        UPDATE places SET status = 'seated', queue_no = NULL, seated_at = v_now
         WHERE patron_id = ANY (v_ids);
    END IF;
    RETURN QUERY SELECT v_status, v_ids, false;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM)
        op.execute(RELEASE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS kiosk_claim(integer, integer, "
                   "timestamp without time zone, boolean, integer, integer)")
        op.execute("DROP FUNCTION IF EXISTS kiosk_release(integer, "
                   "timestamp without time zone, varchar)")
