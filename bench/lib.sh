# bench/lib.sh: helpers shared by run.sh, profile.sh, idle.sh, stream.sh
# shellcheck shell=bash
# and security.sh (sourced, bash). It owns the scratch directory, the
# processes the benchmarks start, and the generated configurations of the
# servers (origin nginx, portcullis, nginx proxy, HAProxy), so that every
# benchmark measures the proxies configured the same way, and it reads
# their CPU time from /proc (cpu_ticks). It must never touch a process it
# did not start, nor listen outside 127.0.0.1.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The system interpreter, as the Makefile uses: a version-manager shim would
# put a wrapper process between us and the PID we stop.
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi
PORTCULLIS=${PORTCULLIS:-$ROOT/build/portcullis}
NGINX=${NGINX:-nginx}
HAPROXY=${HAPROXY:-haproxy}
START_TIMEOUT=${START_TIMEOUT:-5}

BENCH_PIDS=""
LAST_PID=""
# shellcheck disable=SC2034 # read by the scripts that source this file
PC_DESC="not measured"
TMP=""

die() {
    echo "bench: error: $*" >&2
    exit 1
}

note() {
    echo "bench: $*" >&2
}

need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            die "'$t' not found (run 'make deps' or scripts/install-deps.sh)"
    done
}

need_portcullis() {
    [ -x "$PORTCULLIS" ] ||
        die "$PORTCULLIS does not exist: build it with 'make' first"
}

# snapshot_portcullis: runs a private copy, so that a rebuild while the
# benchmark runs cannot mix two binaries in one table; sets PC_DESC.
snapshot_portcullis() {
    cp "$PORTCULLIS" "$TMP/portcullis.bin" || die "cannot copy $PORTCULLIS"
    # shellcheck disable=SC2034 # read by the scripts that source this file
    PC_DESC="$("$TMP/portcullis.bin" --version 2>&1 | sed -n 1p), binary of $(
        date -u -r "$PORTCULLIS" +%Y-%m-%dT%H:%MZ)"
    PORTCULLIS=$TMP/portcullis.bin
}

# Scratch directory and cleanup: every process goes through start_bg so the
# EXIT trap can stop it, whichever way the script ends.
bench_init() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pc-bench.XXXXXX") || die "mktemp failed"
    chmod 755 "$TMP"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

bench_cleanup() {
    local pid
    for pid in $BENCH_PIDS; do
        stop_pid "$pid"
    done
    BENCH_PIDS=""
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            note "scratch files kept in $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
}

# SIGTERM first (nginx: fast shutdown, portcullis: graceful stop), SIGKILL
# after 5 s so that a wedged server cannot hang the benchmark.
stop_pid() {
    local pid=$1 _
    if ! kill -TERM "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid ignored SIGTERM for 5 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    BENCH_PIDS=$(echo " $BENCH_PIDS " | sed "s/ $pid / /; s/^ *//; s/ *$//")
    return 0
}

# start_bg LOG CMD...: runs CMD in the background, output to LOG; the PID is
# left in LAST_PID (a command substitution would make it a grandchild).
start_bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS="$LAST_PID $BENCH_PIDS"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, held open together
# while chosen so that they cannot repeat.
free_ports() {
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# make_cert DIR: self-signed ECDSA P-256 certificate for localhost and
# 127.0.0.1 (cheap handshakes keep the 10 000-connection TLS run short).
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" >"$1/openssl.log" 2>&1 ||
        die "openssl could not create a certificate: $(cat "$1/openssl.log")"
}

# wait_http NAME PID URL BYTES LOG: within START_TIMEOUT seconds URL must
# answer 200 with a body of BYTES bytes, else the benchmark stops with the
# server's log, rather than measuring error responses.
wait_http() {
    local name=$1 pid=$2 url=$3 bytes=$4 log=$5 got="" _
    local tries=$((START_TIMEOUT * 10))
    for _ in $(seq "$tries"); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $log" >&2
            tail -n 20 "$log" >&2
            die "$name exited during start-up"
        fi
        got=$(curl -sk --max-time 1 -o /dev/null \
            -w '%{http_code} %{size_download}' "$url" 2>/dev/null || true)
        [ "$got" = "200 $bytes" ] && return 0
        sleep 0.1
    done
    echo "--- $log" >&2
    tail -n 20 "$log" >&2
    die "$name did not answer 200 with $bytes bytes on $url within" \
        "${START_TIMEOUT} s (last answer: '${got:-none}')"
}

