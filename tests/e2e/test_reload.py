"""SIGHUP reload (CONTRACT §1): a good file switches every worker to the
new generation between requests, in-flight requests finish on the one they
started with, no connection is dropped; a bad file (or a listen address
that cannot be bound) changes nothing and is reported as FILE:LINE:COL.
Listener changes apply: new addresses open before removed ones close."""

import http.client
import os
import re
import signal
import socket
import threading
import time

import pytest

import helpers
import test_metrics
from helpers import request


def write_config(gw, cfg):
    tmp = gw.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(cfg if isinstance(cfg, str) else helpers.to_yaml(cfg))
    os.replace(tmp, gw.conf_path)


class Reloader:
    """Sends SIGHUP and waits for the gateway's verdict line in stderr."""

    DONE = re.compile(r"configuration reloaded \(generation (\d+)\)|reload failed")

    def __init__(self, gw):
        self.gw = gw
        self.pos = 0

    def _new_lines(self):
        with open(self.gw.stderr_path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        return data[:cut].decode("utf-8", "replace")

    def reload(self, timeout=10.0):
        """Returns (ok, text of the lines logged by this reload)."""
        self._new_lines()
        self.gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text += self._new_lines()
            m = self.DONE.search(text)
            if m:
                return m.group(1) is not None, text
            time.sleep(0.005)
        raise AssertionError("no reload verdict after %.0fs:\n%s" % (timeout, text))


def gen_config(gw_port, admin_port, ups, gen, up_index=0, listens=None, workers=1,
               up_keys=None, **extra):
    """Route / to ups[up_index]; every response says which generation
    routed it (X-Gen, a route response header)."""
    upstreams = {"u%d" % i: helpers.upstream_conf(u, **(up_keys or {}))
                 for i, u in enumerate(ups)}
    cfg = helpers.base_config(
        gw_port, admin_port, upstreams,
        [{"name": "all", "match": {"path": "/"}, "upstream": "u%d" % up_index,
          "headers": {"response": {"set": {"X-Gen": str(gen)}}}}], **extra)
    cfg["workers"] = workers
    if listens:
        cfg["listen"] = [{"address": "127.0.0.1:%d" % p} for p in listens]
    return cfg


@pytest.fixture
def two_ups(env):
    return env.upstream(name="A"), env.upstream(name="B")


def test_reload_switches_routes_between_requests(env, two_ups):
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0))
    rl = Reloader(gw)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/x", headers={"Host": "e2e.test"})
    r = conn.getresponse()
    r.read()
    assert (r.status, r.getheader("X-Upstream"), r.getheader("X-Gen")) == (200, "A", "1")
    write_config(gw, gen_config(port, admin, two_ups, 2, 1))
    ok, text = rl.reload()
    assert ok, text
    assert "generation 2" in text
    # the same keep-alive connection, next request: the new generation
    conn.request("GET", "/x", headers={"Host": "e2e.test"})
    r = conn.getresponse()
    r.read()
    assert (r.status, r.getheader("X-Upstream"), r.getheader("X-Gen")) == (200, "B", "2")
    conn.close()
    r = request(port, "GET", "/y")
    assert r.status == 200 and r.header("x-upstream") == "B"


def test_in_flight_request_finishes_on_its_generation(env, two_ups):
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0))
    rl = Reloader(gw)
    out = {}

    def slow():
        out["r"] = request(port, "GET", "/sleep/800")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    write_config(gw, gen_config(port, admin, two_ups, 2, 1))
    ok, text = rl.reload()
    assert ok, text
    t.join(10)
    r = out["r"]
    assert r.status == 200
    assert r.header("x-upstream") == "A" and r.header("x-gen") == "1"
    assert request(port, "GET", "/z").header("x-gen") == "2"


