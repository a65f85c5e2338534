"""Billing while PostgreSQL is down: the webhook and checkout answer 503
SERVICE_UNAVAILABLE as JSON (so Stripe and Paddle retry), nothing is
recorded, and the same event delivered again once the database is back
takes effect. The `database` fixture owns the outage: the database runs
and the stack is healthy again after the test, whatever failed."""
import json
import time
import uuid

from test_billing import paddle_hook, priced_plan, stripe_hook
from util import api, error_code, sql1, wait_healthy


def test_billing_database_down_then_back(database):
    plan = priced_plan()
    sub = "sub_" + uuid.uuid4().hex[:14]
    inv = {"id": "evt_" + uuid.uuid4().hex, "object": "event", "type": "invoice.paid",
           "created": int(time.time()), "api_version": "2026-10-28.endive",
           "data": {"object": {"id": "in_" + uuid.uuid4().hex[:14], "object": "invoice",
                               "parent": {"type": "subscription_details",
                                          "subscription_details": {"subscription": sub}},
                               "lines": {"data": [{"period": {"end": int(time.time()) + 86400}}]}}}}
    pev = {"event_id": "evt_" + uuid.uuid4().hex[:26], "event_type": "customer.created",
           "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "notification_id": "ntf_" + uuid.uuid4().hex[:26],
           "data": {"id": "ctm_" + uuid.uuid4().hex[:26],
                    "email": "down-%s@example.com" % uuid.uuid4().hex[:8]}}
    database("stop")
    for _ in range(2):  # the first call finds the connection dead
        r = stripe_hook(inv, retry=False)
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE", r.text
        r = paddle_hook(pev, retry=False)
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE", r.text
        r = api("/api/checkout/session", {"plan": plan, "email": "a@example.com"})
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE", r.text
        r = api("/api/public/plans", method="GET")
        assert r.status_code == 503 and error_code(r) == "SERVICE_UNAVAILABLE"
    database("start")
    wait_healthy()
    assert sql1("SELECT count(*) FROM webhook_events WHERE event_id IN (%s, %s)",
                inv["id"], pev["event_id"]) == 0
    # as the providers do: deliver again until answered (each worker's
    # first call after the outage may find its connection dead)
    r = redeliver(lambda: stripe_hook(inv))
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
    r = redeliver(lambda: paddle_hook(pev))
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert json.loads(sql1("SELECT action::text FROM webhook_events WHERE event_id = %s",
                           inv["id"]))["sub"] == sub


def redeliver(send, tries=20):
    """Delivers until the answer is not 503 (at most `tries` times)."""
    for _ in range(tries):
        r = send()
        if r.status_code != 503:
            return r
        assert error_code(r) == "SERVICE_UNAVAILABLE"
    raise AssertionError("still 503 after %d deliveries: %s" % (tries, r.text))
