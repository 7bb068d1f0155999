"""The HTTP cache end to end (CONTRACT §2 `cache`, §3 step 8, §4 "Cache
rules", §5 purge and portcullis_cache_requests_total, §7 `cache`; RFC 9111,
RFC 5861). Each test names the requirement it checks and counts the
requests that reached the recording upstream (its /doc/N marker: headers
from the query, X-Seq = how many requests of that exact target came
before, conditional requests answered 304)."""

import json
import socket
import threading
import time
from email.utils import formatdate
from urllib.parse import urlencode

import pytest

import helpers
from helpers import request
from upstream import doc_bytes

_n = [0]


def uniq():
    _n[0] += 1
    return "%d-%d" % (int(time.time() * 1000) % 10000000, _n[0])


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    env = helpers.Env(d)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "c", "match": {"path": "/c"}, "upstream": "a",
         "cache": {"ttl": "30s", "max_object_bytes": "64k"}},
        {"name": "cz", "match": {"path": "/cz"}, "upstream": "a",
         "cache": {"ttl": "30s"}, "compress": {"min_bytes": 100}},
        {"name": "cget", "match": {"path": "/cget"}, "upstream": "a",
         "cache": {"methods": ["GET"]}},
        {"name": "plain", "match": {"path": "/p"}, "upstream": "a"},
    ]
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                              workers=2, cache={"memory": "4m"},
                              log={"access": str(d / "access.log")})
    g = env.gateway(cfg)
    g.up = up
    g.access = d / "access.log"
    yield g
    env.close()


def doc(prefix, n=200, **q):
    """A /doc target with a unique path and the given response headers."""
    path = "%s/%s/doc/%d" % (prefix, uniq(), n)
    return path + ("?" + urlencode(q) if q else "")


def get(gw, target, headers=None, method="GET"):
    return request(gw.port, method, target, headers=list((headers or {}).items()))


def upstream_count(gw, target):
    return sum(1 for e in gw.up.requests() if e["target"] == target)


def test_miss_then_hit_with_age_rfc9111_s4_2(gw):
    """§4.2.1 max-age freshness; §4.2.3 Age on the hit; X-Cache (CONTRACT §4)."""
    t = doc("/c", cc="max-age=60")
    r1 = get(gw, t)
    assert r1.status == 200 and r1.header("X-Cache") == "MISS"
    assert r1.body == doc_bytes(200)
    r2 = get(gw, t)
    assert r2.status == 200 and r2.header("X-Cache") == "HIT"
    assert r2.body == doc_bytes(200)
    assert r2.header("Age") is not None and 0 <= int(r2.header("Age")) <= 2
    assert r2.header("X-Seq") == "0"
    assert upstream_count(gw, t) == 1


def test_age_includes_upstream_age_rfc9111_s4_2_3(gw):
    """§4.2.3: corrected_age_value = age_value + response_delay."""
    t = doc("/c", cc="max-age=600", age="100")
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "HIT"
    assert 100 <= int(r.header("Age")) <= 102


def test_max_age_exhausted_by_age_is_stale_rfc9111_s4_2(gw):
    """§4.2: a response whose Age exceeds max-age is stale at once."""
    t = doc("/c", cc="max-age=10", age="50")
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2


def test_s_maxage_overrides_max_age_rfc9111_s5_2_2_10(gw):
    """§5.2.2.10: a shared cache uses s-maxage over max-age."""
    t = doc("/c", cc="max-age=0, s-maxage=60")
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "HIT"
    assert upstream_count(gw, t) == 1


def test_expires_minus_date_rfc9111_s5_3(gw):
    """§4.2.1 / §5.3: Expires - Date gives the freshness lifetime."""
    now = time.time()
    t = doc("/c", date=formatdate(now, usegmt=True), expires=formatdate(now + 60, usegmt=True))
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "HIT"
    past = doc("/c", date=formatdate(now, usegmt=True), expires=formatdate(now - 60, usegmt=True))
    get(gw, past)
    assert get(gw, past).header("X-Cache") == "MISS"
    assert upstream_count(gw, past) == 2


def test_invalid_expires_is_in_the_past_rfc9111_s5_3(gw):
    """§5.3: an invalid Expires ("0") means already expired."""
    t = doc("/c", expires="0")
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2


