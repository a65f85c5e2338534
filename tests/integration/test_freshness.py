"""Freshness under load: a revoke, suspension, plan change, seat change
or deactivation is seen by the very next call once its own answer has
been given (docs/API.md), whatever validate and heartbeat keep in memory
to answer without a database round trip.

Client threads call validate, heartbeat and usage for a set of licenses
through nginx without pause, each on a keep-alive connection of its own,
and record for every call the moment it was sent, the moment its answer
arrived (one monotonic clock) and the answer. Meanwhile a driver per
license changes it as the console and licctl do: the admin API, the old
`POST /api/revoke`, licctl (straight to the SQL functions), a Stripe
webhook's plan change, the client's own `deactivate` and `checkin`, and
(test 2) the SQL clock and licd-lifecycle; each change is acknowledged at
the moment its answer (or the command's exit) arrived. A call sent after
that moment must get exactly what the contract gives in the new state;
one sent after the previous acknowledgement and answered before the next
change was sent, what it gives in the old state; a call in flight across
a change, either. Every change waits for many answers on its license
first (the license is hot in whatever the programs keep), and for many
calls sent after its acknowledgement before the next, the first of them
by threads that wait for the acknowledgement and call at once: a window
in which a stale answer can be given is seen. Test 3 makes changes right
after, or while, the programs lose every database session.

The stack runs each program as several worker processes (`processes`):
the calls after the changes must have reached every worker of validate,
heartbeat and usage, so that a change has to reach every process.
tests/scale/driver.py (scenario 4) does the same across two app hosts."""
import concurrent.futures
import http.client
import itertools
import json
import os
import queue
import re
import sys
import threading
import time
from urllib.parse import urlsplit

from util import (CFG, URL, admin_token, api, b64url_decode, eventually,
                  issue, licctl, log_since, make_plan, sql, sql1, unique,
                  validate, wait_healthy, workers)

# per change: calls on its license answered before it and sent after its
# acknowledgement, in all and of each of the license's calls
MIN_CALLS = 50
MIN_PER_CALL = 10
LOADERS = 10
CHASE = 3           # calls of each kind sent the moment a change is acknowledged
WAIT = 120          # a wait for calls or answers that takes longer fails

_url = urlsplit(URL)
HOST, PORT = _url.hostname, _url.port
NEW = itertools.count()


# --- HTTP on a keep-alive connection per thread ----------------------------

