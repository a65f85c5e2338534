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
KEY=$(cat "$OUT")
/usr/bin/python3 - "$RUN_DIR/demo-license.json" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
print("demo license %s (plan %s, customer %s)" % (l["id"], l["plan"], l["email"]))
print("  features:            %s" % ", ".join(l["features"]))
print("  limits:              %s" % ", ".join("%s=%s" % kv for kv in sorted(l["limits"].items())))
print("  domain restrictions: %s" % ", ".join(l["domain_restrictions"]))
print("  expires:             %s" % l["expires_at"])
PY
cat <<EOM
  key file:            $OUT

licd is running on http://127.0.0.1:$PORT (logs in $RUN_DIR/log). Try:

  KEY=\$(cat $OUT)
  curl -s http://127.0.0.1:$PORT/api/validate -H 'Content-Type: application/json' \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\",\"domain\":\"app.example.com\",\"feature\":\"sso\"}"
  curl -s http://127.0.0.1:$PORT/api/heartbeat -H 'Content-Type: application/json' \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\",\"version\":\"1.2.0\"}"
  curl -s http://127.0.0.1:$PORT/api/deactivate -H 'Content-Type: application/json' \\
    -d "{\"license_key\":\"\$KEY\",\"installation_id\":\"laptop-1\"}"
  curl -s http://127.0.0.1:$PORT/.well-known/jwks.json
  LICD_CONFIG=$RUN_DIR/licd.conf build/bin/licctl license list

Stop everything with: make stop
EOM
