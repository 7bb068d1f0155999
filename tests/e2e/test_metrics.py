"""GET /metrics on the admin listener (CONTRACT §5, issue 9): the
Prometheus text format 0.0.4, exact counts of known traffic summed over two
workers (matched route, upstream status, unmatched 404, 405, a 403 from the
chain, a 502 from a dead upstream), histograms (request, upstream, stage),
gauges, HEAD, and /metrics open while admin.token guards /admin/*. The
whole output is checked by a real Prometheus parser (promtool)."""

import re
import shutil
import subprocess
import time

import pytest

import helpers
from helpers import request

TOKEN = "metrics-admin-token-1"
CTYPE = "text/plain; version=0.0.4; charset=utf-8"

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """{(name, ((label, value), ...)): float} and {family: (type, help)}."""
    samples, types, helps = {}, {}, {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            assert fam not in types, "TYPE twice for " + fam
            types[fam] = typ
            continue
        if line.startswith("# HELP "):
            fam = line.split(" ", 3)[2]
            assert fam not in helps, "HELP twice for " + fam
            helps[fam] = line
            continue
        assert not line.startswith("#"), line
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted((k, unescape(v)) for k, v in LABEL_RE.findall(m.group(3) or "")))
        key = (m.group(1), labels)
        assert key not in samples, "duplicate series %r" % (key,)
        samples[key] = float(m.group(4))
    assert text.endswith("\n")
    return samples, types, helps


def get(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def mg(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("metrics"))
    up = env.upstream("b")
    port, admin, dead = helpers.free_port(), helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "api", "match": {"path": "/api", "methods": ["GET", "HEAD", "POST"]},
         "upstream": "backend"},
        {"name": "private", "match": {"path": "/private"}, "upstream": "backend",
         "acl": {"deny": ["127.0.0.0/8"]}},
        {"name": "dead", "match": {"path": "/dead"}, "upstream": "gone"},
    ]
    ups = {"backend": helpers.upstream_conf(up),
           "gone": helpers.upstream_conf("http://127.0.0.1:%d" % dead, retries=0)}
    cfg = helpers.base_config(port, admin, ups, routes, workers=2)
    cfg["admin"]["token"] = TOKEN
    gw = env.gateway(cfg)
    gw.up = up
    yield gw
    env.close()


def scrape(gw, method="GET", headers=None):
    return request(gw.admin_port, method, "/metrics", headers=headers, host="127.0.0.1")


def send_traffic(gw):
    """Known traffic, each request on its own connection (spread over the
    workers by SO_REUSEPORT). Returns what was sent."""
    p = gw.port
    for _ in range(5):
        assert request(p, "GET", "/api/items").status == 200
    for _ in range(2):
        assert request(p, "HEAD", "/api/items").status == 200
    assert request(p, "POST", "/api/items", body=b"{}").status == 200
    for _ in range(2):
        assert request(p, "GET", "/api/status/503").status == 503
    for _ in range(3):
        helpers.assert_error(request(p, "GET", "/nowhere"), 404, "route_not_found")
    helpers.assert_error(request(p, "DELETE", "/api/items"), 405, "method_not_allowed")
    helpers.assert_error(request(p, "PROPFIND", "/api/items"), 405, "method_not_allowed")
    # not a method llhttp knows: 400 before the chain (no stage timed)
    helpers.assert_error(request(p, "BREW", "/api/items"), 400, "bad_request")
    for _ in range(2):
        helpers.assert_error(request(p, "GET", "/private/x"), 403, "forbidden")
    helpers.assert_error(request(p, "GET", "/dead/x"), 502, "bad_gateway")


@pytest.fixture(scope="module")
def scraped(mg):
    send_traffic(mg)
    r = scrape(mg)
    assert r.status == 200, r
    return r


def test_content_type_and_format(scraped):
    assert scraped.header("Content-Type") == CTYPE
    samples, types, helps = parse(scraped.body.decode("utf-8"))
    assert types == {
        "portcullis_requests_total": "counter",
        "portcullis_rate_limited_total": "counter",
        "portcullis_rate_limit_redis_errors_total": "counter",
        "portcullis_cache_requests_total": "counter",
        "portcullis_request_duration_seconds": "histogram",
        "portcullis_upstream_duration_seconds": "histogram",
        "portcullis_stage_duration_seconds": "histogram",
        "portcullis_connections_active": "gauge",
        "portcullis_log_dropped_total": "counter",
        "portcullis_config_reloads_total": "counter",
        "portcullis_webhook_dropped_total": "counter",
        "portcullis_circuit_state": "gauge",
    }
    assert set(helps) == set(types)


