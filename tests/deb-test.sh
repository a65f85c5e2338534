#!/usr/bin/env bash
# make deb-test: installs the Debian package on this machine as an operator
# would (apt-get install ./licd_….deb), checks what postinst promises, the
# installed units with `systemd-analyze verify` (binaries present) and
# `security`, licctl from PATH, `licctl migrate` as the licd user under peer
# authentication (in a throw-away cluster); installs the client library's
# packages as a vendor's build machine would and builds a program against
# them (pkg-config, shared and static) that verifies a key the installed
# licctl issued; then purges the packages and checks that purge cleaned up.
# Root only; run by .ci/run after make test (it changes the machine, so it
# never runs inside make test, whose runs may overlap). Ends with
# "N passed, N failed".
set -uo pipefail
usage="usage: deb-test.sh licd_V_A.deb liblicd-client1_V_A.deb liblicd-client-dev_V_A.deb"
DEB=$(readlink -f "${1:?$usage}")
CLIENT_DEBS=("$(readlink -f "${2:?$usage}")" "$(readlink -f "${3:?$usage}")")
CLIENT_PKGS=(liblicd-client1 liblicd-client-dev)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
ok() { echo "ok    $1"; passed=$((passed + 1)); }
bad() { echo "FAIL  $1"; failed=$((failed + 1)); }
check() {	# check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

[ "$(id -u)" -eq 0 ] || { echo "deb-test needs root"; failed=1; finish; }
exec 9>/run/lock/licd-deb-test.lock
flock -w 900 9 || { echo "another deb-test holds the lock"; failed=1; finish; }
for p in licd "${CLIENT_PKGS[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		echo "$p is installed on this machine already; not touching it"
		failed=1
		finish
	fi
done
had_user=0
getent passwd licd >/dev/null && had_user=1
T=$(mktemp -d /tmp/licd-deb-test.XXXXXX)
chmod 755 "$T"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)

