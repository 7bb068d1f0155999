#!/usr/bin/env bash
# bench/sched.sh: how the scheduler treats each proxy under load. For each
# target (portcullis, nginx, HAProxy, optionally a second portcullis binary)
# wrk -t2 -c64 loads it for D seconds while /proc/PID/task/*/schedstat and
# /proc/PID/task/*/status of the proxy, the origin (nginx, 1 worker) and wrk
# are read before and after a window of the run. Per request wrk counted:
# CPU time on a core (run), time runnable but waiting for a core (rq-wait),
# times put on a core (slices), voluntary context switches (vcs: it slept)
# and involuntary ones (ivcs: it was preempted), plus the idle share of the
# cores (/proc/stat). A proxy that the readers it wakes keep preempting
# shows a high ivcs and rq-wait while cores sit idle: the machine is then
# bound by scheduling, not by anyone's CPU (docs/performance.md, "Send
# batching"). Everything on 127.0.0.1; every process started is stopped on
# exit.
#
# Environment: D (seconds of load per run, default 6; the window is the
# middle D-2 s), ROUNDS (default 2, targets interleaved), MODE (plain or tls,
# default tls), URL_PATH (/small or /16k, default /small), TARGETS (default
# "portcullis nginx haproxy"; "portcullis-base" needs PORTCULLIS_BASE, an
# executable, e.g. a wrapper setting PORTCULLIS_NO_URING=1), RESULTS
# (default bench/results/sched.md), PORTCULLIS, PORTCULLIS_BASE, NGINX,
# HAPROXY.
#
#   ./bench/sched.sh
#   MODE=plain TARGETS="portcullis portcullis-base" PORTCULLIS_BASE=/tmp/pc-nouring ./bench/sched.sh
set -euo pipefail

. "$(dirname "$0")/lib.sh"

D=${D:-6}
D=${D%s}
ROUNDS=${ROUNDS:-2}
MODE=${MODE:-tls}
URL_PATH=${URL_PATH:-/small}
TARGETS=${TARGETS:-"portcullis nginx haproxy"}
RESULTS=${RESULTS:-$BENCH_DIR/results/sched.md}
[[ "$D" =~ ^[0-9]+$ ]] && [ "$D" -ge 4 ] || die "D must be a whole number of seconds, at least 4"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive whole number"
case $MODE in plain | tls) ;; *) die "MODE must be plain or tls" ;; esac
case $URL_PATH in /small) BYTES=100 ;; /16k) BYTES=16384 ;; *) die "URL_PATH must be /small or /16k" ;; esac
need_tools "$NGINX" wrk openssl curl "$PYTHON"
need_portcullis
for t in $TARGETS; do
    case $t in
    portcullis | nginx) ;;
    haproxy) need_tools "$HAPROXY" ;;
    portcullis-base) [ -x "${PORTCULLIS_BASE:-}" ] || die "portcullis-base needs PORTCULLIS_BASE (an executable)" ;;
    *) die "unknown target $t" ;;
    esac
done

bench_init
snapshot_portcullis
make_cert "$TMP"
read -r UP UPT <<<"$(free_ports 2)"
mkdir -p "$TMP/origin"
write_upstream_conf "$TMP/origin" "$UP" "$UPT"
start_nginx origin "$TMP/origin"
ORIGIN_PID=$LAST_PID
wait_http "origin nginx" "$ORIGIN_PID" "http://127.0.0.1:$UP/small" 100 "$TMP/origin/error.log"
ORIGIN_WORKERS=$(cat "/proc/$ORIGIN_PID/task/$ORIGIN_PID/children")

declare -A URL PIDS
for t in $TARGETS; do
    read -r P PT PA <<<"$(free_ports 3)"
    mkdir -p "$TMP/$t"
    case $t in
    portcullis | portcullis-base)
        write_portcullis_conf "$TMP/$t" 1 "$P" "$PT" "$PA" "$UP"
        if [ "$t" = portcullis ]; then
            start_portcullis "$TMP/$t"
        else
            start_bg "$TMP/$t/stderr.log" "$PORTCULLIS_BASE" -c "$TMP/$t/portcullis.yaml"
        fi
        PIDS[$t]=$LAST_PID
        ;;
    nginx)
        write_nginx_proxy_conf "$TMP/$t" 1 "$P" "$PT" "$UP"
        start_nginx nginx "$TMP/$t"
        PIDS[$t]=$LAST_PID
        ;;
    haproxy)
        write_haproxy_conf "$TMP/$t" 1 "$P" "$PT" "$UP"
        start_haproxy haproxy "$TMP/$t"
        PIDS[$t]=$LAST_PID
        ;;
    esac
    URL[$t]="http://127.0.0.1:$P$URL_PATH"
    [ "$MODE" = tls ] && URL[$t]="https://127.0.0.1:$PT$URL_PATH"
    wait_http "$t" "${PIDS[$t]}" "${URL[$t]}" "$BYTES" "$TMP/$t/stderr.log"
    if [ "$t" = nginx ]; then
        PIDS[$t]=$(cat "/proc/${PIDS[$t]}/task/${PIDS[$t]}/children") # its worker
    fi
