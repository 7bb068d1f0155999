"""Circuit breaker (CONTRACT §2 upstreams.*.circuit_breaker, §3 step 7, §4
503 upstream_unavailable with Retry-After, §5 /admin/upstreams and
portcullis_circuit_state): circuits open after consecutive failures
(connect errors, failure_statuses), the gateway then answers without
connecting, a half-open probe closes or reopens the circuit, other targets
take the traffic, and the state survives a SIGHUP reload."""

import re
import time

import helpers
from ctl_upstream import CtlUpstream, rewrite_and_reload
from helpers import assert_error, request


def gw_config(targets, breaker=None, retries=0, balance=None, **up):
    port, admin = helpers.free_port(), helpers.free_port()
    u = helpers.upstream_conf(*targets, retries=retries, **up)
    if breaker is not None:
        u["circuit_breaker"] = breaker
    if balance:
        u["balance"] = balance
    return helpers.base_config(port, admin, {"u": u},
                               [{"name": "all", "match": {"path": "/"}, "upstream": "u"}])


def get(gw, path="/x"):
    return request(gw.port, "GET", path)


def admin(gw, path):
    return request(gw.admin_port, "GET", path, host="127.0.0.1")


def targets(gw):
    r = admin(gw, "/admin/upstreams")
    assert r.status == 200, r
    return {t["url"]: t for t in r.json()["upstreams"]["u"]["targets"]}


def circuit_metric(gw, url):
    text = admin(gw, "/metrics").body.decode()
    m = re.search(r'^portcullis_circuit_state\{upstream="u",target="%s"\} (\d+)$'
                  % re.escape(url), text, re.M)
    assert m, text
    return int(m.group(1))


def test_opens_after_failures_then_fails_fast_without_connecting(env):
    up = CtlUpstream("a")
    up.status = 503  # in the default failure_statuses
    gw = env.gateway(gw_config([up.url], {"failures": 3, "open_for": "2s"}))
    for i in range(3):
        r = get(gw)
        assert r.status == 503 and r.json()["upstream"] == "a", r  # proxied
    assert targets(gw)[up.url]["circuit"] == "open"
    assert circuit_metric(gw, up.url) == 2
    before = up.counts()
    t0 = time.monotonic()
    for i in range(5):
        r = get(gw)
        doc = assert_error(r, 503, "upstream_unavailable")
        ra = int(r.header("Retry-After"))
        assert 1 <= ra <= 2, r
    assert time.monotonic() - t0 < 2
    # from the upstream's side: no request and no new connection
    assert up.counts() == before
    assert "circuit_open" in gw.stderr()
    assert re.search(r"\[warn\] event circuit_open: upstream u target %s"
                     % re.escape(up.url), gw.stderr()), gw.stderr()
    up.stop()


def test_half_open_probe_success_closes(env):
    up = CtlUpstream("a")
    up.status = 502
    gw = env.gateway(gw_config([up.url], {"failures": 2, "open_for": "1s"}))
    assert get(gw).status == 502
    assert get(gw).status == 502
    assert_error(get(gw), 503, "upstream_unavailable")
    up.status = 200
    time.sleep(1.1)
    r = get(gw)  # the probe
    assert r.status == 200 and r.json()["upstream"] == "a", r
    assert targets(gw)[up.url]["circuit"] == "closed"
    assert circuit_metric(gw, up.url) == 0
    for i in range(5):
        assert get(gw).status == 200
    err = gw.stderr()
    assert re.search(r"\[info\] event circuit_half_open: upstream u", err), err
    assert re.search(r"\[info\] event circuit_closed: upstream u", err), err
    up.stop()


def test_half_open_probe_failure_reopens(env):
    up = CtlUpstream("a")
    up.status = 504
    gw = env.gateway(gw_config([up.url], {"failures": 1, "open_for": "1s"}))
    assert get(gw).status == 504
    assert_error(get(gw), 503, "upstream_unavailable")
    time.sleep(1.1)
    n = up.counts()[0]
    assert get(gw).status == 504  # the probe reached it and failed
    assert up.counts()[0] == n + 1
    assert targets(gw)[up.url]["circuit"] == "open"
    r = get(gw)
    assert_error(r, 503, "upstream_unavailable")
    assert r.header("Retry-After") == "1"
    assert up.counts()[0] == n + 1
    up.stop()


