"""Admin listener (CONTRACT §5): /healthz, /readyz, /admin/routes in
precedence order, /admin/config with secrets masked, admin.token."""

import json
import select
import socket
import time

import pytest

import helpers
from helpers import assert_error, request

TOKEN = "s3cret-admin-token"


def routes():
    # file order differs from precedence order on purpose
    return [
        {"name": "root", "match": {"path": "/"}, "upstream": "a"},
        {"name": "api", "match": {"path": "/api", "type": "prefix", "methods": ["GET", "POST"]},
         "upstream": "a"},
        {"name": "v1", "match": {"path": "/api/v1"}, "upstream": "a"},
        {"name": "x", "match": {"path": "/api/v1/x", "type": "exact"}, "upstream": "a"},
        {"name": "api_host", "match": {"path": "/api", "host": "h.test"}, "upstream": "a"},
    ]


@pytest.fixture(scope="module")
def ag(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("admin"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes())
    cfg["admin"]["token"] = "${E2E_ADMIN_TOKEN}"
    gw = env.gateway(cfg, env={"E2E_ADMIN_TOKEN": TOKEN})
    yield gw
    env.close()


def admin_get(gw, path, token=None, scheme="Bearer"):
    headers = [("Authorization", "%s %s" % (scheme, token))] if token is not None else []
    return request(gw.admin_port, "GET", path, headers=headers, host="127.0.0.1")


def test_healthz(ag):
    r = admin_get(ag, "/healthz")
    assert r.status == 200
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz(ag):
    assert admin_get(ag, "/readyz").status == 200


def test_health_endpoints_open_with_token(ag):
    assert admin_get(ag, "/healthz", token="wrong").status == 200
    assert admin_get(ag, "/readyz", token="wrong").status == 200


@pytest.mark.parametrize("path", ["/admin/routes", "/admin/config"])
def test_admin_needs_token(ag, path):
    assert_error(admin_get(ag, path), 401, "unauthorized")
    assert_error(admin_get(ag, path, token="wrong"), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN[:-1]), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN + "x"), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN, scheme="Basic"), 401, "unauthorized")
    assert admin_get(ag, path, token=TOKEN).status == 200


def test_admin_routes_in_precedence_order(ag):
    r = admin_get(ag, "/admin/routes", token=TOKEN)
    assert r.status == 200
    doc = r.json()
    got = doc["routes"]
    assert [x["name"] for x in got] == ["x", "v1", "api_host", "api", "root"], got
    by = {x["name"]: x for x in got}
    for x in got:
        assert set(x["match"]) >= {"path", "type", "methods", "host"}, x
        assert x["upstream"] == "a", x
    assert by["x"]["match"]["type"] == "exact" and by["x"]["match"]["path"] == "/api/v1/x"
    assert by["api"]["match"]["type"] == "prefix"
    assert by["api"]["match"]["methods"] == ["GET", "POST"]
    assert by["root"]["match"]["methods"] in (None, [])
    assert by["api_host"]["match"]["host"] == "h.test"
    assert by["api"]["match"]["host"] is None


def test_admin_config_masks_token(ag):
    r = admin_get(ag, "/admin/config", token=TOKEN)
    assert r.status == 200
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert TOKEN.encode() not in r.body, "admin.token leaked in /admin/config"
    doc = r.json()
    assert doc["admin"]["token"] == "***"
    assert "a" in doc["upstreams"]
    assert len(doc["routes"]) == 5


def test_admin_unknown_path_is_json_404(ag):
    r = admin_get(ag, "/admin/nope", token=TOKEN)
    assert r.status == 404
    doc = r.json()
    assert doc["status"] == 404 and isinstance(doc["error"], str)
    assert doc["request_id"] == r.header("X-Request-Id")


def test_admin_without_token_configured(env):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                                         routes()))
    r = admin_get(gw, "/admin/routes")
    assert r.status == 200 and len(r.json()["routes"]) == 5
    doc = admin_get(gw, "/admin/config").json()
    assert doc["admin"].get("token") in (None, "***")


# ------------------------------------------------------------------ /admin/config hides ${ENV}
# (issue 7 E.18: every value that came from ${NAME} substitution, and every
# secret key, is "***"; literal non-secret values stay readable)

