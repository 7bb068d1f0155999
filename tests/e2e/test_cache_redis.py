"""The cache's `store: redis` (CONTRACT §2 `cache.store: memory | redis
(shared by all instances)`; issue 11; docs/configuration.md "cache") with
real redis-server processes: two gateway processes sharing one Redis (an
object stored through one is a HIT on the other, one upstream request in
all, the right Age), objects over the Redis bound kept local only, Redis
down at start, stopped mid-way, stuck, or holding a corrupt entry: always
a MISS that is proxied, never an error; an unsafe method removes the
Redis entry."""

import time

import pytest

import helpers
import redis_util
from helpers import request
from upstream import doc_bytes

_n = [0]


def uniq():
    _n[0] += 1
    return "%d-%d" % (int(time.time() * 1000) % 10000000, _n[0])


def doc(n=200, **q):
    path = "/c/%s/doc/%d" % (uniq(), n)
    if q:
        path += "?" + "&".join("%s=%s" % kv for kv in q.items())
    return path


def gw_config(up, redis_port, timeout="500ms", **extra):
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [{"name": "c", "match": {"path": "/c"}, "upstream": "a",
               "cache": {"ttl": "30s"}}]
    return helpers.base_config(
        port, admin, {"a": helpers.upstream_conf(up)}, routes,
        redis={"address": "127.0.0.1:%d" % redis_port, "timeout": timeout},
        cache={"memory": "8m", "store": "redis"}, **extra)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    redis_util.require_redis()
    s = redis_util.Server(tmp_path_factory.mktemp("redis")).start()
    yield s
    s.stop()


@pytest.fixture
def env(tmp_path):
    redis_util.require_redis()
    e = helpers.Env(tmp_path)
    yield e
    e.close()


def cache_keys(server):
    c = server.client()
    keys = c.call("KEYS", "{pc:c:*")
    c.close()
    return sorted(k.decode() for k in keys)


def flush(server):
    c = server.client()
    c.call("FLUSHALL")
    c.close()


def upstream_count(up, target):
    return sum(1 for e in up.requests() if e["target"] == target)


def get(gw, target):
    return request(gw.port, "GET", target)


def test_two_gateways_share_objects(env, redis):
    flush(redis)
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port, workers=2), name="gwb")
    t = doc(cc="max-age=60", etag='"e1"')
    r = get(a, t)
    assert r.status == 200 and r.header("X-Cache") == "MISS"
    helpers.wait_for(lambda: len(cache_keys(redis)) == 1, what="the Redis entry")
    for _ in range(3):  # both workers of b: Redis, then each one's memory
        r = get(b, t)
        assert r.status == 200 and r.header("X-Cache") == "HIT", r
        assert r.body == doc_bytes(200)
        assert r.header("ETag") == '"e1"'
        assert 0 <= int(r.header("Age")) <= 2
    assert get(a, t).header("X-Cache") == "HIT"
    assert upstream_count(up, t) == 1
    # the entry's TTL: the freshness left (60 s), not more
    c = redis.client()
    ttl = c.call("PTTL", cache_keys(redis)[0])
    c.close()
    assert 50000 <= ttl <= 60000, ttl


def test_age_on_a_redis_hit(env, redis):
    """RFC 9111 §4.2.3 across instances: the stored times are absolute, so
    the Age on the other instance counts the upstream's Age and the time
    spent in Redis."""
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port), name="gwb")
    t = doc(cc="max-age=600", age="100")
    assert get(a, t).header("X-Cache") == "MISS"
    time.sleep(2.1)
    r = get(b, t)
    assert r.header("X-Cache") == "HIT"
    assert 102 <= int(r.header("Age")) <= 104, r.header("Age")
    assert upstream_count(up, t) == 1


def test_vary_mismatch_is_a_miss(env, redis):
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port), name="gwb")
    t = doc(cc="max-age=60", vary="Accept-Language")
    request(a.port, "GET", t, headers=[("Accept-Language", "fr")])
    r = request(b.port, "GET", t, headers=[("Accept-Language", "de")])
    assert r.status == 200 and r.header("X-Cache") == "MISS"
    r = request(b.port, "GET", t, headers=[("Accept-Language", "de")])
    assert r.header("X-Cache") == "HIT"
    assert upstream_count(up, t) == 2


def test_big_object_stays_local(env, redis):
    """Objects whose Redis form is over 256 KiB are not written to Redis."""
    flush(redis)
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port), name="gwb")
    big = doc(300000, cc="max-age=60")
    assert get(a, big).header("X-Cache") == "MISS"
    r = get(a, big)
    assert r.header("X-Cache") == "HIT" and len(r.body) == 300000
    small = doc(cc="max-age=60")
    get(a, small)
    helpers.wait_for(lambda: len(cache_keys(redis)) == 1, what="the small entry")
    time.sleep(0.3)
    assert len(cache_keys(redis)) == 1  # the small one only
    assert get(b, big).header("X-Cache") == "MISS"
    assert upstream_count(up, big) == 2
    assert get(b, small).header("X-Cache") == "HIT"


def test_corrupt_entry_is_a_miss(env, redis):
    flush(redis)
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port), name="gwb")
    t = doc(cc="max-age=60")
    get(a, t)
    helpers.wait_for(lambda: len(cache_keys(redis)) == 1, what="the Redis entry")
    c = redis.client()
    key = cache_keys(redis)[0]
    c.call("SET", key, b"PCC1\n5\nnope!200\n")
    c.close()
    r = get(b, t)
    assert r.status == 200 and r.header("X-Cache") == "MISS"
    assert r.body == doc_bytes(200)
    assert upstream_count(up, t) == 2


