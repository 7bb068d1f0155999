"""Strict HTTP/1.1 parsing (CONTRACT §3 step 1, "Paths", §2 limits, §4):
smuggling attempts, malformed requests, traversal, size limits and
timeouts. Every rejection is also verified from the upstreams' side: the
recording upstreams must not have received anything."""

import select
import socket
import time

import pytest

import helpers
from helpers import Closed, RawConn, assert_error, build_request, request

SMUGGLED = b"GET /admin/smuggled HTTP/1.1\r\nHost: e2e.test\r\n\r\n"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def ps(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("parser"))
    a = env.upstream("A")
    b = env.upstream("B")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(
        port, admin,
        {"A": helpers.upstream_conf(a), "B": helpers.upstream_conf(b)},
        [{"name": "api", "match": {"path": "/api"}, "upstream": "A"},
         {"name": "admin", "match": {"path": "/admin"}, "upstream": "B"}],
        limits={"max_header_bytes": "16k", "max_headers": 20, "max_body_bytes": "64k",
                "client_header_timeout": "1s", "client_body_timeout": "1s"})
    gw = env.gateway(cfg)
    ns = type("PS", (), {})()
    ns.gw, ns.a, ns.b, ns.port = gw, a, b, port
    yield ns
    env.close()


def marks(ps):
    return ps.a.mark(), ps.b.mark()


def forwarded(ps, m, evs=("req", "partial", "bad"), settle=0.3):
    """Events of the given kinds both upstreams logged since marks m."""
    time.sleep(settle)
    out = []
    for up, mk in ((ps.a, m[0]), (ps.b, m[1])):
        out += [(up.name, e) for e in up.since(mk) if e["ev"] in evs]
    return out


def send_and_read(port, data, timeout=5):
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        closed = c.closed_within(2)
    return r, closed


def reject(ps, data, status=400, code="bad_request", must_close=True,
           evs=("req", "partial", "bad")):
    m = marks(ps)
    r, closed = send_and_read(ps.port, data)
    leaked = forwarded(ps, m, evs)
    assert not leaked, "request reached an upstream (client got %r): %r" % (r, leaked)
    assert_error(r, status, code)
    if must_close:
        assert closed, "connection left open after %d" % status
    assert ps.gw.alive()
    return r


H = b"Host: e2e.test\r\n"

