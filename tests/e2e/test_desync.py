"""Desync and request-smuggling attacks, black box (CONTRACT §3 step 1,
"Paths", "Header order upstream", "Sent upstream", trailers; §4 400 / 413 /
502; docs/security.md).

Each attack is one that worked against an earlier build. Every test looks
at both sides:

* the client gets exactly one well-formed response per request it is owed
  (with X-Request-Id), a refused request's connection is closed, and a
  valid request pipelined after a refused one is never served;
* the upstream, a RawUpstream (raw_upstream.py) that records every byte as
  it arrives, receives nothing the attack smuggled: a refusal is followed by
  a sentinel request through the same gateway, after which every byte the
  upstream received since the attack started must belong to that sentinel.

The module gateway has a catch-all route `/`, an `/admin` route denied to
127.0.0.0/8, a header-rule route, a JWT route forwarding claims and a
validate route, all to one RawUpstream whose answers a test can script per
path (`script`). Tests whose upstream must misbehave on a pooled connection,
or that need another config, start their own gateway."""

import itertools
import re
import socket
import time

import pytest

import helpers
import jwt_util as J
from helpers import Closed, RawConn, assert_error, build_request, request
from raw_upstream import CLOSE, KEEP, RESET, RawUpstream, response

SECRET = "e2e-desync-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
assert len(SECRET) == 64
H = b"Host: e2e.test\r\n"
SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: e2e.test\r\n\r\n"
PIPELINED = b"GET /pipelined/after HTTP/1.1\r\nHost: e2e.test\r\n\r\n"
MARKERS = (b"/admin/secret", b"/pipelined/after")
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large",
         431: "headers_too_large", 502: "bad_gateway"}
CTRL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
SETTLE = 0.1          # after the sentinel came back, for stragglers
MAX_HEADERS = 20
MAX_HEADER_BYTES = 8192


# ====================================================================== harness


class Side:
    """A gateway port and the RawUpstream behind it."""

    def __init__(self, port, raw, gw=None):
        self.port, self.raw, self.gw = port, raw, gw
        self.script = {}


_sentinels = itertools.count(1)


def make_gateway(env, raw, routes=None, **extra):
    port, admin = helpers.free_port(), helpers.free_port()
    ups = extra.pop("upstreams", None) or {"raw": helpers.upstream_conf(raw, retries=0)}
    routes = routes or [{"name": "all", "match": {"path": "/"}, "upstream": "raw"}]
    cfg = helpers.base_config(port, admin, ups, routes, **extra)
    gw = env.gateway(cfg)
    return Side(port, raw, gw)


def scripted(side):
    """A RawUpstream respond callable: side.script[path] or the echo."""
    return lambda req: side.script.get(req.path)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("desync"))
    side = Side(None, None)
    raw = RawUpstream(respond=scripted(side), name="main")
    side.raw = raw
    routes = [
        {"name": "admin", "match": {"path": "/admin"}, "upstream": "raw",
         "acl": {"deny": ["127.0.0.0/8"]}},
        {"name": "hdr", "match": {"path": "/hdr"}, "upstream": "raw",
         "headers": {"request": {"set": {"X-Api-Version": "2"}}}},
        {"name": "jwt", "match": {"path": "/jwt"}, "upstream": "raw",
         "auth": {"jwt": "hs"},
         "headers": {"request": {"set": {"X-Api-Version": "2"}}}},
        {"name": "validate", "match": {"path": "/validate"}, "upstream": "raw",
         "validate": {"content_types": ["application/json"]}},
        {"name": "all", "match": {"path": "/"}, "upstream": "raw"},
    ]
    try:
        s = make_gateway(
            env, raw, routes,
            jwt={"providers": [{"name": "hs", "algorithms": ["HS256"], "secret": SECRET,
                                "forward_claims": {"sub": "X-User-Id", "note": "X-Note"}}]},
            limits={"max_header_bytes": MAX_HEADER_BYTES, "max_headers": MAX_HEADERS,
                    "max_body_bytes": "1m", "client_header_timeout": "2s",
                    "client_body_timeout": "2s"})
        side.port, side.gw = s.port, s.gw
        yield side
    finally:
        try:
            env.close()
        finally:
            raw.close()
    assert not raw.bad(), "malformed requests reached the upstream: %r" % raw.bad()


