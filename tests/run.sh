#!/usr/bin/env bash
# make test: build, C unit tests under ASan+UBSan, then a throw-away stack
# (PostgreSQL, nginx, sanitizer-built FastCGI programs) in a temp dir, the
# integration suite over HTTP, and a check that the sanitizers stayed
# silent. Stops everything it started. Ends with "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3
passed=0
failed=0

count() {	# count PASSED FAILED
	passed=$((passed + $1))
	failed=$((failed + $2))
}

echo "== build"
make -s -j2 all asan || { echo "0 passed, 1 failed"; exit 1; }

echo "== C unit tests (ASan+UBSan)"
make -s unit > build/unit.out 2>&1
unit_rc=$?
cat build/unit.out
while read -r p f; do count "$p" "$f"; done < <(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' build/unit.out)
[ $unit_rc -eq 0 ] || count 0 1

echo "== fuzzing each parser for ${FUZZ_SECONDS:-20}s (libFuzzer)"
if make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}" > build/fuzz.out 2>&1; then
	grep -E '^==|Done' build/fuzz.out
	count 1 0
else
	tail -40 build/fuzz.out
	count 0 1
fi

RUN_DIR=$(mktemp -d /tmp/licd-test.XXXXXX)
chmod 755 "$RUN_DIR"
PORT=${TEST_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
cleanup() {
	deploy/local.sh stop "$RUN_DIR" >/dev/null 2>&1 || true
	[ -f "$RUN_DIR/stripe/pid" ] && kill "$(cat "$RUN_DIR/stripe/pid")" 2>/dev/null
	if [ -z "${KEEP_RUN_DIR:-}" ]; then rm -rf "$RUN_DIR"; else echo "kept $RUN_DIR"; fi
}
trap cleanup EXIT

# The Stripe test double: HTTPS on loopback with a certificate made here,
# trusted by licd through stripe_ca_file (never by turning verification off).
stripe_double() {
	local d="$RUN_DIR/stripe" port
	mkdir -p "$d" && chmod 755 "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" \
		-keyout "$d/key.pem" -out "$d/cert.pem" -days 2 2>/dev/null || return 1
	chmod 644 "$d/cert.pem"
	port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	$PY tests/stripe_double.py "$port" "$d/cert.pem" "$d/key.pem" "$d/pid" \
		> "$RUN_DIR/log/stripe-double.log" 2>&1 &
	# polls until it answers; not answering in 5 s fails the run
	local up=0
	for _ in $(seq 50); do
		curl -sf --cacert "$d/cert.pem" "https://127.0.0.1:$port/__requests" \
			>/dev/null && { up=1; break; }
		sleep 0.1
	done
	[ $up -eq 1 ] || return 1
	export LICD_STRIPE_API_BASE="https://127.0.0.1:$port"
	export LICD_STRIPE_CA_FILE="$d/cert.pem"
	export LICD_STRIPE_TIMEOUT_MS=3000
}

echo "== starting a throw-away stack in $RUN_DIR on port $PORT"
mkdir -p "$RUN_DIR/log"
stripe_double || { echo "cannot start the Stripe test double"; echo "0 passed, 1 failed"; exit 1; }
# Sanitizer reports go to files: spawn-fcgi sends stderr to /dev/null.
export LICD_PG_FAST=1
export ASAN_OPTIONS="log_path=$RUN_DIR/log/asan:detect_leaks=1"
export UBSAN_OPTIONS="log_path=$RUN_DIR/log/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
# VALGRIND=1 (make valgrind): the -O2 programs under memcheck instead of
# the sanitizer build; every process writes its own report.
PROG_DIR="$ROOT/build/asan/bin"
if [ -n "${VALGRIND:-}" ]; then
	PROG_DIR="$ROOT/build/bin"
	export LICD_WRAPPER="$(command -v valgrind) --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --track-origins=yes --suppressions=$ROOT/tests/valgrind.supp --log-file=$RUN_DIR/log/valgrind.%p"
fi
# heartbeat listens on TCP as well (<program>_listen), so the integration
# suite runs the two-listener accept loop under the sanitizers.
HB_TCP_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LICD_CONF_EXTRA="${LICD_CONF_EXTRA:+$LICD_CONF_EXTRA
}heartbeat_listen = 127.0.0.1:$HB_TCP_PORT"
if ! LICD_BIN_DIR="$PROG_DIR" LICD_LICCTL="$ROOT/build/bin/licctl" \
	deploy/local.sh start "$RUN_DIR" "$PORT"; then
	count 0 1
	echo "$passed passed, $failed failed"
	exit 1
