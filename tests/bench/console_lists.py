#!/usr/bin/env python3
"""Times the admin API's lists and searches at the database with many
licenses: a database of its own in the stack's cluster (LICD_CONFIG), filled
as tests/integration/test_console_explain.py fills it but with ROWS licenses
(default 1,000,000; as many installations and subscriptions, half as many
customers, notifications and webhook events, three months of usage counters
per license), vacuumed and analysed as autovacuum leaves a table, with the
overview's figures counted as licd-lifecycle counts them (timed), then every
call of that test and the overview run RUNS times; prints the median
and the worst execution time PostgreSQL reports (EXPLAIN ANALYZE of the
function call, so the whole function with its nested statements).

  LICD_CONFIG=run/licd.conf python3 tests/bench/console_lists.py [ROWS] [RUNS]
      [--keep | --db NAME]

--keep leaves the filled database in place and prints its name; --db NAME
times an existing one (filled by an earlier --keep run) after bringing it
to the current schema and functions with licctl migrate, without filling.
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
    args = sys.argv[1:]
    keep = "--keep" in args
    reuse = None
    if "--db" in args:
        reuse = args[args.index("--db") + 1]
        if not re.match(r"^licd_bench_[0-9a-f]{8}$", reuse):
            sys.exit("--db takes a name an earlier --keep printed")
        args.remove("--db")
        args.remove(reuse)
    args = [a for a in args if a != "--keep"]
    rows = int(args[0]) if len(args) > 0 else 1000000
    runs = int(args[1]) if len(args) > 1 else 7
    name = reuse or "licd_bench_" + uuid.uuid4().hex[:8]
    su = re.sub(r"user=\S+", "user=postgres", CFG["database_url"])
    admin = psycopg2.connect(re.sub(r"dbname=\S+", "dbname=postgres", su))
    admin.autocommit = True
    if not reuse:
        admin.cursor().execute("CREATE DATABASE %s OWNER licd" % name)
    url = re.sub(r"dbname=\S+", "dbname=" + name, CFG["database_url"])
    try:
        env = dict(os.environ, LICD_CONFIG=CONFIG, LICD_DATABASE_URL=url)
        subprocess.run([os.path.join(BIN, "licctl"), "migrate"], env=env,
                       check=True, capture_output=True)
        conn = psycopg2.connect(url)
        conn.autocommit = True
        cur = conn.cursor()
        if reuse:
            cur.execute("SELECT count(*) FROM licenses")
            print("database %s: %d licenses" % (name, cur.fetchone()[0]))
        else:
            t = time.time()
            cur.execute(FILL, {"n": rows})
            print("filled %d licenses in %.0f s" % (rows, time.time() - t))
        if keep:
            print("kept database %s (reuse: --db %s)" % (name, name))
        cur.execute("VACUUM (ANALYZE)")
        t = time.time()
        cur.execute("SELECT licd_lc_figures()")
        print("licd-lifecycle's figures task took %.1f s" % (time.time() - t))
        cur.execute("SELECT id::text FROM licenses ORDER BY created_at DESC LIMIT 1 OFFSET 777")
        lid = cur.fetchone()[0]
        cur.execute("SELECT licd_admin_licenses('{\"limit\": \"5\"}')")
        cursor = json.loads(cur.fetchone()[0])["next_cursor"]
        cur.execute("SELECT target_id, at::text FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET 100")
        target, since = cur.fetchone()
        print("%-28s %-48s %9s %9s" % ("function", "arguments", "median", "worst"))
        for fn, args in CALLS:
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
        if not keep and not reuse:
            admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        admin.close()


if __name__ == "__main__":
    main()
