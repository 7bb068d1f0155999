#!/usr/bin/env bash
# bench/profile.sh: where portcullis spends its CPU under load. One
# portcullis (a private copy of build/portcullis, 1 worker by default,
# log.access off, the run.sh config) proxies to the nginx origin of run.sh;
# wrk loads it while `perf record -g -p PID` samples all of its threads for
# D seconds; the flat profile (`perf report --no-children --sort symbol`,
# top TOP symbols by self time) goes to RESULTS with a header saying what
# was measured. Everything on 127.0.0.1; every process it started is
# stopped on exit.
#
# perf (Debian package linux-perf) must be able to sample: the script
# probes the hardware "cycles" event and falls back to the timer-based
# "cpu-clock" software event when the machine has no usable PMU (usual in
# VMs: then the header says so); if perf cannot record at all (e.g.
# kernel.perf_event_paranoid too high for the user, no perf_event_open in
# the sandbox) or records no sample, the script says why and exits 1.
#
# With cpu-clock in a VM, samples taken while the kernel had interrupts
# off are charged to the instruction that turns them back on (here
# pvm_irq_enable): read kernel symbols as "time in the kernel", not as that
# function's cost.
#
# Call graphs: the release build has no frame pointers, so -g (frame
# pointers) stacks are shallow; the flat self-time profile is not affected.
# CALLGRAPH=dwarf gives real stacks at a much higher perf overhead.
#
# Environment: D (seconds sampled, default 10; wrk runs 2 s longer on each
# side), WORKERS (default 1), MODE (plain or tls, default plain), URL_PATH
# (/small or /16k, default /small), THREADS/CONNS (wrk, default 2/64),
# FREQ (samples per second, default 999), CALLGRAPH (fp, dwarf or none,
# default fp), EVENT (force a perf event, e.g. cpu-clock), TOP (default
# 30), RESULTS (default bench/results/profile.txt), BENCH_KEEP=1 (keeps
# the scratch directory with perf.data and the binary: then
# `perf report -i DIR/perf.data` works afterwards), PORTCULLIS, NGINX.
#
#   ./bench/profile.sh
#   D=20 MODE=tls ./bench/profile.sh
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-10}
D=${D%s}
WORKERS=${WORKERS:-1}
MODE=${MODE:-plain}
URL_PATH=${URL_PATH:-/small}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
FREQ=${FREQ:-999}
CALLGRAPH=${CALLGRAPH:-fp}
EVENT=${EVENT:-}
TOP=${TOP:-30}
RESULTS=${RESULTS:-$BENCH_DIR/results/profile.txt}

[[ "$D" =~ ^[1-9][0-9]*$ ]] || die "D must be a whole number of seconds"
case $MODE in plain | tls) ;; *) die "MODE must be plain or tls" ;; esac
case $URL_PATH in
/small) BYTES=100 ;;
/16k) BYTES=16384 ;;
*) die "URL_PATH must be /small or /16k" ;;
esac
case $CALLGRAPH in
fp) CG=(-g) ;;
dwarf) CG=(--call-graph dwarf) ;;
none) CG=() ;;
*) die "CALLGRAPH must be fp, dwarf or none" ;;
esac
command -v perf >/dev/null 2>&1 ||
    die "perf not found: install the Debian package linux-perf (scripts/install-deps.sh)"
need_tools "$NGINX" wrk openssl curl "$PYTHON"
need_portcullis

bench_init
snapshot_portcullis
make_cert "$TMP"
mkdir -p "$TMP/origin" "$TMP/pc"
read -r UP UPT PX PXT PXA <<<"$(free_ports 5)"

# The event: hardware cycles when the PMU counts them, else cpu-clock.
EVENT_NOTE=""
if [ -z "$EVENT" ]; then
    if perf stat -x, -e cycles -- true 2>"$TMP/perf-stat.log" >/dev/null &&
        ! grep -q '<not supported>\|<not counted>' "$TMP/perf-stat.log"; then
        EVENT=cycles
    else
        EVENT=cpu-clock
        EVENT_NOTE=" (no hardware cycles counter here, e.g. in a VM: timer-based sampling)"
        note "perf: 'cycles' not supported here; sampling with cpu-clock$EVENT_NOTE"
    fi
fi

write_upstream_conf "$TMP/origin" "$UP" "$UPT"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http "origin nginx" "$ORIGIN_PID" "http://127.0.0.1:$UP/small" 100 \
    "$TMP/origin/error.log"