@pytest.fixture
def alive(gw):
    """The module gateway, checked alive before and after the test."""
    assert gw.gw.alive(), "module gateway died earlier:\n" + gw.gw.stderr()[-3000:]
    yield gw
    assert gw.gw.alive(), "gateway died:\n" + gw.gw.stderr()[-3000:]


class Exchange:
    def __init__(self):
        self.responses = []
        self.closed = False   # the gateway closed (EOF or RST) after the responses
        self.error = None     # a malformed response, or bytes that are not one

    def __repr__(self):
        return "<Exchange closed=%s error=%r responses=%r>" % (self.closed, self.error,
                                                                self.responses)


def exchange(port, data, idle=1.5, first=6.0, method="GET"):
    """Sends data on a fresh connection and reads responses until the
    gateway closes, or nothing more arrives for `idle` seconds."""
    ex = Exchange()
    c = RawConn(port, timeout=first)
    try:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                r = c.read_response(method=method)
            except Closed:
                ex.closed = True
                if c.buf:
                    ex.error = "connection closed inside a response: %r" % bytes(c.buf[:300])
                break
            except socket.timeout:
                if c.buf:
                    ex.error = "incomplete response: %r" % bytes(c.buf[:300])
                break
            except (AssertionError, ValueError) as e:
                ex.error = "malformed response: %s (buffered %r)" % (e, bytes(c.buf[:300]))
                break
            ex.responses.append(r)
            c.sock.settimeout(idle)
    finally:
        c.close()
    return ex


def sentinel(side):
    """A request through the same gateway to the same upstream, answered:
    what the attack sent upstream (if anything) has been sent by now."""
    path = "/sentinel/%d" % next(_sentinels)
    r = request(side.port, "GET", path, timeout=6)
    assert r.status == 200, "sentinel request not served (gateway broken?): %r" % r
    time.sleep(SETTLE)
    return path


def upstream_view(side, mark):
    """(complete non-sentinel requests, [(conn, leaked bytes)]) since mark,
    after a sentinel: leaked bytes are what arrived that is not part of a
    complete request (a partial or malformed one)."""
    path = sentinel(side)
    reqs = side.raw.since(mark)
    assert [q for q in reqs if q.path == path], "sentinel %s never reached the upstream" % path
    others = [q for q in reqs if q.path != path]
    leaks = []
    for c, new in side.raw.delta(mark):
        for q in reqs:
            if q.conn == c.id:
                new = new.replace(q.raw, b"", 1)
        if new:
            leaks.append((c, new))
    return others, leaks


def assert_nothing_upstream(side, mark, partial_ok=False, what=""):
    """Nothing reached the upstream since mark. With partial_ok, the head
    (and body) of a streamed request may have gone out, but the request
    was never completed, carried none of the smuggled bytes, and the
    gateway closed that upstream connection."""
    others, leaks = upstream_view(side, mark)
    assert not others, "%s: complete request(s) reached the upstream: %r" % (what, others)
    if not partial_ok:
        assert not leaks, "%s: bytes reached the upstream: %r" % (
            what, [(c.id, b[:400]) for c, b in leaks])
        return
    for c, data in leaks:
        for m in MARKERS:
            assert m not in data, "%s: smuggled %r reached the upstream: %r" % (what, m, data[:600])
        assert not c.bad, "%s: malformed bytes reached the upstream: %r" % (what, c)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(c.eof for c, _ in leaks):
        time.sleep(0.02)
    left = [c for c, _ in leaks if not c.eof]
    assert not left, ("%s: upstream connection(s) holding an unfinished request were not "
                      "closed: %r" % (what, left))


def refused(side, data, statuses=(400,), partial_ok=False, what="", pipelined=PIPELINED):
    """data (followed by a valid pipelined request) is refused with one of
    statuses, the connection is closed, and nothing reached the upstream."""
    mark = side.raw.mark()
    ex = exchange(side.port, data + pipelined)
    assert_nothing_upstream(side, mark, partial_ok, what or repr(data[:80]))
    assert ex.error is None, "%s: %s" % (what, ex.error)
    assert ex.responses, "%s: no response at all (closed=%s)" % (what, ex.closed)
    assert len(ex.responses) == 1, (
        "%s: %d responses; the pipelined request after the refused one was served: %r"
        % (what, len(ex.responses), ex.responses))
    r = ex.responses[0]
    assert r.status in statuses, "%s: expected one of %r, got %r" % (what, statuses, r)
    assert_error(r, r.status, CODES[r.status])
    assert ex.closed, "%s: connection left open after %d" % (what, r.status)
    return r


