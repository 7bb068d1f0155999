#!/usr/bin/env bash
# bench/security.sh: what the security stages cost, each scenario measured
# through the same portcullis binary against the same origin as the bare
# route, in one run, so that the ratios to the bare route are taken side by
# side (issue 4, "Performance"). Scenarios:
#
#   bare    GET /bare/small, a route without any security block (reference)
#   hs256   the same with auth on an HS256 provider, one reused token
#   es256   the same with an ES256 provider (JWK Set), one reused token
#   rs256   the same with an RS256 provider (JWK Set), one reused token
#   acl10k  a route whose acl.deny lists 10,000 CIDRs, none covering the
#           client 127.0.0.1
#   post1k  POST /post1k/small with a 1 KiB JSON body, no validation (the
#           body's own cost, to read the schema row against)
#   schema  the same POST validated: content_types + json_schema
#   all     ES256 auth + the 10,000-entry deny list (global) on a route that
#           is one of 1,000 routes (distinct prefixes, no rate limit), in a
#           second portcullis process so that the others keep the small
#           config
#
# bench/security_setup.py makes the keys, tokens (tests/e2e/jwt_util.py),
# deny list, schema, bodies and the YAML appended to lib.sh's portcullis
# config, and renders the table. Each scenario must first pass its check
# requests (200 with the exact body; 401 without a token, with another
# provider's and, for ES256, with a tampered one; 400 for a body the schema
# refuses, 415 for text/plain; the deny lists loaded whole; wrk's own
# request answered 2xx) or nothing is measured. Everything listens on 127.0.0.1; every process
# started is stopped on exit.
#
# Environment: D (wrk duration per run, default 10s), RUNS (default 3),
# WARMUP (default 2s), WORKERS (portcullis workers, default 1), SCENARIOS
# (default: all eight above, in that order), THREADS (2), CONNS (64),
# RESULTS (default bench/results/security.md), PERF=SCENARIO (after the
# measurement, one more D-long run of SCENARIO under `perf record -g`, the
# top of `perf report` printed on stderr), BENCH_KEEP=1 keeps the raw files.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-1}
SCENARIOS=${SCENARIOS:-"bare hs256 es256 rs256 acl10k post1k schema all"}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
RESULTS=${RESULTS:-$BENCH_DIR/results/security.md}
PERF=${PERF:-}

need_tools "$NGINX" wrk openssl curl "$PYTHON"
if [ -n "$PERF" ]; then
    need_tools perf
    [[ " $SCENARIOS " == *" $PERF "* ]] ||
        die "PERF=$PERF is not one of the scenarios measured ($SCENARIOS)"
fi
need_portcullis
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive integer"
for s in $SCENARIOS; do
    case $s in
    bare | hs256 | es256 | rs256 | acl10k | post1k | schema | all) ;;
    *) die "unknown scenario '$s'" ;;
    esac
done

bench_init
snapshot_portcullis
SEC=$TMP/sec
mkdir -p "$TMP/raw" "$TMP/origin" "$TMP/small" "$TMP/all" "$SEC"
make_cert "$TMP"
: >"$TMP/index.tsv"

read -r UP UPT PX PXT PXA AX AXT AXA <<<"$(free_ports 8)"

# The origin of run.sh, which must also answer the POST rows with /small:
# nginx's static handler refuses POST (405); error_page turns that into an
# internal GET of the same file, after nginx has read and dropped the body.
# (A `return 200` location would be cheaper for nginx than the static file
# and flatter the POST rows; this costs the origin a little more instead.)
write_upstream_conf "$TMP/origin" "$UP" "$UPT"
sed -i "s|^        root $TMP/origin/www;\$|&\n        error_page 405 =200 \$uri;|" \
    "$TMP/origin/nginx.conf"
# shellcheck disable=SC2016 # $uri is nginx's, not the shell's
grep -qF 'error_page 405 =200 $uri;' "$TMP/origin/nginx.conf" ||
    die "could not add error_page to the origin's config"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http "origin nginx" "$ORIGIN_PID" "http://127.0.0.1:$UP/small" 100 \
    "$TMP/origin/error.log"
got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' \
    --data-binary x "http://127.0.0.1:$UP/small" || true)
[ "$got" = "200 100" ] || die "origin POST /small answered '$got', expected '200 100'"

note "making keys, tokens, the deny list and the configs"
"$PYTHON" "$BENCH_DIR/security_setup.py" prepare "$SEC" ||
    die "security_setup.py prepare failed"

