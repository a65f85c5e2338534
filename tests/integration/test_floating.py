"""Floating seats (sql/functions/50_floating.sql): seats held as short
leases, renewed by validate and heartbeat, released by check-in, borrowed
for days, overdraft, and the daily peak of concurrent seats. Time moves
with the SQL clock
(licd_clock.offset_s), never with sleeps: a seat lapses when the clock
passes its seat_expires_at, with no lifecycle job running."""
import calendar
import concurrent.futures
import datetime
import json
import random
import select
import threading
import time

import psycopg2.errors
import pytest
import requests

from util import (URL, admin, admin_token, api, db, error_code, floating_unseated, heartbeat,
                  issue, json_error, licctl, licctl_json, make_plan, set_clock, sql, sql1,
                  unique, validate)

DAY = 86400


def clock_to(ts):
    """Moves the SQL clock so that it reads epoch second ts now."""
    set_clock(ts - time.time())


def sql_now():
    return float(sql1("SELECT extract(epoch FROM licd_clock_now())"))


def epoch(ts):
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def floating(limit=10, ttl=60, borrow=0, overdraft=0, **kw):
    plan = make_plan(limits="installations=%d" % limit, extra=(
        "--seat-model", "floating", "--seat-ttl", str(ttl),
        "--max-borrow-days", str(borrow), "--overdraft", str(overdraft)))
    return issue(plan=plan, **kw)


def checkin(key, iid="inst-1"):
    return api("/api/checkin", {"license_key": key, "installation_id": iid})


def borrow(key, iid="inst-1", days=1, **kw):
    body = {"license_key": key, "installation_id": iid, "days": days}
    body.update(kw)
    return api("/api/borrow", body)


def live(lic_id):
    return sql1("SELECT count(*) FROM installations WHERE license_id = %s AND"
                " status = 'active' AND seat_expires_at > licd_clock_now()",
                lic_id)


# --- configuration ----------------------------------------------------------

def test_plan_and_license_seat_settings():
    plan = make_plan(limits="installations=4", extra=(
        "--seat-model", "floating", "--seat-ttl", "120",
        "--max-borrow-days", "7", "--overdraft", "2"))
    listed = [p for p in licctl_json("plan", "list") if p["code"] == plan][0]
    assert (listed["seat_model"], listed["seat_ttl"], listed["max_borrow_days"],
            listed["overdraft"]) == ("floating", 120, 7, 2)
    assert "seats=floating ttl=120 borrow=7d overdraft=2" in \
        licctl("plan", "list").stdout
    lic = issue(plan=plan)
    assert (lic["seat_model"], lic["seat_ttl"], lic["max_borrow_days"],
            lic["overdraft"]) == ("floating", 120, 7, 2)
    # A per-license override at issue, and later.
    email = unique("cust") + "@example.com"
    licctl("customer", "create", "--email", email)
    own = licctl_json("license", "issue", "--customer", email, "--plan", plan,
                      "--days", "30", "--seat-ttl", "300", "--overdraft", "0")
    assert (own["seat_model"], own["seat_ttl"], own["overdraft"]) == \
        ("floating", 300, 0)
    upd = licctl_json("license", "update", own["id"], "--seat-model", "node")
    assert upd["seat_model"] == "node" and upd["seat_ttl"] == 300
    # The plan's defaults; a plan change applies to licenses issued later.
    plain = issue()
    assert (plain["seat_model"], plain["seat_ttl"], plain["max_borrow_days"],
            plain["overdraft"]) == ("node", 900, 0, 0)
    licctl("plan", "set", plan, "--seat-ttl", "600")
    assert issue(plan=plan)["seat_ttl"] == 600
    assert sql1("SELECT seat_ttl FROM licenses WHERE id = %s", lic["id"]) == 120
    # Bad values are refused with the option's name, and change nothing.
    for args, word in ((("--seat-model", "pool"), "--seat-model"),
                       (("--seat-ttl", "10"), "--seat-ttl"),
                       (("--seat-ttl", "9e9"), "--seat-ttl"),
                       (("--max-borrow-days", "-1"), "--max-borrow-days"),
                       (("--overdraft", "x"), "--overdraft")):
        p = licctl("license", "update", lic["id"], *args, check=False)
        assert p.returncode == 2 and word in p.stderr, (args, p.returncode, p.stderr)
        p = licctl("plan", "set", plan, *args, check=False)
        assert p.returncode == 2 and word in p.stderr, (args, p.returncode, p.stderr)
    assert sql1("SELECT seat_ttl FROM licenses WHERE id = %s", lic["id"]) == 120
    p = licctl("license", "update", lic["id"], check=False)
    assert p.returncode == 2 and "--seat-model" in p.stderr, (p.returncode, p.stderr)


def test_bad_seat_option_values_exit_2():
    """The exit status of the bad values the test above refuses."""
    lic = issue()
    for args in (("--seat-model", "pool"), ("--seat-ttl", "10"),
                 ("--max-borrow-days", "-1"), ("--overdraft", "x")):
        p = licctl("license", "update", lic["id"], *args, check=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)


# --- seats as leases --------------------------------------------------------

