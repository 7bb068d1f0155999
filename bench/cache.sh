#!/usr/bin/env bash
# bench/cache.sh: cache hits against the bare proxy and nginx proxy_cache
# hits (not a timed test). The origin (nginx, 1 worker) serves /small (100
# bytes, no Cache-Control); portcullis has two routes to it: /small with
# `cache: {ttl: 60s}` (every request after the first is a hit) and /bare
# (strip_prefix /bare: the same file, proxied every time); nginx proxies
# to the same origin with `proxy_cache` (keys_zone 10m, proxy_cache_valid
# 200 60s). Each runs WORKERS workers (default 1). Runs interleave over
# RUNS rounds, the order rotating; medians reported. Everything on
# 127.0.0.1; every process it started is stopped on exit.
# Environment: D (wrk duration, default 5s), RUNS (3), WARMUP (1s),
# THREADS (2), CONNS (64), WORKERS (1), PORTCULLIS, NGINX.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-5s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-1}

need_tools wrk curl "$NGINX" openssl
need_portcullis
bench_init
snapshot_portcullis
make_cert "$TMP"

read -r UP UPTLS PORT PTLS APORT NPORT NTLS <<<"$(free_ports 7)"
mkdir -p "$TMP/origin" "$TMP/pc" "$TMP/nginx/cache"
write_upstream_conf "$TMP/origin" "$UP" "$UPTLS"
start_nginx origin "$TMP/origin"
wait_http origin "$LAST_PID" "http://127.0.0.1:$UP/small" 100 "$TMP/origin/stderr.log"

write_portcullis_conf "$TMP/pc" "$WORKERS" "$PORT" "$PTLS" "$APORT" "$UP"
# the route of write_portcullis_conf stays (/, bare); two more before it
sed -i 's|^routes:$|cache: {memory: 64m}\nroutes:\n  - name: cached\n    match: {path: /small, type: exact}\n    upstream: up\n    cache: {ttl: 60s}\n  - name: bare\n    match: {path: /bare}\n    strip_prefix: /bare\n    upstream: up|' \
    "$TMP/pc/portcullis.yaml"
grep -q "ttl: 60s" "$TMP/pc/portcullis.yaml" || die "could not add cache to the config"
start_portcullis "$TMP/pc"
PC_PID=$LAST_PID
wait_http portcullis "$PC_PID" "http://127.0.0.1:$PORT/small" 100 "$TMP/pc/stderr.log"

write_nginx_proxy_conf "$TMP/nginx" "$WORKERS" "$NPORT" "$NTLS" "$UP" \
    "            proxy_cache pc; proxy_cache_valid 200 60s; add_header X-Cache \$upstream_cache_status;"
sed -i "s|^    upstream up {|    proxy_cache_path $TMP/nginx/cache keys_zone=pc:10m;\n    upstream up {|" \
    "$TMP/nginx/nginx.conf"
start_nginx nginx "$TMP/nginx"
NG_PID=$LAST_PID
wait_http nginx "$NG_PID" "http://127.0.0.1:$NPORT/small" 100 "$TMP/nginx/stderr.log"

declare -A URL=([pc-hit]="http://127.0.0.1:$PORT/small"
                [pc-bare]="http://127.0.0.1:$PORT/bare/small"
                [nginx-hit]="http://127.0.0.1:$NPORT/small")
TARGETS="pc-hit pc-bare nginx-hit"
declare -A RPS

for t in $TARGETS; do
    curl -s -o /dev/null "${URL[$t]}"
    xc=$(curl -s -D - -o /dev/null "${URL[$t]}" | tr -d '\r' |
         awk -F': ' 'tolower($1)=="x-cache" {print $2}')
    case $t in
    pc-bare) [ "$xc" = "" ] || die "$t: X-Cache '$xc' on the bare route" ;;
    *) [ "$xc" = HIT ] || die "$t: X-Cache '$xc', wanted HIT" ;;
    esac
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${URL[$t]}" >/dev/null
done
for r in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    for t in $(rotate "$r" $TARGETS); do
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$D" "${URL[$t]}")
        alive_or_die portcullis "$PC_PID" "$TMP/pc/stderr.log"
        alive_or_die nginx "$NG_PID" "$TMP/nginx/stderr.log"
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}')
        [ -z "$errs" ] || note "$t run $r: $errs"
        RPS[$t]="${RPS[$t]:-} $rps"
        note "run $r $t: $rps req/s"
    done
done

echo "# bench/cache.sh, $(date -u +%Y-%m-%dT%H:%MZ), $PC_DESC"
echo "# $(machine_info); wrk -t$THREADS -c$CONNS -d$D, $RUNS runs, $WORKERS worker(s); /small = 100 bytes"
echo "| target | req/s per run | median |"
echo "|---|---|---:|"
for t in $TARGETS; do
    m=$(echo "${RPS[$t]}" | median)
    eval "MED_${t//-/_}=$m"
    echo "| $t | ${RPS[$t]# } | $m |"
done
awk -v a="$MED_pc_hit" -v b="$MED_pc_bare" -v c="$MED_nginx_hit" 'BEGIN {
    printf "portcullis hit / bare proxy = %.2fx; portcullis hit / nginx proxy_cache hit = %.2fx\n", a / b, a / c }'