class Conn:
    """One HTTP/1.1 keep-alive connection to nginx, for one thread."""

    def __init__(self):
        self.c = http.client.HTTPConnection(HOST, PORT, timeout=60)

    def post(self, path, body, headers=None):
        """(sent, answered, status, JSON body). A connection nginx closed
        between two requests is opened again and the request sent again;
        `sent` is then the first attempt's, which only widens the call's
        window (a call is judged by the moment it may first have been
        read)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        t0 = time.monotonic()
        for attempt in (0, 1):
            try:
                self.c.request("POST", path, data, h)
                r = self.c.getresponse()
                raw = r.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                if attempt:
                    raise
                continue
            self.retry_after = r.getheader("Retry-After")
            return t0, time.monotonic(), r.status, json.loads(raw)


def admin(conn, path, body):
    return conn.post(path, body, {"Authorization": "Bearer " + admin_token()})


# --- what the load calls ---------------------------------------------------

PATHS = {"validate": "/api/validate", "heartbeat": "/api/heartbeat",
         "usage": "/api/usage"}


class Lic:
    """A license under load: its state as the contract sees it, the
    changes made to it (sent, acknowledged, state after, label) and the
    calls the load makes on it."""

    def __init__(self, name, doc, state):
        self.name, self.id, self.key = name, doc["id"], doc["key"]
        self.state0 = self.state = state
        self.events = []
        self.targets = []

    def call(self, kind, iid=None, feature=None, domain=None, new=False):
        self.targets.append(Target(self, kind, iid, feature, domain, new))
        return self


class Target:
    """One call the load repeats; records (sent, answered, iid, status,
    body, request id) of each."""

    def __init__(self, lic, kind, iid, feature, domain, new):
        self.lic, self.kind, self.iid = lic, kind, iid
        self.feature, self.domain, self.new = feature, domain, new
        self.path = PATHS[kind]
        self.records = []

    def __repr__(self):
        return "%s %s%s%s%s" % (self.kind, self.lic.name,
                                " " + self.iid if self.iid else "",
                                " feature=" + self.feature if self.feature else "",
                                " new installation" if self.new else "")

    def request(self):
        iid = "%s-new-%d" % (self.lic.name, next(NEW)) if self.new else self.iid
        b = {"license_key": self.lic.key}
        if iid is not None:
            b["installation_id"] = iid
        if self.feature is not None:
            b["feature"] = self.feature
        if self.domain is not None:
            b["domain"] = self.domain
        if self.kind == "usage":
            b["quantity"] = 1
        return iid, b


def state(features, limits, plan, domains=(), inactive=()):
    return {"status": "active", "expired": False, "features": sorted(features),
            "limits": dict(limits), "plan": plan, "domains": list(domains),
            "inactive": frozenset(inactive)}


def changed(st, **kw):
    s = dict(st)
    s.update(kw)
    if "features" in kw:
        s["features"] = sorted(kw["features"])
    if "inactive" in kw:
        s["inactive"] = frozenset(kw["inactive"])
    return s


# --- the contract: what a call gets in a state -----------------------------

def domain_ok(domains, domain):
    if not domains:
        return True
    if domain is None:
        return False
    return any(domain == d or (d.startswith("*.") and domain.endswith(d[1:]))
               for d in domains)


def expect(st, t):
    """(HTTP status, code) docs/API.md gives call t in state st; usage
    that is counted is (200, "ACCEPTED")."""
    refused = {"revoked": "REVOKED", "suspended": "SUSPENDED"}.get(st["status"])
    if refused is None and st["expired"]:
        refused = "EXPIRED"
    if t.kind == "usage":
        if refused:
            return 403, refused
        if t.feature not in st["features"]:
            return 403, "FEATURE_NOT_LICENSED"
        lim = st["limits"].get(t.feature + "_per_month")
        # the load has counted many before a limit of 1 is set
        if lim is not None and lim <= 1:
            return 429, "USAGE_LIMIT_EXCEEDED"
        return 200, "ACCEPTED"
    if refused:
        return 200, refused
    if t.kind == "heartbeat":
        return 200, ("INSTALLATION_NOT_ACTIVE" if t.iid in st["inactive"]
                     else "VALID")
    if not domain_ok(st["domains"], t.domain):
        return 200, "DOMAIN_NOT_ALLOWED"
    if t.feature is not None and t.feature not in st["features"]:
        return 200, "FEATURE_NOT_LICENSED"
    if t.new and st["limits"].get("installations", 1 << 30) <= 1:
        return 200, "TOO_MANY_INSTALLATIONS"
    return 200, "VALID"


def answer(t, status, doc):
    if t.kind == "usage" and status == 200:
        return 200, "ACCEPTED"
    if status == 200 and t.kind != "usage":
        return 200, doc.get("code")
    return status, (doc.get("error") or {}).get("code")


def claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def granted_mismatch(st, t, doc):
    """What a VALID or counted answer states that the state st does not:
    features, limits, plan in the answer's license and in its lease."""
    if t.kind == "usage":
        lim = st["limits"].get(t.feature + "_per_month")
        return None if doc.get("limit") == lim else \
            "usage counted against limit %r, the license's is %r" % (doc.get("limit"), lim)
    lic, lease = doc["license"], claims(doc["lease"])
    got = {"features": sorted(lic["features"]), "lease feat": sorted(lease["feat"]),
           "limits": lic["limits"], "lease limits": lease["limits"],
           "plan": lic["plan"], "lease lic": lease["lic"]}
    want = {"features": st["features"], "lease feat": st["features"],
            "limits": st["limits"], "lease limits": st["limits"],
            "plan": st["plan"], "lease lic": st["plan"]}
    bad = {k: (got[k], want[k]) for k in got if got[k] != want[k]}
    return None if not bad else "grants (answer, license) %r" % bad


# --- load and drivers ------------------------------------------------------

def loader(n, targets, stop, errors, prefix):
    conn = Conn()
    seq = itertools.count()
    i = n * len(targets) // LOADERS
    try:
        while not stop.is_set():
            t = targets[i % len(targets)]
            i += 1
            iid, body = t.request()
            rid = "%s-%d-%d" % (prefix, n, next(seq))
            t0, t1, status, doc = conn.post(t.path, body, {"X-Request-Id": rid})
            t.records.append((t0, t1, iid, status, doc, rid))
    except Exception as e:          # noqa: BLE001 - reported by the test
        errors.append("loader %d: %r" % (n, e))


