#!/bin/sh
# trie_bench.sh: builds bench/trie_bench.c with -O2 against the route trie
# (src/lib/trie.c, src/lib/util.c) and runs it. Usage: trie_bench.sh [ITERS]
# (lookups per table cell, default 2000000).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bench"
mkdir -p "$out"
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
    -I"$root/include" -o "$out/trie_bench" \
    "$root/bench/trie_bench.c" "$root/src/lib/trie.c" "$root/src/lib/util.c"
exec "$out/trie_bench" "$@"
