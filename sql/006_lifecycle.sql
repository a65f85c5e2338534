-- 006_lifecycle: what licd-lifecycle needs besides its functions
-- (sql/functions/80_lifecycle.sql).

-- Air-gapped installations (licctl lease offline) never heartbeat; their
-- seat is held until the offline lease runs out, not freed as stale.
ALTER TABLE installations ADD COLUMN offline_until timestamptz;

-- Delivery bookkeeping per channel, so a retry after a partial failure
-- (e-mail sent, webhook failed) never repeats the channel that worked.
ALTER TABLE notifications
  ADD COLUMN email_sent_at   timestamptz,
  ADD COLUMN webhook_sent_at timestamptz;
