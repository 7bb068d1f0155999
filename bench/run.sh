#!/usr/bin/env bash
# bench/run.sh: throughput, latency and CPU cost per request of portcullis
# against nginx and HAProxy as the same keep-alive reverse proxy, and
# against the origin reached directly (`make bench`). One nginx is the
# origin (1 worker, static files /small and /16k); portcullis and the peer
# proxies forward to it with the same worker count. wrk measures every
# target the same way, runs interleaved so that drift on the shared machine
# hits all of them alike; the table gives medians. Everything listens on
# 127.0.0.1 and every process started is stopped on exit. It must never
# measure a server that did not answer a check request.
#
# Targets (TARGETS, a word list; default "direct portcullis nginx", plus
# "haproxy" when haproxy is installed):
#   direct                the origin itself (the ceiling)
#   portcullis            build/portcullis (a private copy taken at start)
#   nginx                 nginx proxy, worker_processes = workers
#   haproxy               HAProxy, nbthread = workers, http-reuse always
#   portcullis-log        portcullis with log.access to a file in the scratch
#                         directory (the others log nothing)
#   portcullis-reload     portcullis receiving SIGHUP every RELOAD_EVERY s
#                         during each measured run; the reloads done are
#                         counted from its stderr, wrk errors must be 0
#   portcullis-base       another portcullis binary (PORTCULLIS_BASE, e.g. the
#                         build before a change), same config: the table
#                         gives portcullis / portcullis-base side by side
#   portcullis-nometrics  portcullis built with `make METRICS=0` (metrics
#                         registry compiled out) from a copy of the working
#                         tree; skipped with a note when the Makefile has no
#                         METRICS variable
# The variants are opt-in; the table shows each against plain portcullis.
# For every target but direct, the CPU time of the proxy (utime + stime of
# all its threads, nginx: master and workers) is read from /proc before and
# after each run and divided by the requests wrk counted.
# The rest of the machine is accounted for too (a third table): the
# origin's CPU, wrk's own CPU (time(1)) per request and the idle share of
# all cores during each run, which tells a row bound by the proxy's CPU
# from one bound by scheduling.
#
# Environment: D (wrk duration per run, default 10s), RUNS (default 3),
# WARMUP (default 2s), WORKERS (default "1 2"), PATHS (default "/small /16k"),
# MODES (default "plain tls"), TARGETS (see above), THREADS (wrk threads, 2),
# CONNS (wrk connections, 64), RESULTS (output file, default
# bench/results/latest.md), BENCH_KEEP=1 keeps the raw files, RELOAD_EVERY
# (seconds between SIGHUPs, default 1), NOMETRICS_BASE (with
# portcullis-nometrics: "build", the default, builds plain portcullis from
# the same copy with METRICS=1 so that the pair differs by the flag only;
# "binary" keeps build/portcullis as plain portcullis), MAKE_JOBS (default 2),
# PORTCULLIS, PORTCULLIS_BASE, NGINX, HAPROXY (binaries).
#
# Smoke test (seconds, not figures):
#   RUNS=1 D=2s WARMUP=1s WORKERS=1 PATHS=/small MODES=plain \
#   TARGETS="portcullis nginx haproxy portcullis-log portcullis-reload" \
#   RESULTS=/tmp/bench-smoke.md ./bench/run.sh
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-"1 2"}
PATHS=${PATHS:-"/small /16k"}
MODES=${MODES:-"plain tls"}
if [ -z "${TARGETS:-}" ]; then
    TARGETS="direct portcullis nginx"
    if command -v "$HAPROXY" >/dev/null 2>&1; then
        TARGETS="$TARGETS haproxy"
    else
        note "haproxy not installed: measuring without it (scripts/install-deps.sh installs it)"
    fi
fi
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
RESULTS=${RESULTS:-$BENCH_DIR/results/latest.md}
RELOAD_EVERY=${RELOAD_EVERY:-1}
NOMETRICS_BASE=${NOMETRICS_BASE:-build}
MAKE_JOBS=${MAKE_JOBS:-2}
CLK_TCK=$(getconf CLK_TCK)
RELOAD_LINE='configuration reloaded (generation'

