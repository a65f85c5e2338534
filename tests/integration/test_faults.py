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

import pytest
import requests

from util import (CFG, CONFIG, RUN_DIR, URL, db, eventually, issue, log_since,
                  make_plan, poll, restart_with_config, run, sql, sql1,
                  wait_healthy)
from test_usage import metered


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

    def wait(self, pred, what, timeout=30):
        """Until pred(answers so far) holds; raises naming `what` if not."""
        def holds():
            with self.lock:
                return pred(self.answers)
        return eventually(holds, timeout, what, interval=0.02)

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
            load.wait(lambda a: len(a) >= start + 60, "60 answers")
            database("restart")
            after = load.count()
            # served again after the restart, by every kind of call
            load.wait(lambda a: {x[3] for x in a[after:] if x[0] == 200}
                      >= {"validate", "activate", "heartbeat", "usage"},
                      "every kind of call answered 200 after the restart")
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
    lines = [l for l in log_since(offset)
             if re.search(r"\] (warn|error) ", l) and "database" in l]
    per_pid = {}
    for l in lines:
        pid = re.search(r"\[(\d+)\]", l).group(1)
        per_pid.setdefault(pid, []).append(l)
    assert per_pid, "the outage was not logged"
    # a start, an end, and a summary per 10 s it lasted. A program's second
    # process that served nothing since the previous test's outage may
    # still be in that one (its start is before offset): at most one start
    # per process, and this outage's start logged by someone.
    most = 2 + int(elapsed // 10) + 1
    for pid, ls in per_pid.items():
        assert len(ls) <= most, "\n".join(ls)
        assert sum("database outage:" in l for l in ls) <= 1, "\n".join(ls)
    assert any("database outage:" in l for l in lines), "\n".join(lines)
    # and the end is logged once the database is back, by a process at its
    # first connect that works: calls of each kind make them connect
    def over():
        for path, body in (("/api/validate", {"license_key": lic["key"], "installation_id": "o1"}),
                           ("/api/heartbeat", {"license_key": lic["key"], "installation_id": "o1"}),
                           ("/api/usage", {"license_key": lic["key"], "feature": "api_calls"})):
            s.post(URL + path, json=body, timeout=10)
        return any("database outage over" in l for l in log_since(offset))
    eventually(over, 15, "a process to log the outage's end")


def _lock_waiters(fn_name):
    """Backends waiting for a lock in a statement calling fn_name."""
    return sql1("SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE %s",
                "%" + fn_name + "%")


def _hold(lic_id):
    """An operator's open transaction holding the license's row and its
    usage counter."""
    holder = db()
    holder.autocommit = False
    cur = holder.cursor()
    cur.execute("SELECT 1 FROM licenses WHERE id = %s FOR UPDATE", (lic_id,))
    cur.execute("SELECT 1 FROM usage_counters WHERE license_id = %s FOR UPDATE",
                (lic_id,))
    assert cur.rowcount == 1
    return holder


def _one_slow_process(program):
    """Restarts the stack with one process per program and program's
    statements waiting up to 25 s for a lock; returns the configuration
    to restore."""
    with open(CONFIG) as f:
        conf = f.read()
    assert re.search(r"^processes *=", conf, re.M), conf
    assert not re.search(r"^(statement|%s_lock)_timeout_ms" % program, conf,
                         re.M)
    restart_with_config(re.sub(r"^processes *=.*$", "processes = 1", conf,
                                flags=re.M).rstrip("\n") +
                         "\n%s_lock_timeout_ms = 25000\n"
                         "statement_timeout_ms = 25000\n" % program)
    return conf


def _others_answered(ex, others, call, field):
    """Three calls of each of others (call(lic, i), 20 s timeout) on ex's
    threads: per license, each answer's (status, body[field])."""
    def client(lic):
        out = []
        for i in range(3):
            try:
                r = call(lic, i)
            except requests.Timeout:
                pytest.fail("another license's call waited for the held one")
            out.append((r.status_code, r.json().get(field)))
        return out
    return list(ex.map(client, others))


def test_a_locked_license_delays_no_other_license():
    """While an operator's transaction holds one license's row and counter
    and a usage call of that license waits for it, 20 other licenses'
    usage calls are counted and answered: none waits for the held one.
    Once the holder ends, the waiting call is counted too, and every count
    is exact. The stack runs with one process per program, and usage's
    statements wait up to 25 s (lock_timeout and statement_timeout) for
    this: a batch waiting for the held license would hold every call of
    the process behind it past the others' 20 s, so the test fails however
    fast the machine is."""
    conf = _one_slow_process("usage")
    holder = None
    try:
        plan = make_plan(features="sso,api_calls",
                         limits="installations=10,api_calls_per_month=1000000")
        locked = issue(plan=plan)
        others = [issue(plan=plan) for _ in range(20)]
        body = {"license_key": locked["key"], "feature": "api_calls",
                "idempotency_key": "held-call"}
        r = requests.post(URL + "/api/usage", json={
            "license_key": locked["key"], "feature": "api_calls"}, timeout=30)
        assert r.status_code == 200, r.text
        holder = _hold(locked["id"])
        with concurrent.futures.ThreadPoolExecutor(21) as ex:
            held = ex.submit(requests.post, URL + "/api/usage", json=body,
                             timeout=90)
            eventually(lambda: _lock_waiters("licd_usage_add_batch") > 0, 30,
                       "the held license's usage call to wait for its lock",
                       interval=0.01)

            answers = _others_answered(ex, others, lambda lic, i: (
                requests.post(URL + "/api/usage", json={
                    "license_key": lic["key"], "feature": "api_calls",
                    "idempotency_key": "o-%d" % i}, timeout=20)), "used")
            assert answers == [[(200, 1), (200, 2), (200, 3)]] * 20, answers
            # answered while the held call still waits
            assert not held.done(), \
                "the held call was answered before the others: " + \
                held.result().text
            assert _lock_waiters("licd_usage_add_batch") == 1
            holder.rollback()
            holder.close()
            holder = None
            r = held.result()
        assert r.status_code == 200 and r.json()["used"] == 2, r.text
        for lic, n in [(locked, 2)] + [(o, 3) for o in others]:
            assert sql("SELECT (SELECT sum(used) FROM usage_counters WHERE"
                       " license_id = %s), (SELECT count(*) FROM usage_log"
                       " WHERE license_id = %s)", lic["id"], lic["id"]) == \
                [(n, n)], lic["id"]
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
        restart_with_config(conf)


def test_a_locked_license_delays_no_other_licenses_activation_or_seat():
    """As usage's: while an operator's transaction holds a node-locked and
    a floating license and their validate calls (an activation, a seat to
    take) wait for them, 20 other licenses' new installations and seats
    are written and answered: no batch waits for a held license, the held
    calls wait alone. Once the holder ends they are answered too. One
    process per program, and validate's statements wait up to 25 s, so a
    batch waiting for a held license would hold the others past their
    20 s however fast the machine is."""
    conf = _one_slow_process("validate")
    holder = None
    try:
        node = make_plan(limits="installations=10")
        seats = make_plan(limits="installations=10", extra=(
            "--seat-model", "floating", "--seat-ttl", "60"))
        held_lics = [issue(plan=node), issue(plan=seats)]
        others = [issue(plan=node if i % 2 else seats) for i in range(20)]
        holder = db()
        holder.autocommit = False
        holder.cursor().execute(
            "SELECT 1 FROM licenses WHERE id IN (%s, %s) FOR UPDATE",
            tuple(lic["id"] for lic in held_lics))

        def validate(lic, iid, timeout):
            return requests.post(URL + "/api/validate", json={
                "license_key": lic["key"], "installation_id": iid},
                timeout=timeout)
        with concurrent.futures.ThreadPoolExecutor(22) as ex:
            held = [ex.submit(validate, lic, "held", 90) for lic in held_lics]
            eventually(lambda: (_lock_waiters("licd_activate_batch"),
                                _lock_waiters("licd_seat_batch")) == (1, 1),
                       30, "the held licenses' calls to wait for their locks",
                       interval=0.01)

            answers = _others_answered(ex, others, lambda lic, i: (
                validate(lic, "o-%d" % i, 20)), "valid")
            assert answers == [[(200, True)] * 3] * 20, answers
            assert [h.done() for h in held] == [False, False], \
                [h.result().text for h in held if h.done()]
            holder.rollback()
            holder.close()
            holder = None
            rs = [h.result() for h in held]
        assert [(r.status_code, r.json().get("valid")) for r in rs] == \
            [(200, True)] * 2, [r.text for r in rs]
        assert sql("SELECT count(*) FROM installations WHERE license_id ="
                   " ANY (%s::uuid[]) AND status = 'active'",
                   [lic["id"] for lic in held_lics + others]) == [(62,)]
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
        restart_with_config(conf)


def test_a_locked_licenses_calls_answer_503_with_retry_after():
    """An operator's transaction holds one license's row and counter:
    that license's activations and usage calls are answered 503
    SERVICE_UNAVAILABLE with Retry-After after lock_timeout_ms, nothing
    counted or activated, while other licenses' calls are answered 200;
    once the lock is gone the license works again."""
    plan = make_plan(features="sso,api_calls",
                     limits="installations=1000,api_calls_per_month=1000000000")
    locked = issue(plan=plan)
    others = [issue(plan=plan) for _ in range(5)]
    s = requests.Session()
    r = s.post(URL + "/api/usage", json={"license_key": locked["key"],
                                          "feature": "api_calls"}, timeout=10)
    assert r.status_code == 200, r.text
    holder = _hold(locked["id"])

    def call(lic, kind):
        if kind == "activate":
            path, body = "/api/validate", {
                "license_key": lic["key"],
                "installation_id": "l-" + uuid.uuid4().hex[:12]}
        else:
            path, body = "/api/usage", {"license_key": lic["key"],
                                        "feature": "api_calls"}
        r = requests.post(URL + path, json=body, timeout=30)
        return (lic is locked, kind, r.status_code,
                r.headers.get("Retry-After"), r.text[:200])

    try:
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            answers = list(ex.map(lambda a: call(*a), [
                (lic, kind) for lic in [locked] * 3 + others
                for kind in ("activate", "usage")]))
    finally:
        holder.rollback()
        holder.close()
    mine = [a for a in answers if not a[0]]
    theirs = [a for a in answers if a[0]]
    assert [a for a in mine if a[2] != 200] == []
    assert len(theirs) == 6
    assert [a for a in theirs if not (a[2] == 503 and a[3] == "1"
                                      and "busy" in a[4])] == []
    assert sql("SELECT (SELECT sum(used) FROM usage_counters WHERE license_id"
               " = %s), (SELECT count(*) FROM installations WHERE license_id"
               " = %s)", locked["id"], locked["id"]) == [(1, 0)]
    r = s.post(URL + "/api/usage", json={"license_key": locked["key"],
                                          "feature": "api_calls"}, timeout=10)
    assert r.status_code == 200 and r.json()["used"] == 2, r.text


# --- supervision ------------------------------------------------------------

def _stat(pid):
    """(state, start time) of a process, or None when there is none."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], fields[19]


def _gone(pid, started=None):
    """Not running (a zombie not yet reaped by init counts as gone); with
    started (_stat's start time when it ran), a process reusing the pid
    since does not count: pids come round quickly on a busy machine."""
    st = _stat(pid)
    return st is None or st[0] == "Z" or (started is not None and
                                           st[1] != started)


def _starts(pids):
    return {p: st[1] for p, st in ((p, _stat(p)) for p in pids) if st}


def _group(pgid):
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True,
                         text=True, check=True).stdout
    return [int(p) for p, g in (l.split() for l in out.splitlines())
            if int(g) == pgid and not _gone(int(p))]


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _stack_pids():
    """Every process the stack started: each program's process group,
    nginx and its workers, PostgreSQL and its backends."""
    pids = set()
    d = os.path.join(RUN_DIR, "pid")
    for f in os.listdir(d):
        pids.update(_group(int(open(os.path.join(d, f)).read())))
    rt = open(os.path.join(RUN_DIR, "runtime-dir")).read().strip()
    for pidfile in (os.path.join(rt, "nginx.pid"),
                    os.path.join(rt, "pg", "data", "postmaster.pid")):
        master = int(open(pidfile).readline())
        pids.add(master)
        pids.update(_children(master))
    return pids


def _healthz_when(pred, timeout=10):
    """The first /healthz answer pred accepts (its cache lasts 1 s)."""
    return poll(lambda: requests.get(URL + "/healthz", timeout=10), pred, timeout,
                "a /healthz answer as wanted")


def test_killed_master_takes_its_workers_and_stop_leaves_nothing(database):
    """SIGKILL usage's prefork master under load: its workers exit with it,
    status says usage is stopped and /healthz says so (503), start brings
    it back (serving again); then stop ends every process the stack
    started, and start again."""
    lic = metered(limit=10 ** 9)

    def use():
        return ("usage", "POST", "/api/usage",
                {"license_key": lic["key"], "feature": "api_calls"})

    pidfile = os.path.join(RUN_DIR, "pid", "usage.pid")
    master = int(open(pidfile).read())
    workers = _children(master)
    assert len(workers) >= 2
    load = Load([use], threads=4)
    restored = False
    try:
        load.wait(lambda a: len(a) >= 40, "40 answers")
        starts = _starts(workers + [master])
        os.kill(master, 9)
        eventually(lambda: all(_gone(p, t) for p, t in starts.items()), 15,
                   "the workers to end with their master")
        def status():
            return subprocess.run(os.environ["LICD_STACK_STATUS"], shell=True,
                                  capture_output=True, text=True)
        poll(status, lambda p: re.search(r"^usage\s+stopped$", p.stdout, re.M), 10,
             "status to say usage stopped")
        assert status().returncode == 1
        # /healthz tells: usage is down, the rest and the database are not
        h = _healthz_when(lambda h: h.status_code == 503 and
                          h.json()["programs"]["usage"]["status"] != "ok")
        assert h.headers["Retry-After"] == "1"
        progs = h.json()["programs"]
        assert set(progs) == {"validate", "heartbeat", "usage", "revoke",
                              "checkout", "webhook"}
        assert all(progs[p]["status"] == "ok" for p in progs if p != "usage"), progs
        assert h.json()["database"] == "ok"
        r = requests.get(URL + "/healthz/usage", timeout=10)
        assert r.status_code == 502 and _json(r), r.text   # from nginx
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE", r.text
        run(os.environ["LICD_STACK_START"])
        restored = True
        n = load.count()
        load.wait(lambda a: any(x[0] == 200 for x in a[n:]), "usage served again", 15)
    finally:
        answers = load.finish()
        if not restored:
            run(os.environ["LICD_STACK_START"])
    assert {a[0] for a in answers} <= {200, 502, 503}, \
        [a for a in answers if a[0] not in (200, 502, 503)][:5]
    assert all(a[1] for a in answers)
    assert _healthz_when(lambda h: h.status_code == 200).json()["status"] == "ok"
    new_master = int(open(pidfile).read())
    assert new_master != master and len(_children(new_master)) == len(workers)

    before = _starts(_stack_pids())
    assert len(before) > 10
    try:
        run(os.environ["LICD_STACK_STOP"])
        eventually(lambda: all(_gone(p, t) for p, t in before.items()), 10,
                   "every process of the stack to end: " + subprocess.run(
                       ["ps", "-o", "pid,pgid,args", "-p", ",".join(map(str, before))],
                       capture_output=True, text=True).stdout)
    finally:
        run(os.environ["LICD_STACK_START"])
    assert wait_healthy()


# --- /healthz and the log ---------------------------------------------------

def test_healthz_reports_every_program_and_each_has_its_own():
    h = requests.get(URL + "/healthz", timeout=10)
    assert h.status_code == 200, h.text
    doc = h.json()
    assert doc["status"] == "ok" and doc["database"] == "ok"
    assert isinstance(doc["log_dropped"], int)
    for p in ("validate", "heartbeat", "usage", "revoke", "checkout", "webhook"):
        assert doc["programs"][p]["status"] == "ok", doc
        # each process checks its database at most once a second, and a
        # process still in its reconnect backoff after an earlier test's
        # outage answers 503 until it is over
        r = poll(lambda: requests.get(URL + "/healthz/" + p, timeout=10),
                 lambda r: r.status_code == 200, 10, "/healthz/%s to answer 200" % p)
        assert r.json()["program"] == p, r.text
        assert r.json()["database"] == "ok"
        assert requests.head(URL + "/healthz/" + p, timeout=10).status_code == 200
    assert requests.get(URL + "/healthz/nothing", timeout=10).status_code == 404


def test_healthz_during_an_outage(database):
    database("stop")
    h = _healthz_when(lambda h: h.status_code == 503)
    assert h.json()["database"] == "unreachable"
    assert h.json()["status"] == "unavailable"
    r = poll(lambda: requests.get(URL + "/healthz/usage", timeout=10),
             lambda r: r.status_code == 503, 10, "/healthz/usage to answer 503")
    assert r.json()["database"] == "unreachable"
    database("start")
    assert _healthz_when(lambda h: h.status_code == 200).json()["database"] == "ok"


def _program_pids():
    d = os.path.join(RUN_DIR, "pid")
    pids = []
    for f in sorted(os.listdir(d)):
        pids += _group(int(open(os.path.join(d, f)).read()))
    return pids


def _logged_by_all(path, text, pids, timeout=10):
    def seen():
        with open(path, errors="replace") as f:
            have = {m for m in re.findall(r"\[(\d+)\] \w+ " + re.escape(text),
                                          f.read())}
        return {str(p) for p in pids} <= have
    return eventually(seen, timeout, "%r logged by every process" % text)


def test_logrotate_and_every_process_reopens_its_log():
    """deploy/local.sh rotate --force (logrotate, the shipped config): every
    process of every program reopens licd.log, and requests after it are
    logged in the new file, none in the rotated one."""
    log = CFG["log_file"]
    pids = _program_pids()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    subprocess.run([os.path.join(root, "deploy", "local.sh"), "rotate", RUN_DIR,
                    "--force"], check=True, capture_output=True)
    assert os.path.exists(log + ".1")
    assert _logged_by_all(log, "log reopened", pids), "not every process reopened"
    rid = "rot-" + uuid.uuid4().hex
    r = requests.get(URL + "/healthz/usage", headers={"X-Request-Id": rid}, timeout=10)
    assert r.status_code == 200
    eventually(lambda: rid in open(log).read(), 5, "request %s in the new log" % rid)
    assert rid not in open(log + ".1").read()


def test_unwritable_log_counts_dropped_lines():
    """licd.log pointed at /dev/full (every write fails, as on a full disk)
    and reopened: the lines are counted and /healthz reports them; once the
    file is writable again the log says how many were lost."""
    log = CFG["log_file"]
    pids = _program_pids()
    before = requests.get(URL + "/healthz", timeout=10).json()["log_dropped"]
    os.rename(log, log + ".keep")
    try:
        os.symlink("/dev/full", log)
        for f in os.listdir(os.path.join(RUN_DIR, "pid")):
            os.kill(int(open(os.path.join(RUN_DIR, "pid", f)).read()), 1)
        # each process's "log reopened" line is the first to be dropped
        h = _healthz_when(lambda h: h.json()["log_dropped"] > before and all(
            p["log_dropped"] > 0 for p in h.json()["programs"].values()))
        assert h.status_code == 200     # a log that fails is not an outage
    finally:
        os.unlink(log)
        os.rename(log + ".keep", log)
        for f in os.listdir(os.path.join(RUN_DIR, "pid")):
            os.kill(int(open(os.path.join(RUN_DIR, "pid", f)).read()), 1)
    assert _logged_by_all(log, "log reopened", pids)
    eventually(lambda: re.search(r"warn log: \d+ lines could not be written",
                                 open(log).read()), 5, "the count of lines lost logged")


# --- the lifecycle job's lock -----------------------------------------------

class Gate:
    """Webhook receiver counting deliveries per notification id; the first
    delivery of each id in `hold` waits until the test opens its gate."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import json
        self.seen = {}
        self.arrived = {}
        self.gates = {}
        self.lock = threading.Lock()
        gate = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                i = doc["id"]
                with gate.lock:
                    gate.seen[i] = gate.seen.get(i, 0) + 1
                    first = gate.seen[i] == 1
                    ev = gate.gates.get(i)
                    gate.arrived.setdefault(i, threading.Event()).set()
                if first and ev is not None:
                    ev.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]

    def hold(self, i):
        self.gates[i] = threading.Event()
        self.arrived.setdefault(i, threading.Event())

    def close(self):
        for g in self.gates.values():
            g.set()
        self.srv.shutdown()
        self.srv.server_close()


def test_lifecycle_that_loses_its_session_delivers_nothing_twice():
    """The job's backend is terminated while it delivers X, and a second
    run starts at once, takes the lock and is delivering Y when the first
    gets its answer for X: the first records X as sent on a new session,
    cannot take the lock again and stops; the second delivers the rest.
    Nothing is delivered twice, then or by any later run."""
    from test_lifecycle import HOOK_SECRET, flush, job_env
    from util import BIN, set_clock, sql, sql1

    gate = Gate()
    try:
        flush()
        lic = issue()
        ids = [sql1("INSERT INTO notifications (kind, license_id, payload)"
                    " VALUES ('test.fault', %s, '{}') RETURNING id", lic["id"])
               for _ in range(4)]
        x, y = str(ids[0]), str(ids[1])
        gate.hold(x)
        gate.hold(y)
        env = job_env(LICD_NOTIFY_WEBHOOK_URL=gate.url,
                      LICD_NOTIFY_WEBHOOK_SECRET=HOOK_SECRET, LICD_NOTIFY_BATCH="1")
        job = [os.path.join(BIN, "licd-lifecycle")]
        first = subprocess.Popen(job, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert gate.arrived[x].wait(60), "the first run never delivered"
        holder = sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                     " AND granted AND objid = %s", 7318412093 & 0xffffffff)
        assert len(holder) == 1
        assert sql1("SELECT pg_terminate_backend(%s)", holder[0][0])
        second = subprocess.Popen(job, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert gate.arrived[y].wait(60), "the second run did not take over"
        gate.gates[x].set()              # the first run learns X went out
        out1, err1 = first.communicate(timeout=60)
        gate.gates[y].set()
        out2, err2 = second.communicate(timeout=60)
        assert second.returncode == 0, out2 + err2
        assert first.returncode == 1 and "another run holds the lock" in err1, \
            out1 + err1
        assert sql1("SELECT webhook_sent_at IS NOT NULL FROM notifications"
                    " WHERE id = %s", ids[0])
        # later runs, an hour on: whatever is pending now is sent once
        set_clock(3600)
        try:
            p = subprocess.run(job, env=env, capture_output=True, text=True,
                               timeout=120)
            assert p.returncode == 0, p.stdout + p.stderr
        finally:
            set_clock(0)
        assert {k: v for k, v in gate.seen.items() if int(k) in ids} == \
            {str(i): 1 for i in ids}, gate.seen
        assert sql1("SELECT count(*) FROM notifications WHERE id = ANY(%s)"
                    " AND status = 'delivered'", ids) == 4
    finally:
        gate.close()