def test_route_ttl_is_the_heuristic_default_rfc9111_s4_2_2(gw):
    """§4.2.2: no explicit freshness, heuristically cacheable 200: the
    route's ttl; a status that is not heuristically cacheable (500) is not
    stored without explicit freshness."""
    t = doc("/c")
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "HIT"
    t2 = doc("/c", status="500")
    get(gw, t2)
    assert get(gw, t2).header("X-Cache") == "MISS"
    assert upstream_count(gw, t2) == 2


def test_route_without_ttl_stores_only_explicit_freshness_rfc9111_s4_2_2(gw):
    t = "/cget/%s/doc/10" % uniq()
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "MISS"
    t2 = doc("/cget", cc="max-age=60")
    get(gw, t2)
    assert get(gw, t2).header("X-Cache") == "HIT"


@pytest.mark.parametrize("cc", ["no-store", "private", 'private="X-A"', "max-age=60, no-store"])
def test_no_store_and_private_not_stored_rfc9111_s5_2_2_5_s5_2_2_7(gw, cc):
    """§5.2.2.5 no-store, §5.2.2.7 private: a shared cache does not store."""
    t = doc("/c", cc=cc)
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2


def test_no_cache_stored_and_always_revalidated_rfc9111_s5_2_2_4(gw):
    """§5.2.2.4: no-cache: stored, but validated before every reuse; a 304
    serves the stored body (§4.3.3)."""
    t = doc("/c", cc="no-cache", etag='"v1"')
    get(gw, t)
    r = get(gw, t)
    assert r.status == 200 and r.body == doc_bytes(200)
    assert r.header("X-Cache") == "HIT"
    reqs = [e for e in gw.up.requests() if e["target"] == t]
    assert len(reqs) == 2
    assert helpers.req_headers(reqs[1]).get("if-none-match") == ['"v1"']


def test_revalidation_with_last_modified_rfc9111_s4_3_1(gw):
    """§4.3.1: If-Modified-Since from the stored Last-Modified."""
    lm = formatdate(time.time() - 3600, usegmt=True)
    t = doc("/c", cc="max-age=0", lm=lm)
    get(gw, t)
    r = get(gw, t)
    assert r.status == 200 and r.body == doc_bytes(200)
    reqs = [e for e in gw.up.requests() if e["target"] == t]
    assert len(reqs) == 2
    assert helpers.req_headers(reqs[1]).get("if-modified-since") == [lm]


def test_304_updates_stored_headers_rfc9111_s4_3_4(gw):
    """§4.3.4: the 304's fields replace the stored ones (X-Seq here)."""
    t = doc("/c", cc="no-cache", etag='"v1"')
    assert get(gw, t).header("X-Seq") == "0"
    r = get(gw, t)
    assert r.header("X-Seq") == "1"  # from the 304, merged into the stored head
    r = get(gw, t)
    assert r.header("X-Seq") == "2" and r.body == doc_bytes(200)


def test_must_revalidate_never_served_stale_rfc9111_s5_2_2_2(gw):
    """§5.2.2.2: must-revalidate: a stale response is not served even when
    the client accepts stale ones (max-stale)."""
    t = doc("/c", cc="max-age=0, must-revalidate")
    get(gw, t)
    r = get(gw, t, {"Cache-Control": "max-stale=600"})
    assert r.header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2
    t2 = doc("/c", cc="max-age=0", etag='"m"')
    get(gw, t2)
    r = get(gw, t2, {"Cache-Control": "max-stale=600"})
    assert r.header("X-Cache") == "HIT"  # §5.2.1.2
    assert upstream_count(gw, t2) == 1


def test_proxy_revalidate_never_served_stale_rfc9111_s5_2_2_8(gw):
    t = doc("/c", cc="max-age=0, proxy-revalidate")
    get(gw, t)
    assert get(gw, t, {"Cache-Control": "max-stale"}).header("X-Cache") == "MISS"


def test_request_no_cache_goes_upstream_rfc9111_s5_2_1_4(gw):
    t = doc("/c", cc="max-age=60")
    get(gw, t)
    r = get(gw, t, {"Cache-Control": "no-cache"})
    assert r.header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2
    r = get(gw, t, {"Pragma": "no-cache"})  # §5.4
    assert upstream_count(gw, t) == 3


def test_request_max_age_rfc9111_s5_2_1_1(gw):
    t = doc("/c", cc="max-age=600", age="100")
    get(gw, t)
    assert get(gw, t, {"Cache-Control": "max-age=50"}).header("X-Cache") == "MISS"
    assert get(gw, t, {"Cache-Control": "max-age=500"}).header("X-Cache") == "HIT"