has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

for t in $TARGETS; do
    case $t in
    direct | portcullis | nginx | haproxy | portcullis-log | portcullis-reload | \
        portcullis-nometrics | portcullis-base) ;;
    *) die "unknown target '$t' (direct portcullis nginx haproxy portcullis-log" \
        "portcullis-reload portcullis-nometrics portcullis-base)" ;;
    esac
done
case $NOMETRICS_BASE in build | binary) ;; *)
    die "NOMETRICS_BASE must be 'build' or 'binary'" ;;
esac
TIME=${TIME:-/usr/bin/time}
need_tools "$NGINX" wrk openssl curl ps getconf "$PYTHON" "$TIME"
has_target haproxy && need_tools "$HAPROXY"
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive integer"

bench_init
mkdir -p "$TMP/raw" "$TMP/origin"
make_cert "$TMP"
: >"$TMP/index.tsv"
# Lines for the table's header: how each target was configured or skipped.
HEADER_NOTES=()

# portcullis-nometrics: both binaries come from one copy of the working
# tree (src/, include/, Makefile, VERSION), so that a rebuild by someone
# else during the run changes neither. A Makefile without METRICS would
# build the same binary twice: the target is skipped, loudly.
PC_NOMETRICS=""
PC_BUILT=0
build_nometrics() {
    local src=$TMP/src m
    if ! grep -Eq '^[[:space:]]*METRICS[[:space:]]*[?:]?=' "$ROOT/Makefile"; then
        note "skipping portcullis-nometrics: $ROOT/Makefile has no METRICS" \
            "variable yet ('make METRICS=0' would not compile metrics out)"
        HEADER_NOTES+=("portcullis-nometrics: **skipped**, the Makefile has no METRICS variable.")
        TARGETS=$(echo " $TARGETS " | sed 's/ portcullis-nometrics / /; s/^ *//; s/ *$//')
        return 0
    fi
    mkdir -p "$src"
    cp -a "$ROOT/Makefile" "$ROOT/src" "$ROOT/include" "$src/" ||
        die "cannot copy the sources to $src"
    [ -f "$ROOT/VERSION" ] && cp "$ROOT/VERSION" "$src/"
    local flavours=0
    [ "$NOMETRICS_BASE" = build ] && flavours="1 0"
    for m in $flavours; do
        note "building portcullis with METRICS=$m in $src (make -j$MAKE_JOBS)"
        if ! make -C "$src" -j"$MAKE_JOBS" METRICS="$m" build/portcullis \
            >"$src/build-$m.log" 2>&1; then
            tail -n 30 "$src/build-$m.log" >&2
            die "make METRICS=$m build/portcullis failed in a copy of $ROOT" \
                "(see above: the working tree may be mid-edit)"
        fi
        cp "$src/build/portcullis" "$TMP/portcullis-metrics$m.bin"
    done
    PC_NOMETRICS=$TMP/portcullis-metrics0.bin
    local when
    when=$(date -u +%Y-%m-%dT%H:%MZ)
    if [ "$NOMETRICS_BASE" = build ]; then
        PORTCULLIS=$TMP/portcullis-metrics1.bin
        PC_BUILT=1
        # shellcheck disable=SC2034 # read by the report header below
        PC_DESC="$("$PORTCULLIS" --version 2>&1 | sed -n 1p), built at $when from a copy of the working tree with METRICS=1"
        HEADER_NOTES+=("portcullis-nometrics: the same copy of the working tree built with \`make METRICS=0\`.")
    else
        HEADER_NOTES+=("portcullis-nometrics: built at $when with \`make METRICS=0\` from a copy of the working tree; plain portcullis is build/portcullis (not necessarily the same sources).")
    fi
}
has_target portcullis-nometrics && build_nometrics
if [[ " $TARGETS " =~ \ portcullis(-log|-reload)?\  ]] && [ "$PC_BUILT" = 0 ]; then
    need_portcullis
    snapshot_portcullis
