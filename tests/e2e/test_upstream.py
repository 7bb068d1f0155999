"""Upstream side (CONTRACT §2 upstreams, §3 step 9, §4 502/504): pooling,
stale pooled connections, failures and timeouts, retries, balancing, and
HTTPS upstreams (verification, CA file, SNI)."""

import random
import re
import signal
import socket
import struct
import threading
import time

import pytest

import helpers
from helpers import RawConn, assert_error, build_request, req_headers, request


def gateway(env, upstreams, routes=None, **extra):
    port, admin = helpers.free_port(), helpers.free_port()
    routes = routes or [{"name": "all", "match": {"path": "/"}, "upstream": "u"}]
    return env.gateway(helpers.base_config(port, admin, upstreams, routes, **extra))


def dead_url():
    return "http://127.0.0.1:%d" % helpers.free_port()


# ---------------------------------------------------------------- pooling


def test_pooling_few_upstream_connections(env):
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, keepalive=8)}, workers=2)
    for c in range(5):
        with RawConn(gw.port) as conn:
            for i in range(10):
                conn.send(build_request("GET", "/pool/%d/%d" % (c, i)))
                assert conn.read_response().status == 200
    assert len(up.requests()) == 50
    n = up.connections()
    assert n <= 4, "50 sequential requests used %d upstream connections" % n


def test_pooled_connection_idle_closed_by_upstream(env):
    up = env.upstream("a", idle_close_ms=200)
    gw = gateway(env, {"u": helpers.upstream_conf(up, idle_timeout="60s")})
    for i in range(4):
        r = request(gw.port, "GET", "/idle/%d" % i)
        assert r.status == 200, "request %d after the upstream idle-closed: %r" % (i, r)
        time.sleep(0.5)
    assert len(up.events("idle_close")) >= 2, "upstream never idle-closed (test ineffective)"


def test_stale_pooled_connection_retried_fresh(env):
    """The upstream reads the second request on a connection and closes it
    without answering: the gateway must resend on a fresh connection, even
    with retries: 0, since nothing reached the client yet."""
    up = env.upstream("a", drop_after=1)
    gw = gateway(env, {"u": helpers.upstream_conf(up, retries=0)})
    with RawConn(gw.port) as c:
        for i in range(10):
            c.send(build_request("GET", "/stale/%d" % i))
            r = c.read_response()
            assert r.status == 200, "request %d on a stale pooled connection: %r" % (i, r)
    assert len(up.events("dropped")) >= 1, "pooled connection never reused (test ineffective)"
    assert len(up.requests()) == 10


def test_upstream_closing_after_each_answer(env):
    """The upstream closes right after every answer without saying so."""
    up = env.upstream("a", max_requests=1)
    gw = gateway(env, {"u": helpers.upstream_conf(up, retries=0)})
    with RawConn(gw.port) as c:
        for i in range(20):
            c.send(build_request("GET", "/once/%d" % i))
            assert c.read_response().status == 200, i


# ---------------------------------------------------------------- failures


def test_connect_refused_502(env):
    gw = gateway(env, {"u": helpers.upstream_conf(dead_url(), retries=0)})
    t0 = time.monotonic()
    assert_error(request(gw.port, "GET", "/x"), 502, "bad_gateway")
    assert time.monotonic() - t0 < 2


def test_upstream_closes_without_answer_502(env):
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, retries=0)})
    assert_error(request(gw.port, "GET", "/close"), 502, "bad_gateway")
    assert request(gw.port, "GET", "/fine").status == 200


def test_upstream_reset_502(env):
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, retries=0)})
    assert_error(request(gw.port, "GET", "/reset"), 502, "bad_gateway")
    assert request(gw.port, "GET", "/fine").status == 200


def test_truncated_upstream_response_not_a_clean_answer(env):
    """A body cut short after the head was sent cannot become a 502 any more;
    the client must see the connection end before Content-Length is met."""
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, read_timeout="500ms", retries=0)})
    with RawConn(gw.port, timeout=5) as c:
        c.send(build_request("GET", "/dribble/5/2000"))
        with pytest.raises(helpers.Closed):
            c.read_response()


def test_read_timeout_504(env):
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, read_timeout="500ms", retries=0)})
    t0 = time.monotonic()
    assert_error(request(gw.port, "GET", "/sleep/3000"), 504, "gateway_timeout")
    elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed <= 2.0, elapsed


