"""Proxying (CONTRACT §2 routes, §3 headers and paths, §4 errors): methods,
bodies, framing, HTTP/1.0, keep-alive, pipelining, 100-continue, header
rules, transforms, strip_prefix/rewrite, route precedence, 404/405."""

import time

import pytest

import helpers
from helpers import RawConn, assert_error, build_request, req_headers, request
from upstream import pattern_bytes

HOP = ["connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
       "proxy-connection", "x-secret"]


def tagged(name, path, **kw):
    """A route whose requests carry X-Route: name upstream."""
    r = {"name": name, "match": {"path": path}, "upstream": kw.pop("upstream", "a"),
         "headers": {"request": {"set": {"X-Route": name}}}}
    for k in ("type", "methods", "host"):
        if k in kw:
            r["match"][k] = kw.pop(k)
    r.update(kw)
    return r


@pytest.fixture(scope="module")
def px(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("proxy"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "echo", "match": {"path": "/e"}, "upstream": "a"},
        {"name": "hdr", "match": {"path": "/hdr"}, "upstream": "a",
         "headers": {"request": {"set": {"X-Api-Version": "2"}, "remove": ["Cookie"]},
                     "response": {"set": {"Strict-Transport-Security": "max-age=60"},
                                  "remove": ["Server", "X-Upstream"]}}},
        {"name": "strip", "match": {"path": "/strip/api"}, "upstream": "a",
         "strip_prefix": "/strip"},
        {"name": "strip_all", "match": {"path": "/s2"}, "upstream": "a", "strip_prefix": "/s2"},
        {"name": "rw", "match": {"path": "/users/{id}", "type": "exact"}, "upstream": "a",
         "rewrite": "/v2/accounts/{id}"},
        {"name": "rw2", "match": {"path": "/orgs/{org}/repos/{repo}", "type": "exact"},
         "upstream": "a", "rewrite": "/r/{repo}/o/{org}"},
        {"name": "ph", "match": {"path": "/ph"}, "upstream": "aph"},
        {"name": "methods", "match": {"path": "/m", "methods": ["GET", "POST"]}, "upstream": "a"},
        # precedence: each pair is listed with the winner last, so that file
        # order alone cannot explain a correct answer
        tagged("p_pre", "/p"),
        tagged("p_exact", "/p/x", type="exact"),
        tagged("a1", "/a"),
        tagged("a2", "/a/b"),
        tagged("u_param", "/u/{id}"),
        tagged("u_me", "/u/me"),
        tagged("h_any", "/h"),
        tagged("h_host", "/h", host="h.test"),
        tagged("w_any", "/w"),
        tagged("w_wild", "/w", host="*.wild.test"),
        tagged("abs_any", "/abs"),
        tagged("abs_host", "/abs", host="abs.test"),
    ]
    cfg = helpers.base_config(
        port, admin,
        {"a": helpers.upstream_conf(up), "aph": helpers.upstream_conf(up, preserve_host=True)},
        routes)
    gw = env.gateway(cfg)
    ns = type("PX", (), {})()
    ns.gw, ns.up, ns.port, ns.env = gw, up, port, env
    yield ns
    env.close()


def echo(resp):
    assert resp.status == 200, resp
    return resp.json()


def route_of(px, target, host="e2e.test"):
    r = request(px.port, "GET", target, host=host)
    assert r.status == 200, (target, host, r)
    h = dict((k.lower(), v) for k, v in echo(r)["headers"])
    return h.get("x-route")


# ---------------------------------------------------------------- methods, bodies


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
def test_bodyless_methods(px, method):
    r = request(px.port, method, "/e/m")
    d = echo(r)
    assert d["method"] == method and d["path"] == "/e/m" and d["body_len"] == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_methods_with_body(px, method):
    body = bytes(range(256)) * 40
    r = request(px.port, method, "/e/body", body=body)
    d = echo(r)
    assert d["method"] == method and d["body_len"] == len(body)
    ev = px.up.last_request()
    assert ev["body"].encode("latin-1") == body


