"""The admin lists and searches use indexes: in a database of their own
(so the rest of the suite keeps its data), filled with enough rows that
PostgreSQL prefers an index wherever one serves (30,000 licenses, few
enough that ANALYZE's sample is nearly every row and the plans do not
change from run to run), every list function runs with each filter under
auto_explain (nested statements, plans sent to this client), and no plan
may read a large table by a sequential scan.
tests/bench/console_lists.py times the same calls at any size."""
import json
import os
import re
import subprocess
import uuid

import psycopg2
import pytest

from util import BIN, CFG, CONFIG

BIG = {"licenses", "customers", "installations", "audit_log", "notifications",
       "webhook_events", "subscriptions", "usage_counters"}

FILL = """
INSERT INTO plans (code, name, limits) SELECT 'p' || g, 'Plan ' || g,
  '{"installations": 3, "runs_per_month": 1000}' FROM generate_series(1, 8) g;
INSERT INTO customers (email, name, created_at)
  SELECT 'c' || g || '@example.com', 'Name ' || g, now() - make_interval(secs => g)
    FROM generate_series(1, %(n)s / 2) g;
INSERT INTO licenses (customer_id, plan_code, status, domains, expires_at,
                      grace_until, created_at)
  SELECT c.id, 'p' || (1 + g %% 8),
         (ARRAY['active','active','active','active','suspended','revoked','expired'])[1 + g %% 7],
         CASE WHEN g %% 10 = 0 THEN jsonb_build_array('d' || g || '.example') ELSE '[]' END,
         now() + make_interval(days => g %% 900), CASE WHEN g %% 500 = 0 THEN now() + interval '2 days' END,
         now() - make_interval(secs => g)
    FROM generate_series(1, %(n)s) g
    JOIN customers c ON c.email = 'c' || (1 + g %% (%(n)s / 2)) || '@example.com';
INSERT INTO installations (license_id, installation_id, status, version, domain,
                           last_seen, first_seen)
  SELECT l.id, 'i-' || n, CASE WHEN n %% 9 = 0 THEN 'inactive' ELSE 'active' END,
         '1.' || (n %% 30), 'h' || n || '.example',
         now() - make_interval(mins => (n %% 20000)::int), now() - interval '90 days'
    FROM (SELECT id, row_number() OVER () AS n FROM licenses) l;
INSERT INTO subscriptions (provider, provider_subscription_id, customer_id, license_id, status)
  SELECT 'stripe', 'sub_' || n, customer_id, id,
         CASE WHEN n %% 100 = 0 THEN 'past_due' ELSE 'active' END
    FROM (SELECT id, customer_id, row_number() OVER () AS n FROM licenses) l;
INSERT INTO usage_counters (license_id, feature, period, used)
  SELECT id, 'runs', licd_period(licd_now()) - make_interval(months => m), n %% 1200
    FROM (SELECT id, row_number() OVER () AS n FROM licenses) l, generate_series(0, 2) m;
INSERT INTO audit_log (at, actor, action, target_type, target_id)
  SELECT now() - make_interval(secs => %(n)s - g), 'actor' || (g %% 20),
         'license.' || (ARRAY['issue','suspend','reinstate','revoke','edit'])[1 + g %% 5],
         'license', gen_random_uuid()::text
    FROM generate_series(1, %(n)s) g;
INSERT INTO notifications (kind, recipient, status, attempts, next_attempt_at)
  SELECT 'license_issued', 'x@example.com',
         CASE WHEN g %% 50 = 0 THEN 'pending' ELSE 'delivered' END, g %% 4, now()
    FROM generate_series(1, %(n)s / 2) g;
INSERT INTO webhook_events (provider, event_id, type, status, payload, received_at)
  SELECT 'stripe', 'evt_' || g, 'invoice.paid',
         CASE WHEN g %% 100 = 0 THEN 'pending' ELSE 'applied' END, '{}',
         now() - make_interval(secs => g)
    FROM generate_series(1, %(n)s / 2) g;
SELECT licd_lc_figures();
ANALYZE;
"""