def well_formed(r, what=""):
    rid = r.header("X-Request-Id")
    assert rid and len(r.all("X-Request-Id")) == 1, "%s: X-Request-Id %r on %r" % (
        what, r.all("X-Request-Id"), r)
    return rid


def only_requests(side, mark, paths, what=""):
    """The upstream received exactly these complete requests since mark,
    and not one byte besides them."""
    reqs = side.raw.since(mark)
    assert [q.path for q in reqs] == list(paths), "%s: upstream received %r" % (what, reqs)
    for c, new in side.raw.delta(mark):
        rest = new
        for q in reqs:
            if q.conn == c.id:
                rest = rest.replace(q.raw, b"", 1)
        assert not rest, "%s: upstream conn %d received extra bytes %r" % (what, c.id, rest[:400])
        assert not c.bad, "%s: malformed request upstream: %r" % (what, c)
    return reqs


def hs_token(**claims):
    c = {"sub": "user-1", "iat": J.now(), "exp": J.now() + 3600}
    c.update(claims)
    return J.mint("HS256", c, secret=SECRET)


# ====================================================================== sanity


def test_setup_admin_denied_public_served(alive):
    """The setup the attacks aim at: /admin is denied to the client, other
    paths reach the upstream (so a refusal below is not a broken gateway)."""
    mark = alive.raw.mark()
    r = request(alive.port, "GET", "/admin/secret")
    assert_error(r, 403, "forbidden")
    assert_nothing_upstream(alive, mark, what="denied /admin/secret")
    mark = alive.raw.mark()
    ex = exchange(alive.port, build_request("GET", "/public/a") + build_request("GET", "/public/b"),
                  idle=0.4)
    assert ex.error is None and [r.status for r in ex.responses] == [200, 200], ex
    assert [r.json()["path"] for r in ex.responses] == ["/public/a", "/public/b"]
    for r in ex.responses:
        well_formed(r)
    only_requests(alive, mark, ["/public/a", "/public/b"])


# ====================================================================== A: framing


@pytest.mark.parametrize("cl", [b"18446744073709551615", b"9223372036854775808",
                                b"18446744073709551616"])
def test_a1_huge_content_length_smuggles_nothing(alive, cl):
    data = (b"POST /public HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
            b"Content-Length: " + cl + b"\r\n\r\n" + b"p" * 20000 + SMUGGLED)
    refused(alive, data, statuses=(400, 413), what="Content-Length " + cl.decode())


@pytest.mark.parametrize("cl", [b"18446744073709551615", b"9223372036854775808"])
def test_a1_upstream_huge_content_length_502(alive, cl):
    path = "/a1resp/" + cl.decode()
    alive.script[path] = [b"HTTP/1.1 200 OK\r\nContent-Length: " + cl +
                          b"\r\nSet-Cookie: a1=1\r\n\r\nhello", CLOSE]
    upstream_garbage_502(alive, path)


@pytest.mark.parametrize("data", [b"GET /path\r\n\r\n", b"GET /admin/secret\r\n\r\n",
                                  b"GET /path\r\n" + H + b"\r\n"],
                         ids=["bare", "admin", "with_host"])
def test_a2_http09_request_line_400(alive, data):
    refused(alive, data, what="HTTP/0.9 %r" % data)


# Found by fuzz_http: llhttp reads a bare CR as a line end, so a field
# hidden behind it ("X-A: a\rContent-Length: 39") framed a body another
# parser would read as the next request.
@pytest.mark.parametrize("data", [
    b"POST /a2/cr HTTP/1.1\r\n" + H + b"X-A: a\rContent-Length: 39\r\n\r\n"
    b"GET /admin/secret HTTP/1.1\r\n" + H + b"\r\n",
    b"GET /a2/cr HTTP/1.1\r\n" + H + b"\rXGET /admin/secret HTTP/1.1\r\n" + H + b"\r\n",
    b"GET /a2/cr HTTP/1.1\r" + H + b"\r\n",
], ids=["in_field", "end_of_head", "after_request_line"])
def test_a2_bare_cr_in_head_400(alive, data):
    refused(alive, data, what="bare CR %r" % data)


