-- 016_billing_trust: what is issued follows what was paid, once.
--
-- * One purchase, one license: licenses.purchase names the purchase that
--   issued it ('stripe:sub:sub_…', 'paddle:session:txn_…'), unique, so
--   concurrent deliveries of the events of one purchase (Paddle sends
--   subscription.created and transaction.completed together) issue one
--   license whatever the interleaving: the later INSERT waits on the
--   earlier's index entry and then finds it.
-- * The plan is the one whose provider price was paid, or the one of the
--   checkout session licd itself created; nothing the buyer sets (Paddle
--   custom_data, Stripe client_reference_id, metadata) is read.
-- * Add-ons only through a licd session (which required the license key);
--   one row per purchase; their limits add to, never replace, the license's.
-- * A provider customer id is bound once and never re-pointed.
-- * Events that wait (subscription, customer or plan not known yet) stay
--   'pending' with what they wait for in `reason`.
--
-- The functions that apply this: sql/functions/70_billing.sql.

ALTER TABLE licenses ADD COLUMN purchase text;
CREATE UNIQUE INDEX licenses_purchase ON licenses (purchase);

-- 'licd': created by POST /api/checkout/session; 'provider': first seen in
-- a webhook (Payment Links, Pricing Tables, Paddle transactions).
ALTER TABLE checkout_sessions
  ADD COLUMN created_by text NOT NULL DEFAULT 'licd'
             CHECK (created_by IN ('licd', 'provider'));

ALTER TABLE license_addons DROP CONSTRAINT license_addons_pkey;
ALTER TABLE license_addons ADD COLUMN id bigserial PRIMARY KEY;
CREATE UNIQUE INDEX license_addons_session ON license_addons (session_id);

ALTER TABLE webhook_events ADD COLUMN reason text;
