#!/usr/bin/env bash
# bench/compress.sh: response compression against nginx's gzip filter (not
# a timed test). The origin (nginx, 1 worker) serves a 16 KiB JSON document
# (generated: an array of objects with varied numbers and strings, about
# 4-6x compressible by gzip -1); portcullis (route with `compress`) and nginx
# (proxy_pass to the same origin, `gzip on; gzip_comp_level 1;
# gzip_proxied any; gzip_types application/json`) each run WORKERS workers
# (default 1). wrk sends `Accept-Encoding: ENC` (gzip by default; br and
# zstd are portcullis-only rows). The pc-*-hit rows go through a second
# route, /cached (strip_prefix), with `cache: {ttl: 60s}` too: every
# request is a hit whose coding was stored once (never re-encoded). Runs
# interleave over RUNS rounds, the
# order rotating; medians reported with bytes on the wire per response
# (curl, body only). Everything on 127.0.0.1; every process it started is
# stopped on exit.
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
mkdir -p "$TMP/origin/www" "$TMP/pc" "$TMP/nginx"
"$PYTHON" - "$TMP/origin/www/doc.json" <<'EOF'
import json, random, sys
rnd = random.Random(7)
items, size = [], 0
while True:
    i = len(items)
    items.append({"id": 100000 + i * 37, "sku": "SKU-%06d" % rnd.randrange(10**6),
                  "name": "item %d %s" % (i, rnd.choice(["red", "blue", "green", "black"])),
                  "price": round(rnd.uniform(1, 500), 2), "stock": rnd.randrange(1000),
                  "tags": rnd.sample(["new", "sale", "eco", "gift", "bulk", "rare"], 2)})
    text = json.dumps({"items": items}, indent=1)
    if len(text) >= 16384:
        break
open(sys.argv[1], "w").write(text)
EOF
DOC_BYTES=$(stat -c %s "$TMP/origin/www/doc.json")
{
    nginx_main_conf "$TMP/origin" 1
    echo "http {"
    nginx_http_common "$TMP/origin"
    cat <<EOF
    types { application/json json; }
    open_file_cache max=16 inactive=1h;
    server {
        listen 127.0.0.1:$UP;
        root $TMP/origin/www;
    }
}
EOF
} >"$TMP/origin/nginx.conf"
start_nginx origin "$TMP/origin"
wait_http origin "$LAST_PID" "http://127.0.0.1:$UP/doc.json" "$DOC_BYTES" "$TMP/origin/stderr.log"

write_portcullis_conf "$TMP/pc" "$WORKERS" "$PORT" "$PTLS" "$APORT" "$UP"
# the route of write_portcullis_conf, with compress; a cached one before it
sed -i 's|^  - match: {path: /}$|  - match: {path: /}\n    compress: {types: [application/json], min_bytes: 1024}|' \
    "$TMP/pc/portcullis.yaml"
sed -i 's|^routes:$|cache: {memory: 64m}\nroutes:\n  - name: cached\n    match: {path: /cached}\n    strip_prefix: /cached\n    upstream: up\n    cache: {ttl: 60s}\n    compress: {types: [application/json], min_bytes: 1024}|' \
    "$TMP/pc/portcullis.yaml"
grep -q "compress:" "$TMP/pc/portcullis.yaml" || die "could not add compress to the config"
grep -q "ttl: 60s" "$TMP/pc/portcullis.yaml" || die "could not add the cached route to the config"
start_portcullis "$TMP/pc"
PC_PID=$LAST_PID
wait_http portcullis "$PC_PID" "http://127.0.0.1:$PORT/doc.json" "$DOC_BYTES" "$TMP/pc/stderr.log"

write_nginx_proxy_conf "$TMP/nginx" "$WORKERS" "$NPORT" "$NTLS" "$UP" \
    "            gzip on; gzip_comp_level 1; gzip_proxied any; gzip_min_length 1024; gzip_types application/json;"
