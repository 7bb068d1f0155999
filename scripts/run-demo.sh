#!/bin/sh
# `make run`: starts the demo upstream and portcullis on conf/portcullis.yaml
# in the foreground; Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."

CONF=${PORTCULLIS_CONF:-conf/portcullis.yaml}
./build/portcullis -t -c "$CONF"

python3 scripts/demo-upstream.py 8081 &
DEMO=$!
trap 'kill $DEMO 2>/dev/null || true' EXIT INT TERM

cat <<'MSG'

portcullis is starting on http://127.0.0.1:8080 (admin on 127.0.0.1:9901).
Try, from another terminal:

  curl -i http://127.0.0.1:8080/api/orders/42          # strip_prefix: upstream sees /orders/42
  curl -i http://127.0.0.1:8080/api/users/7            # rewrite: upstream sees /users/7
  curl -i -X POST http://127.0.0.1:8080/status         # 405 with Allow
  curl -i http://127.0.0.1:8080/nowhere                # 404 JSON error
  curl -s http://127.0.0.1:9901/admin/routes           # routes in precedence order
  curl -s http://127.0.0.1:9901/metrics                # Prometheus metrics
  kill -HUP <pid printed below>                        # reload the config file
  curl -s http://127.0.0.1:9901/healthz

Ctrl-C stops it (graceful: in-flight requests finish).

MSG
./build/portcullis -c "$CONF" &
GW=$!
echo "portcullis pid: $GW"
trap 'kill -TERM $GW 2>/dev/null; wait $GW 2>/dev/null; kill $DEMO 2>/dev/null || true' EXIT INT TERM
wait $GW