def test_validate_takes_and_answers_a_seat_lease():
    lic = floating(limit=2, ttl=90)
    r = validate(lic["key"], "a").json()
    assert r["code"] == "VALID" and r["installation"]["status"] == "active"
    now = sql_now()
    exp = epoch(r["seat_expires_at"])
    assert now + 85 <= exp <= now + 91
    assert r["next_heartbeat_in"] == 30
    assert r["overdraft"] is False and r["borrowed_until"] is None
    # The lease ends with the seat, not after lease_ttl.
    assert r["lease_expires_at"] == r["seat_expires_at"]
    # A repeat within the renewal window answers from the lookup: same seat.
    r2 = validate(lic["key"], "a").json()
    assert r2["seat_expires_at"] == r["seat_expires_at"]
    h = heartbeat(lic["key"], "a").json()
    assert h["code"] == "VALID" and h["seat_expires_at"] == r["seat_expires_at"]
    assert h["next_heartbeat_in"] == 30
    assert validate(lic["key"], "b").json()["code"] == "VALID"
    r3 = validate(lic["key"], "c").json()
    assert r3["code"] == "TOO_MANY_INSTALLATIONS" and "lease" not in r3
    assert "seat_expires_at" not in r3
    assert live(lic["id"]) == 2


def test_renewal_extends_the_seat(clock):
    lic = floating(limit=1, ttl=120)
    first = epoch(validate(lic["key"], "a").json()["seat_expires_at"])
    # A third of the ttl later a heartbeat renews it (more than a quarter
    # of the ttl since the last renewal).
    clock(40)
    h = heartbeat(lic["key"], "a").json()
    assert h["code"] == "VALID"
    assert epoch(h["seat_expires_at"]) >= first + 39
    assert epoch(h["lease_expires_at"]) == epoch(h["seat_expires_at"])
    clock(80)
    v = validate(lic["key"], "a").json()
    assert v["code"] == "VALID" and epoch(v["seat_expires_at"]) >= first + 79
    # Past the first expiry the seat is still held: nobody else gets it.
    clock(130)
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"


