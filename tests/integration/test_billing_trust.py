"""Billing under Stripe's current API version, and a buyer who controls
nothing that decides what is issued. Events are built field for field
from the providers' published object shapes (Stripe 2026-10-28: invoice
parent.subscription_details, line parent.subscription_item_details,
periods on subscription items; Paddle Billing v1 notifications) and
signed with the configured secrets in each provider's scheme, over HTTP
through nginx."""
import concurrent.futures
import json
import os
import time
import uuid

import pytest
import requests

from util import (CFG, URL, api, error_code, licctl, sql, sql1, unique,
                  validate)
from test_billing import (double, expires_epoch, key_of, license_of_sub,
                          licenses_count, paddle_customer, paddle_hook,
                          priced_plan, reset_double, stripe_hook, stripe_sig)

DOUBLE = os.environ.get("LICD_STRIPE_API_BASE")
pytestmark = pytest.mark.skipif(not DOUBLE, reason="needs the Stripe double (tests/run.sh)")
assert reset_double  # autouse: every test starts with a clean double

CURRENT = "2026-10-28.endive"
OLD = "2024-06-20"


def now():
    return int(time.time())


def rid():
    return "req_" + uuid.uuid4().hex[:14]


# --- Stripe objects as the 2026-10-28 API reference lists them -------------

def event(type_, obj, version=CURRENT, previous=None):
    return {"id": "evt_" + uuid.uuid4().hex[:24], "object": "event",
            "api_version": version, "context": None, "created": now(),
            "data": {"object": obj,
                     **({"previous_attributes": previous} if previous else {})},
            "livemode": False, "pending_webhooks": 1,
            "request": {"id": rid(), "idempotency_key": str(uuid.uuid4())},
            "type": type_}


def price(pid, interval="month"):
    return {"id": pid, "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": now() - 86400, "currency": "usd", "custom_unit_amount": None,
            "livemode": False, "lookup_key": None, "metadata": {}, "nickname": None,
            "product": "prod_" + uuid.uuid4().hex[:14],
            "recurring": {"interval": interval, "interval_count": 1, "meter": None,
                          "trial_period_days": None, "usage_type": "licensed"},
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
            "type": "recurring", "unit_amount": 4900, "unit_amount_decimal": "4900"}


def invoice_line(sub, start, end, pid):
    return {"id": "il_" + uuid.uuid4().hex[:24], "object": "line_item", "amount": 4900,
            "currency": "usd", "description": "1 × licd plan", "discount_amounts": [],
            "discountable": True, "discounts": [], "invoice": None, "livemode": False,
            "metadata": {},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {
                           "invoice_item": None, "proration": False,
                           "proration_details": {"credited_items": None},
                           "subscription": sub,
                           "subscription_item": "si_" + uuid.uuid4().hex[:14]}},
            "period": {"end": end, "start": start}, "pretax_credit_amounts": [],
            "pricing": {"price_details": {"price": pid, "product": "prod_x"},
                        "type": "price_details", "unit_amount_decimal": "4900"},
            "quantity": 1, "taxes": []}


def invoice(sub, end, pid="price_x", paid=True, parent=True, lines_parent=True):
    """An Invoice (2025-03-31.basil and later): no top-level subscription,
    its subscription under parent.subscription_details."""
    start = end - 30 * 86400
    line = invoice_line(sub, start, end, pid)
    if not lines_parent:
        line["parent"] = None
    iid = "in_" + uuid.uuid4().hex[:24]
    line["invoice"] = iid
    return {
        "id": iid, "object": "invoice", "account_country": "US",
        "account_name": "Vendor Inc", "account_tax_ids": None,
        "amount_due": 4900, "amount_overpaid": 0, "amount_paid": 4900 if paid else 0,
        "amount_remaining": 0 if paid else 4900, "amount_shipping": 0,
        "application": None, "attempt_count": 1, "attempted": True,
        "auto_advance": not paid, "automatic_tax": {"disabled_reason": None,
                                                    "enabled": False, "liability": None,
                                                    "provider": None, "status": None},
        "automatically_finalizes_at": None, "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically", "confirmation_secret": None,
        "created": now(), "currency": "usd", "custom_fields": None,
        "customer": "cus_" + uuid.uuid4().hex[:14], "customer_address": None,
        "customer_email": "buyer@example.com", "customer_name": None,
        "customer_phone": None, "customer_shipping": None, "customer_tax_exempt": "none",
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": None, "discounts": [], "due_date": None,
        "effective_at": now(), "ending_balance": 0, "footer": None,
        "from_invoice": None, "hosted_invoice_url": "https://invoice.stripe.com/i/x",
        "invoice_pdf": "https://pay.stripe.com/invoice/x/pdf",
        "issuer": {"type": "self"}, "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [line], "has_more": False,
                  "total_count": 1, "url": "/v1/invoices/%s/lines" % iid},
        "livemode": False, "metadata": {}, "next_payment_attempt": None,
        "number": "ABC-0001", "on_behalf_of": None,
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"metadata": {}, "subscription": sub,
                                            "subscription_proration_date": None}}
        if parent else None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "payments": {"object": "list", "data": [], "has_more": False, "url": "/v1/x"},
        "period_end": start, "period_start": start - 30 * 86400,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "receipt_number": None, "rendering": None, "shipping_cost": None,
        "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
        "status": "paid" if paid else "open",
        "status_transitions": {"finalized_at": now(), "marked_uncollectible_at": None,
                               "paid_at": now() if paid else None, "voided_at": None},
        "subtotal": 4900, "subtotal_excluding_tax": 4900, "test_clock": None,
        "total": 4900, "total_discount_amounts": [], "total_excluding_tax": 4900,
        "total_pretax_credit_amounts": [], "total_taxes": [],
        "webhooks_delivered_at": now()}