def chaser(t, go, errors, prefix):
    """Calls t CHASE times, on a connection already open, each time go
    says a change of its license was acknowledged: the first is sent
    within a fraction of a millisecond of the acknowledgement."""
    conn = Conn()
    try:
        conn.c.connect()
        while go.get() is not None:
            for _ in range(CHASE):
                iid, body = t.request()
                rid = "%s-c-%d" % (prefix, next(NEW))
                t0, t1, status, doc = conn.post(t.path, body, {"X-Request-Id": rid})
                t.records.append((t0, t1, iid, status, doc, rid))
    except Exception as e:          # noqa: BLE001 - reported by the test
        errors.append("chaser of %r: %r" % (t, e))


def sent_after(lic, t):
    """Per call of lic: answers arrived of calls sent after moment t (a
    503, which test 3's fault allows, counts for nothing)."""
    return [sum(1 for r in list(tg.records) if r[0] > t and r[3] != 503)
            for tg in lic.targets]


def wait_calls(lics, t_of, what):
    def enough():
        return all(sum(c) >= MIN_CALLS and min(c) >= MIN_PER_CALL
                   for c in (sent_after(l, t_of(l)) for l in lics))
    eventually(enough, WAIT, lambda: "%s: answers per call %s" % (
        what, {l.name: sent_after(l, t_of(l)) for l in lics}), interval=0.02)


def last_ack(lic, start):
    return lic.events[-1][1] if lic.events else start


def changes(s):
    """(license, state after) of a step's entry: one action may change
    several licenses at once (the SQL clock, the lifecycle job)."""
    return list(zip(s[0], s[2])) if isinstance(s[0], list) else [(s[0], s[2])]


def drive(steps, start, errors, prefix):
    """steps: lists of (license or list of them, label, new state or list
    of them, action); the actions of one step run at once, after the load
    has called each license of the step enough since its last change.
    action(conn) returns the moments the change was sent and
    acknowledged; the license's chasers call it at once."""
    lics = {lic for step in steps for s in step for lic, _ in changes(s)}
    chasers = {}
    for lic in lics:
        for t in lic.targets:
            q = queue.Queue()
            th = threading.Thread(target=chaser, args=(t, q, errors, prefix))
            th.start()
            chasers.setdefault(lic, []).append((q, th))
    try:
        for step in steps:
            wait_calls([lic for s in step for lic, _ in changes(s)],
                       lambda l: last_ack(l, start), "before %s" % [s[1] for s in step])

            def run(s, conn):
                t_sent, t_ack = s[3](conn)
                for lic, st in changes(s):
                    lic.events.append((t_sent, t_ack, st, s[1]))
                    lic.state = st
                    for q, _ in chasers[lic]:
                        q.put(1)
            conns = [Conn() for _ in step]
            if len(step) == 1:
                run(step[0], conns[0])
            else:
                with concurrent.futures.ThreadPoolExecutor(len(step)) as ex:
                    for f in [ex.submit(run, s, c) for s, c in zip(step, conns)]:
                        f.result()
        wait_calls(lics, lambda l: last_ack(l, start),
                   "after the last change of %s" % sorted(l.name for l in lics))
    except BaseException as e:      # noqa: BLE001 - reported by the test
        errors.append(e)
    finally:
        for q, th in (c for v in chasers.values() for c in v):
            q.put(None)
            th.join(WAIT)


# --- the changes, as the console, licctl, Stripe and the client make them --

def ok(r, **want):
    t0, t1, status, doc = r
    assert status == 200, (status, doc)
    for k, v in want.items():
        assert doc[k] == v, (k, doc)
    return t0, t1


def admin_action(action, lic, **want):
    return lambda c: ok(admin(c, "/api/admin/licenses/%s/%s" % (lic.id, action),
                              {"reason": "freshness"}), **want)


def admin_edit(lic, body):
    def act(c):
        t0, t1, status, doc = admin(c, "/api/admin/licenses/%s/edit" % lic.id, body)
        assert status == 200, (status, doc)
        for k in ("features", "limits"):
            if k in body:
                assert sorted(doc["license"][k]) == sorted(body[k]), doc
        return t0, t1
    return act


def cli(*args):
    def act(_):
        t0 = time.monotonic()
        licctl(*args)
        return t0, time.monotonic()
    return act


def revoke_old(lic, by):
    body = {"license_id": lic.id} if by == "id" else {"license_key": lic.key}
    return lambda c: ok(admin(c, "/api/revoke", dict(body, reason="freshness")),
                        status="revoked")


