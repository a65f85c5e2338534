-- functions/20_clock.sql: the clock and the time formats.
--
-- Everything time-dependent in SQL reads licd_now(): the transaction's now()
-- plus licd_clock.offset_s, which production keeps at 0 and tests move to
-- cross a month or an expiry without waiting. The programs read the same
-- clock with the license (licd_lookup's now_epoch).

-- The transaction's start time plus the test offset (the same value for a
-- whole transaction). Takes nothing; reads licd_clock. plpgsql rather than
-- LANGUAGE sql: PostgreSQL parses and plans a LANGUAGE sql function it
-- cannot inline on every call, while a plpgsql function's plan is cached
-- per connection. Called by nearly every function here, and by licctl, the
-- admin API and the lifecycle job in their own statements.
CREATE OR REPLACE FUNCTION licd_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN now() + make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

-- The clock as read now (clock_timestamp() plus the test offset), not at
-- the start of the transaction: a seat write reads it once it holds the
-- license row lock, so that the writes of one license see the clock in the
-- order they run. VOLATILE. Called by licd_seat, licd_seat_checkin,
-- licd_reset_activations and licd_license_seats_set.
CREATE OR REPLACE FUNCTION licd_clock_now() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN clock_timestamp() +
         make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

-- The UTC calendar month of t, as its first day: the period of the usage
-- counters. IMMUTABLE. Called by the usage, lifecycle and admin functions
-- and by licctl usage.
CREATE OR REPLACE FUNCTION licd_period(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
  SELECT date_trunc('month', t AT TIME ZONE 'UTC')::date
$$;

-- The start of UTC day d as a timestamptz. Called by licd_seats_at_start.
CREATE OR REPLACE FUNCTION licd_day_start(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
  SELECT d::timestamp AT TIME ZONE 'UTC'
$$;

-- t as RFC 3339 in UTC, 'YYYY-MM-DDTHH:MM:SSZ' (NULL for NULL): every time
-- in the admin API's documents.
CREATE OR REPLACE FUNCTION licd_iso(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
