"""Activations of node-locked installations (licd_activate_batch,
fcgi/lib/activate.c): the activations a process receives together share
one transaction, yet each is decided alone under its license's lock, so
limits.installations holds under any concurrency, one activation's refusal
never fails another's, and a change to the license committed while an
activation waits for the lock is applied to it. Seat writes of floating
licenses (licd_seat) re-check the domain rule under the lock likewise."""
import collections
import concurrent.futures
import threading
import time

import psycopg2
import psycopg2.extras
import pytest
import requests

from util import (URL, api, db, issue, licctl, make_plan, seats_disagree,
                  sql, sql1, validate)


def activate(key, iid, **kw):
    body = {"license_key": key, "installation_id": iid}
    body.update(kw)
    r = requests.post(URL + "/api/validate", json=body, timeout=60)
    return r.status_code, r.json()


def test_concurrent_new_installations_on_many_licenses_give_each_its_limit():
    """Many new installations at once over several licenses, so that
    batches mix licenses, refusals and grants: every license ends with
    exactly its limit active, every other call of it is refused with the
    contract's code, and the calls of a revoked license or of a domain the
    license does not allow fail alone."""
    limits = [1, 2, 3, 5, 8]
    lics = [issue(limits="installations=%d" % n) for n in limits]
    revoked = issue(limits="installations=50")
    sql("UPDATE licenses SET status = 'revoked', revoked_at = now()"
        " WHERE id = %s", revoked["id"])
    restricted = issue(limits="installations=4", domains="*.company.com")
    # the same new installation many times at once: one seat
    same = issue(limits="installations=1")

    calls = []
    for n, l in enumerate(lics):
        calls += [("lic", n, "n-%d-%d" % (n, i)) for i in range(30)]
    calls += [("revoked", 0, "r-%d" % i) for i in range(20)]
    calls += [("allowed", 0, "a-%d" % i) for i in range(12)]
    calls += [("denied", 0, "d-%d" % i) for i in range(12)]
    calls += [("same", 0, "the-one") for _ in range(16)]
    # interleaved, so that every batch holds several kinds
    calls = [calls[i] for i in sorted(range(len(calls)),
                                      key=lambda i: (i * 7919) % len(calls))]

    def one(c):
        what, n, iid = c
        if what == "lic":
            return c, activate(lics[n]["key"], iid)
        if what == "revoked":
            return c, activate(revoked["key"], iid)
        if what == "allowed":
            return c, activate(restricted["key"], iid, domain="x.company.com")
        if what == "denied":
            return c, activate(restricted["key"], iid, domain="company.com")
        return c, activate(same["key"], iid)

    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        results = list(ex.map(one, calls))
    codes = collections.defaultdict(collections.Counter)
    for (what, n, iid), (status, b) in results:
        assert status == 200, (what, b)
        codes[(what, n)][b["code"]] += 1
        if b["code"] == "VALID":
            assert b["installation"]["status"] == "active"
            assert b["installation"]["id"] == iid and b["lease"]
        else:
            assert "lease" not in b
    for n, l in enumerate(lics):
        assert codes[("lic", n)] == {"VALID": limits[n],
                                     "TOO_MANY_INSTALLATIONS": 30 - limits[n]}
        assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                    l["id"]) == limits[n]
    assert codes[("revoked", 0)] == {"REVOKED": 20}
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                revoked["id"]) == 0
    assert codes[("allowed", 0)] == {"VALID": 4, "TOO_MANY_INSTALLATIONS": 8}
    assert codes[("denied", 0)] == {"DOMAIN_NOT_ALLOWED": 12}
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND domain = 'x.company.com'", restricted["id"]) == 4
    assert codes[("same", 0)] == {"VALID": 16}
    assert sql("SELECT installation_id, status FROM installations"
               " WHERE license_id = %s", same["id"]) == [("the-one", "active")]