def test_renewals_queued_behind_a_stuck_batch_commit_together(clock):
    """While a seat batch waits for a license held elsewhere, the renewals
    arriving meanwhile queue and then commit together (their rows share a
    transaction id), each answered with its renewed seat; the held
    license's call answers 503 busy after lock_timeout, and no other
    renewal fails with it. A round in which the others happened to arrive
    one by one proves nothing, so up to five are tried; committed one by
    one, every round would fail."""
    ttl = 600
    held = floating(limit=2, ttl=ttl)
    others = [floating(limit=2, ttl=ttl) for _ in range(20)]
    for lic in [held] + others:
        assert validate(lic["key"], "a").json()["code"] == "VALID"
    ids = [l["id"] for l in others]
    grouped = False
    for rnd in range(5):
        # every seat due again: a quarter of the ttl since its last renewal
        clock((rnd + 1) * (ttl // 4 + 2))
        before = {l["id"]: sql1("SELECT extract(epoch FROM seat_expires_at)"
                                "::bigint FROM installations WHERE "
                                "license_id = %s", l["id"]) for l in others}
        conn = db()
        conn.autocommit = False
        conn.cursor().execute("SELECT 1 FROM licenses WHERE id = %s "
                              "FOR UPDATE", (held["id"],))
        watch = db()
        try:
            with concurrent.futures.ThreadPoolExecutor(21) as ex:
                stuck = ex.submit(validate, held["key"], "a")
                wcur = watch.cursor()
                deadline = time.monotonic() + 30
                while not stuck.done():
                    wcur.execute("SELECT count(*) FROM pg_stat_activity"
                                 " WHERE wait_event_type = 'Lock'"
                                 " AND query LIKE '%%licd_seat_batch%%'")
                    if wcur.fetchone()[0] > 0:
                        break
                    assert time.monotonic() < deadline, "no batch waited"
                    time.sleep(0.002)
                rest = [ex.submit(validate, l["key"], "a") for l in others]
                r = stuck.result()
                assert r.status_code == 503 and "busy" in \
                    r.json()["error"]["message"], r.text
                for l, f in zip(others, rest):
                    b = f.result().json()
                    assert b["code"] == "VALID", b
                    assert epoch(b["seat_expires_at"]) > before[l["id"]], b
        finally:
            conn.rollback()
            conn.close()
            watch.close()
        xids = sql1("SELECT count(DISTINCT xmin::text) FROM installations"
                    " WHERE license_id::text = ANY (%s)", ids)
        if xids < 20:
            grouped = True
            break
    assert grouped, "every renewal had a transaction of its own"


def test_a_seat_batch_sent_again_without_waiting_skips_only_the_held_license():
    """After a seat batch waited lock_timeout, it is sent again with "w":
    false: the items of a license held elsewhere answer BUSY at once (503
    to their callers), every other item is licd_seat's answer alone."""
    held, free = floating(limit=5), floating(limit=5)
    gone = "00000000-0000-4000-8000-000000000000"
    holder = db()
    holder.autocommit = False
    holder.cursor().execute("SELECT 1 FROM licenses WHERE id = %s FOR UPDATE",
                            (held["id"],))
    try:
        items = ('[{"o":0,"l":"%(h)s","i":"a","s":"take","w":false},'
                 '{"o":1,"l":"%(f)s","i":"b","s":"take","w":false},'
                 '{"o":2,"l":"%(g)s","i":"c","s":"take","w":false},'
                 '{"o":3,"l":"%(f)s","i":"d","s":"renew","w":false},'
                 '{"o":4,"l":"%(h)s","i":"e","s":"renew","w":false}]'
                 % {"h": held["id"], "f": free["id"], "g": gone})
        rows = sql("SELECT ord, code, seat_expires IS NOT NULL FROM "
                   "licd_seat_batch(%s::jsonb) ORDER BY ord", items)
    finally:
        holder.rollback()
        holder.close()
    assert rows == [(0, "BUSY", False), (1, "VALID", True),
                    (2, "INVALID_KEY", False),
                    (3, "INSTALLATION_NOT_ACTIVE", False), (4, "BUSY", False)]
    assert live(held["id"]) == 0 and live(free["id"]) == 1


def test_a_seat_batch_answers_each_item_as_licd_seat_alone(clock):
    """One licd_seat_batch of renewals (one statement for the live seats)
    and everything else (licd_seat's, item by item): each item's answer
    is the one licd_seat gives it alone, and the renewals write what
    licd_seat writes."""
    one, revoked = floating(limit=2, ttl=600), floating(limit=2, ttl=600)
    for lic, iid in ((one, "a"), (one, "b"), (revoked, "c")):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    r = admin("/api/revoke", {"license_id": revoked["id"], "reason": "x"})
    assert r.status_code == 200, r.text
    clock(200)
    before = sql1("SELECT extract(epoch FROM seat_expires_at)::bigint FROM "
                  "installations WHERE license_id = %s AND "
                  "installation_id = 'a'", one["id"])
    items = [
        {"o": 0, "l": one["id"], "i": "a", "s": "take", "v": "9.9",
         "m": '{"k": 1}', "d": "a.example"},
        {"o": 1, "l": one["id"], "i": "b", "s": "renew"},
        {"o": 2, "l": one["id"], "i": "b", "s": "take"},
        {"o": 3, "l": one["id"], "i": "n", "s": "take"},
        {"o": 4, "l": revoked["id"], "i": "c", "s": "renew"},
        {"o": 5, "l": one["id"], "i": "a2", "s": "take", "f": "nope"},
        {"o": 6, "l": one["id"], "i": "x", "s": "renew"},
    ]
    rows = sql("SELECT ord, code, seat_expires FROM licd_seat_batch(%s::jsonb)"
               " ORDER BY ord", json.dumps(items))
    now = sql_now()
    assert [r[:2] for r in rows] == [
        (0, "VALID"), (1, "VALID"), (2, "VALID"),
        (3, "TOO_MANY_INSTALLATIONS"), (4, "REVOKED"),
        (5, "FEATURE_NOT_LICENSED"), (6, "INSTALLATION_NOT_ACTIVE")], rows
    for r in rows[:3]:
        assert abs(r[2] - (now + 600)) <= 2 and r[2] > before + 150, rows
    assert [r[2] for r in rows[3:]] == [None] * 4
    assert sql("SELECT installation_id, version, metadata, domain, "
               "extract(epoch FROM last_seen)::bigint >= %s - 2 FROM "
               "installations WHERE license_id = %s ORDER BY 1",
               int(now), one["id"]) == [
        ("a", "9.9", {"k": 1}, "a.example", True),
        ("b", None, None, None, True)]
    assert live(one["id"]) == 2


def test_a_seat_renewal_is_a_heap_only_update(clock):
    """A renewal moves seat_expires_at, last_seen and nothing indexed
    (installations_seated's predicate reads seat_since, which only a take
    sets, 034; the list's index seen_hour, 033), so PostgreSQL writes it as
    a HOT update: no index entry for the write every floating installation
    makes each time it renews its seat. No row may hold a seat expiry
    without seat_since, which the index relies on."""
    lic = floating(limit=2, ttl=600)
    # Both writes in one of installation "a"'s hour-long spans (seen_hour,
    # 033: each id's start at its own minute and second), read from a take
    # on another license: a renewal crossing into the next span moves the
    # row in the installation list's index, the one write an hour that is
    # not HOT.
    probe = floating(limit=2, ttl=600)
    assert validate(probe["key"], "a").json()["code"] == "VALID"
    start = sql1("SELECT extract(epoch FROM seen_hour + interval '1 hour'"
                 " - now())::bigint FROM installations WHERE license_id = %s",
                 probe["id"])
    clock(start + 60)
    assert validate(lic["key"], "a").json()["code"] == "VALID"
    clock(start + 260)
    before = sql1("SELECT extract(epoch FROM seat_expires_at)::bigint FROM"
                  " installations WHERE license_id = %s", lic["id"])
    conn = db()
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ord, code FROM licd_seat_batch(%s::jsonb)", (json.dumps(
                [{"o": 0, "l": lic["id"], "i": "a", "s": "renew"}]),))
            assert cur.fetchall() == [(0, "VALID")]
            cur.execute("SELECT pg_stat_get_xact_tuples_updated(c.oid),"
                        " pg_stat_get_xact_tuples_hot_updated(c.oid)"
                        " FROM pg_class c WHERE c.oid = 'installations'::regclass")
            assert cur.fetchone() == (1, 1)
        conn.commit()
    finally:
        conn.close()
    assert sql("SELECT extract(epoch FROM seat_expires_at)::bigint > %s,"
               " seat_since = first_seen FROM installations WHERE license_id = %s",
               before + 150, lic["id"]) == [(True, True)]
    with pytest.raises(psycopg2.errors.CheckViolation):
        sql("UPDATE installations SET seat_since = NULL WHERE license_id = %s", lic["id"])
    assert checkin(lic["key"], "a").json()["released"] is True
    assert live(lic["id"]) == 0