fi
# portcullis-base: a private copy too, taken now.
PC_BASE=""
if has_target portcullis-base; then
    [ -n "${PORTCULLIS_BASE:-}" ] && [ -x "$PORTCULLIS_BASE" ] ||
        die "portcullis-base needs PORTCULLIS_BASE=path of an executable portcullis"
    PC_BASE=$TMP/portcullis-base.bin
    cp "$PORTCULLIS_BASE" "$PC_BASE" || die "cannot copy $PORTCULLIS_BASE"
    HEADER_NOTES+=("portcullis-base: $PORTCULLIS_BASE, binary of $(date -u -r "$PORTCULLIS_BASE" +%Y-%m-%dT%H:%MZ), same config as portcullis.")
fi
if [[ " $TARGETS " == *" portcullis-"* ]] && ! has_target portcullis; then
    note "variants without plain portcullis in TARGETS: no variant ratios"
fi

# Ports: the origin's two, then plain, TLS and admin for each proxy.
declare -A PORT TPORT APORT PID LOG KIDS DIR
nproxies=0
for t in $TARGETS; do [ "$t" = direct ] || nproxies=$((nproxies + 1)); done
# shellcheck disable=SC2207 # a list of numbers
ports=($(free_ports $((2 + 3 * nproxies))))
UP=${ports[0]}
UPT=${ports[1]}
PORT[direct]=$UP
TPORT[direct]=$UPT
i=2
for t in $TARGETS; do
    [ "$t" = direct ] && continue
    PORT[$t]=${ports[$i]}
    TPORT[$t]=${ports[$((i + 1))]}
    APORT[$t]=${ports[$((i + 2))]}
    i=$((i + 3))
done

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

# start_target TARGET WORKERS: a fresh proxy for the target, checked on
# both listeners.
start_target() {
    local t=$1 w=$2 dir access=off level=warn bin=$PORTCULLIS
    [ "$t" = direct ] && return 0
    dir=$TMP/$t-w$w
    mkdir -p "$dir"
    DIR[$t]=$dir
    case $t in
    portcullis*)
        [ "$t" = portcullis-log ] && access=$dir/access.log
        # the reload line is logged at level info
        [ "$t" = portcullis-reload ] && level=info
        [ "$t" = portcullis-nometrics ] && bin=$PC_NOMETRICS
        [ "$t" = portcullis-base ] && bin=$PC_BASE
        write_portcullis_conf "$dir" "$w" "${PORT[$t]}" "${TPORT[$t]}" \
            "${APORT[$t]}" "$UP" "" "" "$access" "$level"
        start_bg "$dir/stderr.log" "$bin" -c "$dir/portcullis.yaml"
        LOG[$t]=$dir/stderr.log
        KIDS[$t]=0
        ;;
    nginx)
        write_nginx_proxy_conf "$dir" "$w" "${PORT[$t]}" "${TPORT[$t]}" "$UP"
        start_nginx "nginx proxy" "$dir"
        LOG[$t]=$dir/error.log
        KIDS[$t]=1
        ;;
    haproxy)
        write_haproxy_conf "$dir" "$w" "${PORT[$t]}" "${TPORT[$t]}" "$UP"
        start_haproxy haproxy "$dir"
        LOG[$t]=$dir/stderr.log
        KIDS[$t]=0
        ;;
    esac
    PID[$t]=$LAST_PID
    wait_http "$t" "${PID[$t]}" "http://127.0.0.1:${PORT[$t]}/small" 100 \
        "${LOG[$t]}"
    wait_http "$t (TLS)" "${PID[$t]}" "https://127.0.0.1:${TPORT[$t]}/small" \
        100 "${LOG[$t]}"
}

start_proxies() {
    local t
    for t in $TARGETS; do
        start_target "$t" "$1"
    done
}

stop_proxies() {
    local t
    for t in $TARGETS; do
        [ -n "${PID[$t]:-}" ] && stop_pid "${PID[$t]}"
        PID[$t]=""
    done
}

url_of() {
    local target=$1 mode=$2 path=$3
    if [ "$mode" = tls ]; then
        echo "https://127.0.0.1:${TPORT[$target]}$path"
    else
        echo "http://127.0.0.1:${PORT[$target]}$path"
    fi
}

