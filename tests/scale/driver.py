"""The scale test's load and scenarios, run by tests/scale/scale.sh inside
the lb namespace. Clients call validate, heartbeat and usage through lb's
nginx and retry as a client library does: on a refused or broken
connection, 502, 503 and 504, with backoff and the same idempotency key.
Every call must end answered; the figures (failed attempts, seconds until
service was whole again) are printed. Ends with "N passed, N failed".
"""
import http.client
import http.server
import json
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import uuid

import psycopg2

# the FastCGI client of the integration suite
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from util import connect, fcgi_call, fcgi_request  # noqa: E402

LB = os.environ["LB_ADDR"]
DBS = [os.environ["DB1"], os.environ["DB2"]]
CTL = shlex.split(os.environ["SCALE_CTL"])
BIN = os.environ["LICD_BIN_DIR"]
CALL_DEADLINE = 60.0        # a call gives up after this long
WORKERS = 6
SEATS = 3
INSTALLATIONS = 5           # more than the seats: some must be refused

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok    %s" % what, flush=True)
    else:
        failed += 1
        print("FAIL  %s" % what, flush=True)


def ctl(*args, check_rc=True):
    p = subprocess.run(CTL + list(args), capture_output=True, text=True,
                       timeout=120)
    if check_rc and p.returncode != 0:
        raise RuntimeError("%s: %s %s" % (args, p.stdout, p.stderr))
    return p


