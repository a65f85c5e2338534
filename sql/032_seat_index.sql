-- 032_seat_index: the index of a license's active installations keeps
-- floating seats only.
--
-- installations_active (license_id, every active installation) served the
-- count of a license's seats in use, which activations read from
-- license_seats since 031. Every refresh of last_seen is a non-HOT update
-- (the console's installation list indexes last_seen, 019), and a non-HOT
-- update adds an entry to every index of the table: this one's at a page
-- of its own for every installation of every license, which at a million
-- installations is one more random page per refresh.
--
-- What still reads a license's active installations on a hot path is the
-- floating seat (licd_seat lapses and counts them under the license's
-- lock; licd_active_installations counts the live ones), and every active
-- installation of a floating license holds a seat expiry: licd_seat writes
-- one with the seat, a check-in ends the row's activity with it, and
-- switching a license to floating ends its node seats
-- (licd_license_seats_set). A node-locked license's installations have
-- none, except a row reactivated after its license left floating, which
-- the index then holds: harmless.
--
-- The active installations of floating licenses switched from node before
-- this end here as a switch ends them now: without an expiry, licd_seat
-- lapsed them at the license's next seat take, and nothing counted them.
UPDATE installations i SET status = 'inactive', deactivated_at = now()
  FROM licenses l
 WHERE l.id = i.license_id AND l.seat_model = 'floating'
   AND i.status = 'active' AND i.seat_expires_at IS NULL;

CREATE INDEX installations_seated ON installations (license_id)
  WHERE status = 'active' AND seat_expires_at IS NOT NULL;
DROP INDEX installations_active;
