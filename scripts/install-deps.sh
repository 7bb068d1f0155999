#!/bin/sh
# Installs what `make`, `make run`, `make test`, `make fuzz` and bench/ need
# on Debian 12. Idempotent: does nothing (no apt-get at all) when every
# package is present.
#   build: build-essential pkg-config, libevent-dev (2.1 with _openssl and
#     _pthreads), libssl-dev (OpenSSL 3), libjansson-dev, libyaml-dev,
#     libhiredis-dev, node-llhttp (llhttp's C sources, compiled at build time)
#   tests: libcriterion-dev (unit-test runner), python3 + python3-pytest
#     (end-to-end tests), openssl (test certificates and keys), procps
#   fuzz: clang (libFuzzer with ASan/UBSan)
#   bench: nginx-light (origin and the proxy we compare with), wrk, curl,
#     haproxy (second peer proxy), linux-perf (bench/profile.sh), time
#     (/usr/bin/time: wrk's own CPU in bench/run.sh)
#   e2e: prometheus (only its promtool, which checks /metrics output),
#     redis-server and redis-tools (shared rate limits, Redis Cluster),
#     brotli and zstd command-line tools (decode compressed responses),
#     chromium (headless: the admin status page tested in a real browser)
#   packaging tests: man-db and groff-base (`man -l` renders the man pages),
#     systemd (systemd-analyze verify/security, systemd-sysusers --root; its
#     package is installed, never started), logrotate (-d checks the snippet)
#   compression: zlib1g-dev, libbrotli-dev, libzstd-dev
#   send batching: liburing-dev (one io_uring_enter carries all the sends of
#     an event-loop turn; docs/performance.md "Send batching")
set -eu

PKGS="build-essential pkg-config libevent-dev libssl-dev libjansson-dev libyaml-dev \
libhiredis-dev node-llhttp libcriterion-dev python3 python3-pytest openssl \
nginx-light wrk haproxy linux-perf time clang curl procps prometheus \
redis-server redis-tools zlib1g-dev libbrotli-dev libzstd-dev liburing-dev brotli zstd chromium \
man-db groff-base systemd logrotate"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# nginx is a bench helper only: its package must not start a system
# service that would hold ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