def test_a_seat_batch_notifies_every_seat_change_but_a_due_renewal(clock):
    """licd_seat_batch renews the seats due at its clock without the seat
    trigger (licd.seat_renewal): they notify nothing, as
    licd_cache_seat_changed would have decided. A seat renewed again
    before it is due (a smaller move) notifies, and so does any other
    seat change later in the same transaction."""
    lic = floating(limit=3, ttl=600)
    for iid in ("a", "b"):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    clock(200)                      # 400 of 600 s left: due
    listener = db()
    try:
        with listener.cursor() as cur:
            cur.execute("LISTEN licd_license; LISTEN licd_test_marker")

        def notified(run):
            """The license's notifications of what run commits, up to a
            marker notified after it (notifications arrive in commit
            order)."""
            run()
            sql("NOTIFY licd_test_marker")
            seen = []
            deadline = time.time() + 10
            while True:
                listener.poll()
                while listener.notifies:
                    n = listener.notifies.pop(0)
                    if n.channel == "licd_test_marker":
                        return seen
                    if n.payload == lic["id"]:
                        seen.append(n.payload)
                assert time.time() < deadline, "no marker notification"
                select.select([listener], [], [], 0.5)

        def batch(iid):
            rows = sql("SELECT ord, code, seat_expires FROM licd_seat_batch("
                       "%s::jsonb)", json.dumps(
                           [{"o": 0, "l": lic["id"], "i": iid, "s": "take"}]))
            assert [r[:2] for r in rows] == [(0, "VALID")], rows
            return rows[0][2]

        expires = lambda: sql1("SELECT extract(epoch FROM seat_expires_at)"
                               "::bigint FROM installations WHERE license_id"
                               " = %s AND installation_id = 'a'", lic["id"])
        before = expires()
        assert notified(lambda: batch("a")) == []
        renewed = expires()
        assert renewed > before + 150
        clock(205)                  # renewed again, five seconds later
        assert notified(lambda: batch("a")) == [lic["id"]]
        assert expires() > renewed

        def batch_then_move_back():
            conn = db()
            try:
                conn.autocommit = False
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM licd_seat_batch(%s::jsonb)",
                                (json.dumps([{"o": 0, "l": lic["id"], "i": "b",
                                              "s": "renew"}]),))
                    cur.execute("UPDATE installations SET seat_expires_at ="
                                " seat_expires_at - interval '1 s' WHERE"
                                " license_id = %s AND installation_id = 'b'",
                                (lic["id"],))
                conn.commit()
            finally:
                conn.close()
        assert notified(batch_then_move_back) == [lic["id"]]
    finally:
        listener.close()


def test_lapsed_seat_goes_to_a_new_node_without_the_lifecycle_job(clock):
    lic = floating(limit=1, ttl=60)
    a = validate(lic["key"], "a").json()
    assert a["code"] == "VALID"
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"
    clock(epoch(a["seat_expires_at"]) - time.time() + 1)   # a's lease lapses
    assert live(lic["id"]) == 0
    b = validate(lic["key"], "b").json()
    assert b["code"] == "VALID" and b["installation"]["status"] == "active"
    # The lapsed node's renewal must not bring its seat back.
    h = heartbeat(lic["key"], "a").json()
    assert h["code"] == "INSTALLATION_NOT_ACTIVE" and "lease" not in h
    assert h["installation"]["status"] == "inactive"
    assert validate(lic["key"], "a").json()["code"] == "TOO_MANY_INSTALLATIONS"
    assert live(lic["id"]) == 1
    # A lapsed seat nobody took is taken again by its own node's validate.
    clock(epoch(b["seat_expires_at"]) - time.time() + 1)
    assert heartbeat(lic["key"], "b").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    again = validate(lic["key"], "b").json()
    assert again["code"] == "VALID"
    assert epoch(again["seat_expires_at"]) > epoch(b["seat_expires_at"])


def test_200_concurrent_activations_give_exactly_the_limit():
    for overdraft in (0, 3):
        lic = floating(limit=10, ttl=600, overdraft=overdraft)

        def call(i):
            s = requests.Session()
            r = s.post(URL + "/api/validate", timeout=60, json={
                "license_key": lic["key"], "installation_id": "node-%d" % i})
            assert r.status_code == 200, r.text
            return r.json()

        with concurrent.futures.ThreadPoolExecutor(50) as ex:
            res = list(ex.map(call, range(200)))
        valid = [r for r in res if r["code"] == "VALID"]
        refused = [r for r in res if r["code"] == "TOO_MANY_INSTALLATIONS"]
        assert (len(valid), len(refused)) == (10 + overdraft, 190 - overdraft)
        assert sum(r["overdraft"] for r in valid) == overdraft
        assert live(lic["id"]) == 10 + overdraft
        assert sql1("SELECT count(*) FROM seat_overdrafts WHERE license_id = %s",
                    lic["id"]) == overdraft
        assert sql1("SELECT peak FROM seat_peaks WHERE license_id = %s",
                    lic["id"]) == 10 + overdraft