def test_request_min_fresh_rfc9111_s5_2_1_3(gw):
    t = doc("/c", cc="max-age=60")
    get(gw, t)
    assert get(gw, t, {"Cache-Control": "min-fresh=30"}).header("X-Cache") == "HIT"
    assert get(gw, t, {"Cache-Control": "min-fresh=120"}).header("X-Cache") == "MISS"


def test_only_if_cached_504_rfc9111_s5_2_1_7(gw):
    t = doc("/c", cc="max-age=60")
    r = get(gw, t, {"Cache-Control": "only-if-cached"})
    helpers.assert_error(r, 504, "gateway_timeout")
    assert upstream_count(gw, t) == 0
    get(gw, t)
    assert get(gw, t, {"Cache-Control": "only-if-cached"}).header("X-Cache") == "HIT"


def test_max_age_overflow_saturates_rfc9111_s1_2_2(gw):
    t = doc("/c", cc="max-age=99999999999999999999999")
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "HIT"


def test_vary_variants_rfc9111_s4_1(gw):
    """§4.1: the stored response is used only when the Vary-named request
    headers match (after normalisation); one object per variant."""
    t = doc("/c", cc="max-age=60", vary="X-Lang")
    assert get(gw, t, {"X-Lang": "en"}).header("X-Cache") == "MISS"
    assert get(gw, t, {"X-Lang": "de"}).header("X-Cache") == "MISS"
    assert get(gw, t, {"X-Lang": "en"}).header("X-Cache") == "HIT"
    assert get(gw, t, {"X-Lang": "de"}).header("X-Cache") == "HIT"
    assert get(gw, t).header("X-Cache") == "MISS"  # absent is its own variant
    assert upstream_count(gw, t) == 3


def test_vary_normalised_accept_encoding_rfc9111_s4_1(gw):
    t = doc("/c", cc="max-age=60", vary="Accept-Encoding")
    get(gw, t, {"Accept-Encoding": "gzip, br"})
    r = get(gw, t, {"Accept-Encoding": "GZIP,br"})
    assert r.header("X-Cache") == "HIT"


def test_vary_star_never_stored_rfc9111_s4_1(gw):
    t = doc("/c", cc="max-age=60", vary="*")
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "MISS"
    assert upstream_count(gw, t) == 2


def test_set_cookie_never_stored_contract_s4(gw):
    t = doc("/c", cc="max-age=60", cookie="sid=1")
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS" and r.header("Set-Cookie") == "sid=1"
    assert upstream_count(gw, t) == 2


def test_authorization_rfc9111_s3_5(gw):
    """§3.5: a response to a request with Authorization is stored only with
    public, s-maxage or must-revalidate."""
    auth = {"Authorization": "Basic dTpw"}
    t = doc("/c", cc="max-age=60")
    get(gw, t, auth)
    assert get(gw, t, auth).header("X-Cache") == "MISS"
    for cc in ("public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"):
        t = doc("/c", cc=cc)
        get(gw, t, auth)
        assert get(gw, t, auth).header("X-Cache") == "HIT", cc


def test_unsafe_method_invalidates_rfc9111_s4_4(gw):
    """§4.4: a successful POST invalidates the target URI and a same-origin
    Location / Content-Location."""
    t = doc("/c", cc="max-age=60")
    other = doc("/c", cc="max-age=60")
    get(gw, t)
    get(gw, other)
    assert get(gw, t).header("X-Cache") == "HIT"
    other_path = other
    r = request(gw.port, "POST", t + "&loc=" + "x", body=b"{}")
    # t itself differs by the loc query; post on t exactly:
    r = request(gw.port, "POST", t, body=b"{}")
    assert r.status == 200 and r.header("X-Cache") == "BYPASS"
    assert get(gw, t).header("X-Cache") == "MISS"
    # Location of the same origin
    poster = doc("/c", loc="http://e2e.test" + other_path)
    assert get(gw, other).header("X-Cache") == "HIT"
    request(gw.port, "POST", poster, body=b"{}")
    assert get(gw, other).header("X-Cache") == "MISS"


def test_failed_unsafe_method_does_not_invalidate_rfc9111_s4_4(gw):
    t = doc("/c", cc="max-age=60")
    get(gw, t)
    request(gw.port, "DELETE", doc("/c", status="500", cloc=t))
    assert get(gw, t).header("X-Cache") == "HIT"