def subscription(sub, end, pid, status="active", cancel_at_period_end=False):
    """A Subscription (2025-03-31.basil and later): current_period_start
    and _end on each item, not on the subscription."""
    cus = "cus_" + uuid.uuid4().hex[:14]
    return {
        "id": sub, "object": "subscription", "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": end - 30 * 86400, "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_thresholds": None, "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": now() if status == "canceled" else None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically", "created": now() - 86400,
        "currency": "usd", "customer": cus, "days_until_due": None,
        "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": None, "discounts": [],
        "ended_at": now() if status == "canceled" else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": [{
            "id": "si_" + uuid.uuid4().hex[:14], "object": "subscription_item",
            "billing_thresholds": None, "created": now() - 86400,
            "current_period_end": end, "current_period_start": end - 30 * 86400,
            "discounts": [], "metadata": {}, "price": price(pid), "quantity": 1,
            "subscription": sub, "tax_rates": []}],
            "has_more": False, "total_count": 1,
            "url": "/v1/subscription_items?subscription=" + sub},
        "latest_invoice": "in_" + uuid.uuid4().hex[:14], "livemode": False,
        "metadata": {}, "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None, "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": now() - 86400,
        "status": status, "test_clock": None, "transfer_data": None,
        "trial_end": None, "trial_settings": {"end_behavior": {
            "missing_payment_method": "create_invoice"}}, "trial_start": None}


def session(sid, sub=None, email=None, mode="subscription", cus=None,
            client_reference_id=None, metadata=None, payment_status="paid"):
    """A Checkout Session as checkout.session.completed carries it."""
    return {
        "id": sid, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": None,
        "amount_subtotal": 4900, "amount_total": 4900,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None,
                          "status": None},
        "billing_address_collection": None, "cancel_url": None,
        "client_reference_id": client_reference_id, "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None,
        "created": now() - 60, "currency": "usd", "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None,
                        "submit": None, "terms_of_service_acceptance": None},
        "customer": cus or "cus_" + uuid.uuid4().hex[:14],
        "customer_creation": "always",
        "customer_details": {"address": None, "email": email or unique("b") + "@example.com",
                             "name": "Buyer", "phone": None, "tax_exempt": "none",
                             "tax_ids": []},
        "customer_email": None, "discounts": [], "expires_at": now() + 86400,
        "invoice": None, "invoice_creation": None, "livemode": False, "locale": None,
        "metadata": metadata or {}, "mode": mode, "payment_intent": None,
        "payment_link": "plink_" + uuid.uuid4().hex[:14],
        "payment_method_collection": "always", "payment_method_types": ["card"],
        "payment_status": payment_status, "presentment_details": None,
        "recovered_from": None, "saved_payment_method_options": None,
        "setup_intent": None, "shipping_address_collection": None,
        "shipping_cost": None, "shipping_options": [], "status": "complete",
        "submit_type": None, "subscription": sub, "success_url": "https://x/",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": None, "wallet_options": None}


def payment_link_purchase(plan_price, sub=None, **kw):
    """A Payment Link checkout: Stripe made the session, licd learns its
    price from the line items."""
    sid = "cs_test_" + uuid.uuid4().hex
    double("/__session", {"id": sid, "prices": [plan_price]})
    sub = sub or "sub_" + uuid.uuid4().hex[:14]
    return event("checkout.session.completed", session(sid, sub=sub, **kw)), sid, sub


