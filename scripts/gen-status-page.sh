#!/bin/sh
# Turns src/core/status.html (the admin status page, the one source) into
# src/core/status_page.c: one C string the binary serves at GET / on the
# admin listener. Run after editing the page; tests/e2e/test_status_page.py
# fails when the two differ.
#   scripts/gen-status-page.sh [HTML [OUT]]
set -eu
in=${1:-src/core/status.html}
out=${2:-src/core/status_page.c}
{
    echo "/* status_page.c: GENERATED from status.html by"
    echo " * scripts/gen-status-page.sh; edit the HTML, then run the script. */"
    echo "#include <stddef.h>"
    echo
    echo "const char pc_status_html[] ="
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$in"
    echo "    ;"
    echo "const size_t pc_status_html_len = sizeof pc_status_html - 1;"
} >"$out.tmp"
mv "$out.tmp" "$out"