def test_head_answered_from_stored_get_contract_s4(gw):
    t = doc("/c", n=5000, cc="max-age=60")
    get(gw, t)
    r = get(gw, t, method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("X-Cache") == "HIT"
    assert r.header("Content-Length") == "5000"
    assert upstream_count(gw, t) == 1


def test_head_miss_not_stored(gw):
    t = doc("/c", cc="max-age=60")
    r = get(gw, t, method="HEAD")
    assert r.header("X-Cache") == "MISS"
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS" and r.body == doc_bytes(200)
    assert get(gw, t).header("X-Cache") == "HIT"


def test_method_not_in_route_methods_bypass(gw):
    t = doc("/cget", cc="max-age=60")
    get(gw, t)
    r = get(gw, t, method="HEAD")
    assert r.header("X-Cache") == "BYPASS"


def test_206_not_stored_rfc9111_s3_3(gw):
    t = doc("/c", cc="max-age=60", status="206")
    get(gw, t)
    assert get(gw, t).header("X-Cache") == "MISS"


def test_over_max_object_bytes_streamed_not_stored(gw):
    t = doc("/c", n=100000, cc="max-age=60")
    r = get(gw, t)
    assert r.body == doc_bytes(100000)
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS" and r.body == doc_bytes(100000)
    t2 = doc("/c", n=100000, cc="max-age=60", chunked="1")  # length unknown upfront
    assert get(gw, t2).body == doc_bytes(100000)
    assert get(gw, t2).header("X-Cache") == "MISS"


def test_chunked_body_stored(gw):
    t = doc("/c", n=30000, cc="max-age=60", chunked="1")
    get(gw, t)
    r = get(gw, t)
    assert r.header("X-Cache") == "HIT" and r.body == doc_bytes(30000)


def test_aborted_upstream_body_not_stored(gw):
    """Only complete responses are stored: /dribble closes mid-body when the
    upstream read timeout... here the client leaves mid-body instead."""
    t = "/c/%s/dribble/50/20" % uniq()
    with helpers.RawConn(gw.port) as c:
        c.send(helpers.build_request("GET", t))
        c.read_head()
    time.sleep(0.2)
    r = get(gw, t)
    assert r.header("X-Cache") == "MISS"


def test_stale_if_error_rfc5861_s4(gw):
    t = doc("/c", cc="max-age=0, stale-if-error=600", etag='"e"', failfrom="1")
    r1 = get(gw, t)
    assert r1.status == 200
    r2 = get(gw, t)
    assert r2.status == 200 and r2.body == doc_bytes(200)
    assert r2.header("X-Cache") == "HIT"
    assert upstream_count(gw, t) == 2
    t2 = doc("/c", cc="max-age=0", etag='"e"', failfrom="1")
    get(gw, t2)
    assert get(gw, t2).status == 503  # no stale-if-error: the error passes


def test_stale_if_error_on_connect_failure_rfc5861_s4(tmp_path):
    """Upstream down (502 from the gateway): the stale object is served,
    and the access log says no error was sent."""
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a", "cache": {}}]
    log = tmp_path / "access.log"
    g = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                                        log={"access": str(log)}))
    try:
        t = "/c/x/doc/100?" + urlencode({"cc": "max-age=0, stale-if-error=60", "etag": '"e"'})
        assert request(port, "GET", t).status == 200
        up.stop()
        r = request(port, "GET", t)
        assert r.status == 200 and r.body == doc_bytes(100)
        assert r.header("X-Cache") == "HIT"
        rid = r.header("X-Request-Id")

        def entry():
            for x in open(log).read().splitlines():
                e = json.loads(x)
                if e["request_id"] == rid:
                    return e
        helpers.wait_for(lambda: entry() is not None, what="log line")
        e = entry()
        assert (e["status"], e["cache"], e["error"]) == (200, "HIT", None), e
    finally:
        env.close()


