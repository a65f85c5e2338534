#!/usr/bin/env bash
# make scale-test: licd on more than one machine, in network namespaces this
# script creates and removes itself (root only).
#
#   lb    198.18.0.2   nginx, upstreams of both app hosts over TCP; the load
#   app1  198.18.0.11  the six programs (unix socket and TCP), licd-lifecycle
#   app2  198.18.0.12  the same
#   db1   198.18.0.21  PostgreSQL primary, synchronous_standby_names = db2
#   db2   198.18.0.22  streaming standby made with pg_basebackup
#
# The hosts' eth0 are veth pairs to a bridge in a sixth namespace, so the
# machine's own network namespace is never touched; only 198.18.0.0/24 of
# the benchmarking range 198.18.0.0/15 is used. Names carry a random prefix,
# everything lives in its own /tmp directory, and an EXIT trap kills what
# runs in the namespaces, deletes them and the directory, also on failure.
# tests/scale/driver.py runs the load and the scenarios from lb and prints
# "N passed, N failed" last.
#
#   scale.sh                 the whole test
#   scale.sh ctl DIR VERB …  used by the driver: app-kill|app-start HOST,
#                            db-stop HOST, db-promote HOST, lifecycle HOST
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LICD_BIN_DIR:-$ROOT/build/bin}
PROGRAMS="validate heartbeat usage revoke checkout webhook"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SPAWN=$(command -v spawn-fcgi || echo /usr/bin/spawn-fcgi)
HOSTS="lb app1 app2 db1 db2"
declare -A ADDR=([lb]=198.18.0.2 [app1]=198.18.0.11 [app2]=198.18.0.12
	[db1]=198.18.0.21 [db2]=198.18.0.22)
declare -A PORT=([validate]=9001 [heartbeat]=9002 [usage]=9003
	[revoke]=9004 [checkout]=9005 [webhook]=9006)
# idle connections lb's nginx keeps to each app host, as nginx/licd.conf
declare -A KEEP=([validate]=32 [heartbeat]=32 [usage]=32 [revoke]=8
	[checkout]=8 [webhook]=8)

say() { echo "scale: $*"; }
die() { echo "scale: $*" >&2; exit 1; }
ns() { echo "$P-$1"; }			# namespace of a host
in_ns() { local h=$1; shift; ip netns exec "$(ns "$h")" "$@"; }
as_pg() { local h=$1; shift; in_ns "$h" runuser -u postgres -- "$@"; }

# --- hosts -----------------------------------------------------------------

program_start() {	# HOST PROGRAM
	local h=$1 p=$2 d=$T/$1
	rm -f "$d/sock/$p.sock"
	in_ns "$h" env LICD_CONFIG="$d/licd.conf" GNUTLS_NO_IMPLICIT_INIT=1 \
		"$SPAWN" -s "$d/sock/$p.sock" -M 0600 -P "$d/pid/$p.pid" -- \
		"$BIN/$p" >>"$d/spawn.log" 2>&1
}

app_start() {
	local h=$1 p
	mkdir -p "$T/$h/sock" "$T/$h/pid"
	for p in $PROGRAMS; do program_start "$h" "$p" || return 1; done
}

# SIGKILL to every process in the host's namespace: the prefork masters and
# their workers alike, as when the machine dies.
app_kill() {
	local pids
	pids=$(ip netns pids "$(ns "$1")")
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	return 0
}