write_portcullis_conf "$TMP/pc" "$WORKERS" "$PX" "$PXT" "$PXA" "$UP"
start_portcullis "$TMP/pc"
PC_PID=$LAST_PID
URL="http://127.0.0.1:$PX$URL_PATH"
[ "$MODE" = tls ] && URL="https://127.0.0.1:$PXT$URL_PATH"
wait_http portcullis "$PC_PID" "$URL" "$BYTES" "$TMP/pc/stderr.log"

# Can perf attach to it at all? (a short record of the idle process)
if ! perf record -e "$EVENT" -o "$TMP/probe.data" -p "$PC_PID" -- sleep 0.3 \
    >"$TMP/probe.log" 2>&1; then
    cat "$TMP/probe.log" >&2
    die "perf cannot record portcullis here (event $EVENT; see above;" \
        "kernel.perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown))"
fi

note "warm-up 2 s on $URL"
wrk -t"$THREADS" -c"$CONNS" -d2s "$URL" >/dev/null 2>&1 ||
    die "wrk warm-up on $URL failed"

# wrk runs 2 s longer on each side, so that perf sees load only.
start_bg "$TMP/wrk.txt" wrk -t"$THREADS" -c"$CONNS" -d"$((D + 4))s" --latency "$URL"
WRK_PID=$LAST_PID
sleep 2
note "perf record -e $EVENT -F $FREQ ${CG[*]} -p $PC_PID for $D s"
if ! perf record -e "$EVENT" -F "$FREQ" "${CG[@]}" -o "$TMP/perf.data" \
    -p "$PC_PID" -- sleep "$D" >"$TMP/perf-record.log" 2>&1; then
    cat "$TMP/perf-record.log" >&2
    die "perf record failed (see above)"
fi
wait "$WRK_PID" || die "wrk failed on $URL: $(cat "$TMP/wrk.txt")"
forget_pid "$WRK_PID"
alive_or_die portcullis "$PC_PID" "$TMP/pc/stderr.log"

# The binary must still be at its path for perf report to name symbols.
perf report -i "$TMP/perf.data" --stdio --no-children --sort symbol -g none \
    >"$TMP/report.txt" 2>"$TMP/report.err" || {
    cat "$TMP/report.err" >&2
    die "perf report failed (see above)"
}
samples=$(sed -n 's/^# Samples: \([0-9.]*[KM]*\).*/\1/p' "$TMP/report.txt" | sed -n 1p)
if [ -z "$samples" ] || [ "$samples" = 0 ] ||
    ! grep -q '%' <(grep -v '^#' "$TMP/report.txt"); then
    cat "$TMP/perf-record.log" "$TMP/report.err" >&2
    die "perf recorded no sample of portcullis (event $EVENT): no profile"
fi

# perf itself falls back from cycles to cpu-clock: name what was sampled
got_event=$(sed -n "s/^# Samples: .* of event '\(.*\)'.*/\1/p" "$TMP/report.txt" | sed -n 1p)
if [ -n "$got_event" ] && [ "${got_event%%:*}" != "$EVENT" ]; then
    EVENT_NOTE=" (asked for $EVENT, perf sampled $got_event: no usable hardware counter)"
    EVENT=${got_event%%:*}
fi
rps=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$TMP/wrk.txt")
errors=$(grep -E 'Non-2xx|Socket errors' "$TMP/wrk.txt" || true)
{
    echo "bench/profile.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "Machine: $(machine_info)"
    echo "portcullis: $PC_DESC; $WORKERS worker(s), log.access off, $MODE, $URL_PATH"
    echo "Load: wrk -t$THREADS -c$CONNS on $URL, $rps req/s over $((D + 4)) s${errors:+; wrk reported: $errors}"
    echo "perf record -e $EVENT$EVENT_NOTE -F $FREQ ${CG[*]} -p PID, $D s, $samples samples"
    echo "perf report --no-children --sort symbol (self time, all threads), top $TOP:"
    echo
    # awk reads to the end: head would SIGPIPE the pipeline under pipefail
    # (and without perf's empty IPC columns)
    awk -v top="$TOP" 'NF && !/^#/ && n++ < top {
        sub(/[ \t]+-[ \t]+-[ \t]*$/, ""); print }' "$TMP/report.txt"
} >"$TMP/profile.txt"
mkdir -p "$(dirname "$RESULTS")"
cp "$TMP/profile.txt" "$RESULTS"
[ "${BENCH_KEEP:-0}" = 1 ] && cp "$TMP/report.txt" "$TMP/report-full.txt"
cat "$TMP/profile.txt"
note "profile written to $RESULTS"