SMUGGLING = [
    ("cl_and_te", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_and_cl", b"POST /api/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 44\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_chunked_identity", b"POST /api/x HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_xchunked", b"POST /api/x HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_chunked_twice", b"POST /api/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_space_before_colon", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_leading_space_line", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_folded_value", b"POST /api/x HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n"
     b" chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_vertical_tab", b"POST /api/x HTTP/1.1\r\n" + H +
     b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("cl_duplicate_differing", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!"),
    ("cl_list_differing", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\n"
     b"hello!"),
    ("cl_plus", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("cl_hex", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n" + b"a" * 16),
    ("cl_negative", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("cl_overflow", b"POST /api/x HTTP/1.1\r\n" + H +
     b"Content-Length: 99999999999999999999999\r\n\r\nhello"),
    ("cl_inner_space", b"POST /api/x HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\n"
     b"0123456789"),
    ("bare_lf", b"GET /api/x HTTP/1.1\n" + b"Host: e2e.test\n\n"),
    ("bare_lf_in_headers", b"GET /api/x HTTP/1.1\r\nHost: e2e.test\nX-A: 1\r\n\r\n"),
    ("bare_cr", b"GET /api/x HTTP/1.1\r\nHost: e2e.test\rX-A: 1\r\n\r\n"),
    ("obs_fold", b"GET /api/x HTTP/1.1\r\n" + H + b"X-A: 1\r\n  continued\r\n\r\n"),
    ("obs_fold_tab", b"GET /api/x HTTP/1.1\r\n" + H + b"X-A: 1\r\n\tcontinued\r\n\r\n"),
    ("name_space_before_colon", b"GET /api/x HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n"),
    ("name_inner_space", b"GET /api/x HTTP/1.1\r\n" + H + b"X A: 1\r\n\r\n"),
    ("name_non_token", b"GET /api/x HTTP/1.1\r\n" + H + b"X(A): 1\r\n\r\n"),
    ("name_empty", b"GET /api/x HTTP/1.1\r\n" + H + b": 1\r\n\r\n"),
    ("value_nul", b"GET /api/x HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("no_host_11", b"GET /api/x HTTP/1.1\r\nX-A: 1\r\n\r\n"),
    ("two_hosts", b"GET /api/x HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n"),
    ("garbage_line", b"HELLO\r\n\r\n"),
    ("method_only", b"GET\r\n\r\n"),
    ("extra_token", b"GET /api/x HTTP/1.1 extra\r\n" + H + b"\r\n"),
    ("lowercase_version", b"GET /api/x http/1.1\r\n" + H + b"\r\n"),
    ("bad_version_digits", b"GET /api/x HTTP/1.10\r\n" + H + b"\r\n"),
    ("binary_junk", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n"),
    ("target_not_slash", b"GET api/x HTTP/1.1\r\n" + H + b"\r\n"),
    ("path_climbs_root", b"GET /../x HTTP/1.1\r\n" + H + b"\r\n"),
    ("path_climbs_encoded", b"GET /api/%2E%2E/%2E%2E/x HTTP/1.1\r\n" + H + b"\r\n"),
    ("path_bad_percent", b"GET /api/%zz HTTP/1.1\r\n" + H + b"\r\n"),
]


@pytest.mark.parametrize("name,data", SMUGGLING, ids=[s[0] for s in SMUGGLING])
def test_rejected_and_nothing_forwarded(ps, name, data):
    reject(ps, data)


BAD_CHUNKS = [
    ("chunk_zz", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk_negative", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_overflow", b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("chunk_size_space_inside", b"1 0\r\nhello\r\n0\r\n\r\n"),
    ("chunk_missing_crlf", b"5\r\nhelloXX0\r\n\r\n"),
    ("chunk_bare_lf", b"5\nhello\n0\n\n"),
]


@pytest.mark.parametrize("name,body", BAD_CHUNKS, ids=[s[0] for s in BAD_CHUNKS])
def test_bad_chunk_rejected(ps, name, body):
    data = (b"POST /api/chunks HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" +
            body + SMUGGLED)
    # the head may already be on its way upstream; no complete request may be
    reject(ps, data, evs=("req", "bad"))


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/0.9"])
def test_other_versions_505(ps, version):
    m = marks(ps)
    r, _ = send_and_read(ps.port, b"GET /api/v " + version + b"\r\n" + H + b"\r\n")
    assert_error(r, 505, "http_version_not_supported")
    assert not forwarded(ps, m)


def test_valid_requests_still_pass(ps):
    """The same gateway serves well-formed requests (so the rejections above
    are not just a broken gateway): Content-Length and chunked bodies."""
    r = request(ps.port, "POST", "/api/ok", body=b"hello")
    assert r.status == 200 and r.header("X-Upstream") == "A" and r.json()["body_len"] == 5
    with RawConn(ps.port) as c:
        c.send(b"POST /api/ok HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200 and r.json()["body_len"] == 5


def test_pipelined_valid_then_invalid(ps):
    m = marks(ps)
    data = (build_request("GET", "/api/first") +
            b"POST /api/second HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n"
            b"Content-Length: 2\r\n\r\nab" + SMUGGLED)
    with RawConn(ps.port) as c:
        c.send(data)
        r1 = c.read_response()
        assert r1.status == 200 and r1.json()["path"] == "/api/first"
        assert_error(c.read_response(), 400, "bad_request")
        assert c.closed_within(2)
    reqs = [e["path"] for _, e in forwarded(ps, m, ("req",))]
    assert reqs == ["/api/first"], reqs


# ---------------------------------------------------------------- paths


def test_traversal_cannot_leave_api(ps):
    for target in ("/api/../admin", "/api/%2e%2e/admin", "/api/%2E%2E/admin/",
                   "/api/./../admin"):
        m = marks(ps)
        r = request(ps.port, "GET", target)
        assert r.status == 200, (target, r)
        assert r.header("X-Upstream") == "B", target
        evs = forwarded(ps, m, ("req",), settle=0)
        assert [(n, e["path"].rstrip("/")) for n, e in evs] == [("B", "/admin")], (target, evs)


def test_upstream_sees_normalised_path(ps):
    cases = {
        "/api/./v1/../x": "/api/x",
        "/api/%7Euser/%41": "/api/~user/A",
        "/api/a%2Fb": "/api/a%2Fb",
        "/api/%2e%2e%2Fadmin": "/api/..%2Fadmin",
        "/api/%252e%252e/admin": "/api/%252e%252e/admin",
    }
    for target, want in cases.items():
        m = marks(ps)
        r = request(ps.port, "GET", target)
        assert r.status == 200 and r.header("X-Upstream") == "A", (target, r)
        evs = forwarded(ps, m, ("req",), settle=0)
        assert [(n, e["path"]) for n, e in evs] == [("A", want)], (target, evs)


def test_encoded_slash_does_not_separate_segments(ps):
    m = marks(ps)
    assert_error(request(ps.port, "GET", "/api%2Fx"), 404, "route_not_found")
    assert not forwarded(ps, m)


# ---------------------------------------------------------------- limits


def test_uri_too_long_414(ps):
    m = marks(ps)
    r, _ = send_and_read(ps.port, build_request("GET", "/api/" + "a" * 8300))
    assert_error(r, 414, "uri_too_long")
    assert not forwarded(ps, m)
    r = request(ps.port, "GET", "/api/" + "a" * 7000)
    assert r.status == 200


def test_header_bytes_431(ps):
    m = marks(ps)
    r, _ = send_and_read(ps.port, build_request("GET", "/api/h", [("X-Big", "b" * 17000)]))
    assert_error(r, 431, "headers_too_large")
    hdrs = [("X-Med-%d" % i, "m" * 1800) for i in range(10)]
    r, _ = send_and_read(ps.port, build_request("GET", "/api/h", hdrs))
    assert_error(r, 431, "headers_too_large")
    assert not forwarded(ps, m)


def test_header_count_431(ps):
    m = marks(ps)
    # Host + 19 = 20 headers: at the limit
    r = request(ps.port, "GET", "/api/n", headers=[("X-N-%d" % i, "v") for i in range(19)])
    assert r.status == 200
    m = marks(ps)
    r, _ = send_and_read(ps.port, build_request("GET", "/api/n",
                                                [("X-N-%d" % i, "v") for i in range(20)]))
    assert_error(r, 431, "headers_too_large")
    assert not forwarded(ps, m)


def test_content_length_over_limit_413_before_body(ps):
    m = marks(ps)
    with RawConn(ps.port, timeout=3) as c:
        c.send(b"POST /api/big HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        assert_error(c.read_response(), 413, "payload_too_large")
    assert not forwarded(ps, m)


def test_content_length_over_limit_with_expect(ps):
    m = marks(ps)
    with RawConn(ps.port, timeout=3) as c:
        c.send(b"POST /api/big HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
               b"Content-Length: 100000\r\n\r\n")
        r = c.read_response(final=False)
        assert_error(r, 413, "payload_too_large")
    assert not forwarded(ps, m)


def test_body_at_limit_passes(ps):
    r = request(ps.port, "POST", "/api/limit", body=b"z" * MAX_BODY)
    assert r.status == 200 and r.json()["body_len"] == MAX_BODY


def test_chunked_body_over_limit(ps):
    m = marks(ps)
    status = None
    with RawConn(ps.port, timeout=5) as c:
        c.send(b"POST /api/chunked-big HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(12):  # 96 KiB in 8 KiB chunks
                c.send(b"2000\r\n" + b"c" * 8192 + b"\r\n")
                time.sleep(0.02)
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response()
            status = r.status
            assert_error(r, 413, "payload_too_large")
        except Closed:
            pass
    evs = forwarded(ps, m, ("req", "partial"), settle=0.5)
    assert not [e for _, e in evs if e["ev"] == "req"], "over-limit body forwarded whole: %r" % (
        [(n, e["body_len"]) for n, e in evs],)
    for _, e in evs:
        assert e["body_len"] <= MAX_BODY, "forwarded %d body bytes past the limit" % e["body_len"]
    assert status in (None, 413)


# ---------------------------------------------------------------- timeouts


def test_client_header_timeout_408(ps):
    m = marks(ps)
    with RawConn(ps.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"GET /api/slow HTTP/1.1\r\nHost: e2e")
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert_error(r, 408, "request_timeout")
        assert 0.7 <= elapsed <= 3.0, elapsed
        assert c.closed_within(2)
    assert not forwarded(ps, m)


def test_client_header_timeout_is_total_not_gap(ps):
    """A slowloris sending a byte every 300 ms must still hit the 1 s bound."""
    m = marks(ps)
    with RawConn(ps.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"GET /api/slowloris HTTP/1.1\r\nHost: e2e.test\r\nX-Slow: ")
        head = b"s" * 40  # never completes; no line end split across reads
        i = 0
        while time.monotonic() - t0 < 4:
            readable, _, _ = select.select([c.sock], [], [], 0.3)
            if readable:
                break
            try:
                c.send(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            i += 1
        elapsed = time.monotonic() - t0
        assert elapsed < 3.0, "slow header still accepted after %.1fs" % elapsed
        try:
            assert_error(c.read_response(), 408, "request_timeout")
        except Closed:
            pass
    assert not forwarded(ps, m)


def test_client_body_timeout_408(ps):
    with RawConn(ps.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"POST /api/slowbody HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert_error(r, 408, "request_timeout")
        assert 0.7 <= elapsed <= 3.5, elapsed
    time.sleep(0.3)
    assert not [e for e in ps.a.requests() if e["path"] == "/api/slowbody"]


def test_client_body_timeout_is_a_gap(ps):
    with RawConn(ps.port, timeout=5) as c:
        c.send(b"POST /api/gaps HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\n")
        for ch in b"abcde":
            time.sleep(0.45)
            c.send(bytes([ch]))
        r = c.read_response()
    assert r.status == 200 and r.json()["body_len"] == 5


# ---------------------------------------------------------------- connection limits


def small_gateway(env, **limits):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                              [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
                              limits=limits)
    return env.gateway(cfg), up


def open_served(port, path="/one", source=None):
    """A connection that got one 200 (None when the gateway refused it)."""
    try:
        c = RawConn(port, timeout=2, source=source)
    except OSError:
        return None
    try:
        c.send(build_request("GET", path))
        if c.read_response().status == 200:
            c.sock.settimeout(10)
            return c
    except (Closed, OSError):
        pass
    c.close()
    return None


def test_max_connections_per_ip(env):
    gw, up = small_gateway(env, max_connections_per_ip=1)
    # the readiness probe's connection may still be counted for a moment
    first = helpers.wait_for(lambda: open_served(gw.port), timeout=3, what="first connection")
    try:
        with RawConn(gw.port) as second:
            assert second.closed_within(2), "second connection from the same IP not closed"
        first.send(build_request("GET", "/two"))
        assert first.read_response().status == 200, "first connection no longer served"
        other = open_served(gw.port, "/other", source="127.0.0.2")
        assert other, "a connection from another address was refused"
        other.close()
    finally:
        first.close()
    again = helpers.wait_for(lambda: open_served(gw.port, "/again"), timeout=3,
                             what="a new connection once the first closed")
    again.close()


def test_max_connections_waits(env):
    gw, up = small_gateway(env, max_connections=2)
    c1, c2 = RawConn(gw.port), RawConn(gw.port)
    c3 = None
    try:
        for c in (c1, c2):
            c.send(build_request("GET", "/held"))
            assert c.read_response().status == 200
        c3 = RawConn(gw.port, timeout=5)
        c3.send(build_request("GET", "/third"))
        c3.sock.settimeout(1.0)
        try:
            data = c3.sock.recv(100)
        except socket.timeout:
            data = None
        assert data is None, "third connection served over max_connections: %r" % data
        c1.close()
        c3.sock.settimeout(5)
        r = c3.read_response()
        assert r.status == 200 and r.json()["path"] == "/third"
    finally:
        for c in (c1, c2, c3):
            if c:
                c.close()


def test_keepalive_timeout(env):
    gw, up = small_gateway(env, keepalive_timeout="1s", client_header_timeout="5s")
    with RawConn(gw.port) as c:
        c.send(build_request("GET", "/ka"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_within(4), "idle keep-alive connection not closed"
        assert 0.7 <= time.monotonic() - t0 <= 3.0