def client_call(kind, lic, iid, code=None, answer=None):
    """The installation's own call: validate answering code, or
    deactivate / checkin answering exactly `answer`."""
    def act(c):
        t0, t1, status, doc = c.post(PATHS.get(kind, "/api/" + kind),
                                     {"license_key": lic.key, "installation_id": iid})
        assert status == 200, (status, doc)
        if code:
            assert doc["code"] == code, doc
        else:
            assert doc == answer, doc
        return t0, t1
    return act


def webhook_plan(sub, plan):
    from test_billing import stripe_sig, sub_event

    def act(c):
        body = json.dumps(sub_event("customer.subscription.updated", sub,
                                    items={"data": [{"price": {"id": "price_" + plan}}]})).encode()
        return ok(c.post("/api/stripe/webhook", body,
                         {"Stripe-Signature": stripe_sig(body)}), outcome="applied")
    return act


# --- the test --------------------------------------------------------------

def hot(lic, iids, domain=None):
    """Activates the license's installations before the load starts; its
    first answer is the state the test starts from (features, limits, plan)."""
    for iid in iids:
        v = validate(lic["key"], iid, **({"domain": domain} if domain else {})).json()
        assert v["code"] == "VALID", v
    return v["license"]


def start_state(doc, **kw):
    return changed(state(doc["features"], doc["limits"], doc["plan"],
                         doc["domain_restrictions"] or ()), **kw)


