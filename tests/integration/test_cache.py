"""The license cache (fcgi/lib/cache.h): validate and heartbeat answer a
known, active installation from memory, and still answer a change from the
very next call once the change's own answer has been given, in every
process: the writers wait for every process's listener to acknowledge a
barrier after their commit (licd_cache_sync, sql/functions/36_cache.sql).

Each test first makes the cache hot in every worker process of both
programs (their log lines say `cache=hit`), then changes the license and
calls again at once."""
import calendar
import concurrent.futures
import os
import re
import signal
import threading
import time

import jwt  # PyJWT from Debian: re-signs a license's key
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from util import (admin, api, b64url, b64url_decode, db, eventually,
                  heartbeat, hot, issue, jwt_parts, licctl, log_since,
                  log_size, logged, make_plan, pids, served_by, sql, sql1,
                  unique, validate, workers, CFG, URL)


def answers(lic, iid, code, hb_code=None, **kw):
    """Every process answers code now: enough calls that each worker of
    each program takes some (libfcgi's accepts are uneven, so many)."""
    for _ in range(12):
        assert validate(lic["key"], iid, **kw).json()["code"] == code
        assert heartbeat(lic["key"], iid).json()["code"] == (hb_code or code)


@pytest.mark.parametrize("change", ["revoke", "suspend", "features",
                                    "deactivate", "client-deactivate",
                                    "expires"])
def test_a_change_is_answered_from_the_next_call(change):
    lic = issue(features="sso,reports")
    iid = unique("c")
    hot(lic, iid)
    base = "/api/admin/licenses/%s/" % lic["id"]
    if change == "revoke":
        r = admin("/api/revoke", {"license_id": lic["id"], "reason": "x"})
        assert r.status_code == 200, r.text
        answers(lic, iid, "REVOKED")
    elif change == "suspend":
        r = admin(base + "suspend", {"reason": "x"})
        assert r.status_code == 200, r.text
        answers(lic, iid, "SUSPENDED")
        r = admin(base + "reinstate", {"reason": "x"})
        assert r.status_code == 200, r.text
        answers(lic, iid, "VALID")
    elif change == "features":
        answers(lic, iid, "VALID", feature="reports")
        r = admin(base + "edit", {"features": ["sso"], "reason": "x"})
        assert r.status_code == 200, r.text
        answers(lic, iid, "FEATURE_NOT_LICENSED", hb_code="VALID",
                feature="reports")
    elif change == "deactivate":
        r = admin(base + "installations/%s/deactivate" % iid, {"reason": "x"})
        assert r.status_code == 200 and r.json()["deactivated"], r.text
        for _ in range(12):
            assert heartbeat(lic["key"], iid).json()["code"] == \
                "INSTALLATION_NOT_ACTIVE"
    elif change == "client-deactivate":
        r = api("/api/deactivate", {"license_key": lic["key"],
                                    "installation_id": iid})
        assert r.status_code == 200, r.text
        for _ in range(12):
            assert heartbeat(lic["key"], iid).json()["code"] == \
                "INSTALLATION_NOT_ACTIVE"
    elif change == "expires":
        r = admin(base + "edit", {"expires_at": "2020-01-01T00:00:00Z",
                                  "reason": "x"})
        assert r.status_code == 200, r.text
        answers(lic, iid, "EXPIRED")


def test_licctl_changes_are_answered_from_the_next_call():
    lic = issue()
    iid = unique("c")
    hot(lic, iid)
    licctl("license", "suspend", lic["id"], "--reason", "x")
    answers(lic, iid, "SUSPENDED")
    licctl("license", "reinstate", lic["id"], "--reason", "x")
    answers(lic, iid, "VALID")


def barriers():
    """The last barrier number taken, read without running one (util.sql
    would)."""
    conn = db()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT last_value FROM cache_barrier_seq")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_licctl_runs_the_barrier_only_after_a_verb_that_writes():
    lic = issue()
    iid = unique("c")
    hot(lic, iid)
    assert listeners(), "the barrier waits only when someone listens"
    before = barriers()
    for verb in (("license", "show", lic["id"]), ("license", "list"),
                 ("plan", "list"), ("customer", "list"),
                 ("audit", "--limit", "1"), ("notifications",),
                 ("usage", lic["id"]), ("webhook", "pending")):
        licctl(*verb)
    assert barriers() == before
    licctl("license", "suspend", lic["id"], "--reason", "x")
    assert barriers() > before
    answers(lic, iid, "SUSPENDED")


