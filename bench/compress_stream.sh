#!/usr/bin/env bash
# bench/compress_stream.sh: a large compressible response (SIZE, default 1g,
# of JSON lines) through a `compress` route to a client that reads the
# gzip stream slowly (curl --limit-rate RATE, default 8m per second of
# compressed bytes): the gateway's RSS is sampled every 0.2 s and its peak
# increase reported, with the bytes the client decompressed (must be SIZE)
# and the compression ratio. A gateway that buffered the response would
# grow by about SIZE; one that streams with backpressure stays flat.
# Everything on 127.0.0.1; every process it started is stopped on exit.
# Environment: SIZE (bytes, k/m/g suffix), RATE (curl --limit-rate), ENC
# (gzip, br or zstd; default gzip), PORTCULLIS, NGINX.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

SIZE=${SIZE:-1g}
RATE=${RATE:-8m}
ENC=${ENC:-gzip}
need_tools curl "$NGINX" openssl "$PYTHON"
need_portcullis
bench_init
snapshot_portcullis
make_cert "$TMP"

bytes=$("$PYTHON" -c "import sys; s=sys.argv[1].lower(); m={'k':1<<10,'m':1<<20,'g':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$SIZE")
read -r UP UPT PORT PT APORT <<<"$(free_ports 5)"
mkdir -p "$TMP/origin/www" "$TMP/pc"
"$PYTHON" - "$TMP/origin/www/big.json" "$bytes" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
block = b"".join(b'{"id": %d, "name": "item-%d", "tags": ["alpha", "beta"], "ok": true}\n' % (i, i % 1000)
                 for i in range(20000))
with open(path, "wb") as f:
    left = n
    while left > 0:
        f.write(block[:left])
        left -= min(left, len(block))
PY
{
    nginx_main_conf "$TMP/origin" 1
    echo "http {"
    nginx_http_common "$TMP/origin"
    echo "    types { application/json json; }"
    echo "    sendfile on;"
    echo "    server { listen 127.0.0.1:$UP; root $TMP/origin/www; }"
    echo "}"
} >"$TMP/origin/nginx.conf"
start_nginx origin "$TMP/origin"
write_portcullis_conf "$TMP/pc" 1 "$PORT" "$PT" "$APORT" "$UP"
sed -i 's|^  - match: {path: /}$|  - match: {path: /}\n    compress: {types: [application/json]}|' "$TMP/pc/portcullis.yaml"
start_portcullis "$TMP/pc"
PC_PID=$LAST_PID
sleep 0.5
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PC_PID/status"; }
before=$(rss)
peak=$before
( curl -s -H "Accept-Encoding: $ENC" --limit-rate "$RATE" "http://127.0.0.1:$PORT/big.json" >"$TMP/out.$ENC" ) &
CURL=$!
while kill -0 "$CURL" 2>/dev/null; do
    r=$(rss)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
done
wait "$CURL"
case $ENC in
gzip) got=$(gzip -dc <"$TMP/out.$ENC" | wc -c) ;;
br) got=$(brotli -dc <"$TMP/out.$ENC" | wc -c) ;;
zstd) got=$(zstd -dcq <"$TMP/out.$ENC" | wc -c) ;;
esac
out=$(stat -c %s "$TMP/out.$ENC")
echo "# bench/compress_stream.sh, $(date -u +%Y-%m-%dT%H:%MZ), $PC_DESC"
echo "# $(machine_info); SIZE=$SIZE RATE=$RATE ENC=$ENC"
echo "decompressed bytes: $got (sent by the origin: $bytes); compressed bytes: $out (ratio $(awk -v a="$bytes" -v b="$out" 'BEGIN {printf "%.1f", a / b}'))"
echo "portcullis RSS: $before KiB before, peak $peak KiB, increase $(( (peak - before) / 1024 )) MiB"
[ "$got" = "$bytes" ] || die "the client got $got bytes, not $bytes"
