"""Soak (issue 8): hostile and ordinary clients mixed against one gateway
(2 workers, plain and TLS listeners) while a well-behaved client measures
that its error count stays at zero, its p99 stays flat and the gateway's
RSS stays bounded. The driver is bench/soak.py (its docstring lists the
hostile kinds); bench/soak.sh runs the same soak for longer.

test_soak             the optimised build (PORTCULLIS_REL_BIN: ASan inflates
                      memory), SOAK_SECONDS (default 60: 15 s baseline,
                      45 s attack); all assertions
test_soak_asan_short  the ASan/UBSan build (PORTCULLIS_BIN), SOAK_SAN_SECONDS
                      (default 12; 0 skips): no error, no unexpected
                      hostile outcome, clean exit, no sanitizer report
                      (latency and RSS are not judged under ASan)

The summary line is printed (pytest -s shows it) and written, with the
full figures as JSON, to soak-summary.txt / soak-result.json in the test's
temp directory."""

import json
import os
import sys

import pytest

import helpers

sys.path.insert(0, os.path.join(helpers.ROOT, "bench"))

import soak  # noqa: E402


def _run(tmp_path, binary, seconds, latency, rss, label):
    base, attack = soak.split_seconds(seconds)
    res = soak.run_soak(str(tmp_path), binary, base, attack, workers=2, label=label,
                        malloc_probe_default=rss)
    line = soak.summary_line(res)
    print("\n" + line)
    (tmp_path / "soak-summary.txt").write_text(line + "\n")
    (tmp_path / "soak-result.json").write_text(json.dumps(res, indent=1, default=str))
    failures = soak.check(res, latency=latency, rss=rss)
    assert not failures, "soak failed:\n- %s\n%s\n(files in %s)" % (
        "\n- ".join(failures), line, tmp_path)
    return res


def test_soak(tmp_path):
    _run(tmp_path, helpers.REL_BIN, float(os.environ.get("SOAK_SECONDS", "60")),
         latency=True, rss=True, label="soak")


def test_soak_asan_short(tmp_path):
    seconds = float(os.environ.get("SOAK_SAN_SECONDS", "12"))
    if seconds <= 0:
        pytest.skip("SOAK_SAN_SECONDS=0")
    _run(tmp_path, helpers.BIN, seconds, latency=False, rss=False, label="soak-asan")
