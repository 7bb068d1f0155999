#!/usr/bin/env bash
# bench/run.sh: throughput and latency of portcullis against nginx as the
# same keep-alive reverse proxy, and against the origin reached directly
# (`make bench`). One nginx is the origin (1 worker, static files /small and
# /16k); portcullis and a second nginx proxy to it with the same worker
# count. wrk measures every target the same way, runs interleaved so that
# drift on the shared machine hits all three alike; the table gives medians.
# Everything listens on 127.0.0.1 and every process started is stopped on
# exit. It must never measure a server that did not answer a check request.
#
# Environment: D (wrk duration per run, default 10s), RUNS (default 3),
# WARMUP (default 2s), WORKERS (default "1 2"), PATHS (default "/small /16k"),
# MODES (default "plain tls"), TARGETS (default "direct portcullis nginx"),
# THREADS (wrk threads, 2), CONNS (wrk connections, 64), RESULTS (output
# file, default bench/results/latest.md), BENCH_KEEP=1 keeps the raw files.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-"1 2"}
PATHS=${PATHS:-"/small /16k"}
MODES=${MODES:-"plain tls"}
TARGETS=${TARGETS:-"direct portcullis nginx"}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
RESULTS=${RESULTS:-$BENCH_DIR/results/latest.md}

need_tools "$NGINX" wrk openssl curl "$PYTHON"
case " $TARGETS " in *" portcullis "*) need_portcullis ;; esac
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive integer"

bench_init
case " $TARGETS " in *" portcullis "*) snapshot_portcullis ;; esac
mkdir -p "$TMP/raw" "$TMP/origin"
make_cert "$TMP"
: >"$TMP/index.tsv"

read -r UP UPT PX PXT PXA NX NXT <<<"$(free_ports 7)"

body_bytes() {
    case $1 in
    /small) echo 100 ;;
    /16k) echo 16384 ;;
    *) die "unknown path $1 (PATHS may hold /small and /16k)" ;;
    esac
}

write_upstream_conf "$TMP/origin" "$UP" "$UPT"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http "origin nginx" "$ORIGIN_PID" "http://127.0.0.1:$UP/small" 100 \
    "$TMP/origin/error.log"
wait_http "origin nginx (TLS)" "$ORIGIN_PID" "https://127.0.0.1:$UPT/small" \
    100 "$TMP/origin/error.log"

PC_PID=""
NX_PID=""

start_proxies() {
    local w=$1
    if [[ " $TARGETS " == *" portcullis "* ]]; then
        mkdir -p "$TMP/pc$w"
        write_portcullis_conf "$TMP/pc$w" "$w" "$PX" "$PXT" "$PXA" "$UP"
        start_portcullis "$TMP/pc$w"
        PC_PID=$LAST_PID
        wait_http portcullis "$PC_PID" "http://127.0.0.1:$PX/small" 100 \
            "$TMP/pc$w/stderr.log"
        wait_http "portcullis (TLS)" "$PC_PID" \
            "https://127.0.0.1:$PXT/small" 100 "$TMP/pc$w/stderr.log"
    fi
    if [[ " $TARGETS " == *" nginx "* ]]; then
        mkdir -p "$TMP/nx$w"
        write_nginx_proxy_conf "$TMP/nx$w" "$w" "$NX" "$NXT" "$UP"
        start_nginx "nginx proxy" "$TMP/nx$w"
        NX_PID=$LAST_PID
        wait_http "nginx proxy" "$NX_PID" "http://127.0.0.1:$NX/small" 100 \
            "$TMP/nx$w/error.log"
        wait_http "nginx proxy (TLS)" "$NX_PID" \
            "https://127.0.0.1:$NXT/small" 100 "$TMP/nx$w/error.log"
    fi
}

stop_proxies() {
    [ -n "$PC_PID" ] && stop_pid "$PC_PID"
    [ -n "$NX_PID" ] && stop_pid "$NX_PID"
    PC_PID=""
    NX_PID=""
}

