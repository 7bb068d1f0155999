"""The shipped Grafana dashboard (docs/grafana/portcullis.json) and
Prometheus alerting rules (docs/prometheus/portcullis-alerts.yml): the
rules pass `promtool check rules`, every dashboard query parses as PromQL
(checked by promtool too, as recording rules with Grafana's variables
filled in), and every metric they name is one a running gateway exposes
on /metrics."""

import json
import os
import re
import shutil
import subprocess

import pytest

import helpers
from helpers import request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RULES = os.path.join(ROOT, "docs", "prometheus", "portcullis-alerts.yml")
DASH = os.path.join(ROOT, "docs", "grafana", "portcullis.json")
PROMTOOL = shutil.which("promtool")

FUNCS = {"sum", "rate", "increase", "max", "min", "by", "histogram_quantile",
         "and", "or", "unless", "humanizePercentage", "label_values"}


def dashboard_exprs():
    with open(DASH) as f:
        d = json.load(f)
    assert d["panels"], "no panels"
    return [t["expr"] for p in d["panels"] for t in p["targets"]]


def rule_exprs():
    with open(RULES) as f:
        text = f.read()
    return re.findall(r"expr: \|?\s*\n?((?:.|\n)*?)\n\s+(?:for|labels):", text)


def metric_names(expr):
    names = set(re.findall(r"\b(portcullis_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed")
def test_alert_rules_pass_promtool():
    out = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed")
def test_dashboard_queries_are_promql(tmp_path):
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(dashboard_exprs()):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
        lines += ["      - record: dashboard:q%d" % i, "        expr: %s" % json.dumps(e)]
    p = tmp_path / "dash.yml"
    p.write_text("\n".join(lines) + "\n")
    out = subprocess.run([PROMTOOL, "check", "rules", str(p)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_metric_named_is_exposed(tmp_path):
    env = helpers.Env(tmp_path)
    try:
        up = env.upstream("a")
        port, admin = helpers.free_port(), helpers.free_port()
        cfg = helpers.base_config(
            port, admin,
            {"a": dict(helpers.upstream_conf(up),
                       circuit_breaker={"failures": 3})},
            [{"name": "r", "match": {"path": "/"}, "upstream": "a",
              "rate_limit": {"rate": 100, "per": "1s"}, "cache": {"ttl": "1s"}}],
            workers=1)
        env.gateway(cfg)
        request(port, "GET", "/x")
        text = request(admin, "GET", "/metrics", host="127.0.0.1").body.decode()
    finally:
        env.close()
    exposed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    named = set()
    for e in dashboard_exprs() + rule_exprs():
        named |= metric_names(e)
    assert named, "no metric found in the queries"
    missing = sorted(n for n in named if n not in exposed)
    assert not missing, "named but not exposed: %s (exposed: %s)" % (missing, sorted(exposed))