def one_stored_entry(env, redis):
    """A gateway with one object stored, its Redis entry written; (gw, target)."""
    flush(redis)
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    t = doc(cc="max-age=60")
    get(a, t)
    helpers.wait_for(lambda: len(cache_keys(redis)) == 1, what="the Redis entry")
    return a, t


def test_unsafe_method_removes_the_entry(env, redis):
    """RFC 9111 §4.4 reaches Redis: the target's entry is deleted."""
    a, t = one_stored_entry(env, redis)
    r = request(a.port, "POST", t, body=b"x")
    assert r.status == 200
    helpers.wait_for(lambda: cache_keys(redis) == [], what="the entry deleted")


def test_location_invalidation_reaches_redis(env, redis):
    """RFC 9111 §4.4: a same-origin Location of a successful POST deletes
    that URI's Redis entry too, so no instance takes it back."""
    from urllib.parse import urlencode
    a, t = one_stored_entry(env, redis)
    poster = "/c/%s/doc/10?%s" % (uniq(), urlencode({"loc": "http://e2e.test" + t}))
    assert request(a.port, "POST", poster, body=b"{}").status == 200
    helpers.wait_for(lambda: cache_keys(redis) == [], what="the entry deleted")


def test_stale_redis_entry_is_revalidated_rfc9111_s4_3_1(env, redis):
    """A stale entry read from Redis is revalidated with its validators
    (§4.3.1) like a stale local one: a 304 serves the stored body, which is
    not fetched again."""
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    b = env.gateway(gw_config(up, redis.port), name="gwb")
    t = doc(2000, cc="max-age%3D1,stale-if-error%3D600", etag='"v"')
    assert get(a, t).header("X-Cache") == "MISS"
    time.sleep(1.6)
    r = get(b, t)
    assert r.status == 200 and r.header("X-Cache") == "HIT", r
    assert r.body == doc_bytes(2000)
    reqs = [e for e in up.requests() if e["target"] == t]
    assert len(reqs) == 2
    assert helpers.req_headers(reqs[1]).get("if-none-match") == ['"v"']


def admin_purge(gw, body):
    import json
    return request(gw.admin_port, "POST", "/admin/cache/purge",
                   body=json.dumps(body).encode(),
                   headers=[("Content-Type", "application/json")], host="127.0.0.1")


@pytest.mark.parametrize("what", ["path", "route", "all"])
def test_purge_holds_against_redis_contract_s5(env, redis, what):
    """CONTRACT §5 purge with store: redis: the purged object is not taken
    back from its Redis entry (written before the purge); that entry is
    deleted when met; the next response is fetched and stored again."""
    flush(redis)
    up = env.upstream("a")
    a = env.gateway(gw_config(up, redis.port), name="gwa")
    t = doc(cc="max-age=60")
    assert get(a, t).header("X-Cache") == "MISS"
    helpers.wait_for(lambda: len(cache_keys(redis)) == 1, what="the Redis entry")
    key = cache_keys(redis)[0]
    body = {"path": t.split("?")[0]} if what == "path" else \
        {"route": "c"} if what == "route" else {}
    r = admin_purge(a, body)
    assert r.status == 200 and json_of(r)["purged"] == 1
    r = get(a, t)
    assert r.status == 200 and r.header("X-Cache") == "MISS"
    assert r.body == doc_bytes(200)
    assert upstream_count(up, t) == 2
    assert get(a, t).header("X-Cache") == "HIT"
    assert upstream_count(up, t) == 2
    # another path is not touched by a path purge
    if what == "path":
        u = doc(cc="max-age=60")
        get(a, u)
        helpers.wait_for(lambda: len(cache_keys(redis)) == 2, what="two entries")
        admin_purge(a, {"path": "/elsewhere"})
        assert get(a, u).header("X-Cache") == "HIT"
    assert key in cache_keys(redis)  # stored again after the miss


def json_of(r):
    import json
    return json.loads(r.body)


def test_redis_down_at_start_and_mid_way(env, tmp_path):
    """Redis down = a miss, proxied; the memory level keeps working."""
    up = env.upstream("a")
    port = helpers.free_port()
    gw = env.gateway(gw_config(up, port, timeout="200ms"))
    t = doc(cc="max-age=60")
    for want in ("MISS", "HIT"):
        t0 = time.monotonic()
        r = get(gw, t)
        assert time.monotonic() - t0 < 2.0
        assert r.status == 200 and r.header("X-Cache") == want, r
    server = redis_util.Server(tmp_path, port=port).start()
    try:
        t2 = doc(cc="max-age=60")
        helpers.wait_for(lambda: get(gw, doc(cc="max-age=60")) and
                         len(cache_keys(server)) > 0, timeout=10,
                         what="writes to Redis after it started")
        get(gw, t2)
    finally:
        server.stop()
    for _ in range(3):  # stopped mid-way
        t3 = doc(cc="max-age=60")
        r = get(gw, t3)
        assert r.status == 200 and r.header("X-Cache") == "MISS", r
        assert r.body == doc_bytes(200)
        assert get(gw, t3).header("X-Cache") == "HIT"
    assert get(gw, t2).header("X-Cache") == "HIT"
    assert gw.alive()


def test_stuck_redis_is_a_miss_within_the_timeout(env):
    up = env.upstream("a")
    silent = redis_util.Silent()
    try:
        gw = env.gateway(gw_config(up, silent.port, timeout="100ms"))
        for _ in range(3):
            t = doc(cc="max-age=60")
            t0 = time.monotonic()
            r = get(gw, t)
            assert time.monotonic() - t0 < 2.0
            assert r.status == 200 and r.header("X-Cache") == "MISS", r
        assert gw.alive()
        gw.stop()
    finally:
        silent.close()
