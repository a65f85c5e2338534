-- functions/35_notify.sql: the notification outbox.
--
-- Whatever must tell a customer or the vendor something queues a row in
-- notifications in the transaction of the change it reports; licd-lifecycle
-- delivers it (SMTP and/or a signed webhook) and retries with backoff until
-- it is delivered (licd_lc_claim, licd_lc_sent, licd_lc_done).

-- Queues notification p_kind for license p_license and its customer's
-- e-mail, with p_payload, once per p_dedupe (NULL: always). Returns the new
-- id, or NULL when that dedupe key was queued before or there is no such
-- license. Called by the lifecycle tasks, the webhook program
-- (license_issued) and licctl.
CREATE OR REPLACE FUNCTION licd_notify(p_kind text, p_license uuid, p_dedupe text,
                                       p_payload jsonb)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO notifications (kind, license_id, customer_id, recipient, payload,
                             dedupe_key, next_attempt_at, created_at)
  SELECT p_kind, l.id, l.customer_id, c.email, coalesce(p_payload, '{}'),
         p_dedupe, licd_now(), licd_now()
    FROM licenses l JOIN customers c ON c.id = l.customer_id
   WHERE l.id = p_license
  ON CONFLICT (dedupe_key) DO NOTHING
  RETURNING id
$$;