def test_the_batch_decides_each_item_alone():
    """licd_activate_batch itself, called as validate's processes call it:
    items of several licenses and of one license over its limit in one
    call, each answered with its own ordinal; seats go in installation
    order; an unknown license and a license whose rules refuse an item
    fail that item alone; the same installation twice is one seat."""
    a = issue(limits="installations=2", features="sso")
    b = issue(limits="installations=1", domains="b.example")
    gone = "00000000-0000-4000-8000-000000000000"
    items = ('[{"o":0,"l":"%(a)s","i":"x0","c":true},'
             '{"o":1,"l":"%(b)s","i":"y0","d":"b.example","c":true},'
             '{"o":2,"l":"%(a)s","i":"x1","f":"sso","c":true},'
             '{"o":3,"l":"%(gone)s","i":"z","c":true},'
             '{"o":4,"l":"%(a)s","i":"x2","c":true},'
             '{"o":5,"l":"%(b)s","i":"y1","d":"c.example","c":true},'
             '{"o":6,"l":"%(a)s","i":"x3","f":"reports","c":true},'
             '{"o":7,"l":"%(a)s","i":"x0","m":"{\\"k\\": 1}","v":"2.0","c":true}]'
             % {"a": a["id"], "b": b["id"], "gone": gone})
    rows = sql("SELECT ord, code, first_seen IS NOT NULL"
               " FROM licd_activate_batch(%s::jsonb) ORDER BY ord", items)
    assert rows == [(0, "VALID", True), (1, "VALID", True), (2, "VALID", True),
                    (3, "INVALID_KEY", False),
                    (4, "TOO_MANY_INSTALLATIONS", False),
                    (5, "DOMAIN_NOT_ALLOWED", False),
                    (6, "FEATURE_NOT_LICENSED", False),
                    (7, "VALID", True)]
    assert sql("SELECT installation_id, version, metadata FROM installations"
               " WHERE license_id = %s ORDER BY 1", a["id"]) == [
        ("x0", "2.0", {"k": 1}), ("x1", None, None)]


