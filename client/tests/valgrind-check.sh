#!/bin/sh
# licd-check under valgrind memcheck (make valgrind): every command, run
# offline against the unit tests' PyJWT vectors (their keys and issuer
# compiled in, licd at an address nothing listens on), each one a process
# that must exit with its documented code and leave memcheck silent.
#   valgrind-check.sh LICD_CHECK VECTORS_JSON SUPPRESSIONS
set -u
bin=$1 vectors=$2 supp=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/licd-check-vg.XXXXXX")
trap 'rm -rf "$dir"' EXIT
python3 - "$vectors" "$dir" <<'EOP'
import json, sys
v = json.load(open(sys.argv[1]))
open(sys.argv[2] + "/key", "w").write(v["license_key"] + "\n")
open(sys.argv[2] + "/lease", "w").write(v["es256_lease"] + "\n")
EOP
export LICD_STATE_DIR="$dir/state" LICD_INSTALLATION_ID=pyjwt-inst-1
unset LICD_LICENSE_KEY LICD_CHECK_NOW
passed=0 failed=0
run() {	# run EXPECTED_EXIT ARGS...
	want=$1; shift
	valgrind --quiet --error-exitcode=99 --leak-check=full \
		--show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect \
		--suppressions="$supp" --log-file="$dir/vg.log" \
		"$bin" --key-file "$dir/key" --domain app.example.com "$@" \
		>"$dir/out" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ] && [ ! -s "$dir/vg.log" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL licd-check $*: exit $rc, wanted $want"
		cat "$dir/out" "$dir/vg.log"
	fi
}
run 27 status                           # no lease; licd unreachable
run 4 refresh
run 4 heartbeat
run 0 import "$dir/lease"
run 5 import "$dir/lease"               # not newer than the one held
run 0 status
run 0 check sso
run 25 check billing
run 4 usage sso 2                       # queued
run 4 flush
run 0 request-file "$dir/request.json"
run 4 borrow 1
run 4 checkin
run 0 hold -- true
run 127 hold -- /nonexistent/command    # the shell's "not found"
run 4 deactivate
run 2 frobnicate
run 0 --help
echo "licd-check under valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
