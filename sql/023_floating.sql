-- 023_floating: floating seats, held as short leases.
--
-- A license's seat model is `node` (an installation holds its seat until
-- it is deactivated or the lifecycle job frees it as stale) or `floating`
-- (a seat is held only while its seat lease runs: seat_expires_at, renewed
-- by validate and heartbeat, taken for days by a borrow, released by a
-- check-in). Plans carry the model and its parameters; a license copies
-- them when it is issued (as it copies features and limits) and may be
-- changed on its own afterwards (licctl license update). How seats stay
-- exact: sql/functions/50_floating.sql and docs/DESIGN.md.

ALTER TABLE plans
  ADD COLUMN seat_model text NOT NULL DEFAULT 'node'
    CHECK (seat_model IN ('node', 'floating')),
  ADD COLUMN seat_ttl int NOT NULL DEFAULT 900
    CHECK (seat_ttl BETWEEN 30 AND 86400),
  ADD COLUMN max_borrow_days int NOT NULL DEFAULT 0
    CHECK (max_borrow_days BETWEEN 0 AND 366),
  ADD COLUMN overdraft int NOT NULL DEFAULT 0
    CHECK (overdraft BETWEEN 0 AND 1000000);

-- The license's own copy. The defaults fill the rows that exist and are
-- dropped after: an INSERT that does not name these columns gets its
-- plan's values (licd_license_seat_defaults), whoever inserts it (licctl,
-- the billing webhooks).
ALTER TABLE licenses
  ADD COLUMN seat_model text NOT NULL DEFAULT 'node'
    CHECK (seat_model IN ('node', 'floating')),
  ADD COLUMN seat_ttl int NOT NULL DEFAULT 900
    CHECK (seat_ttl BETWEEN 30 AND 86400),
  ADD COLUMN max_borrow_days int NOT NULL DEFAULT 0
    CHECK (max_borrow_days BETWEEN 0 AND 366),
  ADD COLUMN overdraft int NOT NULL DEFAULT 0
    CHECK (overdraft BETWEEN 0 AND 1000000);
ALTER TABLE licenses
  ALTER COLUMN seat_model DROP DEFAULT,
  ALTER COLUMN seat_ttl DROP DEFAULT,
  ALTER COLUMN max_borrow_days DROP DEFAULT,
  ALTER COLUMN overdraft DROP DEFAULT;

-- The seat of an installation of a floating license. seat_expires_at:
-- live while later than now (NULL: none). borrowed_until: the end of a
-- borrow. seat_overdraft: taken beyond the limit. None is indexed, so a
-- renewal is a heap-only update like a last_seen refresh.
ALTER TABLE installations
  ADD COLUMN seat_since timestamptz,
  ADD COLUMN seat_expires_at timestamptz,
  ADD COLUMN borrowed_until timestamptz,
  ADD COLUMN seat_overdraft boolean NOT NULL DEFAULT false;

-- Peak concurrent live seats per license and UTC day (billing true-ups).
CREATE TABLE seat_peaks (
  license_id uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  day        date NOT NULL,
  peak       int NOT NULL CHECK (peak >= 0),
  PRIMARY KEY (license_id, day)
);

-- Every seat granted beyond the limit, for the vendor to bill or warn.
CREATE TABLE seat_overdrafts (
  id              bigserial PRIMARY KEY,
  license_id      uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  installation_id text NOT NULL,
  at              timestamptz NOT NULL,
  seats_in_use    int NOT NULL,
  seat_limit      bigint NOT NULL
);
CREATE INDEX seat_overdrafts_license ON seat_overdrafts (license_id, at);