url_of() {
    local target=$1 mode=$2 path=$3 port scheme=http
    case $target:$mode in
    direct:plain) port=$UP ;;
    direct:tls) port=$UPT ;;
    portcullis:plain) port=$PX ;;
    portcullis:tls) port=$PXT ;;
    nginx:plain) port=$NX ;;
    nginx:tls) port=$NXT ;;
    *) die "unknown target '$target' or mode '$mode'" ;;
    esac
    [ "$mode" = tls ] && scheme=https
    echo "$scheme://127.0.0.1:$port$path"
}

# A server that died under load would turn every later row into wrk
# connection errors: stop at once and say which one.
check_alive() {
    local name pid log
    for name in origin portcullis nginx; do
        case $name in
        origin) pid=$ORIGIN_PID log=$TMP/origin/error.log ;;
        portcullis) pid=$PC_PID log=$TMP/pc$1/stderr.log ;;
        nginx) pid=$NX_PID log=$TMP/nx$1/error.log ;;
        esac
        [ -z "$pid" ] && continue
        alive_or_die "$name" "$pid" "$log"
    done
}

measure() {
    local w=$1 mode=$2 path=$3 scenario target url r raw
    scenario="w$w $mode $path"
    local bytes
    bytes=$(body_bytes "$path")
    for target in $TARGETS; do
        url=$(url_of "$target" "$mode" "$path")
        # The check request also proves the body arrives whole.
        local got
        got=$(curl -sk --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "$url" || true)
        [ "$got" = "200 $bytes" ] ||
            die "$target $url answered '$got', expected '200 $bytes'"
        wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url" >/dev/null 2>&1 ||
            die "wrk warm-up on $url failed"
    done
    for r in $(seq "$RUNS"); do
        # shellcheck disable=SC2086 # TARGETS is a word list
        for target in $(rotate "$r" $TARGETS); do
            url=$(url_of "$target" "$mode" "$path")
            raw="$TMP/raw/w$w-$mode-${path#/}-$target-$r.txt"
            note "$scenario $target run $r/$RUNS ($D)"
            wrk -t"$THREADS" -c"$CONNS" -d"$D" --latency "$url" >"$raw" 2>&1 ||
                note "wrk exited non-zero on $url (see the table notes)"
            printf '%s\t%s\t%s\t%s\n' "$scenario" "$target" "$r" "$raw" \
                >>"$TMP/index.tsv"
            check_alive "$w"
        done
    done
}

# The index lists each scenario's targets in TARGETS order for the table,
# whatever order the runs took.
sorted_index() {
    local scenario target
    cut -f1 "$TMP/index.tsv" | awk '!seen[$0]++' | while IFS= read -r scenario; do
        for target in $TARGETS; do
            awk -F'\t' -v s="$scenario" -v t="$target" '$1 == s && $2 == t' \
                "$TMP/index.tsv"
        done
    done >"$TMP/index.sorted.tsv"
}

started=$(date -u +%Y-%m-%dT%H:%MZ)
for w in $WORKERS; do
    start_proxies "$w"
    for mode in $MODES; do
        for path in $PATHS; do
            measure "$w" "$mode" "$path"
        done
    done
    stop_proxies
done

sorted_index
mkdir -p "$(dirname "$RESULTS")"
status=0
"$PYTHON" "$BENCH_DIR/report.py" "$TMP/index.sorted.tsv" \
    "# bench/run.sh results, $started" "" \
    "Machine: $(machine_info); portcullis: $PC_DESC." \
    "wrk -t$THREADS -c$CONNS -d$D --latency, warm-up $WARMUP, median of $RUNS runs;" \
    "origin: nginx, 1 worker; wN = N workers for portcullis and the nginx proxy." \
    >"$TMP/table.md" || status=$?
cp "$TMP/table.md" "$RESULTS"
cat "$TMP/table.md"
note "table written to $RESULTS"
exit "$status"