def test_lapsing_and_renewing_at_once_never_exceed_the_limit(clock):
    """Five holders whose seats lapse while they renew at scattered moments
    around the lapse, and twenty newcomers asking all along: at no moment
    do more than five clients hold a seat the server granted them, and the
    database never counts more than five live seats."""
    limit, ttl = 5, 60
    lic = floating(limit=limit, ttl=ttl)
    holders = ["h%d" % i for i in range(limit)]
    for h in holders:
        assert validate(lic["key"], h).json()["code"] == "VALID"
    lapse = float(sql1("SELECT extract(epoch FROM max(seat_expires_at)) FROM"
                       " installations WHERE license_id = %s", lic["id"]))
    clock_to(lapse - 1.5)               # every seat lapses 1.5 s from now
    held = {}                           # iid -> latest seat_expires_at
    lock = threading.Lock()
    stop = time.time() + 4
    over = []

    def record(iid, r):
        if r.get("code") == "VALID":
            with lock:
                held[iid] = max(held.get(iid, 0), epoch(r["seat_expires_at"]))

    def holder(iid):
        s = requests.Session()
        time.sleep(random.uniform(0, 3))        # renew somewhere around the lapse
        while time.time() < stop:
            r = s.post(URL + "/api/heartbeat", timeout=60, json={
                "license_key": lic["key"], "installation_id": iid}).json()
            if r["code"] == "INSTALLATION_NOT_ACTIVE":
                r = s.post(URL + "/api/validate", timeout=60, json={
                    "license_key": lic["key"], "installation_id": iid}).json()
            record(iid, r)

    def newcomer(iid):
        s = requests.Session()
        while time.time() < stop:
            record(iid, s.post(URL + "/api/validate", timeout=60, json={
                "license_key": lic["key"], "installation_id": iid}).json())

    def sampler():
        while time.time() < stop:
            n = live(lic["id"])
            if n > limit:
                over.append(n)

    with concurrent.futures.ThreadPoolExecutor(27) as ex:
        fs = [ex.submit(holder, h) for h in holders]
        fs += [ex.submit(newcomer, "n%d" % i) for i in range(20)]
        fs += [ex.submit(sampler) for _ in range(2)]
        for f in fs:
            f.result()
    assert over == []
    end = sql_now()
    holding = [i for i, exp in held.items() if exp > end]
    assert len(holding) <= limit, held
    # Some newcomer got a seat (the holders' lapse was real) and the seats
    # are still all in use.
    assert any(i.startswith("n") for i in holding) or \
        len([h for h in holders if held.get(h, 0) > lapse]) == limit
    assert live(lic["id"]) == len(holding) == limit


# --- check-in ---------------------------------------------------------------

def test_checkin_frees_the_seat_at_once():
    lic = floating(limit=1)
    assert validate(lic["key"], "a").json()["code"] == "VALID"
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"
    r = checkin(lic["key"], "a")
    assert r.status_code == 200 and r.json() == {"checked_in": True,
                                                 "released": True}
    assert live(lic["id"]) == 0
    assert validate(lic["key"], "b").json()["code"] == "VALID"
    # Idempotent: again, or for an installation that never had a seat.
    for iid in ("a", "never"):
        r = checkin(lic["key"], iid)
        assert r.status_code == 200 and r.json() == {"checked_in": True,
                                                     "released": False}
    assert heartbeat(lic["key"], "a").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    assert live(lic["id"]) == 1


def test_checkin_and_borrow_refuse_bad_requests():
    lic = floating(limit=1, borrow=2)
    node = issue()
    for path in ("/api/checkin", "/api/borrow"):
        body = {"license_key": lic["key"], "installation_id": "a", "days": 1}
        r = api(path, {k: v for k, v in body.items() if k != "license_key"})
        assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
        r = api(path, {k: v for k, v in body.items() if k != "installation_id"})
        assert r.status_code == 400 and error_code(r) == "MISSING_FIELD"
        r = api(path, dict(body, installation_id="a b"))
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD"
        r = api(path, dict(body, installation_id="x" * 129))
        assert r.status_code == 400 and error_code(r) == "INVALID_FIELD"
        r = api(path, dict(body, license_key="garbage"))
        assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
        r = api(path, dict(body, license_key=lic["key"][:-4] + "AAAA"))
        assert r.status_code == 403 and error_code(r) == "INVALID_KEY"
        r = api(path, dict(body, license_key=node["key"]))
        assert r.status_code == 409 and error_code(r) == "NOT_FLOATING"
        r = api(path, data="{", ctype="application/json")
        assert r.status_code == 400 and error_code(r) == "MALFORMED_JSON"
        r = api(path, data="{}", ctype="text/plain")
        assert r.status_code == 415
        r = api(path, method="GET")
        assert r.status_code == 405 and error_code(r) == "METHOD_NOT_ALLOWED"
    for days in (0, -1, 1.5, "2", True, None, 3651, 2 ** 63):
        r = borrow(lic["key"], "a", days=days)
        assert r.status_code == 400 and error_code(r) in (
            "INVALID_FIELD", "MISSING_FIELD"), (days, r.text)
    assert live(lic["id"]) == 0
    # The node-locked license's seats were not touched.
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                node["id"]) == 0


# --- borrowing --------------------------------------------------------------

def test_borrow_reads_the_domain_as_validate_does():
    """One trailing dot and case are ignored and the host name is stored
    normalised; a name that is not a host name is refused."""
    lic = floating(limit=2, borrow=2, domains="*.company.com")
    r = borrow(lic["key"], "a", domain="Build.Company.COM.")
    assert r.status_code == 200 and r.json()["code"] == "VALID", r.text
    assert sql1("SELECT domain FROM installations WHERE license_id = %s AND "
                "installation_id = 'a'", lic["id"]) == "build.company.com"
    for bad in ("a..company.com", ".company.com", "x" * 64 + ".company.com",
                "."):
        json_error(borrow(lic["key"], "b", domain=bad), 400, "INVALID_FIELD")
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                lic["id"]) == 1


