"""A new installation of a license in memory (fcgi/lib/call.c,
from_license): once a validate process has activated a new installation
of a node-locked license, it keeps the license's own entry in its cache,
and a validate of another installation it does not hold goes straight to
its activation (log line `cache=new`), without a lookup.
licd_activate_batch decides it again under the license's lock: seats
stay exact, a change is answered from the very next call once its own
answer was given, and an installation that was active already keeps its
seat however full the license is, as the lookup would have answered it
(then the cache answers its next calls)."""
import concurrent.futures
import re
import threading
import time

import requests

from test_validate import verify_with_jwks
from util import (admin, eventually, issue, log_since, log_size,
                  make_plan, served_by, sql, sql1, unique, validate, URL)


def new_hot(lic, **kw):
    """New installations until every validate process that served one of
    them activates the next from the license's entry (`cache=new`);
    returns the installations activated and those processes."""
    pat = re.compile(r"Z validate\[(\d+)\] .*license=%s( cache=new)?"
                     % lic["id"])
    offset = log_size()
    served, news, iids = set(), set(), []

    def all_new():
        iid = unique("w")
        r = validate(lic["key"], iid, **kw).json()
        assert r["code"] == "VALID", r
        iids.append(iid)
        for line in log_since(offset):
            m = pat.search(line)
            if m:
                served.add(int(m.group(1)))
                if m.group(2):
                    news.add(int(m.group(1)))
        return news and served <= news
    eventually(all_new, 30, lambda: "every serving validate process "
               "activating from the license's entry (served %s, from it %s)"
               % (served, news), interval=0.01)
    return iids, news


def active(lic):
    return sql1("SELECT count(*) FROM installations WHERE license_id = %s"
                " AND status = 'active'", lic["id"])


def fill(lic, n):
    """n more active installations, inserted directly: an insert notifies
    nothing, so the license's entries stay."""
    sql("INSERT INTO installations (license_id, installation_id) SELECT "
        "%s, 'sql-' || g FROM generate_series(1, %s) g", lic["id"], n)


def test_a_new_installation_is_activated_from_the_license_in_memory():
    lic = issue(plan=make_plan(limits="installations=1000"))
    iids, _ = new_hot(lic)
    iid = unique("n")
    r = validate(lic["key"], iid, version="2.0.0").json()
    assert r["code"] == "VALID" and r["lease"], r
    assert r["installation"]["status"] == "active", r
    assert r["license"]["features"], r
    row = sql("SELECT status, version FROM installations WHERE "
              "license_id = %s AND installation_id = %s", lic["id"], iid)
    assert row == [("active", "2.0.0")], row
    assert active(lic) == len(iids) + 1


def test_a_new_installation_from_memory_gets_its_own_lease():
    """The lease of an activation from the license's entry is signed
    while the activation waits for its batch (call.c, from_license): it
    is the installation's, with the call's nonce, issued at the call."""
    lic = issue(plan=make_plan(limits="installations=1000"))
    new_hot(lic)
    from_entry = []
    # new_hot leaves the entry in each process that served it; one that
    # served none keeps it from its first new installation on: rounds
    # until calls were answered from it
    for _ in range(4):
        offset = log_size()
        rids = []
        for _ in range(5):
            iid, rid = unique("l"), unique("rid")
            before = time.time()
            r = requests.post(URL + "/api/validate", timeout=30, headers={
                "X-Request-Id": rid}, json={"license_key": lic["key"],
                                            "installation_id": iid,
                                            "nonce": "n-" + iid}).json()
            assert r["code"] == "VALID", r
            claims = verify_with_jwks(r["lease"], "lease+jwt")
            assert claims["sub"] == lic["id"] and claims["iid"] == iid, claims
            assert claims["nonce"] == "n-" + iid, claims
            assert before - 2 <= claims["iat"] <= time.time() + 2, claims
            assert r["lease_expires_at"] == time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"])), r
            rids.append(rid)
        served_by(rids, offset)     # their log lines are written
        lines = log_since(offset)
        from_entry += [rid for rid in rids if any(
            "rid=%s " % rid in l and "cache=new" in l for l in lines)]
        if from_entry:
            break
    assert from_entry, "no call answered from the license's entry"