# (function, arguments): every filter of every list, alone and combined.
CALLS = [
    ("licd_admin_licenses", {}),
    ("licd_admin_licenses", {"q": "c777@example.com"}),
    ("licd_admin_licenses", {"q": "c77"}),
    ("licd_admin_licenses", {"q": "c1"}),          # broad: more than 5,000 candidates
    ("licd_admin_licenses", {"q": "n"}),           # broad: every customer's name
    ("licd_admin_licenses", {"q": "c1", "status": "revoked", "plan": "p3"}),
    ("licd_admin_licenses", {"q": "Name 4242"}),
    ("licd_admin_licenses", {"q": "d5550.example"}),
    ("licd_admin_licenses", {"q": "h123.example"}),
    ("licd_admin_licenses", {"q": "i-4321"}),
    ("licd_admin_licenses", {"q": "LICENSE_ID"}),
    ("licd_admin_licenses", {"status": "suspended"}),
    ("licd_admin_licenses", {"plan": "p3"}),
    ("licd_admin_licenses", {"expiring_days": "7"}),
    ("licd_admin_licenses", {"in_grace": "true"}),
    ("licd_admin_licenses", {"past_due": "true"}),
    ("licd_admin_licenses", {"past_due": "true", "limit": "1"}),   # broad for one row
    ("licd_admin_licenses", {"past_due": "false"}),
    ("licd_admin_licenses", {"q": "c77", "past_due": "true"}),
    ("licd_admin_licenses", {"expiring_days": "7", "past_due": "true"}),
    ("licd_admin_licenses", {"status": "active", "plan": "p2", "limit": "100"}),
    ("licd_admin_licenses", {"cursor": "CURSOR"}),
    ("licd_admin_license_full", "LICENSE_ID"),
    ("licd_admin_customers", {}),
    ("licd_admin_customers", {"q": "c12"}),
    ("licd_admin_customers", {"q": "name 99"}),
    ("licd_admin_installations", {}),
    ("licd_admin_installations", {"version": "1.7"}),
    ("licd_admin_installations", {"seen_within_days": "1"}),
    ("licd_admin_installations", {"not_seen_days": "13"}),
    ("licd_admin_audit", {}),
    ("licd_admin_audit", {"actor": "actor3"}),
    ("licd_admin_audit", {"action": "license.revoke"}),
    ("licd_admin_audit", {"target": "TARGET"}),
    ("licd_admin_audit", {"since": "SINCE"}),
    ("licd_admin_notifications", {}),
    ("licd_admin_notifications", {"status": "pending"}),
    ("licd_admin_webhook_events", {}),
    ("licd_admin_webhook_events", {"status": "pending"}),
    ("licd_admin_plans", {}),
    ("licd_admin_overview", {}),
]


# What each list call must answer, by the definition (docs/API.md) rather
# than the function's choice of plan: the newest matching licenses.
EXPECTED = """
SELECT l.id::text FROM licenses l JOIN customers c ON c.id = l.customer_id
 WHERE (%(q)s::text IS NULL OR lower(c.email) LIKE %(pat)s OR lower(c.name) LIKE %(pat)s
        OR l.domains @> jsonb_build_array(lower(%(q)s))
        OR l.id IN (SELECT license_id FROM installations
                     WHERE installation_id = %(q)s OR lower(domain) = lower(%(q)s))
        OR l.id::text = %(q)s OR l.customer_id::text = %(q)s)
   AND (%(status)s::text IS NULL OR l.status = %(status)s)
   AND (%(plan)s::text IS NULL OR l.plan_code = %(plan)s)
   AND (%(past_due)s::text IS NULL OR (l.id IN (SELECT license_id FROM subscriptions
         WHERE status IN ('past_due', 'unpaid') AND license_id IS NOT NULL)) = (%(past_due)s = 'true'))
   AND (%(expiring_days)s::int IS NULL OR (l.status = 'active' AND l.expires_at > licd_now()
        AND l.expires_at <= licd_now() + make_interval(days => %(expiring_days)s::int)))
 ORDER BY l.created_at DESC, l.id DESC LIMIT %(limit)s
"""


def expected(cur, args):
    a = dict.fromkeys(("q", "status", "plan", "past_due", "expiring_days"))
    a.update(args)
    a["limit"] = int(args.get("limit", 50))
    a["pat"] = a["q"] and a["q"].lower() + "%"
    cur.execute(EXPECTED, a)
    return [r[0] for r in cur.fetchall()]


def nodes(node):
    """A plan's nodes, the node itself first."""
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def scans(node, out):
    out.extend(n.get("Relation Name") for n in nodes(node) if n.get("Node Type") == "Seq Scan")
    return out


# Every statement's plan, nested ones included, sent to this client as JSON
# notices (read them with explained).
AUTO_EXPLAIN = ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                "SET auto_explain.log_nested_statements = on",
                "SET auto_explain.log_format = json",
                "SET auto_explain.log_level = notice",
                "SET client_min_messages = notice")


def explained(conn):
    return [json.loads(n[n.index("{"):])["Plan"] for n in conn.notices if "plan" in n]


@pytest.fixture(scope="module")
def explain_db():
    name = "licd_explain_" + uuid.uuid4().hex[:8]
    su = re.sub(r"user=\S+", "user=postgres", CFG["database_url"])
    admin = psycopg2.connect(re.sub(r"dbname=\S+", "dbname=postgres", su))
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE %s OWNER licd" % name)
    url = re.sub(r"dbname=\S+", "dbname=" + name, CFG["database_url"])
    try:
        env = dict(os.environ, LICD_CONFIG=CONFIG, LICD_DATABASE_URL=url)
        subprocess.run([os.path.join(BIN, "licctl"), "migrate"], env=env,
                       check=True, capture_output=True)
        conn = psycopg2.connect(url)
        conn.autocommit = True
        conn.cursor().execute(FILL, {"n": int(os.environ.get("LICD_EXPLAIN_ROWS", 30000))})
        conn.close()
        yield re.sub(r"dbname=\S+", "dbname=" + name, su)
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        admin.close()