def bought(plan):
    ev, sid, sub = payment_link_purchase("price_" + plan)
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    lic = license_of_sub(sub)
    return sub, lic, key_of(lic)


# --- Stripe, current version ---------------------------------------------

def test_current_renewal_extends_the_license():
    plan = priced_plan()
    sub, lic, key = bought(plan)
    end = now() + 61 * 86400
    r = stripe_hook(event("invoice.paid", invoice(sub, end, "price_" + plan)))
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert expires_epoch(lic) == end
    assert validate(key, "cur-1").json()["license"]["expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    # only the per-line subscription (no invoice parent): still read
    end2 = end + 30 * 86400
    r = stripe_hook(event("invoice.paid", invoice(sub, end2, parent=False)))
    assert r.json()["outcome"] == "applied" and expires_epoch(lic) == end2


def test_current_payment_failure_starts_grace():
    plan = priced_plan()
    sub, lic, key = bought(plan)
    sql("UPDATE licenses SET expires_at = licd_now() - interval '1 hour' WHERE id = %s", lic)
    r = stripe_hook(event("invoice.payment_failed",
                          invoice(sub, now() + 30 * 86400, paid=False)))
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    grace = sql1("SELECT extract(epoch FROM grace_until - now()) FROM licenses WHERE id = %s", lic)
    assert abs(grace - 7 * 86400) < 120
    v = validate(key, "cur-g").json()
    assert v["code"] == "VALID" and v["license"]["grace_until"] is not None


def test_current_update_and_deletion_read_the_items_period():
    plan = priced_plan()
    sub, lic, key = bought(plan)
    end = now() + 45 * 86400
    r = stripe_hook(event("customer.subscription.updated",
                          subscription(sub, end, "price_" + plan, cancel_at_period_end=True),
                          previous={"cancel_at_period_end": False}))
    assert r.json()["outcome"] == "applied", r.text
    assert expires_epoch(lic) == end
    assert sql1("SELECT cancel_at_period_end FROM subscriptions"
                " WHERE provider_subscription_id = %s", sub) is True
    end2 = now() + 20 * 86400
    r = stripe_hook(event("customer.subscription.deleted",
                          subscription(sub, end2, "price_" + plan, status="canceled")))
    assert r.json()["outcome"] == "applied"
    assert expires_epoch(lic) == end2      # the paid-up period's end, from the item
    assert sql1("SELECT status FROM subscriptions WHERE provider_subscription_id = %s",
                sub) == "canceled"


def test_older_shapes_still_work():
    plan = priced_plan()
    sub, lic, key = bought(plan)
    end = now() + 33 * 86400
    inv = {"id": "in_" + uuid.uuid4().hex[:14], "object": "invoice", "subscription": sub,
           "period_end": now(), "lines": {"object": "list", "data": [
               {"id": "il_1", "object": "line_item", "subscription": sub,
                "period": {"start": now(), "end": end}}]}}
    assert stripe_hook(event("invoice.paid", inv, OLD)).json()["outcome"] == "applied"
    assert expires_epoch(lic) == end
    old_sub = {"id": sub, "object": "subscription", "status": "active",
               "cancel_at_period_end": False, "current_period_end": end + 86400,
               "items": {"object": "list", "data": [{"id": "si_1", "price": price("price_" + plan)}]}}
    assert stripe_hook(event("customer.subscription.updated", old_sub, OLD)).json()[
        "outcome"] == "applied"
    assert expires_epoch(lic) == end + 86400


def test_invoice_without_subscription_is_ignored():
    for ev in (event("invoice.paid", invoice("sub_none", now() + 86400, parent=False,
                                             lines_parent=False)),
               event("invoice.paid", {"id": "in_old", "object": "invoice",
                                      "subscription": None, "lines": {"data": []}}, OLD)):
        r = stripe_hook(ev)
        assert r.status_code == 200 and r.json()["outcome"] == "ignored", r.text


def test_unmapped_event_is_refused_so_stripe_retries():
    """An invoice.paid in a shape licd cannot read (no subscription at any
    known path) is not acknowledged: 422, nothing recorded, and the same
    event delivered again once readable is applied."""
    plan = priced_plan()
    sub, lic, key = bought(plan)
    end = now() + 40 * 86400
    inv = invoice(sub, end)
    del inv["parent"]
    for line in inv["lines"]["data"]:
        del line["parent"]
    ev = event("invoice.paid", inv)
    r = stripe_hook(ev)
    assert r.status_code == 422 and error_code(r) == "UNMAPPED_EVENT", r.text
    assert sql1("SELECT count(*) FROM webhook_events WHERE event_id = %s", ev["id"]) == 0
    assert expires_epoch(lic) != end
    ev["data"]["object"]["parent"] = {"type": "subscription_details", "quote_details": None,
                                      "subscription_details": {"metadata": {},
                                                               "subscription": sub}}
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "applied"
    assert expires_epoch(lic) == end


def test_pending_events_are_listed_and_warned_about():
    sub = "sub_" + uuid.uuid4().hex[:14]
    ev = event("invoice.paid", invoice(sub, now() + 86400))
    assert stripe_hook(ev).json()["outcome"] == "pending"
    out = [json.loads(l) for l in
           licctl("webhook", "pending", "--json").stdout.splitlines()]
    mine = [e for e in out if e["event_id"] == ev["id"]]
    assert mine and mine[0]["subject"] == sub and mine[0]["type"] == "invoice.paid"
    assert mine[0]["reason"] == "subscription not known yet"
    # an hour later the lifecycle job warns
    sql("UPDATE webhook_events SET received_at = now() - interval '2 hours'"
        " WHERE event_id = %s", ev["id"])
    p = lifecycle()
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith("pending-events")][0]
    assert int(line.split()[1]) >= 1
    assert "webhook events pending over an hour" in open(CFG["log_file"]).read()
    sql("UPDATE webhook_events SET status = 'ignored' WHERE event_id = %s", ev["id"])