def test_dying_and_recovering_upstream(env):
    up = CtlUpstream("a")
    gw = env.gateway(gw_config([up.url], {"failures": 3, "open_for": "1s"}))
    assert get(gw).status == 200
    up.stop()  # connection refused from now on
    for i in range(3):
        assert_error(get(gw), 502, "bad_gateway")
    assert targets(gw)[up.url]["circuit"] == "open"
    assert_error(get(gw), 503, "upstream_unavailable")
    up.start()  # back, same port
    time.sleep(1.1)
    assert get(gw).status == 200
    assert targets(gw)[up.url]["circuit"] == "closed"
    up.stop()


def test_failure_statuses_are_configurable(env):
    up = CtlUpstream("a")
    up.status = 503
    gw = env.gateway(gw_config([up.url], {"failures": 2, "open_for": "5s",
                                         "failure_statuses": [500]}))
    for i in range(4):  # 503 is not a failure here
        assert get(gw).status == 503
    assert targets(gw)[up.url]["circuit"] == "closed"
    up.status = 500
    assert get(gw).status == 500
    assert get(gw).status == 500
    assert targets(gw)[up.url]["circuit"] == "open"
    assert_error(get(gw), 503, "upstream_unavailable")
    up.stop()


def test_other_targets_take_the_traffic(env):
    bad, good = CtlUpstream("bad"), CtlUpstream("good")
    bad.status = 503
    gw = env.gateway(gw_config([bad.url, good.url], {"failures": 2, "open_for": "10s"}))
    seen = [get(gw).json()["upstream"] for i in range(4)]  # round robin
    assert seen.count("bad") == 2, seen
    assert targets(gw)[bad.url]["circuit"] == "open"
    n = bad.counts()
    for i in range(10):
        r = get(gw)
        assert r.status == 200 and r.json()["upstream"] == "good", r
    assert bad.counts() == n
    bad.stop()
    good.stop()


def test_retry_goes_to_an_admitting_target(env):
    dead, good = CtlUpstream("dead"), CtlUpstream("good")
    dead.stop()
    gw = env.gateway(gw_config([dead.url, good.url], {"failures": 2, "open_for": "10s"},
                               retries=1))
    for i in range(6):  # the dead one's connect errors are retried on the good one
        r = get(gw)
        assert r.status == 200 and r.json()["upstream"] == "good", r
    assert targets(gw)[dead.url]["circuit"] == "open"
    assert targets(gw)[good.url]["circuit"] == "closed"
    good.stop()


def test_ip_hash_and_least_conn_skip_open_circuits(env):
    for bal in ("ip_hash", "least_conn"):
        a, b = CtlUpstream("a"), CtlUpstream("b")
        gw = env.gateway(gw_config([a.url, b.url], {"failures": 1, "open_for": "10s"},
                                   balance=bal))
        first = get(gw).json()["upstream"]
        broken = a if first == "a" else b
        other = b if broken is a else a
        broken.status = 502
        for i in range(4):  # ip_hash keeps sending it there until it opens
            r = get(gw)
            if r.status == 502:
                break
        assert targets(gw)[broken.url]["circuit"] == "open"
        n = broken.counts()
        for i in range(6):
            r = get(gw)
            assert r.status == 200 and r.json()["upstream"] == other.name, (bal, r)
        assert broken.counts() == n
        gw.stop()
        a.stop()
        b.stop()


def test_admin_upstreams_shape(env):
    a, b = CtlUpstream("a"), CtlUpstream("b")
    cfg = gw_config([a.url], {"failures": 1, "open_for": "10s"})
    cfg["upstreams"]["v"] = helpers.upstream_conf(b.url)
    gw = env.gateway(cfg)
    assert get(gw).status == 200
    r = admin(gw, "/admin/upstreams")
    assert r.status == 200 and r.header("Content-Type").startswith("application/json")
    doc = r.json()
    assert set(doc) == {"upstreams"}
    assert set(doc["upstreams"]) == {"u", "v"}
    t = doc["upstreams"]["u"]["targets"]
    assert len(t) == 1
    assert set(t[0]) == {"url", "healthy", "circuit", "active", "idle"}
    assert t[0]["url"] == a.url and t[0]["healthy"] is True
    assert t[0]["circuit"] == "closed"
    assert t[0]["active"] == 0 and t[0]["idle"] == 1  # the pooled connection
    assert doc["upstreams"]["v"]["targets"] == [
        {"url": b.url, "healthy": True, "circuit": "closed", "active": 0, "idle": 0}]
    # an upstream without a breaker never shows an open circuit
    b.status = 502
    for i in range(3):
        assert get(gw, "/x").status == 200
    text = admin(gw, "/metrics").body.decode()
    assert "# TYPE portcullis_circuit_state gauge" in text
    assert 'portcullis_circuit_state{upstream="v",target="%s"} 0' % b.url in text
    a.stop()
    b.stop()


