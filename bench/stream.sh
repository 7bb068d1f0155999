#!/usr/bin/env bash
# bench/stream.sh: memory of the gateway while 1 GiB goes up to a slow origin
# and 1 GiB comes down to a slow client (bench/stream_rss.py), portcullis and
# nginx as the equivalent streaming proxy. A gateway that buffers bodies
# shows it as an RSS increase near the body size; one that streams stays
# flat. Each gateway is started fresh; everything on 127.0.0.1, every
# process stopped on exit.
#
# Environment: SIZE (each way, default 1g), DURATION (seconds the slow
# reader takes, default 30), TARGETS (default "portcullis nginx"), MODES
# (default "plain"; "plain tls" adds TLS on the client side), CHUNKED=1
# (upload with Transfer-Encoding: chunked), MAX_INCREASE_MIB (fail above
# it; default 0, report only), RESULTS (default bench/results/stream.md).
set -euo pipefail

. "$(dirname "$0")/lib.sh"

SIZE=${SIZE:-1g}
DURATION=${DURATION:-30}
TARGETS=${TARGETS:-"portcullis nginx"}
MODES=${MODES:-plain}
CHUNKED=${CHUNKED:-0}
MAX_INCREASE_MIB=${MAX_INCREASE_MIB:-0}
RESULTS=${RESULTS:-$BENCH_DIR/results/stream.md}

need_tools "$NGINX" openssl curl "$PYTHON"
case " $TARGETS " in *" portcullis "*) need_portcullis ;; esac

bench_init
case " $TARGETS " in *" portcullis "*) snapshot_portcullis ;; esac
make_cert "$TMP"
read -r UP PX PXT PXA <<<"$(free_ports 4)"

start_bg "$TMP/origin.log" "$PYTHON" "$BENCH_DIR/stream_rss.py" serve --port "$UP"
ORIGIN_PID=$LAST_PID
wait_http "python origin" "$ORIGIN_PID" \
    "http://127.0.0.1:$UP/download?bytes=100" 100 "$TMP/origin.log"

# The origin answers an upload only once it has read it all (DURATION s):
# both gateways get a read timeout well above that, and a 2 GiB body limit.
PC_LIMITS="  max_body_bytes: 2g"
PC_UPSTREAM="    read_timeout: $((DURATION * 4))s"
NX_STREAMING="            client_max_body_size 2g;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout $((DURATION * 4))s;"

runopts=(--size "$SIZE" --seconds "$DURATION")
[ "$CHUNKED" = 1 ] && runopts+=(--chunked)
[ "$MAX_INCREASE_MIB" != 0 ] && runopts+=(--max-increase-mib "$MAX_INCREASE_MIB")

rows=()
notes=()
status=0
for target in $TARGETS; do
    for mode in $MODES; do
        dir="$TMP/$target-$mode"
        mkdir -p "$dir"
        port=$PX scheme=http tlsopt=()
        if [ "$mode" = tls ]; then
            port=$PXT scheme=https tlsopt=(--tls)
        fi
        case $target in
        portcullis)
            write_portcullis_conf "$dir" 1 "$PX" "$PXT" "$PXA" "$UP" \
                "$PC_LIMITS" "$PC_UPSTREAM"
            start_portcullis "$dir"
            log=$dir/stderr.log
            children=()
            ;;
        nginx)
            write_nginx_proxy_conf "$dir" 1 "$PX" "$PXT" "$UP" "$NX_STREAMING"
            start_nginx "nginx proxy" "$dir"
            log=$dir/error.log
            children=(--children)
            ;;
        *) die "unknown target '$target'" ;;
        esac
        pid=$LAST_PID
        wait_http "$target" "$pid" "$scheme://127.0.0.1:$port/download?bytes=100" \
            100 "$log"
        note "$target $mode: $SIZE up and down, slow side ~${DURATION} s each"
        seen=$(wc -l <"$TMP/origin.log")
        ok=1
        out=$("$PYTHON" "$BENCH_DIR/stream_rss.py" run --port "$port" \
            "${tlsopt[@]}" --pid "$pid" "${children[@]}" "${runopts[@]}" \
            --label "$target $mode") || ok=0
        while IFS= read -r line; do
            case $line in
            "|"*) rows+=("$line") ;;
            "- "*) notes+=("$line") ;;
            esac
        done <<<"$out"
        if [ "$ok" = 0 ]; then
            status=1
            # what the origin saw of a failed transfer (bytes received)
            while IFS= read -r line; do
                notes+=("- $target $mode, origin saw: ${line#stream_rss: origin connection: }")
            done < <(tail -n +$((seen + 1)) "$TMP/origin.log")
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2
            notes+=("- $target $mode: the gateway exited during the transfers")
            status=1
        fi
        stop_pid "$pid"
    done
done

{
    echo "# bench/stream.sh results, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(machine_info)."
    echo "portcullis: $PC_DESC. 1 worker per gateway; nginx with"
    echo "proxy_buffering and proxy_request_buffering off; RSS (nginx: master +"
    echo "workers) sampled every 100 ms. Upload: the origin reads it in about"
    echo "$DURATION s; download: the client reads it in about $DURATION s.$(
        [ "$CHUNKED" = 1 ] && echo " Upload chunked.")"
    echo
    echo "| gateway | direction | size | bytes | seconds | RSS baseline MiB | RSS max MiB | increase MiB |"
    echo "|---|---|---:|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    if [ "${#notes[@]}" -gt 0 ]; then
        echo
        echo "Failures:"
        echo
        printf '%s\n' "${notes[@]}"
    fi
} >"$TMP/stream.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$TMP/stream.md" "$RESULTS"
cat "$TMP/stream.md"
note "table written to $RESULTS"
[ "$status" = 0 ] || die "a transfer failed or a gateway died (see above)"