def test_borrow_holds_across_ttls_and_is_refused_past_the_maximum(clock):
    lic = floating(limit=1, ttl=60, borrow=3)
    r = borrow(lic["key"], "laptop", days=4)
    assert r.status_code == 403 and error_code(r) == "BORROW_LIMIT_EXCEEDED"
    assert r.json()["max_borrow_days"] == 3
    assert live(lic["id"]) == 0
    r = borrow(lic["key"], "laptop", days=3)
    assert r.status_code == 200, r.text
    b = r.json()
    now = sql_now()
    assert b["code"] == "VALID" and b["valid"] is True
    assert abs(epoch(b["borrowed_until"]) - (now + 3 * DAY)) <= 2
    assert b["seat_expires_at"] == b["borrowed_until"] == b["lease_expires_at"]
    assert b["installation"]["status"] == "active"
    # Across many TTLs, with no call from the laptop, the seat stays taken.
    clock(2 * DAY)
    assert validate(lic["key"], "desk").json()["code"] == "TOO_MANY_INSTALLATIONS"
    # Its validate renews nothing away: the borrow's end stays.
    v = validate(lic["key"], "laptop").json()
    assert v["code"] == "VALID" and v["borrowed_until"] == b["borrowed_until"]
    assert v["seat_expires_at"] == b["borrowed_until"]
    # Check-in returns it early.
    assert checkin(lic["key"], "laptop").json()["released"] is True
    assert validate(lic["key"], "desk").json()["code"] == "VALID"
    assert borrow(lic["key"], "laptop", days=1).json()["code"] == \
        "TOO_MANY_INSTALLATIONS"
    # A borrow ends by itself.
    assert checkin(lic["key"], "desk").json()["released"] is True
    assert borrow(lic["key"], "laptop", days=1).json()["code"] == "VALID"
    clock(3 * DAY + 60)
    assert validate(lic["key"], "desk").json()["code"] == "VALID"


def test_borrow_disabled_and_license_state():
    lic = floating(limit=1, borrow=0)
    r = borrow(lic["key"], "laptop", days=1)
    assert r.status_code == 403 and error_code(r) == "BORROW_LIMIT_EXCEEDED"
    assert r.json()["max_borrow_days"] == 0
    lic = floating(limit=1, borrow=5, domains="example.com")
    r = borrow(lic["key"], "laptop", days=1).json()
    assert r["code"] == "DOMAIN_NOT_ALLOWED" and "lease" not in r
    assert borrow(lic["key"], "laptop", days=1,
                  domain="example.com").json()["code"] == "VALID"
    assert admin("/api/revoke", {"license_id": lic["id"]}).status_code == 200
    r = borrow(lic["key"], "other", days=1).json()
    assert r["code"] == "REVOKED" and "lease" not in r
    # A revoked license may still return its seats.
    assert checkin(lic["key"], "laptop").json()["released"] is True


def test_offline_lease_on_floating_license_borrows():
    # The operator's lease names no domain: the license's restrictions,
    # which a borrow applies, do not apply to it.
    lic = floating(limit=1, borrow=10, domains="*.company.com")
    out = licctl_json("lease", "offline", "--license", lic["id"],
                      "--installation", "airgap", "--days", "5")
    row = sql("SELECT status, borrowed_until IS NOT NULL, seat_expires_at > "
              "licd_clock_now() + interval '4 days' FROM installations WHERE "
              "license_id = %s", lic["id"])
    assert row == [("active", True, True)] and out["lease"]
    p = licctl("lease", "offline", "--license", lic["id"], "--installation",
               "other", "--days", "11", check=False)
    assert p.returncode == 1 and "BORROW_LIMIT_EXCEEDED" in p.stderr, p.returncode


def test_admin_offline_lease_on_floating_license_borrows():
    """The admin API's lease holds a floating seat as licctl's does: the
    seat counts against the limit, and days past max_borrow_days are
    refused; the license's domain restrictions do not apply to it."""
    lic = floating(limit=1, borrow=10, domains="*.company.com")
    path = "/api/admin/licenses/%s/lease" % lic["id"]
    r = admin(path, {"installation_id": "airgap", "days": 5})
    assert r.status_code == 200, r.text
    row = sql("SELECT status, borrowed_until IS NOT NULL, seat_expires_at > "
              "licd_clock_now() + interval '4 days' FROM installations WHERE "
              "license_id = %s", lic["id"])
    assert row == [("active", True, True)]
    assert validate(lic["key"], "other", domain="x.company.com").json()["code"] \
        == "TOO_MANY_INSTALLATIONS"
    r = admin(path, {"installation_id": "airgap", "days": 11})
    json_error(r, 409, "CONFLICT")
    assert "BORROW_LIMIT_EXCEEDED" in r.json()["error"]["message"]
    none = floating(limit=1)
    r = admin("/api/admin/licenses/%s/lease" % none["id"],
              {"installation_id": "airgap", "days": 1})
    json_error(r, 409, "CONFLICT")
    assert sql1("SELECT count(*) FROM installations WHERE license_id = %s",
                none["id"]) == 0


# --- overdraft --------------------------------------------------------------

def test_overdraft_granted_flagged_and_recorded():
    lic = floating(limit=2, overdraft=1)
    flags = [validate(lic["key"], i).json().get("overdraft") for i in "abc"]
    assert flags == [False, False, True]
    r = validate(lic["key"], "d").json()
    assert r["code"] == "TOO_MANY_INSTALLATIONS"
    rows = sql("SELECT installation_id, seats_in_use, seat_limit FROM "
               "seat_overdrafts WHERE license_id = %s", lic["id"])
    assert rows == [("c", 3, 2)]
    # The overdraft seat stays flagged on its renewals.
    assert heartbeat(lic["key"], "c").json()["overdraft"] is True
    assert checkin(lic["key"], "a").json()["released"] is True
    assert validate(lic["key"], "d").json()["overdraft"] is True
    assert len(sql("SELECT 1 FROM seat_overdrafts WHERE license_id = %s",
                   lic["id"])) == 2