def test_circuit_state_per_target(scraped):
    s, _, _ = parse(scraped.body.decode())
    got = {dict(k[1])["upstream"]: v for k, v in s.items()
           if k[0] == "portcullis_circuit_state"}
    # one series per target; no circuit_breaker here: always 0 (closed),
    # even for the upstream whose target refused the connection
    assert got == {"backend": 0, "gone": 0}, got


def test_requests_total_exact(scraped):
    s, _, _ = parse(scraped.body.decode())
    got = {tuple(v for _, v in k[1]): int(n) for k, n in s.items()
           if k[0] == "portcullis_requests_total"}
    # labels sorted by name: method, route, status
    assert got == {
        ("GET", "api", "200"): 5,
        ("HEAD", "api", "200"): 2,
        ("POST", "api", "200"): 1,
        ("GET", "api", "503"): 2,
        ("GET", "", "404"): 3,
        ("DELETE", "", "405"): 1,
        ("OTHER", "", "405"): 1,
        ("OTHER", "", "400"): 1,
        ("GET", "private", "403"): 2,
        ("GET", "dead", "502"): 1,
    }, got


def check_histogram(s, name, label, value, count):
    buckets = [(k, v) for k, v in s.items() if k[0] == name + "_bucket"
               and dict(k[1]).get(label) == value]
    assert buckets, (name, value)
    les = [dict(k[1])["le"] for k, _ in buckets]
    assert les[-1] == "+Inf", les
    bounds = [float(x) for x in les[:-1]]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), les
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), (name, value, vals)  # cumulative
    assert vals[-1] == count, (name, value, vals, count)
    assert get(s, name + "_count", **{label: value}) == count
    total = get(s, name + "_sum", **{label: value})
    assert total >= 0
    return bounds, total


REQUEST_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                  5, 10]


def test_request_duration(scraped):
    s, _, _ = parse(scraped.body.decode())
    bounds, total = check_histogram(s, "portcullis_request_duration_seconds", "route", "api", 10)
    assert bounds == REQUEST_BOUNDS
    assert 0 < total < 30
    check_histogram(s, "portcullis_request_duration_seconds", "route", "", 6)
    check_histogram(s, "portcullis_request_duration_seconds", "route", "private", 2)
    check_histogram(s, "portcullis_request_duration_seconds", "route", "dead", 1)


def test_upstream_duration(scraped):
    s, _, _ = parse(scraped.body.decode())
    bounds, total = check_histogram(s, "portcullis_upstream_duration_seconds", "upstream",
                                    "backend", 10)
    assert bounds == REQUEST_BOUNDS
    assert 0 < total < 30
    # a failed attempt is timed too (until the failure)
    check_histogram(s, "portcullis_upstream_duration_seconds", "upstream", "gone", 1)
    assert not [k for k in s if k[0].startswith("portcullis_upstream_duration_seconds")
                and dict(k[1]).get("upstream") not in ("backend", "gone")]


def test_stage_duration(scraped):
    s, _, _ = parse(scraped.body.decode())
    stages = {dict(k[1])["stage"] for k in s if k[0] == "portcullis_stage_duration_seconds_count"}
    assert {"match", "acl", "route", "proxy"} <= stages, stages
    # every request but the 400 went through match; the 2 denied by the acl
    # stopped there; 11 reached proxy (10 api, 1 dead)
    check_histogram(s, "portcullis_stage_duration_seconds", "stage", "match", 18)
    check_histogram(s, "portcullis_stage_duration_seconds", "stage", "acl", 18)
    check_histogram(s, "portcullis_stage_duration_seconds", "stage", "route", 16)
    bounds, _ = check_histogram(s, "portcullis_stage_duration_seconds", "stage", "proxy", 11)
    assert bounds[0] == 0.000001 and bounds[-1] == 1, bounds


