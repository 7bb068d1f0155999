#!/usr/bin/env bash
# bench/ratelimit_redis.sh: the cost of `rate_limit` with `scope: cluster`
# (one Lua decision per request in a local redis-server) against the same
# route without a limit, with `scope: local`, and against nginx's
# `limit_req` (a local, per-process limit) as the same proxy. One nginx is
# the origin (/small, 100 bytes); every proxy runs 1 worker; the limit is
# set so high that every request is admitted (what is measured is the
# decision, not 429s). wrk runs every target in turn, RUNS times,
# interleaved; the table gives medians of req/s, p50 / p99 latency, the
# proxy's CPU time per request (nginx: master and workers) and the
# redis-server CPU per request (only the cluster scope uses it). Everything listens on
# 127.0.0.1; every process started is stopped on exit.
#
# Environment: D (wrk duration per run, default 5s), RUNS (default 3),
# WARMUP (default 1s), THREADS (wrk threads, 2), CONNS (connections, 64),
# TARGETS (default "bare local cluster nginx-limit"; also local-429 and
# cluster-429: a limit of 1 per hour, so every measured request is a 429
# `rate_limited`, what a rejection costs; and cluster-keys: `key:
# header:X-Client` with a different X-Client on every request (a wrk
# script), so that no two requests in flight share a key and none share a
# Redis call: the worst case of the cluster scope), REDIS_SERVER,
# PORTCULLIS, NGINX.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-5s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
TARGETS=${TARGETS:-"bare local cluster nginx-limit"}
REDIS_SERVER=${REDIS_SERVER:-redis-server}

need_tools wrk curl "$NGINX" "$REDIS_SERVER" openssl
need_portcullis
bench_init
snapshot_portcullis
raise_nofile 4096
make_cert "$TMP"

read -r UP_PORT UP_TPORT REDIS_PORT <<<"$(free_ports 3)"
mkdir -p "$TMP/origin"
write_upstream_conf "$TMP/origin" "$UP_PORT" "$UP_TPORT"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http origin "$ORIGIN_PID" "http://127.0.0.1:$UP_PORT/small" 100 \
    "$TMP/origin/stderr.log"

start_bg "$TMP/redis.log" "$REDIS_SERVER" --port "$REDIS_PORT" \
    --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP"
REDIS_PID=$LAST_PID
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done

# every request admitted: 1e9 per second, burst 1e9 (cap 1e15 < 2^53)
LIMIT='{rate: 1000000000, per: 1s, burst: 1000000000'

pc_conf() { # DIR PORT APORT RATE_LIMIT_BLOCK
    cat >"$1/portcullis.yaml" <<EOF
workers: 1
listen: [{address: 127.0.0.1:$2}]
admin: {listen: 127.0.0.1:$3}
log: {access: "off", level: warn}
redis: {address: 127.0.0.1:$REDIS_PORT, timeout: 50ms, on_error: deny}
upstreams:
  up:
    targets: [{url: "http://127.0.0.1:$UP_PORT"}]
    keepalive: 64
routes:
  - name: $(basename "$1")
    match: {path: /}
    upstream: up
$4
EOF
}

declare -A PORT PID LOG
for t in $TARGETS; do
    dir="$TMP/$t"
    mkdir -p "$dir"
    read -r p a tp <<<"$(free_ports 3)"
    PORT[$t]=$p
    case $t in
    bare) pc_conf "$dir" "$p" "$a" "" ;;
    local) pc_conf "$dir" "$p" "$a" "    rate_limit: $LIMIT, scope: local}" ;;
    cluster) pc_conf "$dir" "$p" "$a" "    rate_limit: $LIMIT, scope: cluster}" ;;
    local-429) pc_conf "$dir" "$p" "$a" "    rate_limit: {rate: 1, per: 1h, burst: 1, scope: local}" ;;
    cluster-429) pc_conf "$dir" "$p" "$a" "    rate_limit: {rate: 1, per: 1h, burst: 1, scope: cluster}" ;;
    cluster-keys) pc_conf "$dir" "$p" "$a" "    rate_limit: $LIMIT, scope: cluster, key: \"header:X-Client\"}" ;;
    nginx-limit)
        write_nginx_proxy_conf "$dir" 1 "$p" "$tp" "$UP_PORT" \
            "            limit_req zone=perip burst=1000000000 nodelay;"
        # shellcheck disable=SC2016 # $binary_remote_addr is nginx's
        sed -i 's|^http {|http {\n    limit_req_zone $binary_remote_addr zone=perip:10m rate=1000000000r/s;|' \
            "$dir/nginx.conf"
        ;;
    *) die "unknown target $t" ;;
    esac
    if [ "$t" = nginx-limit ]; then
        start_nginx "$t" "$dir"
    else
        start_portcullis "$dir"
    fi
    PID[$t]=$LAST_PID
    LOG[$t]="$dir/stderr.log"
    wait_http "$t" "$LAST_PID" "http://127.0.0.1:$p/small" 100 "${LOG[$t]}"
