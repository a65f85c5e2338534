"""liblicd-client end to end: licd-check (the library's command) against a
private licd stack over HTTP through nginx, with a 60-second lease_ttl.

The stack is this module's own (deploy/local.sh in a temp dir, its own
port), so stopping its nginx, rotating its keys and revoking its licenses
touch no other test. The licd-check used is the sanitizer build with this
stack's URL, issuer and JWKS compiled in and the test-only injectable
clock (LICD_CHECK_NOW); production builds have no such clock.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from util import ROOT, eventually, free_port, poll

LOCAL = os.path.join(ROOT, "deploy", "local.sh")
LICCTL = os.path.join(os.environ.get("LICD_BIN", os.path.join(ROOT, "build/bin")),
                      "licctl")
PROGRAMS = os.path.join(ROOT, "build", "asan", "bin")

# licd-check's documented exit codes
EXIT = {"VALID": 0, "REFRESH_DUE": 10, "GRACE": 11, "EXPIRED": 20,
        "REVOKED": 21, "SUSPENDED": 22, "INVALID_KEY": 23,
        "DOMAIN_NOT_ALLOWED": 24, "FEATURE_NOT_LICENSED": 25,
        "TOO_MANY_INSTALLATIONS": 26, "NOT_ACTIVATED": 27,
        "CLOCK_SUSPECT": 28}
SEAT_TTL = 30
DAY = 86400


class Stack:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="licd-client-it.")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ, LICD_BIN_DIR=PROGRAMS, LICD_LICCTL=LICCTL,
                        LICD_PROCESSES="1", LICD_THREADS="2",
                        LICD_CONF_EXTRA="lease_ttl = 60")
        self.env.pop("LICD_CONFIG", None)
        self.sh("start")
        self.config = os.path.join(self.dir, "licd.conf")

    def sh(self, *args):
        subprocess.run([LOCAL, args[0], self.dir] + list(args[1:]) +
                       ([str(self.port)] if args[0] in ("start", "nginx-start")
                        else []),
                       check=True, env=self.env, capture_output=True)

    def licctl(self, *args, check=True):
        p = subprocess.run([LICCTL] + list(args), capture_output=True,
                           text=True, env=dict(self.env, LICD_CONFIG=self.config))
        if check and p.returncode != 0:
            raise AssertionError("licctl %s: %s" % (args, p.stderr))
        return p

    def jwks(self):
        return requests.get(self.url + "/.well-known/jwks.json", timeout=10).json()

    def nginx_up(self):
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def restart_programs(self):
        """After a key rotation: the programs load keys at start."""
        piddir = os.path.join(self.dir, "pid")
        pids = []
        for f in os.listdir(piddir):
            with open(os.path.join(piddir, f)) as fh:
                pids.append(int(fh.read().strip()))
            os.unlink(os.path.join(piddir, f))
        for p in pids:
            os.kill(p, signal.SIGTERM)
        def gone(p):
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                return True
            return False
        eventually(lambda: all(gone(p) for p in pids), 15, "the programs to stop")
        self.sh("start")

    def stop(self):
        subprocess.run([LOCAL, "stop", self.dir], env=self.env,
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Outage:
    """Owns an nginx outage of the private stack and always ends it."""

    def __init__(self, stack):
        self.stack = stack

    def __enter__(self):
        self.stack.sh("nginx-stop")
        assert not self.stack.nginx_up()
        return self

    def __exit__(self, *exc):
        self.stack.sh("nginx-start")
        eventually(self.stack.nginx_up, 15, "nginx to come back")


def build_check(stack, out, jwks):
    path = out + ".jwks.json"
    with open(path, "w") as f:
        json.dump(jwks, f)
    p = subprocess.run(["make", "-s", "-C", ROOT, "licd-check-embedded",
                        "LICD_CHECK_OUT=" + out, "LICD_CLIENT_URL=" + stack.url,
                        "LICD_CLIENT_ISSUER=" + stack.url,
                        "LICD_CLIENT_JWKS=" + path,
                        "LICD_CLIENT_PRODUCT=client-it"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return out


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    try:
        s.check = build_check(s, os.path.join(s.dir, "licd-check"), s.jwks())
        s.licctl("plan", "set", "cpro", "--name", "cpro", "--features",
                 "sso,reports", "--limits",
                 "installations=5,reports_per_month=1000")
        # Floating: one seat, the shortest seat_ttl licd allows.
        for code, overdraft in (("cfloat", "0"), ("cfloat-od", "1")):
            s.licctl("plan", "set", code, "--name", code, "--features", "sso",
                     "--limits", "installations=1", "--seat-model",
                     "floating", "--seat-ttl", str(SEAT_TTL),
                     "--max-borrow-days", "2", "--overdraft", overdraft)
        yield s
    finally:
        s.stop()


def issue(stack, email, plan="cpro"):
    stack.licctl("customer", "create", "--email", email)
    return json.loads(stack.licctl("license", "issue", "--customer", email,
                                   "--plan", plan, "--days", "30",
                                   "--json").stdout)


class Client:
    """One installation: a license key, an installation id, a state dir."""

    def __init__(self, stack, lic, iid, binary=None):
        self.stack, self.lic, self.iid = stack, lic, iid
        self.binary = binary or stack.check
        self.state = tempfile.mkdtemp(prefix="state.", dir=stack.dir)

    def env(self, now=None):
        e = dict(os.environ, LICD_LICENSE_KEY=self.lic["key"],
                 LICD_STATE_DIR=self.state, LICD_INSTALLATION_ID=self.iid)
        e.pop("LICD_CHECK_NOW", None)
        if now is not None:
            e["LICD_CHECK_NOW"] = str(int(now))
        return e

    def run(self, *args, now=None, binary=None, timeout=60):
        p = subprocess.run([binary or self.binary] + list(args),
                           capture_output=True, text=True, env=self.env(now),
                           timeout=timeout)
        assert p.stdout.strip(), p.stderr
        out = json.loads(p.stdout)
        assert out["exit_code"] == p.returncode
        return p.returncode, out

    def popen(self, *args):
        return subprocess.Popen([self.binary] + list(args),
                                stdout=subprocess.PIPE, text=True,
                                env=self.env())

    def state_file(self):
        names = [n for n in os.listdir(self.state) if n.endswith(".state")]
        assert len(names) == 1, names
        return os.path.join(self.state, names[0])

    def lease(self):
        with open(self.state_file()) as f:
            return json.load(f)["lease"]


def ts(s):
    return int(time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))) - time.timezone


def test_activate_check_and_json(stack):
    c = Client(stack, issue(stack, "act@example.com"), "it-act")
    rc, o = c.run("status")
    assert rc == 0 and o["status"] == "VALID" and o["decision"] == "allow"
    assert o["installation_id"] == "it-act"
    exp = ts(o["lease_expires_at"])
    assert time.time() + 30 < exp <= time.time() + 61
    assert ts(o["license_ends_at"]) > time.time() + 29 * 86400
    assert c.run("check", "sso")[0] == 0
    rc, o = c.run("check", "billing")
    assert rc == EXIT["FEATURE_NOT_LICENSED"] and o["decision"] == "deny"
    # The cache file: 0600, and what it holds verifies with the same lease.
    assert os.stat(c.state_file()).st_mode & 0o777 == 0o600
    assert c.run("heartbeat")[0] == 0
    p = subprocess.run([stack.check, "frobnicate"], capture_output=True,
                       text=True, env=c.env())
    assert p.returncode == 2 and "usage: licd-check" in p.stderr


def test_outage_valid_then_grace_then_mode(stack):
    c = Client(stack, issue(stack, "outage@example.com"), "it-outage")
    rc, o = c.run("refresh")
    assert rc == 0 and o["reached"] is True
    exp = ts(o["lease_expires_at"])
    with Outage(stack):
        # Unreachable: answered from the cache, refresh reported as failed.
        rc, o = c.run("refresh")
        assert rc == 4 and o["reached"] is False and o["status"] == "VALID"
        rc, o = c.run("status")
        assert rc == 0 and o["status"] == "VALID"
        # Time passes (injected): the lease's last quarter, still allowed.
        rc, o = c.run("status", now=exp - 5)
        assert rc == EXIT["REFRESH_DUE"] and o["decision"] == "allow"
        # The lease ends: the vendor's offline grace.
        rc, o = c.run("status", now=exp + 5)
        assert rc == EXIT["GRACE"] and o["decision"] == "allow"
        assert ts(o["grace_ends_at"]) == exp + 7 * 86400
        # A shorter grace of the vendor's choosing.
        rc, o = c.run("--grace", "60", "status", now=exp + 61)
        assert rc == EXIT["EXPIRED"]
        # Grace used up: each mode's answer.
        late = exp + 7 * 86400 + 5
        rc, o = c.run("status", now=late)
        assert rc == EXIT["EXPIRED"] and o["decision"] == "deny"
        rc, o = c.run("--mode", "degrade", "check", "reports", now=late)
        assert o["status"] == "EXPIRED" and o["decision"] == "free_tier"
        rc, o = c.run("--mode", "advisory", "status", now=late)
        assert o["status"] == "EXPIRED" and o["decision"] == "allow"
    # nginx back: the next refresh restores VALID. The mark was pushed a
    # week ahead by the injected clock; licd's time wins over it.
    rc, o = c.run("status")
    assert rc == 0 and o["status"] == "VALID"
    rc, o = c.run("refresh")
    assert rc == 0 and o["reached"] is True
    assert ts(o["lease_expires_at"]) >= exp


def test_clock_set_back_is_suspect_until_licd_answers(stack):
    c = Client(stack, issue(stack, "clock@example.com"), "it-clock")
    assert c.run("refresh")[0] == 0
    back = time.time() - 3600
    with Outage(stack):
        rc, o = c.run("status", now=back)
        assert rc == EXIT["CLOCK_SUSPECT"] and o["decision"] == "deny"
        # Within the tolerance (10 minutes) is not suspect.
        assert c.run("status", now=time.time() - 300)[0] == 0
    # Reachable: the forced refresh takes licd's time, whatever ours says.
    rc, o = c.run("status", now=back)
    assert rc == 0 and o["status"] == "VALID"


def test_revoke_on_next_refresh(stack):
    lic = issue(stack, "revoke@example.com")
    c = Client(stack, lic, "it-revoke")
    assert c.run("refresh")[0] == 0
    stack.licctl("license", "revoke", lic["id"], "--reason", "client test")
    assert c.run("status", "--offline")[0] == 0   # not known yet offline
    rc, o = c.run("refresh")
    assert rc == EXIT["REVOKED"] and o["decision"] == "deny"
    with Outage(stack):
        rc, o = c.run("status")
        assert rc == EXIT["REVOKED"]     # remembered across restarts


def test_usage_offline_counted_once_after_two_replays(stack):
    lic = issue(stack, "usage@example.com")
    c = Client(stack, lic, "it-usage")
    assert c.run("refresh")[0] == 0
    assert c.run("usage", "reports", "2")[0] == 0
    with Outage(stack):
        rc, o = c.run("usage", "reports", "3")
        assert rc == 4 and o["result"] == "queued"
        assert c.run("usage", "reports", "4")[1]["result"] == "queued"
        queue = [n for n in os.listdir(c.state) if n.endswith(".usage")][0]
        saved = open(os.path.join(c.state, queue)).read()
        assert len(saved.splitlines()) == 2
    # First replay.
    assert c.run("flush")[1]["queued"] == 0
    assert not os.path.exists(os.path.join(c.state, queue))
    # Second replay of the same items (as after a crash between sending
    # and rewriting the queue): same idempotency keys, counted once.
    with open(os.path.join(c.state, queue), "w") as f:
        f.write(saved)
    assert c.run("flush")[1]["queued"] == 0
    r = requests.get(stack.url + "/api/usage",
                     params={"license_key": lic["key"]}, timeout=10).json()
    assert r["features"]["reports"]["used"] == 9
    # Over the limit: refused by licd, not queued.
    rc, o = c.run("usage", "reports", "100000")
    assert rc == 5 and o["result"] == "refused"


def test_two_processes_share_a_state_dir(stack):
    lic = issue(stack, "shared@example.com")
    a = Client(stack, lic, "it-shared")
    b = Client(stack, lic, "it-shared")
    b.state = a.state
    assert a.run("refresh")[0] == 0
    procs = []
    for i in range(6):
        who = a if i % 2 else b
        procs.append(who.popen("refresh"))
        procs.append(who.popen("usage", "reports", "1"))
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(o["exit_code"] == 0 for o in outs), outs
    r = requests.get(stack.url + "/api/usage",
                     params={"license_key": lic["key"]}, timeout=10).json()
    assert r["features"]["reports"]["used"] == 6
    # What is on disk is whole and verifies, offline, for both.
    with Outage(stack):
        assert a.run("status")[0] == 0 and b.run("status")[0] == 0
    left = [n for n in os.listdir(a.state) if ".tmp" in n]
    assert left == []


def test_offline_request_and_import(stack):
    lic = issue(stack, "airgap@example.com")
    c = Client(stack, lic, "it-airgap")
    req = os.path.join(c.state, "..", "airgap-req.json")
    assert c.run("request-file", req, "--offline")[0] == 0
    body = json.load(open(req))
    assert body["license_id"] == lic["id"]
    assert body["installation_id"] == "it-airgap" and body["nonce"]
    # The operator's side: licctl takes the file as it is.
    out = stack.licctl("lease", "offline", "--request", req, "--days", "3",
                       "--json").stdout
    lease_file = req + ".lease"
    open(lease_file, "w").write(out)
    rc, o = c.run("import", lease_file, "--offline")
    assert rc == 0 and o["imported"] is True and o["status"] == "VALID"
    assert ts(o["lease_expires_at"]) > time.time() + 2 * 86400
    # The same answer twice, or a lease for someone else: refused.
    assert c.run("import", lease_file, "--offline")[0] == 5
    other = stack.licctl("lease", "offline", "--license", lic["id"],
                         "--installation", "it-elsewhere", "--days", "3").stdout
    open(lease_file, "w").write(other)
    assert c.run("import", lease_file, "--offline")[0] == 5
    # Offline it keeps answering from the imported lease.
    with Outage(stack):
        assert c.run("status", "--offline")[0] == 0


def test_deactivate_frees_the_seat(stack):
    lic = issue(stack, "deact@example.com")
    c = Client(stack, lic, "it-deact")
    assert c.run("refresh")[0] == 0
    rc, o = c.run("deactivate")
    assert rc == 0 and o["deactivated"] is True
    token = open(os.path.join(stack.dir, "admin-token.txt")).read().strip()
    r = requests.get(stack.url + "/api/admin/licenses/" + lic["id"],
                     headers={"Authorization": "Bearer " + token},
                     timeout=10).json()
    inst = [i for i in r["installations"] if i["id"] == "it-deact"]
    assert inst and inst[0]["status"] != "active"
    # It stays deactivated (no automatic re-activation) until asked.
    assert c.run("status")[0] == EXIT["NOT_ACTIVATED"]
    assert c.run("refresh")[0] == 0


def test_recipes_verify_the_same_lease(stack):
    lic = issue(stack, "recipes@example.com")
    c = Client(stack, lic, "it-recipes")
    assert c.run("refresh")[0] == 0
    lease = c.lease()
    jwks = os.path.join(stack.dir, "recipes.jwks.json")
    with open(jwks, "w") as f:
        json.dump(stack.jwks(), f)
    args = [jwks, stack.url, lic["id"], "it-recipes"]
    py = subprocess.run(["/usr/bin/python3",
                         os.path.join(ROOT, "client/examples/verify_lease.py")]
                        + args, input=lease, capture_output=True, text=True)
    node = subprocess.run(["node", os.path.join(ROOT,
                                                "client/examples/verify_lease.js")]
                          + args, input=lease, capture_output=True, text=True,
                          env=dict(os.environ, NODE_PATH="/usr/share/nodejs"))
    assert py.returncode == 0, py.stdout + py.stderr
    assert node.returncode == 0, node.stdout + node.stderr
    assert json.loads(py.stdout) == json.loads(node.stdout)
    claims = json.loads(py.stdout)
    assert claims["iid"] == "it-recipes" and "license_exp" in claims
    # Both refuse another installation's reading of it.
    bad = args[:3] + ["it-other"]
    assert subprocess.run(["/usr/bin/python3", os.path.join(
        ROOT, "client/examples/verify_lease.py")] + bad, input=lease,
        capture_output=True, text=True).returncode == 1
    assert subprocess.run(["node", os.path.join(
        ROOT, "client/examples/verify_lease.js")] + bad, input=lease,
        capture_output=True, text=True,
        env=dict(os.environ, NODE_PATH="/usr/share/nodejs")).returncode == 1
    # docs/CLIENT.md shows exactly these programs.
    doc = open(os.path.join(ROOT, "docs/CLIENT.md")).read()
    for f in ("verify_lease.py", "verify_lease.js"):
        src = open(os.path.join(ROOT, "client/examples", f)).read()
        assert src.strip() in doc, f


# --- floating seats ---------------------------------------------------------

# The command licd-check hold runs: says when it runs, ends on a line.
HELD = ("import sys; print('ready', flush=True); sys.stdin.readline()")


def seat(stack, lic, iid):
    """The installation's seat as licd's admin API shows it."""
    token = open(os.path.join(stack.dir, "admin-token.txt")).read().strip()
    d = requests.get(stack.url + "/api/admin/licenses/" + lic["id"],
                     headers={"Authorization": "Bearer " + token},
                     timeout=10).json()
    s = [i["seat"] for i in d["installations"] if i["id"] == iid][0]
    return s["state"], ts(s["expires_at"]) if s["expires_at"] else 0


class Hold:
    """licd-check hold running a command that waits for a line."""

    def __init__(self, client):
        self.p = subprocess.Popen(
            [client.binary, "hold", "--", "/usr/bin/python3", "-c", HELD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=client.env(), start_new_session=True)
        first = self.p.stdout.readline()
        assert first.strip() == "ready", first

    def end(self):
        """The command ends: hold checks the seat in and reports."""
        out, _ = self.p.communicate("\n", timeout=60)
        return self.p.returncode, json.loads(out)

    def kill(self):
        """Killed hard: no check-in, the seat is left to lapse."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=30)


