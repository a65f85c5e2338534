#!/usr/bin/env bash
# The local licd stack: a private PostgreSQL cluster (unix socket only), the
# six FastCGI programs under spawn-fcgi and a private nginx on 127.0.0.1,
# everything under one run directory. Used by `make run` / `make stop` and,
# with a throw-away directory, by `make test`.
#
#   local.sh start RUN_DIR [PORT]   start what is not running (idempotent)
#   local.sh stop RUN_DIR           stop everything started from RUN_DIR
#   local.sh status RUN_DIR
#   local.sh pg-stop|pg-start RUN_DIR   (the tests' database-outage case)
#   local.sh pg-restart RUN_DIR         (an immediate restart: a crash)
#   local.sh rotate RUN_DIR [--force]   rotate the logs (logrotate; cron it)
#   local.sh nginx-stop|nginx-start RUN_DIR PORT   (the client's outage case)
#
# LICD_BIN_DIR picks the programs (the tests use sanitizer builds),
# LICD_LICCTL the admin CLI, LICD_PROCESSES / LICD_THREADS the concurrency
# written into the config (2 x 4 by default, so a killed worker process is
# replaced by the master while the other serves; make bench uses 1 x 8),
# LICD_USAGE_THREADS usage's own thread count, LICD_CONF_EXTRA more lines
# for the config, LICD_PG_SHARED_BUFFERS PostgreSQL's (128MB).
#
# As root, PostgreSQL runs as user postgres and nginx workers as nobody;
# when they cannot reach RUN_DIR (say it is under /root) sockets, data and
# the JWKS live in a /tmp directory named in RUN_DIR/runtime-dir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-}
RUN_DIR=${2:-}
PORT=${3:-8080}
[ -n "$CMD" ] && [ -n "$RUN_DIR" ] ||
	{ echo "usage: local.sh start|stop|status|pg-start|pg-stop RUN_DIR [PORT]" >&2; exit 2; }
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
BIN=${LICD_BIN_DIR:-$ROOT/build/bin}
LICCTL=${LICD_LICCTL:-$BIN/licctl}
PROGRAMS="validate heartbeat usage revoke checkout webhook"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SPAWN=$(command -v spawn-fcgi || echo /usr/bin/spawn-fcgi)
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
export LICD_CONFIG=$RUN_DIR/licd.conf

say() { echo "licd: $*"; }
die() { echo "licd: $*" >&2; exit 1; }

