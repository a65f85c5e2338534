-- 034_seat_renewal_hot: renewing a floating seat is a HOT update.
--
-- installations_seated (032) held a floating license's active
-- installations under the predicate "seat_expires_at IS NOT NULL". A
-- column named in an index's predicate counts as indexed, so every
-- renewal, which moves seat_expires_at, was a non-HOT update: a new entry
-- in each of the table's indexes, for the write a floating installation
-- makes every time it renews its seat. The predicate now names seated, a
-- generated column that is true exactly when seat_expires_at is set: a
-- renewal leaves it as it was, and since 033 no index holds last_seen, so
-- the renewal writes only its row (the page having room, fillfactor 80).
-- The queries that read the index say "AND seated" beside their test of
-- seat_expires_at, which implies it.
--
-- Adding the column rewrites the table, which is locked while it runs (as
-- 033): run this migration when validates waiting that long are
-- acceptable.
ALTER TABLE installations ADD COLUMN seated boolean NOT NULL
  GENERATED ALWAYS AS (seat_expires_at IS NOT NULL) STORED;

DROP INDEX installations_seated;
CREATE INDEX installations_seated ON installations (license_id)
  WHERE status = 'active' AND seated;
