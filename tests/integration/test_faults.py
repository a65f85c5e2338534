"""Faults under load (issue 22): PostgreSQL restarted with -m immediate and
stopped, rows locked from another session. Clients see 200 or 503
SERVICE_UNAVAILABLE with Retry-After, always JSON, never 500; one
license's lock never holds up another license; an outage is logged a few
times per process, not once per request.

The `database` fixture owns each outage: whatever a test does, PostgreSQL
is running and the stack healthy again before the next test."""
import concurrent.futures
import os
import re
import subprocess
import threading
import time
import uuid

import psycopg2
import pytest
import requests

from conftest import CFG, URL, db, make_plan, issue, wait_healthy
from test_usage import metered


def run(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def database():
    """The commands that stop, start and restart the stack's PostgreSQL;
    afterwards it is running and the stack answers /healthz 200."""
    cmds = {"stop": os.environ["LICD_PG_STOP"],
            "start": os.environ["LICD_PG_START"],
            "restart": os.environ["LICD_PG_RESTART"]}
    yield lambda what: run(cmds[what])
    run(cmds["start"])
    assert wait_healthy(), "the stack did not recover"


class Load:
    """Client threads calling the API in a loop until stopped; each answer
    is kept as (status, is JSON, Retry-After, call)."""

    def __init__(self, calls, threads=6):
        self.calls = calls
        self.answers = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ex = concurrent.futures.ThreadPoolExecutor(threads)
        self.futs = [self.ex.submit(self.loop, i) for i in range(threads)]

    def loop(self, i):
        s = requests.Session()
        n = 0
        while not self.stop.is_set():
            name, method, path, body = self.calls[(i + n) % len(self.calls)]()
            n += 1
            try:
                r = s.request(method, URL + path, json=body, timeout=30)
                res = (r.status_code,
                       r.headers.get("Content-Type", "").startswith(
                           "application/json") and _json(r),
                       r.headers.get("Retry-After"), name)
            except requests.RequestException as e:
                res = ("conn", False, None, "%s %s" % (name, e))
            with self.lock:
                self.answers.append(res)

    def count(self):
        with self.lock:
            return len(self.answers)

    def wait(self, pred, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if pred(self.answers):
                    return True
            time.sleep(0.02)
        return False

    def finish(self):
        self.stop.set()
        for f in self.futs:
            f.result()
        self.ex.shutdown()
        return self.answers


def _json(r):
    try:
        r.json()
        return True
    except ValueError:
        return False


def test_immediate_restarts_under_load_answer_503_never_500(database):
    """Five `pg_ctl restart -m immediate` under a mix of reads, activations
    (a write on a resume thread), usage increments (not retry-safe) and
    health probes: every answer is 200 or 503 with Retry-After, as JSON."""
    lic = metered(limit=10 ** 9)
    plan = make_plan(limits="installations=100000")
    many = issue(plan=plan)

    def read():
        return ("validate", "POST", "/api/validate",
                {"license_key": lic["key"], "installation_id": "r1"})

    def activate():
        return ("activate", "POST", "/api/validate",
                {"license_key": many["key"],
                 "installation_id": "a-" + uuid.uuid4().hex[:12]})

    def beat():
        return ("heartbeat", "POST", "/api/heartbeat",
                {"license_key": lic["key"], "installation_id": "r1"})

    def use():
        return ("usage", "POST", "/api/usage",
                {"license_key": lic["key"], "feature": "api_calls",
                 "idempotency_key": uuid.uuid4().hex})

    def health():
        return ("healthz", "GET", "/healthz", None)

    load = Load([read, activate, beat, use, read, health], threads=6)
    try:
        for _ in range(5):
            start = load.count()
            assert load.wait(lambda a: len(a) >= start + 60)
            database("restart")
            after = load.count()
            # served again after the restart, by every kind of call
            assert load.wait(lambda a: {x[3] for x in a[after:] if x[0] == 200}
                             >= {"validate", "activate", "heartbeat", "usage"}), \
                "no recovery after the restart"
    finally:
        answers = load.finish()
    statuses = {}
    for a in answers:
        statuses[a[0]] = statuses.get(a[0], 0) + 1
    bad = [a for a in answers if a[0] not in (200, 503)]
    assert not bad, (statuses, bad[:5])
    assert all(a[1] for a in answers), [a for a in answers if not a[1]][:5]
    unavailable = [a for a in answers if a[0] == 503]
    assert all(a[2] is not None and int(a[2]) >= 1 for a in unavailable), \
        unavailable[:5]


def log_lines_since(offset):
    with open(CFG["log_file"], "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def test_outage_is_logged_per_process_not_per_request(database):
    """While PostgreSQL is down each connection backs off (503 at once) and
    each process logs the outage when it starts and when it ends: a few
    lines per process however many requests fail."""
    lic = metered(limit=10 ** 9)
    offset = os.path.getsize(CFG["log_file"])
    database("stop")
    s = requests.Session()
    statuses = []
    t0 = time.time()
    for i in range(300):
        path = ("/api/validate", "/api/heartbeat", "/api/usage")[i % 3]
        body = {"license_key": lic["key"], "installation_id": "o1"}
        if path == "/api/usage":
            body = {"license_key": lic["key"], "feature": "api_calls"}
        r = s.post(URL + path, json=body, timeout=10)
        statuses.append(r.status_code)
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert r.headers["Retry-After"] == "1"
    elapsed = time.time() - t0
    database("start")
    assert wait_healthy()
    assert set(statuses) == {503}
    lines = [l for l in log_lines_since(offset)
             if re.search(r"\] (warn|error) ", l) and "database" in l]
    per_pid = {}
    for l in lines:
        pid = re.search(r"\[(\d+)\]", l).group(1)
        per_pid.setdefault(pid, []).append(l)
    assert per_pid, "the outage was not logged"
    # a start, an end, and a summary per 10 s it lasted
    most = 2 + int(elapsed // 10) + 1
    for pid, ls in per_pid.items():
        assert len(ls) <= most, "\n".join(ls)
        assert sum("database outage:" in l for l in ls) == 1, "\n".join(ls)
    # and the end is logged once the database is back: any process that
    # logged the start has logged the end by the time it served again
    assert any("database outage over" in l for l in log_lines_since(offset))


def test_a_locked_license_delays_no_other_license():
    """An operator's transaction holds one license row and its usage
    counter row while 20 other licenses activate installations and count
    usage: those answer 200 within 1 s each; the locked license's calls
    are answered 503 with Retry-After at once, not after nginx's timeout."""
    plan = make_plan(features="sso,api_calls",
                     limits="installations=1000,api_calls_per_month=1000000000")
    locked = issue(plan=plan)
    others = [issue(plan=plan) for _ in range(20)]
    s = requests.Session()
    r = s.post(URL + "/api/usage", json={"license_key": locked["key"],
                                          "feature": "api_calls"}, timeout=10)
    assert r.status_code == 200, r.text
    holder = db()
    holder.autocommit = False
    cur = holder.cursor()
    cur.execute("SELECT 1 FROM licenses WHERE id = %s FOR UPDATE", (locked["id"],))
    cur.execute("SELECT 1 FROM usage_counters WHERE license_id = %s FOR UPDATE",
                (locked["id"],))
    assert cur.rowcount == 1
    t_locked = time.time()
    timed = []
    tlock = threading.Lock()

    def call(session, lic, kind):
        if kind == "activate":
            path, body = "/api/validate", {
                "license_key": lic["key"],
                "installation_id": "l-" + uuid.uuid4().hex[:12]}
        else:
            path, body = "/api/usage", {"license_key": lic["key"],
                                        "feature": "api_calls"}
        t = time.monotonic()
        r = session.post(URL + path, json=body, timeout=30)
        dt = time.monotonic() - t
        with tlock:
            timed.append((lic is locked, kind, r.status_code, dt,
                          r.headers.get("Retry-After"), r.text[:200]))

    def other_client(lic):
        s = requests.Session()
        for _ in range(3):
            call(s, lic, "activate")
            call(s, lic, "usage")

    stop = threading.Event()

    def locked_client(kind):
        s = requests.Session()
        while not stop.is_set():
            call(s, locked, kind)

    try:
        with concurrent.futures.ThreadPoolExecutor(22) as ex:
            lf = [ex.submit(locked_client, k) for k in ("activate", "usage")]
            # the locked license's calls are in flight before the others
            end = time.time() + 10
            while time.time() < end and not any(t[0] for t in timed):
                time.sleep(0.01)
            of = [ex.submit(other_client, o) for o in others]
            for f in of:
                f.result()
            stop.set()
            for f in lf:
                f.result()
        assert time.time() - t_locked < 10, "the lock was held under 10 s"
    finally:
        holder.rollback()
        holder.close()
    mine = [t for t in timed if not t[0]]
    theirs = [t for t in timed if t[0]]
    assert len(mine) == 20 * 6
    assert all(t[2] == 200 for t in mine), [t for t in mine if t[2] != 200][:5]
    slow = sorted((t for t in mine if t[3] >= 1.0), key=lambda t: -t[3])
    assert not slow, slow[:5]
    assert {t[1] for t in theirs} == {"activate", "usage"}
    assert all(t[2] == 503 and t[4] == "1" for t in theirs), theirs[:5]
    assert all(t[3] < 2.0 for t in theirs), max(t[3] for t in theirs)
    # once the lock is gone the locked license works again
    r = s.post(URL + "/api/usage", json={"license_key": locked["key"],
                                          "feature": "api_calls"}, timeout=10)
    assert r.status_code == 200, r.text
