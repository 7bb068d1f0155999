"""Active health checks (CONTRACT §2 upstreams.*.health_check): a GET of
`path` every `interval`; `unhealthy_after` failed checks take a target out
of the balancing, `healthy_after` passed ones bring it back; with every
target unhealthy the gateway answers 503 upstream_unavailable with
Retry-After without connecting; checks work over TLS, survive a reload by
target name and follow config changes."""

import re
import time

import helpers
from ctl_upstream import CtlUpstream, rewrite_and_reload
from helpers import assert_error, request, wait_for

FAST = {"path": "/healthz", "interval": "100ms", "timeout": "80ms",
        "healthy_after": 2, "unhealthy_after": 2}


def gw_config(targets, health=FAST, **up):
    port, admin = helpers.free_port(), helpers.free_port()
    u = helpers.upstream_conf(*targets, retries=0, **up)
    if health is not None:
        u["health_check"] = health
    return helpers.base_config(port, admin, {"u": u},
                               [{"name": "all", "match": {"path": "/"}, "upstream": "u"}])


def get(gw, path="/x"):
    return request(gw.port, "GET", path)


def healthy(gw, url):
    r = request(gw.admin_port, "GET", "/admin/upstreams", host="127.0.0.1")
    return {t["url"]: t["healthy"] for t in r.json()["upstreams"]["u"]["targets"]}[url]


def test_unhealthy_target_gets_no_traffic_then_recovers(env):
    a, b = CtlUpstream("a"), CtlUpstream("b")
    gw = env.gateway(gw_config([a.url, b.url]))
    wait_for(lambda: b.checks >= 2, what="health checks of b")
    assert healthy(gw, b.url)
    b.health_status = 503
    wait_for(lambda: not healthy(gw, b.url), timeout=5, what="b unhealthy")
    assert re.search(r"\[warn\] event target_unhealthy: upstream u target %s"
                     % re.escape(b.url), gw.stderr()), gw.stderr()
    n = b.counts()[0]
    for i in range(10):
        r = get(gw)
        assert r.status == 200 and r.json()["upstream"] == "a", r
    assert b.counts()[0] == n
    b.health_status = 200
    wait_for(lambda: healthy(gw, b.url), timeout=5, what="b healthy again")
    assert re.search(r"\[info\] event target_healthy: upstream u target %s"
                     % re.escape(b.url), gw.stderr()), gw.stderr()
    seen = {get(gw).json()["upstream"] for i in range(6)}
    assert seen == {"a", "b"}
    a.stop()
    b.stop()


def test_dead_target_is_marked_unhealthy_and_recovers(env):
    a, b = CtlUpstream("a"), CtlUpstream("b")
    gw = env.gateway(gw_config([a.url, b.url]))
    b.stop()
    wait_for(lambda: not healthy(gw, b.url), timeout=5, what="dead b unhealthy")
    for i in range(6):
        assert get(gw).json()["upstream"] == "a"
    b.start()
    wait_for(lambda: healthy(gw, b.url), timeout=5, what="b back")
    a.stop()
    b.stop()


def test_all_unhealthy_is_503_without_connecting(env):
    a = CtlUpstream("a")
    a.health_status = 500
    gw = env.gateway(gw_config([a.url], health=dict(FAST, interval="1s", timeout="500ms",
                                                    unhealthy_after=1)))
    wait_for(lambda: not healthy(gw, a.url), timeout=5, what="a unhealthy")
    n = a.counts()[0]
    r = get(gw)
    assert_error(r, 503, "upstream_unavailable")
    assert r.header("Retry-After") == "2"  # healthy_after checks, 1s apart
    assert a.counts()[0] == n  # no traffic request reached it
    a.stop()


def test_slow_check_times_out(env):
    # the health path sleeps longer than the timeout: the recording upstream's
    # /sleep/MS marker
    up = env.upstream("slow")
    gw = env.gateway(gw_config([up.url], health=dict(FAST, path="/sleep/500/healthz",
                                                      interval="300ms", timeout="100ms")))
    wait_for(lambda: not healthy(gw, up.url), timeout=5, what="slow target unhealthy")
    assert re.search(r"event target_unhealthy: .*\(timeout\)", gw.stderr()), gw.stderr()
    assert_error(get(gw), 503, "upstream_unavailable")