def test_stale_while_revalidate_rfc5861_s3(gw):
    """RFC 5861 §3: within stale-while-revalidate the stale object is served
    at once, and one revalidation runs in the background (a slow origin
    here); its 304 refreshes the stored object."""
    t = "/c/%s/sleep/800/doc/200?" % uniq() + urlencode(
        {"cc": "max-age=2, stale-while-revalidate=600", "etag": '"s"'})
    get(gw, t)
    time.sleep(3.1)
    t0 = time.time()
    a = get(gw, t)
    b = get(gw, t)
    took = time.time() - t0
    for r in (a, b):
        assert r.status == 200 and r.body == doc_bytes(200) and r.header("X-Cache") == "HIT"
        assert r.header("X-Seq") == "0" and int(r.header("Age")) >= 3
    assert took < 0.6, took  # neither waited for the 0.8 s revalidation
    helpers.wait_for(lambda: upstream_count(gw, t) == 2, timeout=5, what="revalidation")
    reqs = [e for e in gw.up.requests() if e["target"] == t]
    assert helpers.req_headers(reqs[1]).get("if-none-match") == ['"s"']
    # the upstream logs the request before its 0.8 s sleep: wait for the 304
    # to reach the store (the refreshed object is fresh for 2 s from then)
    time.sleep(0.95)
    c = get(gw, t)
    assert c.header("X-Cache") == "HIT" and c.header("X-Seq") == "1"  # refreshed
    assert int(c.header("Age")) <= 1 and c.body == doc_bytes(200)
    assert upstream_count(gw, t) == 2


def test_stale_while_revalidate_background_200_replaces(gw):
    """The background revalidation gets a full response (the validator no
    longer matches): it replaces the stored object."""
    path = "/c/%s/doc/%d" % (uniq(), 120)
    t = path + "?" + urlencode({"cc": "max-age=1, stale-while-revalidate=600", "lm": "x"})
    get(gw, t)
    time.sleep(2.1)
    assert get(gw, t).header("X-Seq") == "0"  # stale, revalidation started
    helpers.wait_for(lambda: upstream_count(gw, t) == 2, timeout=5, what="revalidation")
    time.sleep(0.3)
    r = get(gw, t)
    assert r.header("X-Cache") == "HIT" and r.header("X-Seq") == "1"


def test_collapsing_100_concurrent_misses_one_upstream_request(gw):
    t = "/c/%s/sleep/300/doc/1000?cc=max-age%%3D60" % uniq()
    res = [None] * 100
    start = threading.Barrier(100)

    def one(i):
        start.wait()
        res[i] = get(gw, t)
    th = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert all(r.status == 200 and r.body == doc_bytes(1000) for r in res)
    assert upstream_count(gw, t) == 1
    assert sum(1 for r in res if r.header("X-Cache") == "HIT") >= 90


def test_collapsing_not_storable_each_go_upstream(gw):
    t = "/c/%s/sleep/200/doc/100?cc=no-store" % uniq()
    res = [None] * 5
    th = [threading.Thread(target=lambda i=i: res.__setitem__(i, get(gw, t))) for i in range(5)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert all(r.status == 200 for r in res)
    assert upstream_count(gw, t) == 5


def test_slow_key_does_not_block_others(gw):
    slow = "/c/%s/sleep/1500/doc/10?cc=max-age%%3D60" % uniq()
    th = threading.Thread(target=lambda: get(gw, slow))
    th.start()
    time.sleep(0.1)
    t0 = time.time()
    r = get(gw, doc("/c", cc="max-age=60"))
    assert r.status == 200 and time.time() - t0 < 1.0
    th.join()


def test_waiter_client_leaving_is_safe(gw):
    t = "/c/%s/sleep/400/doc/100?cc=max-age%%3D60" % uniq()
    leader = threading.Thread(target=lambda: get(gw, t))
    leader.start()
    time.sleep(0.1)
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(helpers.build_request("GET", t))
        s.close()
    leader.join()
    assert get(gw, t).header("X-Cache") == "HIT"
    assert gw.alive()


def test_compressed_hit_decodes_to_upstream_bytes(gw):
    import gzip
    t = doc("/cz", n=5000, cc="max-age=60", ct="text/plain")
    r1 = get(gw, t, {"Accept-Encoding": "gzip"})
    assert r1.header("Content-Encoding") == "gzip"
    r2 = get(gw, t, {"Accept-Encoding": "gzip"})
    assert r2.header("X-Cache") == "HIT" and r2.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r2.body) == doc_bytes(5000)
    r3 = get(gw, t)
    assert r3.header("X-Cache") == "HIT" and r3.body == doc_bytes(5000)
    assert upstream_count(gw, t) == 1