def test_admin_upstreams_needs_the_token(env):
    a = CtlUpstream("a")
    cfg = gw_config([a.url], {"failures": 1})
    cfg["admin"]["token"] = "tok"
    gw = env.gateway(cfg)
    assert_error(admin(gw, "/admin/upstreams"), 401, "unauthorized")
    r = request(gw.admin_port, "GET", "/admin/upstreams", host="127.0.0.1",
                headers=[("Authorization", "Bearer tok")])
    assert r.status == 200 and "u" in r.json()["upstreams"]
    a.stop()


def test_circuit_state_survives_reload_and_removed_target_is_dropped(env):
    a, b = CtlUpstream("a"), CtlUpstream("b")
    a.status = 503
    cfg = gw_config([a.url, b.url], {"failures": 1, "open_for": "30s"})
    gw = env.gateway(cfg)
    while targets(gw)[a.url]["circuit"] != "open":
        get(gw)
    cfg["routes"][0]["headers"] = {"response": {"set": {"X-Gen": "2"}}}
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    assert targets(gw)[a.url]["circuit"] == "open"
    n = a.counts()
    for i in range(4):
        r = get(gw)
        assert r.status == 200 and r.header("X-Gen") == "2" and r.json()["upstream"] == "b"
    assert a.counts() == n
    # a reload without the target drops its state; adding it back starts closed
    cfg2 = gw_config([b.url], {"failures": 1, "open_for": "30s"})
    cfg2["listen"], cfg2["admin"] = cfg["listen"], cfg["admin"]
    ok, text = rewrite_and_reload(gw, cfg2)
    assert ok, text
    assert list(targets(gw)) == [b.url]
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    assert targets(gw)[a.url]["circuit"] == "closed"
    a.stop()
    b.stop()


def test_config_errors(env, tmp_path):
    cfg = gw_config(["http://127.0.0.1:1"], {"failures": 0, "open_for": "soon",
                                             "half_open_requests": 1001,
                                             "failure_statuses": [200, 700],
                                             "colour": "red"})
    path = tmp_path / "bad.yaml"
    path.write_text(helpers.to_yaml(cfg))
    r = helpers.run_cli("-t", "-c", str(path))
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    want = ["value 0 for 'failures' out of range 1..1000",
            "invalid duration 'soon' for 'open_for'",
            "value 1001 for 'half_open_requests' out of range 1..1000",
            "value 700 for 'failure_statuses' out of range 100..599",
            "unknown key 'colour' in circuit_breaker"]
    for w in want:
        assert any(re.match(r"^%s:\d+:\d+: .*%s" % (re.escape(str(path)), re.escape(w)), ln)
                   for ln in lines), (w, lines)
    assert len(lines) == len(want), lines


def test_admin_config_shows_the_blocks_with_defaults(env):
    a = CtlUpstream("a")
    cfg = gw_config([a.url], {"failure_statuses": [504, 500]})
    cfg["upstreams"]["u"]["health_check"] = {"interval": "300ms"}
    gw = env.gateway(cfg)
    doc = admin(gw, "/admin/config").json()
    u = doc["upstreams"]["u"]
    assert u["circuit_breaker"] == {"failures": 5, "failure_statuses": [500, 504],
                                    "open_for": "30s", "half_open_requests": 1}
    assert u["health_check"] == {"path": "/healthz", "interval": "300ms",
                                 "timeout": "300ms", "healthy_after": 2,
                                 "unhealthy_after": 3}
    a.stop()
