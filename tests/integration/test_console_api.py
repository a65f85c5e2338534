"""The admin API behind the console (program `revoke`,
sql/functions/9*_console_*.sql): every list with its filters and keyset
pages, the overview, every write with its audit row, console sessions
with their CSRF header, and the errors. Over real HTTP through nginx; the
database is read only to check what a call did."""
import base64
import json
import os
import re
import subprocess
import threading
import uuid

import jwt
import pytest
import requests

from util import (BIN, CONFIG, URL, admin_token, api, db, error_code, eventually,
                  make_plan, sql, sql1, unique, validate)
from test_validate import verify_with_jwks

TOKEN_NAME = "local"      # deploy/local.sh's token


def A(path, body=None, method=None, params=None, headers=None):
    """An admin call with the bearer token."""
    h = {"Authorization": "Bearer " + admin_token()}
    h.update(headers or {})
    method = method or ("POST" if body is not None else "GET")
    return api(path, body, method=method, headers=h, params=params)


def ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert error_code(r) == code, r.text
    return r.json()["error"]["message"]


def new_customer(name="Some One"):
    email = unique("c") + "@example.com"
    c = ok(A("/api/admin/customers", {"email": email, "name": name}))
    return c["customer"]


def new_license(plan=None, **kw):
    plan = plan or make_plan()
    cust = kw.pop("customer", None) or new_customer()["email"]
    body = {"customer": cust, "plan": plan}
    if not any(k in kw for k in ("days", "expires_at", "perpetual")):
        body["days"] = 30
    body.update(kw)
    return ok(A("/api/admin/licenses", body), 201)


def ids(doc, key="licenses"):
    return [x["id"] for x in doc[key]]


# ---- authorization ---------------------------------------------------------

GETS = ["/api/admin/licenses", "/api/admin/customers", "/api/admin/installations",
        "/api/admin/plans", "/api/admin/audit", "/api/admin/notifications",
        "/api/admin/webhook-events", "/api/admin/overview", "/api/admin/keys",
        "/api/admin/licenses/%s"]
POSTS = ["/api/admin/licenses", "/api/admin/customers", "/api/admin/plans",
         "/api/admin/licenses/search",
         "/api/admin/licenses/%s/revoke", "/api/admin/licenses/%s/edit",
         "/api/admin/licenses/%s/lease", "/api/admin/licenses/%s/suspend",
         "/api/admin/licenses/%s/installations/i-1/deactivate",
         "/api/admin/notifications/1/retry", "/api/admin/session/end"]


def sign_in():
    s = requests.Session()
    r = s.post(URL + "/api/admin/session", json={"token": admin_token()})
    assert r.status_code == 201, r.text
    return s, r