# lib.sh's config ends with its routes list (no limits): the fragments go on
# with more routes, then their own top-level blocks. `-t` proves the result
# is one valid config before anything is measured.
write_pc_conf() {
    local dir=$1 port=$2 tport=$3 aport=$4 frag=$5 out
    write_portcullis_conf "$dir" "$WORKERS" "$port" "$tport" "$aport" "$UP"
    cat "$frag" >>"$dir/portcullis.yaml"
    out=$("$PORTCULLIS" -t -c "$dir/portcullis.yaml" 2>&1) ||
        die "portcullis rejects $dir/portcullis.yaml: $(echo "$out" | head -5)"
}
write_pc_conf "$TMP/small" "$PX" "$PXT" "$PXA" "$SEC/small.yaml"
write_pc_conf "$TMP/all" "$AX" "$AXT" "$AXA" "$SEC/all.yaml"

start_portcullis "$TMP/small"
PC_PID=$LAST_PID
start_portcullis "$TMP/all"
AL_PID=$LAST_PID
wait_http portcullis "$PC_PID" "http://127.0.0.1:$PX/small" 100 \
    "$TMP/small/stderr.log"
wait_http "portcullis (1,000 routes)" "$AL_PID" "http://127.0.0.1:$AX/small" \
    100 "$TMP/all/stderr.log"

token() { cat "$SEC/tokens/$1"; }

# scenario_args S: sets URL and WRK_OPTS (options before the URL) and
# WRK_TAIL (script arguments after it) for scenario S.
scenario_args() {
    WRK_OPTS=()
    WRK_TAIL=()
    case $1 in
    bare | acl10k) URL="http://127.0.0.1:$PX/$1/small" ;;
    hs256 | es256 | rs256)
        URL="http://127.0.0.1:$PX/$1/small"
        WRK_OPTS=(-H "Authorization: Bearer $(token "$1")")
        ;;
    post1k | schema)
        URL="http://127.0.0.1:$PX/$1/small"
        WRK_OPTS=(-s "$BENCH_DIR/lua/post_body.lua")
        WRK_TAIL=(-- "$SEC/body.json" application/json)
        ;;
    all)
        URL="http://127.0.0.1:$AX/all/small"
        WRK_OPTS=(-H "Authorization: Bearer $(token es256)")
        ;;
    esac
}

# expect WHAT WANT CURL-ARGS...: one request; its "code bytes" must be WANT.
expect() {
    local what=$1 want=$2 got
    shift 2
    got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' \
        "$@" || true)
    case $want in
    *" "*) [ "$got" = "$want" ] ;;
    *) [ "${got%% *}" = "$want" ] ;;
    esac || die "$what answered '$got', expected '$want'"
}

# deny_count PORT ROUTE|-: entries in the deny list the running process
# reports in /admin/config (ROUTE's, or the global one for -).
deny_count() {
    curl -s --max-time 5 "http://127.0.0.1:$1/admin/config" |
        "$PYTHON" -c '
import json, sys
cfg, name = json.load(sys.stdin), sys.argv[1]
if name == "-":
    acl = cfg.get("acl") or {}
else:
    acl = next((r.get("acl") or {} for r in cfg["routes"] if r.get("name") == name), {})
print(len(acl.get("deny") or []), len(cfg["routes"]))' "$2"
}

check_scenario() {
    local s=$1 alg tok
    scenario_args "$s"
    case $s in
    bare) expect "$s" "200 100" "$URL" ;;
    hs256 | es256 | rs256 | all)
        alg=$s
        [ "$s" = all ] && alg=es256
        tok=$(token "$alg")
        expect "$s with its token" "200 100" -H "Authorization: Bearer $tok" "$URL"
        expect "$s without a token" 401 "$URL"
        expect "$s with another provider's token" 401 \
            -H "Authorization: Bearer $(token "$([ "$alg" = hs256 ] && echo es256 || echo hs256)")" "$URL"
        if [ "$alg" = es256 ]; then
            expect "$s with a tampered token" 401 \
                -H "Authorization: Bearer $(token es256-bad)" "$URL"
        fi
        ;;
    acl10k) expect "$s" "200 100" "$URL" ;;
    post1k | schema)
        expect "$s" "200 100" -H "Content-Type: application/json" \
            --data-binary "@$SEC/body.json" "$URL"
        if [ "$s" = schema ]; then
            expect "$s with a body the schema refuses" 400 \
                -H "Content-Type: application/json" \
                --data-binary "@$SEC/body-bad.json" "$URL"
            expect "$s with a text/plain body" 415 \
                -H "Content-Type: text/plain" \
                --data-binary "@$SEC/body.json" "$URL"
        fi
        ;;
    esac
    case $s in
    acl10k)
        [ "$(deny_count "$PXA" acl10k)" = "10000 8" ] ||
            die "acl10k: /admin/config shows '$(deny_count "$PXA" acl10k)'" \
                "(deny entries, routes), expected '10000 8'"
        ;;
    all)
        [ "$(deny_count "$AXA" -)" = "10000 1000" ] ||
            die "all: /admin/config shows '$(deny_count "$AXA" -)'" \
                "(deny entries, routes), expected '10000 1000'"
        ;;
    esac
    # wrk's own request must pass too (the Lua script, the header).
    wrk -t1 -c1 -d1s "${WRK_OPTS[@]}" "$URL" "${WRK_TAIL[@]}" >"$TMP/check.txt" 2>&1 ||
        die "wrk check on $s failed: $(cat "$TMP/check.txt")"
    ! grep -q 'Non-2xx\|Socket errors' "$TMP/check.txt" ||
        die "wrk check on $s got errors: $(cat "$TMP/check.txt")"
}