def scenarios():
    """(licenses, driver step lists)."""
    plan = make_plan(features="sso,workflows,reports",
                     limits="installations=3,workflows_per_month=1000000")
    lics, drivers = [], []

    def new(name, iids=("a", "b"), domain=None, doc=None, **kw):
        doc = doc or issue(plan=plan, **kw)
        lic = Lic(name, doc, start_state(hot(doc, iids, domain)))
        lics.append(lic)
        return lic

    def std(lic):
        return lic.call("validate", "a").call("heartbeat", "b").call("usage", "a", "sso")

    # revocation: admin route, then the old route by id, in sequence; by
    # key and through licctl at the same moment
    r = [std(new("rev%d" % i)) for i in range(4)]
    rv = [changed(x.state, status="revoked") for x in r]
    drivers.append([[(r[0], "revoke (admin)", rv[0],
                      admin_action("revoke", r[0], status="revoked", changed=True))],
                    [(r[1], "revoke (POST /api/revoke id)", rv[1], revoke_old(r[1], "id"))]])
    drivers.append([[(r[2], "revoke (POST /api/revoke key)", rv[2], revoke_old(r[2], "key")),
                     (r[3], "revoke (licctl)", rv[3], cli("license", "revoke", r[3].id))]])

    # suspension and reinstatement, over and over; the admin API and licctl
    # (licctl's acknowledgement, its exit, comes later after its commit
    # than the admin API's answer: more rounds to show a window)
    for name, how, rounds in (("susp-admin", "admin", 3), ("susp-cli", "cli", 5)):
        s = std(new(name))
        steps = []
        for _ in range(rounds):
            for act, st in (("suspend", changed(s.state0, status="suspended")),
                            ("reinstate", s.state0)):
                f = admin_action(act, s, status=st["status"], changed=True) \
                    if how == "admin" else cli("license", act, s.id)
                steps.append([(s, "%s (%s)" % (act, how), st, f)])
        drivers.append(steps)

    # a feature the calls ask for taken away and given back
    f = new("feat").call("validate", "a", "reports").call("validate", "b") \
        .call("heartbeat", "b").call("usage", "a", "reports")
    less = changed(f.state0, features=["sso", "workflows"])
    drivers.append([[(f, "features -reports", less, admin_edit(f, {"features": less["features"]}))],
                    [(f, "features +reports", f.state0,
                      admin_edit(f, {"features": f.state0["features"]}))]] * 2)

    # a monthly usage limit lowered below what was counted, and raised
    u = new("ulimit").call("usage", "a", "workflows").call("validate", "a")
    low = changed(u.state0, limits={"installations": 3, "workflows_per_month": 1})
    drivers.append([[(u, "workflows_per_month 1", low, admin_edit(u, {"limits": low["limits"]}))],
                    [(u, "workflows_per_month back", u.state0,
                      admin_edit(u, {"limits": u.state0["limits"]}))]] * 2)

    # the seat limit lowered under the seats taken: new installations refused
    s = new("seats", limits="installations=1000").call("validate", "x", new=True) \
        .call("validate", "a").call("heartbeat", "b")
    one = changed(s.state0, limits={"installations": 1, "workflows_per_month": 1000000})
    drivers.append([[(s, "installations 1", one, admin_edit(s, {"limits": one["limits"]}))],
                    [(s, "installations back", s.state0,
                      admin_edit(s, {"limits": s.state0["limits"]}))]] * 2)

    # deactivation: one installation (admin, the client itself), all of
    # them (admin, licctl); validate activates them again
    d = new("deact", ("d1", "d2", "d3")).call("heartbeat", "d1").call("heartbeat", "d2") \
        .call("validate", "d3")
    st0, steps = d.state0, []

    def back(*iids):
        left = set(iids)
        for iid in iids:
            left.discard(iid)
            steps.append([(d, "validate %s" % iid, changed(st0, inactive=left),
                           client_call("validate", d, iid, "VALID"))])
    steps.append([(d, "deactivate d1 (admin)", changed(st0, inactive={"d1"}),
                   lambda c: ok(admin(c, "/api/admin/licenses/%s/installations/d1/deactivate"
                                      % d.id, {}), deactivated=True))])
    back("d1")
    steps.append([(d, "deactivate d1 (client)", changed(st0, inactive={"d1"}),
                   client_call("deactivate", d, "d1", answer={"deactivated": True}))])
    back("d1")
    # validate d3 by the load activates it again at once: it stays VALID
    steps.append([(d, "reset-activations (admin)", changed(st0, inactive={"d1", "d2"}),
                   admin_action("reset-activations", d))])
    back("d1", "d2")
    steps.append([(d, "reset-activations (licctl)", changed(st0, inactive={"d1", "d2"}),
                   cli("license", "reset-activations", d.id))])
    back("d1", "d2")
    drivers.append(steps)

    # node-locked to floating: the installations hold no seat lease
    m = new("model", ("m1", "m2")).call("heartbeat", "m1").call("heartbeat", "m2")
    gone = changed(m.state0, inactive={"m1", "m2"})
    msteps = [[(m, "seat model floating (licctl)", gone,
                cli("license", "update", m.id, "--seat-model", "floating"))],
              [(m, "seat model node (licctl)", gone,
                cli("license", "update", m.id, "--seat-model", "node"))]]
    for i, iid in enumerate(("m1", "m2")):
        msteps.append([(m, "validate " + iid, changed(m.state0, inactive={"m2"} if i == 0 else ()),
                        client_call("validate", m, iid, "VALID"))])
    drivers.append(msteps)

    # a floating seat checked in by its installation and taken again
    fl = new("float", ("f1", "f2"), doc=issue(plan=make_plan(
        features="sso,workflows,reports", limits="installations=3",
        extra=("--seat-model", "floating")))) \
        .call("heartbeat", "f1").call("validate", "f2").call("heartbeat", "f2")
    out = changed(fl.state0, inactive={"f1"})
    drivers.append([[(fl, "checkin f1 (client)", out,
                      client_call("checkin", fl, "f1",
                                  answer={"checked_in": True, "released": True}))],
                    [(fl, "validate f1", fl.state0, client_call("validate", fl, "f1", "VALID"))]] * 2)

    # a floating license suspended and reinstated while its seats are
    # held (answered from memory between renewals)
    fs = new("fsusp", ("f1", "f2"), doc=issue(plan=make_plan(
        features="sso,workflows,reports", limits="installations=3",
        extra=("--seat-model", "floating")))) \
        .call("heartbeat", "f1").call("validate", "f2")
    drivers.append([[(fs, "suspend (admin, floating)",
                      changed(fs.state0, status="suspended"),
                      admin_action("suspend", fs, status="suspended", changed=True))],
                    [(fs, "reinstate (admin, floating)", fs.state0,
                      admin_action("reinstate", fs, status="active", changed=True))]] * 2)

    # the end moved into the past and back; domains changed and back
    e = std(new("expiry"))
    past = changed(e.state0, expired=True)
    drivers.append([[(e, "expires_at past", past,
                      admin_edit(e, {"expires_at": "2020-01-01T00:00:00Z"}))],
                    [(e, "expires_at future", e.state0,
                      admin_edit(e, {"expires_at": "2035-06-01T00:00:00Z"}))]] * 2)
    dm = new("domain", ("a",), "app.example.com", domains="*.example.com") \
        .call("validate", "a", domain="app.example.com")
    other = changed(dm.state0, domains=["*.example.org"])
    drivers.append([[(dm, "domains other", other,
                      admin_edit(dm, {"domain_restrictions": other["domains"]}))],
                    [(dm, "domains back", dm.state0,
                      admin_edit(dm, {"domain_restrictions": dm.state0["domains"]}))]] * 2)

    # a plan change by Stripe (the webhook program writes it)
    if os.environ.get("LICD_STRIPE_API_BASE"):
        from test_billing import buy, priced_plan
        big = priced_plan(features="sso,workflows,audit",
                          limits="installations=10,workflows_per_month=1000000")
        small = priced_plan(features="sso,workflows",
                            limits="installations=10,workflows_per_month=1000000")
        _, sub, lid, key = buy(big)
        p = new("plan", doc={"id": lid, "key": key}).call("validate", "a", "audit") \
            .call("heartbeat", "b").call("usage", "a", "audit")
        down = changed(p.state0, features=["sso", "workflows"], plan=small)
        drivers.append([[(p, "plan %s -> %s (webhook)" % (big, small), down,
                          webhook_plan(sub, small))],
                        [(p, "plan back (webhook)", p.state0, webhook_plan(sub, big))]] * 2)
    return lics, drivers