def test_read_timeout_is_a_gap(env):
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, read_timeout="600ms", retries=0)})
    r = request(gw.port, "GET", "/dribble/5/200")
    assert r.status == 200 and r.body == b"ddddd"


@pytest.fixture
def blackhole():
    """A listener whose accept queue is full: connects to it hang (SYN dropped)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        hangs = False
    except socket.timeout:
        hangs = True
    probe.close()
    assert hangs, "could not build a hanging connect target"
    yield port
    for s in fillers:
        s.close()
    lsock.close()


def test_connect_timeout_502(env, blackhole):
    url = "http://127.0.0.1:%d" % blackhole
    gw = gateway(env, {"u": helpers.upstream_conf(url, connect_timeout="500ms", retries=0)})
    t0 = time.monotonic()
    assert_error(request(gw.port, "GET", "/x"), 502, "bad_gateway")
    elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed <= 2.0, elapsed


# ---------------------------------------------------------------- retries


def test_retries_idempotent_only(env):
    live = env.upstream("live")
    gw = gateway(env, {"u": helpers.upstream_conf(live, dead_url(), balance="round_robin",
                                                  retries=1)})
    for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS"):
        for i in range(4):
            r = request(gw.port, method, "/idem/%d" % i, body=b"p" if method == "PUT" else None)
            assert r.status == 200, (method, i, r)
    statuses = []
    for i in range(6):
        r = request(gw.port, "POST", "/post/%d" % i, body=b"payload")
        statuses.append(r.status)
        if r.status != 200:
            assert_error(r, 502, "bad_gateway")
    assert statuses.count(502) >= 1, "no POST hit the dead target: %r" % statuses
    assert statuses.count(200) >= 1, statuses
    posts = [e for e in live.requests() if e["method"] == "POST"]
    assert len(posts) == statuses.count(200), "a POST was retried on the other target"


def test_no_retry_after_response_started(env):
    """Once the head went to the client, a failing upstream is not retried
    on the other target: the client sees the connection end instead."""
    a, b = env.upstream("a"), env.upstream("b")
    gw = gateway(env, {"u": helpers.upstream_conf(a, b, read_timeout="500ms", retries=1)})
    with RawConn(gw.port, timeout=5) as c:
        c.send(build_request("GET", "/dribble/5/2000"))
        with pytest.raises(helpers.Closed):
            c.read_response()
    time.sleep(0.3)
    sent = [e for u in (a, b) for e in u.requests() if "dribble" in e["path"]]
    assert len(sent) == 1, "retried after bytes reached the client: %r" % sent


def test_retries_zero_not_retried(env):
    live = env.upstream("live")
    gw = gateway(env, {"u": helpers.upstream_conf(live, dead_url(), retries=0)})
    statuses = [request(gw.port, "GET", "/r/%d" % i).status for i in range(6)]
    assert 502 in statuses and 200 in statuses, statuses


# ---------------------------------------------------------------- balancing


def test_round_robin_weights(env):
    a, b = env.upstream("a"), env.upstream("b")
    gw = gateway(env, {"u": helpers.upstream_conf((a, 2), (b, 1), balance="round_robin")})
    seq = []
    with RawConn(gw.port) as c:
        for i in range(30):
            c.send(build_request("GET", "/rr/%d" % i))
            r = c.read_response()
            assert r.status == 200
            seq.append(r.header("X-Upstream"))
    assert seq.count("a") == 20 and seq.count("b") == 10, seq
    runs = "".join(seq).split("b")
    assert max(len(x) for x in runs) <= 2, "not smooth: %r" % "".join(seq)


def test_least_conn(env):
    a, b = env.upstream("a"), env.upstream("b")
    gw = gateway(env, {"u": helpers.upstream_conf(a, b, balance="least_conn")})
    result = {}

    def slow():
        result["r"] = request(gw.port, "GET", "/sleep/1500/slow", timeout=10)
    t = threading.Thread(target=slow)
    t.start()
    try:
        busy = helpers.wait_for(
            lambda: next((u for u in (a, b) if any("slow" in e["path"] for e in u.requests())),
                         None), timeout=5, what="the slow request upstream")
        others = []
        for i in range(4):
            r = request(gw.port, "GET", "/quick/%d" % i)
            assert r.status == 200
            others.append(r.header("X-Upstream"))
        assert busy.name not in others, "least_conn sent to the busy target: %r" % others
    finally:
        t.join()
    assert result["r"].status == 200


def test_ip_hash_sticky_and_spread(env):
    a, b = env.upstream("a"), env.upstream("b")
    gw = gateway(env, {"u": helpers.upstream_conf(a, b, balance="ip_hash")})
    chosen = {}
    for i in range(2, 22):
        ip = "127.0.0.%d" % i
        got = {request(gw.port, "GET", "/ip/%d" % j, source=ip).header("X-Upstream")
               for j in range(3)}
        assert len(got) == 1, "ip_hash not sticky for %s: %r" % (ip, got)
        chosen[ip] = got.pop()
    assert set(chosen.values()) == {"a", "b"}, "20 addresses all hashed to one target"


def test_ip_hash_uses_forwarded_for_only_from_trusted(env):
    a, b = env.upstream("a"), env.upstream("b")
    ups = {"u": helpers.upstream_conf(a, b, balance="ip_hash")}
    untrusted = gateway(env, ups)
    trusted = gateway(env, ups, trusted_proxies=["127.0.0.0/8"])

    def pick(gw, xff):
        r = request(gw.port, "GET", "/xff", headers=[("X-Forwarded-For", xff)])
        assert r.status == 200
        return r.header("X-Upstream")
    spoofed = {pick(untrusted, "203.0.113.%d" % i) for i in range(1, 21)}
    assert len(spoofed) == 1, "X-Forwarded-For believed from an untrusted peer"
    picks = {}
    for i in range(1, 21):
        xff = "198.51.100.9, 203.0.113.%d" % i
        p = {pick(trusted, xff) for _ in range(2)}
        assert len(p) == 1
        picks[xff] = p.pop()
    assert set(picks.values()) == {"a", "b"}, "client address from X-Forwarded-For not used"
    # the rightmost entry that is not a trusted proxy is the client
    assert pick(trusted, "203.0.113.5, 127.0.0.9") == picks["198.51.100.9, 203.0.113.5"]
    h = req_headers(a.requests()[-1] if a.requests()[-1]["t"] > b.requests()[-1]["t"]
                    else b.requests()[-1])
    assert h["x-forwarded-for"] == ["203.0.113.5, 127.0.0.9, 127.0.0.1"]


# ---------------------------------------------------------------- HTTPS upstreams


def https_up(env, cert):
    up = env.upstream("tls", tls_cert=cert[0], tls_key=cert[1])
    return up, "https://localhost:%d" % up.port


def test_https_upstream_verified_with_sni(env, certs):
    up, url = https_up(env, certs.localhost)
    gw = gateway(env, {"u": helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca)})
    for i in range(5):
        r = request(gw.port, "GET", "/tls/%d" % i)
        assert r.status == 200, r
        assert r.json()["path"] == "/tls/%d" % i
    conns = up.events("conn")
    assert conns and all(c["sni"] == "localhost" for c in conns), conns
    assert len(conns) <= 2, "TLS upstream connections not pooled: %d" % len(conns)
    h = req_headers(up.last_request())
    assert h["host"] == ["localhost:%d" % up.port]


def test_https_upstream_untrusted_502(env, certs):
    up, url = https_up(env, certs.rogue_localhost)
    gw = gateway(env, {"u": helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca,
                                                  retries=0)})
    assert_error(request(gw.port, "GET", "/x"), 502, "bad_gateway")
    assert not up.requests()


def test_https_upstream_default_store_rejects_test_ca(env, certs):
    up, url = https_up(env, certs.localhost)
    gw = gateway(env, {"u": helpers.upstream_conf(url, retries=0)})
    assert_error(request(gw.port, "GET", "/x"), 502, "bad_gateway")
    assert not up.requests()


def test_https_upstream_name_mismatch_502(env, certs):
    up, url = https_up(env, certs.other)
    gw = gateway(env, {"u": helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca,
                                                  retries=0)})
    assert_error(request(gw.port, "GET", "/x"), 502, "bad_gateway")
    assert not up.requests()


def test_https_upstream_verify_off(env, certs):
    up, url = https_up(env, certs.rogue_localhost)
    gw = gateway(env, {"u": helpers.upstream_conf(url, tls_verify=False)})
    r = request(gw.port, "GET", "/noverify")
    assert r.status == 200 and r.json()["path"] == "/noverify"


def test_read_timeout_not_hit_by_slow_client(env):
    """read_timeout is a gap between reads of the upstream; a client reading
    slowly for longer than it (backpressure) must still get everything."""
    up = env.upstream("a")
    gw = gateway(env, {"u": helpers.upstream_conf(up, read_timeout="1s", retries=0)})
    size = 12 * 1024 * 1024
    got = {"n": 0}
    t0 = time.monotonic()

    def slow(data):  # 4 MiB/s: 3 s in all
        got["n"] += len(data)
        ahead = got["n"] / (4 << 20) - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    with RawConn(gw.port, timeout=20) as c:
        c.recv_size = 65536
        c.send(build_request("GET", "/stream/%d" % size))
        r = c.read_response(body_sink=slow)
    assert r.status == 200 and got["n"] == size


# ------------------------------------- pools never shared across TLS settings


@pytest.mark.parametrize("lax", ["other_ca", "verify_off"])
def test_pool_not_shared_across_tls_settings(env, certs, lax):
    """Two upstreams name the same https URL but verify it differently. The
    upstream's certificate is signed by a CA only `lax` accepts (another CA
    file, or no verification); `strict` trusts the test CA alone. A pooled
    connection that `lax` made must never serve `strict`: 502 every time,
    however the requests alternate."""
    up, url = https_up(env, certs.rogue_localhost)
    lax_conf = ({"tls_verify": True, "ca_file": certs.rogue_ca} if lax == "other_ca"
                else {"tls_verify": False})
    ups = {"lax": helpers.upstream_conf(url, retries=0, **lax_conf),
           "strict": helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca,
                                           retries=0)}
    routes = [{"name": "lax", "match": {"path": "/lax"}, "upstream": "lax"},
              {"name": "strict", "match": {"path": "/strict"}, "upstream": "strict"}]
    gw = gateway(env, ups, routes)
    with RawConn(gw.port) as c:
        for i in range(6):
            c.send(build_request("GET", "/lax/%d" % i))
            r = c.read_response()
            assert r.status == 200, "lax route, request %d: %r" % (i, r)
            c.send(build_request("GET", "/strict/%d" % i))
            r = c.read_response()
            assert r.status == 502, "strict route got a connection the other upstream " \
                "verified (request %d): %r" % (i, r)
            assert_error(r, 502, "bad_gateway")
    paths = [e["path"] for e in up.requests()]
    assert not [p for p in paths if p.startswith("/strict")], paths
    conns = up.events("conn")
    assert len(conns) < 6, "lax upstream not pooled (test ineffective): %d" % len(conns)


def test_pool_shared_by_identical_settings(env, certs):
    """Two upstreams with the same URL and the same TLS settings may share
    pooled connections (the key is the settings, not the upstream name)."""
    up, url = https_up(env, certs.localhost)
    conf = helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca, retries=0)
    routes = [{"name": "one", "match": {"path": "/one"}, "upstream": "one"},
              {"name": "two", "match": {"path": "/two"}, "upstream": "two"}]
    gw = gateway(env, {"one": conf, "two": dict(conf)}, routes)
    with RawConn(gw.port) as c:
        for i in range(6):
            for name in ("one", "two"):
                c.send(build_request("GET", "/%s/%d" % (name, i)))
                assert c.read_response().status == 200
    assert len(up.requests()) == 12
    assert len(up.events("conn")) == 1, up.events("conn")


# ------------------------------------- keep-alive race (issue 8, item 6)


class RacyCloser:
    """A raw upstream that answers each request with keep-alive headers
    (Content-Length, Connection: keep-alive) and then closes the socket
    after a random 0-50 ms, without answering anything else that arrived
    meanwhile: what many servers do at their keep-alive request limit. A
    request the gateway sends in that window finds a connection about to
    close (FIN, or RST when the request was unread)."""

    def __init__(self, seed=8, max_delay=0.05):
        self.max_delay = max_delay
        self.rng = random.Random(seed)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.answered, self.bodies, self.conns = [], [], 0
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                delay = self.rng.uniform(0, self.max_delay)
            threading.Thread(target=self._serve, args=(s, delay), daemon=True).start()

    def _serve(self, s, delay):
        try:
            s.settimeout(10)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            clen = 0
            for line in lines[1:]:
                n, _, v = line.partition(b":")
                if n.strip().lower() == b"content-length":
                    clen = int(v.strip())
            while len(rest) < clen:
                d = s.recv(65536)
                if not d:
                    return
                rest += d
            target = lines[0].split(b" ")[1].decode()
            with self.lock:
                self.answered.append(target)
                self.bodies.append(rest[:clen])
            body = ("ok %s" % target).encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(delay)
        except OSError:
            pass
        finally:
            s.close()

    def close(self):
        self.stop = True
        self.lsock.close()


@pytest.fixture
def racy():
    r = RacyCloser()
    yield r
    r.close()


def _racy_gateway(env, racy):
    # retries: 0 and a single target: only the fresh-connection retry of a
    # reused pooled connection can save a request
    return gateway(env, {"u": helpers.upstream_conf(racy.url, retries=0, keepalive=16)})


def test_keepalive_race_one_client_connection(env, racy):
    gw = _racy_gateway(env, racy)
    with RawConn(gw.port, timeout=10) as c:
        for i in range(40):
            c.send(build_request("GET", "/race/ka/%d" % i))
            try:
                r = c.read_response()
            except helpers.Closed as e:
                raise AssertionError("request %d: client connection closed without a "
                                     "response (%s)" % (i, e))
            assert r.status == 200, "request %d: %r" % (i, r)
            assert r.body == b"ok /race/ka/%d" % i, r
    assert racy.conns >= 20, racy.conns


def test_keepalive_race_new_client_connections(env, racy):
    gw = _racy_gateway(env, racy)
    for i in range(40):
        try:
            r = request(gw.port, "GET", "/race/new/%d" % i, timeout=10)
        except helpers.Closed as e:
            raise AssertionError("request %d: connection closed without a response (%s)"
                                 % (i, e))
        assert r.status == 200, "request %d: %r" % (i, r)


def test_keepalive_race_post_small_body(env, racy):
    gw = _racy_gateway(env, racy)
    with RawConn(gw.port, timeout=10) as c:
        for i in range(40):
            body = b"payload-%d" % i
            c.send(build_request("POST", "/race/post/%d" % i, body=body))
            try:
                r = c.read_response()
            except helpers.Closed as e:
                raise AssertionError("POST %d: client connection closed without a "
                                     "response (%s)" % (i, e))
            assert r.status == 200, "POST %d: %r" % (i, r)
    with racy.lock:
        got = dict(zip(racy.answered, racy.bodies))
    for i in range(40):
        assert got.get("/race/post/%d" % i) == b"payload-%d" % i


class HeldCloser:
    """A raw upstream whose connections each answer one request (keep-alive
    headers) and are then closed when the test says so: close_conn(i, rst)
    closes the i-th connection with FIN, or RST (SO_LINGER 0)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.conns, self.answered = [], []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            while m and len(rest) < int(m.group(1)):
                d = s.recv(65536)
                if not d:
                    return
                rest += d
            target = buf.split(b" ")[1].decode()
            with self.lock:
                self.answered.append((target, rest))
            body = ("ok %s" % target).encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass

    def close_conn(self, i, rst=False):
        s = self.conns[i]
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def close(self):
        self.lsock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pooled_connection_closed_while_request_waits(env, rst, method):
    """The gateway is stopped (SIGSTOP) while the client's next request
    arrives and then the upstream closes the idle pooled connection: both
    wait in the kernel, the request first, so that on SIGCONT the gateway
    takes the pooled connection before its idle watch can see the FIN (or
    RST) already queued behind it. The request must be sent again on a
    fresh connection (a POST with the body part sent so far, the rest
    following), not answered 502 or dropped."""
    held = HeldCloser()
    try:
        port, admin = helpers.free_port(), helpers.free_port()
        gw = env.gateway(helpers.base_config(
            port, admin, {"u": helpers.upstream_conf(held.url, retries=0)},
            [{"name": "all", "match": {"path": "/"}, "upstream": "u"}],
            log={"access": "off", "level": "debug"}))
        with RawConn(port, timeout=10) as c:
            c.send(build_request("GET", "/held/1"))
            assert c.read_response().status == 200
            time.sleep(0.2)
            gw.signal(signal.SIGSTOP)
            body = b"0123456789" * 10
            try:
                if method == "GET":
                    c.send(build_request("GET", "/held/2"))
                else:
                    c.send(build_request("POST", "/held/2", body=body)[:-60])
                time.sleep(0.1)
                held.close_conn(0, rst)
                time.sleep(0.1)
            finally:
                gw.signal(signal.SIGCONT)
            if method == "POST":
                time.sleep(0.1)
                c.send(body[-60:])
            r = c.read_response()
            assert r.status == 200, r
            assert r.body == b"ok /held/2"
        assert held.answered == [("/held/1", b""),
                                 ("/held/2", body if method == "POST" else b"")]
        assert len(held.conns) == 2
        assert "attempt to %s failed" % held.url in gw.stderr(), \
            "the pooled connection was not taken (test ineffective)"
    finally:
        held.close()