def test_head_has_no_body(px):
    with RawConn(px.port) as c:
        c.send(build_request("HEAD", "/e/bytes/100"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("Content-Length") == "100"
        # a body leaked after the HEAD answer would be read as the next status line
        c.send(build_request("GET", "/e/after-head"))
        r2 = c.read_response()
        assert echo(r2)["path"] == "/e/after-head"
    assert px.up.requests()[-2]["method"] == "HEAD"


def test_head_on_chunked_resource(px):
    with RawConn(px.port) as c:
        c.send(build_request("HEAD", "/e/chunked/3000"))
        r = c.read_response("HEAD")
        assert r.status == 200
        c.send(build_request("GET", "/e/after-chunked-head"))
        assert echo(c.read_response())["path"] == "/e/after-chunked-head"


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses(px, code):
    with RawConn(px.port) as c:
        c.send(build_request("GET", "/e/status/%d" % code))
        r = c.read_response()
        assert r.status == code and r.body == b""
        assert not r.all("Transfer-Encoding"), r.headers
        c.send(build_request("GET", "/e/after-%d" % code))
        assert echo(c.read_response())["path"] == "/e/after-%d" % code


def test_upstream_status_passed_through(px):
    r = request(px.port, "GET", "/e/status/503")
    assert r.status == 503 and r.json() == {"status": 503}
    assert r.header("X-Upstream") == "a"


def test_query_string_untouched(px):
    q = "?a=1&b=%2F%20x&c=%7E&d=..%2F&e&f=%2e%2e"
    d = echo(request(px.port, "GET", "/e/q" + q))
    assert d["target"] == "/e/q" + q


def test_path_normalised_and_encoded_slash_kept(px):
    assert echo(request(px.port, "GET", "/e/%7Euser/./x/../y"))["target"] == "/e/~user/y"
    assert echo(request(px.port, "GET", "/e/a%2Fb/c"))["target"] == "/e/a%2Fb/c"


def test_request_split_into_single_bytes(px):
    """CR and LF in separate reads, body bytes that look like line ends."""
    data = build_request("POST", "/e/split", headers=[("X-A", "1")], body=b"abc\r\nd\nef")
    with RawConn(px.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        d = echo(c.read_response())
    assert d["path"] == "/e/split" and d["body_len"] == 9
    assert px.up.last_request()["body"] == "abc\r\nd\nef"


def test_chunked_request_body_forwarded(px):
    with RawConn(px.port) as c:
        c.send(b"POST /e/chunked-in HTTP/1.1\r\nHost: e2e.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n")
        c.send(b"5;ext=1\r\nworld\r\n0\r\n\r\n")
        d = echo(c.read_response())
    assert d["body_len"] == 11
    assert px.up.last_request()["body"] == "hello world"


def test_chunked_response(px):
    r = request(px.port, "GET", "/e/chunked/5000?chunk=700")
    assert r.status == 200 and r.body == pattern_bytes(5000)


def test_close_delimited_response(px):
    r = request(px.port, "GET", "/e/noclen/3000")
    assert r.status == 200 and r.body == pattern_bytes(3000)


def test_large_response_body(px):
    r = request(px.port, "GET", "/e/bytes/3000000")
    assert r.status == 200 and len(r.body) == 3000000 and r.body == pattern_bytes(3000000)


# ---------------------------------------------------------------- HTTP/1.0, keep-alive


def test_http10_closes(px):
    with RawConn(px.port) as c:
        c.send(b"GET /e/ten HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert echo(r)["path"] == "/e/ten"
        assert "keep-alive" not in (r.header("Connection") or "").lower()
        assert c.closed_within(3), "HTTP/1.0 request without keep-alive: connection left open"


def test_http10_chunked_upstream_not_chunked_to_client(px):
    with RawConn(px.port) as c:
        c.send(b"GET /e/chunked/2000 HTTP/1.0\r\nHost: e2e.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert not r.all("Transfer-Encoding"), "chunked sent to an HTTP/1.0 client"
        assert r.body == pattern_bytes(2000)


def test_http10_keepalive(px):
    with RawConn(px.port) as c:
        c.send(b"GET /e/ka1 HTTP/1.0\r\nHost: e2e.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert echo(r)["path"] == "/e/ka1"
        if "keep-alive" in (r.header("Connection") or "").lower():
            assert r.header("Content-Length") is not None
            c.send(b"GET /e/ka2 HTTP/1.0\r\nHost: e2e.test\r\nConnection: keep-alive\r\n\r\n")
            assert echo(c.read_response())["path"] == "/e/ka2"
        else:
            assert c.closed_within(3), "no keep-alive announced but connection left open"


def test_keepalive_reuse(px):
    with RawConn(px.port) as c:
        for i in range(5):
            c.send(build_request("GET", "/e/ka/%d" % i))
            r = c.read_response()
            assert echo(r)["path"] == "/e/ka/%d" % i
            assert "close" not in (r.header("Connection") or "").lower()


def test_pipelined_requests_in_order(px):
    reqs = (build_request("GET", "/e/sleep/300/one") +
            build_request("POST", "/e/two", body=b"x" * 1000) +
            build_request("GET", "/e/three"))
    with RawConn(px.port) as c:
        c.send(reqs)
        paths = [echo(c.read_response())["path"] for _ in range(3)]
    assert paths == ["/e/sleep/300/one", "/e/two", "/e/three"]


def test_expect_100_continue(px):
    with RawConn(px.port) as c:
        c.send(b"POST /e/expect HTTP/1.1\r\nHost: e2e.test\r\nContent-Length: 11\r\n"
               b"Expect: 100-continue\r\n\r\n")
        c.sock.settimeout(3)
        version, status, _, _, _ = c.read_head()
        assert (version, status) == ("HTTP/1.1", 100)
        c.send(b"hello world")
        d = echo(c.read_response())
    assert d["body_len"] == 11
    assert px.up.last_request()["body"] == "hello world"


def test_absolute_form(px):
    with RawConn(px.port) as c:
        c.send(b"GET http://abs.test/abs/p?q=1 HTTP/1.1\r\nHost: wrong.test\r\n\r\n")
        d = echo(c.read_response())
    assert d["target"] == "/abs/p?q=1"
    h = dict((k.lower(), v) for k, v in d["headers"])
    assert h["x-route"] == "abs_host", "absolute-form authority must replace Host for routing"
    assert h["x-forwarded-host"] == "abs.test"


def test_absolute_form_preserve_host(px):
    with RawConn(px.port) as c:
        c.send(b"GET http://abs.test:8080/ph/p HTTP/1.1\r\nHost: wrong.test\r\n\r\n")
        d = echo(c.read_response())
    assert d["target"] == "/ph/p"
    assert dict((k.lower(), v) for k, v in d["headers"])["host"] == "abs.test:8080"


# ---------------------------------------------------------------- forwarded headers


def test_x_forwarded_for_appended(px):
    request(px.port, "GET", "/e/xff", headers=[("X-Forwarded-For", "198.51.100.7")])
    h = req_headers(px.up.last_request())
    assert h["x-forwarded-for"] == ["198.51.100.7, 127.0.0.1"]
    request(px.port, "GET", "/e/xff2")
    assert req_headers(px.up.last_request())["x-forwarded-for"] == ["127.0.0.1"]


def test_x_forwarded_proto_and_host(px):
    request(px.port, "GET", "/e/xfp", host="client.test:8080",
            headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")])
    h = req_headers(px.up.last_request())
    assert h["x-forwarded-proto"] == ["http"], "spoofed X-Forwarded-Proto from an untrusted peer"
    assert h["x-forwarded-host"] == ["client.test:8080"]


@pytest.mark.parametrize("rid", ["abc-123_.:XYZ", "a", "r" * 128])
def test_request_id_kept_when_valid(px, rid):
    r = request(px.port, "GET", "/e/rid", headers=[("X-Request-Id", rid)])
    assert r.status == 200
    assert req_headers(px.up.last_request())["x-request-id"] == [rid]
    assert r.header("X-Request-Id") == rid


@pytest.mark.parametrize("rid", ["r" * 129, "x" * 200, "has space", "semi;colon", "slash/x", ""])
def test_request_id_replaced_when_invalid(px, rid):
    r = request(px.port, "GET", "/e/rid", headers=[("X-Request-Id", rid)])
    assert r.status == 200
    sent = req_headers(px.up.last_request())["x-request-id"]
    assert len(sent) == 1 and helpers.HEX32_RE.match(sent[0]), sent
    assert r.header("X-Request-Id") == sent[0]


def test_request_id_generated_unique(px):
    ids = set()
    for _ in range(5):
        r = request(px.port, "GET", "/e/rid")
        sent = req_headers(px.up.last_request())["x-request-id"]
        assert len(sent) == 1 and helpers.HEX32_RE.match(sent[0]), sent
        assert r.header("X-Request-Id") == sent[0]
        ids.add(sent[0])
    assert len(ids) == 5


def test_hop_by_hop_removed_upstream(px):
    request(px.port, "GET", "/e/hop", headers=[
        ("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "foo/1"),
        ("Proxy-Authorization", "Basic YTpi"), ("Proxy-Connection", "keep-alive"),
        ("X-Keep", "yes")])
    h = req_headers(px.up.last_request())
    for name in HOP:
        if name == "connection":
            for v in h.get(name, []):
                assert v.lower() in ("keep-alive", "close"), "Connection forwarded: %r" % v
        else:
            assert name not in h, "%s forwarded upstream: %r" % (name, h[name])
    assert h["x-keep"] == ["yes"]


def test_hop_by_hop_removed_from_response(px):
    r = request(px.port, "GET", "/e/hopbyhop")
    assert r.status == 200 and r.body == b"hop"
    names = {n.lower() for n, _ in r.headers}
    assert "x-up-secret" not in names and "keep-alive" not in names, r.headers
    assert r.header("X-Up-Public") == "1"


def test_preserve_host(px):
    request(px.port, "GET", "/e/host", host="client.test:8080")
    assert req_headers(px.up.last_request())["host"] == ["127.0.0.1:%d" % px.up.port]
    request(px.port, "GET", "/ph/host", host="client.test:8080")
    assert req_headers(px.up.last_request())["host"] == ["client.test:8080"]


def test_request_header_transform(px):
    request(px.port, "GET", "/hdr/x", headers=[("X-Api-Version", "1"), ("Cookie", "s=1"),
                                               ("cookie", "t=2"), ("X-Other", "o")])
    h = req_headers(px.up.last_request())
    assert h["x-api-version"] == ["2"]
    assert "cookie" not in h
    assert h["x-other"] == ["o"]


def test_response_header_transform(px):
    r = request(px.port, "GET", "/hdr/x")
    assert r.status == 200
    assert r.all("Strict-Transport-Security") == ["max-age=60"]
    assert "e2e-upstream" not in r.all("Server"), r.headers
    assert r.header("X-Upstream") is None, r.headers
    r = request(px.port, "GET", "/e/x")
    assert r.header("X-Upstream") == "a" and r.header("Strict-Transport-Security") is None


# ---------------------------------------------------------------- strip_prefix, rewrite


def test_strip_prefix(px):
    assert echo(request(px.port, "GET", "/strip/api/users?x=1"))["target"] == "/api/users?x=1"
    assert echo(request(px.port, "GET", "/s2/a/b"))["target"] == "/a/b"
    assert echo(request(px.port, "GET", "/s2"))["target"] == "/"
    assert echo(request(px.port, "GET", "/s2?q=1"))["target"] == "/?q=1"


def test_prefix_matches_on_segment_boundary(px):
    assert_error(request(px.port, "GET", "/s2x"), 404, "route_not_found")
    assert_error(request(px.port, "GET", "/strip/apix"), 404, "route_not_found")


def test_rewrite_with_params(px):
    assert echo(request(px.port, "GET", "/users/42?x=1"))["target"] == "/v2/accounts/42?x=1"
    assert echo(request(px.port, "GET", "/orgs/acme/repos/gw"))["target"] == "/r/gw/o/acme"
    assert_error(request(px.port, "GET", "/users/42/more"), 404, "route_not_found")


# ---------------------------------------------------------------- 404 / 405


def test_404_route_not_found(px):
    mark = px.up.mark()
    r = request(px.port, "GET", "/nope/x")
    doc = assert_error(r, 404, "route_not_found")
    assert helpers.HEX32_RE.match(doc["request_id"]), doc
    assert set(doc) >= {"error", "message", "status", "request_id"}
    assert not px.up.since(mark, "req")


def test_404_keeps_valid_request_id(px):
    r = request(px.port, "GET", "/nope", headers=[("X-Request-Id", "trace-1")])
    assert assert_error(r, 404, "route_not_found")["request_id"] == "trace-1"


def test_405_with_allow(px):
    mark = px.up.mark()
    r = request(px.port, "DELETE", "/m/x")
    assert_error(r, 405, "method_not_allowed")
    allow = {m.strip() for m in ",".join(r.all("Allow")).split(",") if m.strip()}
    assert {"GET", "POST"} <= allow and "DELETE" not in allow, r.headers
    assert not px.up.since(mark, "req")
    assert echo(request(px.port, "POST", "/m/x", body=b"ok"))["method"] == "POST"


# ---------------------------------------------------------------- precedence


def test_exact_before_prefix(px):
    assert route_of(px, "/p/x") == "p_exact"
    assert route_of(px, "/p/x/y") == "p_pre"
    assert route_of(px, "/p") == "p_pre"


def test_more_static_segments_first(px):
    assert route_of(px, "/a/b/c") == "a2"
    assert route_of(px, "/a/b") == "a2"
    assert route_of(px, "/a/c") == "a1"


def test_static_before_param(px):
    assert route_of(px, "/u/me/x") == "u_me"
    assert route_of(px, "/u/42/x") == "u_param"


def test_host_specific_first(px):
    assert route_of(px, "/h/1", host="h.test") == "h_host"
    assert route_of(px, "/h/1", host="h.test:8080") == "h_host"
    assert route_of(px, "/h/1", host="H.TEST") == "h_host"
    assert route_of(px, "/h/1", host="other.test") == "h_any"


def test_wildcard_host(px):
    assert route_of(px, "/w", host="a.wild.test") == "w_wild"
    assert route_of(px, "/w", host="x.y.wild.test") in ("w_wild", "w_any")
    assert route_of(px, "/w", host="wild.test") == "w_any"
    assert route_of(px, "/w", host="notwild.test") == "w_any"


def test_ipv6_listener(env):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                              [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
                              listen=[{"address": "[::1]:%d" % port}])
    gw = env.gateway(cfg)
    r = request(gw.port, "GET", "/v6", addr="::1")
    assert echo(r)["path"] == "/v6"
    assert req_headers(up.last_request())["x-forwarded-for"] == ["::1"]