def test_every_endpoint_refuses_without_a_token_or_session_and_csrf():
    lic = new_license()
    s, _ = sign_in()
    csrf = s.get(URL + "/api/admin/session").json()["csrf"]
    for path in GETS + POSTS:
        p = path % lic["license"]["id"] if "%s" in path else path
        m = "GET" if path in GETS else "POST"
        body = None if m == "GET" else "{}"
        hj = {"Content-Type": "application/json"} if m == "POST" else {}
        # nothing: 401
        r = requests.request(m, URL + p, data=body, headers=hj)
        err(r, 401, "UNAUTHORIZED")
        # a wrong bearer token: 401, even with a good session
        r = s.request(m, URL + p, data=body, headers=dict(
            hj, Authorization="Bearer " + admin_token()[:-1] + "x",
            **{"X-Licd-CSRF": csrf}))
        err(r, 401, "UNAUTHORIZED")
        # the session cookie without its CSRF header, or a wrong one: 403
        err(s.request(m, URL + p, data=body, headers=hj), 403, "FORBIDDEN")
        err(s.request(m, URL + p, data=body, headers=dict(
            hj, **{"X-Licd-CSRF": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")})),
            403, "FORBIDDEN")
        # a made-up cookie: 401
        r = requests.request(m, URL + p, data=body, headers=dict(
            hj, Cookie="licd_session=" + "A" * 43, **{"X-Licd-CSRF": csrf}))
        err(r, 401, "UNAUTHORIZED")
    # nothing above changed the license
    assert sql1("SELECT status FROM licenses WHERE id = %s",
                lic["license"]["id"]) == "active"


def test_session_sign_in_cookie_csrf_and_sign_out():
    err(api("/api/admin/session", {"token": "nope"}), 401, "UNAUTHORIZED")
    err(api("/api/admin/session", {}), 400, "MISSING_FIELD")
    err(api("/api/admin/session", {"token": 5}), 400, "INVALID_FIELD")
    assert ok(api("/api/admin/session", method="GET")) == {"signed_in": False}
    s, r = sign_in()
    body = r.json()
    assert body["actor"] == TOKEN_NAME and len(body["csrf"]) >= 32
    assert admin_token() not in r.text
    cookie = r.headers["Set-Cookie"]
    assert re.match(r"licd_session=[A-Za-z0-9_-]{43}; ", cookie), cookie
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/api/admin/"):
        assert attr in cookie
    assert "Secure" not in cookie          # plain HTTP on loopback
    value = cookie.split(";")[0].split("=", 1)[1]
    # only the cookie's hash is stored
    assert sql1("SELECT count(*) FROM admin_sessions WHERE id_hash = "
                "sha256(convert_to(%s, 'UTF8'))", value) == 1
    assert sql1("SELECT count(*) FROM admin_sessions WHERE encode(id_hash, "
                "'escape') LIKE %s", "%" + value + "%") == 0
    # a reload reads the CSRF token back with the cookie alone
    who = ok(s.get(URL + "/api/admin/session"))
    assert who["csrf"] == body["csrf"] and who["actor"] == TOKEN_NAME
    assert who["signed_in"] is True
    h = {"X-Licd-CSRF": body["csrf"]}
    ok(s.get(URL + "/api/admin/plans", headers=h))
    # writes through a session are audited with the token's name
    c = unique("s") + "@example.com"
    r = s.post(URL + "/api/admin/customers", json={"email": c}, headers=h)
    cid = ok(r)["customer"]["id"]
    assert sql("SELECT actor, action FROM audit_log WHERE target_id = %s",
               cid) == [(TOKEN_NAME, "customer.create")]
    # signing out ends the row and clears the cookie
    r = s.post(URL + "/api/admin/session/end", headers=h)
    assert ok(r) == {"signed_out": True}
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    r = requests.get(URL + "/api/admin/plans",
                     headers=dict(h, Cookie="licd_session=" + value))
    err(r, 401, "UNAUTHORIZED")
    assert sql1("SELECT ended_at IS NOT NULL FROM admin_sessions WHERE "
                "id_hash = sha256(convert_to(%s, 'UTF8'))", value)
    acts = [a for (a,) in sql("SELECT action FROM audit_log WHERE "
                              "action LIKE 'session.%%' ORDER BY id DESC LIMIT 2")]
    assert acts == ["session.end", "session.open"]


def test_an_expired_session_is_refused():
    s, r = sign_in()
    value = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    sql("UPDATE admin_sessions SET expires_at = now() - interval '1 second' "
        "WHERE id_hash = sha256(convert_to(%s, 'UTF8'))", value)
    err(s.get(URL + "/api/admin/plans",
              headers={"X-Licd-CSRF": r.json()["csrf"]}), 401, "UNAUTHORIZED")
    assert ok(s.get(URL + "/api/admin/session")) == {"signed_in": False}


# ---- licenses: search, filters, pages ---------------------------------------

def test_license_search_by_every_kind_of_value():
    plan = make_plan()
    name = "Zebulon " + uuid.uuid4().hex[:8]
    cust = new_customer(name)
    mine = new_license(plan, customer=cust["email"],
                       domain_restrictions=["shop-%s.example" % cust["id"][:8]])
    other = new_license(plan)
    lid, key = mine["license"]["id"], mine["license_key"]
    iid = unique("inst")
    assert validate(key, iid, domain="shop-%s.example" % cust["id"][:8]).json()["code"] == "VALID"
    for q in (lid, lid.upper(), cust["email"], cust["email"][:12].upper(),
              name, name.lower()[:12], "shop-%s.example" % cust["id"][:8],
              "SHOP-%s.EXAMPLE" % cust["id"][:8], iid, cust["id"]):
        for got in (ok(A("/api/admin/licenses", params={"q": q})),
                    ok(A("/api/admin/licenses/search", {"q": q}))):
            assert lid in ids(got), q
            assert other["license"]["id"] not in ids(got), q
    # a key is searched for by POST only (pasted with blanks around it too)
    for q in (key, " %s\n" % key):
        assert ids(ok(A("/api/admin/licenses/search", {"q": q}))) == [lid], q
    # a key this server did not sign finds nothing; so does an unknown value
    h, p, _ = key.split(".")
    forged = h + "." + p + "." + "A" * 86
    assert ok(A("/api/admin/licenses/search", {"q": forged})) == \
        {"licenses": [], "next_cursor": None}
    assert ids(ok(A("/api/admin/licenses", params={"q": unique("none")}))) == []
    # LIKE wildcards are text, not patterns
    assert ids(ok(A("/api/admin/licenses", params={"q": "%", "plan": plan}))) == []
    assert ids(ok(A("/api/admin/licenses", params={"q": "_", "plan": plan}))) == []
    row = ok(A("/api/admin/licenses", params={"q": lid}))["licenses"][0]
    assert row["email"] == cust["email"] and row["customer_name"] == name
    assert row["plan"] == plan and row["status"] == "active"
    assert row["active_installations"] == 1 and "key" not in row
    assert "license_key" not in json.dumps(row)


def test_a_license_key_in_a_get_search_is_refused():
    cust = new_customer()
    lic = new_license(make_plan(), customer=cust["email"])
    key = lic["license_key"]
    h, p, _ = key.split(".")
    forged = h + "." + p + "." + "A" * 86
    for path in ("/api/admin/licenses", "/api/admin/customers"):
        for q in (key, " %s " % key, forged):
            msg = err(A(path, params={"q": q}), 400, "INVALID_FIELD")
            assert "POST /api/admin/licenses/search" in msg, (path, msg)
            assert key not in msg and forged not in msg
    # what only resembles a key is a plain search
    for q in ("a" * 40 + "." + "b", "x" * 20 + ".y.z" + "w" * 20 + ".q",
              "long.company-name." + "x" * 30 + "@example.com"):
        assert ids(ok(A("/api/admin/licenses", params={"q": q}))) == [], q
        assert ok(A("/api/admin/customers", params={"q": q}))["customers"] == [], q
    # the customer is found by what names it
    got = ok(A("/api/admin/customers", params={"q": cust["id"]}))["customers"]
    assert [c["id"] for c in got] == [cust["id"]]


def test_license_search_by_post_keeps_the_key_out_of_urls():
    plan = make_plan()
    lic = new_license(plan)
    lid, key = lic["license"]["id"], lic["license_key"]
    other = new_license(plan)["license"]["id"]
    got = ok(A("/api/admin/licenses/search", {"q": key}))
    assert ids(got) == [lid]
    got = ok(A("/api/admin/licenses/search", {"plan": plan, "limit": 1}))
    assert ids(got) == [other] and got["next_cursor"]
    got = ok(A("/api/admin/licenses/search", {"plan": plan, "limit": 1,
                                               "cursor": got["next_cursor"]}))
    assert ids(got) == [lid] and got["next_cursor"] is None
    assert set(ids(ok(A("/api/admin/licenses/search", {"plan": plan, "in_grace": False,
                                                       "expiring_days": 31})))) == {lid, other}
    assert len(ids(ok(A("/api/admin/licenses/search", {})))) >= 2
    err(A("/api/admin/licenses/search", {"q": 5}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/search", {"limit": 1000}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/search", {"in_grace": "perhaps"}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/search", method="GET"), 405, "METHOD_NOT_ALLOWED")
    r = api("/api/admin/licenses/search", {"q": key})
    err(r, 401, "UNAUTHORIZED")


def test_license_filters():
    plan = make_plan()
    a = new_license(plan, days=10)["license"]["id"]
    b = new_license(plan, days=100)["license"]["id"]
    c = new_license(plan, perpetual=True)["license"]["id"]
    d = new_license(plan, days=5)["license"]["id"]
    ok(A("/api/admin/licenses/%s/suspend" % d, {}))
    got = lambda **p: set(ids(ok(A("/api/admin/licenses", params=dict(plan=plan, **p)))))
    assert got() == {a, b, c, d}
    assert got(status="suspended") == {d}
    assert got(status="active") == {a, b, c}
    assert got(expiring_days=30) == {a}
    assert got(expiring_days="200") == {a, b}
    # grace: payment failed, still valid until grace_until
    sql("UPDATE licenses SET grace_until = licd_now() + interval '3 days' WHERE id = %s", b)
    assert got(in_grace="true") == {b}
    assert got(in_grace="false") == {a, c, d}
    # past due: the license's subscription is past_due or unpaid
    cust = sql1("SELECT customer_id FROM licenses WHERE id = %s", c)
    sql("INSERT INTO subscriptions (provider, provider_subscription_id, customer_id,"
        " license_id, plan_code, status) VALUES ('stripe', %s, %s, %s, %s, 'past_due')",
        unique("sub"), cust, c, plan)
    assert got(past_due="true") == {c}
    assert got(past_due="false") == {a, b, d}
    assert got(status="active", past_due="1", expiring_days=30) == set()
    assert ids(ok(A("/api/admin/licenses", params={"plan": unique("nope")}))) == []


def test_license_pages_are_keyset_and_complete():
    plan = make_plan()
    made = [new_license(plan)["license"]["id"] for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        p = {"plan": plan, "limit": 3}
        if cursor:
            p["cursor"] = cursor
        doc = ok(A("/api/admin/licenses", params=p))
        seen += ids(doc)
        pages += 1
        cursor = doc["next_cursor"]
        if not cursor:
            break
        # a license issued meanwhile does not shift the next page
        if pages == 1:
            late = new_license(plan)["license"]["id"]
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 7
    assert late not in seen
    created = [sql1("SELECT created_at FROM licenses WHERE id = %s", i) for i in seen]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
    ({"status": "gone"}, "status"), ({"expiring_days": "-1"}, "expiring_days"),
    ({"in_grace": "maybe"}, "in_grace"), ({"past_due": "2"}, "past_due"),
    ({"cursor": "!!"}, "cursor"), ({"cursor": "bm90IGpzb24"}, "cursor"),
    ({"cursor": "WyJ4IiwieSJd"}, "cursor"), ({"q": "x" * 300}, "q")])
def test_license_list_bad_parameters(params, field):
    msg = err(A("/api/admin/licenses", params=params), 400, "INVALID_FIELD")
    assert field in msg


@pytest.mark.parametrize("path", ["/api/admin/licenses", "/api/admin/customers",
                                  "/api/admin/installations", "/api/admin/audit",
                                  "/api/admin/notifications", "/api/admin/webhook-events"])
def test_every_list_refuses_a_cursor_it_did_not_give(path):
    def enc(v):
        return base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")
    for keys in (["x", "y", "z"], ["2026-11-01T00:00:00+00:00"], [None, None, None],
                 {"id": 1}, "2026-11-01"):
        msg = err(A(path, params={"cursor": enc(keys)}), 400, "INVALID_FIELD")
        assert "cursor" in msg, (path, keys, msg)


def test_bad_query_string_bytes():
    r = requests.get(URL + "/api/admin/licenses?q=%ff%fe",
                     headers={"Authorization": "Bearer " + admin_token()})
    err(r, 400, "INVALID_FIELD")
    r = requests.get(URL + "/api/admin/licenses?q=a%00b",
                     headers={"Authorization": "Bearer " + admin_token()})
    err(r, 400, "INVALID_FIELD")


# ---- one license -------------------------------------------------------------

def test_license_detail_has_timeline_and_twelve_months_of_usage():
    plan = make_plan(features="sso,workflows", limits="installations=3,workflows_per_month=50")
    lic = new_license(plan)
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "d-1", version="2.0", metadata={"os": "linux"}).json()["valid"]
    r = api("/api/usage", {"license_key": key, "feature": "workflows", "quantity": 7})
    assert r.status_code == 200
    ok(A("/api/admin/licenses/%s/suspend" % lid, {"reason": "checking <b>"}))
    d = ok(A("/api/admin/licenses/%s" % lid))
    assert d["license"]["id"] == lid and "key" not in d["license"]
    assert key not in json.dumps(d)
    assert d["customer"]["email"] == d["license"]["email"]
    assert [i["id"] for i in d["installations"]] == ["d-1"]
    inst = d["installations"][0]
    assert inst["version"] == "2.0" and inst["status"] == "active"
    acts = [a["action"] for a in d["audit"]]
    assert acts[:2] == ["license.suspend", "license.issue"]
    assert d["audit"][0]["reason"] == "checking <b>"
    assert d["audit"][0]["actor"] == TOKEN_NAME
    months = d["usage_by_month"]
    assert len(months) == 12
    assert months[-1]["period"] == d["usage"]["period"]
    assert months[-1]["features"] == {"workflows": 7}
    assert all(m["features"] == {} for m in months[:-1])
    assert [m["period"] for m in months] == sorted(m["period"] for m in months)
    err(A("/api/admin/licenses/%s" % uuid.uuid4()), 404, "NOT_FOUND")
    err(A("/api/admin/licenses/not-a-uuid"), 404, "NOT_FOUND")


# ---- writes --------------------------------------------------------------------

def test_issue_a_license_and_its_key_is_shown_once():
    plan = make_plan(features="sso", limits="installations=2")
    cust = new_customer()
    r = A("/api/admin/licenses", {"customer": cust["id"], "plan": plan,
                                  "expires_at": "2031-01-31",
                                  "domain_restrictions": ["Example.COM", "*.example.com"],
                                  "limits": {"installations": 5}})
    doc = ok(r, 201)
    key, lid = doc["license_key"], doc["license"]["id"]
    assert doc["license"]["expires_at"] == "2031-01-31T00:00:00Z"
    assert doc["license"]["domain_restrictions"] == ["*.example.com", "example.com"]
    assert doc["license"]["limits"] == {"installations": 5}
    claims = verify_with_jwks(key, "JWT")
    assert claims["sub"] == lid and claims["lic"] == plan
    assert validate(key, "k-1", domain="a.example.com").json()["code"] == "VALID"
    # never again: not in the detail, the list or the audit
    assert key not in A("/api/admin/licenses/%s" % lid).text
    assert key not in A("/api/admin/licenses", params={"q": lid}).text
    assert key not in A("/api/admin/audit", params={"target": lid}).text
    assert sql("SELECT actor, action FROM audit_log WHERE target_id = %s", lid) == \
        [(TOKEN_NAME, "license.issue")]


@pytest.mark.parametrize("body,status,code", [
    ({"plan": "x", "days": 3}, 400, "MISSING_FIELD"),
    ({"customer": "nobody@example.com", "days": 3}, 400, "MISSING_FIELD"),
    ({"customer": "nobody-at-all@example.com", "plan": "P", "days": 3}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "no-such-plan", "days": 3}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P"}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 3, "perpetual": True}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 0}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": "many"}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "expires_at": "2001-01-01"}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "expires_at": "tomorrow"}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 3, "domain_restrictions": "a.com"}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 3, "domain_restrictions": ["a b"]}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 3, "limits": {"installations": -1}}, 400, "INVALID_FIELD"),
    ({"customer": "C", "plan": "P", "days": 3, "features": ["Bad Name"]}, 400, "INVALID_FIELD"),
    ({"customer": ["C"], "plan": "P", "days": 3}, 400, "INVALID_FIELD"),
])
def test_issue_errors(body, status, code):
    plan = make_plan()
    cust = new_customer()["email"]
    body = {k: (cust if v == "C" else plan if v == "P" else v) for k, v in body.items()}
    before = sql1("SELECT count(*) FROM licenses")
    err(A("/api/admin/licenses", body), status, code)
    assert sql1("SELECT count(*) FROM licenses") == before