def test_the_batch_gives_seats_as_one_by_one_in_installation_order():
    """Installations already active, deactivated ones coming back and new
    ones in one batch: the seats left go in installation order as if the
    items were activated one by one (an active installation keeps its
    seat unless those before it overfill the license; a deactivated one
    takes a seat as a new one does), an over-full license (its limit
    lowered) refuses even its active installations, and the items of one
    installation share its fate, the last version given winning."""
    a = issue(limits="installations=2", domains="a.example")
    over = issue(limits="installations=5")
    for iid in ("b", "e"):
        assert validate(a["key"], iid, domain="a.example").json()["code"] == "VALID"
    sql("UPDATE installations SET status = 'inactive', deactivated_at = now()"
        " WHERE license_id = %s AND installation_id = 'e'", a["id"])
    for iid in ("x", "y"):
        assert validate(over["key"], iid).json()["code"] == "VALID"
    sql("UPDATE licenses SET limits = '{\"installations\": 1}' WHERE id = %s",
        over["id"])
    first_b = sql1("SELECT first_seen FROM installations WHERE license_id = %s"
                   " AND installation_id = 'b'", a["id"])
    items = ('[{"o":0,"l":"%(a)s","i":"c","d":"a.example","c":true},'
             '{"o":1,"l":"%(a)s","i":"a","d":"no.example","c":true},'
             '{"o":2,"l":"%(a)s","i":"b","d":"a.example","v":"2","c":true},'
             '{"o":3,"l":"%(a)s","i":"a","d":"a.example","v":"1","c":true},'
             '{"o":4,"l":"%(a)s","i":"e","d":"a.example","c":true},'
             '{"o":5,"l":"%(a)s","i":"a","d":"a.example","v":"3","c":true},'
             '{"o":6,"l":"%(o)s","i":"x","c":true},'
             '{"o":7,"l":"%(o)s","i":"z","c":true}]'
             % {"a": a["id"], "o": over["id"]})
    rows = sql("SELECT ord, code FROM licd_activate_batch(%s::jsonb)"
               " ORDER BY ord", items)
    # a: one seat free (b active, e inactive); in order a (new) takes it,
    # b keeps its own, c and e find none; over: x and y over its limit
    assert rows == [(0, "TOO_MANY_INSTALLATIONS"), (1, "DOMAIN_NOT_ALLOWED"),
                    (2, "VALID"), (3, "VALID"), (4, "TOO_MANY_INSTALLATIONS"),
                    (5, "VALID"), (6, "TOO_MANY_INSTALLATIONS"),
                    (7, "TOO_MANY_INSTALLATIONS")]
    assert sql("SELECT installation_id, status, version FROM installations"
               " WHERE license_id = %s ORDER BY 1", a["id"]) == [
        ("a", "active", "3"), ("b", "active", "2"), ("e", "inactive", None)]
    assert sql1("SELECT first_seen FROM installations WHERE license_id = %s"
                " AND installation_id = 'b'", a["id"]) == first_b
    assert sql("SELECT installation_id FROM installations WHERE license_id = %s"
               " AND status = 'active' ORDER BY 1", over["id"]) == [("x",), ("y",)]
    # with the limit raised, the deactivated one comes back as a new one
    was = sql1("SELECT activated_at FROM installations WHERE license_id = %s"
               " AND installation_id = 'e'", a["id"])
    sql("UPDATE licenses SET limits = '{\"installations\": 3}' WHERE id = %s",
        a["id"])
    rows = sql("SELECT ord, code, first_seen IS NOT NULL"
               " FROM licd_activate_batch(%s::jsonb) ORDER BY ord",
               '[{"o":0,"l":"%(a)s","i":"e","c":false},'
               '{"o":1,"l":"%(a)s","i":"f","c":false}]' % {"a": a["id"]})
    assert rows == [(0, "VALID", True), (1, "TOO_MANY_INSTALLATIONS", False)]
    assert sql("SELECT status, deactivated_at, activated_at > %s"
               " FROM installations WHERE license_id = %s"
               " AND installation_id = 'e'", was, a["id"]) == [
        ("active", None, True)]


def test_activations_queued_behind_a_stuck_batch_commit_together():
    """While a batch waits for a lock (here its license's seats-in-use row,
    which an open transaction holds: a batch skips a license held
    elsewhere, not that row), the activations arriving meanwhile queue and
    then commit together (their rows share a transaction id); the stuck
    call answers 503 busy after lock_timeout, and no other activation fails
    with it. The others that reach the other validate process are not
    queued there, so up to five rounds are tried; committed one by one,
    every round would fail."""
    held = issue(limits="installations=10")
    others = [issue(limits="installations=10") for _ in range(20)]
    ids = [l["id"] for l in others]
    sql("INSERT INTO license_seats (license_id, active) VALUES (%s, 0)",
        held["id"])
    grouped = False
    for rnd in range(5):
        conn = db()
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("UPDATE license_seats SET active = active"
                    " WHERE license_id = %s", (held["id"],))
        watch = db()
        try:
            with concurrent.futures.ThreadPoolExecutor(21) as ex:
                stuck = ex.submit(activate, held["key"], "h-%d" % rnd)
                wcur = watch.cursor()
                deadline = time.monotonic() + 30
                while not stuck.done():
                    wcur.execute("SELECT count(*) FROM pg_stat_activity"
                                 " WHERE wait_event_type = 'Lock'"
                                 " AND query LIKE '%%licd_activate_batch%%'")
                    if wcur.fetchone()[0] > 0:
                        break
                    assert time.monotonic() < deadline, "no batch waited"
                    time.sleep(0.002)
                rest = [ex.submit(activate, l["key"], "o-%d-%d" % (rnd, i))
                        for i, l in enumerate(others)]
                status, b = stuck.result()
                assert status == 503 and "busy" in b["error"]["message"], b
                for f in rest:
                    status, b = f.result()
                    assert status == 200 and b["code"] == "VALID", b
        finally:
            conn.rollback()
            conn.close()
            watch.close()
        assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                    held["id"]) == 0
        xids = sql1("SELECT count(DISTINCT xmin::text) FROM installations"
                    " WHERE license_id::text = ANY (%s) AND installation_id"
                    " LIKE %s", ids, "o-%d-%%" % rnd)
        if xids < 20:
            grouped = True
            break
    assert grouped, "every activation had a transaction of its own"