def test_every_list_and_search_uses_indexes(explain_db):
    conn = psycopg2.connect(explain_db)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT id::text FROM licenses ORDER BY created_at DESC LIMIT 1 OFFSET 777")
    lid = cur.fetchone()[0]
    cur.execute("SELECT licd_admin_licenses('{\"limit\": \"5\"}')")
    cursor = json.loads(cur.fetchone()[0])["next_cursor"]
    cur.execute("SELECT target_id, at::text FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET 100")
    target, since = cur.fetchone()
    for stmt in AUTO_EXPLAIN:
        cur.execute(stmt)
    ref = psycopg2.connect(explain_db).cursor()
    bad = []
    for fn, args in CALLS:
        if isinstance(args, dict):
            args = {k: v.replace("LICENSE_ID", lid).replace("CURSOR", cursor)
                    .replace("TARGET", target).replace("SINCE", since)
                    for k, v in args.items()}
            arg, cast = json.dumps(args), "jsonb"
        else:
            arg, cast = args.replace("LICENSE_ID", lid), "uuid"
        del conn.notices[:]
        cur.execute("SELECT %s(%%s::%s)" % (fn, cast), (arg,))
        doc = json.loads(cur.fetchone()[0])
        plans = explained(conn)
        assert plans, (fn, args)
        seqs = []
        for p in plans:
            scans(p, seqs)
        big = [t for t in seqs if t in BIG]
        if big:
            bad.append((fn, args, big))
        if fn == "licd_admin_licenses" and "q" in args and "past_due" not in args:
            assert doc["licenses"], (fn, args)     # the search found its row
        if fn == "licd_admin_licenses" and "cursor" not in args and "in_grace" not in args:
            assert [x["id"] for x in doc["licenses"]] == expected(ref, args), args
        if args == {"q": "c1"}:
            # the broad path: a full page, every row a match, newest first
            assert len(doc["licenses"]) == 50 and doc["next_cursor"]
            assert all(l["email"].startswith("c1") for l in doc["licenses"])
            made = [l["created_at"] for l in doc["licenses"]]
            assert made == sorted(made, reverse=True)
    conn.close()
    assert bad == [], "\n".join(map(str, bad))


def test_request_path_reads_through_hash_indexes(explain_db):
    """The lookups of validate, heartbeat and usage, alone and batched, and
    the last_seen refresh written behind them find their license and
    installation through the hash indexes (sql/035), with the generic plans
    the programs' sessions use, and no table by a sequential scan; also for
    an installation id 2,000 licenses share, which ANALYZE has seen."""
    conn = psycopg2.connect(explain_db)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO installations (license_id, installation_id)"
                " SELECT id, 'shared' FROM licenses WHERE status = 'active'"
                " ORDER BY id LIMIT 2000")
    cur.execute("ANALYZE installations")
    cur.execute("(SELECT license_id::text, installation_id FROM installations"
                "  WHERE status = 'active' AND installation_id <> 'shared'"
                "  ORDER BY installation_id LIMIT 2)"
                " UNION ALL (SELECT license_id::text, installation_id FROM installations"
                "  WHERE installation_id = 'shared' ORDER BY license_id DESC LIMIT 1)")
    pairs = cur.fetchall()
    for stmt in AUTO_EXPLAIN + ("SET plan_cache_mode = force_generic_plan",):
        cur.execute(stmt)
    lookups = json.dumps([{"n": k, "l": l, "i": i, "s": 0} for k, (l, i) in enumerate(pairs)])
    touches = json.dumps([{"l": l, "i": i, "t": 2000000000} for l, i in pairs])
    calls = [("SELECT count(*) FROM licd_lookup_batch(%s::jsonb)", (lookups,), 3),
             ("SELECT count(*) FROM licd_lookup(%s, %s, 0, NULL, NULL)", pairs[0], 1),
             ("SELECT count(*) FROM licd_lookup(%s, %s, 0, NULL, NULL)", pairs[2], 1),
             ("SELECT licd_touch_batch(%s::jsonb)", (touches,), 3)]
    for sql, args, n in calls:
        # twice: the second runs the plan the session keeps
        for _ in range(2):
            del conn.notices[:]
            cur.execute(sql, args)
            assert cur.fetchone()[0] == n, sql
        plans = explained(conn)
        assert plans, sql
        used = {(n.get("Relation Name"), n["Index Name"])
                for p in plans for n in nodes(p) if "Index Name" in n}
        installations = {x for r, x in used if r == "installations"}
        assert installations == {"installations_id_hash"}, (sql, used)
        if "lookup" in sql:
            assert {x for r, x in used if r == "licenses"} == {"licenses_id_hash"}, (sql, used)
        assert not [t for p in plans for t in scans(p, []) if t in BIG], (sql, plans)
    cur.execute("SELECT count(*) FROM licd_lookup_batch(%s::jsonb)"
                " WHERE inst_status = 'active'", (lookups,))
    assert cur.fetchone()[0] == 3
    conn.close()
