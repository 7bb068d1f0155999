#!/usr/bin/env python3
"""bench/report.py: turns the raw wrk outputs of bench/run.sh into the
markdown results table (median of the runs of each scenario and target, and
the portcullis/nginx ratios). It only reads what wrk printed: it must never
fill in a figure that a run did not produce.

Usage: report.py INDEX [TITLE_LINE...]
INDEX is a TSV file written by run.sh: scenario, target, run, raw-file.
"""

import re
import statistics
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
PCT_RE = re.compile(r"^\s*(50|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$")
RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$")
NON2XX_RE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)")
SOCKERR_RE = re.compile(r"^\s*Socket errors:\s+(.*)$")
TOTAL_RE = re.compile(r"^\s*(\d+) requests in ")


def parse_wrk(text):
    """Returns a dict with rps, p50, p99 (ms), requests, and the problems
    wrk reported (non-2xx answers, socket errors); raises ValueError when
    the output lacks a figure."""
    out = {"problems": []}
    for line in text.splitlines():
        m = PCT_RE.match(line)
        if m:
            out["p" + m.group(1)] = float(m.group(2)) * UNIT_MS[m.group(3)]
            continue
        m = RPS_RE.match(line)
        if m:
            out["rps"] = float(m.group(1))
            continue
        m = TOTAL_RE.match(line)
        if m:
            out["requests"] = int(m.group(1))
            continue
        m = NON2XX_RE.match(line)
        if m:
            out["problems"].append("%s non-2xx answers" % m.group(1))
            continue
        m = SOCKERR_RE.match(line)
        if m:
            out["problems"].append("socket errors: " + m.group(1).strip())
    for key in ("rps", "p50", "p99"):
        if key not in out:
            raise ValueError("wrk output has no %s figure" % key)
    return out


def fmt_ms(v):
    return "%.3f" % v if v < 10 else "%.1f" % v


def load(index_path):
    """Groups the runs by (scenario, target), keeping first-seen order."""
    groups, order, notes = {}, [], []
    with open(index_path) as f:
        for line in f:
            if not line.strip():
                continue
            scenario, target, run, path = line.rstrip("\n").split("\t")
            key = (scenario, target)
            if key not in groups:
                groups[key] = []
                order.append(key)
            try:
                with open(path) as raw:
                    res = parse_wrk(raw.read())
            except (OSError, ValueError) as e:
                notes.append("%s, %s, run %s: failed (%s)" %
                             (scenario, target, run, e))
                continue
            for p in res["problems"]:
                notes.append("%s, %s, run %s: %s" % (scenario, target, run, p))
            groups[key].append(res)
    return groups, order, notes


def median_of(runs):
    if not runs:
        return None
    return {k: statistics.median(r[k] for r in runs)
            for k in ("rps", "p50", "p99")}


def table(groups, order):
    rows = ["| scenario | target | req/s | p50 ms | p99 ms "
            "| ratio portcullis/nginx (req/s) | p99 ratio |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for scenario, target in order:
        med = median_of(groups[(scenario, target)])
        if med is None:
            rows.append("| %s | %s | failed | | | | |" % (scenario, target))
            continue
        ratio = p99ratio = "-"
        ngx = median_of(groups.get((scenario, "nginx"), []))
        if target == "portcullis" and ngx:
            ratio = "%.2f" % (med["rps"] / ngx["rps"])
            p99ratio = "%.2f" % (med["p99"] / ngx["p99"])
        rows.append("| %s | %s | %.0f | %s | %s | %s | %s |" % (
            scenario, target, med["rps"], fmt_ms(med["p50"]),
            fmt_ms(med["p99"]), ratio, p99ratio))
    return rows


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: report.py INDEX [TITLE_LINE...]")
    groups, order, notes = load(sys.argv[1])
    lines = list(sys.argv[2:])
    if lines:
        lines.append("")
    lines += table(groups, order)
    if notes:
        lines += ["", "Problems reported by wrk (these rows are suspect):", ""]
        lines += ["- " + n for n in notes]
    print("\n".join(lines))
    return 1 if any(not groups[k] for k in order) else 0


if __name__ == "__main__":
    sys.exit(main())