def test_a_batch_sent_again_without_waiting_skips_only_the_held_license():
    """After a batch waited lock_timeout, validate sends it again with
    "w": false: the items of a license held elsewhere answer BUSY at once
    (503 to their callers), every other item is written as before."""
    held, free = issue(limits="installations=5"), issue(limits="installations=5")
    gone = "00000000-0000-4000-8000-000000000000"
    holder = db()
    holder.autocommit = False
    holder.cursor().execute("SELECT 1 FROM licenses WHERE id = %s FOR UPDATE",
                            (held["id"],))
    try:
        items = ('[{"o":0,"l":"%(h)s","i":"a","c":true,"w":false},'
                 '{"o":1,"l":"%(f)s","i":"b","c":true,"w":false},'
                 '{"o":2,"l":"%(g)s","i":"c","c":true,"w":false},'
                 '{"o":3,"l":"%(h)s","i":"d","c":true,"w":false}]'
                 % {"h": held["id"], "f": free["id"], "g": gone})
        rows = sql("SELECT ord, code FROM licd_activate_batch(%s::jsonb)"
                   " ORDER BY ord", items)
    finally:
        holder.rollback()
        holder.close()
    assert rows == [(0, "BUSY"), (1, "VALID"), (2, "INVALID_KEY"), (3, "BUSY")]
    assert sql("SELECT license_id::text, installation_id FROM installations"
               " WHERE license_id IN (%s, %s)", held["id"], free["id"]) == [
        (free["id"], "b")]


# --- changes committed while an activation waits for the license's lock ------

class Holder:
    """A transaction that changes a license and holds its row lock until
    a call is seen waiting for it, then commits: the call read the license
    before the change and writes after it."""

    def __init__(self, lic_id, change, *args):
        self.conn = db()
        self.conn.autocommit = False
        self.cur = self.conn.cursor()
        self.cur.execute(change, args)
        assert self.cur.rowcount == 1
        self.lic_id = lic_id

    def commit_once_waited_on(self, fn_name, timeout=30.0):
        watch = db()
        try:
            cur = watch.cursor()
            deadline = time.monotonic() + timeout
            while True:
                cur.execute("SELECT count(*) FROM pg_stat_activity"
                            " WHERE wait_event_type = 'Lock'"
                            " AND query LIKE %s", ("%%" + fn_name + "%%",))
                if cur.fetchone()[0] > 0:
                    break
                assert time.monotonic() < deadline, \
                    "no call waited on the license's lock"
                time.sleep(0.002)
        finally:
            watch.close()
        self.conn.commit()
        self.conn.close()


COLS = "status, revoked_at, domains, features, limits, seat_model, seat_ttl"


def raced(lic, change, args, fn_name, call):
    """call() answered while change commits under it. A call whose wait
    outlasted lock_timeout (503, busy: the machine was too slow to commit
    within it) is tried again, on the license as it was before."""
    before = sql("SELECT %s FROM licenses WHERE id = %%s" % COLS, lic["id"])[0]
    for attempt in range(5):
        h = Holder(lic["id"], change, *args)
        out = []
        t = threading.Thread(target=lambda: out.append(call()))
        t.start()
        try:
            h.commit_once_waited_on(fn_name)
        finally:
            t.join(60)
        status, b = out[0]
        if not (status == 503 and "busy" in b["error"]["message"]):
            return status, b
        sql("UPDATE licenses SET (%s) = (%%s, %%s, %%s, %%s, %%s, %%s, %%s)"
            " WHERE id = %%s" % COLS,
            *[psycopg2.extras.Json(v) if isinstance(v, (dict, list)) else v
              for v in before], lic["id"])
    pytest.fail("every attempt outlasted lock_timeout")


