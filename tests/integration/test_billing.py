"""Billing over HTTP: plans, Stripe Checkout through the local Stripe double
(tests/stripe_double.py, started by tests/run.sh), signed Stripe and Paddle
webhooks issuing, renewing, suspending and expiring licenses, and the
webhook attacks."""
import concurrent.futures
import hashlib
import hmac
import json
import os
import time
import uuid

import pytest
import requests

from util import (CFG, URL, api, error_code, licctl, log_text, logged,
                  make_plan, sql, sql1, unique, validate)

DOUBLE = os.environ.get("LICD_STRIPE_API_BASE")
CA = os.environ.get("LICD_STRIPE_CA_FILE")
pytestmark = pytest.mark.skipif(not DOUBLE, reason="needs the Stripe double (tests/run.sh)")

STRIPE_SECRET = CFG.get("stripe_webhook_secrets", "").split(",")[0]
PADDLE_SECRET = CFG.get("paddle_webhook_secrets", "").split(",")[0]


# --- the double -----------------------------------------------------------

def double(path, body=None):
    if body is None:
        return requests.get(DOUBLE + path, verify=CA, timeout=10).json()
    return requests.post(DOUBLE + path, json=body, verify=CA, timeout=10).json()


@pytest.fixture(autouse=True)
def reset_double():
    double("/__reset", {})
    yield
    double("/__reset", {})


# --- signing --------------------------------------------------------------

def stripe_sig(body, secret=None, t=None, extra_v1=()):
    t = int(time.time()) if t is None else t
    mac = hmac.new((secret or STRIPE_SECRET).encode(), b"%d." % t + body,
                   hashlib.sha256).hexdigest()
    return ",".join(["t=%d" % t] + ["v1=" + v for v in extra_v1] + ["v1=" + mac])


def delivered(send, retry):
    """As Stripe and Paddle deliver: a 503 with Retry-After is tried again
    (twice at most) after the time it names; retry=False sends once."""
    r = send()
    for _ in range(2 if retry else 0):
        if r.status_code != 503 or "Retry-After" not in r.headers:
            break
        time.sleep(int(r.headers["Retry-After"]))
        r = send()
    return r


def stripe_hook(event, sig=None, body=None, headers=None, retry=True):
    body = body if body is not None else json.dumps(event).encode()
    h = {"Stripe-Signature": sig if sig is not None else stripe_sig(body)}
    if sig is False:
        h = {}
    h.update(headers or {})
    return delivered(lambda: api("/api/stripe/webhook", data=body, headers=h), retry)


def stripe_event(type_, obj, eid=None, created=None):
    return {"id": eid or "evt_" + uuid.uuid4().hex, "object": "event",
            "type": type_, "created": created or int(time.time()),
            "livemode": False, "api_version": "2024-06-20",
            "data": {"object": obj}}


def paddle_hook(event, secret=None, ts=None, retry=True):
    body = json.dumps(event).encode()
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new((secret or PADDLE_SECRET).encode(), b"%d:" % ts + body,
                   hashlib.sha256).hexdigest()
    return delivered(lambda: api("/api/paddle/webhook", data=body,
                                 headers={"Paddle-Signature": "ts=%d;h1=%s" % (ts, mac)}),
                     retry)


# --- helpers --------------------------------------------------------------

def priced_plan(features="sso,workflows", limits="installations=3",
                interval="month", addon=False):
    code = unique("paid")
    extra = ["--price-cents", "4900", "--currency", "usd", "--interval", interval,
             "--stripe-price", "price_" + code, "--paddle-price", "pri_" + code]
    if addon:
        extra.append("--addon")
    make_plan(features=features, limits=limits, code=code, extra=extra)
    return code