def _decode(enc, data):
    import gzip
    import subprocess
    if enc == "gzip":
        return gzip.decompress(data)
    tool = {"br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}[enc]
    return subprocess.run(tool, input=data, stdout=subprocess.PIPE, check=True).stdout


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd"])
def test_compressed_hits_never_recompress(gw, enc):
    """Issue: compression of hits is cached per encoding. The miss stores
    the upstream's identity bytes and, at its end, the body it encoded for
    this client: every later hit in that coding is those very bytes, sent
    with a Content-Length (a body being encoded goes chunked). A hit in
    another coding is encoded once, then served as stored too."""
    other = "gzip" if enc != "gzip" else "zstd"
    t = doc("/cz", n=20000, cc="max-age=60", ct="application/json")
    r1 = get(gw, t, {"Accept-Encoding": enc})
    assert r1.header("X-Cache") == "MISS" and r1.header("Content-Encoding") == enc
    assert r1.header("Content-Length") is None  # encoded as it streamed
    for _ in range(2):
        r = get(gw, t, {"Accept-Encoding": enc})
        assert r.header("X-Cache") == "HIT" and r.header("Content-Encoding") == enc
        assert r.header("Content-Length") == str(len(r1.body))
        assert r.body == r1.body  # the stored encoding, byte for byte
    assert _decode(enc, r1.body) == doc_bytes(20000)
    o1 = get(gw, t, {"Accept-Encoding": other})
    assert o1.header("X-Cache") == "HIT" and o1.header("Content-Length") is None
    o2 = get(gw, t, {"Accept-Encoding": other})
    assert o2.header("Content-Length") == str(len(o1.body)) and o2.body == o1.body
    assert _decode(other, o2.body) == doc_bytes(20000)
    h = get(gw, t, {"Accept-Encoding": enc}, method="HEAD")
    assert h.header("Content-Length") == str(len(r1.body)) and h.body == b""
    assert h.header("Content-Encoding") == enc
    ident = get(gw, t)
    assert ident.header("Content-Encoding") is None and ident.body == doc_bytes(20000)
    assert upstream_count(gw, t) == 1


def test_stored_codings_survive_a_304_refresh_rfc9111_s4_3_4(gw):
    """A 304 refreshes the stored head and keeps the body (§4.3.4), and with
    it the codings made from that body; the weak ETag follows the new head."""
    t = doc("/cz", n=5000, cc="no-cache", etag='"r1"', ct="text/plain")
    r1 = get(gw, t, {"Accept-Encoding": "gzip"})
    assert r1.header("ETag") == 'W/"r1"'
    r2 = get(gw, t, {"Accept-Encoding": "gzip"})  # revalidated: 304 upstream
    assert r2.header("X-Cache") == "HIT" and r2.header("X-Seq") == "1"
    assert r2.header("Content-Length") == str(len(r1.body)) and r2.body == r1.body
    assert r2.header("ETag") == 'W/"r1"'
    reqs = [e for e in gw.up.requests() if e["target"] == t]
    assert len(reqs) == 2


def test_large_hit_outlives_a_purge_while_being_sent(gw):
    """A large hit is sent from the stored block itself (no copy); a purge
    while the client reads slowly frees nothing under it: every byte
    arrives (ASan watches the gateway)."""
    import http.client
    t = doc("/cz", n=900000, cc="max-age=60", ct="application/octet-stream")
    assert get(gw, t).header("X-Cache") == "MISS"
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", gw.port))
    s.sendall(helpers.build_request("GET", t))
    time.sleep(0.3)  # the gateway has queued the whole body by reference
    r = admin_post(gw, "/admin/cache/purge", {"path": t.split("?")[0]})
    assert r.status == 200 and json.loads(r.body)["purged"] == 1
    s.settimeout(10)
    resp = http.client.HTTPResponse(s)
    resp.begin()
    assert resp.status == 200 and resp.getheader("X-Cache") == "HIT"
    assert resp.getheader("Content-Length") == "900000"
    assert resp.read() == doc_bytes(900000)
    s.close()
    assert get(gw, t).header("X-Cache") == "MISS"
    assert gw.alive()


def admin_post(gw, path, body):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return request(gw.admin_port, "POST", path, body=data,
                   headers=[("Content-Type", "application/json")], host="127.0.0.1")


def test_purge_contract_s5(gw):
    base = "/c/%s/doc/50" % uniq()
    a, b = base + "?cc=max-age%3D60", base + "?cc=max-age%3D60&x=1"
    other = doc("/cz", cc="max-age=60")
    for t in (a, b, other):
        get(gw, t)
        assert get(gw, t).header("X-Cache") == "HIT"
    r = admin_post(gw, "/admin/cache/purge", {"path": base})
    assert r.status == 200 and r.json() == {"purged": 2}
    assert get(gw, a).header("X-Cache") == "MISS"
    r = admin_post(gw, "/admin/cache/purge", {"route": "cz", "path": "/nothing"})
    assert r.json() == {"purged": 0}
    r = admin_post(gw, "/admin/cache/purge", {"route": "cz"})
    assert r.json()["purged"] >= 1
    assert get(gw, other).header("X-Cache") == "MISS"
    r = admin_post(gw, "/admin/cache/purge", {})
    assert r.status == 200 and r.json()["purged"] >= 1
    assert get(gw, a).header("X-Cache") == "MISS"
    helpers.assert_error(admin_post(gw, "/admin/cache/purge", b"[1]"), 400, "bad_request")
    helpers.assert_error(admin_post(gw, "/admin/cache/purge", {"route": 1}), 400, "bad_request")
    r = request(gw.admin_port, "GET", "/admin/cache/purge", host="127.0.0.1")
    helpers.assert_error(r, 405, "method_not_allowed")
    assert r.header("Allow") == "POST"


def test_metric_and_access_log(gw):
    t = doc("/c", cc="max-age=60")
    get(gw, t, headers={"X-Request-Id": "cache-log-first"})
    get(gw, t, headers={"X-Request-Id": "cache-log-second"})
    get(gw, "/p/x")
    text = request(gw.admin_port, "GET", "/metrics", host="127.0.0.1").body.decode()
    assert 'portcullis_cache_requests_total{route="c",result="hit"}' in text
    assert 'portcullis_cache_requests_total{route="c",result="miss"}' in text

    def lines():
        return [json.loads(x) for x in open(gw.access).read().splitlines() if x]
    helpers.wait_for(lambda: any(e["path"] == "/p/x" for e in lines()), what="log")
    # Two workers: the writer takes each worker's ring in turn, so lines of
    # requests a few ms apart on different workers need not be in time
    # order; each request is found by its id.
    by_id = {e["request_id"]: e for e in lines()}
    es = [by_id["cache-log-first"], by_id["cache-log-second"]]
    assert all(e["path"] == t.split("?")[0] for e in es)
    assert [e["cache"] for e in es] == ["MISS", "HIT"]
    assert [e["cache"] for e in lines() if e["path"] == "/p/x"] == [None]


def test_memory_budget_under_scan(tmp_path):
    """A scan of 10x the budget (4 MiB budget, 40 MiB of distinct objects):
    RSS stays bounded, and an object hit during the scan survives it
    (segmented LRU)."""
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a",
               "cache": {"ttl": "60s", "max_object_bytes": "64k"}}]
    # the optimised build: ASan's quarantine would hide the bound
    g = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                                        workers=2, cache={"memory": "4m"}),
                    binary=helpers.REL_BIN, name="gw-rel")
    try:
        hot = "/c/hot/doc/20000?cc=max-age%3D600"
        request(port, "GET", hot)
        request(port, "GET", hot)
        base = helpers.rss_kib(g.pid)
        peak = base
        for i in range(1024):  # 1024 x 40 KB = 40 MiB
            r = request(port, "GET", "/c/scan%d/bytes/40000" % i)
            assert r.status == 200
            if i % 64 == 0:
                assert request(port, "GET", hot).header("X-Cache") == "HIT"
                peak = max(peak, helpers.rss_kib(g.pid))
        assert request(port, "GET", hot).header("X-Cache") == "HIT"
        # the 4 MiB budget plus allocator slack, far below the 40 MiB scanned
        assert peak - base < 12 * 1024, (base, peak)
        print("RSS KiB: before scan %d, peak %d" % (base, peak))
    finally:
        env.close()