# --- what operators see -----------------------------------------------------

def test_admin_and_licctl_show_live_borrowed_and_lapsed_seats(clock):
    lic = floating(limit=3, ttl=60, borrow=2, overdraft=1)
    assert validate(lic["key"], "gone").json()["code"] == "VALID"
    clock(61)
    for iid in ("live-1", "live-2"):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    assert borrow(lic["key"], "laptop", days=2).json()["code"] == "VALID"
    assert validate(lic["key"], "extra").json()["overdraft"] is True
    r = admin("/api/admin/licenses/" + lic["id"], method="GET")
    assert r.status_code == 200
    d = r.json()
    seats = d["seats"]
    assert (seats["model"], seats["ttl"], seats["limit"], seats["overdraft"],
            seats["max_borrow_days"]) == ("floating", 60, 3, 1, 2)
    assert (seats["live"], seats["borrowed"], seats["lapsed"],
            seats["overdrafts"]) == (4, 1, 1, 1)
    assert seats["peaks"][-1]["peak"] == 4
    state = {i["id"]: i["seat"]["state"] for i in d["installations"]}
    assert state == {"gone": "lapsed", "live-1": "live", "live-2": "live",
                     "laptop": "borrowed", "extra": "live"}
    assert d["license"]["seat_model"] == "floating"
    assert d["license"]["active_installations"] == 4
    out = licctl("license", "show", lic["id"]).stdout
    assert "seats: 4 live (1 borrowed), 1 lapsed; limit 3 + overdraft 1" in out
    lines = {l.split()[0]: l for l in out.splitlines() if l.startswith("  ")}
    assert "lapsed" in lines["gone"] and "borrowed until" in lines["laptop"]
    assert "overdraft" in lines["extra"] and "live" in lines["live-1"]
    j = licctl_json("license", "show", lic["id"])
    assert j["seats"]["live"] == 4
    # A node-locked license shows no seat leases.
    node = issue()
    d = admin("/api/admin/licenses/" + node["id"], method="GET").json()
    assert d["seats"] == {"model": "node"}
    assert "seats:" not in licctl("license", "show", node["id"]).stdout


def test_the_license_list_counts_floating_seats_as_the_detail_does():
    lic = floating(limit=5, ttl=60)
    for iid in ("up", "gone", "back"):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    assert checkin(lic["key"], "back").status_code == 200
    sql("UPDATE installations SET seat_expires_at = licd_clock_now() - "
        "interval '1 second' WHERE license_id = %s AND installation_id = 'gone'",
        lic["id"])
    d = admin("/api/admin/licenses/" + lic["id"], method="GET").json()
    assert (d["seats"]["live"], d["seats"]["lapsed"]) == (1, 1)
    assert d["license"]["active_installations"] == 1
    rows = admin("/api/admin/licenses/search", {"q": lic["id"]}).json()["licenses"]
    assert [(x["id"], x["active_installations"]) for x in rows] == [(lic["id"], 1)]
    rows = api("/api/admin/licenses", method="GET", params={"q": lic["id"]},
               headers={"Authorization": "Bearer " + admin_token()}).json()
    assert [x["active_installations"] for x in rows["licenses"]] == [1]
    assert licctl_json("license", "show", lic["id"])["active_installations"] == 1


def test_peak_concurrency_across_a_day_boundary(clock):
    lic = floating(limit=10, ttl=3600, borrow=5)
    day1 = datetime.date.today() + datetime.timedelta(days=3)
    midnight = calendar.timegm(day1.timetuple()) + DAY
    clock_to(midnight - 600)                 # 23:50 of day 1
    for i in range(4):
        assert validate(lic["key"], "n%d" % i).json()["code"] == "VALID"
    clock_to(midnight - 300)                 # 23:55: two more, then one leaves
    for i in (4, 5):
        assert validate(lic["key"], "n%d" % i).json()["code"] == "VALID"
    assert checkin(lic["key"], "n0").json()["released"] is True
    clock_to(midnight + 300)                 # 00:05 of day 2
    # Five seats were live when day 2 began; two check in, one comes.
    assert checkin(lic["key"], "n1").json()["released"] is True
    assert checkin(lic["key"], "n2").json()["released"] is True
    assert validate(lic["key"], "n6").json()["code"] == "VALID"
    assert borrow(lic["key"], "laptop", days=3).json()["code"] == "VALID"
    # Days 3 and 4: no call at all; the borrowed seat is still live.
    clock_to(midnight + 2 * DAY + 600)
    day = lambda n: (day1 + datetime.timedelta(days=n)).isoformat()
    rows = sql("SELECT day::text, peak FROM seat_peaks WHERE license_id = %s"
               " ORDER BY day", lic["id"])
    assert rows == [(day(0), 6), (day(1), 5)]
    want = [(day(0), 6), (day(1), 5), (day(2), 1), (day(3), 1)]
    d = admin("/api/admin/licenses/" + lic["id"], method="GET").json()
    assert [(p["day"], p["peak"]) for p in d["seats"]["peaks"]] == want
    period = day1.strftime("%Y-%m")
    got = [(x["day"], x["peak_seats"]) for x in map(
        __import__("json").loads,
        licctl("usage", lic["id"], "--period", period, "--json")
        .stdout.splitlines()) if "peak_seats" in x]
    assert got == [w for w in want if w[0].startswith(period)]
    text = licctl("usage", lic["id"], "--period", period).stdout
    assert "%s  peak concurrent seats 6" % day(0) in text or \
        not day(0).startswith(period)
    # The first write of day 4 records days 3 and 4 as they were.
    assert validate(lic["key"], "n7").json()["code"] == "VALID"
    rows = sql("SELECT day::text, peak FROM seat_peaks WHERE license_id = %s"
               " ORDER BY day", lic["id"])
    assert rows == [(day(0), 6), (day(1), 5), (day(2), 1), (day(3), 2)]