def test_a_change_is_answered_by_the_next_new_installation():
    """After each change's answer, every new installation's answer is the
    new state's, in every process: codes decided under the lock, and the
    license in the answer (its features) no longer the entry's."""
    lic = issue(plan=make_plan(features="sso", limits="installations=1000"))
    new_hot(lic)
    base = "/api/admin/licenses/%s/" % lic["id"]
    r = admin(base + "edit", {"features": ["sso", "reports"], "reason": "x"})
    assert r.status_code == 200, r.text
    for _ in range(12):
        r = validate(lic["key"], unique("f"), feature="reports").json()
        assert r["code"] == "VALID", r
        assert "reports" in r["license"]["features"], r
    new_hot(lic)
    r = admin(base + "suspend", {"reason": "x"})
    assert r.status_code == 200, r.text
    for _ in range(12):
        assert validate(lic["key"], unique("s")).json()["code"] == \
            "SUSPENDED"
    r = admin(base + "reinstate", {"reason": "x"})
    assert r.status_code == 200, r.text
    new_hot(lic)
    r = admin("/api/revoke", {"license_id": lic["id"], "reason": "x"})
    assert r.status_code == 200, r.text
    for _ in range(12):
        assert validate(lic["key"], unique("r")).json()["code"] == "REVOKED"


def test_seats_stay_exact_for_new_installations_from_memory():
    """The license's entry in every process, then as many installations
    inserted as leave 5 seats: 40 new installations at once take exactly
    those 5."""
    lic = issue(plan=make_plan(limits="installations=1000"))
    iids, _ = new_hot(lic)
    fill(lic, 1000 - len(iids) - 5)

    def call(i):
        with requests.Session() as s:
            r = s.post(URL + "/api/validate", timeout=60, json={
                "license_key": lic["key"], "installation_id": "c%d" % i})
            assert r.status_code == 200, r.text
            b = r.json()
            # a lease signed before the batch decided goes only with VALID
            assert ("lease" in b) == (b["code"] == "VALID"), b
            return b["code"]
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        codes = list(ex.map(call, range(40)))
    assert codes.count("VALID") == 5, codes
    assert set(codes) == {"VALID", "TOO_MANY_INSTALLATIONS"}, codes
    assert active(lic) == 1000


def test_an_active_installation_not_in_memory_keeps_its_seat():
    """An installation active in the database but in no process's memory,
    of a license whose entry is: overfilled (more active installations
    than seats), it still answers VALID, as the lookup would have (the
    activation keeps a seat found taken), and its next calls are answered
    from memory; a new one is refused."""
    lic = issue(plan=make_plan(limits="installations=500"))
    iids, news = new_hot(lic)
    fill(lic, 500)
    assert active(lic) == 500 + len(iids)
    offset = log_size()
    rid = unique("kept")
    r = requests.post(URL + "/api/validate", timeout=30, headers={
        "X-Request-Id": rid}, json={"license_key": lic["key"],
                                    "installation_id": "sql-7"}).json()
    assert r["code"] == "VALID" and r["installation"]["status"] == "active"
    by = served_by([rid], offset)[rid]
    lines = [l for l in log_since(offset) if "rid=%s " % rid in l]
    if by[1] in news:
        assert "cache=new" in lines[0], lines
    assert validate(lic["key"], unique("x")).json()["code"] == \
        "TOO_MANY_INSTALLATIONS"
    assert active(lic) == 500 + len(iids)
    # The kept installation, remembered where it was kept: its process
    # answers it from memory (others read it once and remember it too).
    pat = re.compile(r"validate\[%d\] .*license=%s cache=hit" %
                     (by[1], lic["id"]))

    def hit():
        validate(lic["key"], "sql-7")
        return any(pat.search(l) for l in log_since(offset))
    eventually(hit, 10, "sql-7 answered from memory", interval=0.01)


def test_no_new_installation_is_valid_after_a_revoke_under_load():
    """New installations of a license in memory, called without pause
    from several threads while the license is revoked: no call sent
    after the revoke's answer is answered VALID."""
    lic = issue(plan=make_plan(limits="installations=100000"))
    new_hot(lic)
    stop = threading.Event()
    revoked_at = []
    late = []
    calls = []      # one entry per answered call

    def caller(t):
        n = 0
        with requests.Session() as s:
            while not stop.is_set():
                n += 1
                sent = time.monotonic()
                r = s.post(URL + "/api/validate", timeout=60, json={
                    "license_key": lic["key"],
                    "installation_id": "t%d-%d" % (t, n)})
                assert r.status_code == 200, r.text
                code = r.json()["code"]
                if code == "VALID" and revoked_at and sent > revoked_at[0]:
                    late.append((t, n))
                calls.append(code)
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        fs = [ex.submit(caller, t) for t in range(6)]
        eventually(lambda: len(calls) >= 60 or any(f.done() for f in fs),
                   30, "60 calls before the revoke", interval=0.01)
        r = admin("/api/revoke", {"license_id": lic["id"], "reason": "x"})
        assert r.status_code == 200, r.text
        revoked_at.append(time.monotonic())
        before = len(calls)
        eventually(lambda: len(calls) >= before + 120 or
                   any(f.done() for f in fs), 30,
                   "120 calls after the revoke", interval=0.01)
        stop.set()
        for f in fs:
            f.result()
    assert late == [], late
