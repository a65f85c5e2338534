#!/usr/bin/env bash
# Installs the Debian 12 packages licd builds, runs and tests with. As root
# it installs what is missing (without starting the distribution's own
# PostgreSQL or nginx services: licd starts its own under a run directory);
# otherwise it prints the exact apt-get line and fails.
set -euo pipefail

PKGS=(
	build-essential pkg-config make
	libfcgi-dev spawn-fcgi libpq-dev libssl-dev libjwt-dev libjson-c-dev
	libcurl4-openssl-dev
	postgresql postgresql-client nginx-light
	python3 python3-pytest python3-requests python3-psycopg2 python3-jwt
	python3-cryptography
	nodejs node-jose
	clang libclang-rt-14-dev
	curl ca-certificates openssl wrk valgrind logrotate
	iproute2
	chromium chromium-driver python3-selenium fonts-dejavu-core
	debhelper dpkg-dev lintian adduser logrotate systemd
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "licd needs these Debian packages; run as root:" >&2
	echo "  sudo apt-get update && sudo $line" >&2
	exit 1
fi

echo "installing: ${missing[*]}"
# policy-rc.d 101 keeps dpkg from starting the packaged services.
rcd=/usr/sbin/policy-rc.d
created=
if [ ! -e "$rcd" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$rcd"
	chmod 755 "$rcd"
	created=1
fi
trap '[ -n "$created" ] && rm -f "$rcd"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
