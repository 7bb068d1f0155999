"""`scope: cluster` against a real 3-master Redis Cluster made by the test
(redis-cli --cluster create; CONTRACT §2 "a Redis Cluster node works too
(slots, MOVED/ASK followed)"): the gateway is given one node, finds the
slot map, and sends each decision to its key's master; keys in different
slots are decided independently and exactly; a slot migrated by hand
(SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE) while requests
flow keeps every decision correct (ASK, then MOVED), the bucket moving
with its key; a master restarted mid-load stops only its own keys
(on_error) and they come back when it does."""

import threading
import time

import pytest

import helpers
import redis_util
from helpers import assert_error, request

BURST = 5


def config(up, cluster, on_error="deny"):
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(
        port, admin, {"a": helpers.upstream_conf(up)},
        [{"name": "k", "match": {"path": "/k"}, "upstream": "a",
          "rate_limit": {"rate": 1, "per": "1h", "burst": BURST,
                         "key": "header:X-Key", "scope": "cluster"}}],
        redis={"address": "127.0.0.1:%d" % cluster.nodes[1].port,
               "timeout": "500ms", "on_error": on_error},
        workers=2)
    cfg["log"]["level"] = "debug"  # the client logs redirections at debug
    return cfg


def redis_key(value):
    return "{pc:rl:k:V:%s}" % value.encode().hex()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    redis_util.require_redis()
    c = redis_util.Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def env(tmp_path):
    e = helpers.Env(tmp_path)
    yield e
    e.close()


def keys_on_each_master(cluster, prefix, n=2):
    """n key values per master, whose bucket keys live on that master."""
    found = {s.port: [] for s in cluster.nodes}
    for i in range(10000):
        if all(len(l) == n for l in found.values()):
            break
        v = "%s-%d" % (prefix, i)
        port = cluster.node_of_slot(cluster.keyslot(redis_key(v))).port
        if len(found[port]) < n:
            found[port].append(v)
    assert all(len(l) == n for l in found.values()), found
    return [v for l in found.values() for v in l]


def hit(gw, value):
    return request(gw.port, "GET", "/k", headers=[("X-Key", value)])


def test_keys_in_every_slot_range(env, cluster):
    up = env.upstream("a")
    gw = env.gateway(config(up, cluster))
    values = keys_on_each_master(cluster, "spread")
    for v in values:
        for i in range(BURST):
            r = hit(gw, v)
            assert r.status == 200, (v, i, r)
            assert r.header("RateLimit-Remaining") == str(BURST - 1 - i)
        r = hit(gw, v)
        assert_error(r, 429, "rate_limited")
    # the seed (node 1) is asked first: keys of other masters are sent
    # straight to them from the slot map, never redirected
    assert "MOVED" not in gw.stderr() and "ASK" not in gw.stderr()
    assert "cluster, 3 slot ranges" in gw.stderr()
    # each bucket is on its own slot's master, nowhere else
    for v in values:
        slot = cluster.keyslot(redis_key(v))
        owner = cluster.node_of_slot(slot)
        for s in cluster.nodes:
            c = s.client()
            try:
                n = c.call("EXISTS", redis_key(v))
            except redis_util.RespError as e:
                assert s is not owner and str(e).startswith("MOVED"), e
                n = 0
            c.close()
            assert n == (1 if s is owner else 0), (v, s.port)


def migrate_slot(cluster, slot, src, dst, between=None):
    """Moves slot from src to dst by hand, calling between() after the
    keys moved and before the slot is reassigned (ASK time)."""
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    d, s = dst.client(), src.client()
    d.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    s.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    while True:
        keys = s.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        s.call("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
    if between:
        between()
    for n in [dst, src] + [x for x in cluster.nodes if x not in (src, dst)]:
        c = n.client()
        c.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        c.close()
    d.close()
    s.close()


def test_slot_migration_mid_load(env, cluster):
    up = env.upstream("a")
    gw = env.gateway(config(up, cluster, on_error="deny"))
    value = keys_on_each_master(cluster, "migr", n=1)[0]
    slot = cluster.keyslot(redis_key(value))
    src = cluster.node_of_slot(slot)
    dst = next(n for n in cluster.nodes if n is not src)
    others = [v for v in keys_on_each_master(cluster, "other", n=1)]
    statuses = []
    # background load on other keys during the whole migration
    stop = threading.Event()
    bg = []

    def load():
        while not stop.is_set():
            for v in others:
                bg.append(hit(gw, v + "-bg").status)

    t = threading.Thread(target=load)
    t.start()
    try:
        for _ in range(2):  # two tokens taken on src
            statuses.append(hit(gw, value).status)

        def during():  # the key is on dst, the slot still src's: ASK
            statuses.append(hit(gw, value).status)

        migrate_slot(cluster, slot, src, dst, between=during)
        for _ in range(BURST):  # MOVED, then dst directly
            statuses.append(hit(gw, value).status)
    finally:
        stop.set()
        t.join(30)
    assert 503 not in statuses, statuses
    # the bucket moved with its key: exactly BURST admitted in all
    assert statuses.count(200) == BURST, statuses
    assert statuses.count(429) == len(statuses) - BURST, statuses
    assert bg and 503 not in bg, bg
    c = dst.client()
    assert c.call("EXISTS", redis_key(value)) == 1
    c.close()
    assert cluster.node_of_slot(slot) is dst
    log = gw.stderr()
    assert "redis: ASK slot %d -> 127.0.0.1:%d" % (slot, dst.port) in log, log
    assert "redis: MOVED slot %d -> 127.0.0.1:%d" % (slot, dst.port) in log, log


def test_master_restart_mid_load(env, cluster):
    up = env.upstream("a")
    gw = env.gateway(config(up, cluster, on_error="deny"))
    values = keys_on_each_master(cluster, "restart", n=1)
    victim_value = values[0]
    victim = cluster.node_of_slot(cluster.keyslot(redis_key(victim_value)))
    survivors = values[1:]
    assert hit(gw, victim_value).status == 200
    victim.stop()
    try:
        t0 = time.monotonic()
        r = hit(gw, victim_value)
        assert time.monotonic() - t0 < 2.0
        assert_error(r, 503, "upstream_unavailable")
        # the other masters keep deciding
        for v in survivors:
            r = hit(gw, v)
            assert r.status == 200 and r.header("RateLimit-Limit") == str(BURST), r
    finally:
        victim.start()  # same port, same nodes.conf: same slots
    helpers.wait_for(lambda: hit(gw, victim_value).status == 200, timeout=15,
                     what="decisions for the restarted master's keys")
    r = hit(gw, victim_value)
    assert r.status == 200 and r.header("RateLimit-Limit") == str(BURST), r
    for v in survivors:
        assert hit(gw, v).status == 200