done
# the cluster target must really be deciding in Redis
if [[ " $TARGETS " == *" cluster "* ]]; then
    h=$(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[cluster]}/small")
    echo "$h" | grep -qi '^RateLimit-Limit: 1000000000' ||
        die "cluster target sent no RateLimit headers: $h"
fi

# cluster-keys: every request its own key (the counter is per wrk thread;
# the thread's table address makes it unique across threads)
cat >"$TMP/keys.lua" <<'EOF'
local n = 0
local me = tostring({}):sub(8)
request = function()
    n = n + 1
    return wrk.format(nil, nil, {["X-Client"] = me .. "-" .. n})
end
EOF

to_ms() { # wrk latency (12.3us, 1.2ms, 1.1s) in ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000
        printf "%.3f", n }'
}


note "machine: $(machine_info)"
for r in $(seq "$RUNS"); do
    # shellcheck disable=SC2086 # TARGETS is a word list
    for t in $(rotate "$r" $TARGETS); do
        url="http://127.0.0.1:${PORT[$t]}/small"
        script=()
        [ "$t" = cluster-keys ] && script=(-s "$TMP/keys.lua")
        wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${script[@]}" "$url" >/dev/null 2>&1
        kids=0
        [ "$t" = nginx-limit ] && kids=1
        # shellcheck disable=SC2046 # one PID per word
        pb=$(cpu_ticks $(cpu_pids "${PID[$t]}" $kids))
        rb=$(cpu_ticks "$REDIS_PID")
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$D" --latency "${script[@]}" "$url")
        ra=$(cpu_ticks "$REDIS_PID")
        # shellcheck disable=SC2046
        pa=$(cpu_ticks $(cpu_pids "${PID[$t]}" $kids))
        alive_or_die "$t" "${PID[$t]}" "${LOG[$t]}"
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
        p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
        errs=$(echo "$out" | awk '/Socket errors/ {print}')
        case $t in
        *-429) # every answer but the bucket's one token must be a 429
            [ "${bad:-0}" -ge $((n - 1)) ] || die "$t: only ${bad:-0} of $n answers refused" ;;
        *) [ -z "$bad" ] || die "$t: $bad non-2xx answers" ;;
        esac
        [ -z "$errs" ] || note "$t: $errs"
        rus=$(awk -v t=$((ra - rb)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        pus=$(awk -v t=$((pa - pb)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        echo "$t $rps $p50 $p99 $rus $pus" >>"$TMP/rows"
        note "run $r $t: $rps req/s, p50 $p50 ms, p99 $p99 ms"
    done
done

echo "| target | req/s (median of $RUNS) | p50 ms | p99 ms | proxy CPU us/req | redis CPU us/req |"
echo "|---|---|---|---|---|---|"
for t in $TARGETS; do
    rps=$(awk -v t="$t" '$1 == t {print $2}' "$TMP/rows" | median)
    p50=$(awk -v t="$t" '$1 == t {print $3}' "$TMP/rows" | median)
    p99=$(awk -v t="$t" '$1 == t {print $4}' "$TMP/rows" | median)
    rus=$(awk -v t="$t" '$1 == t {print $5}' "$TMP/rows" | median)
    pus=$(awk -v t="$t" '$1 == t {print $6}' "$TMP/rows" | median)
    echo "| $t | $rps | $p50 | $p99 | $pus | $rus |"
done
echo
echo "wrk -t$THREADS -c$CONNS -d$D --latency, $RUNS runs interleaved; $PC_DESC;"
echo "$(machine_info); $("$REDIS_SERVER" --version | awk '{print $1, $2, $3}')"