def completed(plan, email=None, sub=None, cus=None, session=None, period_end=None):
    """checkout.session.completed (older shape). A session licd did not
    create is registered in the double with the plan's price, as Stripe
    would list its line items."""
    sub = sub or "sub_" + uuid.uuid4().hex[:14]
    if session is None:
        session = "cs_test_" + uuid.uuid4().hex
        double("/__session", {"id": session, "prices": ["price_" + plan]})
    obj = {"id": session, "object": "checkout.session",
           "mode": "subscription", "payment_status": "paid", "status": "complete",
           "customer": cus or "cus_" + uuid.uuid4().hex[:14], "subscription": sub,
           "customer_details": {"email": email or unique("buyer") + "@example.com"},
           "client_reference_id": plan, "metadata": {"licd_plan": plan}}
    return stripe_event("checkout.session.completed", obj), sub


def license_of_sub(sub):
    return sql1("SELECT license_id::text FROM subscriptions WHERE provider_subscription_id = %s",
                sub)


def key_of(lic_id):
    return sql1("SELECT license_key FROM licenses WHERE id = %s", lic_id)


def buy(plan=None):
    plan = plan or priced_plan()
    ev, sub = completed(plan)
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    lic = license_of_sub(sub)
    assert lic
    return plan, sub, lic, key_of(lic)


# --- plans and checkout ---------------------------------------------------

def test_public_plans():
    code = priced_plan(features="sso,reports", limits="installations=5,api_calls_per_month=100")
    r = api("/api/public/plans", method="GET")
    assert r.status_code == 200
    plans = {p["code"]: p for p in r.json()["plans"]}
    assert plans[code] == {**plans[code], "name": code, "interval": "month",
                           "price_cents": 4900, "currency": "usd",
                           "features": ["sso", "reports"],
                           "limits": {"installations": 5, "api_calls_per_month": 100}}
    licctl("plan", "set", code, "--inactive")
    codes = [p["code"] for p in api("/api/public/plans", method="GET").json()["plans"]]
    assert code not in codes