def test_floating_seats(stack):
    """Two installations on a one-seat floating license: background
    renewal keeps the seat across TTLs, a hard kill leaves it to lapse, a
    clean end checks it in at once; borrowing holds a seat offline and is
    refused past max_borrow_days; a lapsed seat is an expired lease;
    overdraft is flagged."""
    lic = issue(stack, "float@example.com", plan="cfloat")
    a, b, c = (Client(stack, lic, "it-float-" + n) for n in "abc")
    loan = issue(stack, "loan@example.com", plan="cfloat")
    laptop, desk = Client(stack, loan, "it-laptop"), Client(stack, loan, "it-desk")

    # Borrowing: past max_borrow_days refused, 2 days granted.
    rc, o = laptop.run("borrow", "3")
    assert rc == 5 and o["borrowed"] is False
    assert "max_borrow_days" in o["message"]
    rc, o = laptop.run("borrow", "2")
    assert rc == 0 and o["borrowed"] is True and o["status"] == "VALID"
    until = ts(o["borrowed_until"])
    assert abs(until - (time.time() + 2 * DAY)) < 60
    assert o["lease_expires_at"] == o["seat_expires_at"] == o["borrowed_until"]
    borrowed_at = time.time()

    held = Hold(a)
    try:
        state, first = seat(stack, lic, "it-float-a")
        assert state == "live"
        rc, o = b.run("status")
        assert rc == EXIT["TOO_MANY_INSTALLATIONS"] and o["decision"] == "deny"
        # The handle's thread renews at next_heartbeat_in (a third of the
        # TTL): the seat stays live a TTL past the end of its first lease.
        renewals, last = 0, first
        while time.time() < first + SEAT_TTL + 1:
            state, exp = seat(stack, lic, "it-float-a")
            assert state == "live" and exp > time.time(), (state, exp)
            if exp > last:
                renewals, last = renewals + 1, exp
            time.sleep(0.5)         # samples the seat over one TTL of real time
        assert renewals >= 3
        assert b.run("refresh")[0] == EXIT["TOO_MANY_INSTALLATIONS"]
        # The state file holds the renewed lease and its seat.
        rc, o = a.run("--offline", "status")
        assert rc == 0 and o["overdraft"] is False and o["borrowed_until"] is None
        assert o["seat_expires_at"] == o["lease_expires_at"]
        assert ts(o["seat_expires_at"]) >= last - 1
        # Killed hard: no check-in; the seat lapses by itself.
        held.kill()
    finally:
        held.kill()
    lapse = seat(stack, lic, "it-float-a")[1]

    # While it lapses: the borrowed seat, offline. The laptop answers from
    # its lease, more than two seat TTLs after borrowing, until the
    # borrow ends.
    with Outage(stack):
        rc, o = laptop.run("status")
        assert rc == 0 and o["borrowed_until"] is not None
        assert laptop.run("status", now=until - 6 * 3600)[0] == \
            EXIT["REFRESH_DUE"]
        assert laptop.run("status", now=until + 60)[0] == EXIT["GRACE"]
    # licd still counts it: the desk gets no seat until it is returned.
    assert time.time() > borrowed_at + 2 * SEAT_TTL
    assert desk.run("refresh")[0] == EXIT["TOO_MANY_INSTALLATIONS"]
    rc, o = laptop.run("checkin")
    assert rc == 0 and o["checked_in"] is True
    assert laptop.run("--offline", "status")[0] == EXIT["NOT_ACTIVATED"]
    assert desk.run("refresh")[0] == 0
    assert desk.run("checkin")[0] == 0

    # The killed holder's seat lapses with no job running: refused until
    # then, a seat at the first refresh after.
    rc, o = poll(lambda: b.run("refresh"),
                 lambda a: a[0] != EXIT["TOO_MANY_INSTALLATIONS"],
                 max(1.0, lapse + 15 - time.time()), "the seat to lapse", 0.5)
    assert rc == 0, o
    assert time.time() >= lapse - 1 and o["status"] == "VALID"
    # A lapsed seat is an expired lease: the grace, then the mode.
    end = ts(a.run("--offline", "status")[1]["lease_expires_at"])
    assert abs(end - lapse) <= 1
    rc, o = a.run("--offline", "status", now=end + 1)
    assert rc == EXIT["GRACE"] and "seat" in o["message"]
    rc, o = a.run("--offline", "--grace", "5", "status", now=lapse + 10)
    assert rc == EXIT["EXPIRED"] and o["decision"] == "deny"
    rc, o = a.run("--offline", "--grace", "5", "--mode", "degrade", "status",
                  now=lapse + 10)
    assert o["status"] == "EXPIRED" and o["decision"] == "free_tier"

    # A clean end checks in at once: the next installation gets the seat.
    held = Hold(b)
    try:
        assert c.run("refresh")[0] == EXIT["TOO_MANY_INSTALLATIONS"]
        rc, o = held.end()
        assert rc == 0 and o["command"] == "hold" and o["command_exit"] == 0
    finally:
        held.kill()
    assert seat(stack, lic, "it-float-b")[0] != "live"
    rc, o = c.run("refresh")
    assert rc == 0 and o["status"] == "VALID"
    assert c.run("checkin")[0] == 0

    # Overdraft: the seat beyond the limit is granted and flagged.
    od = issue(stack, "overdraft@example.com", plan="cfloat-od")
    x, y = Client(stack, od, "it-od-x"), Client(stack, od, "it-od-y")
    rc, o = x.run("refresh")
    assert rc == 0 and o["overdraft"] is False
    rc, o = y.run("refresh")
    assert rc == 0 and o["overdraft"] is True
    assert y.run("--offline", "status")[1]["overdraft"] is True
    assert x.run("checkin")[0] == 0 and y.run("checkin")[0] == 0
    # Check-in and borrow are for floating licenses only.
    n = Client(stack, issue(stack, "node-float@example.com"), "it-node")
    assert n.run("refresh")[0] == 0
    rc, o = n.run("checkin")
    assert rc == 5 and "node-locked" in o["message"]
    assert "seat_expires_at" not in n.run("status")[1]


