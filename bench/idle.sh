#!/usr/bin/env bash
# bench/idle.sh: resident memory per idle keep-alive client connection,
# portcullis against nginx as the same reverse proxy, plain and TLS. Each
# measurement gets a freshly started server, so that memory freed by the
# previous one cannot be reused and make a connection look cheaper. Uses
# bench/idle_conns.py; everything on 127.0.0.1, every process stopped on exit.
#
# Environment: N (connections, default 10000), WORKERS (default 1),
# TARGETS (default "portcullis nginx"), MODES (default "plain tls"),
# RESULTS (default bench/results/idle.md).
set -euo pipefail

. "$(dirname "$0")/lib.sh"

N=${N:-10000}
WORKERS=${WORKERS:-1}
TARGETS=${TARGETS:-"portcullis nginx"}
MODES=${MODES:-"plain tls"}
RESULTS=${RESULTS:-$BENCH_DIR/results/idle.md}

need_tools "$NGINX" openssl curl "$PYTHON"
case " $TARGETS " in *" portcullis "*) need_portcullis ;; esac
[ "$N" -ge 1 ] 2>/dev/null || die "N must be a positive integer"

# The client and each server hold N descriptors (plus listeners, pools).
raise_nofile $((N + 1000))
limit=$(ulimit -n)
[ "$limit" = unlimited ] || [ "$limit" -ge $((N + 100)) ] ||
    die "open-file limit $limit is too low for N=$N (raise 'ulimit -Hn')"

bench_init
case " $TARGETS " in *" portcullis "*) snapshot_portcullis ;; esac
mkdir -p "$TMP/origin"
make_cert "$TMP"
read -r UP UPT PX PXT PXA <<<"$(free_ports 5)"

write_upstream_conf "$TMP/origin" "$UP" "$UPT"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http "origin nginx" "$ORIGIN_PID" "http://127.0.0.1:$UP/small" 100 \
    "$TMP/origin/error.log"

# max_connections (default 10000) must not be what is measured, nor the
# keep-alive timeout close connections while 10 000 TLS handshakes run.
maxconn=$((N + 1000))
[ "$maxconn" -lt 20000 ] && maxconn=20000
PC_LIMITS="  max_connections: $maxconn
  keepalive_timeout: 300s"

rows=()
for target in $TARGETS; do
    for mode in $MODES; do
        dir="$TMP/$target-$mode"
        mkdir -p "$dir"
        port=$PX
        [ "$mode" = tls ] && port=$PXT
        scheme=http
        [ "$mode" = tls ] && scheme=https
        case $target in
        portcullis)
            write_portcullis_conf "$dir" "$WORKERS" "$PX" "$PXT" "$PXA" "$UP" \
                "$PC_LIMITS"
            start_portcullis "$dir"
            log=$dir/stderr.log
            children=()
            ;;
        nginx)
            write_nginx_proxy_conf "$dir" "$WORKERS" "$PX" "$PXT" "$UP"
            start_nginx "nginx proxy" "$dir"
            log=$dir/error.log
            children=(--children)
            ;;
        *) die "unknown target '$target'" ;;
        esac
        pid=$LAST_PID
        wait_http "$target" "$pid" "$scheme://127.0.0.1:$port/small" 100 "$log"
        note "$target $mode: opening $N idle connections"
        tlsopt=()
        [ "$mode" = tls ] && tlsopt=(--tls)
        row=$("$PYTHON" "$BENCH_DIR/idle_conns.py" --port "$port" \
            "${tlsopt[@]}" -n "$N" --pid "$pid" "${children[@]}" \
            --label "$target $mode") || die "$target $mode: measurement failed"
        rows+=("$row")
        stop_pid "$pid"
    done
done

{
    echo "# bench/idle.sh results, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(machine_info)."
    echo "portcullis: $PC_DESC. $WORKERS worker(s) per server."
    echo "Each connection completed its handshake and one GET /small (100 bytes)"
    echo "first; RSS of the whole server (nginx: master + workers) before and"
    echo "after opening them, 2 s after the last one."
    echo
    echo "| server | connections | RSS before MiB | RSS after MiB | KiB per connection |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} >"$TMP/idle.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$TMP/idle.md" "$RESULTS"
cat "$TMP/idle.md"
note "table written to $RESULTS"
