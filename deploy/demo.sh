#!/usr/bin/env bash
# Seeds the demo license of `make run` (once) and prints how to call licd.
set -euo pipefail
RUN_DIR=${1:?usage: demo.sh RUN_DIR PORT}
PORT=${2:-8080}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LICD_BIN_DIR:-$ROOT/build/bin}
export LICD_CONFIG=$RUN_DIR/licd.conf
OUT=$RUN_DIR/demo-license.txt

if [ ! -s "$OUT" ]; then
	"$BIN/licctl" plan set demo-pro --name "Demo Pro" \
		--features sso,workflows,reports \
		--limits installations=3,workflows_per_month=10000 >/dev/null
	"$BIN/licctl" customer create --email demo@example.com --name "Demo Customer" >/dev/null
	"$BIN/licctl" license issue --customer demo@example.com --plan demo-pro \
		--domains 'example.com,*.example.com' --days 365 --json > "$RUN_DIR/demo-license.json"
	/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' \
		"$RUN_DIR/demo-license.json" > "$OUT"
fi
/usr/bin/python3 - "$RUN_DIR/demo-license.json" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
print("demo license: plan %s, customer %s" % (l["plan"], l["email"]))
print("  license id:          %s" % l["id"])
print("  features:            %s" % ", ".join(l["features"]))
print("  limits:              %s" % ", ".join("%s=%s" % kv for kv in sorted(l["limits"].items())))
print("  domain restrictions: %s" % ", ".join(l["domain_restrictions"]))
print("  expires:             %s" % l["expires_at"])
PY
U=http://127.0.0.1:$PORT
J="-H 'Content-Type: application/json'"
cat <<EOM
  license key:         in $OUT (the JWT installations send)
  admin token:         in $RUN_DIR/admin-token.txt

licd is running on $U (logs in $RUN_DIR/log). Walk-through:

  export LICD_CONFIG=$RUN_DIR/licd.conf
  KEY=\$(cat $OUT)
  # an installation validates (takes a seat, gets a signed lease)
  curl -s $U/api/validate $J \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\",\"domain\":\"app.example.com\",\"feature\":\"sso\",\"nonce\":\"n-1\"}"
  # reports in periodically
  curl -s $U/api/heartbeat $J \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\",\"version\":\"1.2.0\"}"
  # counts 5 units of a metered feature
  curl -s $U/api/usage $J \\
    -d "{\"license_key\":\"\$KEY\",\"feature\":\"workflows\",\"quantity\":5,\"idempotency_key\":\"job-1\"}"
  # frees its seat
  curl -s $U/api/deactivate $J \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\"}"
  # the public keys any JWT library verifies keys and leases with
  curl -s $U/.well-known/jwks.json
  $BIN/licctl license list
  # admin: revoke the key at once, then read the audit log
  curl -s $U/api/revoke $J -H "Authorization: Bearer \$(cat $RUN_DIR/admin-token.txt)" \\
    -d "{\"license_key\":\"\$KEY\",\"reason\":\"demo\"}"
  $BIN/licctl audit
  # the lifecycle job (cron / systemd timer in production), counting only
  $BIN/licd-lifecycle --dry-run

Stop everything with: make stop
EOM