ENV_TOKEN = "adm-tok-7d41c0e2"
LITERAL_NOTE = "plain-literal-value-41"
LITERAL_SIG_SECRET = "literal-sig-secret-2f8e"


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("admin-env"))
    up = env.upstream("envup")
    port, admin = helpers.free_port(), helpers.free_port()
    values = {
        "E2E_ADMIN_TOKEN": ENV_TOKEN,
        "E2E_HDR_CRED": "cred-from-env-5b2f9a71",
        "E2E_BEARER": "bearer-part-c03e6d",
        "E2E_UP_URL": up.url,
        "E2E_ROUTE_PATH": "/envpath-9c1e",
        "E2E_CONNECT_TIMEOUT": "1234ms",
        "E2E_RESP_VAL": "resp-env-val-88aa",
        "E2E_JWT_SECRET": "jwt-env-secret-" + "0123456789abcdef" * 3 + "x" * 1,
        "E2E_CLAIM_HDR": "X-Env-Claim-Hdr-3a",
    }
    ups = {"envup": {"targets": [{"url": "${E2E_UP_URL}"}],
                     "connect_timeout": "${E2E_CONNECT_TIMEOUT}"}}
    routes = [
        {"name": "envroute", "match": {"path": "${E2E_ROUTE_PATH}"}, "upstream": "envup",
         "headers": {
             "request": {"set": {"X-Api-Credential": "${E2E_HDR_CRED}",
                                 "X-Client-Ident": "Bearer ${E2E_BEARER}",
                                 "X-Literal-Note": LITERAL_NOTE}},
             "response": {"set": {"X-Resp-Env": "${E2E_RESP_VAL}"}}}},
        {"name": "hook", "match": {"path": "/hook"}, "upstream": "envup",
         "verify_signature": {"secret": LITERAL_SIG_SECRET}},
        {"name": "jwtroute", "match": {"path": "/jwt"}, "upstream": "envup",
         "auth": {"jwt": "main"}},
    ]
    providers = [{"name": "main", "algorithms": ["HS256"], "secret": "${E2E_JWT_SECRET}",
                  "forward_claims": {"sub": "${E2E_CLAIM_HDR}"}}]
    cfg = helpers.base_config(port, admin, ups, routes, jwt={"providers": providers})
    cfg["admin"]["token"] = "${E2E_ADMIN_TOKEN}"
    gw = env.gateway(cfg, env=values)
    ns = type("EG", (), {})()
    ns.gw, ns.up, ns.values = gw, up, values
    yield ns
    env.close()


def test_admin_config_hides_env_values_and_secrets(eg):
    r = admin_get(eg.gw, "/admin/config", token=ENV_TOKEN)
    assert r.status == 200, r
    for name, value in eg.values.items():
        assert value.encode() not in r.body, "%s's value leaked in /admin/config" % name
    assert LITERAL_SIG_SECRET.encode() not in r.body
    doc = r.json()
    assert doc["admin"]["token"] == "***"
    up = doc["upstreams"]["envup"]
    assert up["targets"][0]["url"] == "***"
    assert up["connect_timeout"] == "***"
    assert up["read_timeout"] == "30s"  # literal/default values stay readable
    by = {x["name"]: x for x in doc["routes"]}
    env_route = by["envroute"]
    assert env_route["match"]["path"] == "***"
    assert env_route["upstream"] == "envup"
    req_set = env_route["headers"]["request"]["set"]
    assert req_set["X-Api-Credential"] == "***"
    assert req_set["X-Client-Ident"] == "***"  # "Bearer ${E2E_BEARER}": masked whole
    assert req_set["X-Literal-Note"] == LITERAL_NOTE
    assert env_route["headers"]["response"]["set"]["X-Resp-Env"] == "***"
    assert by["hook"]["verify_signature"]["secret"] == "***"
    assert by["hook"]["match"]["path"] == "/hook"
    provider = doc["jwt"]["providers"][0]
    assert provider["secret"] == "***"
    assert provider["forward_claims"]["sub"] == "***"
    assert provider["name"] == "main"


def test_env_values_still_apply(eg):
    """Masking is for the view only: the gateway uses the real values."""
    mark = eg.up.mark()
    r = request(eg.gw.port, "GET", eg.values["E2E_ROUTE_PATH"] + "/x")
    assert r.status == 200, r
    assert r.header("X-Resp-Env") == eg.values["E2E_RESP_VAL"]
    reqs = [e for e in eg.up.since(mark) if e["ev"] == "req"]
    assert len(reqs) == 1, reqs
    h = helpers.req_headers(reqs[0])
    assert h["x-api-credential"] == [eg.values["E2E_HDR_CRED"]]
    assert h["x-client-ident"] == ["Bearer " + eg.values["E2E_BEARER"]]
    assert h["x-literal-note"] == [LITERAL_NOTE]


