#!/usr/bin/env python3
"""Formats make bench's results.jsonl: a table, the ratios the performance
issue sets as targets, and results.json beside it."""
import json
import os
import sys

path, n, dur, conn = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {(r["server"], r["name"]): r for r in rows}


def get(server, name):
    return by.get((server, name))


def w(r, k):
    return r["wrk"].get(k, 0) if r else 0


def huge_pages():
    """HugePages_Total: PostgreSQL uses them (huge_pages=try) when the
    kernel has some, and at a million licenses that doubles its speed on
    this kind of VM (docs/PERFORMANCE.md), so the report says which."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("HugePages_Total:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


out = []
out.append("licd bench: %s licenses, wrk -t2 -c%s -d%ss, median of %d rounds, %s, "
           "shared_buffers %s, max_wal_size %s, %d huge pages" %
           (n, conn, dur, len(rows[0]["wrk"].get("runs_rps", [1])) if rows else 1,
            os.uname().nodename, os.environ.get("BENCH_SB", "?"),
            os.environ.get("BENCH_WAL", "?"), huge_pages()))
out.append("%-22s %-15s %10s %9s %9s %9s %7s %7s %9s %7s   %s" %
           ("workload", "server", "req/s", "p50 ms", "p99 ms", "p99.9 ms",
            "errors", "non2xx", "RSS MiB", "wrk us", "runs req/s"))
for r in rows:
    out.append("%-22s %-15s %10.0f %9.2f %9.2f %9.2f %7d %7d %9.1f %7.1f   %s" % (
        r["name"], r["server"], w(r, "rps"), w(r, "p50_ms"), w(r, "p99_ms"),
        w(r, "p999_ms"), w(r, "errors"), w(r, "non2xx"), r["rss_kib"] / 1024,
        w(r, "client_us"),
        "/".join("%.0f" % x for x in r["wrk"].get("runs_rps", []))))

ratios = {}
checks = []


def ratio(name, a, b):
    v = a / b if b else None
    ratios[name] = v
    return v


def rratio(name, A, B, key="rps"):
    """The median of the per-round ratios: both sides of a ratio ran back
    to back in each round, so the VM's drift between rounds cancels out."""
    runs = "runs_rps" if key == "rps" else "runs_p99_ms"
    a = A["wrk"].get(runs, []) if A else []
    b = B["wrk"].get(runs, []) if B else []
    if a and len(a) == len(b) and all(b):
        rs = sorted(x / y for x, y in zip(a, b))
        v = rs[len(rs) // 2]
        ratios[name] = v
        return v
    return ratio(name, w(A, key), w(B, key))


floor = get("floor", "fastcgi-floor")
ceiling = get("nginx", "ceiling")
# Above the baseline's size the large stack runs without the license cache
# (bench.sh): its ratios to the floor and of floating to node-locked
# validate are printed, but those targets are of a stack of 10,000 with the
# defaults, which answers most calls from memory (ok None: not judged).
base_n = int(os.environ.get("BENCH_BASE_N", "0") or 0)
for ep in ("validate", "heartbeat"):
    L, E = get("licd", ep), get("express", ep)
    rratio("%s_vs_ceiling" % ep, L, ceiling)
    f = rratio("%s_vs_floor" % ep, L, floor)
    checks.append(("%s >= 75%% of the FastCGI floor" % ep, f,
                   None if base_n else f is not None and f >= 0.75))
    if E:
        x = rratio("%s_rps_vs_express" % ep, L, E)
        p = rratio("%s_p99_vs_express" % ep, L, E, "p99_ms")
        checks.append(("%s >= 4x express req/s" % ep, x, x is not None and x >= 4))
        lim = 0.10 if ep == "validate" else 0.25
        checks.append(("%s p99 <= %.2f of express" % (ep, lim), p,
                       p is not None and p <= lim))
# Floating seats (as many licenses as validate's, up to 10,000) against
# node-locked validate in the same rounds: issue 25's target.
L, F = get("licd", "validate"), get("licd", "validate-floating")
if F:
    x = rratio("validate_floating_vs_validate", F, L)
    checks.append(("validate-floating >= 0.9x validate req/s", x,
                   None if base_n else x is not None and x >= 0.9))
# What counting validate's answers per day (the console's overview) costs:
# validate on a stack with console_counts = off, right after validate on
# the stack of 10,000 with the defaults (the main one at 10,000, else the
# baseline): issue 26's limit is 5 %.
N0 = get("licd", "validate") if int(n) <= 10000 else get("licd-%s" % os.environ.get("BENCH_BASE_N", "0"), "validate")
NC = get("licd-nocount", "validate")
if N0 and NC:
    x = rratio("validate_counting_vs_not", N0, NC)
    checks.append(("validate counting answers >= 0.95x not counting", x,
                   x is not None and x >= 0.95))
for ep, lim in (("usage", 3), ("usage-hot", 4)):
    L, E = get("licd", ep), get("express", ep)
    if E:
        x = rratio("%s_rps_vs_express" % ep, L, E)
        checks.append(("%s >= %dx express req/s" % (ep, lim), x, x is not None and x >= lim))
# At a million licenses, the same calls against stacks of 10,000 in the
# same rounds (bench.sh, BENCH_BASELINE). The target compares a call with
# the same work per call: the `-same` stack of 10,000 runs with
# lease_reuse = 0 and touch_interval = 0, because the default stack's
# installations, called every second or two, nearly always find their
# lease and last_seen fresh, where a million's almost never do
# (docs/PERFORMANCE.md, "What limits the numbers"). The default stack's
# ratio is printed for reference.
ref = []
for ep in ("validate", "heartbeat"):
    L, S = get("licd", ep), get("licd-%d-same" % base_n, ep)
    if base_n and S:
        p = rratio("%s_p99_vs_%d_same_work" % (ep, base_n), L, S, "p99_ms")
        x = rratio("%s_rps_vs_%d_same_work" % (ep, base_n), L, S)
        checks.append(("%s p99 <= 1.1x that at %d, same work" % (ep, base_n), p,
                       p is not None and p <= 1.1))
        checks.append(("%s req/s >= 0.9x that at %d, same work" % (ep, base_n), x,
                       x is not None and x >= 0.9))
    B = get("licd-%d" % base_n, ep)
    if base_n and B:
        p = rratio("%s_p99_vs_%d" % (ep, base_n), L, B, "p99_ms")
        x = rratio("%s_rps_vs_%d" % (ep, base_n), L, B)
        ref.append(("%s p99, req/s vs %d, caches on" % (ep, base_n), p, x))
# What the large stack's and the -same stack's validate and heartbeat
# wrote, round by round (bench.sh, wrote): the share of last_seen refreshes
# that were not heap-only, and full-page images per request.
writes = []
wpath = os.path.join(os.path.dirname(path), "writes.jsonl")
if base_n and os.path.exists(wpath):
    writes = [json.loads(l) for l in open(wpath) if l.strip()]
wlines = []
for ep in ("validate", "heartbeat"):
    for server in ("licd", "licd-%d-same" % base_n):
        ws = sorted((x for x in writes if x["name"] == ep and x["server"] == server),
                    key=lambda x: x["round"])
        runs = (get(server, ep) or {}).get("wrk", {})
        reqs = runs.get("runs_requests", [])
        if not ws:
            continue
        shares = ["%.1f %%" % (100.0 * (x["updates"] - x["hot"]) / x["updates"])
                  if x["updates"] > 0 else "-" for x in ws]
        fpis = ["%.2f" % (x["fpi"] / reqs[k]) if 0 <= k < len(reqs) and reqs[k] else "-"
                for k, x in ((x["round"] - 1, x) for x in ws)]
        wlines.append("  %-22s %-15s %s; %s" % (
            ep, server, ", ".join(shares), ", ".join(fpis)))
licd_rss = max([r["rss_kib"] for r in rows if r["server"] == "licd"] or [0])
exp_rss = max([r["rss_kib"] for r in rows if r["server"] == "express"] or [0])
if exp_rss:
    x = ratio("rss_vs_express", licd_rss, exp_rss)
    checks.append(("licd RSS <= 1/4 of express", x, x <= 0.25))
# Fresh activations have no Express counterpart. Issue 28 asks for twice
# the rate measured when it was filed (3.0k req/s against a FastCGI floor
# of 24.1k in that run), "in the same run": across runs only ratios
# compare, so the target is twice that share of the floor measured in
# these rounds.
nv = get("licd", "validate-new")
if nv and floor:
    x = rratio("validate_new_vs_floor", nv, floor)
    lim = 2 * 3000 / 24100
    checks.append(("validate-new >= %.3f of the floor (2x 3.0k/24.1k)" % lim, x,
                   x is not None and x >= lim))

out.append("")
out.append("ratios (targets in docs/PERFORMANCE.md; median of the per-round ratios):")
for name, v, ok in checks:
    out.append("  %-50s %8s  %s" % (name, "-" if v is None else "%.2f" % v,
                                    "met" if ok else "NOT MET" if ok is not None else
                                    "(a target at %s licenses, the license cache on)" %
                                    format(base_n, ",")))
out.append("  %-50s %8.2f" % ("validate vs nginx ceiling", ratios.get("validate_vs_ceiling") or 0))
if nv:
    out.append("  %-50s %8.0f" % ("validate, new installation, req/s", w(nv, "rps")))
for name, p, x in ref:
    out.append("  %-50s %8s %8s  (for reference)" % (
        name, "-" if p is None else "%.2f" % p, "-" if x is None else "%.2f" % x))
if wlines:
    out.append("")
    out.append("last_seen refreshes by round, approximate (statistics reach pg_stat "
               "up to a second late): the share not heap-only (an installation's first "
               "in a new seen_hour span), full-page images per call:")
    out.extend(wlines)
print("\n".join(out))
json.dump({"licenses": int(n), "duration_s": int(dur), "connections": int(conn),
           "shared_buffers": os.environ.get("BENCH_SB"),
           "max_wal_size": os.environ.get("BENCH_WAL"), "huge_pages": huge_pages(),
           "results": rows, "ratios": ratios,
           "checks": [{"check": c, "value": v, "met": ok} for c, v, ok in checks]},
          open(os.path.join(os.path.dirname(path), "results.json"), "w"), indent=1)