def test_client_conditional_on_a_hit_rfc9111_s4_3_2(gw):
    """§4.3.2: the client's If-None-Match / If-Modified-Since are evaluated
    against the stored response: 304 without a body, from the cache."""
    lm = formatdate(time.time() - 3600, usegmt=True)
    t = doc("/c", cc="max-age=60", etag='"k1"', lm=lm)
    get(gw, t)
    r = get(gw, t, {"If-None-Match": 'W/"zz", "k1"'})
    assert r.status == 304 and r.body == b"" and r.header("X-Cache") == "HIT"
    assert r.header("ETag") == '"k1"'
    r = get(gw, t, {"If-None-Match": '"other"'})
    assert r.status == 200 and r.body == doc_bytes(200)
    r = get(gw, t, {"If-Modified-Since": formatdate(time.time(), usegmt=True)})
    assert r.status == 304
    r = get(gw, t, {"If-Modified-Since": formatdate(time.time() - 7200, usegmt=True)})
    assert r.status == 200
    assert upstream_count(gw, t) == 1


def test_store_survives_reload(tmp_path):
    """CONTRACT §2: the memory cache is per process and kept across SIGHUP
    reloads; a reload that changes the route's other settings keeps the
    stored objects (the key does not depend on the generation)."""
    from test_reload import Reloader, write_config
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()

    def cfg(gen):
        routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a",
                   "cache": {"ttl": "60s"},
                   "headers": {"response": {"set": {"X-Gen": str(gen)}}}}]
        return helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                                   cache={"memory": "8m"})
    g = env.gateway(cfg(1))
    try:
        t = "/c/r/doc/300"
        assert request(port, "GET", t).header("X-Cache") == "MISS"
        write_config(g, cfg(2))
        ok, text = Reloader(g).reload()
        assert ok, text
        r = request(port, "GET", t)
        assert r.header("X-Cache") == "HIT" and r.body == doc_bytes(300)
        assert r.header("X-Gen") == "2"  # the new generation's rules on a hit
        assert sum(1 for e in up.requests() if e["target"] == t) == 1
    finally:
        env.close()