@pytest.mark.parametrize("change,args,code", [
    ("UPDATE licenses SET status = 'revoked', revoked_at = now() WHERE id = %s",
     (), "REVOKED"),
    ("UPDATE licenses SET domains = '[\"other.example\"]' WHERE id = %s",
     (), "DOMAIN_NOT_ALLOWED"),
    ("UPDATE licenses SET features = '[\"reports\"]' WHERE id = %s",
     (), "FEATURE_NOT_LICENSED"),
    ("UPDATE licenses SET limits = '{\"installations\": 1}' WHERE id = %s",
     (), "TOO_MANY_INSTALLATIONS"),
])
def test_activation_applies_a_change_committed_while_it_waits(change, args, code):
    lic = issue(limits="installations=5", features="sso")
    assert validate(lic["key"], "first").json()["code"] == "VALID"
    status, b = raced(lic, change, args + (lic["id"],), "licd_activate_batch",
                      lambda: activate(lic["key"], "second", feature="sso",
                                       domain="a.example"))
    assert status == 200 and b["code"] == code, b
    assert "lease" not in b
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 1


def test_activation_of_a_license_turned_floating_meanwhile_is_retried():
    """A node activation must not take a seat the floating model counts
    differently: the license turned floating is refused (503, nothing
    written) and the retry takes a floating seat."""
    lic = issue(limits="installations=5")
    status, b = raced(lic, "UPDATE licenses SET seat_model = 'floating',"
                      " seat_ttl = 60 WHERE id = %s", (lic["id"],),
                      "licd_activate_batch", lambda: activate(lic["key"], "n"))
    assert status == 503 and b["error"]["code"] == "SERVICE_UNAVAILABLE", b
    assert "changed" in b["error"]["message"]
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 0
    v = validate(lic["key"], "n").json()
    assert v["code"] == "VALID" and "seat_expires_at" in v


def floating(limit=5, borrow=3, **kw):
    plan = make_plan(limits="installations=%d" % limit, extra=(
        "--seat-model", "floating", "--seat-ttl", "60",
        "--max-borrow-days", str(borrow)))
    return issue(plan=plan, **kw)


@pytest.mark.parametrize("path", ["/api/borrow", "/api/validate"])
def test_floating_seat_applies_domains_changed_while_it_waits(path):
    """A borrow (and a floating validate's take) checked the domain on the
    row it read; restrictions committed before its seat write are applied
    under the lock: DOMAIN_NOT_ALLOWED, no seat."""
    lic = floating(domains="*.company.com")
    body = {"license_key": lic["key"], "installation_id": "laptop",
            "domain": "build.company.com"}
    if path == "/api/borrow":
        body["days"] = 2

    def call():
        r = requests.post(URL + path, json=body, timeout=60)
        return r.status_code, r.json()

    status, b = raced(lic, "UPDATE licenses SET domains = '[\"other.example\"]'"
                      " WHERE id = %s", (lic["id"],), "licd_seat", call)
    assert status == 200 and b["code"] == "DOMAIN_NOT_ALLOWED", b
    assert "lease" not in b
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND status = 'active'", lic["id"]) == 0