def test_issue_needs_a_json_body():
    r = api("/api/admin/licenses", data="customer=x", ctype="application/x-www-form-urlencoded",
            headers={"Authorization": "Bearer " + admin_token()})
    err(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = api("/api/admin/licenses", data="{", headers={"Authorization": "Bearer " + admin_token()})
    err(r, 400, "MALFORMED_JSON")


def test_edit_end_domains_limits_and_validate_follows():
    plan = make_plan(features="sso", limits="installations=1")
    lic = new_license(plan, domain_restrictions=["old.example"])
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "e-1", domain="old.example").json()["code"] == "VALID"
    # domains: the new list applies on the very next call
    d = ok(A("/api/admin/licenses/%s/edit" % lid,
             {"domain_restrictions": ["new.example"], "reason": "moved"}))
    assert d["license"]["domain_restrictions"] == ["new.example"]
    assert "key" not in d["license"]
    assert validate(key, "e-1", domain="old.example").json()["code"] == "DOMAIN_NOT_ALLOWED"
    assert validate(key, "e-1", domain="new.example").json()["code"] == "VALID"
    # limits: one more seat
    assert validate(key, "e-2", domain="new.example").json()["code"] == "TOO_MANY_INSTALLATIONS"
    ok(A("/api/admin/licenses/%s/edit" % lid, {"limits": {"installations": 2}}))
    assert validate(key, "e-2", domain="new.example").json()["code"] == "VALID"
    # shorten into the past: expired at once; extend: valid again
    ok(A("/api/admin/licenses/%s/edit" % lid, {"expires_at": "2020-01-01T00:00:00Z"}))
    assert validate(key, "e-1", domain="new.example").json()["code"] == "EXPIRED"
    sql("UPDATE licenses SET status = 'expired' WHERE id = %s", lid)   # as the lifecycle job would
    d = ok(A("/api/admin/licenses/%s/edit" % lid, {"expires_at": "2035-06-01T12:00:00Z"}))
    assert d["license"]["expires_at"] == "2035-06-01T12:00:00Z"
    assert d["license"]["status"] == "active"
    assert validate(key, "e-1", domain="new.example").json()["code"] == "VALID"
    # perpetual
    d = ok(A("/api/admin/licenses/%s/edit" % lid, {"expires_at": None}))
    assert d["license"]["expires_at"] is None
    rows = sql("SELECT actor, action, reason, details FROM audit_log WHERE target_id = %s"
               " AND action = 'license.edit' ORDER BY id", lid)
    assert len(rows) == 5 and all(r[0] == TOKEN_NAME for r in rows)
    assert rows[0][2] == "moved"
    assert rows[0][3]["domain_restrictions"] == [["old.example"], ["new.example"]]
    # errors
    err(A("/api/admin/licenses/%s/edit" % lid, {}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/%s/edit" % lid, {"limits": [1]}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/%s/edit" % lid, {"expires_at": "soon"}), 400, "INVALID_FIELD")
    err(A("/api/admin/licenses/%s/edit" % uuid.uuid4(), {"limits": {}}), 404, "NOT_FOUND")
    ok(A("/api/admin/licenses/%s/revoke" % lid, {}))
    err(A("/api/admin/licenses/%s/edit" % lid, {"limits": {}}), 409, "CONFLICT")