def test_stop_during_background_revalidation_is_clean(tmp_path):
    """A background revalidation still waiting on the origin when the
    gateway stops is cancelled (the sanitizer build exits clean)."""
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a", "cache": {}}]
    g = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                                        workers=2))
    try:
        t = "/c/%s/doc/100?" % uniq() + urlencode(
            {"cc": "max-age=1, stale-while-revalidate=600", "etag": '"z"'})
        slow = t.replace("/doc/", "/sleep/3000/doc/")
        request(port, "GET", slow)  # 3 s: stale right away
        time.sleep(1.1)
        r = request(port, "GET", slow)
        assert r.status == 200 and r.header("X-Cache") == "HIT"
        helpers.wait_for(lambda: sum(1 for e in up.requests() if e["target"] == slow) == 2,
                         what="revalidation sent")
        g.stop()  # exit 0 and no sanitizer report (checked by stop)
    finally:
        env.close()


def test_per_request_headers_not_stored(tmp_path):
    """The headers other stages add per request (RateLimit-*) are not
    stored: every hit gets its own; a 429 is never cached."""
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a",
               "cache": {"ttl": "60s"},
               "rate_limit": {"rate": 1, "per": "1h", "burst": 3}}]
    env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes))
    try:
        t = "/c/rl/doc/50"
        seen = [request(port, "GET", t) for _ in range(4)]
        assert [r.status for r in seen] == [200, 200, 200, 429]
        assert [r.header("X-Cache") for r in seen[:3]] == ["MISS", "HIT", "HIT"]
        assert [r.all("RateLimit-Remaining") for r in seen[:3]] == [["2"], ["1"], ["0"]]
        assert sum(1 for e in up.requests() if e["target"] == t) == 1
    finally:
        env.close()


def test_forced_stop_with_waiters_is_clean(tmp_path):
    """Collapsed waiters still queued when shutdown_timeout forces the
    stop are freed with their requests (the sanitizer build exits clean)."""
    env = helpers.Env(tmp_path)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a", "cache": {"ttl": "60s"}}]
    g = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                                        workers=2, limits={"shutdown_timeout": "1s"}))
    socks = []
    try:
        t = "/c/%s/sleep/4000/doc/10" % uniq()
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(helpers.build_request("GET", t))
            socks.append(s)
        helpers.wait_for(lambda: sum(1 for e in up.requests() if e["target"] == t) == 1,
                         what="the leader upstream")
        time.sleep(0.2)
        g.stop()  # forced after 1 s; exit 0, no sanitizer report
        assert sum(1 for e in up.requests() if e["target"] == t) == 1
    finally:
        for s in socks:
            s.close()
        env.close()