def test_https_target_checks(env, certs):
    crt, key = certs.localhost
    up = env.upstream("tls", tls_cert=crt, tls_key=key)
    gw = env.gateway(gw_config([up.url], ca_file=certs.ca))
    wait_for(lambda: len([e for e in up.requests() if e["target"] == "/healthz"]) >= 2,
             timeout=5, what="TLS health checks")
    assert healthy(gw, up.url)
    assert get(gw).status == 200
    # the same target checked on a path answering 500: unhealthy
    cfg = gw_config([up.url], ca_file=certs.ca,
                    health=dict(FAST, path="/status/500"))
    cfg["listen"], cfg["admin"] = gw.config["listen"], gw.config["admin"]
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    wait_for(lambda: not healthy(gw, up.url), timeout=5, what="TLS target unhealthy")


def test_tls_verification_failure_fails_checks(env, certs):
    crt, key = certs.rogue_localhost
    up = env.upstream("rogue", tls_cert=crt, tls_key=key)
    gw = env.gateway(gw_config([up.url], ca_file=certs.ca))
    wait_for(lambda: not healthy(gw, up.url), timeout=5, what="rogue target unhealthy")
    assert not [e for e in up.requests() if e["target"] == "/healthz"]


def test_health_survives_reload_and_follows_config(env):
    a, b = CtlUpstream("a"), CtlUpstream("b")
    b.health_status = 503
    cfg = gw_config([a.url, b.url])
    gw = env.gateway(cfg)
    wait_for(lambda: not healthy(gw, b.url), timeout=5, what="b unhealthy")
    # a reload with a longer interval: b stays unhealthy (state kept by name)
    cfg = gw_config([a.url, b.url], health=dict(FAST, interval="2s", timeout="1s"))
    cfg["listen"], cfg["admin"] = gw.config["listen"], gw.config["admin"]
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    assert not healthy(gw, b.url)
    c0 = b.checks
    time.sleep(0.6)
    # the new interval applies: the checks restart with the reload (one at
    # once), plus at most one of the old 100ms ones still in flight; the
    # old interval would have made about six
    assert b.checks - c0 <= 2
    for i in range(4):
        assert get(gw).json()["upstream"] == "a"
    # without health_check the target is healthy again at once
    cfg = gw_config([a.url, b.url], health=None)
    cfg["listen"], cfg["admin"] = gw.config["listen"], gw.config["admin"]
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    # the health-check thread takes the new generation right after the swap
    wait_for(lambda: healthy(gw, b.url), timeout=2, what="b healthy without checks")
    time.sleep(0.2)  # a check in flight at the reload may still land
    c0 = b.checks
    time.sleep(0.5)
    assert b.checks == c0  # no more checks
    # a new target added by reload gets checked
    c = CtlUpstream("c")
    c.health_status = 503
    cfg = gw_config([a.url, c.url])
    cfg["listen"], cfg["admin"] = gw.config["listen"], gw.config["admin"]
    ok, text = rewrite_and_reload(gw, cfg)
    assert ok, text
    wait_for(lambda: not healthy(gw, c.url), timeout=5, what="new target c unhealthy")
    for u in (a, b, c):
        u.stop()


def test_config_errors(tmp_path):
    cfg = gw_config(["http://127.0.0.1:1"],
                    health={"path": "no-slash", "interval": "1s", "timeout": "2s",
                            "healthy_after": 0, "unhealthy_after": 500})
    path = tmp_path / "bad.yaml"
    path.write_text(helpers.to_yaml(cfg))
    r = helpers.run_cli("-t", "-c", str(path))
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    want = ["invalid health_check path 'no-slash'",
            "health_check timeout (2000ms) must not exceed its interval (1000ms)",
            "value 0 for 'healthy_after' out of range 1..100",
            "value 500 for 'unhealthy_after' out of range 1..100"]
    for w in want:
        assert any(re.match(r"^%s:\d+:\d+: .*%s" % (re.escape(str(path)), re.escape(w)), ln)
                   for ln in lines), (w, lines)
    assert len(lines) == len(want), lines