def test_status_actions_through_the_console_routes():
    lic = new_license()
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "s-1").json()["code"] == "VALID"
    assert ok(A("/api/admin/licenses/%s/suspend" % lid, {"reason": "r"}))["status"] == "suspended"
    assert validate(key, "s-1").json()["code"] == "SUSPENDED"
    assert ok(A("/api/admin/licenses/%s/reinstate" % lid, {}))["status"] == "active"
    assert validate(key, "s-1").json()["code"] == "VALID"
    assert ok(A("/api/admin/licenses/%s/reset-activations" % lid, {}))["deactivated"] == 1
    r = ok(A("/api/admin/licenses/%s/revoke" % lid, {"reason": "fraud"}))
    assert r["status"] == "revoked" and r["changed"] is True
    assert ok(A("/api/admin/licenses/%s/revoke" % lid, {}))["changed"] is False
    assert validate(key, "s-1").json()["code"] == "REVOKED"
    err(A("/api/admin/licenses/%s/reinstate" % lid, {}), 409, "CONFLICT")
    err(A("/api/admin/licenses/%s/revoke" % uuid.uuid4(), {}), 404, "NOT_FOUND")
    err(A("/api/admin/licenses/%s/explode" % lid, {}), 404, "NOT_FOUND")
    r = A("/api/admin/licenses/%s/revoke" % lid, method="GET")
    err(r, 405, "METHOD_NOT_ALLOWED")
    acts = [a for (a,) in sql("SELECT action FROM audit_log WHERE target_id = %s ORDER BY id", lid)]
    assert acts == ["license.issue", "license.suspend", "license.reinstate",
                    "license.reset_activations", "license.revoke", "license.revoke"]