def lifecycle():
    import subprocess
    from util import BIN, CONFIG
    return subprocess.run([os.path.join(BIN, "licd-lifecycle"), "--dry-run"],
                          capture_output=True, timeout=120,
                          text=True, env=dict(os.environ, LICD_CONFIG=CONFIG))


def test_stripe_version_pinned_on_every_call():
    plan = priced_plan()
    r = api("/api/checkout/session", {"plan": plan, "email": "v@example.com"})
    assert r.status_code == 201, r.text
    bought(plan)
    reqs = double("/__requests")
    assert {q["method"] for q in reqs} == {"GET", "POST"}
    assert all(q["headers"].get("stripe-version") == CURRENT for q in reqs), reqs
    get = [q for q in reqs if q["method"] == "GET"][0]
    assert get["path"].endswith("/line_items")


# --- the plan follows the price paid ---------------------------------------

def test_payment_link_plan_found_through_line_items():
    cheap = priced_plan(features="sso", limits="installations=1")
    dear = priced_plan(features="sso,audit", limits="installations=1000")
    ev, sid, sub = payment_link_purchase("price_" + cheap, client_reference_id=dear,
                                         metadata={"licd_plan": dear})
    r = stripe_hook(ev)
    assert r.json()["outcome"] == "applied", r.text
    lic = license_of_sub(sub)
    v = validate(key_of(lic), "pl-1").json()
    assert v["license"]["plan"] == cheap
    assert v["license"]["limits"] == {"installations": 1}
    assert [q["path"] for q in double("/__requests") if q["method"] == "GET"] == [
        "/v1/checkout/sessions/%s/line_items" % sid]


def test_licd_session_plan_cannot_be_swapped():
    cheap = priced_plan(features="sso", limits="installations=1")
    dear = priced_plan(features="sso,audit", limits="installations=1000")
    r = api("/api/checkout/session", {"plan": cheap, "email": "s@example.com"})
    sid = r.json()["id"]
    ev = event("checkout.session.completed",
               session(sid, sub="sub_" + uuid.uuid4().hex[:14], client_reference_id=dear,
                       metadata={"licd_plan": dear}))
    assert stripe_hook(ev).json()["outcome"] == "applied"
    b = api("/api/checkout/session/" + sid, method="GET").json()
    assert b["status"] == "complete"
    assert validate(b["license_key"], "sw-1").json()["license"]["plan"] == cheap
    # licd's own session needs no line items call
    assert not [q for q in double("/__requests") if q["method"] == "GET"]


def test_unknown_price_is_held_not_issued_then_replayed():
    unsold = "price_unsold_" + uuid.uuid4().hex[:8]
    ev, sid, sub = payment_link_purchase(unsold)
    before = licenses_count()
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
    assert licenses_count() == before
    pend = [json.loads(l) for l in licctl("webhook", "pending", "--json").stdout.splitlines()]
    mine = [e for e in pend if e["event_id"] == ev["id"]][0]
    assert mine["reason"] == "no plan sells the price paid"
    assert api("/api/checkout/session/" + sid, method="GET").status_code == 404
    # the operator creates the plan for that price, then replays the event
    assert mine["subject"] == "price:" + unsold
    code = unique("late")
    licctl("plan", "set", code, "--name", code, "--features", "sso", "--limits",
           "installations=2", "--price-cents", "100", "--currency", "usd",
           "--interval", "month", "--stripe-price", unsold)
    p = licctl("webhook", "replay", "stripe", ev["id"])
    assert "applied" in p.stdout and "license issued" in p.stdout
    lic = license_of_sub(sub)
    assert validate(key_of(lic), "late-1").json()["license"]["plan"] == code
    assert sql1("SELECT status FROM webhook_events WHERE event_id = %s", ev["id"]) == "applied"