def test_broken_file_keeps_the_old_config(env, two_ups):
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0))
    rl = Reloader(gw)
    good = helpers.to_yaml(gen_config(port, admin, two_ups, 2, 1))
    bad = good.replace("workers: 1", "workers: 1\nbogus_key: 1").replace(
        'shutdown_timeout: "5s"', 'shutdown_timeout: "5 parsecs"')
    write_config(gw, bad)
    ok, text = rl.reload()
    assert not ok
    path = re.escape(gw.conf_path)
    locs = re.findall(path + r":(\d+):(\d+): ", text)
    assert len(locs) >= 2, text  # every error, each as FILE:LINE:COL
    assert "bogus_key" in text and "configuration unchanged" in text
    r = request(port, "GET", "/x")
    assert r.status == 200 and r.header("x-upstream") == "A" and r.header("x-gen") == "1"
    # YAML that does not even parse
    write_config(gw, "routes: [\n")
    ok, text = rl.reload()
    assert not ok and re.search(path + r":\d+:\d+: ", text), text
    assert request(port, "GET", "/x").header("x-gen") == "1"
    # fixed: the next SIGHUP applies it as generation 2
    write_config(gw, good)
    ok, text = rl.reload()
    assert ok and "generation 2" in text, text
    assert request(port, "GET", "/x").header("x-gen") == "2"
    m = request(gw.admin_port, "GET", "/metrics", host="127.0.0.1")
    samples, _, _ = test_metrics.parse(m.body.decode())
    assert test_metrics.get(samples, "portcullis_config_reloads_total", result="failure") == 2
    assert test_metrics.get(samples, "portcullis_config_reloads_total", result="success") == 1


def test_listener_added_then_removed(env, two_ups):
    p1, p2, admin = helpers.free_port(), helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(p1, admin, two_ups, 1, 0, workers=2))
    rl = Reloader(gw)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p2), timeout=1).close()
    write_config(gw, gen_config(p1, admin, two_ups, 2, 0, listens=[p1, p2], workers=2))
    ok, text = rl.reload()
    assert ok, text
    for _ in range(4):  # both workers
        assert request(p2, "GET", "/x").header("x-gen") == "2"
    # a keep-alive connection on p1, open across p1's removal
    keep = http.client.HTTPConnection("127.0.0.1", p1, timeout=5)
    keep.request("GET", "/x", headers={"Host": "e2e.test"})
    keep.getresponse().read()
    write_config(gw, gen_config(p2, admin, two_ups, 3, 0, listens=[p2], workers=2))
    ok, text = rl.reload()
    assert ok, text
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p1), timeout=1).close()
    assert request(p2, "GET", "/x").header("x-gen") == "3"
    keep.request("GET", "/x", headers={"Host": "e2e.test"})
    r = keep.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("X-Gen") == "3"
    keep.close()


def test_address_taken_fails_the_reload(env, two_ups):
    p1, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(p1, admin, two_ups, 1, 0))
    rl = Reloader(gw)
    squat = socket.socket()
    squat.bind(("127.0.0.1", 0))
    squat.listen(1)
    taken = squat.getsockname()[1]
    try:
        write_config(gw, gen_config(p1, admin, two_ups, 2, 1, listens=[p1, taken]))
        ok, text = rl.reload()
        assert not ok and ("cannot listen on 127.0.0.1:%d" % taken) in text, text
        assert request(p1, "GET", "/x").header("x-gen") == "1"
    finally:
        squat.close()


def test_workers_change_is_logged_and_waits(env, two_ups):
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0, workers=1))
    rl = Reloader(gw)
    write_config(gw, gen_config(port, admin, two_ups, 2, 0, workers=2))
    ok, text = rl.reload()
    assert ok and "workers changed from 1 to 2: applies at the next start" in text, text
    assert request(port, "GET", "/x").header("x-gen") == "2"


def test_removed_target_loses_its_idle_connections(env, two_ups):
    port, admin = helpers.free_port(), helpers.free_port()
    a, b = two_ups
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0))
    rl = Reloader(gw)
    for _ in range(3):
        assert request(port, "GET", "/x").header("x-upstream") == "A"
    assert not a.events("close")
    # generation 2 has no upstream A at all
    cfg = gen_config(port, admin, [b], 2, 0)
    write_config(gw, cfg)
    ok, text = rl.reload()
    assert ok, text
    # the gateway closed its pooled connection to A: A sees end of stream
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not a.events("close"):
        time.sleep(0.05)
    assert a.events("close"), "idle pooled connection to the removed target still open"
    assert request(port, "GET", "/x").header("x-upstream") == "B"