def test_deactivate_one_installation():
    lic = new_license(make_plan(limits="installations=1"))
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "one").json()["code"] == "VALID"
    assert validate(key, "two").json()["code"] == "TOO_MANY_INSTALLATIONS"
    r = ok(A("/api/admin/licenses/%s/installations/one/deactivate" % lid, {"reason": "moved"}))
    assert r == {"license_id": lid, "installation_id": "one", "deactivated": True}
    assert validate(key, "two").json()["code"] == "VALID"
    r = ok(A("/api/admin/licenses/%s/installations/one/deactivate" % lid, {}))
    assert r["deactivated"] is False
    err(A("/api/admin/licenses/%s/installations/nope/deactivate" % lid, {}), 404, "NOT_FOUND")
    err(A("/api/admin/licenses/%s/installations/a%%20b/deactivate" % lid, {}), 404, "NOT_FOUND")
    err(A("/api/admin/licenses/%s/installations/one/explode" % lid, {}), 404, "NOT_FOUND")
    row = sql("SELECT actor, reason, details FROM audit_log WHERE target_id = %s AND "
              "action = 'installation.deactivate' ORDER BY id LIMIT 1", lid)[0]
    assert row == (TOKEN_NAME, "moved", {"installation_id": "one", "changed": True})


def test_offline_lease_download():
    lic = new_license(make_plan(limits="installations=1"))
    lid = lic["license"]["id"]
    r = ok(A("/api/admin/licenses/%s/lease" % lid,
             {"installation_id": "air-1", "days": 20, "nonce": "n-1",
              "metadata": {"host": "vault"}}))
    claims = verify_with_jwks(r["lease"], typ="lease+jwt")
    assert claims["sub"] == lid and claims["iid"] == "air-1" and claims["nonce"] == "n-1"
    assert abs(claims["exp"] - claims["iat"] - 20 * 86400) <= 5
    assert r["lease_expires_at"].endswith("Z")
    assert sql1("SELECT offline_until IS NOT NULL FROM installations WHERE license_id = %s"
                " AND installation_id = 'air-1'", lid)
    # the seat is taken
    err(A("/api/admin/licenses/%s/lease" % lid, {"installation_id": "air-2", "days": 1}),
        409, "CONFLICT")
    err(A("/api/admin/licenses/%s/lease" % lid, {"installation_id": "air 3", "days": 1}),
        400, "INVALID_FIELD")
    err(A("/api/admin/licenses/%s/lease" % lid, {"installation_id": "air-1", "days": 0}),
        400, "INVALID_FIELD")
    err(A("/api/admin/licenses/%s/lease" % lid, {"installation_id": "air-1"}),
        400, "MISSING_FIELD")
    err(A("/api/admin/licenses/%s/lease" % uuid.uuid4(), {"installation_id": "x", "days": 1}),
        404, "NOT_FOUND")
    ok(A("/api/admin/licenses/%s/suspend" % lid, {}))
    err(A("/api/admin/licenses/%s/lease" % lid, {"installation_id": "air-1", "days": 1}),
        409, "CONFLICT")
    assert sql("SELECT actor FROM audit_log WHERE target_id = %s AND action = "
               "'lease.offline'", lid) == [(TOKEN_NAME,)]


# ---- customers, installations, plans ---------------------------------------

def test_customers_create_search_and_pages():
    tag = uuid.uuid4().hex[:8]
    made = []
    for i in range(5):
        c = ok(A("/api/admin/customers", {"email": "pg%s-%d@example.com" % (tag, i),
                                          "name": "Page %s %d" % (tag, i)}))
        assert c["created"] is True
        made.append(c["customer"]["id"])
    again = ok(A("/api/admin/customers", {"email": "PG%s-0@EXAMPLE.com" % tag}))
    assert again["created"] is False and again["customer"]["id"] == made[0]
    assert again["customer"]["name"] == "Page %s 0" % tag
    seen, cur = [], None
    while True:
        p = {"q": "pg" + tag, "limit": 2}
        if cur:
            p["cursor"] = cur
        doc = ok(A("/api/admin/customers", params=p))
        seen += ids(doc, "customers")
        cur = doc["next_cursor"]
        if not cur:
            break
    assert seen == list(reversed(made))
    assert ids(ok(A("/api/admin/customers", params={"q": "page " + tag})), "customers") == \
        list(reversed(made))
    assert ids(ok(A("/api/admin/customers", params={"q": made[2]})), "customers") == [made[2]]
    err(A("/api/admin/customers", {"name": "x"}), 400, "MISSING_FIELD")
    err(A("/api/admin/customers", {"email": "no-at-sign"}), 400, "INVALID_FIELD")
    err(A("/api/admin/customers", {"email": "a@b.c", "name": "x\u0007"}), 400, "INVALID_FIELD")
    err(A("/api/admin/customers", {"email": "a@b.c", "name": "x" * 201}), 400, "INVALID_FIELD")
    err(A("/api/admin/customers", params={"limit": "500"}), 400, "INVALID_FIELD")


def test_installations_by_version_and_last_seen():
    """Most recently seen first to within an hour: by seen_hour, then the
    ids, descending; each row seen less than an hour before the one listed
    before it, or later; pages in the same order."""
    lic = new_license(make_plan(limits="installations=9"))
    key, lid = lic["license_key"], lic["license"]["id"]
    ver = "v" + uuid.uuid4().hex[:8]
    ago = [0, 20, 45, 70, 95, 130, 14400]          # minutes; the last 10 days
    for i in range(len(ago)):
        assert validate(key, "iv-%d" % i, version=ver).json()["valid"]
    for i, m in enumerate(ago):
        sql("UPDATE installations SET last_seen = now() - make_interval(mins => %s)"
            " WHERE license_id = %s AND installation_id = %s", m, lid, "iv-%d" % i)
    got = lambda **p: [(i["id"], i["license_id"]) for i in
                       ok(A("/api/admin/installations", params=dict(version=ver, **p)))["installations"]]
    listed = got()
    assert listed == [(r[0], lid) for r in sql(
        "SELECT installation_id FROM installations WHERE version = %s"
        " ORDER BY seen_hour DESC, license_id DESC, installation_id DESC", ver)]
    mins = [ago[int(i[3:])] for i, _ in listed]
    assert all(b > a - 60 for a, b in zip(mins, mins[1:])), mins
    assert listed[-1] == ("iv-6", lid)
    old = [("iv-6", lid)]
    assert got(seen_within_days=7) == [x for x in listed if x not in old]
    assert got(not_seen_days=7) == old
    page1 = ok(A("/api/admin/installations", params={"version": ver, "limit": 4}))
    page2 = ok(A("/api/admin/installations", params={"version": ver, "limit": 4,
                                                     "cursor": page1["next_cursor"]}))
    assert [(i["id"], i["license_id"]) for i in page1["installations"] +
            page2["installations"]] == listed
    assert page2["next_cursor"] is None
    assert "_c" not in page1["installations"][0]
    err(A("/api/admin/installations", params={"status": "dead"}), 400, "INVALID_FIELD")
    err(A("/api/admin/installations", params={"seen_within_days": "x"}), 400, "INVALID_FIELD")