def test_line_items_unreachable_is_retried_not_lost():
    ev, sid, sub = payment_link_purchase("price_x")
    double("/__mode", {"mode": "error500"})
    r = stripe_hook(ev)
    assert r.status_code == 502 and error_code(r) == "PAYMENT_PROVIDER_ERROR"
    assert sql1("SELECT count(*) FROM webhook_events WHERE event_id = %s", ev["id"]) == 0


# --- Paddle ---------------------------------------------------------------

def paddle_ts():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def paddle_item(pri):
    return {"status": "active", "quantity": 1, "recurring": True,
            "created_at": paddle_ts(), "updated_at": paddle_ts(),
            "previously_billed_at": paddle_ts(), "next_billed_at": None,
            "trial_dates": None,
            "price": {"id": pri, "product_id": "pro_" + uuid.uuid4().hex[:26],
                      "type": "standard", "description": "Monthly", "name": "Monthly",
                      "billing_cycle": {"interval": "month", "frequency": 1},
                      "trial_period": None, "tax_mode": "account_setting",
                      "unit_price": {"amount": "4900", "currency_code": "USD"},
                      "unit_price_overrides": [], "custom_data": None,
                      "quantity": {"minimum": 1, "maximum": 1}, "status": "active",
                      "import_meta": None, "created_at": paddle_ts(),
                      "updated_at": paddle_ts()}}


def paddle_event(type_, data):
    return {"event_id": "evt_" + uuid.uuid4().hex[:26], "event_type": type_,
            "occurred_at": paddle_ts(), "notification_id": "ntf_" + uuid.uuid4().hex[:26],
            "data": data}


def paddle_sub_created(sub, ctm, txn, pri, custom=None):
    ends = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now() + 30 * 86400))
    return paddle_event("subscription.created", {
        "id": sub, "status": "active", "customer_id": ctm,
        "address_id": "add_" + uuid.uuid4().hex[:26], "business_id": None,
        "currency_code": "USD", "created_at": paddle_ts(), "updated_at": paddle_ts(),
        "started_at": paddle_ts(), "first_billed_at": paddle_ts(),
        "next_billed_at": ends, "paused_at": None, "canceled_at": None,
        "collection_mode": "automatic", "billing_details": None,
        "current_billing_period": {"starts_at": paddle_ts(), "ends_at": ends},
        "billing_cycle": {"interval": "month", "frequency": 1},
        "scheduled_change": None, "items": [paddle_item(pri)],
        "custom_data": custom, "import_meta": None, "discount": None,
        "transaction_id": txn})


def paddle_txn_completed(txn, sub, ctm, pri, custom=None):
    ends = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now() + 30 * 86400))
    return paddle_event("transaction.completed", {
        "id": txn, "status": "completed", "customer_id": ctm,
        "address_id": "add_" + uuid.uuid4().hex[:26], "business_id": None,
        "custom_data": custom, "currency_code": "USD", "origin": "web",
        "subscription_id": sub, "invoice_id": "inv_" + uuid.uuid4().hex[:26],
        "invoice_number": "325-10566", "collection_mode": "automatic",
        "discount_id": None, "billing_details": None,
        "billing_period": {"starts_at": paddle_ts(), "ends_at": ends},
        "items": [{"price_id": pri, "price": paddle_item(pri)["price"], "quantity": 1,
                   "proration": None}],
        "details": {"totals": {"subtotal": "4900", "tax": "0", "discount": "0",
                               "total": "4900", "grand_total": "4900", "fee": "0",
                               "earnings": "4900", "currency_code": "USD"},
                    "line_items": []},
        "payments": [], "checkout": {"url": "https://vendor.example/pay?_ptxn=" + txn},
        "created_at": paddle_ts(), "updated_at": paddle_ts(), "billed_at": paddle_ts(),
        "revised_at": None})


def paddle_buyer(email=None):
    ctm = "ctm_" + uuid.uuid4().hex[:26]
    r = paddle_hook(paddle_customer("customer.created", ctm,
                                    email or unique("pb") + "@example.com"))
    assert r.json()["outcome"] == "applied", r.text
    return ctm