def test_full_flow_checkout_to_valid_key():
    plan = priced_plan(features="sso,workflows", limits="installations=2,api_calls_per_month=500")
    r = api("/api/checkout/session", {"plan": plan, "email": "Buyer@Example.com"},
            headers={"X-Request-Id": "chk-" + uuid.uuid4().hex[:8]})
    assert r.status_code == 201, r.text
    sid, url = r.json()["id"], r.json()["url"]
    assert sid.startswith("cs_test_") and url.endswith(sid)

    reqs = double("/__requests")
    assert len(reqs) == 1
    q = reqs[0]
    assert q["path"] == "/v1/checkout/sessions"
    assert q["headers"]["authorization"] == "Bearer " + CFG["stripe_secret_key"]
    assert q["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert q["headers"]["idempotency-key"]
    f = q["form"]
    assert f["mode"] == "subscription"
    assert f["line_items[0][price]"] == "price_" + plan
    assert f["line_items[0][quantity]"] == "1"
    assert f["customer_email"] == "Buyer@Example.com"
    assert "{CHECKOUT_SESSION_ID}" in f["success_url"]
    assert f["success_url"].startswith(CFG["issuer"])
    assert f["cancel_url"] == CFG["checkout_cancel_url"]
    assert f["metadata[licd_plan]"] == plan and f["client_reference_id"] == plan
    assert f["subscription_data[metadata][licd_plan]"] == plan

    r = api("/api/checkout/session/" + sid, method="GET")
    assert r.status_code == 200
    assert r.json() == {"id": sid, "status": "open", "license_key": None}

    ev, sub = completed(plan, email="buyer@example.com", session=sid)
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "applied"

    r = api("/api/checkout/session/" + sid, method="GET")
    b = r.json()
    assert b["status"] == "complete" and b["license_key"]
    v = validate(b["license_key"], "bought-1").json()
    assert v["code"] == "VALID"
    assert v["license"]["features"] == ["sso", "workflows"]
    assert v["license"]["limits"] == {"installations": 2, "api_calls_per_month": 500}
    assert v["license"]["plan"] == plan
    # a license_issued notification is queued for the buyer
    assert sql1("SELECT count(*) FROM notifications WHERE license_id = %s"
                " AND kind = 'license_issued'", v["license"]["id"]) == 1


def test_checkout_bad_input():
    plan = priced_plan()
    cases = [({"email": "a@b.c"}, 400, "MISSING_FIELD"),
             ({"plan": plan}, 400, "MISSING_FIELD"),
             ({"plan": "no-such-plan", "email": "a@b.c"}, 400, "INVALID_FIELD"),
             ({"plan": plan, "email": "not-an-email"}, 400, "INVALID_FIELD"),
             ({"plan": plan, "email": "a@b.c",
               "success_url": "https://evil.example/steal"}, 400, "INVALID_FIELD"),
             ({"plan": plan, "email": "a@b.c",
               "cancel_url": CFG["issuer"] + ".evil.example/x"}, 400, "INVALID_FIELD"),
             ({"plan": 5, "email": "a@b.c"}, 400, "INVALID_FIELD")]
    for body, status, code in cases:
        r = api("/api/checkout/session", body)
        assert r.status_code == status and error_code(r) == code, (body, r.text)
    assert double("/__requests") == []
    r = api("/api/checkout/session/cs_nope", method="GET")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


@pytest.mark.parametrize("mode", ["error500", "error400", "drop", "garbage", "slow"])
def test_stripe_failure_is_502_and_nothing_written(mode):
    plan = priced_plan()
    double("/__mode", {"mode": mode})
    before = sql1("SELECT count(*) FROM checkout_sessions")
    rid = "stripe-fail." + unique(mode)
    r = api("/api/checkout/session", {"plan": plan, "email": "x@example.com"},
            headers={"X-Request-Id": rid})
    assert r.status_code == 502, r.text
    assert error_code(r) == "PAYMENT_PROVIDER_ERROR"
    assert "Stripe" not in r.text and "sk_test" not in r.text
    assert sql1("SELECT count(*) FROM checkout_sessions") == before
    assert logged(rid)      # the request's own line is in the file by now
    assert CFG["stripe_secret_key"] not in log_text()


# --- subscription lifecycle -----------------------------------------------

def invoice(type_, sub, period_end=None, eid=None):
    obj = {"id": "in_" + uuid.uuid4().hex[:14], "object": "invoice", "subscription": sub,
           "lines": {"data": [{"period": {"start": int(time.time()),
                                          "end": period_end or int(time.time()) + 30 * 86400}}]}}
    return stripe_event(type_, obj, eid)


def sub_event(type_, sub, **fields):
    obj = {"id": sub, "object": "subscription", "status": "active",
           "cancel_at_period_end": False}
    obj.update(fields)
    return stripe_event(type_, obj)


def expires_epoch(lic):
    return sql1("SELECT extract(epoch FROM expires_at)::bigint FROM licenses WHERE id = %s", lic)


def test_renewal_extends_the_license():
    _, sub, lic, key = buy()
    end = int(time.time()) + 62 * 86400
    r = stripe_hook(invoice("invoice.paid", sub, end))
    assert r.status_code == 200 and r.json()["outcome"] == "applied"
    assert expires_epoch(lic) == end
    v = validate(key, "r1").json()
    assert v["code"] == "VALID" and v["license"]["expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))


def test_payment_failure_grace_then_expired(clock):
    _, sub, lic, key = buy()
    # the paid period is over; the renewal payment fails
    sql("UPDATE licenses SET expires_at = licd_now() - interval '1 hour' WHERE id = %s", lic)
    r = stripe_hook(invoice("invoice.payment_failed", sub))
    assert r.status_code == 200 and r.json()["outcome"] == "applied"
    grace = sql1("SELECT extract(epoch FROM grace_until - now()) FROM licenses WHERE id = %s", lic)
    assert abs(grace - 7 * 86400) < 120
    v = validate(key, "g1").json()
    assert v["code"] == "VALID" and v["license"]["grace_until"] is not None
    lease_exp = json.loads(__import__("base64").urlsafe_b64decode(
        v["lease"].split(".")[1] + "==="))["exp"]
    assert lease_exp <= int(time.time()) + 7 * 86400 + 5  # never past grace end
    # a second failure (Stripe retries) does not extend the grace period
    stripe_hook(invoice("invoice.payment_failed", sub))
    assert abs(sql1("SELECT extract(epoch FROM grace_until - now()) FROM licenses"
                    " WHERE id = %s", lic) - grace) < 5
    clock(8 * 86400)
    v = validate(key, "g1").json()
    assert (v["valid"], v["code"]) == (False, "EXPIRED")
    # paying later brings it back
    r = stripe_hook(invoice("invoice.paid", sub, int(time.time()) + 40 * 86400))
    assert r.json()["outcome"] == "applied"
    v = validate(key, "g1").json()
    assert v["code"] == "VALID" and v["license"]["grace_until"] is None


def test_paid_invoice_reinstates_non_payment_suspension():
    _, sub, lic, key = buy()
    sql("UPDATE licenses SET status = 'suspended', status_reason = 'non-payment',"
        " suspended_at = now() WHERE id = %s", lic)
    assert validate(key).json()["code"] == "SUSPENDED"
    stripe_hook(invoice("invoice.paid", sub))
    assert validate(key).json()["code"] == "VALID"
    # a suspension for another reason is not lifted by a payment
    sql("UPDATE licenses SET status = 'suspended', status_reason = 'abuse' WHERE id = %s", lic)
    stripe_hook(invoice("invoice.paid", sub))
    assert validate(key).json()["code"] == "SUSPENDED"


def test_cancel_at_period_end_then_deleted(clock):
    _, sub, lic, key = buy()
    end = int(time.time()) + 10 * 86400
    r = stripe_hook(sub_event("customer.subscription.updated", sub,
                              cancel_at_period_end=True, current_period_end=end))
    assert r.json()["outcome"] == "applied"
    assert sql1("SELECT cancel_at_period_end FROM subscriptions WHERE provider_subscription_id = %s",
                sub) is True
    assert validate(key).json()["code"] == "VALID"
    r = stripe_hook(sub_event("customer.subscription.deleted", sub, status="canceled",
                              current_period_end=end))
    assert r.json()["outcome"] == "applied"
    assert expires_epoch(lic) == end
    assert validate(key).json()["code"] == "VALID"  # paid-up time is kept
    clock(10 * 86400 + 60)
    assert validate(key).json()["code"] == "EXPIRED"


def test_plan_upgrade_changes_features_on_next_validate():
    small = priced_plan(features="sso", limits="installations=1")
    big = priced_plan(features="sso,workflows,audit", limits="installations=10")
    _, sub, lic, key = buy(small)
    assert validate(key, "u1", feature="audit").json()["code"] == "FEATURE_NOT_LICENSED"
    r = stripe_hook(sub_event("customer.subscription.updated", sub,
                              items={"data": [{"price": {"id": "price_" + big}}]}))
    assert r.json()["outcome"] == "applied"
    v = validate(key, "u1", feature="audit").json()
    assert v["code"] == "VALID" and v["license"]["plan"] == big
    assert sorted(v["license"]["features"]) == ["audit", "sso", "workflows"]
    assert v["license"]["limits"]["installations"] == 10


def test_out_of_order_invoice_before_checkout():
    plan = priced_plan()
    ev, sub = completed(plan)
    end = int(time.time()) + 90 * 86400
    early = invoice("invoice.paid", sub, end)
    early["created"] = ev["created"] + 1
    r = stripe_hook(early)
    assert r.status_code == 200 and r.json()["outcome"] == "pending"
    r = stripe_hook(ev)
    assert r.json()["outcome"] == "applied"
    lic = license_of_sub(sub)
    assert expires_epoch(lic) == end  # the parked renewal was applied
    assert sql1("SELECT status FROM webhook_events WHERE event_id = %s", early["id"]) == "applied"


def test_addon_purchase_adds_features():
    _, _, lic, key = buy(priced_plan(features="sso"))
    addon = priced_plan(features="reports,exports", limits="", interval="once", addon=True)
    r = api("/api/checkout/session", {"plan": addon, "email": "a@example.com",
                                      "license_key": key})
    assert r.status_code == 201, r.text
    f = double("/__requests")[-1]["form"]
    assert f["mode"] == "payment" and f["metadata[licd_license]"] == lic
    obj = {"id": r.json()["id"], "object": "checkout.session", "mode": "payment",
           "payment_status": "paid", "metadata": {"licd_plan": addon, "licd_license": lic}}
    assert stripe_hook(stripe_event("checkout.session.completed", obj)).json()["outcome"] == "applied"
    v = validate(key, "a1", feature="exports").json()
    assert v["code"] == "VALID"
    assert set(v["license"]["features"]) == {"sso", "reports", "exports"}
    r = api("/api/checkout/session", {"plan": addon, "email": "a@example.com"})
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"


# --- webhook attacks ------------------------------------------------------

def licenses_count():
    return sql1("SELECT count(*) FROM licenses")


def test_signature_attacks():
    plan = priced_plan()
    ev, sub = completed(plan)
    body = json.dumps(ev).encode()
    now = int(time.time())
    # 300 s of tolerance. The server's clock only moves on while the list
    # is sent (seconds under valgrind): the past side can be exact, the
    # future side keeps a margin.
    bad = [stripe_sig(body, secret="whsec_wrong"),
           stripe_sig(body, t=now - 301),
           stripe_sig(body, t=now + 330),
           "garbage", "t=abc,v1=00", "v1=" + "0" * 64, "t=%d" % now, "",
           "t=%d,v0=%s" % (now, stripe_sig(body).split("v1=")[1]),
           stripe_sig(body).upper()]
    before = licenses_count()
    for sig in bad:
        r = stripe_hook(ev, sig=sig, body=body)
        assert r.status_code == 400, (sig, r.text)
        assert error_code(r) == "INVALID_SIGNATURE"
    r = stripe_hook(ev, sig=False, body=body)
    assert r.status_code == 400 and error_code(r) == "INVALID_SIGNATURE"
    altered = body.replace(plan.encode(), plan.encode() + b"x", 1)
    r = stripe_hook(ev, sig=stripe_sig(body), body=altered)
    assert r.status_code == 400 and error_code(r) == "INVALID_SIGNATURE"
    assert licenses_count() == before
    assert sql1("SELECT count(*) FROM webhook_events WHERE event_id = %s", ev["id"]) == 0
    # several v1 values (secret rotation): any one valid signature is enough
    r = stripe_hook(ev, sig=stripe_sig(body, extra_v1=["ab" * 32]), body=body)
    assert r.status_code == 200 and r.json()["outcome"] == "applied"


def test_replayed_event_takes_effect_once():
    ev, sub = completed(priced_plan())
    assert stripe_hook(ev).json()["outcome"] == "applied"
    before = licenses_count()
    for _ in range(3):
        r = stripe_hook(ev)  # freshly signed each time, as Stripe retries
        assert r.status_code == 200 and r.json()["outcome"] == "duplicate"
    assert licenses_count() == before


def test_same_event_50_times_concurrently():
    ev, sub = completed(priced_plan())
    body = json.dumps(ev).encode()
    sig = stripe_sig(body)

    def send(_):
        return requests.post(URL + "/api/stripe/webhook", data=body, timeout=60,
                             headers={"Stripe-Signature": sig,
                                      "Content-Type": "application/json"})

    before = licenses_count()
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        rs = list(ex.map(send, range(50)))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200]
    outcomes = [r.json()["outcome"] for r in rs]
    assert outcomes.count("applied") == 1 and outcomes.count("duplicate") == 49
    assert licenses_count() == before + 1
    assert sql1("SELECT count(*) FROM subscriptions WHERE provider_subscription_id = %s", sub) == 1


def test_unknown_event_type_recorded_without_effect():
    before = licenses_count()
    ev = stripe_event("charge.refund.updated", {"id": "re_1", "object": "refund"})
    r = stripe_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"
    assert sql1("SELECT status FROM webhook_events WHERE event_id = %s", ev["id"]) == "ignored"
    assert licenses_count() == before


def test_oversized_and_malformed_bodies():
    big = b'{"id":"evt_big","type":"x","pad":"' + b"x" * (600 * 1024) + b'"}'
    r = stripe_hook(None, sig=stripe_sig(big), body=big)
    assert r.status_code == 413 and error_code(r) == "PAYLOAD_TOO_LARGE"
    ok = b'{"id":"evt_ok_size","type":"ping","pad":"' + b"x" * (400 * 1024) + b'"}'
    r = stripe_hook(None, sig=stripe_sig(ok), body=ok)
    assert r.status_code == 200
    bad = b"{not json"
    r = stripe_hook(None, sig=stripe_sig(bad), body=bad)
    assert r.status_code == 400 and error_code(r) == "MALFORMED_JSON"
    noid = json.dumps({"type": "invoice.paid"}).encode()
    r = stripe_hook(None, sig=stripe_sig(noid), body=noid)
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    r = api("/api/stripe/webhook", method="GET")
    assert r.status_code == 405


# --- Paddle ---------------------------------------------------------------

def test_paddle_subscription_lifecycle():
    plan = priced_plan(features="sso,exports")
    sub = "sub_" + uuid.uuid4().hex[:20]
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    ctm = "ctm_" + uuid.uuid4().hex[:20]
    r = paddle_hook(paddle_customer("customer.created", ctm, unique("pad") + "@example.com"))
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    ev = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "subscription.created",
          "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "notification_id": "ntf_1",
          "data": {"id": sub, "status": "active", "customer_id": ctm,
                   "items": [{"price": {"id": "pri_" + plan}}],
                   "custom_data": {"licd_plan": plan},
                   "current_billing_period": {"starts_at": ends, "ends_at": ends}}}
    r = paddle_hook(ev)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert paddle_hook(ev).json()["outcome"] == "duplicate"
    lic = sql1("SELECT license_id::text FROM subscriptions WHERE provider = 'paddle'"
               " AND provider_subscription_id = %s", sub)
    key = key_of(lic)
    assert validate(key, "p1", feature="exports").json()["code"] == "VALID"
    # a second issuing event for the same subscription issues nothing new
    tx = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "transaction.completed",
          "data": {"id": "txn_" + uuid.uuid4().hex[:20], "subscription_id": sub,
                   "customer_id": ev["data"]["customer_id"],
                   "items": [{"price": {"id": "pri_" + plan}}],
                   "custom_data": {"licd_plan": plan}, "billing_period": {"ends_at": ends}}}
    before = licenses_count()
    assert paddle_hook(tx).json()["outcome"] == "applied"
    assert licenses_count() == before
    past_due = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "subscription.past_due",
                "data": {"id": sub, "status": "past_due"}}
    assert paddle_hook(past_due).json()["outcome"] == "applied"
    assert sql1("SELECT grace_until IS NOT NULL FROM licenses WHERE id = %s", lic) is True
    cancel_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    canceled = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "subscription.canceled",
                "data": {"id": sub, "status": "canceled",
                         "current_billing_period": {"ends_at": cancel_at}}}
    assert paddle_hook(canceled).json()["outcome"] == "applied"
    assert abs(expires_epoch(lic) - (time.time() + 3600)) < 120


def paddle_customer(type_, ctm, email):
    return {"event_id": "evt_" + uuid.uuid4().hex, "event_type": type_,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "notification_id": "ntf_" + uuid.uuid4().hex[:26],
            "data": {"id": ctm, "name": None, "email": email, "marketing_consent": False,
                     "status": "active", "custom_data": None, "locale": "en",
                     "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "import_meta": None}}


def test_paddle_signature_attacks():
    ev = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "subscription.created",
          "data": {"id": "sub_x"}}
    r = paddle_hook(ev, secret="pdl_wrong")
    assert r.status_code == 400 and error_code(r) == "INVALID_SIGNATURE"
    r = paddle_hook(ev, ts=int(time.time()) - 301)
    assert r.status_code == 400 and error_code(r) == "INVALID_SIGNATURE"
    r = api("/api/paddle/webhook", data=json.dumps(ev), headers={"Paddle-Signature": "ts=1"})
    assert r.status_code == 400 and error_code(r) == "INVALID_SIGNATURE"
    assert sql1("SELECT count(*) FROM webhook_events WHERE event_id = %s", ev["event_id"]) == 0
