-- 034_seat_renewal_hot: renewing a floating seat is a HOT update.
--
-- installations_seated (032) held a floating license's active
-- installations under the predicate "seat_expires_at IS NOT NULL". A
-- column named in an index's predicate counts as indexed, so every
-- renewal, which moves seat_expires_at, was a non-HOT update: a new entry
-- in each of the table's indexes, for the write a floating installation
-- makes every time it renews its seat. The predicate now names
-- seat_since, which a seat's take sets and its renewals leave as it is;
-- since 033 no index holds last_seen either, so a renewal writes only its
-- row (the page having room, fillfactor 80).
--
-- The index must still hold every active row with a seat expiry, which
-- the seat's queries read through it: a constraint makes every row with
-- seat_expires_at carry seat_since, whoever writes it (licd_seat sets
-- both when it takes a seat). Rows without it get their activation time
-- first. The index may also hold active rows whose seat has ended (a
-- license switched back to node-locked keeps seat_since); the queries
-- test seat_expires_at, so those are read and skipped. The queries that
-- read the index say "AND seat_since IS NOT NULL" beside their test of
-- seat_expires_at, which implies it. A generated column instead would
-- have made every row 8 bytes longer after alignment.
UPDATE installations
   SET seat_since = coalesce(activated_at, first_seen, now())
 WHERE seat_expires_at IS NOT NULL AND seat_since IS NULL;
ALTER TABLE installations ADD CONSTRAINT installations_seat_since
  CHECK (seat_expires_at IS NULL OR seat_since IS NOT NULL);

DROP INDEX installations_seated;
CREATE INDEX installations_seated ON installations (license_id)
  WHERE status = 'active' AND seat_since IS NOT NULL;
