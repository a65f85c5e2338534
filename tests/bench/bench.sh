#!/usr/bin/env bash
# make bench: licd under wrk on loopback, side by side with what bounds it
# (nginx `return 200`, a trivial FastCGI program) and with the reference
# Express server in ../shared/peers/express when present. Not a test: it
# prints a table and writes results.json under the run directory.
#
#   BENCH_LICENSES=10000  licenses seeded (make bench LICENSES=1000000)
#   BENCH_DURATION=10     seconds per wrk run
#   BENCH_CONNECTIONS=64  wrk connections (2 threads)
#   BENCH_REPEAT=3        rounds over all workloads; the median run (by
#                         req/s) is kept, ratios are medians of per-round ratios
#   BENCH_RUN_DIR         default run/bench (kept for inspection)
#   BENCH_PROCESSES=1, BENCH_THREADS=8, BENCH_USAGE_THREADS   licd concurrency
#                         (usage_threads unset: one per CPU plus one)
#   BENCH_SHARED_BUFFERS  both clusters' shared_buffers (128MB; 2GB from
#                         100,000 licenses, so a million fit in memory)
#   BENCH_MAX_WAL_SIZE    the large stack's max_wal_size (1GB; 4GB from
#                         100,000 licenses, so that its checkpoints come from
#                         the rounds and checkpoint_timeout rather than from
#                         WAL volume, as docs/OPERATIONS.md sizes it for a
#                         large fleet)
#   BENCH_CONF            more licd.conf lines (say "touch_interval = 900")
#   BENCH_BASELINE=10000  above this many licenses, two stacks of this many
#                         run validate and heartbeat in each round too: one
#                         with the defaults, for reference, and the -same
#                         stack, with the lease cache and the last_seen
#                         threshold off (lease_reuse 0, touch_interval 0),
#                         so that each of its calls signs and writes as
#                         nearly every call at a million does; the target
#                         at a million compares the large stack with it, the
#                         two run back to back. 0 skips both. Above it, the
#                         license cache is off in the large stack and in the
#                         -same one: both then measure the database path
#                         with the same work per call (at a million, few
#                         calls would find their installation in memory
#                         anyway), and wrk reads each request's key from
#                         the key file for both, as it must for a million
#                         (tests/bench/common.lua). The report adds, round
#                         by round, the share of both stacks' last_seen
#                         refreshes that were not heap-only, and their
#                         full-page images per call
#   BENCH_COUNTS=1        a stack of up to 10,000 licenses with
#                         console_counts = off, validated in each round
#                         beside the stack of 10,000 with the defaults: what
#                         counting answers for the console's overview costs
#                         validate; 0 skips it
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${BENCH_LICENSES:-10000}
DUR=${BENCH_DURATION:-10}
CONN=${BENCH_CONNECTIONS:-64}
REPEAT=${BENCH_REPEAT:-3}
# One process per program with 8 threads: as fast as 2 x 4 here and a
# third less memory (see docs/PERFORMANCE.md); production runs the same
# under systemd, which restarts a crashed process.
PROCS=${BENCH_PROCESSES:-1}
THREADS=${BENCH_THREADS:-8}
# usage defers its requests (no thread waits on a WAL flush): as validate,
# it takes one thread per CPU plus one unless this is set.
USAGE_THREADS=${BENCH_USAGE_THREADS:-}
if [ "$N" -ge 100000 ]; then SB=${BENCH_SHARED_BUFFERS:-2GB}; else SB=${BENCH_SHARED_BUFFERS:-128MB}; fi
if [ "$N" -ge 100000 ]; then WAL=${BENCH_MAX_WAL_SIZE:-4GB}; else WAL=${BENCH_MAX_WAL_SIZE:-1GB}; fi
RUN_DIR=${BENCH_RUN_DIR:-$ROOT/run/bench}
PORT=${BENCH_PORT:-18080}
FLOOR_PORT=$((PORT + 1))
BASE_N=${BENCH_BASELINE:-10000}
BASE_DIR=$RUN_DIR-base
BASE_PORT=$((PORT + 2))
SAME_DIR=$RUN_DIR-same
SAME_PORT=$((PORT + 3))
SAME_CONF=$'lease_reuse = 0\ntouch_interval = 0\nlicense_cache = off'
COUNTS=${BENCH_COUNTS:-1}
NOCOUNT_DIR=$RUN_DIR-nocount
NOCOUNT_PORT=$((PORT + 4))
[ "$BASE_N" -gt 0 ] && [ "$N" -gt "$BASE_N" ] || BASE_N=0
PEER=${BENCH_PEER:-$ROOT/../shared/peers/express}
PY=/usr/bin/python3
export BENCH_LUA=$ROOT/tests/bench
RES=$RUN_DIR/results.jsonl
RAW=$RUN_DIR/runs.jsonl

