"""Shared fixtures for the integration suite.

tests/run.sh starts a throw-away stack (PostgreSQL, the FastCGI programs,
nginx) and passes it in through the environment:

  LICD_URL      http://127.0.0.1:PORT (nginx)
  LICD_CONFIG   the stack's licd.conf (database_url, keys_dir, ...)
  LICD_BIN      directory with licctl
  LICD_RUN_DIR  the run directory (admin-token.txt, log/)
  LICD_PG_STOP / LICD_PG_START   shell commands stopping/starting PostgreSQL

Every request goes over real HTTP through nginx; the database is read
directly only to check what a request did or did not change.
"""
import base64
import json
import os
import subprocess
import time
import uuid

import psycopg2
import pytest
import requests

URL = os.environ.get("LICD_URL", "http://127.0.0.1:8080")
CONFIG = os.environ.get("LICD_CONFIG", "run/licd.conf")
BIN = os.environ.get("LICD_BIN", "build/bin")
RUN_DIR = os.environ.get("LICD_RUN_DIR", "run")


def config():
    cfg = {}
    with open(CONFIG) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                k, v = line.split("=", 1)
                cfg[k.strip()] = v.strip()
    return cfg


CFG = config()
SESSION = requests.Session()


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


def db():
    conn = psycopg2.connect(CFG["database_url"])
    conn.autocommit = True
    return conn


def sql(query, *args):
    with db() as conn, conn.cursor() as cur:
        cur.execute(query, args)
        try:
            return cur.fetchall()
        except psycopg2.ProgrammingError:
            return None


def sql1(query, *args):
    rows = sql(query, *args)
    return rows[0][0] if rows else None


# validate and heartbeat queue a due last_seen/version/metadata refresh for
# their writer thread, which writes every touch_flush_ms (100)
# (fcgi/lib/touch.h): what a test reads back after a call may lag by that.
FLUSH_WAIT = 0.5


def flushed():
    """Waits until what earlier calls queued has been written."""
    time.sleep(FLUSH_WAIT)


def eventually(fn, timeout=5.0):
    """fn()'s first truthy value within timeout, else its last value."""
    end = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(0.05)


def log_text():
    return open(CFG["log_file"], encoding="utf-8", errors="replace").read()


def logged(rid, timeout=5.0):
    """The log lines of request `rid`. The programs buffer their info
    lines for up to log_flush_ms (1000; fcgi/lib/log.h)."""
    return eventually(
        lambda: [l for l in log_text().splitlines() if "rid=%s " % rid in l],
        timeout)


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


def validate(key, iid="inst-1", **kw):
    body = {"license_key": key, "installation_id": iid}
    body.update(kw)
    return api("/api/validate", body)


def heartbeat(key, iid="inst-1", **kw):
    body = {"license_key": key, "installation_id": iid}
    body.update(kw)
    return api("/api/heartbeat", body)


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


def admin_token():
    with open(os.path.join(RUN_DIR, "admin-token.txt")) as f:
        return f.read().strip()


def admin(path, body=None, method="POST", token=None):
    return api(path, body if body is not None else ({} if method == "POST" else None),
               method=method,
               headers={"Authorization": "Bearer " + (token or admin_token())})


def wait_healthy(timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if api("/healthz", method="GET", timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture
def lic():
    """A fresh license: features sso,workflows,reports; 3 installations."""
    return issue()