def test_key_rotation_with_both_keys_embedded(stack):
    """Runs last: it rotates the stack's signing key."""
    lic = issue(stack, "rotate@example.com")
    c = Client(stack, lic, "it-rotate")
    assert c.run("refresh")[0] == 0
    old_kid = json.loads(
        __import__("base64").urlsafe_b64decode(c.lease().split(".")[0] + "==")
    )["kid"]
    stack.licctl("keys", "rotate")
    stack.restart_programs()
    jwks = stack.jwks()
    assert len(jwks["keys"]) == 2
    # The vendor's next release embeds both keys.
    both = build_check(stack, os.path.join(stack.dir, "licd-check-both"), jwks)
    # The cached lease (old key) still verifies, offline...
    with Outage(stack):
        assert c.run("status", binary=both)[0] == 0
    # ...and the new key's lease does after a refresh.
    rc, o = c.run("refresh", binary=both)
    assert rc == 0 and o["reached"] is True
    new_kid = json.loads(
        __import__("base64").urlsafe_b64decode(c.lease().split(".")[0] + "==")
    )["kid"]
    assert new_kid != old_kid
    # The old release, which embeds only the old key, refuses the new
    # lease: a key fetched at run time is never trusted.
    d = Client(stack, lic, "it-rotate-old")
    rc, o = d.run("refresh")
    assert rc == 5 and o["reached"] is False and o["status"] == "NOT_ACTIVATED"