command -v wrk >/dev/null || { echo "bench: wrk missing (make deps)"; exit 1; }
make -s all
mkdir -p build/bench
cc -O2 -Wall -Werror -o build/bench/floor tests/bench/floor.c -lfcgi

cleanup() {
	deploy/local.sh stop "$RUN_DIR" >/dev/null 2>&1 || true
	if [ "$BASE_N" -gt 0 ]; then
		deploy/local.sh stop "$BASE_DIR" >/dev/null 2>&1 || true
		deploy/local.sh stop "$SAME_DIR" >/dev/null 2>&1 || true
	fi
	deploy/local.sh stop "$NOCOUNT_DIR" >/dev/null 2>&1 || true
	[ -f "$RUN_DIR/floor-nginx.pid" ] && kill "$(cat "$RUN_DIR/floor-nginx.pid")" 2>/dev/null
	[ -f "$RUN_DIR/floor.pids" ] && kill $(cat "$RUN_DIR/floor.pids") 2>/dev/null
	[ -f /tmp/licd-bench-peer.pid ] && kill -TERM "$(cat /tmp/licd-bench-peer.pid)" 2>/dev/null
	if [ -d /tmp/licd-bench-peer-pg/data ]; then
		pgctl stop -D /tmp/licd-bench-peer-pg/data -m fast >/dev/null 2>&1 || true
		rm -rf /tmp/licd-bench-peer-pg
	fi
	true
}
trap cleanup EXIT

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgctl() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$PGBIN/pg_ctl" "$@"
	else "$PGBIN/pg_ctl" "$@"; fi
}

# Peak resident memory (VmHWM, KiB) summed over the given pids and their
# children: the prefork masters and their workers, or node's cluster.
rss_of() {
	local total=0 p kids
	for p in "$@"; do
		kids=$(pgrep -P "$p" || true)
		for q in $p $kids; do
			v=$(awk '/VmHWM/ {print $2}' "/proc/$q/status" 2>/dev/null || echo 0)
			total=$((total + ${v:-0}))
		done
	done
	echo "$total"
}

