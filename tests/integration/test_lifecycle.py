"""licd-lifecycle against the real database, with the SQL clock moved
instead of waiting: warnings once on the right day, expiry, suspension after
grace, stale installations, the advisory lock, and delivery to an SMTP
server and a webhook receiver started here (failures, backoff, SIGKILL)."""
import hashlib
import hmac
import json
import os
import re
import signal
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from util import (BIN, CONFIG, eventually, heartbeat, issue, sql, sql1, touches_written,
                  unique, validate)

DAY = 86400
HOOK_SECRET = "nwh_test_secret"


# --- receivers ------------------------------------------------------------

class Hook:
    """HTTP receiver: records every POST; can fail or be slow on demand."""

    def __init__(self):
        self.requests = []
        self.fail = {}          # notification id -> failures still to give
        self.delay = 0.0        # how long each answer takes (a slow receiver)
        self.busy = 0           # requests being answered
        self.lock = threading.Lock()
        hook = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                with hook.lock:
                    hook.busy += 1
                try:
                    self.answer()
                finally:
                    with hook.lock:
                        hook.busy -= 1

            def answer(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.delay:
                    time.sleep(hook.delay)
                doc = json.loads(body)
                with hook.lock:
                    left = hook.fail.get(doc["id"], 0)
                    if left:
                        hook.fail[doc["id"]] = left - 1
                    hook.requests.append({"doc": doc, "body": body,
                                          "headers": dict(self.headers),
                                          "ok": not left})
                self.send_response(500 if left else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/licd-hook" % self.srv.server_address[1]

    def ok_ids(self):
        with self.lock:
            return [r["doc"]["id"] for r in self.requests if r["ok"]]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Smtp:
    """A minimal SMTP server (what libcurl's smtp needs) keeping messages."""

    def __init__(self):
        self.messages = []
        smtp = self

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 test ESMTP\r\n")
                rcpt, frm = [], None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip()
                    up = cmd.upper()
                    if up.startswith(("EHLO", "HELO")):
                        self.wfile.write(b"250-test\r\n250 8BITMIME\r\n")
                    elif up.startswith("MAIL FROM:"):
                        frm = cmd[10:].strip(" <>")
                        self.wfile.write(b"250 ok\r\n")
                    elif up.startswith("RCPT TO:"):
                        rcpt.append(cmd[8:].strip(" <>"))
                        self.wfile.write(b"250 ok\r\n")
                    elif up == "DATA":
                        self.wfile.write(b"354 go\r\n")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        smtp.messages.append({"from": frm, "to": rcpt,
                                              "data": data.decode(errors="replace")})
                        rcpt = []
                        self.wfile.write(b"250 queued\r\n")
                    elif up == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "smtp://127.0.0.1:%d/licd.test" % self.srv.server_address[1]

    def ids(self):
        return [re.search(r"Message-ID: <licd-notification-(\d+)@licd>", m["data"]).group(1)
                for m in self.messages]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def smtp():
    s = Smtp()
    yield s
    s.close()


# --- running the job ------------------------------------------------------

def job_env(hook=None, smtp=None, **extra):
    env = dict(os.environ, LICD_CONFIG=CONFIG)
    for k in list(env):
        if k.startswith(("LICD_SMTP", "LICD_NOTIFY")):
            del env[k]
    if hook:
        env["LICD_NOTIFY_WEBHOOK_URL"] = hook.url
        env["LICD_NOTIFY_WEBHOOK_SECRET"] = HOOK_SECRET
    if smtp:
        env["LICD_SMTP_URL"] = smtp.url
        env["LICD_SMTP_FROM"] = "licenses@vendor.example"
    env.update(extra)
    return env


def run_job(*args, hook=None, smtp=None, check=True, **extra):
    p = subprocess.run([os.path.join(BIN, "licd-lifecycle")] + list(args),
                       capture_output=True, text=True, timeout=300,
                       env=job_env(hook, smtp, **extra))
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def counts(out):
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+(\d+) ", out, re.M)}


def notes(lic_id, kind=None):
    return sql("SELECT kind, payload FROM notifications WHERE license_id = %s"
               " AND (%s::text IS NULL OR kind = %s) ORDER BY id",
               lic_id, kind, kind)


def flush(hook=None, smtp=None):
    """Delivers everything already due, so a test sees only its own."""
    run_job(hook=hook, smtp=smtp)
    sql("UPDATE notifications SET status = 'delivered', delivered_at = now()"
        " WHERE status = 'pending'")


# --- tasks ----------------------------------------------------------------

def test_help_and_dry_run():
    p = run_job("--help")
    assert p.stdout.startswith("usage:")
    lic = issue(days=5)
    p = run_job("--dry-run")
    assert "dry run" in p.stdout
    assert notes(lic["id"]) == []  # nothing was queued
    p = run_job("--bogus", check=False)
    assert p.returncode == 2


def test_expiry_warnings_once_on_the_right_day(clock):
    lic = issue(days=40)
    run_job()
    assert notes(lic["id"], "expiry_warning") == []
    clock(9 * DAY)                      # 31 days left
    run_job()
    assert notes(lic["id"], "expiry_warning") == []
    clock(11 * DAY)                     # 29 days left
    run_job()
    run_job()
    w = notes(lic["id"], "expiry_warning")
    assert [n[1]["days"] for n in w] == [30]
    clock(33 * DAY + 3600)              # under 7 days
    run_job()
    run_job()
    clock(39 * DAY + 3600)              # under 1 day
    run_job()
    run_job()
    assert [n[1]["days"] for n in notes(lic["id"], "expiry_warning")] == [30, 7, 1]
    assert validate(lic["key"]).json()["code"] == "VALID"
    clock(40 * DAY + 60)                # past expiry
    out = run_job().stdout
    assert counts(out)["expire"] >= 1
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "expired"
    assert validate(lic["key"]).json()["code"] == "EXPIRED"
    run_job()
    assert len(notes(lic["id"], "license_expired")) == 1
    assert sql1("SELECT count(*) FROM audit_log WHERE target_id = %s"
                " AND action = 'license.expire' AND actor = 'lifecycle'", lic["id"]) == 1


def test_renewal_earns_new_warnings(clock):
    lic = issue(days=20)
    clock(14 * DAY)                     # 6 days left
    run_job()
    assert [n[1]["days"] for n in notes(lic["id"], "expiry_warning")] == [7]
    sql("UPDATE licenses SET expires_at = expires_at + interval '30 days' WHERE id = %s",
        lic["id"])
    clock(44 * DAY)                     # 6 days before the new date
    run_job()
    assert [n[1]["days"] for n in notes(lic["id"], "expiry_warning")] == [7, 7]


def test_grace_respected_then_suspended_for_non_payment(clock):
    lic = issue(days=30)
    cust = sql1("SELECT customer_id FROM licenses WHERE id = %s", lic["id"])
    sql("INSERT INTO subscriptions (provider, provider_subscription_id, customer_id,"
        " license_id, plan_code, status, current_period_end, grace_until)"
        " VALUES ('stripe', %s, %s, %s, %s, 'past_due', now(), now() + interval '7 days')",
        unique("sub"), cust, lic["id"], lic["plan"])
    sql("UPDATE licenses SET expires_at = now() - interval '1 hour',"
        " grace_until = now() + interval '7 days' WHERE id = %s", lic["id"])
    run_job()
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "active"
    assert validate(lic["key"]).json()["code"] == "VALID"
    clock(6 * DAY)
    run_job()
    assert sql1("SELECT status FROM licenses WHERE id = %s", lic["id"]) == "active"
    clock(7 * DAY + 60)
    out = run_job().stdout
    assert counts(out)["suspend-unpaid"] >= 1
    row = sql("SELECT status, status_reason FROM licenses WHERE id = %s", lic["id"])
    assert row == [("suspended", "non-payment")]
    assert validate(lic["key"]).json()["code"] == "SUSPENDED"
    run_job()
    assert len(notes(lic["id"], "license_suspended")) == 1


def test_usage_warnings_once_per_threshold():
    from test_usage import metered, usage
    lic = metered(limit=100)
    usage(lic["key"], quantity=79)
    run_job()
    assert notes(lic["id"], "usage_warning") == []
    usage(lic["key"], quantity=1)
    run_job()
    run_job()
    usage(lic["key"], quantity=20)
    run_job()
    run_job()
    w = [(n[1]["feature"], n[1]["percent"]) for n in notes(lic["id"], "usage_warning")]
    assert w == [("api_calls", 80), ("api_calls", 100)]


def test_stale_installation_freed_and_seat_reusable(clock):
    lic = issue(limits="installations=2")
    assert validate(lic["key"], "old").json()["code"] == "VALID"
    assert validate(lic["key"], "busy").json()["code"] == "VALID"
    assert validate(lic["key"], "third").json()["code"] == "TOO_MANY_INSTALLATIONS"
    clock(10 * DAY)
    assert heartbeat(lic["key"], "busy").json()["code"] == "VALID"
    touches_written()                   # its last_seen is written behind
    clock(15 * DAY)                     # "old" silent for 15 days, "busy" for 5
    run_job()
    st = dict(sql("SELECT installation_id, status FROM installations WHERE license_id = %s",
                  lic["id"]))
    assert st == {"old": "inactive", "busy": "active"}
    assert heartbeat(lic["key"], "old").json()["code"] == "INSTALLATION_NOT_ACTIVE"
    assert validate(lic["key"], "third").json()["code"] == "VALID"
    assert validate(lic["key"], "old").json()["code"] == "TOO_MANY_INSTALLATIONS"


def test_offline_installation_is_not_stale(clock):
    from util import licctl_json
    lic = issue(limits="installations=2", days=120)
    licctl_json("lease", "offline", "--license", lic["id"], "--installation",
                "airgap", "--days", "60")
    clock(30 * DAY)
    run_job()
    assert sql1("SELECT status FROM installations WHERE license_id = %s AND"
                " installation_id = 'airgap'", lic["id"]) == "active"
    clock(75 * DAY)
    run_job()
    assert sql1("SELECT status FROM installations WHERE license_id = %s AND"
                " installation_id = 'airgap'", lic["id"]) == "inactive"


def test_retention_deletes_old_log_rows_not_counters(clock):
    from test_usage import metered, usage
    lic = metered(limit=1000)
    usage(lic["key"], quantity=5)
    sql("UPDATE usage_log SET at = now() - interval '500 days' WHERE license_id = %s",
        lic["id"])
    run_job()
    assert sql1("SELECT count(*) FROM usage_log WHERE license_id = %s", lic["id"]) == 0
    assert sql1("SELECT sum(used) FROM usage_counters WHERE license_id = %s", lic["id"]) == 5


# --- the lock -------------------------------------------------------------

def test_two_runs_at_once_one_acts(hook):
    flush()
    ids = []
    for _ in range(6):
        lic = issue(days=90)
        ids.append(sql1("SELECT licd_notify('test_notice', %s, NULL, '{}')", lic["id"]))
    hook.delay = 0.4
    a = subprocess.Popen([os.path.join(BIN, "licd-lifecycle")], env=job_env(hook),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eventually(lambda: hook.requests, 5, "the first run's first delivery")
    b = run_job(hook=hook)
    assert "holds the lock" in b.stdout
    assert a.wait(60) == 0
    out = a.stdout.read()
    assert "delivered" in out
    got = hook.ok_ids()
    for i in ids:
        assert got.count(str(i)) == 1
    assert len(got) == len(set(got))


# --- delivery -------------------------------------------------------------

def test_delivery_by_email_and_webhook_once(hook, smtp):
    flush()
    lic = issue(email=unique("mail") + "@customer.example", days=90)
    nid = sql1("SELECT licd_notify('license_issued', %s, NULL,"
               " jsonb_build_object('license_key', %s::text))", lic["id"], lic["key"])
    run_job(hook=hook, smtp=smtp)
    run_job(hook=hook, smtp=smtp)
    assert smtp.ids() == [str(nid)]
    m = smtp.messages[0]
    assert m["to"] == [lic["email"]] and m["from"] == "licenses@vendor.example"
    assert "Subject: Your license key" in m["data"] and lic["key"] in m["data"]
    assert hook.ok_ids() == [str(nid)]
    r = hook.requests[0]
    assert r["doc"]["kind"] == "license_issued" and r["doc"]["license_id"] == lic["id"]
    assert r["headers"]["Idempotency-Key"] == "licd-notification-%d" % nid
    t, v1 = re.match(r"t=(\d+),v1=([0-9a-f]{64})$", r["headers"]["Licd-Signature"]).groups()
    want = hmac.new(HOOK_SECRET.encode(), t.encode() + b"." + r["body"],
                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, want)
    row = sql("SELECT status, attempts, email_sent_at IS NOT NULL, webhook_sent_at IS NOT NULL"
              " FROM notifications WHERE id = %s", nid)
    assert row == [("delivered", 1, True, True)]


def test_failing_receiver_backs_off_then_gets_it_once(hook, smtp, clock):
    flush()
    lic = issue(days=90)
    nid = sql1("SELECT licd_notify('test_notice', %s, NULL, '{}')", lic["id"])
    hook.fail[str(nid)] = 2
    run_job(hook=hook, smtp=smtp)
    row = sql("SELECT status, attempts, extract(epoch FROM next_attempt_at - licd_now()),"
              " last_error FROM notifications WHERE id = %s", nid)[0]
    assert row[0] == "pending" and row[1] == 1 and 50 <= row[2] <= 61
    assert "500" in row[3]
    run_job(hook=hook, smtp=smtp)        # not due yet: nothing sent
    assert len(hook.requests) == 1
    clock(61)
    run_job(hook=hook, smtp=smtp)
    row = sql("SELECT status, attempts, extract(epoch FROM next_attempt_at - licd_now())"
              " FROM notifications WHERE id = %s", nid)[0]
    assert row[0] == "pending" and row[1] == 2 and 110 <= row[2] <= 121
    clock(61 + 121)
    run_job(hook=hook, smtp=smtp)
    run_job(hook=hook, smtp=smtp)
    assert [r["ok"] for r in hook.requests] == [False, False, True]
    assert hook.ok_ids() == [str(nid)]
    assert smtp.ids() == [str(nid)]     # the e-mail went once, on the first run
    assert sql("SELECT status, attempts FROM notifications WHERE id = %s", nid) == \
        [("delivered", 3)]


def test_killed_mid_run_loses_and_duplicates_nothing(hook, clock):
    flush()
    ids = [sql1("SELECT licd_notify('test_notice', %s, NULL, '{}')", issue(days=90)["id"])
           for _ in range(8)]
    hook.delay = 0.3
    p = subprocess.Popen([os.path.join(BIN, "licd-lifecycle")], env=job_env(hook),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eventually(lambda: len(hook.requests) >= 3, 10, "3 deliveries before the kill",
               interval=0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    hook.delay = 0
    # the request in flight at the kill is answered
    eventually(lambda: hook.busy == 0, 5, "the receiver to answer what it holds")
    sent_before = set(hook.ok_ids())
    assert 0 < len(sent_before) < 8
    clock(301)                          # the dead run's claims expire
    run_job(hook=hook)
    run_job(hook=hook)
    got = hook.ok_ids()
    # nothing lost
    assert set(str(i) for i in ids) <= set(got)
    assert sql1("SELECT count(*) FROM notifications WHERE id = ANY(%s)"
                " AND status = 'delivered'", ids) == 8
    # at most the one request in flight at the kill is repeated, and it
    # carries the same Idempotency-Key, so the receiver can drop it
    dups = [i for i in set(got) if got.count(i) > 1]
    assert len(dups) <= 1
    keys = {}
    for r in hook.requests:
        keys.setdefault(r["doc"]["id"], set()).add(r["headers"]["Idempotency-Key"])
    assert all(len(v) == 1 for v in keys.values())