def test_reload_under_load_loses_nothing(env, two_ups):
    """Keep-alive clients (GETs, POSTs with bodies, slow responses and a
    body streamed slowly across reloads) while the file changes 50 times:
    zero errors, and every connection sees generations in order."""
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0, workers=2))
    rl = Reloader(gw)
    stop = threading.Event()
    errors, counts = [], {"n": 0}
    lock = threading.Lock()

    def client(kind):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        last = 0
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if kind == "get":
                    conn.request("GET", "/g/%d" % i, headers={"Host": "e2e.test"})
                elif kind == "post":
                    body = os.urandom(20000)
                    conn.request("POST", "/sink", body=body,
                                 headers={"Host": "e2e.test", "Content-Type": "application/octet-stream"})
                elif kind == "slow":
                    conn.request("GET", "/sleep/120", headers={"Host": "e2e.test"})
                else:  # a body dribbled over ~300 ms
                    conn.putrequest("POST", "/sink", skip_host=True)
                    conn.putheader("Host", "e2e.test")
                    conn.putheader("Content-Length", "3000")
                    conn.endheaders()
                    for _ in range(6):
                        conn.send(b"x" * 500)
                        time.sleep(0.05)
                r = conn.getresponse()
                data = r.read()
                gen = int(r.getheader("X-Gen") or 0)
                if r.status != 200:
                    raise AssertionError("status %d: %r" % (r.status, data[:200]))
                if kind in ("post", "dribble"):
                    want = 20000 if kind == "post" else 3000
                    if b'"body_len": %d' % want not in data:
                        raise AssertionError("body mangled: %r" % data[:200])
                if gen < last:
                    raise AssertionError("generation went back from %d to %d" % (last, gen))
                last = gen
                with lock:
                    counts["n"] += 1
            except Exception as e:  # noqa: BLE001 - any failure is a lost request
                with lock:
                    errors.append("%s: %r" % (kind, e))
                return

    threads = [threading.Thread(target=client, args=(k,))
               for k in ("get", "get", "post", "slow", "dribble")]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        for gen in range(2, 52):
            write_config(gw, gen_config(port, admin, two_ups, gen, gen % 2, workers=2))
            ok, text = rl.reload()
            assert ok, text
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors
    assert counts["n"] > 100, counts
    print("reload under load: %d requests across 50 reloads, 0 errors" % counts["n"])
    for _ in range(4):
        r = request(port, "GET", "/last")
        assert r.status == 200 and r.header("x-gen") == "51"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_thousand_reloads_no_fd_or_memory_growth(env, two_ups):
    # the optimised build: ASan's quarantine would hide what is measured
    port, admin = helpers.free_port(), helpers.free_port()
    # no pooled upstream connections: the descriptor count is then exact
    nopool = {"keepalive": 0}
    gw = env.gateway(gen_config(port, admin, two_ups, 1, 0, workers=2, up_keys=nopool),
                     binary=helpers.REL_BIN, name="gw-rel")
    rl = Reloader(gw)
    cfgs = [helpers.to_yaml(gen_config(port, admin, two_ups, g, g % 2, workers=2,
                                       up_keys=nopool))
            for g in range(2)]

    def reloads(n):
        for i in range(n):
            write_config(gw, cfgs[i % 2])
            ok, text = rl.reload()
            assert ok, text
            if i % 50 == 0:
                assert request(port, "GET", "/x").status == 200

    reloads(100)  # warm up: allocator arenas, pools, caches
    time.sleep(11)  # one allocator trim period
    rss0, fds0 = helpers.rss_kib(gw.pid), fd_count(gw.pid)
    reloads(1000)
    time.sleep(11)
    rss1, fds1 = helpers.rss_kib(gw.pid), fd_count(gw.pid)
    assert fds1 <= fds0, "descriptors %d -> %d after 1000 reloads" % (fds0, fds1)
    assert rss1 <= rss0 + 1024, "RSS %d KiB -> %d KiB after 1000 reloads" % (rss0, rss1)
    print("1000 reloads: RSS %d -> %d KiB, fds %d -> %d" % (rss0, rss1, fds0, fds1))
