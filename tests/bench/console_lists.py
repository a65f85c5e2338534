#!/usr/bin/env python3
"""Times the admin API's lists and searches at the database with many
licenses: a database of its own in the stack's cluster (LICD_CONFIG), filled
as tests/integration/test_console_explain.py fills it but with ROWS licenses
(default 1,000,000; as many installations and subscriptions, half as many
customers, notifications and webhook events, three months of usage counters
per license), then every call of that test run RUNS times; prints the median
and the worst execution time PostgreSQL reports (EXPLAIN ANALYZE of the
function call, so the whole function with its nested statements).

  LICD_CONFIG=run/licd.conf python3 tests/bench/console_lists.py [ROWS] [RUNS]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.environ.setdefault("LICD_CONFIG", os.path.join(HERE, "..", "..", "run", "licd.conf"))

import psycopg2                                    # noqa: E402
from util import BIN, CFG, CONFIG                  # noqa: E402
from test_console_explain import CALLS, FILL       # noqa: E402


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    name = "licd_bench_" + uuid.uuid4().hex[:8]
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
        cur = conn.cursor()
        t = time.time()
        cur.execute(FILL, {"n": rows})
        print("filled %d licenses in %.0f s" % (rows, time.time() - t))
        cur.execute("SELECT id::text FROM licenses ORDER BY created_at DESC LIMIT 1 OFFSET 777")
        lid = cur.fetchone()[0]
        cur.execute("SELECT licd_admin_licenses('{\"limit\": \"5\"}')")
        cursor = json.loads(cur.fetchone()[0])["next_cursor"]
        cur.execute("SELECT target_id, at::text FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET 100")
        target, since = cur.fetchone()
        calls = CALLS + [("licd_admin_overview", {})]
        print("%-28s %-48s %9s %9s" % ("function", "arguments", "median", "worst"))
        for fn, args in calls:
            if isinstance(args, dict):
                args = {k: v.replace("LICENSE_ID", lid).replace("CURSOR", cursor)
                        .replace("TARGET", target).replace("SINCE", since)
                        for k, v in args.items()}
                arg, cast = json.dumps(args), "jsonb"
            else:
                arg, cast = args.replace("LICENSE_ID", lid), "uuid"
            times = []
            for _ in range(runs):
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT %s(%%s::%s)" % (fn, cast), (arg,))
                times.append(cur.fetchone()[0][0]["Execution Time"])
            shown = json.dumps(args) if isinstance(args, dict) else "id"
            shown = shown if len(shown) <= 48 else shown[:45] + "..."
            print("%-28s %-48s %7.1f ms %7.1f ms" % (fn, shown, statistics.median(times), max(times)))
        conn.close()
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        admin.close()


if __name__ == "__main__":
    main()