# one NAME SERVER -- wrk args: one wrk run, one raw line. The workloads run
# in rounds, licd and the servers it is compared with back to back in each
# round, so that the VM's drift (a run here can be off by 2x from one
# minute to the next) hits both sides of every ratio alike.
one() {
	local name=$1 server=$2 out line cpu TIMEFORMAT='CLIENT %3U %3S'; shift 3
	out=$( { time wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 10s "$@" 2>&1; } 2>&1) || true
	line=$(grep '^BENCH ' <<<"$out" | sed 's/^BENCH //')
	if [ -z "$line" ]; then echo "$out" >&2; line='{"requests":0,"rps":0}'; fi
	# wrk's own CPU per request: it shares the two cores with the servers,
	# so the two sides of a ratio must cost it the same
	cpu=$(grep '^CLIENT ' <<<"$out" || echo "CLIENT 0 0")
	line=$($PY -c "import json, sys
d = json.loads(sys.argv[1]); u, s = map(float, sys.argv[2].split()[1:])
d['client_us'] = round((u + s) * 1e6 / max(d['requests'], 1), 1)
print(json.dumps(d, separators=(',', ':')))" "$line" "$cpu")
	echo "{\"name\":\"$name\",\"server\":\"$server\",\"wrk\":$line}" >> "$RAW"
	printf '  %-24s %-8s %10s req/s\n' "$name" "$server" \
		"$($PY -c "import json,sys; print(json.loads(sys.argv[1])['rps'])" "$line")"
}

# The wrk scripts read keys by random seek (tests/bench/common.lua): pad
# every key of a file to the longest one's width.
fixed() {
	awk 'NR == FNR { if (length($0) > m) m = length($0); next }
	     length($0) > 0 { printf "%-" m "s\n", $0 }' "$1" "$1" > "$2"
}

# stack DIR PORT LICENSES SHARED_BUFFERS [CONF] [MAX_WAL_SIZE]: a fresh licd stack with
# that many licenses, each with one active installation, as the validate
# and heartbeat scripts name it, so "existing installation" means that at
# any scale; its keys in DIR/keys.txt and one more license's in
# DIR/hot.txt; CONF is added to BENCH_CONF in its licd.conf.
stack() {
	local dir=$1 port=$2 n=$3 sb=$4 conf=${BENCH_CONF:-} rt
	[ -z "${5:-}" ] || conf=$(printf '%s\n%s' "$conf" "$5")
	echo "== licd stack in $dir (port $port), $n licenses"
	deploy/local.sh stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 755 "$dir"
	LICD_PROCESSES=$PROCS LICD_THREADS=$THREADS LICD_USAGE_THREADS=$USAGE_THREADS \
		LICD_PG_SHARED_BUFFERS=$sb LICD_PG_MAX_WAL_SIZE=${6:-1GB} LICD_CONF_EXTRA="$conf" \
		LICD_RATE=1000000 LICD_BURST=1000000 deploy/local.sh start "$dir" "$port" >/dev/null
	export LICD_CONFIG=$dir/licd.conf
	L=build/bin/licctl
	$L plan set bench --name Bench --features sso,api_calls \
		--limits installations=1000000,api_calls_per_month=1000000000000 >/dev/null
	$L customer create --email bench@licd.test >/dev/null
	$L license issue --customer bench@licd.test --plan bench --days 365 \
		--count "$n" --keys-out "$dir/keys.txt"
	$L license issue --customer bench@licd.test --plan bench --days 365 \
		--count 1 --keys-out "$dir/hot.txt" 2>/dev/null
	rt=$(cat "$dir/runtime-dir" 2>/dev/null || echo "$dir")
	# With the domain existing.lua reports, as its first validate would have
	# recorded it: otherwise each installation's first measured validate
	# writes it, which at a million is nearly every one.
	$PGBIN/psql -q -h "$rt/pg" -U licd -d licd -c "INSERT INTO installations
		(license_id, installation_id, version, domain) SELECT id,
		'b-' || right(license_key, 16), '1.0.0', 'app.example.com'
		FROM licenses WHERE plan_code = 'bench' ON CONFLICT DO NOTHING"
	# Floating licenses (up to 10,000) for validate-floating, each with
	# its installation holding a live seat lease, as after its first call:
	# the calls are then answered from memory, and renew when due. Their
	# expiries are spread as in steady state (a seat is renewed once less
	# than three quarters of its ttl is left): all alike, every seat would
	# come due in the same second and renew in one burst.
	if [ "$dir" = "$RUN_DIR" ]; then
		$L plan set bench-floating --name "Bench floating" \
			--features sso,api_calls --limits installations=1000000 \
			--seat-model floating --seat-ttl 900 >/dev/null
		$L license issue --customer bench@licd.test --plan bench-floating \
			--days 365 --count "$((n < 10000 ? n : 10000))" \
			--keys-out "$dir/floating.txt"
		$PGBIN/psql -q -h "$rt/pg" -U licd -d licd -c "INSERT INTO installations
			(license_id, installation_id, version, domain, seat_since,
			seat_expires_at) SELECT id, 'b-' || right(license_key, 16),
			'1.0.0', 'app.example.com', now(),
			now() + interval '675 s' + random() * interval '225 s'
			FROM licenses WHERE plan_code = 'bench-floating'
			ON CONFLICT DO NOTHING"
		# and today's seat_peaks row, which that first call wrote: without
		# it each license's first renewal in the runs is the day's first
		# seat write (licd_seat_days), planned while the table was empty.
		$PGBIN/psql -q -h "$rt/pg" -U licd -d licd -c "INSERT INTO seat_peaks
			(license_id, day, peak) SELECT id,
			(licd_now() AT TIME ZONE 'UTC')::date, 1
			FROM licenses WHERE plan_code = 'bench-floating'
			ON CONFLICT DO NOTHING"
		fixed "$dir/floating.txt" "$dir/floating-fixed.txt"
	fi
	$PGBIN/psql -q -h "$rt/pg" -U licd -d licd -c "VACUUM ANALYZE" 2>/dev/null || true
	fixed "$dir/keys.txt" "$dir/keys-fixed.txt"
}

if [ "$BASE_N" -gt 0 ]; then
	stack "$RUN_DIR" "$PORT" "$N" "$SB" "license_cache = off" "$WAL"
else
	stack "$RUN_DIR" "$PORT" "$N" "$SB" "" "$WAL"
fi
PIDS=$(for f in "$RUN_DIR"/pid/*.pid; do cat "$f"; echo; done)
# The baseline for the p99 target: 10,000 licenses as in a default run,
# measured in the same rounds so that the VM's drift hits both.
if [ "$BASE_N" -gt 0 ]; then
	stack "$BASE_DIR" "$BASE_PORT" "$BASE_N" 128MB
	BRT=$(cat "$BASE_DIR/runtime-dir" 2>/dev/null || echo "$BASE_DIR")
	stack "$SAME_DIR" "$SAME_PORT" "$BASE_N" 128MB "$SAME_CONF"
	SRT=$(cat "$SAME_DIR/runtime-dir" 2>/dev/null || echo "$SAME_DIR")
fi
if [ "$COUNTS" -eq 1 ]; then
	stack "$NOCOUNT_DIR" "$NOCOUNT_PORT" "$((N < 10000 ? N : 10000))" 128MB "console_counts = off"
	CRT=$(cat "$NOCOUNT_DIR/runtime-dir" 2>/dev/null || echo "$NOCOUNT_DIR")
fi
export LICD_CONFIG=$RUN_DIR/licd.conf

echo "== ceiling (nginx return 200) and floor (trivial FastCGI)"
RT=$(cat "$RUN_DIR/runtime-dir" 2>/dev/null || echo "$RUN_DIR")
mkdir -p "$RT/floor-nginx"
: > "$RUN_DIR/floor.pids"
spawn-fcgi -s "$RT/floor.sock" -M 0666 -F 8 -- build/bench/floor >/dev/null 2>&1
pgrep -f build/bench/floor > "$RUN_DIR/floor.pids" || true
user=""
[ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
cat > "$RUN_DIR/floor-nginx.conf" <<EOC
$user
worker_processes 2;
pid $RUN_DIR/floor-nginx.pid;
error_log $RUN_DIR/floor-nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $RT/floor-nginx;
	server {
		listen 127.0.0.1:$FLOOR_PORT backlog=4096;
		location = /ceiling { default_type application/json; return 200 '{"ok":true}\n'; }
		location = /floor { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$RT/floor.sock; }
	}
}
EOC
nginx -c "$RUN_DIR/floor-nginx.conf" -e "$RUN_DIR/floor-nginx.err"
sleep 0.5

HAVE_PEER=0
E= PK=
if [ -f "$PEER/server.js" ] && command -v node >/dev/null && command -v npm >/dev/null; then
	HAVE_PEER=1
	echo "== express peer ($PEER)"
	PEERPG=/tmp/licd-bench-peer-pg
	rm -rf "$PEERPG"; mkdir -p "$PEERPG"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PEERPG"
	chmod 700 "$PEERPG"
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$PGBIN/initdb" -D "$PEERPG/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
	else
		"$PGBIN/initdb" -D "$PEERPG/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
	fi
	pgctl -D "$PEERPG/data" -l "$PEERPG/postgres.log" -w start \
		-o "-c listen_addresses=127.0.0.1 -c port=55433 -c unix_socket_directories=$PEERPG -c shared_buffers=$SB" >/dev/null
	$PGBIN/createdb -h 127.0.0.1 -p 55433 -U postgres licpeer
	(
		cd "$PEER"
		[ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null 2>&1
		$PGBIN/psql -h 127.0.0.1 -p 55433 -U postgres -d licpeer -v ON_ERROR_STOP=1 -q -f schema.sql
		node scripts/seed.js --count "$N" >/dev/null
		# as licd's cluster: no autovacuum of the seed in the first round
		$PGBIN/psql -q -h 127.0.0.1 -p 55433 -U postgres -d licpeer -c "VACUUM ANALYZE"
		PID_FILE=/tmp/licd-bench-peer.pid ADMIN_KEY=bench node server.js > "$RUN_DIR/express.log" 2>&1 &
		for _ in $(seq 50); do curl -fs http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.2; done
	)
	PK=$RUN_DIR/peer-keys.txt
	fixed "$PEER/keys.txt" "$PK"
	EP=$(cat /tmp/licd-bench-peer.pid)
	E=http://127.0.0.1:18090
	head -1 "$PK" > "$RUN_DIR/peer-hot.txt"
else
	echo "== express peer not found or node/npm missing: skipped"
fi

: > "$RAW"
U=http://127.0.0.1:$PORT
F=http://127.0.0.1:$FLOOR_PORT
K=$RUN_DIR/keys-fixed.txt
KF=$RUN_DIR/floating-fixed.txt
B=http://127.0.0.1:$BASE_PORT
KB=$BASE_DIR/keys-fixed.txt
S=http://127.0.0.1:$SAME_PORT
KS=$SAME_DIR/keys-fixed.txt
C=http://127.0.0.1:$NOCOUNT_PORT
KC=$NOCOUNT_DIR/keys-fixed.txt
nocount() { [ "$COUNTS" -eq 0 ] || one "$@"; }
base() { [ "$BASE_N" -eq 0 ] || one "$@"; }
# wrote RUNTIME SERVER ROUND EP -- one's args: that run, and what its
# cluster wrote meanwhile (last_seen refreshes, those heap-only, full-page
# images), for the report: a refresh is heap-only unless it is its
# installation's first in a new seen_hour span (sql/033), which at a
# million is the case for a share growing with the minutes since the
# seeding. The statistics reach pg_stat within a second of a commit, so
# the counts are approximate; the report prints shares and rates per call,
# above BENCH_BASELINE only.
WRITES=$RUN_DIR/writes.jsonl
: > "$WRITES"
wstat() {
	{ $PGBIN/psql -qAt -h "$1/pg" -U postgres -d licd -c "SELECT n_tup_upd,
		n_tup_hot_upd, (SELECT wal_fpi FROM pg_stat_wal)
		FROM pg_stat_user_tables WHERE relname = 'installations'" 2>/dev/null ||
		true; } | tr '|' ' '
}
wrote() {
	local rt=$1 server=$2 round=$3 ep=$4 a b; shift 4
	a=$(wstat "$rt")
	"$@"
	b=$(wstat "$rt")
	[ -n "$a" ] && [ -n "$b" ] || return 0
	$PY -c "import json, sys
a, b = [list(map(int, x.split())) for x in sys.argv[4:6]]
print(json.dumps({'server': sys.argv[1], 'round': int(sys.argv[2]),
    'name': sys.argv[3], 'updates': b[0] - a[0], 'hot': b[1] - a[1],
    'fpi': b[2] - a[2]}))" "$server" "$round" "$ep" "$a" "$b" >> "$WRITES"
}
peer() { [ $HAVE_PEER -eq 0 ] || one "$@"; }
# Seeding, and each round's writes (new installations, usage), leave the
# clusters with dirty pages, more in some than in others: flush them all
# before the warm-up and before each round, so that a checkpoint of one
# does not land in another's measured runs (the main stack's validate
# would pay for the previous round's validate-new, the stacks it is
# compared with would not).
checkpoint_all() {
	$PGBIN/psql -q -h "$RT/pg" -U postgres -d licd -c "CHECKPOINT" || true
	if [ "$BASE_N" -gt 0 ]; then
		$PGBIN/psql -q -h "$BRT/pg" -U postgres -d licd -c "CHECKPOINT" || true
		$PGBIN/psql -q -h "$SRT/pg" -U postgres -d licd -c "CHECKPOINT" || true
	fi
	if [ "$COUNTS" -eq 1 ]; then
		$PGBIN/psql -q -h "$CRT/pg" -U postgres -d licd -c "CHECKPOINT" || true
	fi
	if [ $HAVE_PEER -eq 1 ]; then
		$PGBIN/psql -q -h 127.0.0.1 -p 55433 -U postgres -d licpeer -c "CHECKPOINT" || true
	fi
}
checkpoint_all
echo "== warm-up"
wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/existing.lua "$U" -- "$K" validate >/dev/null 2>&1
# the floating licenses too: their first round would otherwise compare a
# cold process (a lookup for each installation) with a warm one
wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/existing.lua "$U" -- "$KF" validate >/dev/null 2>&1
if [ "$BASE_N" -gt 0 ]; then
	wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/existing.lua "$B" -- "$KB" validate >/dev/null 2>&1
	wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/existing.lua "$S" -- "$KS" validate >/dev/null 2>&1
fi
if [ "$COUNTS" -eq 1 ]; then
	wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/existing.lua "$C" -- "$KC" validate >/dev/null 2>&1
fi
if [ $HAVE_PEER -eq 1 ]; then	# JIT, inserts
	wrk -t2 -c"$CONN" -d"${DUR}s" -s tests/bench/express.lua "$E" -- "$PK" validate >/dev/null 2>&1
fi
for i in $(seq 1 "$REPEAT"); do
	echo "== round $i of $REPEAT"
	[ "$i" -eq 1 ] || checkpoint_all
	one ceiling nginx -- -s tests/bench/get.lua "$F" -- /ceiling
	one fastcgi-floor floor -- -s tests/bench/get.lua "$F" -- /floor
	for ep in validate heartbeat; do
		wrote "$RT" licd "$i" $ep one $ep licd -- -s tests/bench/existing.lua "$U" -- "$K" $ep
		# the -same stack right after, for the target at a million; each
		# request read from the key file, as at a million: see
		# tests/bench/common.lua
		[ "$BASE_N" -eq 0 ] || BENCH_NOMEMO=1 wrote "$SRT" licd-$BASE_N-same "$i" $ep \
			one $ep licd-$BASE_N-same -- -s tests/bench/existing.lua "$S" -- "$KS" $ep
		# the same call on floating licenses, right after, for the ratio
		[ $ep = heartbeat ] ||
			one validate-floating licd -- -s tests/bench/existing.lua "$U" -- "$KF" validate
		base $ep licd-$BASE_N -- -s tests/bench/existing.lua "$B" -- "$KB" $ep
		# the same call without the console's counting, right after
		[ $ep = heartbeat ] ||
			nocount validate licd-nocount -- -s tests/bench/existing.lua "$C" -- "$KC" validate
		peer $ep express -- -s tests/bench/express.lua "$E" -- "$PK" $ep
	done
	one validate-new licd -- -s tests/bench/validate_new.lua "$U" -- "$K"
	one usage licd -- -s tests/bench/usage.lua "$U" -- "$K"
	peer usage express -- -s tests/bench/express.lua "$E" -- "$PK" usage
	one usage-hot licd -- -s tests/bench/usage.lua "$U" -- "$RUN_DIR/hot.txt"
	peer usage-hot express -- -s tests/bench/express.lua "$E" -- "$RUN_DIR/peer-hot.txt" usage
	one not-found licd -- -s tests/bench/get.lua "$U" -- /nope
done
# Peak resident memory of each server over all rounds.
RSS_LICD=$(rss_of $PIDS)
RSS_FLOOR=$(rss_of $(cat "$RUN_DIR/floor.pids"))
RSS_EXPRESS=0
if [ $HAVE_PEER -eq 1 ]; then RSS_EXPRESS=$(rss_of "$EP"); fi
# exact counts: the counters must equal the log after all that load
$PGBIN/psql -qAt -h "$RT/pg" -U licd -d licd -c "SELECT (SELECT sum(used) FROM usage_counters) = (SELECT sum(quantity) FROM usage_log)" \
	| sed 's/^t$/  usage counters agree with the usage log/; s/^f$/  USAGE COUNTERS DISAGREE WITH THE LOG/'
if [ $HAVE_PEER -eq 1 ]; then kill -TERM "$EP" 2>/dev/null || true; rm -f /tmp/licd-bench-peer.pid; fi
deploy/local.sh stop "$RUN_DIR" >/dev/null 2>&1 || true
if [ "$BASE_N" -gt 0 ]; then
	deploy/local.sh stop "$BASE_DIR" >/dev/null 2>&1 || true
	deploy/local.sh stop "$SAME_DIR" >/dev/null 2>&1 || true
fi

# The median run per workload and server (by req/s), the runs in round
# order, and the peak RSS of the server.
$PY - "$RAW" "$RES" "$RSS_LICD" "$RSS_FLOOR" "$RSS_EXPRESS" <<'EOP'
import json, sys
raw, res, rss = sys.argv[1], sys.argv[2], {"licd": int(sys.argv[3]), "floor": int(sys.argv[4]), "express": int(sys.argv[5])}
groups = {}
for l in open(raw):
    if l.strip():
        r = json.loads(l)
        groups.setdefault((r["name"], r["server"]), []).append(r["wrk"])
with open(res, "w") as out:
    for (name, server), runs in groups.items():
        m = dict(sorted(runs, key=lambda w: w["rps"])[len(runs) // 2])
        m["runs_rps"] = [w["rps"] for w in runs]
        m["runs_requests"] = [w.get("requests", 0) for w in runs]
        m["runs_p99_ms"] = [w.get("p99_ms", 0) for w in runs]
        m["runs_client_us"] = [w.get("client_us", 0) for w in runs]
        out.write(json.dumps({"name": name, "server": server,
                              "rss_kib": rss.get(server, 0), "wrk": m}) + "\n")
EOP

BENCH_SB=$SB BENCH_WAL=$WAL BENCH_BASE_N=$BASE_N $PY tests/bench/report.py "$RES" "$N" "$DUR" "$CONN" > "$RUN_DIR/report.txt"
# The client side: liblicd-client's licd_check from a cached lease, alone
# on a quiet machine (the stacks are stopped). Targets: >= 1,000,000
# calls/s on one core, no allocation per call, < 1 MiB resident.
make -s build/bench/bench_check
build/bench/bench_check > "$RUN_DIR/client.json"
$PY - "$RUN_DIR/client.json" >> "$RUN_DIR/report.txt" <<'EOP'
import json, sys
c = json.load(open(sys.argv[1]))
ok = lambda b: "met" if b else "NOT MET"
print("\nliblicd-client: licd_check from a cached lease (one thread)")
print("  %.0f calls/s (%.0f ns/call; target >= 1,000,000: %s)" % (
    c["calls_per_s"], c["ns_per_call"], ok(c["calls_per_s"] >= 1e6)))
print("  %d allocations in %d calls after the first, by the library, json-c,"
      " OpenSSL and libc (target 0: %s)" % (
    c["allocs_in_calls"], c["calls"], ok(c["allocs_in_calls"] == 0)))
print("  %d KiB resident added by the handle (target < 1024: %s)" % (
    c["resident_added_kib"], ok(c["resident_added_kib"] < 1024)))
EOP
cat "$RUN_DIR/report.txt"
echo "results: $RUN_DIR/results.json, $RUN_DIR/report.txt"