cleanup() {
	[ -f "$T/pg/data/postmaster.pid" ] &&
		(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -m immediate -w stop >/dev/null 2>&1)
	for p in licd "${CLIENT_PKGS[@]}"; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
			DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge "$p" >/dev/null 2>&1
		fi
	done
	[ $had_user -eq 0 ] && getent passwd licd >/dev/null && deluser --system --quiet licd >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

echo "== apt-get install $DEB"
if DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --no-install-recommends "$DEB" >"$T/install.log" 2>&1; then
	ok "apt-get install ./$(basename "$DEB")"
else
	tail -30 "$T/install.log"
	bad "apt-get install"
	finish
fi
check "postinst prints the database and admin-token steps" \
	grep -q 'runuser -u licd -- licctl migrate' "$T/install.log"
grep -q 'licctl token create' "$T/install.log" && ok "postinst prints how to create an admin token" ||
	bad "postinst prints how to create an admin token"

echo "== files and permissions"
mode() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
check "licctl --help from PATH" bash -c '[ "$(command -v licctl)" = /usr/bin/licctl ] && licctl --help | grep -q "^usage: licctl"'
check "licd is a system user without a login shell" \
	bash -c '[ "$(id -u licd)" -lt 1000 ] && [ "$(getent passwd licd | cut -d: -f7)" = /usr/sbin/nologin ]'
check "/etc/licd/keys is 0750 root:licd" [ "$(mode /etc/licd/keys)" = "750 root:licd" ]
check "/etc/licd/licd.conf is 0640 root:licd" [ "$(mode /etc/licd/licd.conf)" = "640 root:licd" ]
check "/var/log/licd is 0750 licd:licd" [ "$(mode /var/log/licd)" = "750 licd:licd" ]
check "/var/lib/licd/www exists" [ -d /var/lib/licd/www ]
key=$(ls /etc/licd/keys/*.key 2>/dev/null | head -1)
check "postinst generated the first signing key, 0640 root:licd" \
	bash -c "[ -n '$key' ] && [ \"\$(stat -c '%a %U:%G' '$key')\" = '640 root:licd' ] && [ -s /etc/licd/keys/current ]"
check "the licd user reads the private key, others do not" \
	bash -c "runuser -u licd -- test -r '$key' && ! runuser -u nobody -- test -r '$key'"
check "the JWKS is published, 0644, with the key's kid" \
	/usr/bin/python3 -c '
import json, os, sys
p = "/var/lib/licd/www/.well-known/jwks.json"
assert oct(os.stat(p).st_mode & 0o777) == "0o644"
kids = [k["kid"] for k in json.load(open(p))["keys"]]
assert kids == [open("/etc/licd/keys/current").read().strip()], kids'
conff=$(dpkg-query -W -f='${Conffiles}' licd)
check "conffiles: /etc/licd/licd.conf and the nginx site" \
	bash -c "grep -q ' /etc/licd/licd.conf ' <<<'$conff' && grep -q ' /etc/nginx/sites-available/licd.conf ' <<<'$conff'"
check "logrotate accepts /etc/logrotate.d/licd" bash -c 'logrotate -d /etc/logrotate.d/licd >/dev/null 2>&1'

echo "== an upgrade (the same package again) keeps edits and keys"
kid=$(cat /etc/licd/keys/current 2>/dev/null)
echo "# edited by deb-test" >> /etc/licd/licd.conf
if DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "$DEB" >"$T/upgrade.log" 2>&1; then
	ok "dpkg -i over the installed package"
else
	tail -20 "$T/upgrade.log"
	bad "dpkg -i over the installed package"
fi
check "the edited licd.conf is kept, still 0640 root:licd" bash -c \
	'grep -q "^# edited by deb-test" /etc/licd/licd.conf && [ "$(stat -c "%a %U:%G" /etc/licd/licd.conf)" = "640 root:licd" ]'
check "no second signing key, the same one current" bash -c \
	"[ \"\$(ls /etc/licd/keys/*.key | wc -l)\" -eq 1 ] && [ \"\$(cat /etc/licd/keys/current)\" = '$kid' ]"
check "the first-install steps are not printed again" bash -c "! grep -q 'nothing runs yet' '$T/upgrade.log'"

echo "== systemd units"
units=()
for p in validate heartbeat usage revoke checkout webhook; do
	units+=("/lib/systemd/system/licd@$p.socket" "/lib/systemd/system/licd@$p.service")
done
units+=(/lib/systemd/system/licd-lifecycle.service /lib/systemd/system/licd-lifecycle.timer)
out=$(cd "$T" && systemd-analyze verify --man=no "${units[@]}" 2>&1)
rc=$?
if [ $rc -eq 0 ] && ! grep -q licd <<<"$out"; then
	ok "systemd-analyze verify (the installed units and binaries)"
else
	echo "$out"
	bad "systemd-analyze verify"
fi
for p in validate heartbeat usage revoke checkout webhook licd-lifecycle; do
	u=licd@$p.service
	[ $p = licd-lifecycle ] && u=licd-lifecycle.service
	score=$(cd /lib/systemd/system && systemd-analyze security --offline=yes --no-pager "$u" 2>/dev/null |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "      systemd-analyze security $u: ${score:-?}"
	check "$u exposure at most 1.2" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 1.2) }'
done
check "validate has no IP access but localhost, checkout and webhook call out" bash -c '
	grep -q "^IPAddressDeny=any" /lib/systemd/system/licd@.service &&
	grep -q "^IPAddressDeny=$" "/lib/systemd/system/licd@checkout.service.d/network.conf" &&
	grep -q "^IPAddressDeny=$" "/lib/systemd/system/licd@webhook.service.d/network.conf"'

echo "== licctl migrate as the licd user, peer authentication"
# A throw-away cluster with Debian's default local authentication (peer),
# its socket where licd can reach it; the installed config, with only the
# socket directory overridden.
mkdir -p "$T/pg" && chown postgres: "$T/pg" && chmod 755 "$T/pg"
if (cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$T/pg/data" --auth-local=peer \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$T/initdb.log" 2>&1) &&
	(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$T/pg' -c fsync=off" start >/dev/null) &&
	(cd / && runuser -u postgres -- "$PGBIN/createuser" -h "$T/pg" licd) &&
	(cd / && runuser -u postgres -- "$PGBIN/createdb" -h "$T/pg" -O licd licd); then
	ok "database role and database created as in OPERATIONS.md"
else
	cat "$T/initdb.log" "$T/pg/log" 2>/dev/null | tail -20
	bad "a throw-away cluster"
fi
check "runuser -u licd -- licctl migrate" bash -c "cd / && runuser -u licd -- env \
	LICD_DATABASE_URL='host=$T/pg dbname=licd user=licd' licctl migrate >'$T/migrate.log' 2>&1 ||
	{ cat '$T/migrate.log'; false; }"
check "migrate applied the SQL functions installed beside the migrations" \
	grep -qx 'applied functions/10_checks.sql' "$T/migrate.log"
check "root is refused by peer authentication (the licd user it must be)" bash -c "cd / && env \
	LICD_DATABASE_URL='host=$T/pg dbname=licd user=licd' licctl migrate 2>&1 | grep -q 'Peer authentication failed'"
echo "== the client library's packages, on a vendor's build machine"
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
if DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --no-install-recommends "${CLIENT_DEBS[@]}" \
		>"$T/client-install.log" 2>&1; then
	ok "apt-get install ./liblicd-client1_….deb ./liblicd-client-dev_….deb"
else
	tail -30 "$T/client-install.log"
	bad "apt-get install the client packages"
fi
check "liblicd-client1 holds the shared library under its soname only" bash -c "
	[ \"\$(dpkg -L liblicd-client1 | grep '/lib/.*\.so')\" = /usr/lib/$MA/liblicd-client.so.1 ] &&
	objdump -p /usr/lib/$MA/liblicd-client.so.1 | grep -q 'SONAME *liblicd-client.so.1'"
check "liblicd-client1 depends on the libraries it links" bash -c "
	d=\$(dpkg-query -W -f='\${Depends}' liblicd-client1)
	grep -q libcurl4 <<<\"\$d\" && grep -q libjson-c5 <<<\"\$d\" && grep -q libssl3 <<<\"\$d\""
check "pkg-config --libs licd-client names the library" bash -c \
	'pkg-config --exists licd-client && [ "$(pkg-config --modversion licd-client)" = 1.0.0 ] &&
	 pkg-config --libs licd-client | grep -q -- "-llicd-client"'
mkdir -p "$T/client/state" && chown -R licd: "$T/client"
check "a program builds against the shared library with pkg-config" bash -c "
	cc -std=c11 -Wall -Wextra -Werror -o '$T/client/app-shared' '$ROOT/tests/deb-client.c' \
		\$(pkg-config --cflags --libs licd-client) &&
	ldd '$T/client/app-shared' | grep -Eq 'liblicd-client.so.1 => (/usr)?/lib/$MA/liblicd-client.so.1 '"
check "and against the static library" bash -c "
	cc -std=c11 -Wall -Wextra -Werror -o '$T/client/app-static' '$ROOT/tests/deb-client.c' \
		\$(pkg-config --cflags --libs-only-L licd-client) -l:liblicd-client.a \
		\$(pkg-config --libs json-c libcurl libcrypto) -pthread &&
	! ldd '$T/client/app-static' | grep -q liblicd-client"
DBURL="host=$T/pg dbname=licd user=licd"
(cd / && runuser -u licd -- env LICD_DATABASE_URL="$DBURL" sh -c "
	licctl plan set debtest --name 'deb-test' --features sso >/dev/null &&
	licctl customer create --email deb-test@licd.test >/dev/null &&
	licctl license issue --customer deb-test@licd.test --plan debtest --days 30 \
		--count 1 --keys-out '$T/client/key.txt'" >"$T/client/issue.log" 2>&1) ||
	cat "$T/client/issue.log"
issuer=$(sed -n 's/^issuer *= *//p' /etc/licd/licd.conf)
jwks=/var/lib/licd/www/.well-known/jwks.json
sed 's/.\{4\}$/AAAA/' "$T/client/key.txt" >"$T/client/forged.txt"
for app in shared static; do
	check "the $app build verifies the installed licctl's key with the installed JWKS" bash -c "
		[ -s '$T/client/key.txt' ] && [ \"\$(runuser -u licd -- '$T/client/app-$app' '$jwks' \
			'$issuer' '$T/client/key.txt' '$T/client/state')\" = NOT_ACTIVATED ]"
	check "the $app build refuses the key with its signature changed" bash -c "
		[ \"\$(runuser -u licd -- '$T/client/app-$app' '$jwks' '$issuer' \
			'$T/client/forged.txt' '$T/client/state')\" = INVALID_KEY ]"
done
if DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge "${CLIENT_PKGS[@]}" >"$T/client-purge.log" 2>&1; then
	ok "apt-get purge the client packages"
else
	tail -20 "$T/client-purge.log"
	bad "apt-get purge the client packages"
fi
check "purge removed the library, header and pkg-config file" bash -c "
	[ ! -e /usr/lib/$MA/liblicd-client.so.1 ] && [ ! -e /usr/lib/$MA/liblicd-client.a ] &&
	[ ! -e /usr/include/licd.h ] && ! pkg-config --exists licd-client"
(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -m fast -w stop >/dev/null 2>&1)

echo "== apt-get purge licd"
if DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge licd >"$T/purge.log" 2>&1; then
	ok "apt-get purge licd"
else
	tail -20 "$T/purge.log"
	bad "apt-get purge licd"
fi
check "purge removed the programs, config, keys, JWKS and logs" bash -c '
	! command -v licctl >/dev/null && [ ! -e /usr/lib/licd ] && [ ! -e /etc/licd ] &&
	[ ! -e /var/lib/licd ] && [ ! -e /var/log/licd ] && [ ! -e /lib/systemd/system/licd@.service ] &&
	[ ! -e /etc/nginx/sites-available/licd.conf ] && [ ! -e /etc/logrotate.d/licd ]'
finish