start_nginx nginx "$TMP/nginx"
NG_PID=$LAST_PID
wait_http nginx "$NG_PID" "http://127.0.0.1:$NPORT/doc.json" "$DOC_BYTES" "$TMP/nginx/stderr.log"

declare -A URL=([pc-gzip]="http://127.0.0.1:$PORT/doc.json"
                [pc-br]="http://127.0.0.1:$PORT/doc.json"
                [pc-zstd]="http://127.0.0.1:$PORT/doc.json"
                [pc-identity]="http://127.0.0.1:$PORT/doc.json"
                [pc-gzip-hit]="http://127.0.0.1:$PORT/cached/doc.json"
                [pc-br-hit]="http://127.0.0.1:$PORT/cached/doc.json"
                [nginx-gzip]="http://127.0.0.1:$NPORT/doc.json"
                [nginx-identity]="http://127.0.0.1:$NPORT/doc.json")
declare -A ENC=([pc-gzip]=gzip [pc-br]=br [pc-zstd]=zstd [pc-identity]=identity
                [pc-gzip-hit]=gzip [pc-br-hit]=br
                [nginx-gzip]=gzip [nginx-identity]=identity)
TARGETS="pc-gzip nginx-gzip pc-br pc-zstd pc-identity nginx-identity pc-gzip-hit pc-br-hit"
declare -A RPS BYTES CE

for t in $TARGETS; do
    hdrs=$(curl -s -D - -o "$TMP/$t.body" -H "Accept-Encoding: ${ENC[$t]}" "${URL[$t]}")
    BYTES[$t]=$(stat -c %s "$TMP/$t.body")
    CE[$t]=$(echo "$hdrs" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding" {print $2}')
    want=${ENC[$t]}
    [ "$want" = identity ] && want=""
    [ "${CE[$t]}" = "$want" ] || die "$t: Content-Encoding '${CE[$t]}', wanted '$want'"
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "Accept-Encoding: ${ENC[$t]}" "${URL[$t]}" >/dev/null
done
for r in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    for t in $(rotate "$r" $TARGETS); do
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$D" -H "Accept-Encoding: ${ENC[$t]}" "${URL[$t]}")
        alive_or_die portcullis "$PC_PID" "$TMP/pc/stderr.log"
        alive_or_die nginx "$NG_PID" "$TMP/nginx/stderr.log"
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}')
        [ -z "$errs" ] || note "$t run $r: $errs"
        RPS[$t]="${RPS[$t]:-} $rps"
        note "run $r $t: $rps req/s"
    done
done

echo "# bench/compress.sh, $(date -u +%Y-%m-%dT%H:%MZ), $PC_DESC"
echo "# $(machine_info); wrk -t$THREADS -c$CONNS -d$D, $RUNS runs, $WORKERS worker(s); document $DOC_BYTES bytes of JSON"
echo "| target | Accept-Encoding | req/s per run | median | body bytes out |"
echo "|---|---|---|---:|---:|"
for t in $TARGETS; do
    m=$(echo "${RPS[$t]}" | median)
    eval "MED_${t//-/_}=$m"
    echo "| $t | ${ENC[$t]} | ${RPS[$t]# } | $m | ${BYTES[$t]} |"
done
awk -v a="$MED_pc_gzip" -v b="$MED_nginx_gzip" -v c="$MED_pc_identity" -v d="$MED_nginx_identity" 'BEGIN {
    printf "gzip: portcullis / nginx = %.2fx; identity: portcullis / nginx = %.2fx\n", a / b, c / d }'
awk -v a="$MED_pc_gzip_hit" -v b="$MED_pc_gzip" -v c="$MED_nginx_gzip" -v d="$MED_pc_br_hit" -v e="$MED_pc_br" 'BEGIN {
    printf "stored codings: gzip hit / gzip encoded per request = %.2fx, / nginx gzip = %.2fx; br hit / br per request = %.2fx\n", a / b, a / c, d / e }'