# nginx warns when worker_connections exceeds the fd limit it inherits: use
# that limit (idle.sh raises it first), at most 65536.
worker_conns() {
    local n
    n=$(ulimit -n)
    if [ "$n" = unlimited ] || [ "$n" -gt 65536 ]; then
        n=65536
    fi
    echo "$n"
}

# The nginx parts every instance shares. Workers run as root when the
# benchmark does, because the scratch directory belongs to root; access logs
# are off everywhere (portcullis runs with log.access: off too).
nginx_main_conf() {
    local dir=$1 workers=$2
    cat <<EOF
daemon off;
master_process on;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$([ "$(id -u)" = 0 ] && echo "user root;")
events {
    worker_connections $(worker_conns);
}
EOF
}

nginx_http_common() {
    local dir=$1
    cat <<EOF
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
EOF
}

# write_upstream_conf DIR PORT TLSPORT: the origin, one worker, serving
# DIR/www/small (100 bytes) and DIR/www/16k (16 KiB) as static files.
write_upstream_conf() {
    local dir=$1 port=$2 tport=$3
    mkdir -p "$dir/www"
    head -c 99 /dev/zero | tr '\0' 's' >"$dir/www/small"
    echo >>"$dir/www/small"
    head -c 16384 /dev/zero | tr '\0' 'k' >"$dir/www/16k"
    {
        nginx_main_conf "$dir" 1
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    sendfile on;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tport ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        root $dir/www;
    }
}
EOF
    } >"$dir/nginx.conf"
}

# write_nginx_proxy_conf DIR WORKERS PORT TLSPORT UPPORT [EXTRA]: nginx as
# the keep-alive reverse proxy portcullis is compared with. It adds the
# forwarding headers portcullis adds (CONTRACT §3) so both do the same work.
# EXTRA is inserted into the location (stream.sh turns buffering off).
write_nginx_proxy_conf() {
    local dir=$1 workers=$2 port=$3 tport=$4 upport=$5 extra=${6:-}
    {
        nginx_main_conf "$dir" "$workers"
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    upstream up {
        server 127.0.0.1:$upport;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tport ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Request-Id \$request_id;
$extra
        }
    }
}
EOF
    } >"$dir/nginx.conf"
}

