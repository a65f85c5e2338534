"""Helpers of the integration suite: HTTP calls through nginx, the
database, licctl, waits, raw sockets (FastCGI records straight to a
program, raw HTTP to nginx), and control of the test stack. Tests import
them from here; conftest.py holds the fixtures.

tests/run.sh starts a throw-away stack (PostgreSQL, the FastCGI programs,
nginx) and passes it in through the environment:

  LICD_URL      http://127.0.0.1:PORT (nginx)
  LICD_CONFIG   the stack's licd.conf (database_url, keys_dir, ...)
  LICD_BIN      directory with licctl
  LICD_RUN_DIR  the run directory (admin-token.txt, log/, pid/)
  LICD_PG_STOP / LICD_PG_START / LICD_PG_RESTART   PostgreSQL
  LICD_STACK_START / LICD_STACK_STOP / LICD_STACK_STATUS   the whole stack

Every request goes over real HTTP through nginx; the database is read
directly only to check what a request did or did not change.

Waiting: nothing here sleeps for a fixed time in place of an event.
eventually() polls a condition and raises, naming what it waited for,
when the condition does not hold in time; touches_written() proves that
the write-behind of validate and heartbeat has run.

tests/scale/driver.py imports the FastCGI client from here as well; this
module therefore reads the stack's configuration only when it exists.
"""
import base64
import concurrent.futures
import inspect
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
import uuid

import psycopg2
import psycopg2.errors
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
URL = os.environ.get("LICD_URL", "http://127.0.0.1:8080")
CONFIG = os.environ.get("LICD_CONFIG", "run/licd.conf")
BIN = os.environ.get("LICD_BIN", "build/bin")
RUN_DIR = os.environ.get("LICD_RUN_DIR", "run")


def config(path=CONFIG):
    cfg = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                k, v = line.split("=", 1)
                cfg[k.strip()] = v.strip()
    return cfg


CFG = config() if os.path.exists(CONFIG) else {}
SESSION = requests.Session()


# --- waiting ----------------------------------------------------------------

class WaitTimeout(AssertionError):
    """A wait whose condition did not hold in time."""


def _described(fn):
    try:
        return " ".join(inspect.getsource(fn).split())[:300]
    except (OSError, TypeError):
        return repr(fn)


