#!/usr/bin/env python3
"""bench/report.py: turns the raw wrk outputs of bench/run.sh into the
markdown results: a table with the median of the runs of each scenario and
target (req/s, p50, p99, CPU µs per request), a table of ratios
(portcullis/nginx, portcullis/haproxy, portcullis/portcullis-base, and
each portcullis variant over plain portcullis), what the variants did (reloads, access-log lines) and
the problems wrk reported. It only reads what wrk printed and what run.sh
measured: it must never fill in a figure that a run did not produce.

Usage: report.py INDEX [TITLE_LINE...]
INDEX is a TSV file written by run.sh: scenario, target, run, raw-file,
then optionally the CPU seconds the proxy used during the run ("-" for
none) and extra facts as KEY=VALUE words (reloads=DONE/SENT generation=N,
access_log_lines=N).

Exit status 1 when a row has no successful run, or when a portcullis-reload
run saw any non-2xx answer or socket error (a reload must be invisible to
clients).
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

# (numerator, denominator) pairs of the ratio table, in this order; each
# pair appears for a scenario where both were measured.
PEERS = ("nginx", "haproxy")
VARIANTS = ("portcullis-log", "portcullis-reload", "portcullis-nometrics")


def parse_wrk(text):
    """Returns a dict with rps, p50, p99 (ms), requests, non2xx, sockerr
    (total socket errors) and the problems wrk reported as text; raises
    ValueError when the output lacks a figure."""
    out = {"problems": [], "non2xx": 0, "sockerr": 0}
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
            out["non2xx"] = int(m.group(1))
            out["problems"].append("%s non-2xx answers" % m.group(1))
            continue
        m = SOCKERR_RE.match(line)
        if m:
            out["sockerr"] = sum(int(n) for n in re.findall(r"\d+", m.group(1)))
            out["problems"].append("socket errors: " + m.group(1).strip())
    for key in ("rps", "p50", "p99", "requests"):
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
            fields = line.rstrip("\n").split("\t")
            scenario, target, run, path = fields[:4]
            cpu = fields[4] if len(fields) > 4 else "-"
            info = fields[5] if len(fields) > 5 else ""
            key = (scenario, target)
            if key not in groups:
                groups[key] = []
                order.append(key)
            try:
                with open(path) as raw:
                    res = parse_wrk(raw.read())
                if cpu != "-":
                    if res["requests"] <= 0:
                        raise ValueError("wrk counted no request")
                    res["cpu_us"] = float(cpu) * 1e6 / res["requests"]
            except (OSError, ValueError) as e:
                notes.append("%s, %s, run %s: failed (%s)" %
                             (scenario, target, run, e))
                continue
            for p in res["problems"]:
                notes.append("%s, %s, run %s: %s" % (scenario, target, run, p))
            res["run"] = run
            res["info"] = dict(w.split("=", 1) for w in info.split() if "=" in w)
            groups[key].append(res)
    return groups, order, notes


def median_of(runs):
    if not runs:
        return None
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("rps", "p50", "p99")}
    cpu = [r["cpu_us"] for r in runs if "cpu_us" in r]
    med["cpu_us"] = statistics.median(cpu) if len(cpu) == len(runs) else None
    return med


def fmt_cpu(v):
    return "-" if v is None else "%.1f" % v


def table(groups, order):
    rows = ["| scenario | target | req/s | p50 ms | p99 ms | CPU µs/req |",
            "|---|---|---:|---:|---:|---:|"]
    for scenario, target in order:
        med = median_of(groups[(scenario, target)])
        if med is None:
            rows.append("| %s | %s | failed | | | |" % (scenario, target))
            continue
        rows.append("| %s | %s | %.0f | %s | %s | %s |" % (
            scenario, target, med["rps"], fmt_ms(med["p50"]),
            fmt_ms(med["p99"]), fmt_cpu(med["cpu_us"])))
    return rows


def ratio_rows(groups, order):
    rows = []
    scenarios = list(dict.fromkeys(s for s, _ in order))
    for scenario in scenarios:
        def med(t):
            return median_of(groups.get((scenario, t), []))
        pairs = [("portcullis", p) for p in PEERS]
        # portcullis-base: another build (PORTCULLIS_BASE), e.g. the one
        # before a change: after / before, and the base against the peers
        pairs += [("portcullis", "portcullis-base")]
        pairs += [("portcullis-base", p) for p in PEERS]
        pairs += [(v, "portcullis") for v in VARIANTS]
        for num, den in pairs:
            a, b = med(num), med(den)
            if not a or not b:
                continue
            cpu = "-"
            if a["cpu_us"] is not None and b["cpu_us"]:
                cpu = "%.2f" % (a["cpu_us"] / b["cpu_us"])
            rows.append("| %s | %s / %s | %.2f | %.2f | %s |" % (
                scenario, num, den, a["rps"] / b["rps"],
                a["p99"] / b["p99"], cpu))
    if not rows:
        return []
    return ["| scenario | ratio | req/s | p99 | CPU µs/req |",
            "|---|---|---:|---:|---:|"] + rows


def system_rows(groups, order):
    """Where the machine's cores went in each run, medians per target: the
    origin's and wrk's CPU per request (beside the proxy's) and the idle
    share of all cores. Runs without these facts (older index files, the
    reload variant, which runs wrk in the background) are left out."""
    rows = []
    for scenario, target in order:
        runs = [r for r in groups[(scenario, target)]
                if "origin_s" in r["info"] and "wrk_s" in r["info"]]
        if not runs:
            continue
        def per_req(key):
            return statistics.median(float(r["info"][key]) * 1e6 / r["requests"]
                                     for r in runs)
        idle = statistics.median(float(r["info"]["idle_share"]) for r in runs)
        proxy = [r["cpu_us"] for r in runs if "cpu_us" in r]
        rows.append("| %s | %s | %s | %.1f | %.1f | %.0f%% |" % (
            scenario, target,
            fmt_cpu(statistics.median(proxy) if proxy else None),
            per_req("origin_s"), per_req("wrk_s"), idle * 100))
    if not rows:
        return []
    return ["| scenario | target | proxy µs/req | origin µs/req | wrk µs/req "
            "| idle |", "|---|---|---:|---:|---:|---:|"] + rows


def variant_facts(groups, order):
    """One line per portcullis-reload and portcullis-log run; returns the
    lines and whether a reload run had errors."""
    lines, bad = [], False
    for scenario, target in order:
        for r in groups[(scenario, target)]:
            info = r["info"]
            if target == "portcullis-reload":
                done, _, sent = info.get("reloads", "?/?").partition("/")
                errors = r["non2xx"] + r["sockerr"]
                if errors:
                    bad = True
                lines.append(
                    "%s, portcullis-reload, run %s: %s reloads done for %s "
                    "SIGHUP sent (last generation %s); %d requests, %d non-2xx "
                    "answers, %d socket errors%s" % (
                        scenario, r["run"], done, sent,
                        info.get("generation", "?"), r["requests"],
                        r["non2xx"], r["sockerr"],
                        "" if not errors else " **(must be 0)**"))
            elif target == "portcullis-log" and "access_log_lines" in info:
                lines.append(
                    "%s, portcullis-log, run %s: %s access-log lines for %d "
                    "requests counted by wrk" % (
                        scenario, r["run"], info["access_log_lines"],
                        r["requests"]))
    return lines, bad


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: report.py INDEX [TITLE_LINE...]")
    groups, order, notes = load(sys.argv[1])
    lines = list(sys.argv[2:])
    if lines:
        lines.append("")
    lines += table(groups, order)

    def section(title, rows):
        if rows:
            lines.extend(["", title, ""] + rows)

    section("Ratios of the medians (req/s above 1: the first is faster; p99 "
            "and CPU µs/req below 1: the first has the lower tail latency, "
            "costs less CPU per request):", ratio_rows(groups, order))
    section("The whole machine during the runs (medians; CPU of each process "
            "per request wrk counted, idle share of all cores):",
            system_rows(groups, order))
    facts, reload_bad = variant_facts(groups, order)
    section("Variants:", ["- " + f for f in facts])
    section("Problems reported by wrk (these rows are suspect):",
            ["- " + n for n in notes])
    print("\n".join(lines))
    if reload_bad:
        print("report.py: portcullis-reload runs had errors: reloads were "
              "visible to clients", file=sys.stderr)
    return 1 if reload_bad or any(not groups[k] for k in order) else 0


if __name__ == "__main__":
    sys.exit(main())