# A server that died under load would turn every later row into wrk
# connection errors: stop at once and say which one.
check_alive() {
    local t
    alive_or_die origin "$ORIGIN_PID" "$TMP/origin/error.log"
    for t in $TARGETS; do
        [ -z "${PID[$t]:-}" ] && continue
        alive_or_die "$t" "${PID[$t]}" "${LOG[$t]}"
    done
}

# running PID: true while PID runs (a finished, not yet waited-for child is
# a zombie, which kill -0 still finds).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

reload_count() {
    grep -c "$RELOAD_LINE" "$1" || true
}

# wrk_with_reloads URL RAW: wrk in the background while the foreground
# sends SIGHUP to portcullis-reload every RELOAD_EVERY seconds; leaves
# "reloads=DONE/SENT generation=N" in RUN_INFO. No reload at all: die.
wrk_with_reloads() {
    local url=$1 raw=$2 pid=${PID[portcullis-reload]} log=${LOG[portcullis-reload]}
    local wpid before sent=0 done_=0 gen _
    before=$(reload_count "$log")
    wrk -t"$THREADS" -c"$CONNS" -d"$D" --latency "$url" >"$raw" 2>&1 &
    wpid=$!
    BENCH_PIDS="$wpid $BENCH_PIDS"
    while running "$wpid"; do
        sleep "$RELOAD_EVERY"
        running "$wpid" || break
        kill -HUP "$pid" 2>/dev/null ||
            die "portcullis-reload (pid $pid) is gone: cannot send SIGHUP"
        sent=$((sent + 1))
    done
    wait "$wpid" || note "wrk exited non-zero on $url (see the table notes)"
    forget_pid "$wpid"
    # the last reload runs on portcullis's main thread: give it 2 s
    for _ in $(seq 20); do
        done_=$(($(reload_count "$log") - before))
        [ "$done_" -ge "$sent" ] && break
        sleep 0.1
    done
    gen=$(grep -o "$RELOAD_LINE [0-9]*" "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    if [ "$done_" -lt 1 ]; then
        tail -n 20 "$log" >&2
        die "portcullis-reload: $sent SIGHUP sent during the run, no" \
            "'$RELOAD_LINE' line in $log (D=$D shorter than RELOAD_EVERY?)"
    fi
    RUN_INFO="reloads=$done_/$sent generation=${gen:-?}"
}

# tick_secs BEFORE AFTER: the CPU seconds between two cpu_ticks readings.
tick_secs() {
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }'
}