def test_gauges_and_global_counters(mg, scraped):
    s, _, _ = parse(scraped.body.decode())
    assert get(s, "portcullis_log_dropped_total") == 0
    assert get(s, "portcullis_webhook_dropped_total") == 0
    assert get(s, "portcullis_config_reloads_total", result="success") == 0
    assert get(s, "portcullis_config_reloads_total", result="failure") == 0
    assert ("portcullis_config_reloads_total", (("result", "success"),)) in s
    assert ("portcullis_config_reloads_total", (("result", "failure"),)) in s
    # two idle client connections are counted, and go away when closed
    c1, c2 = helpers.RawConn(mg.port), helpers.RawConn(mg.port)

    def active():
        ss, _, _ = parse(scrape(mg).body.decode())
        return get(ss, "portcullis_connections_active")
    try:
        helpers.wait_for(lambda: active() == 2, what="2 active connections")
    finally:
        c1.close()
        c2.close()
    helpers.wait_for(lambda: active() == 0, what="0 active connections")


def test_head_and_methods(mg):
    g = scrape(mg)
    h = scrape(mg, "HEAD")
    assert h.status == 200 and h.body == b""
    assert h.header("Content-Type") == CTYPE
    assert int(h.header("Content-Length")) > 0
    assert abs(int(h.header("Content-Length")) - len(g.body)) < 200
    r = scrape(mg, "POST")
    helpers.assert_error(r, 405, "method_not_allowed")


def test_open_with_admin_token(mg):
    assert scrape(mg).status == 200
    r = scrape(mg, headers=[("Authorization", "Bearer wrong")])
    assert r.status == 200 and b"portcullis_requests_total" in r.body
    # while /admin/* is guarded
    helpers.assert_error(request(mg.admin_port, "GET", "/admin/routes", host="127.0.0.1"),
                         401, "unauthorized")


def test_counts_only_grow(mg):
    s1, _, _ = parse(scrape(mg).body.decode())
    assert request(mg.port, "GET", "/api/again").status == 200
    s2, _, _ = parse(scrape(mg).body.decode())
    for k, v in s1.items():
        if k[0].endswith(("_total", "_bucket", "_count")) and \
                k[0] != "portcullis_connections_active":
            assert s2.get(k, 0) >= v, k
    assert get(s2, "portcullis_requests_total", route="api", method="GET", status="200") == \
        get(s1, "portcullis_requests_total", route="api", method="GET", status="200") + 1


def test_promtool_accepts_output(mg, scraped):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package 'prometheus', "
                    "scripts/install-deps.sh): output not checked by a Prometheus parser")
    for body in (scraped.body, scrape(mg).body):
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
        assert r.returncode == 0, (r.stdout.decode(), r.stderr.decode())


def test_waiting_stage_timed_until_resume(env, tmp_path):
    """A stage that waits (validate reading a json_schema body) is timed
    from its on_request call until it resumes the chain: a body sent 0.4 s
    after the head puts the validate stage's observation above 0.25 s,
    while match stays fast."""
    schema = tmp_path / "obj.json"
    schema.write_text('{"type": "object"}')
    up = env.upstream("s")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "schema", "match": {"path": "/schema"}, "upstream": "u",
               "validate": {"json_schema": str(schema)}}]
    gw = env.gateway(helpers.base_config(port, admin, {"u": helpers.upstream_conf(up)},
                                         routes))
    body = b'{"a": 1}'
    with helpers.RawConn(port) as c:
        c.send(helpers.build_request("POST", "/schema/x",
                                     [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))]))
        time.sleep(0.4)
        c.send(body)
        assert c.read_response("POST").status == 200
    s, _, _ = parse(scrape(gw).body.decode())
    name = "portcullis_stage_duration_seconds"
    _, total = check_histogram(s, name, "stage", "validate", 1)
    assert 0.35 <= total < 5, total
    assert get(s, name + "_bucket", stage="validate", le="0.25") == 0
    assert get(s, name + "_bucket", stage="validate", le="1") == 1
    _, fast = check_histogram(s, name, "stage", "match", 1)
    assert fast < 0.1, fast
    _, after = check_histogram(s, name, "stage", "proxy", 1)
    assert after < 0.35, after