def test_installation_filters_are_exact_to_the_second():
    """seen_within_days and not_seen_days compare last_seen itself: the
    hour the list is ordered by only narrows the index range, so a minute
    either side of the cut falls on its own side."""
    lic = new_license(make_plan(limits="installations=5"))
    key, lid = lic["license_key"], lic["license"]["id"]
    ver = "v" + uuid.uuid4().hex[:8]
    for iid in ("in", "out"):
        assert validate(key, iid, version=ver).json()["valid"]
    sql("UPDATE installations SET last_seen = now() - interval '7 days'"
        " + CASE installation_id WHEN 'in' THEN interval '1 minute'"
        " ELSE interval '-1 minute' END WHERE license_id = %s", lid)
    got = lambda **p: [i["id"] for i in ok(A("/api/admin/installations",
                                             params=dict(version=ver, **p)))["installations"]]
    assert got(seen_within_days=7) == ["in"]
    assert got(not_seen_days=7) == ["out"]


def test_plans_create_and_edit():
    code = unique("p").lower()
    r = ok(A("/api/admin/plans", {"code": code, "name": "Gold", "features": ["sso"],
                                  "limits": {"installations": 4}, "price_cents": 1900,
                                  "currency": "EUR", "interval": "month"}))
    assert r["created"] is True and r["plan"]["currency"] == "eur"
    r = ok(A("/api/admin/plans", {"code": code, "limits": {"installations": 9}}))
    assert r["created"] is False
    assert r["plan"]["limits"] == {"installations": 9} and r["plan"]["name"] == "Gold"
    assert r["plan"]["features"] == ["sso"] and r["plan"]["price_cents"] == 1900
    plans = {p["code"]: p for p in ok(A("/api/admin/plans"))["plans"]}
    assert plans[code]["limits"] == {"installations": 9}
    # a license issued now copies the edited plan
    lic = new_license(code)
    assert lic["license"]["limits"] == {"installations": 9}
    assert sql("SELECT actor, action FROM audit_log WHERE target_id = %s", code) == \
        [(TOKEN_NAME, "plan.set"), (TOKEN_NAME, "plan.set")]
    for bad in ({"code": "Bad Code"}, {"code": code, "features": "sso"},
                {"code": code, "limits": {"x": 1.5}}, {"code": code, "interval": "week"},
                {"code": code, "price_cents": -1}, {"code": code, "currency": "euro"},
                {"code": code, "active": "perhaps"}):
        err(A("/api/admin/plans", bad), 400, "INVALID_FIELD")
    err(A("/api/admin/plans", {"name": "x"}), 400, "MISSING_FIELD")


# ---- audit, notifications, webhook events -----------------------------------

def test_audit_log_filters_and_pages():
    lic = new_license()
    lid = lic["license"]["id"]
    for _ in range(3):
        ok(A("/api/admin/licenses/%s/suspend" % lid, {}))
        ok(A("/api/admin/licenses/%s/reinstate" % lid, {}))
    got = ok(A("/api/admin/audit", params={"target": lid}))["entries"]
    assert [e["action"] for e in got] == ["license.reinstate", "license.suspend"] * 3 + ["license.issue"]
    assert all(e["actor"] == TOKEN_NAME for e in got)
    sus = ok(A("/api/admin/audit", params={"target": lid, "action": "license.suspend"}))["entries"]
    assert len(sus) == 3
    assert ok(A("/api/admin/audit", params={"target": lid, "actor": "nobody"}))["entries"] == []
    a, b = ok(A("/api/admin/audit", params={"target": lid, "limit": 4})), None
    assert len(a["entries"]) == 4 and a["next_cursor"]
    b = ok(A("/api/admin/audit", params={"target": lid, "limit": 4, "cursor": a["next_cursor"]}))
    assert [e["id"] for e in a["entries"] + b["entries"]] == [e["id"] for e in got]
    assert b["next_cursor"] is None
    assert ok(A("/api/admin/audit", params={"target": lid, "since": "2999-01-01"}))["entries"] == []
    assert len(ok(A("/api/admin/audit", params={"target": lid, "until": "2999-01-01T00:00:00Z",
                                                "since": "2000-01-01"}))["entries"]) == 7
    for bad in ({"since": "yesterday"}, {"until": "2026-13-45"}, {"limit": "-3"},
                {"actor": "x" * 201}):
        err(A("/api/admin/audit", params=bad), 400, "INVALID_FIELD")


def test_notifications_list_and_retry():
    lic = new_license()
    lid = lic["license"]["id"]
    nid = sql1("SELECT licd_notify('license_issued', %s, NULL, '{}')", lid)
    sql("UPDATE notifications SET attempts = 3, last_error = 'smtp: 451 <try later>',"
        " next_attempt_at = now() + interval '1 hour' WHERE id = %s", nid)
    rows = ok(A("/api/admin/notifications", params={"license": lid}))["notifications"]
    assert [n["id"] for n in rows] == [nid]
    assert rows[0]["attempts"] == 3 and rows[0]["last_error"] == "smtp: 451 <try later>"
    assert rows[0]["status"] == "pending"
    assert nid in [n["id"] for n in ok(A("/api/admin/notifications",
                                         params={"status": "pending", "limit": 200}))["notifications"]]
    r = ok(A("/api/admin/notifications/%d/retry" % nid, {}))
    assert r["id"] == nid and r["status"] == "pending"
    assert sql1("SELECT next_attempt_at <= licd_now() FROM notifications WHERE id = %s", nid)
    assert sql1("SELECT attempts FROM notifications WHERE id = %s", nid) == 3
    assert sql("SELECT actor, action FROM audit_log WHERE target_id = %s AND "
               "target_type = 'notification'", str(nid)) == [(TOKEN_NAME, "notification.retry")]
    sql("UPDATE notifications SET status = 'delivered', delivered_at = now() WHERE id = %s", nid)
    err(A("/api/admin/notifications/%d/retry" % nid, {}), 409, "CONFLICT")
    err(A("/api/admin/notifications/999999999/retry", {}), 404, "NOT_FOUND")
    err(A("/api/admin/notifications/abc/retry", {}), 404, "NOT_FOUND")
    err(A("/api/admin/notifications/%d/retry" % nid, method="GET"), 405, "METHOD_NOT_ALLOWED")
    err(A("/api/admin/notifications", params={"status": "lost"}), 400, "INVALID_FIELD")
    err(A("/api/admin/notifications", params={"license": "x"}), 400, "INVALID_FIELD")