def licctl(*args):
    p = subprocess.run([os.path.join(BIN, "licctl")] + list(args),
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("licctl %s: %s" % (args, p.stderr))
    return p.stdout


def primary():
    """A connection to whichever database accepts writes."""
    return psycopg2.connect(
        "host=%s port=5432,5432 dbname=licd user=licd "
        "target_session_attrs=read-write connect_timeout=3" % ",".join(DBS))


def fence(on):
    """default_transaction_read_only on db2, for every session."""
    c = psycopg2.connect("host=%s dbname=licd user=postgres connect_timeout=3 "
                         "options='-c default_transaction_read_only=off'"
                         % DBS[1])
    c.autocommit = True
    cur = c.cursor()
    cur.execute("ALTER SYSTEM %s" % ("SET default_transaction_read_only = on"
                                     if on else
                                     "RESET default_transaction_read_only"))
    cur.execute("SELECT pg_reload_conf()")
    c.close()


def wait_for(what, fn, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


class Log:
    """Every attempt: (start, end, op, outcome) with outcome 'ok' or the
    failure (status or exception); every call's end result."""

    def __init__(self):
        self.mu = threading.Lock()
        self.attempts = []
        self.calls = []         # (op, ok, answer)
        self.usage_keys = {}    # idempotency key -> answered 200

    def attempt(self, t0, t1, op, outcome):
        with self.mu:
            self.attempts.append((t0, t1, op, outcome))

    def failures(self, since, until):
        with self.mu:
            return [a for a in self.attempts
                    if a[3] != "ok" and since <= a[0] <= until]

    def first_ok_after(self, t, op=None):
        with self.mu:
            oks = [a[1] for a in self.attempts if a[3] == "ok" and a[0] >= t
                   and (op is None or a[2] == op)]
        return min(oks) if oks else None


def call(log, op, path, body):
    """One call as a client library makes it: retried with backoff on
    anything that says 'not now', given up after CALL_DEADLINE."""
    end = time.monotonic() + CALL_DEADLINE
    delay = 0.05
    data = json.dumps(body)
    while True:
        t0 = time.monotonic()
        retry_after = None
        try:
            c = http.client.HTTPConnection(LB, 80, timeout=35)
            c.request("POST", path, data,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            c.close()
            if r.status in (502, 503, 504):
                outcome = "http %d" % r.status
                retry_after = r.getheader("Retry-After")
            else:
                # a 500 is an answer, not retried, and never right here
                log.attempt(t0, time.monotonic(), op,
                            "ok" if r.status < 500 else "http %d" % r.status)
                return r.status, json.loads(raw)
        except (OSError, http.client.HTTPException) as e:
            outcome = type(e).__name__
        log.attempt(t0, time.monotonic(), op, outcome)
        if time.monotonic() > end:
            return None, outcome
        wait = delay
        if retry_after and retry_after.isdigit():
            wait = max(wait, min(float(retry_after), 2.0))
        time.sleep(wait * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 1.0)


class Load:
    """WORKERS threads, each calling validate, heartbeat and usage in turn
    until stopped; bounded by the scenarios, never open-ended."""

    def __init__(self, log, seat_key, usage_key):
        self.log, self.seat_key, self.usage_key = log, seat_key, usage_key
        self.stop_ev = threading.Event()
        self.threads = []
        self.errors = []
        self.valid_iids = set()

    def worker(self, n):
        i = 0
        try:
            while not self.stop_ev.is_set():
                iid = "inst-%d" % ((n + i) % INSTALLATIONS)
                op = ("validate", "heartbeat", "usage")[i % 3]
                i += 1
                if op == "usage":
                    key = uuid.uuid4().hex
                    st, ans = call(self.log, op, "/api/usage",
                                   {"license_key": self.usage_key,
                                    "feature": "api", "quantity": 1,
                                    "installation_id": "u-%d" % n,
                                    "idempotency_key": key})
                    with self.log.mu:
                        self.log.usage_keys[key] = st == 200
                        self.log.calls.append((op, st == 200, ans))
                    continue
                st, ans = call(self.log, op, "/api/" + op,
                               {"license_key": self.seat_key,
                                "installation_id": iid})
                ok = st == 200 and ans.get("code") in (
                    "VALID", "TOO_MANY_INSTALLATIONS",
                    "INSTALLATION_NOT_ACTIVE")
                if ok and op == "validate" and ans["code"] == "VALID":
                    with self.log.mu:
                        self.valid_iids.add(iid)
                with self.log.mu:
                    self.log.calls.append((op, ok, ans))
        except Exception as e:      # a bug here must fail the run
            self.errors.append(repr(e))

    def start(self):
        for n in range(WORKERS):
            t = threading.Thread(target=self.worker, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(CALL_DEADLINE + 40)
        return not any(t.is_alive() for t in self.threads)


def served_since(host, offset, path):
    with open(os.path.join(os.environ["SCALE_DIR"], host, "licd.log"),
              errors="replace") as f:
        f.seek(offset)
        return any(("POST %s status=200" % path) in ln for ln in f)


def log_size(host):
    return os.path.getsize(os.path.join(os.environ["SCALE_DIR"], host,
                                        "licd.log"))


LB_ERROR_LOG = os.path.join(os.environ["SCALE_DIR"], "lb", "error.log")


def passed_on_after_send(offset):
    """Calls nginx had sent to a program that died before answering, and
    sent to the other host (non_idempotent); a refused connect is not one."""
    with open(LB_ERROR_LOG, errors="replace") as f:
        f.seek(offset)
        return sum(1 for ln in f if "[error]" in ln and
                   "while reading response header from upstream" in ln)


def run_for(seconds):
    """The load runs on for a window around each fault: the window the
    checks and figures that follow look at (not a wait for an event; those
    are wait_for's)."""
    time.sleep(seconds)


def figures(log, t_fault, t_until):
    fails = log.failures(t_fault, t_until)
    last = max((a[1] for a in fails), default=t_fault)
    return len(fails), last - t_fault


# --- the programs' own listeners --------------------------------------------

def fcgi_get(addr, path):
    """One FastCGI GET straight to a program (unix path or (host, port));
    returns the Status line's code."""
    got = fcgi_call(addr, "GET", path, timeout=5)
    return got[0] if got else None


def junk(addr, data):
    """A connection that brings no request, or half a record."""
    s = connect(addr, 5)
    if data:
        s.sendall(data)
    s.close()


def listeners():
    """Each program answers on TCP and on its unix socket, also after more
    connections that bring nothing than it has threads."""
    d = os.environ["SCALE_DIR"]
    ok = True
    for host, ip in (("app1", "198.18.0.11"), ("app2", "198.18.0.12")):
        tcp = (ip, 9001)
        sock = os.path.join(d, host, "sock", "validate.sock")
        for addr in (tcp, sock):
            for i in range(8):
                junk(addr, b"\x01\x01\x00" if i % 2 else b"")
        codes = [fcgi_get(a, "/healthz") for a in (tcp, sock) * 4]
        ok = ok and codes == [200] * 8
    check(ok, "validate answers over TCP and its unix socket on both hosts,"
          " also after connections that brought no request")


def kept_to_programs():
    """lb's established TCP connections to the programs' listeners (ports
    9001-9006 of either app host)."""
    out = subprocess.run(["ss", "-Htn", "state", "established"],
                         capture_output=True, text=True, check=True).stdout
    n = 0
    for ln in out.splitlines():
        peer = ln.split()[-1]
        host, _, port = peer.rpartition(":")
        if host in APP.values() and 9001 <= int(port) <= 9006:
            n += 1
    return n


# --- scenario 4: a change on one host, seen by the other's next call ------------

APP = {"app1": "198.18.0.11", "app2": "198.18.0.12"}
FCGI_PORT = {"validate": 9001, "heartbeat": 9002, "usage": 9003, "revoke": 9004}
FRESH_MIN = 30      # answers on a license before each change and after it


def admin_token():
    with open(os.path.join(os.environ["SCALE_DIR"], "token.txt")) as f:
        return next(ln.split(":", 1)[1].strip() for ln in f
                    if ln.startswith("token:"))


def fcgi_post(host, program, path, body, token=None):
    """A POST straight to a program on one app host: (status, JSON)."""
    data = json.dumps(body).encode()
    params = {b"REQUEST_METHOD": b"POST", b"DOCUMENT_URI": path.encode(),
              b"QUERY_STRING": b"", b"CONTENT_TYPE": b"application/json",
              b"CONTENT_LENGTH": str(len(data)).encode()}
    if token:
        params[b"HTTP_AUTHORIZATION"] = ("Bearer " + token).encode()
    got = fcgi_request((APP[host], FCGI_PORT[program]), params, data, timeout=30)
    if got is None:
        raise RuntimeError("%s on %s closed without an answer" % (program, host))
    return got[0], json.loads(got[2])


def freshness(seat_plan_email, plan):
    """Licenses changed through app1's admin API and through licctl
    (straight to the database) while app2's validate, heartbeat and usage
    answer them without pause: every call sent to app2 after a change was
    acknowledged gets the new state's code. Runs after the failover, so
    whatever app2 keeps is fed by the promoted database."""
    tok = admin_token()
    lics = [json.loads(licctl("license", "issue", "--customer", seat_plan_email,
                              "--plan", plan, "--days", "30", "--json"))
            for _ in range(4)]
    for lic in lics:
        st, ans = fcgi_post("app2", "validate", "/api/validate",
                            {"license_key": lic["key"], "installation_id": "f"})
        if ans.get("code") != "VALID":
            raise RuntimeError("freshness set-up: %s %s" % (st, ans))
    records, errors = [], []
    stop = threading.Event()
    calls = [(i, k) for i in range(len(lics))
             for k in ("validate", "heartbeat", "usage")]

    def one(i, kind):
        body = {"license_key": lics[i]["key"], "installation_id": "f"}
        if kind == "usage":
            body.update(feature="api", quantity=1)
        t0 = time.monotonic()
        st, ans = fcgi_post("app2", kind, "/api/" + kind, body)
        if kind == "usage":
            code = "VALID" if st == 200 else (ans.get("error") or {}).get("code")
        else:
            code = ans.get("code") if st == 200 else "http %d" % st
        records.append((t0, time.monotonic(), i, kind, code))

    def load(n):
        j = n
        try:
            while not stop.is_set():
                one(*calls[j % len(calls)])
                j += 1
        except Exception as e:      # a bug here must fail the run
            errors.append(repr(e))

    events = [[] for _ in lics]     # per license: (sent, acknowledged, code after)

    def enough(i, since):
        return sum(1 for r in list(records) if r[2] == i and r[0] > since) >= FRESH_MIN

    def change(i, code, how):
        last = events[i][-1][1] if events[i] else t_load
        wait_for("%d answers on license %d" % (FRESH_MIN, i),
                 lambda: enough(i, last), 60)
        t0 = time.monotonic()
        if how == "licctl":
            licctl("license", "suspend" if code == "SUSPENDED" else "reinstate",
                   lics[i]["id"])
        else:
            action = {"REVOKED": "revoke", "SUSPENDED": "suspend",
                      "VALID": "reinstate"}[code]
            st, ans = fcgi_post("app1", "revoke", "/api/admin/licenses/%s/%s"
                                % (lics[i]["id"], action), {}, tok)
            if st != 200:
                raise RuntimeError("%s on app1: %s %s" % (action, st, ans))
        events[i].append((t0, time.monotonic(), code))
        for kind in ("validate", "heartbeat", "usage"):     # at once
            one(i, kind)

    threads = [threading.Thread(target=load, args=(n,), daemon=True)
               for n in range(4)]
    t_load = time.monotonic()
    for t in threads:
        t.start()
    try:
        change(0, "REVOKED", "admin")
        for code in ("SUSPENDED", "VALID", "SUSPENDED"):
            change(1, code, "admin")
            change(2, code, "licctl")
        change(3, "SUSPENDED", "admin")
        change(3, "VALID", "admin")
        for i in range(len(lics)):
            wait_for("%d answers on license %d after its last change" % (FRESH_MIN, i),
                     lambda: enough(i, events[i][-1][1]), 60)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    stale, wrong, after = [], [], [[0] * len(e) for e in events]
    for t0, t1, i, kind, code in records:
        ev = events[i]
        k = sum(1 for e in ev if e[1] < t0)
        if any(e[0] < t1 for e in ev[k:]):
            continue                # in flight across a change: either
        want = ev[k - 1][2] if k else "VALID"
        if code != want:
            line = "%s of license %d sent %.1f ms after %s: %s" % (
                kind, i, (t0 - ev[k - 1][1]) * 1000 if k else 0,
                ev[k - 1][2] if k else "the start", code)
            (stale if code == "VALID" and k else wrong).append(line)
        elif k:
            after[i][k - 1] += 1
    short = [(i, n) for i, a in enumerate(after) for n in a if n < FRESH_MIN]
    print("scenario 4: %d changes on app1 and by licctl, %d calls to app2; "
          "answers after each change: %s" % (sum(map(len, events)), len(records),
                                              after), flush=True)
    check(not errors and not stale and not wrong and not short,
          "a change through app1's admin API or licctl is seen by app2's very "
          "next call: %d granted after the change %s, %d other answers %s, "
          "changes with too few calls after them %s %s"
          % (len(stale), stale[:5], len(wrong), wrong[:5], short, errors[:3]))


# --- scenario 3's notification receiver ---------------------------------------

class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__((LB, 9100), Hook)
        self.mu = threading.Lock()
        self.got = []               # notification ids, in arrival order
        self.first = threading.Event()
        self.release = threading.Event()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.mu:
            self.server.got.append(body["id"])
        self.server.first.set()
        # The first delivery is held until the other host's run is over,
        # so the two runs overlap whatever the scheduler does.
        self.server.release.wait(30)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    plan = "scale-" + uuid.uuid4().hex[:8]
    licctl("plan", "set", plan, "--name", plan, "--features", "api",
           "--limits", "installations=%d,api_per_month=100000000" % SEATS)
    licctl("customer", "create", "--email", plan + "@example.com")
    seat = json.loads(licctl("license", "issue", "--customer",
                             plan + "@example.com", "--plan", plan,
                             "--days", "30", "--json"))
    metered = json.loads(licctl("license", "issue", "--customer",
                                plan + "@example.com", "--plan", plan,
                                "--days", "30", "--json"))
    listeners()
    log = Log()
    load = Load(log, seat["key"], metered["key"])
    t_start = time.monotonic()
    load.start()
    wait_for("the first answers", lambda: log.first_ok_after(t_start, "usage"))
    run_for(1.0)
    check(not log.failures(t_start, time.monotonic()),
          "warm-up: every attempt answered through both app hosts")

    # 1. Every program on app1 killed.
    off = {h: log_size(h) for h in ("app1", "app2")}
    lb_err = os.path.getsize(LB_ERROR_LOG)
    t_kill = time.monotonic()
    ctl("app-kill", "app1")
    run_for(3.0)
    n1, rec1 = figures(log, t_kill, time.monotonic())
    passed_on = passed_on_after_send(lb_err)
    print("scenario 1: app1 killed: %d failed attempts, service whole "
          "after %.2f s; %d calls passed on to app2 after reaching app1"
          % (n1, rec1, passed_on), flush=True)
    check(all(served_since("app2", off["app2"], "/api/" + op)
              for op in ("validate", "heartbeat", "usage")),
          "app1 killed: app2 answered validate, heartbeat and usage")
    t_restart = time.monotonic()
    ctl("app-start", "app1")
    off1 = log_size("app1")
    wait_for("app1 back in the upstreams",
             lambda: served_since("app1", off1, "/api/usage"), 30)
    print("scenario 1: app1 restarted, back in service after %.2f s"
          % (time.monotonic() - t_restart), flush=True)

    # 2. The primary lost; the standby promoted.
    off = {h: log_size(h) for h in ("app1", "app2")}
    t_stop = time.monotonic()
    ctl("db-stop", "db1")
    t_promote = time.monotonic()
    ctl("db-promote", "db2")
    t_promoted = time.monotonic()
    wait_for("usage answered by the new primary",
             lambda: log.first_ok_after(t_promoted, "usage"), 60)
    run_for(2.0)
    n2, rec2 = figures(log, t_stop, time.monotonic())
    print("scenario 2: db1 stopped, db2 promoted %.2f s later (pg_ctl "
          "promote -w took %.2f s): %d failed attempts, service whole "
          "after %.2f s" % (t_promote - t_stop, t_promoted - t_promote, n2,
                             rec2), flush=True)
    # 2b. The primary turned read-only for a moment, as a failover manager
    # fences a primary it is about to replace: writes are refused with
    # 25006, which the programs must answer 503 (retried), never 500.
    t_fence = time.monotonic()
    fence(True)
    wait_for("a refused write", lambda: log.failures(t_fence, time.monotonic()), 30)
    t_unfence = time.monotonic()
    fence(False)
    wait_for("usage answered again",
             lambda: log.first_ok_after(t_unfence, "usage"), 30)
    n2b, rec2b = figures(log, t_fence, time.monotonic())
    print("scenario 2b: db2 read-only for %.2f s: %d failed attempts, "
          "service whole %.2f s after it was writable again"
          % (t_unfence - t_fence, n2b, max(0.0, rec2b - (t_unfence - t_fence))),
          flush=True)
    with log.mu:
        errors = sorted({a[3] for a in log.attempts if a[3] == "http 500"})
    check(not errors, "db2 read-only for a moment: writes answered 503 "
          "and retried, never 500 %s" % errors)
    both = all(served_since(h, off[h], "/api/usage") and
               served_since(h, off[h], "/api/validate")
               for h in ("app1", "app2"))
    check(both, "db2 promoted: programs on app1 and app2 reconnected by "
          "themselves (usage and validate answered by both)")
    stopped = load.stop()
    check(stopped and not load.errors,
          "the load stopped within its bounds %s" % (load.errors[:3] or ""))
    # With every call answered, only connections nginx keeps for the next
    # requests are still open (fastcgi_keep_conn, upstream keepalive).
    kept = kept_to_programs()
    check(kept > 0, "nginx keeps its TCP connections to the programs open "
          "between requests (%d open after the load)" % kept)

    with log.mu:
        calls = list(log.calls)
        keys = dict(log.usage_keys)
    unanswered = [c for c in calls if not c[1]]
    check(not unanswered, "every call answered after the client's retries "
          "(%d calls, %d attempts; unanswered: %s)"
          % (len(calls), len(log.attempts), unanswered[:3]))
    conn = primary()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_is_in_recovery(), host(inet_server_addr())")
    rec, addr = cur.fetchone()
    check(not rec and addr == DBS[1], "db2 is the primary now (%s)" % addr)
    cur.execute("SELECT idempotency_key, count(*) FROM usage_log "
                "WHERE license_id = %s GROUP BY 1", (metered["id"],))
    logged = dict(cur.fetchall())
    cur.execute("SELECT coalesce(sum(used), 0) FROM usage_counters "
                "WHERE license_id = %s", (metered["id"],))
    counter = cur.fetchone()[0]
    acked = {k for k, ok in keys.items() if ok}
    lost = acked - set(logged)
    doubled = {k for k, n in logged.items() if n > 1}
    stray = set(logged) - set(keys)
    print("usage: %d calls acknowledged, %d in the log, counter %d; "
          "lost %d, doubled %d" % (len(acked), len(logged), counter,
                                   len(lost), len(doubled)), flush=True)
    check(not lost and not doubled and not stray and
          counter == len(acked) == len(logged) == len(keys),
          "usage after failover: counter = acknowledged calls "
          "(0 lost, 0 doubled)")
    cur.execute("SELECT count(*) FROM installations WHERE license_id = %s "
                "AND status = 'active'", (seat["id"],))
    active = cur.fetchone()[0]
    check(active == SEATS and len(load.valid_iids) == SEATS,
          "seat limit held: %d active, %d installations ever answered VALID,"
          " limit %d" % (active, len(load.valid_iids), SEATS))

    # 3. The lifecycle job on both app hosts at once.
    cur.execute("SELECT array_agg(licd_notify('scale_notice', %s, NULL, "
                "'{}')) FROM generate_series(1, 5)", (seat["id"],))
    ids = {str(i) for i in cur.fetchone()[0]}
    rcv = Receiver()
    threading.Thread(target=rcv.serve_forever, daemon=True).start()
    runs = [subprocess.Popen(CTL + ["lifecycle", h], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for h in ("app1", "app2")]
    outs = [None, None]
    try:
        wait_for("the first delivery", rcv.first.is_set, 30)
        # The run that is not delivering must end on its own while the
        # other holds the lock.
        wait_for("one run to end", lambda: any(r.poll() is not None
                                               for r in runs), 30)
    finally:
        rcv.release.set()
    for i, r in enumerate(runs):
        outs[i] = r.communicate(timeout=60)[0]
    rcv.shutdown()
    held = [o for o in outs if "holds the lock" in o]
    with rcv.mu:
        got = list(rcv.got)
    print("scenario 3: lifecycle on app1 and app2: %d run(s) found the lock"
          " held; %d deliveries for %d notifications"
          % (len(held), len(got), len(ids)), flush=True)
    check(len(held) == 1 and all(r.returncode == 0 for r in runs),
          "lifecycle fired on both hosts: one ran, the other found the lock"
          " held %s" % ([o[-300:] for o in outs] if len(held) != 1 else ""))
    check(ids <= set(got) and len(got) == len(set(got)),
          "every notification sent once, none twice")
    cur.execute("SELECT count(*) FROM notifications WHERE id = ANY(%s::bigint[])"
                " AND status = 'delivered'", (list(ids),))
    check(cur.fetchone()[0] == len(ids), "the notifications are marked delivered")
    conn.close()

    # 4. A change on one host, the calls on the other.
    freshness(plan + "@example.com", plan)

    print("FIGURES app_kill_failed_attempts=%d app_kill_recover_s=%.2f "
          "db_failover_failed_attempts=%d db_failover_recover_s=%.2f "
          "calls=%d attempts=%d" % (n1, rec1, n2, rec2, len(calls),
                                    len(log.attempts)), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback
        traceback.print_exc()
        check(False, "scenario aborted: %r" % e)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