UNAVAILABLE = (503, "SERVICE_UNAVAILABLE")


def judge(lic, fault=False):
    """Every call on lic against the states it may have seen (under a
    fault, a 503 is allowed for any call and counts for nothing).
    Returns (mismatches, stale grants, calls per change before it, after
    it per call, request ids of calls sent after a change, how soon after
    each acknowledgement the first call was sent)."""
    ev, states = lic.events, [lic.state0] + [e[2] for e in lic.events]
    bad, stale, after_ids = [], [], []
    before = [0] * len(ev)
    after = [[0] * len(lic.targets) for _ in ev]
    first = [None] * len(ev)
    for ti, t in enumerate(lic.targets):
        for t0, t1, iid, status, doc, rid in t.records:
            k = sum(1 for e in ev if e[1] < t0)     # acknowledged before it was sent
            j = k
            while j < len(ev) and ev[j][0] < t1:    # sent before it was answered
                j += 1
            got = answer(t, status, doc)
            if fault and got == UNAVAILABLE:
                continue
            if j > k:
                if not any(got == expect(s, t) for s in states[k:j + 1]):
                    bad.append("%r (%s, in flight across %s): %s, the contract says one of %s"
                               % (t, rid, [e[3] for e in ev[k:j]], got,
                                  [expect(s, t) for s in states[k:j + 1]]))
                continue
            st, want = states[k], expect(states[k], t)
            why = None
            if got != want:
                why = "answered %s, the contract says %s" % (got, want)
            elif got[1] in ("VALID", "ACCEPTED"):
                why = granted_mismatch(st, t, doc)
            if why:
                after_what = ("sent %.1f ms after %r was acknowledged" %
                              ((t0 - ev[k - 1][1]) * 1000, ev[k - 1][3])) if k else "before any change"
                line = "%r (%s, iid %s) %s: %s" % (t, rid, iid, after_what, why)
                bad.append(line)
                if got[1] in ("VALID", "ACCEPTED") and k:
                    stale.append(line)
                continue
            if k < len(ev):
                before[k] += 1
            if k:
                after[k - 1][ti] += 1
                after_ids.append((t.kind, rid))
                d = t0 - ev[k - 1][1]
                first[k - 1] = d if first[k - 1] is None else min(first[k - 1], d)
    return bad, stale, before, after, after_ids, first


def served(rids, offset):
    """{program: pids} of the processes that logged the given requests."""
    pat = re.compile(r"Z (\w+)\[(\d+)\] .*\brid=(\S+) ")
    want = set(rids)
    out = {}
    for line in log_since(offset):
        m = pat.search(line)
        if m and m.group(3) in want:
            out.setdefault(m.group(1), set()).add(int(m.group(2)))
    return out