def test_floating_seat_applies_features_changed_while_it_waits():
    """A floating validate's take checked the requested feature on the row
    it read; the feature removed before its seat write is applied under
    the lock: FEATURE_NOT_LICENSED, no seat, no lease."""
    lic = floating(features="sso,reports")

    def call():
        r = requests.post(URL + "/api/validate", json={
            "license_key": lic["key"], "installation_id": "laptop",
            "feature": "reports"}, timeout=60)
        return r.status_code, r.json()

    status, b = raced(lic, "UPDATE licenses SET features = '[\"sso\"]'"
                      " WHERE id = %s", (lic["id"],), "licd_seat", call)
    assert status == 200 and b["code"] == "FEATURE_NOT_LICENSED", b
    assert "lease" not in b and "seat_expires_at" not in b
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 0


# --- the domain rule in SQL is the contract's, as validate applies it --------

CASES = [
    (None, [("company.com", True), (None, True)]),
    ("company.com", [("company.com", True), ("a.company.com", False),
                     (None, False)]),
    ("*.company.com", [("a.company.com", True), ("a.b.company.com", True),
                       ("company.com", False), ("evilcompany.com", False),
                       ("xcompany.com", False), (None, False)]),
    ("x.org,*.company.com", [("x.org", True), ("y.x.org", False),
                             ("q.company.com", True)]),
]


@pytest.mark.parametrize("domains,hosts", CASES)
def test_sql_domain_rule_agrees_with_validate(domains, hosts):
    lic = issue(limits="installations=100", domains=domains)
    for n, (host, allowed) in enumerate(hosts):
        assert sql1("SELECT licd_domain_allowed(domains, %s) FROM licenses"
                    " WHERE id = %s", host, lic["id"]) is allowed, host
        kw = {} if host is None else {"domain": host}
        code = validate(lic["key"], "h-%d" % n, **kw).json()["code"]
        assert code == ("VALID" if allowed else "DOMAIN_NOT_ALLOWED"), host


def seats(lic):
    return sql1("SELECT coalesce((SELECT active FROM license_seats"
                " WHERE license_id = %s), 0)", lic["id"])


def test_seats_in_use_follow_every_writer_of_installations(clock):
    """license_seats, which an activation reads instead of counting, moves
    with every writer: activation, reactivation, deactivation, a reset, the
    lifecycle's stale cull, floating takes, check-ins and lapses, and an
    operator's own insert, update, move to another license and delete; it
    goes with a deleted license; and each step's limit is applied from it
    (a freed seat is taken again, a full license refuses)."""
    a = issue(limits="installations=3")
    b = issue(limits="installations=3")
    ids = [a["id"], b["id"]]

    def agree(n_a, n_b):
        assert seats_disagree(ids) == []
        assert (seats(a), seats(b)) == (n_a, n_b)

    for iid in ("x", "y", "z"):
        assert activate(a["key"], iid)[1]["code"] == "VALID"
    agree(3, 0)
    assert activate(a["key"], "w")[1]["code"] == "TOO_MANY_INSTALLATIONS"
    assert activate(a["key"], "x")[1]["code"] == "VALID"     # kept: no move
    agree(3, 0)
    r = requests.post(URL + "/api/deactivate", json={
        "license_key": a["key"], "installation_id": "y"}, timeout=30)
    assert r.status_code == 200, r.text
    agree(2, 0)
    assert activate(a["key"], "w")[1]["code"] == "VALID"     # y's seat
    assert activate(a["key"], "y")[1]["code"] == "TOO_MANY_INSTALLATIONS"
    agree(3, 0)
    # the lifecycle's cull of installations silent for too long
    sql("UPDATE installations SET last_seen = now() - interval '20 years'"
        " WHERE license_id = %s AND installation_id = 'z'", a["id"])
    assert sql1("SELECT licd_lc_stale_installations(%s)",
                int(19 * 365.25 * 86400)) >= 1
    agree(2, 0)
    assert activate(a["key"], "y")[1]["code"] == "VALID"     # reactivated
    agree(3, 0)
    # an operator's writes: a move to another license, an insert, a delete
    sql("UPDATE installations SET license_id = %s WHERE license_id = %s"
        " AND installation_id = 'y'", b["id"], a["id"])
    agree(2, 1)
    sql("INSERT INTO installations (license_id, installation_id) VALUES"
        " (%s, 'p'), (%s, 'q'), (%s, 'r')", b["id"], b["id"], a["id"])
    agree(3, 3)
    assert activate(b["key"], "s")[1]["code"] == "TOO_MANY_INSTALLATIONS"
    sql("DELETE FROM installations WHERE license_id = %s AND"
        " installation_id IN ('p', 'q')", b["id"])
    agree(3, 1)
    assert activate(b["key"], "s")[1]["code"] == "VALID"
    agree(3, 2)
    # a reset frees every seat at once
    licctl("license", "reset-activations", a["id"], "--reason", "test")
    agree(0, 2)
    # floating: takes, a check-in and a lapse move the same rows
    sql("UPDATE licenses SET seat_model = 'floating', seat_ttl = 60"
        " WHERE id = %s", a["id"])
    for iid in ("f1", "f2", "f3"):
        assert validate(a["key"], iid).json()["code"] == "VALID"
    agree(3, 2)
    r = api("/api/checkin", {"license_key": a["key"], "installation_id": "f1"})
    assert r.status_code == 200, r.text
    agree(2, 2)
    clock(120)                          # f2 and f3 lapse; f4 takes a seat
    assert validate(a["key"], "f4").json()["code"] == "VALID"
    assert seats_disagree(ids) == []
    # a deleted license's row goes with it
    sql("DELETE FROM licenses WHERE id = %s", b["id"])
    assert sql1("SELECT count(*) FROM license_seats WHERE license_id = %s",
                b["id"]) == 0


