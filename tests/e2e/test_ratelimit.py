"""Local rate limits end to end (CONTRACT §2 rate_limit and "Rate-limit
keys", §3 step 5, §4 429 rate_limited and the RateLimit headers, §5
portcullis_rate_limited_total; docs/configuration.md "rate_limit"): a
burst then 429s with Retry-After, refill, the global block and a route's
override, keys by header and by client address, refused requests never
reaching the upstream, one bucket shared by two workers, buckets kept
across a SIGHUP reload, and `scope: cluster` refused at load without a
`redis` block (the cluster scope itself: test_ratelimit_redis.py)."""

import os
import threading
import time

import pytest

import helpers
import test_metrics
from helpers import assert_error, request, run_cli
from test_reload import Reloader, write_config


def routes():
    return [
        {"name": "burst", "match": {"path": "/burst"}, "upstream": "a",
         "rate_limit": {"rate": 1, "per": "1h", "burst": 3}},
        {"name": "refill", "match": {"path": "/refill"}, "upstream": "a",
         "rate_limit": {"rate": 4, "per": "1s", "burst": 1}},
        {"name": "glob", "match": {"path": "/glob"}, "upstream": "a"},
        {"name": "hdr", "match": {"path": "/hdr"}, "upstream": "a",
         "rate_limit": {"rate": 1, "per": "1h", "burst": 2, "key": "header:X-Api-Key"}},
        {"name": "shared", "match": {"path": "/shared"}, "upstream": "a",
         "rate_limit": {"rate": 1, "per": "1h", "burst": 10, "key": "route"}},
        {"name": "free", "match": {"path": "/free"}, "upstream": "a",
         "rate_limit": {"rate": 1000000, "per": "1s"}},
    ]


@pytest.fixture(scope="module")
def rl(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("ratelimit"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes(),
                              workers=2,
                              rate_limit={"rate": 1, "per": "1h", "burst": 2})
    gw = env.gateway(cfg)
    gw.up = up
    yield gw
    env.close()


def call(gw, path, source="127.0.0.2", headers=None):
    """GET on a fresh connection; (response, upstream requests it caused)."""
    mark = gw.up.mark()
    r = request(gw.port, "GET", path, headers=headers, source=source)
    return r, gw.up.since(mark, "req")


def test_burst_then_429_with_headers(rl):
    for i in range(3):
        r, ups = call(rl, "/burst/x")
        assert r.status == 200, r
        assert len(ups) == 1
        assert r.header("RateLimit-Limit") == "3"
        assert r.header("RateLimit-Remaining") == str(2 - i)
        assert r.header("RateLimit-Reset") == str(3600 * (i + 1))
        assert r.header("Retry-After") is None
    for _ in range(3):
        r, ups = call(rl, "/burst/x")
        assert_error(r, 429, "rate_limited")
        assert ups == [], "a refused request reached the upstream"
        assert r.json()["message"] == "rate limit exceeded for key 127.0.0.2"
        assert r.header("Retry-After") in ("3599", "3600"), r
        assert r.header("RateLimit-Limit") == "3"
        assert r.header("RateLimit-Remaining") == "0"
        assert 10799 <= int(r.header("RateLimit-Reset")) <= 10800
    # another client address has its own bucket
    r, ups = call(rl, "/burst/x", source="127.0.0.3")
    assert r.status == 200 and len(ups) == 1


def test_refill_after_waiting(rl):
    src = "127.0.0.4"
    r, _ = call(rl, "/refill", source=src)
    assert r.status == 200
    r, ups = call(rl, "/refill", source=src)
    assert_error(r, 429, "rate_limited")
    assert r.header("Retry-After") == "1"  # 250 ms, rounded up
    assert ups == []
    time.sleep(0.3)
    r, ups = call(rl, "/refill", source=src)
    assert r.status == 200 and len(ups) == 1
    assert r.header("RateLimit-Remaining") == "0"
    assert r.header("RateLimit-Reset") == "1"


def test_global_block_and_route_override(rl):
    src = "127.0.0.5"
    # /glob has no block: the global one (burst 2)
    for _ in range(2):
        assert call(rl, "/glob", source=src)[0].status == 200
    r, ups = call(rl, "/glob", source=src)
    assert_error(r, 429, "rate_limited")
    assert r.header("RateLimit-Limit") == "2" and ups == []
    # /burst's own block replaces it (burst 3), with its own buckets
    for _ in range(3):
        r, _ = call(rl, "/burst", source=src)
        assert r.status == 200 and r.header("RateLimit-Limit") == "3"
    # an unmatched path: the global block, then 404
    for _ in range(2):
        assert_error(call(rl, "/nowhere", source=src)[0], 404, "route_not_found")
    assert_error(call(rl, "/nowhere", source=src)[0], 429, "rate_limited")


def test_key_by_header_with_ip_fallback(rl):
    src = "127.0.0.6"
    for key in ("alice", "bob"):
        for _ in range(2):
            r, _ = call(rl, "/hdr", source=src, headers=[("X-Api-Key", key)])
            assert r.status == 200, r
        r, ups = call(rl, "/hdr", source=src, headers=[("X-Api-Key", key)])
        assert_error(r, 429, "rate_limited")
        assert r.json()["message"] == "rate limit exceeded for key header:X-Api-Key"
        assert ups == []
    # the same client from another address is still "alice"
    r, _ = call(rl, "/hdr", source="127.0.0.7", headers=[("X-Api-Key", "alice")])
    assert_error(r, 429, "rate_limited")
    # no header: the client address
    for _ in range(2):
        assert call(rl, "/hdr", source=src)[0].status == 200
    r, _ = call(rl, "/hdr", source=src)
    assert_error(r, 429, "rate_limited")
    assert r.json()["message"] == "rate limit exceeded for key 127.0.0.6"
    assert call(rl, "/hdr", source="127.0.0.8")[0].status == 200


def test_two_workers_share_one_bucket(rl):
    """key: route, burst 10: exactly 10 admitted over 40 connections that
    SO_REUSEPORT spreads over both workers, sent concurrently."""
    mark = rl.up.mark()
    statuses = []
    lock = threading.Lock()

    def client(n):
        for i in range(10):
            src = "127.0.%d.%d" % (n + 1, i + 1)
            r = request(rl.port, "GET", "/shared", source=src)
            with lock:
                statuses.append(r.status)

    ths = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) == 10, statuses
    assert len(rl.up.since(mark, "req")) == 10