def exercise(lics, steps, min_events, fault=False):
    """Runs the load on lics and the drivers of steps, then judges every
    call."""
    targets = [t for lic in lics for t in lic.targets]
    prefix = unique("fresh")
    offset = os.path.getsize(CFG["log_file"])
    stop, load_errors, drive_errors = threading.Event(), [], []
    start = time.monotonic()
    loaders = [threading.Thread(target=loader, args=(n, targets, stop, load_errors, prefix))
               for n in range(LOADERS)]
    drivers = [threading.Thread(target=drive, args=(s, start, drive_errors, prefix))
               for s in steps]
    # a chaser woken by its driver takes the interpreter at once, not
    # after the running thread's time slice
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        for t in loaders + drivers:
            t.start()
        for t in drivers:
            t.join(WAIT * 4)
            assert not t.is_alive(), "a driver did not finish"
    finally:
        stop.set()
        for t in loaders:
            t.join(60)
        sys.setswitchinterval(switch)
    assert not load_errors, load_errors[:5]
    if drive_errors:
        raise drive_errors[0] if isinstance(drive_errors[0], BaseException) \
            else AssertionError(drive_errors[:5])
    bad, stale, short, after_ids = [], [], [], []
    for lic in lics:
        b, s, before, after, ids, first = judge(lic, fault)
        bad += b
        stale += s
        after_ids += ids
        for i, e in enumerate(lic.events):
            n = sum(after[i])
            # shown when the test fails
            print("%-10s %-40s acknowledged in %5.1f ms; %3d answers before, %3d after,"
                  " the first sent %.2f ms after" % (lic.name, e[3][:40], (e[1] - e[0]) * 1000,
                                                     before[i], n, (first[i] or 0) * 1000))
            if before[i] < MIN_CALLS or n < MIN_CALLS or min(after[i]) < MIN_PER_CALL:
                short.append("%s %r: %d answers before it, %s after it"
                             % (lic.name, e[3], before[i], dict(zip(map(repr, lic.targets),
                                                                     after[i]))))
    if fault:
        print("%d answers 503 under the fault" % sum(
            answer(t, r[3], r[4]) == UNAVAILABLE for t in targets for r in t.records))
    assert not stale, "%d calls sent after a change was acknowledged were granted " \
        "what it took away:\n%s" % (len(stale), "\n".join(stale[:20]))
    assert not bad, "%d answers not the contract's:\n%s" % (len(bad), "\n".join(bad[:20]))
    # a test that can fail: each change was made on a hot license, and
    # many calls of every kind came after it
    assert not short, "\n".join(short)
    assert sum(len(l.events) for l in lics) >= min_events
    # ... and reached every worker process of each program
    rids = {kind: [r for k, r in after_ids if k == kind] for kind in PATHS}
    want = {p: set(map(int, workers(p))) for p in PATHS}
    assert all(len(w) == int(CFG.get("processes", "1")) for w in want.values()), want

    def every_worker():
        got = served([r for v in rids.values() for r in v], offset)
        return all(want[p] <= got.get(p, set()) for p in PATHS) and got
    eventually(every_worker, 10, lambda: "calls after the changes served by every "
               "worker %s; served by %s" % (want, served(
                   [r for v in rids.values() for r in v], offset)))


def test_changes_are_seen_by_the_very_next_call():
    exercise(*scenarios(), min_events=40)


def test_time_and_the_lifecycle_job_are_seen_by_the_very_next_call(clock):
    """What answers without the database must still read time as the
    database does: a license's end passing (the SQL clock moved past it,
    as the suite moves time; and back) and a payment grace ending are
    seen by the very next call, and so is licd-lifecycle's suspension for
    non-payment once the job has exited."""
    from test_lifecycle import run_job
    plan = make_plan(features="sso,workflows,reports", limits="installations=3")
    end = issue(plan=plan, expires=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                  time.gmtime(time.time() + 3600)))
    grace = issue(plan=plan, days=30)
    sql("INSERT INTO subscriptions (provider, provider_subscription_id, customer_id,"
        " license_id, plan_code, status, current_period_end, grace_until)"
        " SELECT 'stripe', %s, customer_id, id, plan_code, 'past_due', licd_now(),"
        " licd_now() + interval '1 hour' FROM licenses WHERE id = %s",
        unique("sub"), grace["id"])
    sql("UPDATE licenses SET expires_at = licd_now() - interval '1 hour',"
        " grace_until = licd_now() + interval '1 hour' WHERE id = %s", grace["id"])
    lics = []
    for name, doc in (("end", end), ("grace", grace)):
        lic = Lic(name, doc, start_state(hot(doc, ("a", "b"))))
        lics.append(lic.call("validate", "a").call("heartbeat", "b")
                    .call("usage", "a", "sso"))
    assert lics[1].state0 == lics[0].state0     # in grace: VALID as the other
    ended = [changed(lic.state0, expired=True) for lic in lics]

    def set_clock(secs):
        def act(_):
            t0 = time.monotonic()
            clock(secs)
            return t0, time.monotonic()
        return act

    def lifecycle(_):
        t0 = time.monotonic()
        run_job()
        return t0, time.monotonic()
    steps = [[(lics, "SQL clock +2 h", ended, set_clock(7200))],
             [(lics, "SQL clock back", [l.state0 for l in lics], set_clock(0))],
             [(lics, "SQL clock +2 h", ended, set_clock(7200))],
             [(lics, "licd-lifecycle", [ended[0], changed(ended[1], status="suspended")],
               lifecycle)]]
    exercise(lics, [steps], min_events=8)
    assert sql1("SELECT status FROM licenses WHERE id = %s", grace["id"]) == "suspended"