def test_webhook_events_pending_and_more():
    subj = unique("sub")
    for i, st in enumerate(("pending", "applied", "pending", "ignored")):
        sql("INSERT INTO webhook_events (provider, event_id, type, status, subject, payload,"
            " received_at) VALUES ('stripe', %s, 'invoice.paid', %s, %s, '{}',"
            " now() - make_interval(secs => %s))", "evt_%s_%d" % (subj, i), st, subj, 10 - i)
    ev = ok(A("/api/admin/webhook-events", params={"status": "pending", "provider": "stripe",
                                                   "limit": 200}))["events"]
    mine = [e["event_id"] for e in ev if e["subject"] == subj]
    assert mine == ["evt_%s_2" % subj, "evt_%s_0" % subj]
    assert "payload" not in ev[0]
    all_ = ok(A("/api/admin/webhook-events", params={"limit": 1}))
    assert len(all_["events"]) == 1 and all_["next_cursor"]
    more = ok(A("/api/admin/webhook-events", params={"limit": 1,
                                                     "cursor": all_["next_cursor"]}))
    assert len(more["events"]) == 1
    first, second = all_["events"][0], more["events"][0]
    assert (second["provider"], second["event_id"]) != (first["provider"], first["event_id"])
    assert second["received_at"] <= first["received_at"]
    err(A("/api/admin/webhook-events", params={"provider": "paypal"}), 400, "INVALID_FIELD")
    err(A("/api/admin/webhook-events", params={"status": "Bad!"}), 400, "INVALID_FIELD")


# ---- overview and keys -----------------------------------------------------------

def test_overview_counts_validations_off_the_request_path():
    today = sql1("SELECT to_char(licd_now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')")

    def count(code):
        v = ok(A("/api/admin/overview"))["validations"]
        assert len(v) == 30 and v[-1]["day"] == today
        return v[-1]["codes"].get(code, 0)

    before_valid, before_bad = count("VALID"), count("INVALID_KEY")
    lic = new_license(make_plan(limits="installations=9"))
    for i in range(4):
        assert validate(lic["license_key"], "ov-%d" % i).json()["code"] == "VALID"
    assert validate("not-a-key", "ov-x").json()["code"] == "INVALID_KEY"
    assert eventually(lambda: count("VALID") >= before_valid + 4)
    assert eventually(lambda: count("INVALID_KEY") >= before_bad + 1)
    o = ok(A("/api/admin/overview"))
    assert set(o["licenses_by_status"]) == {"active", "suspended", "revoked", "expired"}
    assert o["licenses_by_status"]["active"] >= 1
    soon = new_license(days=3)
    o = ok(A("/api/admin/overview"))
    assert o["expiring_30d"]["count"] == sql1(
        "SELECT count(*) FROM licenses WHERE status = 'active' AND expires_at > licd_now()"
        " AND expires_at <= licd_now() + interval '30 days'")
    assert soon["license"]["id"] in [x["id"] for x in o["expiring_30d"]["licenses"]] or \
        len(o["expiring_30d"]["licenses"]) == 10
    # usage against limits: the fullest first
    plan = make_plan(features="sso,workflows", limits="installations=3,workflows_per_month=10")
    full = new_license(plan)
    r = api("/api/usage", {"license_key": full["license_key"], "feature": "workflows",
                           "quantity": 10})
    assert r.status_code == 200
    # installations, versions and usage are counted by the lifecycle job
    run_figures()
    o = ok(A("/api/admin/overview"))
    assert o["installations_seen"] == {
        "24h": sql1("SELECT count(*) FROM installations WHERE status = 'active'"
                    " AND last_seen >= licd_now() - interval '24 hours'"),
        "7d": sql1("SELECT count(*) FROM installations WHERE status = 'active'"
                   " AND last_seen >= licd_now() - interval '7 days'")}
    assert o["installations_seen"]["24h"] >= 4
    assert isinstance(o["versions"], list) and o["versions"]
    near = o["usage_near_limits"]
    assert near[0]["used"] == near[0]["limit"]
    assert any(n["license_id"] == full["license"]["id"] and n["used"] == 10 and
               n["limit"] == 10 for n in near)


def run_figures():
    """One run of licd-lifecycle, whose figures task counts the overview's
    installations, versions and usage; returns the overview's as_of after it."""
    env = dict(os.environ, LICD_CONFIG=CONFIG)
    for k in list(env):
        if k.startswith(("LICD_SMTP", "LICD_NOTIFY")):
            del env[k]
    p = subprocess.run([os.path.join(BIN, "licd-lifecycle")], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"^figures\s+(\d+) licenses counted", p.stdout, re.M)
    assert m, p.stdout
    assert int(m.group(1)) == sql1("SELECT count(*) FROM licenses")
    return ok(A("/api/admin/overview"))["as_of"]