@pytest.mark.parametrize("trailer", [
    b"GET /admin/secret HTTP/1.1\r\n\r\n",
    b"GET /admin/secret HTTP/1.1\r\n" + H + b"\r\n",
    b"X-Ok: 1\r\nGET /admin/secret HTTP/1.1\r\n\r\n",
], ids=["line", "line_then_host", "after_valid"])
def test_a3_trailer_line_without_colon_400(alive, trailer):
    data = (b"POST /a3/body HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + trailer)
    # the head and chunks may already have been streamed upstream; the
    # request must never be completed there
    refused(alive, data, partial_ok=True, what="trailer %r" % trailer)


def test_a3_trailer_count_over_max_headers_400(alive):
    trailers = b"".join(b"X-T-%d: v\r\n" % i for i in range(MAX_HEADERS + 5))
    data = (b"POST /a3/many HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + trailers + b"\r\n")
    refused(alive, data, partial_ok=True, what="%d trailer lines" % (MAX_HEADERS + 5))


def test_a3_trailer_bytes_over_max_header_bytes_400(alive):
    trailers = b"X-Big: " + b"b" * (MAX_HEADER_BYTES + 1000) + b"\r\n"
    data = (b"POST /a3/big HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + trailers + b"\r\n")
    refused(alive, data, partial_ok=True, what="%d trailer bytes" % len(trailers))


def test_a3_valid_trailers_accepted_not_forwarded(alive):
    mark = alive.raw.mark()
    data = (b"POST /a3/ok HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
            b"X-Trailer-One: 1\r\nX-Trailer-Two: two\r\n\r\n" +
            build_request("GET", "/a3/next"))
    ex = exchange(alive.port, data, idle=0.4)
    assert ex.error is None and [r.status for r in ex.responses] == [200, 200], ex
    assert [r.json()["path"] for r in ex.responses] == ["/a3/ok", "/a3/next"]
    for r in ex.responses:
        well_formed(r)
    first, second = only_requests(alive, mark, ["/a3/ok", "/a3/next"])
    assert first.body == b"hello", first
    assert not first.trailers, "trailers forwarded upstream: %r" % first.trailers
    names = {n.lower() for n, _ in first.headers}
    assert not names & {"x-trailer-one", "x-trailer-two", "trailer"}, first.headers


TE_CASES = [
    ("gzip_chunked", b"Transfer-Encoding: gzip, chunked\r\n"),
    ("gzip_then_chunked_two_headers", b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
    ("identity_chunked", b"Transfer-Encoding: identity, chunked\r\n"),
    ("deflate_then_chunked_two_headers",
     b"Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n"),
]


@pytest.mark.parametrize("name,te", TE_CASES, ids=[c[0] for c in TE_CASES])
def test_a4_transfer_coding_other_than_lone_chunked_400(alive, name, te):
    data = (b"POST /a4/te HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\n" + te +
            b"\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
    refused(alive, data, what=name)


def test_a4_http10_chunked_served_then_closed(alive):
    mark = alive.raw.mark()
    data = (b"POST /a4/ten HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n"
            b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"GET /pipelined/after HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n")
    ex = exchange(alive.port, data)
    others, leaks = upstream_view(alive, mark)
    assert [q.path for q in others] == ["/a4/ten"], "upstream received %r" % others
    assert others[0].body == b"hello", others[0]
    assert not leaks, "extra bytes upstream: %r" % [(c.id, b[:300]) for c, b in leaks]
    assert ex.error is None, ex.error
    assert len(ex.responses) == 1, "expected one response, got %r" % ex.responses
    r = ex.responses[0]
    assert r.status == 200 and r.json()["path"] == "/a4/ten", r
    well_formed(r)
    conn = (r.header("Connection") or "").lower()
    assert "keep-alive" not in conn and "close" in conn, \
        "HTTP/1.0 + Transfer-Encoding answered with Connection %r" % conn
    assert ex.closed, "connection left open after an HTTP/1.0 request with Transfer-Encoding"


# ====================================================================== B: responses


def upstream_garbage_502(side, path, what=None):
    """GET path; the upstream's scripted answer is invalid: the client gets
    one 502 bad_gateway, and the upstream saw that one request only."""
    mark = side.raw.mark()
    ex = exchange(side.port, build_request("GET", path), idle=0.5)
    time.sleep(SETTLE)
    only_requests(side, mark, [path], what or path)
    assert ex.error is None, "%s: %s" % (what or path, ex.error)
    assert len(ex.responses) == 1, "%s: expected one 502, got %d responses (closed=%s): %r" % (
        what or path, len(ex.responses), ex.closed, ex.responses)
    assert_error(ex.responses[0], 502, "bad_gateway")
    for c, _ in side.raw.delta(mark):
        assert not c.after_close, "request sent on a connection the upstream had closed: %r" % (
            bytes(c.after_close[:300]),)


def fake_76():
    """76 bytes that are a complete response with a Set-Cookie."""
    pre = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=attacker\r\nContent-Length: "
    for n in range(1, 40):
        d = pre + str(n).encode() + b"\r\n\r\n" + b"F" * n
        if len(d) == 76:
            return d, b"F" * n
    raise AssertionError("no 76-byte fake")


@pytest.mark.parametrize("code", [100, 103])
def test_b5_interim_response_with_content_length_no_desync(env, code):
    fake, fake_body = fake_76()
    real = response(200, b"first-real", [("X-Which", "first-real")])
    interim = b"HTTP/1.1 %d Continue\r\nContent-Length: 76\r\n\r\n" % code
    side = Side(None, None)
    raw = RawUpstream(respond=lambda req: ([interim + fake + real, KEEP]
                                           if req.path == "/b5/first" else None), name="b5")
    try:
        s = make_gateway(env, raw, upstreams={"raw": helpers.upstream_conf(raw, retries=0,
                                                                          keepalive=4)})
        side.port, side.raw, side.gw = s.port, raw, s.gw
        mark = raw.mark()
        ex = exchange(side.port, build_request("GET", "/b5/first") +
                      build_request("GET", "/b5/second"), idle=0.5)
        time.sleep(SETTLE)
        reqs = raw.since(mark)
        assert [q.path for q in reqs] == ["/b5/first", "/b5/second"], reqs
        assert not raw.bad(), raw.bad()
    finally:
        raw.close()
    assert ex.error is None, ex.error
    assert len(ex.responses) == 2, "expected exactly two responses, got %r" % ex.responses
    r1, r2 = ex.responses
    rid1, rid2 = well_formed(r1, "first"), well_formed(r2, "second")
    assert rid1 != rid2
    if r1.status == 502:
        assert_error(r1, 502, "bad_gateway")
    else:
        assert r1.status == 200 and r1.body in (fake_body, b"first-real"), r1
    assert r2.status == 200, "second response: %r" % r2
    assert r2.body not in (fake_body, b"first-real"), \
        "the second request got the upstream's leftover answer to the first: %r" % r2
    assert r2.json()["path"] == "/b5/second", r2
    assert not r2.all("Set-Cookie"), r2


B6_CASES = [
    ("status_000", b"HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\nok"),
    ("status_999", b"HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\nok"),
    ("status_20", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("name_transfer_space_encoding",
     b"HTTP/1.1 200 OK\r\nTransfer Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("name_content_space_length", b"HTTP/1.1 200 OK\r\nContent Length: 5\r\n\r\nhello"),
    # found by fuzz_response: llhttp reads a bare CR as a line end and a
    # status code of any length
    ("bare_cr_in_field", b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 2\r\n\r\nok"),
    ("bare_cr_end_of_head", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\rXok"),
    ("status_0200", b"HTTP/1.1 0200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("version_2_0", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
]


@pytest.mark.parametrize("name,data", B6_CASES, ids=[c[0] for c in B6_CASES])
def test_b6_invalid_upstream_response_502(alive, name, data):
    path = "/b6/" + name
    alive.script[path] = [data, CLOSE]
    upstream_garbage_502(alive, path, name)


@pytest.mark.parametrize("end", [RESET, CLOSE])
def test_b7_retry_after_partial_head_leaks_nothing(env, end):
    partial = b"HTTP/1.1 200 OK\r\nSet-Cookie: leaked=1\r\nX-From-A: 1\r\n"
    a = RawUpstream(respond=lambda req: [partial, 0.05, end], name="A")
    b = RawUpstream(name="B")
    try:
        s = make_gateway(env, a, upstreams={"u": helpers.upstream_conf(
            a, b, retries=1, balance="round_robin", keepalive=4)},
            routes=[{"name": "all", "match": {"path": "/"}, "upstream": "u"}])
        paths = ["/b7/%d" % i for i in range(4)]
        results = [exchange(s.port, build_request("GET", p), idle=0.3) for p in paths]
        time.sleep(SETTLE)
        a_reqs, b_reqs = a.requests(), b.requests()
        a_conns = a.conns()
    finally:
        a.close()
        b.close()
    summary = [(p, [(r.status, r.header("X-Upstream")) for r in ex.responses], ex.error)
               for p, ex in zip(paths, results)]
    for p, ex in zip(paths, results):
        assert ex.error is None, (p, ex.error)
        assert len(ex.responses) == 1, (p, ex.responses)
        r = ex.responses[0]
        well_formed(r, p)
        names = {n.lower() for n, _ in r.headers}
        assert "set-cookie" not in names and "x-from-a" not in names, \
            "header from target A's broken answer leaked to the client: %r" % r.headers
        assert b"leaked" not in r.raw_head, r.raw_head
    assert a_reqs, "target A was never tried (test ineffective): %r" % summary
    for c in a_conns:
        assert len(c.requests) <= 1 and not c.after_close and not c.bad, \
            "target A connection reused after its broken answer: %r" % c
    for p, ex in zip(paths, results):
        r = ex.responses[0]
        assert r.status == 200 and r.header("X-Upstream") == "B", \
            "%s not retried on target B after target A broke off its head (%s): %r" % (
                p, end, summary)
        assert r.json()["path"] == p, r
    assert [q.path for q in b_reqs] == paths, "target B received %r" % b_reqs


# ====================================================================== C: headers


NOMINATED = ("X-Api-Version, X-Forwarded-For, X-Request-Id, X-Forwarded-Proto, "
             "X-Forwarded-Host, X-User-Id")


def _one(h, name):
    v = h.get(name, [])
    assert len(v) == 1, "upstream got %s %r (expected exactly one)" % (name, v)
    return v[0]


def check_gateway_headers(r, q, host="e2e.test"):
    h = q.hdict()
    rid = well_formed(r)
    assert _one(h, "x-request-id") == rid, "X-Request-Id upstream %r, client %r" % (
        h.get("x-request-id"), rid)
    xff = _one(h, "x-forwarded-for")
    assert xff.split(",")[-1].strip() == "127.0.0.1", xff
    assert _one(h, "x-forwarded-proto") == "http"
    assert _one(h, "x-forwarded-host").lower() == host.lower()
    for v in h.get("connection", []):
        assert v.strip().lower() in ("keep-alive", "close"), "Connection forwarded: %r" % v
    return h


@pytest.mark.parametrize("route", ["hdr", "jwt"])
def test_c8_connection_cannot_remove_gateway_headers(alive, route):
    path = "/%s/c8" % route
    hdrs = [("Connection", NOMINATED), ("X-Api-Version", "1"),
            ("X-Forwarded-For", "203.0.113.9"), ("X-Request-Id", "client-rid-c8"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test"),
            ("X-User-Id", "admin")]
    if route == "jwt":
        hdrs.append(("Authorization", "Bearer " + hs_token(sub="user-c8")))
    mark = alive.raw.mark()
    ex = exchange(alive.port, build_request("GET", path, hdrs), idle=0.3)
    assert ex.error is None and len(ex.responses) == 1, ex
    r = ex.responses[0]
    assert r.status == 200, r
    (q,) = only_requests(alive, mark, [path])
    h = check_gateway_headers(r, q)
    assert h.get("x-api-version") == ["2"], "X-Api-Version upstream %r" % h.get("x-api-version")
    if route == "jwt":
        assert h.get("x-user-id") == ["user-c8"], "X-User-Id upstream %r" % h.get("x-user-id")
    else:
        assert "x-user-id" not in h, "client X-User-Id reached the upstream: %r" % h["x-user-id"]


SPOOFED = [("Forwarded", "for=1.2.3.4;proto=https"), ("X-Forwarded-Port", "443"),
           ("X-Forwarded-Prefix", "/internal"), ("X-Forwarded-Ssl", "on"),
           ("X-Forwarded-Scheme", "https"), ("X-FORWARDED-SERVER", "evil.test"),
           ("forwarded", "for=5.6.7.8"), ("X-Forwarded-For", "1.2.3.4"),
           ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")]


def test_c9_forwarded_headers_from_untrusted_peer_removed(alive):
    mark = alive.raw.mark()
    ex = exchange(alive.port, build_request("GET", "/c9/untrusted", SPOOFED), idle=0.3)
    assert ex.error is None and len(ex.responses) == 1, ex
    r = ex.responses[0]
    assert r.status == 200, r
    (q,) = only_requests(alive, mark, ["/c9/untrusted"])
    h = check_gateway_headers(r, q)
    for name in ("forwarded", "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-ssl",
                 "x-forwarded-scheme", "x-forwarded-server"):
        assert name not in h, "%s from an untrusted peer reached the upstream: %r" % (
            name, h[name])
    assert h["x-forwarded-for"] == ["1.2.3.4, 127.0.0.1"], h["x-forwarded-for"]


def test_c9_forwarded_from_trusted_peer_passed_on(env):
    raw = RawUpstream(name="trusted")
    try:
        side = make_gateway(env, raw, trusted_proxies=["127.0.0.0/8"])
        mark = raw.mark()
        ex = exchange(side.port, build_request("GET", "/c9/trusted", [
            ("Forwarded", "for=1.2.3.4;proto=https"), ("X-Forwarded-For", "1.2.3.4")]),
            idle=0.3)
        time.sleep(SETTLE)
        assert ex.error is None and len(ex.responses) == 1, ex
        r = ex.responses[0]
        assert r.status == 200, r
        (q,) = only_requests(side, mark, ["/c9/trusted"])
    finally:
        raw.close()
    h = q.hdict()
    well_formed(r)
    assert h.get("forwarded") == ["for=1.2.3.4;proto=https"], h.get("forwarded")
    assert h.get("x-forwarded-for") == ["1.2.3.4, 127.0.0.1"], h.get("x-forwarded-for")


def _forged():
    t = hs_token(sub="admin")
    head, payload, sig = t.split(".")
    return head + "." + payload + "." + J.b64url(b"\x00" * 32)


C10_CASES = [
    ("authorization_valid_then_forged", "GET", "/jwt/c10",
     lambda: [("Authorization", "Bearer " + hs_token()), ("Authorization", "Bearer " + _forged())],
     None),
    ("authorization_forged_then_valid", "GET", "/jwt/c10",
     lambda: [("Authorization", "Bearer " + _forged()), ("Authorization", "Bearer " + hs_token())],
     None),
    ("authorization_twice_open_route", "GET", "/c10/open",
     lambda: [("Authorization", "Bearer a"), ("Authorization", "Bearer b")], None),
    ("content_type_twice_validate", "POST", "/validate/c10",
     lambda: [("Content-Type", "application/json"), ("Content-Type", "application/json")], b"{}"),
    ("content_type_twice_differing", "POST", "/validate/c10",
     lambda: [("Content-Type", "application/json"), ("Content-Type", "text/plain")], b"{}"),
    ("content_type_twice_open_route", "POST", "/c10/open",
     lambda: [("Content-Type", "text/plain"), ("Content-Type", "text/plain")], b"hello"),
    ("host_twice_equal", "GET", "/c10/host", lambda: [("Host", "e2e.test"), ("Host", "e2e.test")],
     None),
    ("content_length_twice_equal", "POST", "/c10/cl",
     lambda: [("Content-Type", "text/plain"), ("Content-Length", "5"), ("Content-Length", "5")],
     b"hello"),
]


@pytest.mark.parametrize("name,method,path,hdrs,body", C10_CASES, ids=[c[0] for c in C10_CASES])
def test_c10_repeated_singleton_header_400(alive, name, method, path, hdrs, body):
    data = build_request(method, path, hdrs(), body=body)
    refused(alive, data, what=name)


C11_VALUES = [("soh", "a\x01b"), ("del", "a\x7fb"), ("nul", "a\x00b"),
              ("crlf_injection", "a\r\nX-Injected: 1"), ("lf_injection", "a\nX-Injected: 1"),
              ("cr", "a\rb")]


@pytest.mark.parametrize("claim", ["note", "sub"])
@pytest.mark.parametrize("name,value", C11_VALUES, ids=[c[0] for c in C11_VALUES])
def test_c11_claim_with_control_character_never_forwarded(alive, claim, name, value):
    path = "/jwt/c11"
    tok = hs_token(**{claim: value})
    mark = alive.raw.mark()
    ex = exchange(alive.port, build_request("GET", path, [("Authorization", "Bearer " + tok)]),
                  idle=0.3)
    others, leaks = upstream_view(alive, mark)
    assert not leaks, "bytes upstream outside complete requests (malformed?): %r" % (
        [(c.id, c.bad, b[:400]) for c, b in leaks],)
    for q in others:
        for n, v in q.headers:
            assert not CTRL_RE.search(n + v), "control character upstream: %r: %r" % (n, v)
            assert n.lower() != "x-injected", "header injected upstream via a claim: %r" % q.head
    assert ex.error is None and len(ex.responses) == 1, ex
    r = ex.responses[0]
    well_formed(r)
    if r.status == 200:
        assert [q.path for q in others] == [path], others
    else:
        assert r.status in (400, 401, 403), r
        assert_error(r, r.status, CODES[r.status])
        assert not others, others


# ====================================================================== D: paths, Host


D12_PATHS = ["//admin/x", "/admin;x/secret", "/admin%00", "/admin.", "/admin%20", "/admin%2e",
             "/./admin/..;/admin", "/admin%2e%2e", "/public//admin", "/admin%09/x"]


@pytest.mark.parametrize("target", D12_PATHS)
def test_d12_ambiguous_path_400(alive, target):
    refused(alive, build_request("GET", target), what=target)


D13_HOSTS = ["a.example.com;x", "[a.example.com]", "%69nternal", "a..", "a.example.com:99999",
             "a.example.com:", "a.example.com:8o80", "a b.example.com", "a.example.com@b"]


@pytest.mark.parametrize("host", D13_HOSTS)
def test_d13_invalid_host_400(alive, host):
    refused(alive, build_request("GET", "/d13", host=host), what="Host %r" % host)


@pytest.mark.parametrize("host", ["a.example.com;x", "[a.example.com]", "a.example.com:99999"])
def test_d13_invalid_absolute_form_authority_400(alive, host):
    refused(alive, build_request("GET", "http://%s/d13" % host), what="authority %r" % host)


def test_d13_valid_host_served(alive):
    mark = alive.raw.mark()
    ex = exchange(alive.port, build_request("GET", "/d13/ok", host="API.example.com:8080"),
                  idle=0.3)
    assert ex.error is None and len(ex.responses) == 1, ex
    r = ex.responses[0]
    assert r.status == 200, r
    (q,) = only_requests(alive, mark, ["/d13/ok"])
    check_gateway_headers(r, q, host="API.example.com:8080")


# Found by fuzz_http: an error answered before the head was complete (a bad
# path) did not know the method yet and sent a body after a HEAD's 400,
# bytes the client reads as the start of the next response.
@pytest.mark.parametrize("target", ["/a;b", "//x", "/x%00"])
def test_head_refused_before_head_complete_has_no_body(alive, target):
    data = ("HEAD %s HTTP/1.1\r\n" % target).encode() + H + b"\r\n"
    s = socket.create_connection(("127.0.0.1", alive.port), timeout=5)
    try:
        s.sendall(data)
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    finally:
        s.close()
    head, sep, rest = got.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 400 "), got
    assert b"\r\ncontent-length: " in head.lower(), head
    assert rest == b"", "a body after the 400 to a HEAD: %r" % rest


# Found by fuzz_http: llhttp lets HTAB and FF through in the request target;
# the upstream received "GET /public?a<TAB>/admin HTTP/1.1", a request line
# RFC 9112 §3 lets it split on that whitespace.
@pytest.mark.parametrize("target", [b"/public?a\t/admin", b"/public?a\x0c/admin",
                                    b"/pub\tlic"], ids=["tab_query", "ff_query", "tab_path"])
def test_whitespace_in_target_400(alive, target):
    refused(alive, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n", what=repr(target))


# Found by fuzz_http: a method that only starts like HEAD ("HEADX") got a 400
# framed as an answer to HEAD (Content-Length, no body).
def test_method_with_head_prefix_gets_whole_error(alive):
    s = socket.create_connection(("127.0.0.1", alive.port), timeout=5)
    try:
        s.sendall(b"HEADX / HTTP/1.1\r\n" + H + b"\r\n")
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    finally:
        s.close()
    head, sep, body = got.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 400 "), got
    m = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    assert m and int(m.group(1)) == len(body) > 0, got