def listeners():
    return {r[0] for r in sql("SELECT id FROM cache_listeners")}


def test_a_lost_listener_stops_answering_and_comes_back():
    """The listeners' connections are cut and the license suspended in the
    same statement, so no listener hears of it: every process must still
    answer SUSPENDED (nothing from before its new registration is kept),
    and answer from memory again once listening."""
    lic = issue()
    iid = unique("c")
    hot(lic, iid)
    before = listeners()
    assert len(before) >= 2
    cut = sql("WITH cut AS (SELECT pg_terminate_backend(pid) FROM "
              "pg_stat_activity WHERE application_name = 'licd-cache') "
              "UPDATE licenses SET status = 'suspended' WHERE id = %s "
              "AND (SELECT count(*) FROM cut) > 0 RETURNING id", lic["id"])
    assert cut == [(lic["id"],)]
    answers(lic, iid, "SUSPENDED")
    # registered anew, every one of them
    eventually(lambda: len(listeners()) >= len(before) and
               not (listeners() & before), 20, "the listeners registering "
               "again")
    sql("UPDATE licenses SET status = 'active' WHERE id = %s", lic["id"])
    hot(lic, iid)


def test_a_stopped_process_holds_a_revoke_up_only_for_its_lease():
    """A process that stops acknowledging (SIGSTOP) delays a revoke until
    its lease lapses (licd_cache_lease), not for ever; resumed, it answers
    nothing from its old memory."""
    lic = issue()
    iid = unique("c")
    stopped = max(hot(lic, iid, ("validate",)))[1]
    os.kill(stopped, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = admin("/api/revoke", {"license_id": lic["id"], "reason": "x"})
        waited = time.monotonic() - t0
        assert r.status_code == 200, r.text
        # bounded by the lease (2 s) plus the barrier's own timeout (1 s);
        # generous for a loaded machine, but not for ever
        assert waited < 15, waited
    finally:
        os.kill(stopped, signal.SIGCONT)
    offset = log_size()

    def resumed_answered():
        # More calls at once than nginx keeps idle connections to validate
        # (keepalive, per nginx worker): one caller would reuse the same
        # kept connection, owned by whichever process took it, for
        # keepalive_requests calls; these make nginx open new ones, which
        # every process, the resumed one too, races to accept.
        rids = [unique("after") for _ in range(96)]

        def call(rid):
            with requests.Session() as s:
                return s.post(URL + "/api/validate", timeout=30,
                              json={"license_key": lic["key"],
                                    "installation_id": iid},
                              headers={"X-Request-Id": rid})
        with concurrent.futures.ThreadPoolExecutor(len(rids)) as ex:
            for r in ex.map(call, rids):
                assert r.json()["code"] == "REVOKED", r.text
        by = served_by(rids, offset)
        return any(pid == stopped for _, pid in by.values())
    eventually(resumed_answered, 60, "the resumed process answering",
               interval=0.01)


def test_a_listener_renewing_without_acknowledging_is_given_up():
    """A listener row that keeps renewing its lease but never acknowledges
    (a process whose listener hears nothing) does not hold a writer up for
    ever: the barrier dooms it after its timeout, the renewals are refused
    from then on, and its lease runs out."""
    conn = db()     # the listener's own statements, without a barrier
    cur = conn.cursor()
    cur.execute("SELECT id FROM licd_cache_register('test-host', 1, 'test')")
    lid = cur.fetchone()[0]
    stop = threading.Event()
    renewed = []

    def renew():
        while not stop.is_set():
            cur.execute("SELECT licd_cache_ack(%s, 0)", (lid,))
            renewed.append(cur.fetchone()[0])
            stop.wait(0.2)
    t = threading.Thread(target=renew)
    t.start()
    try:
        eventually(lambda: renewed, 10, "a first renewal")
        # the barrier (sql() runs one after its statement) returns
        sql("SELECT 1")
        assert sql("SELECT count(*) FROM cache_listeners WHERE id = %s",
                   lid) == [(0,)]
        eventually(lambda: renewed[-1] is False, 10, "a refused renewal")
        assert True in renewed
    finally:
        stop.set()
        t.join()
        conn.close()


def test_a_key_ring_reload_voids_what_the_entries_know_of_the_key():
    """A reload of the signing keys (SIGHUP) voids what every entry knows
    of its key, as it empties the verified-key cache (a retired kid's keys
    are no longer the license's): in each process, the first call after
    its reload reads the database and answers as before, and the calls
    after it are answered from memory again."""
    lic = issue()
    iid = unique("c")
    hot(lic, iid)
    offset = log_size()
    want = {(p, int(w)) for p in ("validate", "heartbeat")
            for w in workers(p)}
    for p in ("validate", "heartbeat"):
        os.kill(int(pids()[p + ".pid"]), signal.SIGHUP)
    pat = re.compile(r"Z (\w+)\[(\d+)\] .*(keys reloaded|license=%s( "
                     r"cache=hit)?)" % lic["id"])

    def lines():
        for line in log_since(offset):
            m = pat.search(line)
            if m:
                yield (m.group(1), int(m.group(2))), m.group(3), m.group(4)
    eventually(lambda: want <= {p for p, what, _ in lines()
                                if what == "keys reloaded"}, 20,
               "every process's reload")
    hot(lic, iid)
    reloaded, first = set(), {}
    for proc, what, hit in lines():
        if what == "keys reloaded":
            reloaded.add(proc)
        elif proc in reloaded and proc not in first:
            first[proc] = hit
    assert first and not any(first.values()), first


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_a_changed_license_key_drops_the_entries():
    """A license whose stored key changes (re-signed: licenses.license_key
    notifies its id) is read from the database by the next call; the new
    key is then answered from memory, and the old one, which verifies
    still, stays VALID."""
    lic = issue()
    iid = unique("c")
    hot(lic, iid)
    header, claims, _ = jwt_parts(lic["key"])
    claims["iat"] += 1
    with open(os.path.join(CFG["keys_dir"], header["kid"] + ".key"),
              "rb") as f:
        pem = f.read()
    new = jwt.encode(claims, serialization.load_pem_private_key(pem, None),
                     algorithm=header["alg"], headers={"kid": header["kid"],
                                                       "typ": "JWT"})
    if header["alg"] == "ES256":
        # licd takes the low-S signature only (jwt.c)
        h, p, sig = new.split(".")
        sig = b64url_decode(sig)
        s = int.from_bytes(sig[32:], "big")
        if s > P256_N // 2:
            new = "%s.%s.%s" % (h, p, b64url(sig[:32] + (P256_N - s)
                                            .to_bytes(32, "big")))
    assert new != lic["key"]
    sql("UPDATE licenses SET license_key = %s WHERE id = %s", new, lic["id"])
    rid = unique("rekeyed")
    r = requests.post(URL + "/api/validate", timeout=30,
                      json={"license_key": lic["key"], "installation_id": iid},
                      headers={"X-Request-Id": rid})
    assert r.json()["code"] == "VALID", r.text
    lines = logged(rid)
    assert len(lines) == 1 and "license=%s " % lic["id"] in lines[0] + " " \
        and "cache=hit" not in lines[0], lines
    hot(dict(lic, key=new), iid)
    assert validate(lic["key"], iid).json()["code"] == "VALID"


# --- floating seats -----------------------------------------------------------
# A floating installation holding a seat far from its renewal is answered
# from memory (decide_from_memory); everything that changes its seat, or
# another installation's, is answered by the very next call.

def floating(limit=1, ttl=600, borrow=0):
    plan = make_plan(limits="installations=%d" % limit, extra=(
        "--seat-model", "floating", "--seat-ttl", str(ttl),
        "--max-borrow-days", str(borrow)))
    return issue(plan=plan)


def seat_row(lic, iid):
    return sql("SELECT status, extract(epoch FROM seat_expires_at)::bigint,"
               " borrowed_until IS NOT NULL FROM installations WHERE "
               "license_id = %s AND installation_id = %s", lic["id"], iid)[0]


def epoch(ts):
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def test_a_floating_seat_is_answered_from_memory_as_it_is():
    lic = floating(limit=1, ttl=600)
    first = validate(lic["key"], "a").json()
    assert first["code"] == "VALID", first
    row = seat_row(lic, "a")
    hot(lic, "a")
    # Answered from memory without renewing: the seat as the database
    # holds it, the lease ending with it, next_heartbeat_in a third of
    # the ttl, for validate and heartbeat alike.
    assert seat_row(lic, "a") == row
    for call in (validate, heartbeat):
        r = call(lic["key"], "a").json()
        assert r["code"] == "VALID" and r["installation"]["status"] == \
            "active", r
        assert r["seat_expires_at"] == first["seat_expires_at"]
        assert epoch(r["seat_expires_at"]) == row[1]
        assert r["lease_expires_at"] == r["seat_expires_at"]
        assert r["next_heartbeat_in"] == 200
        assert r["borrowed_until"] is None and r["overdraft"] is False
        assert r["license"]["limits"] == {"installations": 1}
    assert seat_row(lic, "a") == row


def answers_seat(lic, iid, code, hb_code=None, n=12):
    """Every process answers code for iid now (see answers())."""
    out = []
    for _ in range(n):
        v = validate(lic["key"], iid).json()
        h = heartbeat(lic["key"], iid).json()
        assert v["code"] == code, v
        assert h["code"] == (hb_code or code), h
        out += [v, h]
    return out


@pytest.mark.parametrize("change", ["checkin", "client-deactivate",
                                    "admin-deactivate", "revoke", "suspend",
                                    "seat-limit", "seat-model", "borrow",
                                    "take"])
def test_a_floating_change_is_answered_from_the_next_call(change):
    lic = floating(limit=2, ttl=600, borrow=3)
    base = "/api/admin/licenses/%s/" % lic["id"]
    hot(lic, "a")
    assert validate(lic["key"], "b").json()["code"] == "VALID"
    if change in ("checkin", "client-deactivate", "admin-deactivate"):
        if change == "checkin":
            r = api("/api/checkin", {"license_key": lic["key"],
                                     "installation_id": "a"})
            assert r.json() == {"checked_in": True, "released": True}, r.text
        elif change == "client-deactivate":
            r = api("/api/deactivate", {"license_key": lic["key"],
                                        "installation_id": "a"})
            assert r.status_code == 200, r.text
        else:
            r = admin(base + "installations/a/deactivate", {"reason": "x"})
            assert r.status_code == 200 and r.json()["deactivated"], r.text
        # The freed seat goes to another installation at once, and the
        # one that let it go holds nothing in any process.
        assert validate(lic["key"], "c").json()["code"] == "VALID"
        for _ in range(12):
            h = heartbeat(lic["key"], "a").json()
            assert h["code"] == "INSTALLATION_NOT_ACTIVE", h
            assert "lease" not in h and "seat_expires_at" not in h
            assert validate(lic["key"], "a").json()["code"] == \
                "TOO_MANY_INSTALLATIONS"
        assert seat_row(lic, "a")[0] == "inactive"
    elif change == "revoke":
        r = admin("/api/revoke", {"license_id": lic["id"], "reason": "x"})
        assert r.status_code == 200, r.text
        for r in answers_seat(lic, "a", "REVOKED"):
            assert "lease" not in r and "seat_expires_at" not in r
    elif change == "suspend":
        r = admin(base + "suspend", {"reason": "x"})
        assert r.status_code == 200, r.text
        answers_seat(lic, "a", "SUSPENDED")
        r = admin(base + "reinstate", {"reason": "x"})
        assert r.status_code == 200, r.text
        answers_seat(lic, "a", "VALID")
    elif change == "seat-limit":
        # Both seats taken: a third installation waits; a lower limit is
        # in every answer at once (the seats held stay held, as the
        # database's path answers them), a higher one seats the third.
        assert validate(lic["key"], "c").json()["code"] == \
            "TOO_MANY_INSTALLATIONS"
        r = admin(base + "edit", {"limits": {"installations": 1},
                                  "reason": "x"})
        assert r.status_code == 200, r.text
        for r in answers_seat(lic, "a", "VALID"):
            assert r["license"]["limits"] == {"installations": 1}
        assert validate(lic["key"], "c").json()["code"] == \
            "TOO_MANY_INSTALLATIONS"
        r = admin(base + "edit", {"limits": {"installations": 3},
                                  "reason": "x"})
        assert r.status_code == 200, r.text
        assert validate(lic["key"], "c").json()["code"] == "VALID"
        for r in answers_seat(lic, "a", "VALID"):
            assert r["license"]["limits"] == {"installations": 3}
    elif change == "seat-model":
        licctl("license", "update", lic["id"], "--seat-model", "node")
        for r in answers_seat(lic, "a", "VALID"):
            assert "seat_expires_at" not in r and \
                "borrowed_until" not in r, r
    elif change == "borrow":
        r = api("/api/borrow", {"license_key": lic["key"],
                                "installation_id": "a", "days": 2})
        assert r.status_code == 200 and r.json()["code"] == "VALID", r.text
        until = r.json()["borrowed_until"]
        assert until is not None
        for r in answers_seat(lic, "a", "VALID"):
            assert r["borrowed_until"] == until
            assert r["seat_expires_at"] == until
            assert r["lease_expires_at"] == until
    elif change == "take":
        # Another installation's take of the last seat: the next newcomer
        # is refused, the holders keep theirs, from memory.
        row = seat_row(lic, "a")
        assert validate(lic["key"], "c").json()["code"] == \
            "TOO_MANY_INSTALLATIONS"
        answers_seat(lic, "a", "VALID")
        assert seat_row(lic, "a") == row
        hot(lic, "a")


def test_a_floating_seat_near_its_renewal_or_lapsed_is_read_again(clock):
    """The clock moves (as time does): a seat with less than three
    quarters of its ttl left is renewed by the next call, whichever
    process takes it, and a lapsed one is free for another installation
    at once and held by nobody else."""
    ttl = 600
    lic = floating(limit=1, ttl=ttl)
    hot(lic, "a")
    exp = seat_row(lic, "a")[1]
    # a quarter of the ttl and a second later: due, renewed by the next
    # call and answered as renewed by every process after it
    clock(ttl // 4 + 1)
    v = validate(lic["key"], "a").json()
    assert v["code"] == "VALID" and epoch(v["seat_expires_at"]) > exp, v
    renewed = seat_row(lic, "a")[1]
    assert renewed == epoch(v["seat_expires_at"])
    for r in answers_seat(lic, "a", "VALID"):
        assert epoch(r["seat_expires_at"]) == renewed, r
    hot(lic, "a")
    # lapsed: nobody holds it, the next installation takes it (2 s past
    # the rounded expiry: the clock offset is whole seconds)
    clock(renewed - time.time() + 2)
    h = heartbeat(lic["key"], "a").json()
    assert h["code"] == "INSTALLATION_NOT_ACTIVE", h
    assert validate(lic["key"], "b").json()["code"] == "VALID"
    for _ in range(12):
        assert heartbeat(lic["key"], "a").json()["code"] == \
            "INSTALLATION_NOT_ACTIVE"
        assert validate(lic["key"], "a").json()["code"] == \
            "TOO_MANY_INSTALLATIONS"


def test_a_renewed_seat_is_answered_from_memory_by_its_next_call(clock):
    """The process that renewed a seat remembers it as licd_seat returned
    it: the installation's next call there is answered from memory, with
    the renewed seat, without reading the database again."""
    ttl = 600
    lic = floating(limit=1, ttl=ttl)
    hot(lic, "a")
    exp = seat_row(lic, "a")[1]
    clock(ttl // 4 + 1)
    for path in ("/api/validate", "/api/heartbeat"):
        rid = unique("renew")
        offset = log_size()
        r = api(path, {"license_key": lic["key"], "installation_id": "a"},
                headers={"X-Request-Id": rid}).json()
        assert r["code"] == "VALID" and epoch(r["seat_expires_at"]) > exp, r
        exp = epoch(r["seat_expires_at"])
        assert seat_row(lic, "a")[1] == exp
        renewer = served_by([rid], offset)[rid]
        lines = [l for l in log_since(offset) if "rid=%s " % rid in l]
        assert len(lines) == 1 and "cache=hit" not in lines[0], lines

        def next_call_there():
            rid2 = unique("next")
            off = log_size()
            r2 = api(path, {"license_key": lic["key"],
                            "installation_id": "a"},
                     headers={"X-Request-Id": rid2}).json()
            assert r2["code"] == "VALID", r2
            assert epoch(r2["seat_expires_at"]) == exp, r2
            if served_by([rid2], off)[rid2] != renewer:
                return None
            return [l for l in log_since(off) if "rid=%s " % rid2 in l]
        lines = eventually(next_call_there, 30, "a call served by %s[%d]"
                           % renewer, interval=0)
        assert len(lines) == 1 and "cache=hit" in lines[0], lines
        # the next renewal is heartbeat's, a quarter of the ttl later
        clock(ttl // 4 * 2 + 2)
    assert seat_row(lic, "a")[1] == exp


def test_a_due_seat_in_memory_is_renewed_without_a_lookup():
    """A seat that comes due while its installation is in memory (real
    time passing: moving the SQL clock would flush every entry) is
    renewed from there, without a lookup first: the renewing call's log
    line says cache=write when its process held the entry."""
    ttl = 30    # due a quarter of it later
    lic = floating(limit=1, ttl=ttl)
    in_memory = hot(lic, "a")
    exp = seat_row(lic, "a")[1]
    offset = log_size()
    rids = {}

    def renewed():
        rid = unique("due")
        r = api("/api/validate", {"license_key": lic["key"],
                                  "installation_id": "a"},
                headers={"X-Request-Id": rid}).json()
        assert r["code"] == "VALID", r
        if epoch(r["seat_expires_at"]) > exp:
            rids[rid] = epoch(r["seat_expires_at"])
            return rid
        return None
    rid = eventually(renewed, ttl, "the seat renewed", interval=0.05)
    assert seat_row(lic, "a")[1] == rids[rid]
    by = served_by([rid], offset)[rid]
    lines = [l for l in log_since(offset) if "rid=%s " % rid in l]
    assert len(lines) == 1, lines
    # (a process that served none of hot()'s calls may have filled its
    # entry since, or not)
    if by in in_memory:
        assert "cache=write" in lines[0], lines


def test_floating_seats_never_exceed_the_limit_with_holders_in_memory():
    """Holders answered from memory check in and validate again while
    newcomers race for the seats: the database never counts more live
    seats than the limit, and at the end every installation whose last
    answer was VALID holds a live seat in the database, and no other."""
    limit = 4
    lic = floating(limit=limit, ttl=600)
    holders = ["h%d" % i for i in range(limit)]
    for h in holders:
        assert validate(lic["key"], h).json()["code"] == "VALID"
    hot(lic, holders[0])
    stop = time.time() + 4
    last, over = {}, []

    def live():
        return sql1("SELECT count(*) FROM installations WHERE license_id ="
                    " %s AND status = 'active' AND seat_expires_at > "
                    "licd_clock_now()", lic["id"])

    def post(s, path, iid):
        r = s.post(URL + path, timeout=60, json={
            "license_key": lic["key"], "installation_id": iid})
        assert r.status_code == 200, r.text
        return r.json()

    def holder(iid):
        with requests.Session() as s:
            while time.time() < stop:
                for _ in range(5):
                    last[iid] = post(s, "/api/validate", iid)["code"]
                post(s, "/api/checkin", iid)
                last[iid] = "CHECKED_IN"
                last[iid] = post(s, "/api/validate", iid)["code"]

    def newcomer(iid):
        with requests.Session() as s:
            while time.time() < stop:
                last[iid] = post(s, "/api/validate", iid)["code"]

    def sampler():
        while time.time() < stop:
            n = live()
            if n > limit:
                over.append(n)

    with concurrent.futures.ThreadPoolExecutor(limit + 9) as ex:
        fs = [ex.submit(holder, h) for h in holders]
        fs += [ex.submit(newcomer, "n%d" % i) for i in range(8)]
        fs.append(ex.submit(sampler))
        for f in fs:
            f.result()
    assert over == []
    held = {r[0] for r in sql(
        "SELECT installation_id FROM installations WHERE license_id = %s "
        "AND status = 'active' AND seat_expires_at > licd_clock_now()",
        lic["id"])}
    assert {i for i, c in last.items() if c == "VALID"} == held
    assert len(held) == limit