def test_paddle_custom_data_chooses_nothing():
    cheap = priced_plan(features="sso", limits="installations=1")
    dear = priced_plan(features="sso,audit", limits="installations=1000")
    victim = unique("victim") + "@example.com"
    vctm = paddle_buyer(victim)
    ctm = paddle_buyer()
    sub, txn = "sub_" + uuid.uuid4().hex[:26], "txn_" + uuid.uuid4().hex[:26]
    custom = {"licd_plan": dear, "email": victim, "licd_license": str(uuid.uuid4())}
    r = paddle_hook(paddle_txn_completed(txn, sub, ctm, "pri_" + cheap, custom))
    assert r.json()["outcome"] == "applied", r.text
    lic = sql1("SELECT license_id::text FROM subscriptions WHERE provider = 'paddle'"
               " AND provider_subscription_id = %s", sub)
    row = sql("SELECT l.plan_code, c.paddle_customer_id FROM licenses l"
              " JOIN customers c ON c.id = l.customer_id WHERE l.id = %s", lic)[0]
    assert row == (cheap, ctm)
    assert sql1("SELECT paddle_customer_id FROM customers WHERE lower(email) = lower(%s)",
                victim) == vctm


def test_paddle_issue_waits_for_the_verified_customer():
    plan = priced_plan()
    ctm = "ctm_" + uuid.uuid4().hex[:26]
    sub, txn = "sub_" + uuid.uuid4().hex[:26], "txn_" + uuid.uuid4().hex[:26]
    ev = paddle_sub_created(sub, ctm, txn, "pri_" + plan,
                            {"email": unique("x") + "@example.com"})
    assert paddle_hook(ev).json()["outcome"] == "pending"
    assert sql1("SELECT reason FROM webhook_events WHERE event_id = %s",
                ev["event_id"]) == "customer not known yet"
    email = unique("real") + "@example.com"
    paddle_buyer_ctm = paddle_hook(paddle_customer("customer.created", ctm, email))
    assert paddle_buyer_ctm.json()["outcome"] == "applied"
    lic = sql1("SELECT license_id::text FROM subscriptions WHERE provider = 'paddle'"
               " AND provider_subscription_id = %s", sub)
    assert lic and sql1("SELECT c.email FROM licenses l JOIN customers c"
                        " ON c.id = l.customer_id WHERE l.id = %s", lic) == email
    assert key_of(lic)