check_alive() {
    local name pid log
    for name in origin portcullis portcullis-1000; do
        case $name in
        origin) pid=$ORIGIN_PID log=$TMP/origin/error.log ;;
        portcullis) pid=$PC_PID log=$TMP/small/stderr.log ;;
        portcullis-1000) pid=$AL_PID log=$TMP/all/stderr.log ;;
        esac
        alive_or_die "$name" "$pid" "$log"
    done
}

run_wrk() {
    local s=$1 d=$2 out=$3
    scenario_args "$s"
    wrk -t"$THREADS" -c"$CONNS" -d"$d" --latency "${WRK_OPTS[@]}" "$URL" \
        "${WRK_TAIL[@]}" >"$out" 2>&1
}

for s in $SCENARIOS; do
    check_scenario "$s"
done
note "every scenario answered its checks"

started=$(date -u +%Y-%m-%dT%H:%MZ)
for s in $SCENARIOS; do
    note "warm-up $s ($WARMUP)"
    run_wrk "$s" "$WARMUP" /dev/null || die "wrk warm-up on $s failed"
done
for r in $(seq "$RUNS"); do
    # shellcheck disable=SC2086 # SCENARIOS is a word list
    for s in $(rotate "$r" $SCENARIOS); do
        raw="$TMP/raw/$s-$r.txt"
        note "$s run $r/$RUNS ($D)"
        run_wrk "$s" "$D" "$raw" || note "wrk exited non-zero on $s (see the table notes)"
        printf '%s\t%s\t%s\t%s\n' "$s" portcullis "$r" "$raw" >>"$TMP/index.tsv"
        check_alive
    done
done

# The table lists the scenarios in SCENARIOS order, whatever order they ran.
for s in $SCENARIOS; do
    awk -F'\t' -v s="$s" '$1 == s' "$TMP/index.tsv"
done >"$TMP/index.sorted.tsv"

mkdir -p "$(dirname "$RESULTS")"
status=0
"$PYTHON" "$BENCH_DIR/security_setup.py" report "$TMP/index.sorted.tsv" \
    "# bench/security.sh results, $started" "" \
    "Machine: $(machine_info); portcullis: $PC_DESC, $WORKERS worker(s)." \
    "wrk -t$THREADS -c$CONNS -d$D --latency, warm-up $WARMUP, median of $RUNS runs, scenarios interleaved;" \
    "origin: nginx, 1 worker, 100-byte answers; tokens reused on every request;" \
    "POST rows send a 1 KiB JSON body; 'all' runs in a second portcullis process with 1,000 routes." \
    >"$TMP/table.md" || status=$?
cp "$TMP/table.md" "$RESULTS"
cat "$TMP/table.md"
note "table written to $RESULTS"

if [ -n "$PERF" ]; then
    pid=$PC_PID
    [ "$PERF" = all ] && pid=$AL_PID
    note "profiling $PERF (pid $pid) for $D"
    # perf stops by itself after D (its `sleep`), while wrk loads the pid.
    perf record -q -g -p "$pid" -o "$TMP/perf.data" -- sleep "$D" \
        >"$TMP/perf.log" 2>&1 &
    perf_pid=$!
    BENCH_PIDS="$perf_pid $BENCH_PIDS"
    run_wrk "$PERF" "$D" "$TMP/perf-wrk.txt" || true
    wait "$perf_pid" 2>/dev/null || note "perf record failed: $(cat "$TMP/perf.log")"
    BENCH_PIDS=$(echo " $BENCH_PIDS " | sed "s/ $perf_pid / /; s/^ *//; s/ *$//")
    grep Requests/sec "$TMP/perf-wrk.txt" >&2 || true
    # Where the worker's time goes: per library, then the user-space
    # functions (the kernel's share is mostly the TCP work of every request).
    perf report -i "$TMP/perf.data" --no-children --sort dso --stdio \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 >&2
    perf report -i "$TMP/perf.data" --no-children --sort dso,sym --stdio \
        -g none 2>/dev/null | grep '\[\.\]' | head -30 >&2
fi
exit "$status"
