"""POST/GET /api/usage: exact monthly metering under concurrency,
idempotency, the month boundary (SQL clock), and bad input."""
import concurrent.futures
import json
import os
import uuid

import psycopg2.errors
import pytest
import requests

from util import (ROOT, URL, admin, api, b64url, b64url_decode, db, error_code,
                  eventually, issue, make_plan, sql, sql1, validate)


def usage(key, feature="api_calls", quantity=None, **kw):
    body = {"license_key": key, "feature": feature}
    if quantity is not None:
        body["quantity"] = quantity
    body.update(kw)
    return api("/api/usage", body)


def metered(limit=5000, extra_limits=""):
    plan = make_plan(features="sso,api_calls,exports",
                     limits="installations=5,api_calls_per_month=%d%s" % (limit, extra_limits))
    return issue(plan=plan, days=120)


def counter(lic_id, feature="api_calls"):
    return sql1("SELECT coalesce(sum(used), 0) FROM usage_counters WHERE license_id = %s"
                " AND feature = %s", lic_id, feature)


def logged(lic_id, feature="api_calls"):
    return sql("SELECT count(*), coalesce(sum(quantity), 0) FROM usage_log"
               " WHERE license_id = %s AND feature = %s", lic_id, feature)[0]


def period_now():
    return sql1("SELECT to_char(licd_now() AT TIME ZONE 'UTC', 'YYYY-MM')")


def test_counts_and_limit():
    lic = metered(limit=10)
    r = usage(lic["key"], quantity=4, installation_id="i-1")
    assert r.status_code == 200
    assert r.json() == {"feature": "api_calls", "period": period_now(),
                        "used": 4, "limit": 10, "remaining": 6}
    r = usage(lic["key"])  # quantity defaults to 1
    assert r.json()["used"] == 5
    r = usage(lic["key"], quantity=6)
    assert r.status_code == 429 and error_code(r) == "USAGE_LIMIT_EXCEEDED"
    assert r.json()["used"] == 5 and r.json()["limit"] == 10
    r = usage(lic["key"], quantity=5)
    assert r.status_code == 200 and r.json()["remaining"] == 0
    r = usage(lic["key"])
    assert r.status_code == 429 and r.json()["used"] == 10
    assert counter(lic["id"]) == 10 and logged(lic["id"]) == (3, 10)
    row = sql("SELECT installation_id FROM usage_log WHERE license_id = %s"
              " ORDER BY id LIMIT 1", lic["id"])
    assert row == [("i-1",)]


def test_unmetered_feature_is_counted():
    lic = metered()
    r = usage(lic["key"], "exports", 7)
    assert r.status_code == 200
    assert r.json() == {"feature": "exports", "period": period_now(), "used": 7,
                        "limit": None, "remaining": None}


def test_get_usage():
    lic = metered(limit=100)
    usage(lic["key"], quantity=30)
    usage(lic["key"], "exports", 2)
    r = api("/api/usage", method="GET", params={"license_key": lic["key"]})
    assert r.status_code == 200
    b = r.json()
    assert b["period"] == period_now()
    assert b["features"]["api_calls"] == {"used": 30, "limit": 100, "remaining": 70}
    assert b["features"]["exports"] == {"used": 2, "limit": None, "remaining": None}
    r = api("/api/usage", method="GET",
            params={"license_key": lic["key"], "period": "2020-01"})
    assert r.json()["features"]["api_calls"]["used"] == 0
    for bad in ("2026-13", "2026-1", "26-11", "2026/11", "x"):
        r = api("/api/usage", method="GET",
                params={"license_key": lic["key"], "period": bad})
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", bad
    r = api("/api/usage", method="GET")
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    r = api("/api/usage", method="GET", params={"license_key": "garbage"})
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"