def test_paddle_renewal_transaction_ends_grace():
    plan = priced_plan()
    ctm = paddle_buyer()
    sub, txn = "sub_" + uuid.uuid4().hex[:26], "txn_" + uuid.uuid4().hex[:26]
    assert paddle_hook(paddle_sub_created(sub, ctm, txn, "pri_" + plan)).json()[
        "outcome"] == "applied"
    lic = sql1("SELECT license_id::text FROM subscriptions WHERE provider = 'paddle'"
               " AND provider_subscription_id = %s", sub)
    r = paddle_hook(paddle_event("subscription.past_due", {"id": sub, "status": "past_due"}))
    assert r.json()["outcome"] == "applied"
    assert sql1("SELECT grace_until IS NOT NULL FROM licenses WHERE id = %s", lic) is True
    renewal = paddle_txn_completed("txn_" + uuid.uuid4().hex[:26], sub, ctm, "pri_" + plan)
    renewal["data"]["origin"] = "subscription_recurring"
    end = now() + 60 * 86400
    renewal["data"]["billing_period"]["ends_at"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    before = licenses_count()
    assert paddle_hook(renewal).json()["outcome"] == "applied"
    assert licenses_count() == before
    assert sql1("SELECT grace_until FROM licenses WHERE id = %s", lic) is None
    assert expires_epoch(lic) == end


def test_customer_updated_never_repoints_a_binding():
    a, b = unique("ca") + "@example.com", unique("cb") + "@example.com"
    ctm = paddle_buyer(a)
    r = paddle_hook(paddle_customer("customer.updated", ctm, b))
    assert r.json()["outcome"] == "applied"
    assert sql1("SELECT lower(email) FROM customers WHERE paddle_customer_id = %s", ctm) == a
    assert sql1("SELECT paddle_customer_id FROM customers WHERE lower(email) = %s", b) is None
    cus = "cus_" + uuid.uuid4().hex[:14]
    obj = {"id": cus, "object": "customer", "email": a, "name": "A"}
    assert stripe_hook(event("customer.created", obj)).json()["outcome"] == "applied"
    obj["email"] = b
    assert stripe_hook(event("customer.updated", obj)).json()["outcome"] == "applied"
    assert sql1("SELECT lower(email) FROM customers WHERE stripe_customer_id = %s", cus) == a


def test_paddle_pair_concurrently_issues_one_license():
    """Paddle sends subscription.created and transaction.completed for one
    purchase at the same moment; 20 deliveries at once (each a distinct
    event), 10 rounds: exactly one license per subscription, linked."""
    plan = priced_plan()
    ctm = paddle_buyer()

    def send(ev):
        body = json.dumps(ev).encode()
        import hashlib
        import hmac
        ts = now()
        mac = hmac.new(CFG["paddle_webhook_secrets"].split(",")[0].encode(),
                       b"%d:" % ts + body, hashlib.sha256).hexdigest()
        return requests.post(URL + "/api/paddle/webhook", data=body, timeout=60,
                             headers={"Content-Type": "application/json",
                                      "Paddle-Signature": "ts=%d;h1=%s" % (ts, mac)})

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        for _ in range(10):
            sub, txn = "sub_" + uuid.uuid4().hex[:26], "txn_" + uuid.uuid4().hex[:26]
            before = licenses_count()
            evs = []
            for i in range(10):
                evs.append(paddle_sub_created(sub, ctm, txn, "pri_" + plan))
                evs.append(paddle_txn_completed(txn, sub, ctm, "pri_" + plan))
            rs = list(ex.map(send, evs))
            assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
            assert all(r.json()["outcome"] == "applied" for r in rs)
            assert licenses_count() == before + 1
            lics = sql("SELECT id::text FROM licenses WHERE purchase = %s", "paddle:sub:" + sub)
            assert len(lics) == 1
            assert sql1("SELECT license_id::text FROM subscriptions WHERE provider = 'paddle'"
                        " AND provider_subscription_id = %s", sub) == lics[0][0]
            assert key_of(lics[0][0])
            assert sql1("SELECT count(*) FROM notifications WHERE license_id = %s"
                        " AND kind = 'license_issued'", lics[0][0]) == 1


def test_stripe_session_events_concurrently_issue_one_license():
    """checkout.session.completed and .async_payment_succeeded of one
    Payment Link session, 10 distinct deliveries of each at once."""
    plan = priced_plan()
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        for _ in range(3):
            ev, sid, sub = payment_link_purchase("price_" + plan)
            evs = []
            for i in range(10):
                for t in ("checkout.session.completed",
                          "checkout.session.async_payment_succeeded"):
                    e = json.loads(json.dumps(ev))
                    e["id"] = "evt_" + uuid.uuid4().hex[:24]
                    e["type"] = t
                    evs.append(e)
            before = licenses_count()
            rs = list(ex.map(stripe_hook_fresh, evs))
            assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
            assert licenses_count() == before + 1
            lic = license_of_sub(sub)
            assert sql1("SELECT purchase FROM licenses WHERE id = %s", lic) == "stripe:sub:" + sub
            b = api("/api/checkout/session/" + sid, method="GET").json()
            assert b["license_key"] == key_of(lic)


def stripe_hook_fresh(ev):
    body = json.dumps(ev).encode()
    return requests.post(URL + "/api/stripe/webhook", data=body, timeout=60,
                         headers={"Content-Type": "application/json",
                                  "Stripe-Signature": stripe_sig(body)})


# --- add-ons ----------------------------------------------------------------

def addon_plan(limits):
    return priced_plan(features="exports", limits=limits, interval="once", addon=True)


def test_addon_attack_on_someone_elses_license():
    """The attacker knows the victim's license id (the `sub` of every key
    and lease) but not its key."""
    big = priced_plan(features="sso", limits="installations=1000,api_calls_per_month=100000")
    _, vlic, vkey = bought(big)
    addon = addon_plan("installations=5,api_calls_per_month=10")
    # the old way, by id: refused before Stripe is called
    r = api("/api/checkout/session", {"plan": addon, "email": "evil@example.com",
                                      "license_id": vlic})
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    # a key of another license, a forged one, a lease
    _, _, own_key = bought(priced_plan())
    forged = vkey.rsplit(".", 1)[0] + "." + own_key.rsplit(".", 1)[1]
    for bad in (forged, "x.y.z", vkey[:-4] + "AAAA"):
        r = api("/api/checkout/session", {"plan": addon, "email": "evil@example.com",
                                          "license_key": bad})
        assert r.status_code == 403 and error_code(r) == "INVALID_KEY", r.text
    assert not [q for q in double("/__requests") if q["method"] == "POST"]
    # an add-on bought through a session licd did not make, naming the
    # victim in metadata: held, nothing changes, no key anywhere
    ev, sid, _ = payment_link_purchase("price_" + addon, mode="payment",
                                       metadata={"licd_license": vlic, "licd_plan": addon})
    ev["data"]["object"]["subscription"] = None
    r = stripe_hook(ev)
    assert r.json()["outcome"] == "pending"
    v = validate(vkey, "victim-1").json()
    assert v["license"]["limits"] == {"installations": 1000, "api_calls_per_month": 100000}
    assert "exports" not in v["license"]["features"]
    s = api("/api/checkout/session/" + sid, method="GET")
    assert s.status_code == 404 or s.json()["license_key"] is None


def test_addon_with_key_adds_limits_and_discloses_no_key():
    big = priced_plan(features="sso", limits="installations=1000,api_calls_per_month=500,"
                                             "max_projects=20")
    _, lic, key = bought(big)
    addon = addon_plan("installations=5,api_calls_per_month=10,max_projects=3,"
                       "unlisted_per_month=7")
    r = api("/api/checkout/session", {"plan": addon, "email": "own@example.com",
                                      "license_key": key})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    f = double("/__requests")[-1]["form"]
    assert f["mode"] == "payment"
    ev = event("checkout.session.completed", session(sid, mode="payment"))
    assert stripe_hook(ev).json()["outcome"] == "applied"
    v = validate(key, "own-1").json()
    assert v["license"]["limits"] == {"installations": 1005, "api_calls_per_month": 510,
                                      "max_projects": 20}
    assert set(v["license"]["features"]) == {"sso", "exports"}
    b = api("/api/checkout/session/" + sid, method="GET").json()
    assert b == {"id": sid, "status": "complete", "license_key": None}
    # a second purchase of the same add-on adds again; a replay does not
    assert stripe_hook(ev).json()["outcome"] == "duplicate"
    r = api("/api/checkout/session", {"plan": addon, "email": "own@example.com",
                                      "license_key": key})
    ev2 = event("checkout.session.completed", session(r.json()["id"], mode="payment"))
    assert stripe_hook(ev2).json()["outcome"] == "applied"
    assert validate(key, "own-1").json()["license"]["limits"]["installations"] == 1010


# --- checkout requests ---------------------------------------------------------

def test_idempotency_key_is_licds_own():
    plan = priced_plan()
    shared = "same-id-" + uuid.uuid4().hex[:6]
    for email in ("one@example.com", "two@example.com", "one@example.com"):
        r = api("/api/checkout/session", {"plan": plan, "email": email},
                headers={"X-Request-Id": shared})
        assert r.status_code == 201
    keys = [q["headers"]["idempotency-key"] for q in double("/__requests")]
    assert keys[0] != keys[1] and keys[0] == keys[2]
    assert all(shared not in k for k in keys)


def test_public_plans_only_priced():
    unpriced = unique("free")
    licctl("plan", "set", unpriced, "--name", unpriced, "--features", "sso")
    priced = priced_plan()
    codes = [p["code"] for p in api("/api/public/plans", method="GET").json()["plans"]]
    assert priced in codes and unpriced not in codes
    assert all(p["price_cents"] is not None
               for p in api("/api/public/plans", method="GET").json()["plans"])


REDIRECTS = [
    "http://evil.example\\@{h}/", "{o}\\@evil.example/", "{o}@evil.example/",
    "http://user:pw@{h}/", "{o}\\evil", "{o}/a b", "{o}/\tx", " {o}/", "{o}/\r\n",
    "javascript:alert(1)//{h}/", "data:text/html,x", "ftp://{h}/", "//{h}/",
    "http:{h}/", "http:/{h}/", "http:///{h}/", "{o}.evil.example/",
    "{o}%2eevil.example/", "https://evil.example/{h}", "{o}/\u00e9",
]


def test_redirect_urls_judged_as_a_browser_reads_them():
    plan = priced_plan()
    origin = CFG["checkout_allowed_origins"].split(",")[0].strip()
    host = origin.split("//", 1)[1]
    for form in REDIRECTS:
        url = form.format(o=origin, h=host)
        for field in ("success_url", "cancel_url"):
            r = api("/api/checkout/session", {"plan": plan, "email": "r@example.com",
                                              field: url})
            assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", (url, r.text)
            assert field in r.json()["error"]["message"]
    assert not double("/__requests")
    ok = api("/api/checkout/session", {"plan": plan, "email": "r@example.com",
                                       "success_url": origin.upper() + "/done?x=@y"})
    assert ok.status_code == 201, ok.text