def test_overview_installation_figures_are_as_of_the_lifecycle_run():
    before = ok(A("/api/admin/overview"))
    lic = new_license(make_plan(limits="installations=9"))
    version = unique("v")
    for i in range(3):
        assert validate(lic["license_key"], "asof-%d" % i,
                        version=version).json()["code"] == "VALID"
    o = ok(A("/api/admin/overview"))
    # until the job runs, the time-window figures stay as they were counted
    assert (o["as_of"], o["installations_seen"], o["versions"], o["usage_near_limits"]) == \
        (before["as_of"], before["installations_seen"], before["versions"],
         before["usage_near_limits"])
    assert version not in [v["version"] for v in o["versions"]]
    as_of = run_figures()
    assert as_of is not None and (before["as_of"] is None or as_of >= before["as_of"])
    o = ok(A("/api/admin/overview"))
    assert o["as_of"] == as_of and as_of <= o["generated_at"]
    top = sql("SELECT coalesce(version, ''), count(*) FROM installations"
              " WHERE status = 'active' AND last_seen >= licd_now() - interval '30 days'"
              " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20")
    assert [(v["version"], v["installations"]) for v in o["versions"]] == list(top)
    assert (version, 3) in top or len(top) == 20


def status_counts():
    return ok(A("/api/admin/overview"))["licenses_by_status"]


def plan_count(code):
    return {p["code"]: p["licenses"] for p in ok(A("/api/admin/plans"))["plans"]}[code]


def test_license_counts_follow_every_write_at_once():
    """Licenses per status (overview) and per plan (plans) are exact right
    after each write, and the lifecycle's recount agrees with them."""
    plan, other = make_plan(), make_plan()
    assert plan_count(plan) == 0
    s0 = status_counts()

    def moved(**delta):
        want = dict(s0)
        for k, v in delta.items():
            want[k] += v
        return want

    a, b = new_license(plan), new_license(plan)
    assert plan_count(plan) == 2 and status_counts() == moved(active=2)
    aid, bid = a["license"]["id"], b["license"]["id"]
    ok(A("/api/admin/licenses/%s/suspend" % aid, {"reason": "counting"}))
    assert status_counts() == moved(active=1, suspended=1) and plan_count(plan) == 2
    ok(A("/api/admin/licenses/%s/reinstate" % aid, {}))
    assert status_counts() == moved(active=2)
    ok(A("/api/admin/licenses/%s/revoke" % bid, {"reason": "counting"}))
    assert status_counts() == moved(active=1, revoked=1) and plan_count(plan) == 2
    # a plan change (as a subscription's new price makes it) moves the license
    sql("UPDATE licenses SET plan_code = %s WHERE id = %s", other, aid)
    assert (plan_count(plan), plan_count(other)) == (1, 1)
    # a status and plan change in one statement, and a refused write
    sql("UPDATE licenses SET plan_code = %s, status = 'expired' WHERE id = %s", plan, aid)
    assert (plan_count(plan), plan_count(other)) == (2, 0)
    assert status_counts() == moved(expired=1, revoked=1)
    err(A("/api/admin/licenses/%s/edit" % bid, {"limits": {"x": 1}}), 409, "CONFLICT")
    assert status_counts() == moved(expired=1, revoked=1)
    sql("DELETE FROM licenses WHERE id = %s", bid)
    assert plan_count(plan) == 1 and status_counts() == moved(expired=1)
    truth = dict.fromkeys(("active", "suspended", "revoked", "expired"), 0)
    truth.update(sql("SELECT status, count(*) FROM licenses GROUP BY 1"))
    assert status_counts() == truth
    # the lifecycle's recount (after its own changes) finds the same figures
    run_figures()
    truth = dict.fromkeys(truth, 0)
    truth.update(sql("SELECT status, count(*) FROM licenses GROUP BY 1"))
    assert plan_count(plan) == 1 and status_counts() == truth
    assert {p["code"]: p["licenses"] for p in ok(A("/api/admin/plans"))["plans"]} == \
        dict(sql("SELECT p.code, count(l.id) FROM plans p LEFT JOIN licenses l"
                 " ON l.plan_code = p.code GROUP BY 1"))


def test_two_recounts_at_once_count_each_license_once():
    """A figures task started while another has not committed waits for it
    (else its snapshot would miss the first one's rows and add to them)."""
    first = db()
    first.autocommit = False
    second = db()
    try:
        first.cursor().execute("SELECT licd_lc_figures()")
        done = []
        t = threading.Thread(target=lambda: done.append(
            second.cursor().execute("SELECT licd_lc_figures()")))
        t.start()
        eventually(lambda: sql1("SELECT count(*) FROM pg_stat_activity WHERE"
                                " wait_event = 'advisory' AND query LIKE '%%licd_lc_figures%%'"),
                   what="the second figures task waiting for the first")
        assert not done
        first.commit()
        t.join(60)
        assert done and not t.is_alive()
    finally:
        first.close()
        second.close()
    assert sql1("SELECT sum(n) FROM license_counts") == sql1("SELECT count(*) FROM licenses")


def test_signing_keys_and_which_is_current():
    k = ok(A("/api/admin/keys"))
    jwks = api("/.well-known/jwks.json", method="GET").json()
    assert k["keys"] == jwks["keys"]
    assert k["current_kid"] == jwks["keys"][0]["kid"]
    lic = new_license()
    assert jwt.get_unverified_header(lic["license_key"])["kid"] == k["current_kid"]


# ---- the console's static files ------------------------------------------

CONSOLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "console")


def test_console_is_served_with_a_strict_policy():
    r = requests.get(URL + "/console", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"].endswith("/console/")
    for name in sorted(os.listdir(CONSOLE)):
        r = requests.get(URL + "/console/" + ("" if name == "index.html" else name))
        assert r.status_code == 200, name
        assert r.content == open(os.path.join(CONSOLE, name), "rb").read()
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        ctype = {"html": "text/html", "css": "text/css", "js": "text/javascript",
                 "svg": "image/svg+xml"}[name.rsplit(".", 1)[1]]
        assert r.headers["Content-Type"].startswith(ctype), name
    assert requests.get(URL + "/console/nothing.js").status_code == 404


def test_console_sources_render_text_only_and_fetch_nothing_elsewhere():
    html = open(os.path.join(CONSOLE, "index.html")).read()
    # scripts only from files, no inline handlers or styles
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="app.js">']
    assert not re.search(r"\son[a-z]+\s*=", html) and "style=" not in html
    for name in os.listdir(CONSOLE):
        # the SVG namespace is a name, not a fetch
        text = open(os.path.join(CONSOLE, name)).read().replace(
            "http://www.w3.org/2000/svg", "")
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                    "eval(", "new Function", "localStorage", "sessionStorage",
                    "http://", "https://", "//cdn"):
            assert bad not in text, (name, bad)
