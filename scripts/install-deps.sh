#!/bin/sh
# Installs what `make`, `make run`, `make test` and bench/ need on Debian 12.
# Idempotent: does nothing (no apt-get at all) when every package is present.
set -eu

PKGS="build-essential pkg-config libevent-dev libssl-dev libjansson-dev libyaml-dev \
libhiredis-dev node-llhttp libcriterion-dev python3 python3-pytest openssl \
redis-server nginx-light wrk clang curl procps"

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
# nginx and redis are used as test/bench helpers only; do not let their
# packages start system services that would hold ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
