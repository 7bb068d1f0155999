#!/usr/bin/env bash
# bench/webhooks.sh: proxied traffic while webhook deliveries fail (not a
# timed test). Two portcullis (build/portcullis, WORKERS workers, default 1)
# on the same origin nginx, identical but for the `webhooks` block:
#   plain  no webhooks
#   hooks  two receivers: a closed port (connection refused) and a port that
#          accepts and never answers (timeout 2s), max_attempts 8, every event
# Both also have a flapping upstream: route /flap to a closed port with
# circuit_breaker {failures: 1, open_for: 50ms}; a background loop requests
# /flap on both every 20 ms, so each circuit reopens (a circuit_open event,
# delivered to both receivers in `hooks`, each retried with backoff) about
# every 50 ms. wrk --latency measures /small on each, interleaved over RUNS
# rounds (order rotating), medians of req/s and p99 reported.
# Environment: D (wrk duration, default 5s), RUNS (3), WARMUP (2s),
# THREADS (2), CONNS (64), WORKERS (1), PORTCULLIS, NGINX.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-5s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-1}

need_tools wrk curl "$NGINX" openssl
need_portcullis
bench_init
snapshot_portcullis
make_cert "$TMP"

read -r UP UPTLS P1 A1 P2 A2 DEAD SILENT <<<"$(free_ports 8)"
mkdir -p "$TMP/origin" "$TMP/plain" "$TMP/hooks"
write_upstream_conf "$TMP/origin" "$UP" "$UPTLS"
start_nginx origin "$TMP/origin"
wait_http origin "$LAST_PID" "http://127.0.0.1:$UP/small" 100 "$TMP/origin/stderr.log"
start_bg "$TMP/silent.log" "$PYTHON" -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $SILENT)); s.listen(4096)
held = []
while True:
    c, _ = s.accept(); held.append(c)
"

conf() { # PORT APORT WEBHOOKS
    cat <<EOF
workers: $WORKERS
listen: [{address: "127.0.0.1:$1"}]
admin: {listen: "127.0.0.1:$2"}
log: {access: "off", level: warn}
upstreams:
  bare:
    targets: [{url: "http://127.0.0.1:$UP"}]
  flap:
    targets: [{url: "http://127.0.0.1:$DEAD"}]
    retries: 0
    circuit_breaker: {failures: 1, open_for: 50ms}
routes:
  - {name: flap, match: {path: /flap}, upstream: flap}
  - {name: bare, match: {path: /}, upstream: bare}
$3
EOF
}
conf "$P1" "$A1" "" >"$TMP/plain/portcullis.yaml"
conf "$P2" "$A2" "webhooks:
  - {url: \"http://127.0.0.1:$DEAD/h\", secret: s, timeout: 2s, max_attempts: 8}
  - {url: \"http://127.0.0.1:$SILENT/h\", secret: s, timeout: 2s, max_attempts: 8}" \
    >"$TMP/hooks/portcullis.yaml"
start_portcullis "$TMP/plain"
PLAIN_PID=$LAST_PID
start_portcullis "$TMP/hooks"
HOOKS_PID=$LAST_PID
wait_http plain "$PLAIN_PID" "http://127.0.0.1:$P1/small" 100 "$TMP/plain/stderr.log"
wait_http hooks "$HOOKS_PID" "http://127.0.0.1:$P2/small" 100 "$TMP/hooks/stderr.log"
start_bg "$TMP/flap.log" bash -c "while :; do
    curl -s -o /dev/null http://127.0.0.1:$P1/flap; curl -s -o /dev/null http://127.0.0.1:$P2/flap
    sleep 0.02; done"

declare -A PORT_OF=([plain]=$P1 [hooks]=$P2)
declare -A RPS P99
for s in plain hooks; do
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "http://127.0.0.1:${PORT_OF[$s]}/small" >/dev/null
done
for r in $(seq "$RUNS"); do
    for s in $(rotate "$r" plain hooks); do
        out=$(wrk --latency -t"$THREADS" -c"$CONNS" -d"$D" "http://127.0.0.1:${PORT_OF[$s]}/small")
        alive_or_die plain "$PLAIN_PID" "$TMP/plain/stderr.log"
        alive_or_die hooks "$HOOKS_PID" "$TMP/hooks/stderr.log"
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}')
        [ -z "$errs" ] || note "$s run $r: $errs"
        RPS[$s]="${RPS[$s]:-} $rps"
        P99[$s]="${P99[$s]:-} $p99"
        note "run $r $s: $rps req/s, p99 $p99"
    done
done
opens=$(grep -c "event circuit_open" "$TMP/hooks/stderr.log" || true)
dropped=$(curl -s "http://127.0.0.1:$A2/metrics" | awk '/^portcullis_webhook_dropped_total/ {print $2}')

echo "# bench/webhooks.sh, $(date -u +%Y-%m-%dT%H:%MZ), $PC_DESC"
echo "# $(machine_info); wrk --latency -t$THREADS -c$CONNS -d$D, $RUNS runs, $WORKERS worker(s)"
echo "| gateway | req/s per run | median | p99 per run |"
echo "|---|---|---|---|"
for s in plain hooks; do
    echo "| $s | ${RPS[$s]# } | $(echo "${RPS[$s]}" | median) | ${P99[$s]# } |"
done
echo "hooks: circuit_open events logged $opens (warn lines; the log level hides info retries), webhook_dropped_total ${dropped:-?}"