def eventually(fn, timeout=5.0, what=None, interval=0.05):
    """fn()'s first truthy value within timeout seconds. Raises
    WaitTimeout naming what it waited for (`what`, a text or a function
    giving one at that moment; else fn's source) and fn's last value when
    there is none: a wait that times out fails the test, it never passes a
    falsy value on."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            what = what() if callable(what) else what
            raise WaitTimeout("timed out after %gs waiting for %s; last value: %r"
                              % (timeout, what or _described(fn), v))
        time.sleep(interval)


def poll(fn, pred, timeout=10.0, what=None, interval=0.1):
    """Calls fn() until pred(its value) holds and returns that value;
    raises WaitTimeout with the last value (a response's text) if it does
    not within timeout."""
    last = []

    def ok():
        last[:] = [fn()]
        return pred(last[0])
    try:
        eventually(ok, timeout, what or _described(pred),
                   interval)
    except WaitTimeout as e:
        v = last[0] if last else None
        raise WaitTimeout("%s; last: %s" % (e, getattr(v, "text", repr(v)))) from None
    return last[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- HTTP through nginx -----------------------------------------------------

def api(path, body=None, method="POST", headers=None, data=None,
        ctype="application/json", params=None, timeout=30):
    """One HTTP request through nginx; body is JSON-encoded unless data
    (raw bytes/str) is given."""
    h = {}
    if ctype and method != "GET":
        h["Content-Type"] = ctype
    h.update(headers or {})
    if body is not None and data is None:
        data = json.dumps(body)
    return SESSION.request(method, URL + path, data=data, headers=h,
                           params=params, timeout=timeout)


def error_code(r):
    assert r.headers["Content-Type"].startswith("application/json"), r.text
    return r.json()["error"]["code"]


def json_error(r, status, code):
    """r is the contract's JSON error: exactly this status and code."""
    assert r.status_code == status, (r.status_code, r.text)
    assert error_code(r) == code, r.text
    return r


def validate(key, iid="inst-1", **kw):
    body = {"license_key": key, "installation_id": iid}
    body.update(kw)
    return api("/api/validate", body)


def heartbeat(key, iid="inst-1", **kw):
    body = {"license_key": key, "installation_id": iid}
    body.update(kw)
    return api("/api/heartbeat", body)


def admin_token():
    with open(os.path.join(RUN_DIR, "admin-token.txt")) as f:
        return f.read().strip()


def admin(path, body=None, method="POST", token=None):
    return api(path, body if body is not None else ({} if method == "POST" else None),
               method=method,
               headers={"Authorization": "Bearer " + (token or admin_token())})


def healthy():
    try:
        return api("/healthz", method="GET", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wait_healthy(timeout=60):
    """Until /healthz answers 200 (every program reaches the database);
    raises when it does not within timeout."""
    return eventually(healthy, timeout, "/healthz to answer 200", interval=0.2)


# --- the database -----------------------------------------------------------

def db():
    conn = psycopg2.connect(CFG["database_url"])
    conn.autocommit = True
    return conn


def sql(query, *args):
    """query, then the license caches' barrier as every writer of licd
    runs it (licd_cache_sync): a change made here is answered by validate
    and heartbeat from the next call on. A database without the barrier
    (an old schema) has nothing to wait for."""
    conn = db()
    try:
        with conn.cursor() as cur:
            # autocommit: query is its own transaction, committed before
            # the barrier (which may not run inside one)
            cur.execute(query, args)
            try:
                rows = cur.fetchall()
            except psycopg2.ProgrammingError:
                rows = None
            try:
                cur.execute("CALL licd_cache_sync()")
            except psycopg2.errors.UndefinedFunction:
                pass
            return rows
    finally:
        conn.close()


def sql1(query, *args):
    rows = sql(query, *args)
    return rows[0][0] if rows else None


def seats_disagree(ids=None):
    """The licenses (of ids, or all) whose license_seats row (none: 0)
    differs from their count of active installations, as (id, row, count)."""
    return sql("""SELECT l.id, coalesce(s.active, 0), count(i.license_id)
                    FROM licenses l
                    LEFT JOIN license_seats s ON s.license_id = l.id
                    LEFT JOIN installations i ON i.license_id = l.id
                                             AND i.status = 'active'
                   WHERE %s::uuid[] IS NULL OR l.id = ANY (%s::uuid[])
                   GROUP BY l.id, s.active
                  HAVING coalesce(s.active, 0) <> count(i.license_id)""",
               ids, ids)


def floating_unseated():
    """Active installations of floating licenses without a seat expiry, as
    (license, installation): none may be (licd_license_seats_set), as the
    seat's reads by index installations_seated rely on."""
    return sql("""SELECT i.license_id, i.installation_id FROM installations i
                    JOIN licenses l ON l.id = i.license_id
                   WHERE l.seat_model = 'floating' AND i.status = 'active'
                     AND i.seat_expires_at IS NULL""")


def set_clock(secs):
    """Moves licd_now(), the clock of every SQL function and program, secs
    seconds from the real time (the `clock` fixture puts it back)."""
    sql("UPDATE licd_clock SET offset_s = %s", int(secs))


# --- licctl and test data ---------------------------------------------------

def licctl(*args, check=True):
    env = dict(os.environ, LICD_CONFIG=CONFIG)
    p = subprocess.run([os.path.join(BIN, "licctl")] + list(args),
                       capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError("licctl %s: %s" % (" ".join(args), p.stderr))
    return p


def licctl_json(*args):
    return json.loads(licctl(*args, "--json").stdout)


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def make_plan(features="sso,workflows,reports", limits="installations=3",
              code=None, extra=()):
    code = code or unique("plan")
    licctl("plan", "set", code, "--name", code, "--features", features,
           "--limits", limits, *extra)
    return code


def issue(plan=None, features=None, limits=None, domains=None, days=30,
          expires=None, perpetual=False, email=None):
    """Issues a license with licctl; returns its JSON (id, key, ...)."""
    plan = plan or make_plan()
    email = email or unique("cust") + "@example.com"
    licctl("customer", "create", "--email", email)
    args = ["license", "issue", "--customer", email, "--plan", plan]
    if perpetual:
        args.append("--perpetual")
    elif expires:
        args += ["--expires", expires]
    else:
        args += ["--days", str(days)]
    if features is not None:
        args += ["--features", features]
    if limits is not None:
        args += ["--limits", limits]
    if domains is not None:
        args += ["--domains", domains]
    return licctl_json(*args)


# --- JWTs -------------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


# --- the programs' log ------------------------------------------------------

def log_text():
    return open(CFG["log_file"], encoding="utf-8", errors="replace").read()


def logged(rid, timeout=5.0):
    """The log lines of request `rid`, waiting for them: the programs
    buffer their info lines for up to log_flush_ms (1000; fcgi/lib/log.h)."""
    return eventually(
        lambda: [l for l in log_text().splitlines() if "rid=%s " % rid in l],
        timeout, "the log line of request %s" % rid)


def log_since(offset):
    """The log's lines from byte offset on (its size before some calls)."""
    with open(CFG["log_file"], "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def served_by(rids, offset=0, timeout=5.0):
    """{rid: (program, pid)}: the process that logged each request, from
    the log's lines after offset, waiting for them (log_flush_ms)."""
    found = {}
    pat = re.compile(r"Z (\w+)\[(\d+)\] .*\brid=(\S+) ")

    def all_found():
        for line in log_since(offset):
            m = pat.search(line)
            if m and m.group(3) in rids:
                found[m.group(3)] = (m.group(1), int(m.group(2)))
        return len(found) == len(rids)
    eventually(all_found, timeout, lambda: "the log lines of %s" % sorted(
        set(rids) - set(found)))
    return found


# --- the license cache (fcgi/lib/cache.h) ------------------------------------

def log_size():
    return os.path.getsize(CFG["log_file"])


def hot(lic, iid, programs=("validate", "heartbeat")):
    """Calls until each program has answered this installation from memory
    in every worker process that served one of these calls (libfcgi's
    accepts are uneven: a worker may serve none)."""
    calls = {"validate": validate, "heartbeat": heartbeat}
    pat = re.compile(r"Z (\w+)\[(\d+)\] .*license=%s( cache=hit)?"
                     % lic["id"])
    offset = log_size()
    served, hits = set(), set()

    def all_hot():
        for p in programs:
            assert calls[p](lic["key"], iid).json()["code"] == "VALID"
        for line in log_since(offset):
            m = pat.search(line)
            if m:
                served.add((m.group(1), int(m.group(2))))
                if m.group(3):
                    hits.add((m.group(1), int(m.group(2))))
        return served <= hits and {p for p, _ in hits} == set(programs)
    eventually(all_hot, 30, lambda: "every serving process answering from "
               "memory (served %s, from memory %s)" % (served, hits),
               interval=0.01)
    return hits



# --- the write-behind of validate and heartbeat -----------------------------

def _workers(prog):
    """The pids of a program's serving processes: its prefork master's
    children, or the process itself when it runs alone."""
    pid = int(open(os.path.join(RUN_DIR, "pid", prog + ".pid")).read())
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                          text=True).stdout.split()
    return [int(k) for k in kids] or [pid]


def touches_written(timeout=30.0):
    """Returns once every validate and heartbeat process has written the
    last_seen/version/metadata refreshes and counts it had queued before
    the call: SIGHUP makes each write its queue at once and then log
    "SIGHUP: queued writes written" (fcgi/lib/touch.h, touch_sync;
    http.c). Each prefork master passes the signal on to its workers."""
    offset = os.path.getsize(CFG["log_file"])
    want = []
    for prog in ("validate", "heartbeat"):
        want += ["%s[%d] " % (prog, pid) for pid in _workers(prog)]
        pid = int(open(os.path.join(RUN_DIR, "pid", prog + ".pid")).read())
        os.kill(pid, signal.SIGHUP)

    def missing():
        # from the start of a log file moved away and opened anew since
        off = offset if os.path.getsize(CFG["log_file"]) >= offset else 0
        lines = [l for l in log_since(off) if "SIGHUP: queued writes written" in l]
        return [w for w in want if not any(w in l for l in lines)]
    eventually(lambda: not missing(), timeout,
               "every validate and heartbeat process to write its queue")


# --- raw sockets ------------------------------------------------------------

def runtime_dir(run_dir=RUN_DIR):
    """Where the stack keeps its sockets (a short path: RUN_DIR may be long)."""
    rt_file = os.path.join(run_dir, "runtime-dir")
    return open(rt_file).read().strip() if os.path.exists(rt_file) else run_dir


def sock_path(program):
    return os.path.join(runtime_dir(), "sock", program + ".sock")


def fcgi_record(rtype, content, rid=1):
    return struct.pack(">BBHHBx", 1, rtype, rid, len(content), 0) + content


def fcgi_nv(name, value):
    def ln(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return ln(len(name)) + ln(len(value)) + name + value


def connect(addr, timeout=10):
    """A stream socket to a unix path or a (host, port)."""
    s = socket.socket(socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET,
                      socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def read_all(s):
    """Everything the peer sends until it closes."""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def fcgi_request(addr, params, body=b"", timeout=10, raw=None):
    """One FastCGI request straight to a program's socket (a unix path or
    (host, port)), as nginx would send it, with params as given (bytes
    names and values; a None value is left out), or the bytes `raw`.
    Returns (status, headers, body) or None when the program closed the
    connection without an answer."""
    s = connect(addr, timeout)
    try:
        if raw is None:
            p = b"".join(fcgi_nv(k, v) for k, v in params.items() if v is not None)
            raw = fcgi_record(1, struct.pack(">HB5x", 1, 0))
            for i in range(0, len(p), 65535):
                raw += fcgi_record(4, p[i:i + 65535])
            raw += fcgi_record(4, b"")
            for i in range(0, len(body), 65535):
                raw += fcgi_record(5, body[i:i + 65535])
            raw += fcgi_record(5, b"")
        s.sendall(raw)
        data = read_all(s)
    finally:
        s.close()
    stdout, pos = b"", 0
    while pos + 8 <= len(data):
        _, rtype, _, clen, plen = struct.unpack(">BBHHB", data[pos:pos + 7])
        if rtype == 6:
            stdout += data[pos + 8:pos + 8 + clen]
        pos += 8 + clen + plen
    if not stdout:
        return None
    head, _, rest = stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(l.split(": ", 1) for l in lines if ": " in l)
    return int(headers["Status"].split()[0]), headers, rest


def fcgi_call(addr, method, path, body=None, timeout=10):
    """A well-formed FastCGI request: (status, headers, body bytes)."""
    data = b"" if body is None else json.dumps(body).encode()
    params = {b"REQUEST_METHOD": method.encode(), b"DOCUMENT_URI": path.encode(),
              b"QUERY_STRING": b"",
              b"CONTENT_LENGTH": str(len(data)).encode() if body is not None else b""}
    if body is not None:
        params[b"CONTENT_TYPE"] = b"application/json"
    return fcgi_request(addr, params, data, timeout)


def raw_http(host, port, data, timeout=15, wrap=None):
    """Sends bytes to an HTTP server and reads until it closes; wrap (a
    function of the socket, e.g. an SSL context's) is applied first.
    Returns (head as text, body bytes)."""
    with socket.create_connection((host, port), timeout=timeout) as plain:
        s = wrap(plain) if wrap else plain
        try:
            s.sendall(data)
            out = read_all(s)
        finally:
            if wrap:
                s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


# --- the stack --------------------------------------------------------------

def run(cmd):
    """A shell command of the stack's (LICD_PG_*, LICD_STACK_*)."""
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def restart_with_config(text):
    """The whole stack stopped, its licd.conf replaced by text, started and
    healthy again."""
    with open(CONFIG, "w") as f:
        f.write(text)
    run(os.environ["LICD_STACK_STOP"])
    run(os.environ["LICD_STACK_START"])
    wait_healthy()


def pg(what):
    """PostgreSQL of the stack: "stop", "start" or "restart"."""
    run(os.environ["LICD_PG_" + what.upper()])


def pids():
    """pid file name -> the master pid of each program."""
    d = os.path.join(RUN_DIR, "pid")
    return {f: open(os.path.join(d, f)).read().strip() for f in os.listdir(d)}


def workers(program):
    """Pids of the worker processes under a program's prefork master."""
    master = pids()[program + ".pid"]
    out = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout
    return sorted(out.split())