def test_metric_counts_refusals(rl):
    before, _, _ = test_metrics.parse(test_metrics.scrape(rl).body.decode())
    src = "127.0.0.9"
    for _ in range(3):
        call(rl, "/burst", source=src)
    for _ in range(4):
        assert_error(call(rl, "/burst", source=src)[0], 429, "rate_limited")
    samples, types, _ = test_metrics.parse(test_metrics.scrape(rl).body.decode())
    assert types["portcullis_rate_limited_total"] == "counter"
    name = "portcullis_rate_limited_total"
    assert (test_metrics.get(samples, name, route="burst") -
            test_metrics.get(before, name, route="burst")) == 4
    assert test_metrics.get(samples, name, route="free") == 0


def test_limit_that_never_triggers(rl):
    for _ in range(20):
        r, _ = call(rl, "/free")
        assert r.status == 200
        assert r.header("RateLimit-Limit") == "1000000"


def test_buckets_survive_reload(env):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    rts = [{"name": "keep", "match": {"path": "/keep"}, "upstream": "a",
            "rate_limit": {"rate": 1, "per": "1h", "burst": 2}},
           {"name": "change", "match": {"path": "/change"}, "upstream": "a",
            "rate_limit": {"rate": 1, "per": "1h", "burst": 1}}]
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, rts,
                              workers=2)
    gw = env.gateway(cfg)
    for _ in range(2):
        assert request(gw.port, "GET", "/keep").status == 200
    assert_error(request(gw.port, "GET", "/keep"), 429, "rate_limited")
    assert request(gw.port, "GET", "/change").status == 200
    assert_error(request(gw.port, "GET", "/change"), 429, "rate_limited")
    # new generation: one more route first, /keep moved, /change's limit changed
    rts2 = [{"name": "extra", "match": {"path": "/extra"}, "upstream": "a"},
            dict(rts[0], match={"path": "/keep2"}),
            dict(rts[1], rate_limit={"rate": 1, "per": "1h", "burst": 5})]
    write_config(gw, helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                                         rts2, workers=2))
    ok, text = Reloader(gw).reload()
    assert ok, text
    for _ in range(4):  # every worker: both run the new generation
        r = request(gw.port, "GET", "/keep2")
        assert_error(r, 429, "rate_limited")
    r = request(gw.port, "GET", "/change")
    assert r.status == 200 and r.header("RateLimit-Limit") == "5"


def test_config_errors(tmp_path):
    path = os.path.join(str(tmp_path), "c.yaml")
    with open(path, "w") as f:
        f.write("listen: [{address: 127.0.0.1:1}]\n"
                "upstreams: {a: {targets: [{url: http://127.0.0.1:1}]}}\n"
                "rate_limit: {rate: 0, scope: cluster}\n"
                "routes:\n"
                "  - match: {path: /}\n"
                "    upstream: a\n"
                "    rate_limit: {rate: 5, key: cookie, per: 2d}\n")
    p = run_cli("-t", "-c", path)
    assert p.returncode == 1
    errs = p.stderr.strip().split("\n")
    assert "%s:3:20: value 0 for 'rate' out of range 1..1000000000" % path in errs
    assert ("%s:3:30: 'scope: cluster' needs the top-level 'redis' block "
            "(address of the shared Redis)" % path) in errs
    assert ("%s:7:32: invalid key 'cookie' (ip | route | header:NAME | claim:NAME)"
            % path) in errs
    assert "%s:7:45: value 2d for 'per' out of range 1ms..24h" % path in errs
