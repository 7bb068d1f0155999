#!/usr/bin/env bash
# bench/soak.sh: the soak of tests/e2e/test_soak.py, as long as you like.
# One gateway (2 workers, plain + TLS listeners), a recording upstream and a
# flaky one; a well-behaved client measures errors, p50/p99 and the gateway's
# RSS through a baseline phase and an attack phase in which hostile clients
# loop (small TLS records both ways, pipeliners that never read, Upgrade,
# CONNECT, CRLF floods, slowloris, slow readers, resets mid-request). The
# driver is bench/soak.py (its docstring has the details). Everything on
# 127.0.0.1; every process is stopped on exit.
#
# Environment: SOAK_SECONDS (baseline + attack, default 600; the baseline is
# a quarter of it, at most 60 s), PORTCULLIS (default build/portcullis; an
# ASan build is judged without the latency and RSS bounds when
# SOAK_NO_BOUNDS=1), WORKERS (default 2), RESULTS (default
# bench/results/soak.md), BENCH_KEEP=1 keeps the scratch directory (gateway
# stderr, upstream logs, soak-result.json), SOAK_ACCESS_LOG=1 writes the
# gateway's access log there too (large: pipeliners).
#
# Exit status 0 when the soak passed (zero errors for the well-behaved
# client, p99 under attack below max(10 x baseline p99, 200 ms), RSS growth
# below 64 MiB, no unexpected hostile outcome, clean exit on SIGTERM), 1
# otherwise; the report is written either way.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
WORKERS=${WORKERS:-2}
RESULTS=${RESULTS:-$BENCH_DIR/results/soak.md}
SOAK_NO_BOUNDS=${SOAK_NO_BOUNDS:-0}

need_tools openssl "$PYTHON"
need_portcullis
bench_init
SRC_BIN=$PORTCULLIS
snapshot_portcullis
note "soak: $SOAK_SECONDS s on $PC_DESC (scratch $TMP)"

opts=(--seconds "$SOAK_SECONDS" --bin "$PORTCULLIS" --workers "$WORKERS"
    --workdir "$TMP/soak" --markdown "$TMP/soak.md" --bin-desc "$PC_DESC")
if [ "$SOAK_NO_BOUNDS" = 1 ]; then
    opts+=(--no-latency-check --no-rss-check)
fi
cmd="SOAK_SECONDS=$SOAK_SECONDS PORTCULLIS=$SRC_BIN WORKERS=$WORKERS bench/soak.sh"
status=0
"$PYTHON" "$BENCH_DIR/soak.py" run "${opts[@]}" --command "$cmd" || status=$?

if [ -f "$TMP/soak.md" ]; then
    mkdir -p "$(dirname "$RESULTS")"
    cp "$TMP/soak.md" "$RESULTS"
    cat "$TMP/soak.md"
    note "report written to $RESULTS"
else
    die "the soak driver wrote no report (exit $status)"
fi
[ "$status" = 0 ] || die "the soak failed (see the report above)"