# ------------------------------------------------------------------ issue 8 / 12
# The admin listener: HEAD on every GET endpoint, every error in the JSON
# shape of CONTRACT §4 (the ones the HTTP layer makes itself included), a
# cap on open connections, and one deadline for a whole request.

ADMIN_MAX_CONNS = 64       # PC_ADMIN_MAX_CONNS
ADMIN_DEADLINE_S = 10.0    # PC_ADMIN_DEADLINE_MS


def admin_raw(gw, data, method="GET", timeout=5.0):
    with helpers.RawConn(gw.admin_port, timeout=timeout) as c:
        c.send(data)
        r = c.read_response(method)
        return r, c.closed_within(2.0)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/admin/routes", "/admin/config"])
def test_admin_head_like_get_without_body(ag, path):
    auth = [("Authorization", "Bearer " + TOKEN)]
    with helpers.RawConn(ag.admin_port) as c:
        # HEAD then GET on one connection: a body after the HEAD answer
        # would be read as the GET's status line.
        c.send(helpers.build_request("HEAD", path, auth, host="127.0.0.1") +
               helpers.build_request("GET", path, auth, host="127.0.0.1"))
        h = c.read_response("HEAD")
        g = c.read_response("GET")
    assert h.status == 200, h
    assert g.status == 200, g
    assert h.body == b""
    assert h.header("Content-Type") == g.header("Content-Type") == "application/json"
    assert int(h.header("Content-Length")) == len(g.body) > 0
    assert h.header("X-Request-Id")


def test_admin_head_error_has_no_body(ag):
    with helpers.RawConn(ag.admin_port) as c:
        c.send(helpers.build_request("HEAD", "/nope", host="127.0.0.1") +
               helpers.build_request("GET", "/healthz", host="127.0.0.1"))
        h = c.read_response("HEAD")
        g = c.read_response("GET")
    assert h.status == 404 and h.body == b""
    assert h.header("Content-Type") == "application/json"
    assert g.status == 200 and g.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/nope", "/index.html", "//", "/healthz/x", "/admin"])
def test_admin_unknown_paths_json_404(ag, path):
    assert_error(admin_get(ag, path), 404, "route_not_found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_admin_other_methods_json_405(ag, method, path):
    r = request(ag.admin_port, method, path, host="127.0.0.1",
                body="{}" if method in ("POST", "PUT", "PATCH") else None)
    assert_error(r, 405, "method_not_allowed")
    allow = [m.strip() for m in (r.header("Allow") or "").split(",")]
    assert set(allow) == {"GET", "HEAD"}, r.header("Allow")


def test_admin_post_admin_routes_json_405(ag):
    r = request(ag.admin_port, "POST", "/admin/routes", body="{}", host="127.0.0.1",
                headers=[("Authorization", "Bearer " + TOKEN)])
    assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("raw,status,code", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "bad_request"),
    (b"G\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
     431, "headers_too_large"),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000,
     413, "payload_too_large"),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
     b"10000\r\n" + b"a" * 0x10000 + b"\r\n10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",
     413, "payload_too_large"),
], ids=["no-colon", "bare-lf", "bare-cr", "obs-fold", "bad-method", "dup-cl", "cl-te",
        "http2", "big-head", "big-body", "big-chunked"])
def test_admin_protocol_errors_are_json(ag, raw, status, code):
    """What evhttp answered itself (text/html) is the §4 JSON, then close."""
    r, closed = admin_raw(ag, raw)
    assert_error(r, status, code)
    assert r.header("Connection") == "close"
    assert closed


def test_admin_expect_100_continue(ag):
    with helpers.RawConn(ag.admin_port) as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
               b"Expect: 100-continue\r\n\r\n")
        interim = c.read_response(final=False)
        assert interim.status == 100
        c.send(b"{}")
        assert_error(c.read_response(), 405, "method_not_allowed")