psql_db1() { as_pg db1 timeout 60 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T/db1" -U postgres -d postgres "$@"; }

pg_conf() {	# HOST: the settings both clusters share
	cat <<EOC
listen_addresses = '${ADDR[$1]}'
port = 5432
unix_socket_directories = '$T/$1'
max_connections = 100
shared_buffers = 32MB
wal_level = replica
hot_standby = on
EOC
}

db_setup() {
	local d
	for h in db1 db2; do
		d=$T/$h
		mkdir -p "$d" && chown postgres: "$d" && chmod 700 "$d"
	done
	as_pg db1 "$PGBIN/initdb" -D "$T/db1/data" -U postgres --auth=trust \
		-E UTF8 --locale=C.UTF-8 >"$T/db1/initdb.log" 2>&1 ||
		{ cat "$T/db1/initdb.log"; return 1; }
	pg_conf db1 >>"$T/db1/data/postgresql.conf"
	cat >>"$T/db1/data/pg_hba.conf" <<EOC
host all         all 198.18.0.0/24 trust
host replication all 198.18.0.0/24 trust
EOC
	as_pg db1 "$PGBIN/pg_ctl" -D "$T/db1/data" -l "$T/db1/postgres.log" \
		-w -t 60 start >/dev/null || { cat "$T/db1/postgres.log"; return 1; }
	psql_db1 -c "CREATE ROLE licd LOGIN" -c "CREATE DATABASE licd OWNER licd" ||
		return 1
	as_pg db2 timeout 120 "$PGBIN/pg_basebackup" -h "${ADDR[db1]}" -U postgres \
		-D "$T/db2/data" -X stream -R --checkpoint=fast ||
		return 1
	# The copy carries db1's settings; the standby names itself to the
	# primary and, once promoted, waits for no standby of its own.
	{
		pg_conf db2
		echo "synchronous_standby_names = ''"
		echo "primary_conninfo = 'host=${ADDR[db1]} port=5432 user=postgres application_name=db2'"
	} >>"$T/db2/data/postgresql.auto.conf"
	as_pg db2 "$PGBIN/pg_ctl" -D "$T/db2/data" -l "$T/db2/postgres.log" \
		-w -t 60 start >/dev/null || { cat "$T/db2/postgres.log"; return 1; }
	# Once db2 streams, a commit on db1 is acknowledged only when db2 has
	# it on disk too (synchronous_commit = on, the default).
	psql_db1 -c "ALTER SYSTEM SET synchronous_standby_names = 'db2'" \
		-c "SELECT pg_reload_conf()" >/dev/null || return 1
	local i
	for i in $(seq 1 300); do
		[ "$(psql_db1 -tA -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'db2' AND state = 'streaming'")" = sync ] &&
			return 0
		sleep 0.1
	done
	echo "db2 never became db1's synchronous standby"
	return 1
}

write_config() {	# HOST
	local h=$1 p
	mkdir -p "$T/$h"
	umask 077
	{
		echo "database_url = host=${ADDR[db1]},${ADDR[db2]} port=5432,5432 dbname=licd user=licd target_session_attrs=read-write"
		echo "keys_dir = $T/$h/keys"
		echo "jwks_file = $T/$h/jwks.json"
		echo "issuer = http://${ADDR[lb]}"
		echo "key_alg = ES256"
		echo "log_file = $T/$h/licd.log"
		echo "log_flush_ms = 0"
		echo "sql_dir = $ROOT/sql"
		echo "processes = 1"
		echo "threads = 2"
		echo "usage_threads = 4"
		for p in $PROGRAMS; do echo "${p}_listen = ${ADDR[$h]}:${PORT[$p]}"; done
		sed -n 's/^config: *//p' "$T/token.txt"
		echo "stripe_secret_key = sk_test_scale"
		echo "stripe_webhook_secrets = whsec_scale"
		echo "paddle_webhook_secrets = pdl_scale"
		echo "checkout_allowed_origins = http://${ADDR[lb]}"
		echo "checkout_success_url = http://${ADDR[lb]}/thanks"
		echo "checkout_cancel_url = http://${ADDR[lb]}/pricing"
		echo "notify_webhook_url = http://${ADDR[lb]}:9100/hook"
		echo "notify_webhook_secret = scale"
	} >"$T/$h/licd.conf"
	umask 022
}

lb_start() {
	local d=$T/lb p up=""
	mkdir -p "$d"/{body,proxy,fastcgi,uwsgi,scgi}
	for p in $PROGRAMS; do
		up+="upstream licd_$p { server ${ADDR[app1]}:${PORT[$p]} max_fails=1 fail_timeout=2s; server ${ADDR[app2]}:${PORT[$p]} max_fails=1 fail_timeout=2s; keepalive ${KEEP[$p]}; keepalive_requests 100; }"$'\n'
	done
	sed -e "s|@T@|$d|g" -e "s|@ADDR@|${ADDR[lb]}|g" \
	    "$ROOT/tests/scale/lb.conf.in" >"$d/nginx.conf"
	printf '%s' "$up" >"$d/upstreams.conf"
	chmod -R a+rX "$d"
	in_ns lb "$NGINX" -q -t -c "$d/nginx.conf" -p "$d" -e "$d/error.log" &&
	in_ns lb "$NGINX" -c "$d/nginx.conf" -p "$d" -e "$d/error.log"
}

# --- namespaces --------------------------------------------------------------

net_up() {
	local br h
	br=$(ns net)
	ip netns add "$br" || return 1
	ip -n "$br" link add br0 type bridge || return 1
	ip -n "$br" link set br0 up
	for h in $HOSTS; do
		ip netns add "$(ns "$h")" || return 1
		ip -n "$br" link add "v-$h" type veth peer name eth0 \
			netns "$(ns "$h")" || return 1
		ip -n "$br" link set "v-$h" master br0 up
		ip -n "$(ns "$h")" addr add "${ADDR[$h]}/24" dev eth0
		ip -n "$(ns "$h")" link set eth0 up
		ip -n "$(ns "$h")" link set lo up
	done
}

cleanup() {
	local h
	[ -n "${P:-}" ] || return 0
	for h in db1 db2; do
		[ -f "$T/$h/data/postmaster.pid" ] &&
			as_pg "$h" "$PGBIN/pg_ctl" -D "$T/$h/data" -m immediate -w stop >/dev/null 2>&1
	done
	for h in $HOSTS net; do
		ip netns pids "$(ns "$h")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
	done
	for h in $HOSTS net; do
		# a namespace whose processes are still exiting
		for _ in $(seq 1 50); do
			[ -z "$(ip netns pids "$(ns "$h")" 2>/dev/null)" ] && break
			sleep 0.1
		done
		ip netns del "$(ns "$h")" 2>/dev/null
	done
	if [ -n "${KEEP_SCALE_DIR:-}" ]; then
		echo "scale: kept $T"
	else
		rm -rf "$T"
	fi
}

# --- the driver's verbs --------------------------------------------------------

if [ "${1:-}" = ctl ]; then
	T=$2
	P=$(cat "$T/prefix")
	case "${3:-}" in
	app-kill) app_kill "$4" ;;
	app-start) app_start "$4" ;;
	db-stop) as_pg "$4" "$PGBIN/pg_ctl" -D "$T/$4/data" -m immediate -w stop >/dev/null ;;
	db-promote) as_pg "$4" "$PGBIN/pg_ctl" -D "$T/$4/data" -w -t 60 promote >/dev/null ;;
	lifecycle) in_ns "$4" env LICD_CONFIG="$T/$4/licd.conf" "$BIN/licd-lifecycle" ;;
	*) die "unknown verb ${3:-}" ;;
	esac
	exit