# run_one TARGET URL RAW: one measured wrk run; leaves the CPU seconds the
# proxy used (or -) in RUN_CPU and extra facts in RUN_INFO.
run_one() {
    local t=$1 url=$2 raw=$3 pids=() after=() t0 t1 lines _
    RUN_CPU=-
    RUN_INFO=""
    RUN_SYS=""
    if [ "$t" != direct ]; then
        # shellcheck disable=SC2207 # a list of numbers
        pids=($(cpu_pids "${PID[$t]}" "${KIDS[$t]}"))
        t0=$(cpu_ticks "${pids[@]}") ||
            die "$t: cannot read its CPU time before the run"
    fi
    [ "$t" = portcullis-log ] && : >"${DIR[$t]}/access.log"
    # the rest of the system, for where a run's two cores went: the
    # origin's CPU, wrk's own (from time(1)), and the machine's idle ticks
    local o0 o1 s0 s1 wcpu=""
    o0=$(cpu_ticks $(cpu_pids "$ORIGIN_PID" 1)) ||
        die "origin: cannot read its CPU time before the run"
    s0=$(sys_ticks)
    if [ "$t" = portcullis-reload ]; then
        wrk_with_reloads "$url" "$raw"
    else
        "$TIME" -f 'wrk_cpu_s=%U %S' -o "$raw.time" \
            wrk -t"$THREADS" -c"$CONNS" -d"$D" --latency "$url" >"$raw" 2>&1 ||
            note "wrk exited non-zero on $url (see the table notes)"
        wcpu=$(awk '/^wrk_cpu_s=/ { sub("wrk_cpu_s=", ""); printf "%.3f", $1 + $2 }' "$raw.time")
    fi
    s1=$(sys_ticks)
    o1=$(cpu_ticks $(cpu_pids "$ORIGIN_PID" 1)) ||
        die "origin: cannot read its CPU time after the run"
    RUN_SYS="origin_s=$(tick_secs "$o0" "$o1")"
    [ -n "$wcpu" ] && RUN_SYS="$RUN_SYS wrk_s=$wcpu"
    RUN_SYS="$RUN_SYS $(awk -v a="$s0" -v b="$s1" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        printf "idle_share=%.3f", (y[2] - x[2]) / (y[1] - x[1]) }')"
    [ "$t" = direct ] && return 0
    alive_or_die "$t" "${PID[$t]}" "${LOG[$t]}"
    # shellcheck disable=SC2207
    after=($(cpu_pids "${PID[$t]}" "${KIDS[$t]}"))
    [ "${pids[*]}" = "${after[*]}" ] ||
        die "$t: its processes changed during the run (${pids[*]} ->" \
            "${after[*]}: a worker restarted?); its CPU time would be wrong"
    t1=$(cpu_ticks "${pids[@]}") ||
        die "$t: cannot read its CPU time after the run"
    RUN_CPU=$(tick_secs "$t0" "$t1")
    if [ "$t" = portcullis-log ]; then
        # the log thread writes from a ring: let it drain
        lines=0
        for _ in $(seq 10); do
            sleep 0.2
            [ "$(wc -l <"${DIR[$t]}/access.log")" = "$lines" ] && break
            lines=$(wc -l <"${DIR[$t]}/access.log")
        done
        RUN_INFO="access_log_lines=$lines"
        : >"${DIR[$t]}/access.log"
    fi
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
            run_one "$target" "$url" "$raw"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$target" "$r" \
                "$raw" "$RUN_CPU" "$RUN_INFO $RUN_SYS" >>"$TMP/index.tsv"
            check_alive
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

# metrics_series TARGET: number of portcullis_* samples on its /metrics,
# which shows that METRICS=0 took effect.
metrics_series() {
    curl -s --max-time 5 "http://127.0.0.1:${APORT[$1]}/metrics" |
        grep -c '^portcullis_' || true
}

started=$(date -u +%Y-%m-%dT%H:%MZ)
first=1
for w in $WORKERS; do
    start_proxies "$w"
    if [ "$first" = 1 ] && has_target portcullis-nometrics && has_target portcullis; then
        HEADER_NOTES+=("/metrics samples: portcullis $(metrics_series portcullis), portcullis-nometrics $(metrics_series portcullis-nometrics).")
    fi
    first=0
    for mode in $MODES; do
        for path in $PATHS; do
            measure "$w" "$mode" "$path"
        done
    done
    stop_proxies
done

has_target haproxy && HEADER_NOTES+=("haproxy: $("$HAPROXY" -v 2>&1 | awk 'NR == 1 {print $3}'), nbthread = workers, http-reuse always, no log.")
has_target portcullis-log && HEADER_NOTES+=("portcullis-log: log.access to a file in the scratch directory ($(df -P "$TMP" | awk 'NR == 2 {print $1}')), truncated before each run.")
has_target portcullis-reload && HEADER_NOTES+=("portcullis-reload: SIGHUP every ${RELOAD_EVERY} s during each measured run (same file reloaded), log.level info.")

sorted_index
mkdir -p "$(dirname "$RESULTS")"
status=0
header=("# bench/run.sh results, $started" ""
    "Machine: $(machine_info); portcullis: $PC_DESC."
    "wrk -t$THREADS -c$CONNS -d$D --latency, warm-up $WARMUP, median of $RUNS runs;"
    "origin: nginx, 1 worker; wN = N workers for portcullis and the proxies.")
if [ "${#HEADER_NOTES[@]}" -gt 0 ]; then
    header+=("")
    for n in "${HEADER_NOTES[@]}"; do header+=("- $n"); done
fi
"$PYTHON" "$BENCH_DIR/report.py" "$TMP/index.sorted.tsv" "${header[@]}" \
    >"$TMP/table.md" || status=$?
cp "$TMP/table.md" "$RESULTS"
cat "$TMP/table.md"
note "table written to $RESULTS"
exit "$status"