def test_admin_keepalive_and_pipelining(ag):
    with helpers.RawConn(ag.admin_port) as c:
        c.send(b"".join(helpers.build_request("GET", p, host="127.0.0.1")
                        for p in ["/healthz", "/readyz", "/nope", "/healthz"]))
        got = [c.read_response().status for _ in range(4)]
        assert got == [200, 200, 404, 200]
        c.send(helpers.build_request("GET", "/healthz", [("Connection", "close")],
                                     host="127.0.0.1"))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") == "close"
        assert c.closed_within(2.0)


def test_admin_http10_closes_unless_keepalive(ag):
    with helpers.RawConn(ag.admin_port) as c:
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") == "keep-alive"
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
        assert c.closed_within(2.0)


def _admin_gateway(env):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    return env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                                           routes()))


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    return s


def _poll_closed(socks, timeout):
    """Indexes of the sockets the peer closed (EOF or reset) within timeout;
    the bytes any of them sent before closing are kept in got."""
    closed, got = set(), {}
    end = time.monotonic() + timeout
    while len(closed) < len(socks):
        left = end - time.monotonic()
        if left <= 0:
            break
        live = [s for i, s in enumerate(socks) if i not in closed]
        ready, _, _ = select.select(live, [], [], min(left, 0.2))
        for s in ready:
            i = socks.index(s)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data:
                got[i] = got.get(i, b"") + data
            else:
                closed.add(i)
    return closed, got


def _healthz_latency(port, timeout=3.0):
    t0 = time.monotonic()
    r = request(port, "GET", "/healthz", host="127.0.0.1", timeout=timeout)
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    return time.monotonic() - t0


def test_admin_connection_cap_closes_the_oldest(env):
    gw = _admin_gateway(env)
    extra = 16
    socks = []
    try:
        for _ in range(ADMIN_MAX_CONNS + extra):
            socks.append(_connect(gw.admin_port))
            time.sleep(0.005)
        closed, got = _poll_closed(socks, 2.0)
        assert not got, got
        # the oldest ones made room; every newer one is still open
        assert closed == set(range(extra)), sorted(closed)
        # at the cap a health check still gets in (closing one more idle one)
        assert _healthz_latency(gw.admin_port) < 1.0
        closed2, _ = _poll_closed(socks, 0.5)
        assert len(closed2) == extra + 1, sorted(closed2)
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    assert _healthz_latency(gw.admin_port) < 1.0
    assert gw.alive()


def test_admin_slow_clients_closed_at_the_deadline(env):
    """100 clients each sending one byte of a request every 2 s (never idle
    long enough for an idle timeout) are closed once the request deadline
    passes; /healthz answers promptly all along."""
    gw = _admin_gateway(env)
    head = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200 +
            b"\r\n\r\n")
    n = 100
    socks = [_connect(gw.admin_port) for _ in range(n)]
    sent = [0] * n
    closed_at, got = {}, {}
    latencies = []
    t0 = time.monotonic()
    next_drip = t0
    next_check = t0 + 1.0
    try:
        while len(closed_at) < n and time.monotonic() - t0 < ADMIN_DEADLINE_S + 8:
            now = time.monotonic()
            if now >= next_drip:
                for i, s in enumerate(socks):
                    if i in closed_at:
                        continue
                    try:
                        s.send(head[sent[i]:sent[i] + 1])
                        sent[i] += 1
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        pass
                next_drip += 2.0
            if now >= next_check:
                latencies.append(_healthz_latency(gw.admin_port))
                next_check += 1.5
            live = [s for i, s in enumerate(socks) if i not in closed_at]
            ready, _, _ = select.select(live, [], [], 0.1)
            for s in ready:
                i = socks.index(s)
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if data:
                    got[i] = got.get(i, b"") + data
                else:
                    closed_at[i] = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()
    assert len(closed_at) == n, "%d of %d slow clients still open after %.0fs" % (
        n - len(closed_at), n, time.monotonic() - t0)
    assert max(closed_at.values()) < ADMIN_DEADLINE_S + 4, sorted(closed_at.values())
    assert all(sent[i] < len(head) for i in range(n))  # no request ever completed
    assert len(latencies) >= 5
    assert max(latencies) < 1.0, latencies
    # those that reached the deadline got a JSON 408 before the close
    assert got, "no 408 sent to any slow client"
    for data in got.values():
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        head_, _, body = data.partition(b"\r\n\r\n")
        assert b"\r\nContent-Type: application/json\r\n" in head_
        doc = json.loads(body)
        assert doc["error"] == "request_timeout" and doc["status"] == 408
    assert _healthz_latency(gw.admin_port) < 1.0