def cut_connections():
    """Ends every other session of the database: the programs' request
    connections and whatever else they hold open (a listener's too), as
    a network blip or a failover would."""
    return sql1("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'")


def test_changes_right_after_lost_database_connections_are_seen():
    """Every database session of the programs ended, and at once (or at
    the same moment) a license revoked or suspended: whatever the
    programs keep must not miss a change made while they reconnect.
    Under this fault a call may be answered 503 (retry), never in the
    old state once the change was acknowledged."""
    plan = make_plan(features="sso,workflows,reports", limits="installations=3")
    lics = []
    for name in ("cut-rev", "cut-susp", "cut-admin"):
        doc = issue(plan=plan)
        lics.append(Lic(name, doc, start_state(hot(doc, ("a", "b"))))
                    .call("validate", "a").call("heartbeat", "b").call("usage", "a", "sso"))
    rev, susp, adm = lics

    def after_cut(act, together=False):
        """act just after the sessions were ended, or while they are."""
        def run(c):
            if not together:
                assert cut_connections() >= 1
                return act(c)
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                f = ex.submit(cut_connections)
                r = act(c)
                assert f.result() >= 1
            return r
        return run

    def admin_retried(action, lic):
        """The admin call as an operator's script makes it: again after a
        503, once the time its Retry-After names has passed (a program's
        process answers 503 at once while it waits to reconnect)."""
        def act(c):
            first = None
            for _ in range(5):
                t0, t1, status, doc = admin(c, "/api/admin/licenses/%s/%s" % (lic.id, action), {})
                first = first or t0
                if status != 503:
                    assert status == 200, (status, doc)
                    return first, t1
                time.sleep(float(c.retry_after))
            raise AssertionError("%s answered 503 five times" % action)
        return act
    def cli_retried(*args):
        """licctl as an operator runs it: again when its session was cut."""
        def act(_):
            t0 = time.monotonic()
            for _ in range(5):
                p = licctl(*args, check=False)
                if p.returncode == 0:
                    return t0, time.monotonic()
            raise AssertionError("licctl %s: %s" % (" ".join(args), p.stderr))
        return act
    suspended = changed(susp.state0, status="suspended")
    # one driver: a cut ends the other drivers' sessions too
    steps = [
        [(rev, "revoke (licctl) after the cut", changed(rev.state0, status="revoked"),
          after_cut(cli_retried("license", "revoke", rev.id)))],
        [(susp, "suspend (licctl) during the cut", suspended,
          after_cut(cli_retried("license", "suspend", susp.id), together=True))],
        [(adm, "suspend (admin) after the cut", changed(adm.state0, status="suspended"),
          after_cut(admin_retried("suspend", adm)))],
        [(susp, "reinstate (licctl) after the cut", susp.state0,
          after_cut(cli_retried("license", "reinstate", susp.id)))],
        [(adm, "revoke (admin) during the cut", changed(adm.state0, status="revoked"),
          after_cut(admin_retried("revoke", adm), together=True))],
        [(susp, "suspend (licctl) after the cut", suspended,
          after_cut(cli_retried("license", "suspend", susp.id)))],
    ]
    def settled():
        # every worker thread past its reconnect backoff: a run of calls
        # to each program without a 503, so the next test meets none
        return all(api(PATHS[t.kind], t.request()[1]).status_code != 503
                   for _ in range(16) for t in susp.targets)
    try:
        exercise(lics, [steps], min_events=6, fault=True)
    finally:
        wait_healthy()
        eventually(settled, 30, "calls answered without a 503 after the cuts")
