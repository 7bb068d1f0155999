#!/usr/bin/env bash
# bench/breaker.sh: what the circuit breaker costs and saves (not a timed
# test). One portcullis (build/portcullis, WORKERS workers, default 1) with
# three routes, measured by wrk one after the other, interleaved over RUNS
# rounds (the order rotates each round), medians reported:
#   bare    /small      upstream without circuit_breaker -> origin nginx
#   cb      /cb/small   same origin, circuit_breaker that never trips
#   open    /open/small upstream whose only target is a closed port, with
#                       its circuit opened before measuring (failures: 1,
#                       open_for: 1h): every answer is a 503
#                       upstream_unavailable made without connecting
# Environment: D (wrk duration, default 5s), RUNS (3), WARMUP (2s),
# THREADS (wrk threads, 2), CONNS (64), WORKERS (1), PORTCULLIS, NGINX.
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

read -r UP UPTLS PORT APORT DEAD <<<"$(free_ports 5)"
mkdir -p "$TMP/origin" "$TMP/pc"
write_upstream_conf "$TMP/origin" "$UP" "$UPTLS"
start_nginx origin "$TMP/origin"
wait_http origin "$LAST_PID" "http://127.0.0.1:$UP/small" 100 "$TMP/origin/stderr.log"

cat >"$TMP/pc/portcullis.yaml" <<EOF
workers: $WORKERS
listen: [{address: "127.0.0.1:$PORT"}]
admin: {listen: "127.0.0.1:$APORT"}
log: {access: "off", level: warn}
upstreams:
  bare:
    targets: [{url: "http://127.0.0.1:$UP"}]
  cb:
    targets: [{url: "http://127.0.0.1:$UP"}]
    circuit_breaker: {failures: 5, open_for: 30s}
  dead:
    targets: [{url: "http://127.0.0.1:$DEAD"}]
    retries: 0
    circuit_breaker: {failures: 1, open_for: 1h}
routes:
  - {name: cb, match: {path: /cb}, upstream: cb, strip_prefix: /cb}
  - {name: open, match: {path: /open}, upstream: dead, strip_prefix: /open}
  - {name: bare, match: {path: /}, upstream: bare}
EOF
start_portcullis "$TMP/pc"
PC_PID=$LAST_PID
wait_http portcullis "$PC_PID" "http://127.0.0.1:$PORT/small" 100 "$TMP/pc/stderr.log"
wait_http portcullis-cb "$PC_PID" "http://127.0.0.1:$PORT/cb/small" 100 "$TMP/pc/stderr.log"
# open the circuit: one refused connection (502), then 503s without connecting
curl -s -o /dev/null "http://127.0.0.1:$PORT/open/small" || true
got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/open/small")
[ "$got" = 503 ] || die "the dead route answers $got, not 503 (circuit not open)"
curl -s "http://127.0.0.1:$APORT/admin/upstreams" | grep -q '"circuit": *"open"' ||
    die "/admin/upstreams does not show the open circuit"

declare -A PATH_OF=([bare]=/small [cb]=/cb/small [open]=/open/small)
declare -A RPS
for s in bare cb open; do
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "http://127.0.0.1:$PORT${PATH_OF[$s]}" >/dev/null
done
for r in $(seq "$RUNS"); do
    for s in $(rotate "$r" bare cb open); do
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$D" "http://127.0.0.1:$PORT${PATH_OF[$s]}")
        alive_or_die portcullis "$PC_PID" "$TMP/pc/stderr.log"
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        errs=$(echo "$out" | awk '/Socket errors/ {print}')
        [ -z "$errs" ] || note "$s run $r: $errs"
        RPS[$s]="${RPS[$s]:-} $rps"
        note "run $r $s: $rps req/s"
    done
done
# the open route never connected: the dead port saw one refused attempt only
curl -s "http://127.0.0.1:$APORT/admin/upstreams" | grep -q '"circuit": *"open"' ||
    die "the circuit closed during the measurement"

bare=$(echo "${RPS[bare]}" | median)
cb=$(echo "${RPS[cb]}" | median)
open=$(echo "${RPS[open]}" | median)
echo "# bench/breaker.sh, $(date -u +%Y-%m-%dT%H:%MZ), $PC_DESC"
echo "# $(machine_info); wrk -t$THREADS -c$CONNS -d$D, $RUNS runs, $WORKERS worker(s)"
echo "| route | req/s per run | median |"
echo "|---|---|---|"
echo "| bare (no circuit_breaker) | ${RPS[bare]# } | $bare |"
echo "| cb (circuit_breaker, never trips) | ${RPS[cb]# } | $cb |"
echo "| open (every circuit open: 503) | ${RPS[open]# } | $open |"
awk -v b="$bare" -v c="$cb" -v o="$open" 'BEGIN {
    printf "open / bare = %.2fx; cb / bare = %.3f\n", o / b, c / b }'