# write_haproxy_conf DIR WORKERS PORT TLSPORT UPPORT: HAProxy as the same
# keep-alive reverse proxy: WORKERS threads (nbthread) in one process,
# idle server connections shared by all clients (http-reuse always), plain
# and TLS frontends with the same certificate (HAProxy wants certificate and
# key in one file), the same forwarding headers, no logging (no "log" line
# anywhere) and the keep-alive timeouts the other two have.
write_haproxy_conf() {
    local dir=$1 workers=$2 port=$3 tport=$4 upport=$5
    cat "$TMP/cert.pem" "$TMP/key.pem" >"$dir/haproxy.pem"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $workers
    pidfile $dir/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:$port
    bind 127.0.0.1:$tport ssl crt $dir/haproxy.pem
    option forwardfor
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http unless { ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Request-Id %[uuid]
    default_backend up

backend up
    server origin 127.0.0.1:$upport
EOF
}

# write_portcullis_conf DIR WORKERS PORT TLSPORT ADMINPORT UPPORT [LIMITS
# [UPEXTRA [ACCESS [LEVEL]]]]: the same proxy in portcullis terms; LIMITS is
# YAML lines for limits:, UPEXTRA YAML lines added to the upstream, ACCESS
# the log.access value (default off: nginx and HAProxy log nothing either),
# LEVEL the error-log level (default warn).
write_portcullis_conf() {
    local dir=$1 workers=$2 port=$3 tport=$4 aport=$5 upport=$6
    local limits=${7:-} upextra=${8:-} access=${9:-off} level=${10:-warn}
    {
        cat <<EOF
workers: $workers
listen:
  - address: 127.0.0.1:$port
  - address: 127.0.0.1:$tport
    tls:
      certificates: [{cert: $TMP/cert.pem, key: $TMP/key.pem}]
admin:
  listen: 127.0.0.1:$aport
log:
  access: "$access"
  level: $level
upstreams:
  up:
    targets: [{url: "http://127.0.0.1:$upport"}]
    keepalive: 64
EOF
        [ -n "$upextra" ] && echo "$upextra"
        cat <<EOF
routes:
  - match: {path: /}
    upstream: up
EOF
        if [ -n "$limits" ]; then
            echo "limits:"
            echo "$limits"
        fi
    } >"$dir/portcullis.yaml"
}

# start_nginx NAME DIR: starts nginx on DIR/nginx.conf (PID in LAST_PID).
start_nginx() {
    local name=$1 dir=$2
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
        >"$dir/test.log" 2>&1 ||
        die "$name: nginx rejects its generated config: $(cat "$dir/test.log")"
    start_bg "$dir/stderr.log" "$NGINX" -p "$dir" -e "$dir/error.log" \
        -c "$dir/nginx.conf"
}

# start_portcullis DIR: starts portcullis on DIR/portcullis.yaml.
start_portcullis() {
    local dir=$1
    start_bg "$dir/stderr.log" "$PORTCULLIS" -c "$dir/portcullis.yaml"
}

# start_haproxy NAME DIR: starts HAProxy in the foreground (-db: one
# process, its threads; no master) on DIR/haproxy.cfg (PID in LAST_PID).
start_haproxy() {
    local name=$1 dir=$2
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/test.log" 2>&1 ||
        die "$name: haproxy rejects its generated config: $(cat "$dir/test.log")"
    start_bg "$dir/stderr.log" "$HAPROXY" -db -f "$dir/haproxy.cfg"
}

# raise_nofile N: lift the fd limit for this shell and its children.
raise_nofile() {
    local want=$1
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
    [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$want" ] ||
        note "open-file limit is $(ulimit -n), below the $want wanted"
}

machine_info() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
    echo "$(nproc) cores ($cpu), Linux $(uname -r)," \
        "$("$NGINX" -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | sed -n 1p |
            awk '{print $1, $2}')"
}

# median: the median of the numbers on stdin, separated by spaces and/or
# newlines (the lower middle one of an even count).
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# rotate N WORDS...: WORDS rotated left by N, so that no target or scenario
# always runs right after the same other one.
rotate() {
    local n=$1
    shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do
        printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"
    done
}

# alive_or_die NAME PID LOG: a server that died under load would turn every
# later row into wrk connection errors: stop at once, show its log's tail.
alive_or_die() {
    if ! kill -0 "$2" 2>/dev/null; then
        tail -n 20 "$3" >&2 || true
        die "$1 (pid $2) died during the benchmark"
    fi
}

# forget_pid PID: after a successful wait on PID, drop it from the list the
# EXIT trap stops (the number may be reused by someone else's process).
forget_pid() {
    BENCH_PIDS=$(echo " $BENCH_PIDS " | sed "s/ $1 / /; s/^ *//; s/ *$//")
}

# cpu_pids PID KIDS: PID, and with KIDS=1 its direct children too (nginx:
# master and workers), one per line.
cpu_pids() {
    echo "$1"
    [ "$2" = 1 ] && ps -o pid= --ppid "$1" | tr -d ' '
    return 0
}

# cpu_ticks PIDS...: utime + stime (fields 14 and 15 of /proc/PID/stat: all
# threads of the process) summed over PIDS, in clock ticks. Fails (status 1,
# message on stderr) when a process is gone: the caller must die then.
cpu_ticks() {
    local p stat total=0 f
    for p in "$@"; do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || {
            echo "bench: error: cannot read /proc/$p/stat" >&2
            return 1
        }
        # the command name (field 2) may hold spaces: split after its ')'
        read -r -a f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# sys_ticks: "TOTAL IDLE" jiffies of the whole machine from /proc/stat's
# cpu line (idle + iowait count as idle; everything else, steal included,
# as busy).
sys_ticks() {
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i;
                       print t, $5 + $6; exit }' /proc/stat
}