def test_seats_in_use_stay_exact_under_concurrent_activations_and_deactivations():
    """Activations and deactivations of one license at once, many rounds:
    the license never holds more than its limit, and license_seats ends
    equal to its active installations (the deactivations take no lock of
    the license, their counts are added in the writers' transactions)."""
    lic = issue(limits="installations=4")
    iids = ["c-%d" % i for i in range(12)]

    def deactivate(iid):
        r = requests.post(URL + "/api/deactivate", json={
            "license_key": lic["key"], "installation_id": iid}, timeout=60)
        return r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        for rnd in range(6):
            calls = [ex.submit(activate, lic["key"], iid) for iid in iids]
            calls += [ex.submit(deactivate, iids[(rnd * 5 + k) % 12])
                      for k in range(5)]
            for f in calls:
                status, body = f.result()
                assert status == 200, body
            active = sql1("SELECT count(*) FROM installations WHERE"
                          " license_id = %s AND status = 'active'", lic["id"])
            assert active <= 4
            assert seats_disagree([lic["id"]]) == [], rnd
    # the last round's seats taken again to the limit, no further
    codes = collections.Counter(activate(lic["key"], iid)[1]["code"]
                                for iid in iids)
    assert codes["VALID"] == 4 and codes["TOO_MANY_INSTALLATIONS"] == 8, codes
    assert seats(lic) == 4


def test_seats_recount_repairs_the_rows():
    """licd_seats_recount (run by licctl migrate before it first creates
    the triggers) sets
    every license's row to its active installations, whatever it held."""
    a = issue(limits="installations=5")
    b = issue(limits="installations=5")
    for iid in ("x", "y"):
        assert activate(a["key"], iid)[1]["code"] == "VALID"
    sql("UPDATE license_seats SET active = 5 WHERE license_id = %s", a["id"])
    sql("INSERT INTO license_seats (license_id, active) VALUES (%s, 3)",
        b["id"])
    assert activate(a["key"], "z")[1]["code"] == "TOO_MANY_INSTALLATIONS"
    sql("SELECT licd_seats_recount()")
    assert seats_disagree([a["id"], b["id"]]) == []
    assert (seats(a), seats(b)) == (2, 0)
    assert activate(a["key"], "z")[1]["code"] == "VALID"