def test_concurrent_clients_exact_limit():
    """100 clients x 100 increments against 5,000: exactly 5,000 counted,
    exactly 5,000 refused, and the log agrees with the counter."""
    lic = metered(limit=5000)

    def client(i):
        s = requests.Session()
        ok = refused = other = 0
        for _ in range(100):
            r = s.post(URL + "/api/usage", timeout=60,
                       json={"license_key": lic["key"], "feature": "api_calls",
                             "installation_id": "c%d" % i})
            if r.status_code == 200:
                ok += 1
            elif r.status_code == 429 and r.json()["error"]["code"] == "USAGE_LIMIT_EXCEEDED":
                refused += 1
            else:
                other += 1
        return ok, refused, other

    with concurrent.futures.ThreadPoolExecutor(100) as ex:
        res = list(ex.map(client, range(100)))
    ok = sum(r[0] for r in res)
    refused = sum(r[1] for r in res)
    assert sum(r[2] for r in res) == 0
    assert (ok, refused) == (5000, 5000)
    assert counter(lic["id"]) == 5000
    assert logged(lic["id"]) == (5000, 5000)


def test_concurrent_retries_count_once():
    """The same load with every request sent twice, concurrently, under its
    idempotency key: still exactly 5,000, and both copies get one answer."""
    lic = metered(limit=5000)

    def client(i):
        s1, s2 = requests.Session(), requests.Session()
        answers = []
        pool = concurrent.futures.ThreadPoolExecutor(2)
        for j in range(100):
            body = {"license_key": lic["key"], "feature": "api_calls",
                    "idempotency_key": "k-%d-%d" % (i, j)}
            f1 = pool.submit(s1.post, URL + "/api/usage", json=body, timeout=60)
            f2 = pool.submit(s2.post, URL + "/api/usage", json=body, timeout=60)
            r1, r2 = f1.result(), f2.result()
            answers.append(((r1.status_code, r1.text), (r2.status_code, r2.text)))
        pool.shutdown()
        return answers

    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        res = [a for chunk in ex.map(client, range(100)) for a in chunk]
    assert len(res) == 10000
    same = sum(1 for a, b in res if a == b)
    assert same == 10000, [p for p in res if p[0] != p[1]][:3]
    codes = [a[0] for a, _ in res]
    assert codes.count(200) == 5000 and codes.count(429) == 5000
    assert counter(lic["id"]) == 5000
    assert logged(lic["id"]) == (5000, 5000)
    assert sql1("SELECT count(DISTINCT idempotency_key) FROM usage_log"
                " WHERE license_id = %s", lic["id"]) == 5000


def test_idempotent_retry_returns_first_answer():
    lic = metered(limit=10)
    key = "idem-" + uuid.uuid4().hex
    a = usage(lic["key"], quantity=3, idempotency_key=key)
    usage(lic["key"], quantity=5)
    b = usage(lic["key"], quantity=3, idempotency_key=key)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json() and b.json()["used"] == 3
    assert counter(lic["id"]) == 8
    # a refused request replays as refused, even after room appeared
    k2 = "idem-" + uuid.uuid4().hex
    r = usage(lic["key"], quantity=5, idempotency_key=k2)
    assert r.status_code == 429
    sql("UPDATE usage_counters SET used = 0 WHERE license_id = %s", lic["id"])
    r2 = usage(lic["key"], quantity=5, idempotency_key=k2)
    assert r2.status_code == 429 and r2.json() == r.json()
    # the same key for a different request is a client bug
    r = usage(lic["key"], quantity=4, idempotency_key=key)
    assert r.status_code == 409 and error_code(r) == "IDEMPOTENCY_KEY_REUSED"
    # keys are per license
    other = metered(limit=10)
    r = usage(other["key"], quantity=3, idempotency_key=key)
    assert r.status_code == 200 and r.json()["used"] == 3


def set_clock(target_sql):
    """Moves licd_now() to target (an SQL timestamptz expression)."""
    sql("UPDATE licd_clock SET offset_s = extract(epoch FROM (%s) - now())::bigint"
        % target_sql)