done

# snap PID...: "run_ns wait_ns slices vcs ivcs" summed over every thread.
snap() {
    local r=0 w=0 s=0 v=0 iv=0 p t a b c x y
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            read -r a b c <"$t/schedstat" || continue
            x=$(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status")
            y=$(awk '/^nonvoluntary_ctxt_switches/{print $2}' "$t/status")
            r=$((r + a)) w=$((w + b)) s=$((s + c)) v=$((v + x)) iv=$((iv + y))
        done
    done
    echo "$r $w $s $v $iv"
}
idle_ticks() { awk '/^cpu /{print $5 + $6}' /proc/stat; }

ROWS=$TMP/rows.txt
: >"$ROWS"
for round in $(seq "$ROUNDS"); do
    for t in $TARGETS; do
        note "round $round: $t $MODE $URL_PATH"
        wrk -t2 -c64 -d1s "${URL[$t]}" >/dev/null 2>&1 || die "wrk warm-up on ${URL[$t]} failed"
        start_bg "$TMP/wrk-$t.txt" wrk -t2 -c64 -d"${D}s" "${URL[$t]}"
        WRK=$LAST_PID
        sleep 1
        p1=$(snap ${PIDS[$t]}) o1=$(snap $ORIGIN_WORKERS) w1=$(snap $WRK)
        i1=$(idle_ticks) t1=$(date +%s.%N)
        sleep $((D - 2))
        p2=$(snap ${PIDS[$t]}) o2=$(snap $ORIGIN_WORKERS) w2=$(snap $WRK)
        i2=$(idle_ticks) t2=$(date +%s.%N)
        wait "$WRK" || die "wrk on ${URL[$t]} failed"
        forget_pid "$WRK"
        rps=$(awk '/Requests\/sec/{print $2}' "$TMP/wrk-$t.txt")
        echo "$t $round $rps $t1 $t2 $i1 $i2 proxy $p1 $p2 origin $o1 $o2 wrk $w1 $w2" >>"$ROWS"
    done
done

"$PYTHON" - "$ROWS" "$(getconf CLK_TCK)" "$(nproc)" >"$TMP/table.md" <<'EOF'
import statistics, sys
rows, tck, ncpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = {}
order = []
for line in open(rows):
    f = line.split()
    t, rps, t1, t2, i1, i2 = f[0], float(f[2]), float(f[3]), float(f[4]), int(f[5]), int(f[6])
    n = rps * (t2 - t1)
    if t not in data:
        data[t] = {"rps": [], "idle": [], "proc": {}}
        order.append(t)
    d = data[t]
    d["rps"].append(rps)
    d["idle"].append((i2 - i1) / tck / (t2 - t1) / ncpu)
    rest = f[7:]
    for k in range(3):
        name, a, b = rest[k * 11], rest[k * 11 + 1:k * 11 + 6], rest[k * 11 + 6:k * 11 + 11]
        delta = [int(y) - int(x) for x, y in zip(a, b)]
        per = [delta[0] / 1000 / n, delta[1] / 1000 / n, delta[2] / n, delta[3] / n, delta[4] / n]
        d["proc"].setdefault(name, []).append(per)
med = statistics.median
print("| target | req/s | idle | process | run µs/req | rq-wait µs/req | slices/req | vcs/req | ivcs/req |")
print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
for t in order:
    d = data[t]
    first = True
    for name in ("proxy", "origin", "wrk"):
        cols = list(zip(*d["proc"][name]))
        m = [med(c) for c in cols]
        lead = "| %s | %.0f | %.0f%% " % (t, med(d["rps"]), 100 * med(d["idle"])) if first else "| | | "
        print(lead + "| %s | %.1f | %.1f | %.3f | %.3f | %.3f |" % (name, *m))
        first = False
EOF

{
    echo "# bench/sched.sh results, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(machine_info); portcullis: $PC_DESC."
    echo "wrk -t2 -c64 on $MODE $URL_PATH, ${D} s per run, window the middle $((D - 2)) s, medians of $ROUNDS rounds; origin: nginx, 1 worker; one worker per proxy."
    echo "Per request wrk counted, summed over every thread of each process: run = CPU time on a core, rq-wait = runnable but waiting for a core, slices = times put on a core, vcs = voluntary context switches (slept), ivcs = involuntary (preempted)."
    echo
    cat "$TMP/table.md"
} >"$RESULTS"
cat "$RESULTS"
note "table written to $RESULTS"