fi

echo "== integration tests"
LICD_URL="http://127.0.0.1:$PORT" LICD_CONFIG="$RUN_DIR/licd.conf" \
LICD_BIN="$ROOT/build/bin" LICD_RUN_DIR="$RUN_DIR" \
LICD_HEARTBEAT_TCP="127.0.0.1:$HB_TCP_PORT" \
LICD_PG_STOP="$ROOT/deploy/local.sh pg-stop $RUN_DIR" \
LICD_PG_START="$ROOT/deploy/local.sh pg-start $RUN_DIR" \
LICD_PG_RESTART="$ROOT/deploy/local.sh pg-restart $RUN_DIR" \
LICD_STACK_START="env LICD_BIN_DIR=$PROG_DIR LICD_LICCTL=$ROOT/build/bin/licctl $ROOT/deploy/local.sh start $RUN_DIR $PORT" \
LICD_STACK_STOP="$ROOT/deploy/local.sh stop $RUN_DIR" \
LICD_STACK_STATUS="$ROOT/deploy/local.sh status $RUN_DIR" \
	$PY -m pytest tests/integration -q -p no:cacheprovider -rfE \
	--basetemp="$RUN_DIR/pytest" \
	${PYTEST_ARGS:-} ${PYTEST_K:+-k "$PYTEST_K"} 2>&1 | tee "$RUN_DIR/pytest.out"
py_rc=${PIPESTATUS[0]}
last=$(grep -E '(passed|failed|error)' "$RUN_DIR/pytest.out" | tail -1)
p=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+')
f=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+')
e=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+')
count "${p:-0}" "$(( ${f:-0} + ${e:-0} ))"
[ $py_rc -eq 0 ] || [ -n "$f$e" ] || count 0 1

echo "== stopping the stack; sanitizer reports"
deploy/local.sh stop "$RUN_DIR" >/dev/null 2>&1 || true
reports=$(ls "$RUN_DIR"/log/asan* "$RUN_DIR"/log/ubsan* 2>/dev/null || true)
if [ -n "${VALGRIND:-}" ]; then
	# memcheck logs are empty (--quiet) unless it found something.
	reports=$(find "$RUN_DIR/log" -name 'valgrind.*' -size +0 2>/dev/null)
	echo "valgrind: $(ls "$RUN_DIR"/log/valgrind.* 2>/dev/null | wc -l) processes checked"
fi
if [ -n "$reports" ]; then
	for r in $reports; do echo "--- $r"; head -60 "$r"; done
	count 0 1
else
	echo "no $([ -n "${VALGRIND:-}" ] && echo valgrind || echo ASan/UBSan/LSan) reports from the programs"
	count 1 0
fi
# Two app hosts and a standby in network namespaces of its own (as root;
# skipped otherwise): its "N passed, N failed" joins the totals.
echo "== scale-out: failover under load in network namespaces"
tests/scale/scale.sh 2>&1 | tee build/scale.out
scale_rc=${PIPESTATUS[0]}
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' build/scale.out | tail -1)
if [ -n "$last" ]; then
	count "$(cut -d' ' -f1 <<<"$last")" "$(cut -d' ' -f3 <<<"$last")"
fi
# a failing exit without a failure counted (set-up, a crash) still fails
if [ $scale_rc -ne 0 ] && { [ -z "$last" ] || [ "$(cut -d' ' -f3 <<<"$last")" = 0 ]; }; then
	count 0 1
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