def test_month_boundary():
    lic = metered(limit=10)
    try:
        set_clock("date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                  " + interval '1 month' - interval '20 seconds'")
        old = period_now()
        r = usage(lic["key"], quantity=10)
        assert r.status_code == 200 and r.json()["period"] == old
        assert usage(lic["key"]).status_code == 429
        set_clock("date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                  " + interval '1 month' + interval '20 seconds'")
        new = period_now()
        assert new != old
        r = usage(lic["key"], quantity=4)
        assert r.status_code == 200
        assert r.json() == {"feature": "api_calls", "period": new, "used": 4,
                            "limit": 10, "remaining": 6}
        g = api("/api/usage", method="GET",
                params={"license_key": lic["key"], "period": old}).json()
        assert g["features"]["api_calls"]["used"] == 10
        g = api("/api/usage", method="GET", params={"license_key": lic["key"]}).json()
        assert g["period"] == new and g["features"]["api_calls"]["used"] == 4
        assert sql("SELECT to_char(period, 'YYYY-MM'), used FROM usage_counters"
                   " WHERE license_id = %s ORDER BY period", lic["id"]) == \
            [(old, 10), (new, 4)]
    finally:
        sql("UPDATE licd_clock SET offset_s = 0")


def test_bad_quantities_and_features():
    lic = metered(limit=100)
    for q in (0, -1, 1000001, 2 ** 63, 1.5, "3", True, [], {}):
        r = api("/api/usage", {"license_key": lic["key"], "feature": "api_calls",
                               "quantity": q})
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", (q, r.text)
        assert "quantity" in r.json()["error"]["message"]
    r = usage(lic["key"], quantity=1000000)
    assert r.status_code == 429  # in range, over the limit
    r = usage(lic["key"], "billing")
    assert r.status_code == 403 and error_code(r) == "FEATURE_NOT_LICENSED"
    for f in ("", "Bad Feature", "x" * 65, "a;drop", 5):
        r = usage(lic["key"], f)
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD", f
    r = api("/api/usage", {"license_key": lic["key"]})
    assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
    assert "feature" in r.json()["error"]["message"]
    for k in ("", "x" * 129):
        r = usage(lic["key"], idempotency_key=k)
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD"
    r = usage("garbage")
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    r = api("/api/usage", data="{", ctype="application/json")
    assert r.status_code == 400 and error_code(r) == "MALFORMED_JSON"
    r = api("/api/usage", data=json.dumps({"license_key": lic["key"]}),
            ctype="text/plain")
    assert r.status_code == 415
    assert counter(lic["id"]) == 0 and logged(lic["id"]) == (0, 0)


def test_not_valid_license_refused():
    for status, code in (("revoked", "REVOKED"), ("suspended", "SUSPENDED"),
                         ("expired", "EXPIRED")):
        lic = metered()
        sql("UPDATE licenses SET status = %s WHERE id = %s", status, lic["id"])
        r = usage(lic["key"])
        assert r.status_code == 403 and error_code(r) == code
        assert counter(lic["id"]) == 0


def test_status_changes_apply_to_the_next_call():
    """Revoke, suspend and reinstate through the admin API: the very next
    usage call answers the license's code and counts nothing, or counts
    again once reinstated."""
    lic = metered()
    assert usage(lic["key"]).status_code == 200
    r = admin("/api/admin/licenses/%s/suspend" % lic["id"], {"reason": "t"})
    assert r.status_code == 200, r.text
    r = usage(lic["key"])
    assert r.status_code == 403 and error_code(r) == "SUSPENDED"
    assert r.json()["error"]["message"] == "the license is suspended"
    r = admin("/api/admin/licenses/%s/reinstate" % lic["id"], {"reason": "t"})
    assert r.status_code == 200, r.text
    assert usage(lic["key"]).json()["used"] == 2
    r = admin("/api/revoke", {"license_id": lic["id"], "reason": "t"})
    assert r.status_code == 200, r.text
    r = usage(lic["key"], idempotency_key="after-revoke")
    assert r.status_code == 403 and error_code(r) == "REVOKED"
    assert counter(lic["id"]) == 2 and logged(lic["id"]) == (2, 2)
    assert sql1("SELECT count(*) FROM usage_requests WHERE license_id = %s",
                lic["id"]) == 0


def test_call_waiting_on_a_revoke_is_refused():
    """A usage call whose batch meets a revoke not yet committed waits for
    it (the license row lock) and then reads the revoked status: refused,
    nothing counted. Read before the increment, the license would still
    have said active."""
    lic = metered()
    assert usage(lic["key"]).status_code == 200
    conn, watch = db(), db()
    conn.autocommit = False

    def blocked():
        with watch.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity"
                        " WHERE %s = ANY (pg_blocking_pids(pid))", (pid,))
            return cur.fetchone()[0]
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            cur.execute("UPDATE licenses SET status = 'revoked', revoked_at = now()"
                        " WHERE id = %s", (lic["id"],))
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            f = ex.submit(usage, lic["key"])
            # Committed well within the batch's lock_timeout.
            eventually(blocked, what="the usage batch to wait on the revoke's"
                       " row lock", interval=0.005)
            conn.commit()
            r = f.result(timeout=30)
    finally:
        conn.close()
        watch.close()
    assert r.status_code == 403 and error_code(r) == "REVOKED", r.text
    assert counter(lic["id"]) == 1 and logged(lic["id"]) == (1, 1)


def test_a_batch_skips_a_license_held_elsewhere():
    """licd_usage_add_batch does not wait for a license another
    transaction holds: its items answer BUSY at once, claim no
    idempotency key and count nothing, while the batch's other items are
    counted. Sent again with "w": true the item waits for the license (up
    to lock_timeout), and once the holder is gone it is counted, once."""
    held, free = metered(), metered()
    gone = str(uuid.uuid4())
    holder = db()
    holder.autocommit = False
    holder.cursor().execute("SELECT 1 FROM licenses WHERE id = %s FOR UPDATE",
                            (held["id"],))
    item = {"o": 0, "l": held["id"], "i": None, "f": "api_calls", "q": 2,
            "k": "k-held", "r": "t"}
    items = [item, dict(item, o=1, l=free["id"], k=None),
             dict(item, o=2, l=gone), dict(item, o=3, k=None)]
    conn = db()
    try:
        cur = conn.cursor()
        # waiting here would fail the statement
        cur.execute("SET lock_timeout = '50ms'")
        cur.execute("SELECT ord, code, accepted, used FROM"
                    " licd_usage_add_batch(%s::jsonb) ORDER BY ord",
                    (json.dumps(items),))
        assert cur.fetchall() == [(0, "BUSY", None, None), (1, None, True, 2),
                                  (2, "UNKNOWN", None, None),
                                  (3, "BUSY", None, None)]
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            cur.execute("SELECT * FROM licd_usage_add_batch(%s::jsonb)",
                        (json.dumps([dict(item, w=True)]),))
        assert sql1("SELECT count(*) FROM usage_requests WHERE license_id = %s",
                    held["id"]) == 0
        assert counter(held["id"]) == 0 and logged(held["id"]) == (0, 0)
        holder.rollback()
        cur.execute("SELECT ord, code, accepted, used FROM"
                    " licd_usage_add_batch(%s::jsonb)",
                    (json.dumps([dict(item, w=True)]),))
        assert cur.fetchall() == [(0, None, True, 2)]
    finally:
        holder.close()
        conn.close()
    assert counter(held["id"]) == 2 and logged(held["id"]) == (1, 2)
    assert counter(free["id"]) == 2 and logged(free["id"]) == (1, 2)


def usage_rules():
    """tests/usage_rules.txt: (status, expires, grace, features, limit,
    used, qty, code) per case."""
    out = []
    with open(os.path.join(ROOT, "tests", "usage_rules.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                st, ex, gr, fe, li, used, qty, code = line.split()
                out.append((st, None if ex == "-" else int(ex),
                            None if gr == "-" else int(gr),
                            [] if fe == "-" else fe.split(","),
                            "{}" if li == "-" else
                            '{"api_calls_per_month": %s}' % li,
                            int(used), int(qty), code))
    return out


SET_CASE = ("UPDATE licenses SET status = %s,"
            " expires_at = licd_now() + make_interval(secs => %s),"
            " grace_until = licd_now() + make_interval(secs => %s),"
            " features = %s::jsonb, limits = %s::jsonb WHERE id = %s")
SET_USED = ("INSERT INTO usage_counters AS c (license_id, feature, period,"
            " used, updated_at) VALUES (%s, 'api_calls',"
            " licd_period(licd_now()), %s, licd_now()) ON CONFLICT"
            " (license_id, feature, period) DO UPDATE SET used = EXCLUDED.used")


def test_usage_rules_agree():
    """The license rules of a usage call exist twice: in C (lic_state,
    lic_has_feature, lic_limit: validate and GET /api/usage) and in SQL
    (licd_usage_add_batch, which decides POST /api/usage under the
    license's lock). Every case of tests/usage_rules.txt (exactly at the
    end, at the grace's end, suspended, revoked, at the limit, ...) is
    decided by the SQL at the case's exact time: one transaction, in
    which licd_now() stands still. tests/unit/test_usage_rules.c holds C
    to the same table. The cases a day or more from an edge also go over
    HTTP: POST (SQL) answers what validate and GET (C) answer."""
    lic = metered()
    cases = usage_rules()
    assert len(cases) >= 20
    conn = db()
    conn.autocommit = False
    try:
        cur = conn.cursor()
        for st, ex, gr, fe, li, used, qty, code in cases:
            cur.execute(SET_CASE, (st, ex, gr, json.dumps(fe), li, lic["id"]))
            cur.execute(SET_USED, (lic["id"], used))
            cur.execute("SELECT code, accepted FROM licd_usage_add_batch(%s)",
                        (json.dumps([{"o": 0, "l": lic["id"], "i": None,
                                      "f": "api_calls", "q": qty, "k": None,
                                      "r": "rules"}]),))
            got, accepted = cur.fetchone()
            conn.rollback()
            got = got or ("VALID" if accepted else "USAGE_LIMIT_EXCEEDED")
            assert got == code, (st, ex, gr, fe, li, used, qty)
    finally:
        conn.close()
    for n, (st, ex, gr, fe, li, used, qty, code) in enumerate(cases):
        if any(t is not None and abs(t) < 86400 for t in (ex, gr)):
            continue
        case = (st, ex, gr, fe, li, used, qty)
        sql(SET_CASE, st, ex, gr, json.dumps(fe), li, lic["id"])
        sql(SET_USED, lic["id"], used)
        r = usage(lic["key"], quantity=qty)
        post = {200: "VALID", 429: "USAGE_LIMIT_EXCEEDED"}.get(
            r.status_code) or (r.status_code == 403 and error_code(r))
        assert post == code, (case, r.text)
        v = validate(lic["key"], "rules", feature="api_calls").json()["code"]
        assert v == ("VALID" if code == "USAGE_LIMIT_EXCEEDED" else code), case
        if code == "FEATURE_NOT_LICENSED":
            continue
        sql(SET_USED, lic["id"], used)
        g = api("/api/usage", method="GET", params={"license_key": lic["key"]})
        if code in ("VALID", "USAGE_LIMIT_EXCEEDED"):
            c = g.json()["features"]["api_calls"]
            fits = c["remaining"] is None or qty <= c["remaining"]
            assert fits == (code == "VALID"), (case, g.text)
        else:
            assert g.status_code == 403 and error_code(g) == code, (case, g.text)


def test_limits_and_features_as_committed():
    """The limit and the features are the license's as committed when the
    call is counted."""
    lic = metered(limit=10)
    assert usage(lic["key"], quantity=5).json()["limit"] == 10
    sql("UPDATE licenses SET limits = limits || '{\"api_calls_per_month\": 6}'"
        " WHERE id = %s", lic["id"])
    r = usage(lic["key"], quantity=2)
    assert r.status_code == 429 and r.json()["limit"] == 6
    sql("UPDATE licenses SET limits = limits - 'api_calls_per_month'"
        " WHERE id = %s", lic["id"])
    assert usage(lic["key"], quantity=2).json()["limit"] is None
    sql("UPDATE licenses SET features = '[\"sso\"]' WHERE id = %s", lic["id"])
    r = usage(lic["key"])
    assert r.status_code == 403 and error_code(r) == "FEATURE_NOT_LICENSED"
    assert counter(lic["id"]) == 7 and logged(lic["id"]) == (2, 7)


def test_key_not_as_issued():
    """A key usage has not seen, that is not byte for byte the one the
    license holds: counted once when its signature is good (a key
    re-signed since), refused and not counted when it is not."""
    lic = metered()
    sql("UPDATE licenses SET license_key = 'x' || license_key WHERE id = %s",
        lic["id"])
    r = usage(lic["key"], quantity=3)
    assert r.status_code == 200 and r.json()["used"] == 3, r.text
    other = metered()
    head, body, sig = other["key"].split(".")
    bad = bytearray(b64url_decode(sig))
    bad[5] ^= 1
    r = usage(".".join((head, body, b64url(bytes(bad)))))
    assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
    assert counter(lic["id"]) == 3 and logged(lic["id"]) == (1, 3)
    assert counter(other["id"]) == 0