def test_a_seat_batch_records_each_license_day_on_its_first_write(clock):
    """The renewals of one licd_seat_batch, the first seat writes of a day
    for several licenses, record each license's seats live when the day
    began, and each day since its last write that had any, as a write of
    each alone would: renewing first changes none of those counts."""
    two = floating(limit=5, ttl=3600)
    lent = floating(limit=5, ttl=3600, borrow=5)
    day1 = datetime.date.today() + datetime.timedelta(days=10)
    midnight = calendar.timegm(day1.timetuple()) + DAY
    clock_to(midnight - 600)                 # 23:50 of day 1
    for iid in ("a", "b"):
        assert validate(two["key"], iid).json()["code"] == "VALID"
    assert borrow(lent["key"], "laptop", days=3).json()["code"] == "VALID"
    # lent: no write on day 2; two: a seat taken on day 2, lapsed by day 3
    clock_to(midnight + 600)
    assert validate(two["key"], "c").json()["code"] == "VALID"
    clock_to(midnight + DAY - 120)           # 23:58 of day 2: a, b taken again
    for iid in ("a", "b"):
        assert validate(two["key"], iid).json()["code"] == "VALID"
    # 00:20 of day 3: a and b due (the batch's one UPDATE renews them)
    clock_to(midnight + DAY + 1200)
    items = [{"o": 0, "l": two["id"], "i": "a", "s": "take"},
             {"o": 1, "l": lent["id"], "i": "laptop", "s": "take"},
             {"o": 2, "l": two["id"], "i": "b", "s": "renew"}]
    rows = sql("SELECT ord, code FROM licd_seat_batch(%s::jsonb) ORDER BY ord",
               json.dumps(items))
    assert rows == [(0, "VALID"), (1, "VALID"), (2, "VALID")]
    day = lambda n: (day1 + datetime.timedelta(days=n)).isoformat()
    peaks = lambda lic: sql("SELECT day::text, peak FROM seat_peaks WHERE "
                            "license_id = %s ORDER BY day", lic["id"])
    assert peaks(two) == [(day(0), 2), (day(1), 3), (day(2), 2)]
    assert peaks(lent) == [(day(0), 1), (day(1), 1), (day(2), 1)]


# --- node-locked licenses and the lifecycle job ------------------------------

def test_node_locked_answers_unchanged():
    lic = issue(limits="installations=1")
    v = validate(lic["key"], "a").json()
    assert v["code"] == "VALID"
    for k in ("seat_expires_at", "overdraft", "borrowed_until"):
        assert k not in v
    assert epoch(v["lease_expires_at"]) > sql_now() + 6 * DAY
    h = heartbeat(lic["key"], "a").json()
    assert "seat_expires_at" not in h and h["next_heartbeat_in"] == int(
        __import__("util").CFG.get("heartbeat_interval", 3600))
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"
    assert sql1("SELECT seat_expires_at FROM installations WHERE license_id = %s",
                lic["id"]) is None


def test_lifecycle_culls_only_node_locked_seats(clock):
    from test_lifecycle import run_job
    node = issue(limits="installations=2")
    flo = floating(limit=2, borrow=30)
    assert validate(node["key"], "old").json()["code"] == "VALID"
    assert borrow(flo["key"], "laptop", days=20).json()["code"] == "VALID"
    clock(15 * DAY)
    run_job()
    st = sql("SELECT l.seat_model, i.status FROM installations i JOIN licenses l"
             " ON l.id = i.license_id WHERE l.id IN (%s, %s) ORDER BY 1",
             node["id"], flo["id"])
    assert st == [("floating", "active"), ("node", "inactive")]
    assert live(flo["id"]) == 1


def test_switching_seat_model():
    lic = issue(limits="installations=1")
    assert validate(lic["key"], "a").json()["code"] == "VALID"
    licctl("license", "update", lic["id"], "--seat-model", "floating",
           "--seat-ttl", "60")
    # The node seat ends: a heartbeat must validate again, which takes a
    # floating seat.
    assert sql("SELECT status, seat_expires_at FROM installations"
               " WHERE license_id = %s", lic["id"]) == [("inactive", None)]
    assert floating_unseated() == []
    assert heartbeat(lic["key"], "a").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    v = validate(lic["key"], "a").json()
    assert v["code"] == "VALID" and "seat_expires_at" in v
    licctl("license", "update", lic["id"], "--seat-model", "node")
    v = validate(lic["key"], "a").json()
    assert v["code"] == "VALID" and "seat_expires_at" not in v
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"


def test_reset_activations_releases_floating_seats():
    lic = floating(limit=2)
    for iid in ("a", "b"):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    r = admin("/api/admin/licenses/%s/reset-activations" % lic["id"])
    assert r.status_code == 200 and r.json()["deactivated"] == 2
    assert live(lic["id"]) == 0
    d = admin("/api/admin/licenses/" + lic["id"], method="GET").json()
    assert {i["id"]: i["seat"]["state"] for i in d["installations"]} == \
        {"a": "released", "b": "released"}
    assert heartbeat(lic["key"], "a").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    for iid in ("c", "a"):
        assert validate(lic["key"], iid).json()["code"] == "VALID"
    assert validate(lic["key"], "b").json()["code"] == "TOO_MANY_INSTALLATIONS"