# The directory holding the cluster, sockets and static files.
runtime_dir() {
	if [ -f "$RUN_DIR/runtime-dir" ]; then
		RT=$(cat "$RUN_DIR/runtime-dir")
		[ -d "$RT" ] && return
	fi
	RT=$RUN_DIR
	if [ $IS_ROOT -eq 1 ] &&
	    ! { runuser -u nobody -- test -x "$RUN_DIR" &&
		runuser -u postgres -- test -x "$RUN_DIR"; } 2>/dev/null; then
		RT=$(mktemp -d /tmp/licd-rt.XXXXXX)
		chmod 755 "$RT"
	fi
	# unix socket paths are limited to 107 bytes
	if [ ${#RT} -gt 70 ]; then
		RT=$(mktemp -d /tmp/licd-rt.XXXXXX)
		chmod 755 "$RT"
	fi
	echo "$RT" > "$RUN_DIR/runtime-dir"
}

as_pg() {	# run a PostgreSQL tool as the cluster owner
	if [ $IS_ROOT -eq 1 ]; then
		# from /: postgres may not be able to enter the caller's directory
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Running, not a zombie waiting for init to reap it.
running() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ]; }
# A pid file's process, or a process of a pid file's group, is this
# stack's only when it is still the one started: pids are reused (quickly
# on a busy machine), so a live pid alone proves nothing. The programs
# carry this stack's LICD_SOCKET_DIR; nginx's master, its configuration.
ours() {
	grep -qF -- "$RT/nginx/nginx.conf" "/proc/$1/cmdline" 2>/dev/null ||
		tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qxF "LICD_SOCKET_DIR=$RT/sock"
}
alive() {
	local p
	[ -f "$1" ] && p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && running "$p" && ours "$p"
}

# spawn-fcgi starts each program in a session of its own, so the pid it
# records is also the process group of every process the program forks: the
# group, not the one pid, says whether anything of it still runs.
group_alive() {
	local g p
	[ -f "$1" ] && g=$(cat "$1" 2>/dev/null) && [ -n "$g" ] || return 1
	for p in $(ps -eo pid=,pgid=,stat= | awk -v g="$g" '$2 == g && $3 !~ /^Z/ { print $1 }'); do
		ours "$p" && return 0
	done
	return 1
}

pg_running() { as_pg "$PGBIN/pg_ctl" -D "$RT/pg/data" status >/dev/null 2>&1; }

# PostgreSQL's server log, written by the postgres user: in RUN_DIR/log,
# or in the runtime directory (linked from RUN_DIR/log) when RUN_DIR is
# out of that user's reach.
pg_log() {
	PGLOG=$RUN_DIR/log/postgres.log
	if [ "$RT" != "$RUN_DIR" ]; then
		mkdir -p "$RT/log"
		chmod 755 "$RT/log"
		PGLOG=$RT/log/postgres.log
		ln -sfn "$PGLOG" "$RUN_DIR/log/postgres.log"
	fi
	touch "$PGLOG"
	[ $IS_ROOT -eq 1 ] && chown postgres: "$PGLOG"
	return 0
}

pg_start() {
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL server binaries not found (run deploy/deps.sh)"
	mkdir -p "$RT/pg"
	[ $IS_ROOT -eq 1 ] && chown postgres: "$RT/pg"
	chmod 700 "$RT/pg"
	pg_log
	if [ ! -f "$RT/pg/data/PG_VERSION" ]; then
		say "initialising PostgreSQL cluster in $RT/pg/data"
		as_pg "$PGBIN/initdb" -D "$RT/pg/data" -U postgres --auth=trust \
			-E UTF8 --locale=C.UTF-8 >"$RUN_DIR/log/initdb.log" 2>&1 ||
			{ cat "$RUN_DIR/log/initdb.log" >&2; die "initdb failed"; }
		{
			echo "listen_addresses = ''"
			echo "unix_socket_directories = '$RT/pg'"
			echo "max_connections = 200"
			echo "shared_buffers = ${LICD_PG_SHARED_BUFFERS:-128MB}"
			echo "max_wal_size = ${LICD_PG_MAX_WAL_SIZE:-1GB}"
			# a throw-away test cluster need not survive a power cut
			if [ -n "${LICD_PG_FAST:-}" ]; then
				echo "fsync = off"
				echo "synchronous_commit = off"
				echo "full_page_writes = off"
			fi
		} | as_pg tee -a "$RT/pg/data/postgresql.conf" >/dev/null
	fi
	if ! pg_running; then
		as_pg "$PGBIN/pg_ctl" -D "$RT/pg/data" -l "$PGLOG" \
			-w -t 60 start >/dev/null || die "PostgreSQL did not start (see $RUN_DIR/log/postgres.log)"
	fi
}

pg_stop() {
	pg_running && as_pg "$PGBIN/pg_ctl" -D "$RT/pg/data" -m fast -w stop >/dev/null
	return 0
}

# -m immediate: no shutdown checkpoint, crash recovery at start, every
# connection cut without a goodbye.
pg_restart() {
	as_pg "$PGBIN/pg_ctl" -D "$RT/pg/data" -l "$RUN_DIR/log/postgres.log" \
		-m immediate -w -t 60 restart >/dev/null
}

psql_pg() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RT/pg" -U postgres -d postgres "$@"; }

db_create() {
	if [ -z "$(psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'licd'")" ]; then
		psql_pg -c "CREATE ROLE licd LOGIN"
	fi
	if [ -z "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = 'licd'")" ]; then
		psql_pg -c "CREATE DATABASE licd OWNER licd"
	fi
}

# make test points checkout at its local Stripe double (tests/stripe_double.py).
stripe_double_config() {
	[ -n "${LICD_STRIPE_API_BASE:-}" ] || return 0
	echo "stripe_api_base = $LICD_STRIPE_API_BASE"
	[ -n "${LICD_STRIPE_CA_FILE:-}" ] && echo "stripe_ca_file = $LICD_STRIPE_CA_FILE"
	echo "stripe_timeout_ms = ${LICD_STRIPE_TIMEOUT_MS:-3000}"
}

write_config() {
	[ -f "$LICD_CONFIG" ] && return
	local tok
	tok=$(LICD_CONFIG=/dev/null "$LICCTL" token create local 2>/dev/null)
	sed -n 's/^token: *//p' <<<"$tok" > "$RUN_DIR/admin-token.txt"
	chmod 600 "$RUN_DIR/admin-token.txt"
	umask 077
	cat > "$LICD_CONFIG" <<EOC
# written by deploy/local.sh for the local stack; see deploy/licd.conf.example
database_url = host=$RT/pg dbname=licd user=licd
keys_dir = $RUN_DIR/keys
jwks_file = $RT/www/.well-known/jwks.json
issuer = http://127.0.0.1:$PORT
key_alg = ES256
log_file = $RUN_DIR/log/licd.log
sql_dir = $ROOT/sql
processes = ${LICD_PROCESSES:-2}
threads = ${LICD_THREADS:-4}
$([ -n "${LICD_USAGE_THREADS:-}" ] && echo "usage_threads = $LICD_USAGE_THREADS")
$(sed -n 's/^config: *//p' <<<"$tok")
# the admin token itself is in $RUN_DIR/admin-token.txt
stripe_secret_key = sk_test_local
stripe_webhook_secrets = whsec_local_test
paddle_webhook_secrets = pdl_local_test
checkout_allowed_origins = http://127.0.0.1:$PORT,http://localhost:$PORT
checkout_success_url = http://127.0.0.1:$PORT/thanks?session={CHECKOUT_SESSION_ID}
checkout_cancel_url = http://127.0.0.1:$PORT/pricing
grace_days = 7
$(stripe_double_config)
${LICD_CONF_EXTRA:-}
EOC
	umask 022
	chmod 644 "$LICD_CONFIG"
}

programs_start() {
	mkdir -p "$RT/sock" "$RUN_DIR/pid"
	local p sock own=""
	# 0660 as in production: only the owner and nginx's workers (as root:
	# nobody:nogroup, see nginx_start) may speak FastCGI to the programs.
	[ $IS_ROOT -eq 1 ] && own="-G nogroup"
	for p in $PROGRAMS; do
		[ -x "$BIN/$p" ] || die "$BIN/$p is not built (run make)"
		alive "$RUN_DIR/pid/$p.pid" && continue
		# workers whose master died: stop them before starting a new set
		group_alive "$RUN_DIR/pid/$p.pid" && stop_pid "$RUN_DIR/pid/$p.pid"
		sock=$RT/sock/$p.sock
		rm -f "$sock"
		# GNUTLS_NO_IMPLICIT_INIT: see systemd/licd@.service.
		# LICD_SOCKET_DIR: where /healthz asks the other programs.
		GNUTLS_NO_IMPLICIT_INIT=1 LICD_SOCKET_DIR=$RT/sock \
		"$SPAWN" -s "$sock" -M 0660 $own -P "$RUN_DIR/pid/$p.pid" -- ${LICD_WRAPPER:-} "$BIN/$p" \
			>>"$RUN_DIR/log/spawn.log" 2>&1 || die "could not start $p"
	done
}

nginx_start() {
	mkdir -p "$RT/nginx"/{body,proxy,fastcgi,uwsgi,scgi}
	local user="" conf=$RT/nginx/nginx.conf
	[ $IS_ROOT -eq 1 ] && user="user nobody nogroup;"
	sed -e "s|@FCGI@|include /etc/nginx/fastcgi_params; fastcgi_param LICD_REQUEST_ID \$licd_request_id; fastcgi_keep_conn on; fastcgi_pass licd_|g" \
	    -e "s|@USER@|$user|" -e "s|@RT@|$RT|g" -e "s|@RUN_DIR@|$RUN_DIR|g" \
	    -e "s|@PORT@|$PORT|g" -e "s|@RATE@|${LICD_RATE:-20000}|g" \
	    -e "s|@BURST@|${LICD_BURST:-20000}|g" \
	    "$ROOT/nginx/licd-local.conf.in" > "$conf.new"
	# A start that only brings back a program leaves a running nginx
	# alone: a reload closes every client's idle keep-alive connection.
	if alive "$RT/nginx.pid" && cmp -s "$conf.new" "$conf"; then
		rm -f "$conf.new"
		return
	fi
	mv "$conf.new" "$conf"
	"$NGINX" -t -q -c "$conf" -p "$RT/nginx" -e "$RUN_DIR/log/nginx-error.log" ||
		die "nginx configuration test failed"
	if alive "$RT/nginx.pid"; then
		"$NGINX" -c "$conf" -p "$RT/nginx" -e "$RUN_DIR/log/nginx-error.log" -s reload
	else
		"$NGINX" -c "$conf" -p "$RT/nginx" -e "$RUN_DIR/log/nginx-error.log" ||
			die "nginx did not start (see $RUN_DIR/log/nginx-error.log)"
	fi
}

# RUN_DIR/logrotate.conf from deploy/logrotate-local.conf.in.
logrotate_config() {
	sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@RT@|$RT|g" \
	    "$ROOT/deploy/logrotate-local.conf.in" > "$RUN_DIR/logrotate.conf"
}

rotate() {
	runtime_dir
	logrotate_config
	command -v logrotate >/dev/null || die "logrotate is not installed (run deploy/deps.sh)"
	logrotate -s "$RUN_DIR/logrotate.state" ${FORCE:+-f} "$RUN_DIR/logrotate.conf"
}

wait_healthy() {
	local i
	for i in $(seq 1 300); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	die "licd did not become healthy on 127.0.0.1:$PORT (logs in $RUN_DIR/log)"
}

# TERM the master, which passes it to its workers; after 5 s TERM whatever
# is left of its process group (workers of a master that died), after 10 s
# KILL it.
stop_pid() {
	local f=$1 pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if group_alive "$f"; then
		kill -TERM "$pid" 2>/dev/null || kill -TERM -- "-$pid" 2>/dev/null || true
		for i in $(seq 1 100); do
			group_alive "$f" || break
			[ "$i" -eq 50 ] && kill -TERM -- "-$pid" 2>/dev/null
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

start() {
	mkdir -p "$RUN_DIR/log" "$RUN_DIR/keys"
	chmod 700 "$RUN_DIR/keys"
	runtime_dir
	mkdir -p "$RT/www/.well-known"
	chmod 755 "$RT" "$RT/www" "$RT/www/.well-known"
	# The console's static files, where nginx workers can read them (the
	# checkout may be a 0700 home directory).
	rm -rf "$RT/www/console"
	cp -R "$ROOT/console" "$RT/www/console"
	chmod -R a+rX "$RT/www/console"
	pg_start
	db_create
	write_config
	"$LICCTL" migrate >"$RUN_DIR/log/migrate.log" 2>&1 ||
		{ cat "$RUN_DIR/log/migrate.log" >&2; die "migration failed"; }
	if [ -z "$(ls "$RUN_DIR/keys"/*.key 2>/dev/null)" ]; then
		"$LICCTL" keys generate >"$RUN_DIR/log/keys.log" 2>&1 ||
			{ cat "$RUN_DIR/log/keys.log" >&2; die "key generation failed"; }
	else
		"$LICCTL" keys jwks >/dev/null
	fi
	chmod 644 "$RT/www/.well-known/jwks.json"
	programs_start
	nginx_start
	logrotate_config
	echo "$PORT" > "$RUN_DIR/port"
	wait_healthy
	say "running on http://127.0.0.1:$PORT (run directory $RUN_DIR)"
}

# This stack's nginx masters: the pid file's, and any other whose command
# line names this stack's configuration (one started just before a stop
# may not have written its pid file yet: nginx's launcher returns before
# the daemon writes it).
nginx_masters() {
	local n
	alive "$RT/nginx.pid" && cat "$RT/nginx.pid"
	ps -eo pid=,args= | awk -v c="-c $RT/nginx/nginx.conf " \
	    '$2 == "nginx:" && $3 == "master" && index($0 " ", c) { print $1 }' |
	while read -r n; do running "$n" && echo "$n"; done
}

nginx_stop() {
	# graceful, then fast after 5 s (idle keep-alive connections hold a
	# graceful stop), then KILL after 10 s
	local n i
	for n in $(nginx_masters | sort -u); do
		kill -QUIT "$n" 2>/dev/null || true
		for i in $(seq 1 100); do
			running "$n" || break
			[ "$i" -eq 50 ] && kill -TERM "$n" 2>/dev/null
			sleep 0.1
		done
		running "$n" && { pkill -KILL -P "$n" 2>/dev/null; kill -KILL "$n" 2>/dev/null; }
	done
	return 0
}

stop() {
	runtime_dir
	nginx_stop
	local p
	for p in $PROGRAMS; do stop_pid "$RUN_DIR/pid/$p.pid"; done
	[ -d "$RT/pg/data" ] && pg_stop
	say "stopped"
}

status() {
	runtime_dir
	local p rc=0
	if pg_running; then echo "postgresql  running"; else echo "postgresql  stopped"; rc=1; fi
	for p in $PROGRAMS; do
		if alive "$RUN_DIR/pid/$p.pid"; then printf '%-11s running\n' "$p"
		elif group_alive "$RUN_DIR/pid/$p.pid"; then printf '%-11s workers left without their master (start or stop ends them)\n' "$p"; rc=1
		else printf '%-11s stopped\n' "$p"; rc=1; fi
	done
	if alive "$RT/nginx.pid"; then echo "nginx       running on 127.0.0.1:$(cat "$RUN_DIR/port" 2>/dev/null)"; else echo "nginx       stopped"; rc=1; fi
	return $rc
}

case "$CMD" in
start) start ;;
stop) stop ;;
status) status ;;
pg-stop) runtime_dir; pg_stop ;;
pg-start) runtime_dir; pg_start ;;
pg-restart) runtime_dir; pg_restart ;;
rotate) [ "${3:-}" = --force ] && FORCE=1; rotate ;;
nginx-stop) runtime_dir; nginx_stop ;;
nginx-start) runtime_dir; nginx_start ;;
*) die "unknown command $CMD" ;;
esac