fi

# --- the test ------------------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	say "SKIPPED: network namespaces need root"
	echo "0 passed, 0 failed"
	exit 0
fi
for b in $PROGRAMS licctl licd-lifecycle; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is not built (run make)"
done
command -v ip >/dev/null || die "ip (iproute2) is missing: run deploy/deps.sh"

# What an earlier run killed outright (SIGKILL: no trap) left behind: its
# directory names the namespaces and the run's pid. Runs still alive,
# such as a parallel make test, are left alone.
for old in /tmp/licd-scale.*/owner; do
	[ -f "$old" ] || continue
	kill -0 "$(cat "$old")" 2>/dev/null && continue
	( T=$(dirname "$old"); P=$(cat "$T/prefix" 2>/dev/null) &&
		say "removing the leftovers of an earlier run ($P)" && cleanup )
done

T=$(mktemp -d /tmp/licd-scale.XXXXXX)
chmod 755 "$T"
P=lsc$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
echo "$P" >"$T/prefix"
echo $$ >"$T/owner"
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail_setup() { echo "scale: set-up failed: $*"; echo "0 passed, 1 failed"; exit 1; }

say "namespaces $P-{$(echo $HOSTS | tr ' ' ,)} in $T"
net_up || fail_setup "network namespaces"
say "db1 primary, db2 synchronous standby"
db_setup >"$T/db-setup.log" 2>&1 || { cat "$T/db-setup.log"; fail_setup "PostgreSQL"; }
LICD_CONFIG=/dev/null "$BIN/licctl" token create scale >"$T/token.txt" 2>/dev/null ||
	fail_setup "admin token"
write_config app1
write_config app2
export LICD_CONFIG=$T/app1/licd.conf
in_ns app1 env LICD_CONFIG="$LICD_CONFIG" "$BIN/licctl" migrate >"$T/migrate.log" 2>&1 ||
	{ cat "$T/migrate.log"; fail_setup "migrations"; }
mkdir -p "$T/app1/keys" && chmod 700 "$T/app1/keys"
in_ns app1 env LICD_CONFIG="$LICD_CONFIG" "$BIN/licctl" keys generate >"$T/keys.log" 2>&1 ||
	{ cat "$T/keys.log"; fail_setup "keys"; }
# every app host holds the same keys
cp -a "$T/app1/keys" "$T/app2/keys"
cp "$T/app1/jwks.json" "$T/app2/jwks.json"
say "app1 and app2: $PROGRAMS"
app_start app1 && app_start app2 || { cat "$T"/app*/spawn.log "$T"/app*/licd.log 2>/dev/null | tail -30; fail_setup "programs"; }
lb_start || { cat "$T/lb/error.log" 2>/dev/null; fail_setup "nginx"; }

in_ns lb env SCALE_DIR="$T" SCALE_CTL="$ROOT/tests/scale/scale.sh ctl $T" \
	LICD_BIN_DIR="$BIN" LICD_CONFIG="$LICD_CONFIG" \
	LB_ADDR="${ADDR[lb]}" DB1="${ADDR[db1]}" DB2="${ADDR[db2]}" \
	/usr/bin/python3 "$ROOT/tests/scale/driver.py"
rc=$?
if [ $rc -ne 0 ]; then
	say "logs:"
	tail -n 20 "$T"/app*/licd.log "$T"/lb/error.log "$T"/db*/postgres.log 2>/dev/null
fi
exit $rc
