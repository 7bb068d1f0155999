"""Access log (CONTRACT §7; issue 8 task 13): a line that would pass 4 KiB
was dropped as a whole, so a request with a long path (a 401 or 403 worth
seeing) left no trace. Long fields are now cut at a character boundary, the
line says "truncated": true, and every request gets exactly one valid JSON
line of at most 4 KiB."""

import json
import os

import pytest

import helpers
import jwt_util as J
from helpers import request

LINE_MAX = 4096  # PC_LOG_LINE_MAX, newline included
SECRET = "access-log-hs-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
KEYS = ["ts", "request_id", "client_ip", "method", "path", "status", "bytes_in",
        "bytes_out", "duration_ms", "route", "upstream_target", "upstream_ms", "cache",
        "user", "tls", "error", "truncated"]


@pytest.fixture(scope="module")
def al(tmp_path_factory):
    d = tmp_path_factory.mktemp("access-log")
    env = helpers.Env(d)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "open", "match": {"path": "/open"}, "upstream": "a"},
        {"name": "deny", "match": {"path": "/deny"}, "upstream": "a",
         "acl": {"deny": ["127.0.0.0/8"]}},
        {"name": "auth", "match": {"path": "/auth"}, "upstream": "a",
         "auth": {"jwt": "hs"}},
    ]
    log_path = os.path.join(str(d), "access.log")
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                              jwt={"providers": [{"name": "hs", "algorithms": ["HS256"],
                                                  "secret": SECRET}]})
    cfg["log"]["access"] = log_path
    gw = env.gateway(cfg)
    ns = type("AL", (), {})()
    ns.gw, ns.up, ns.log = gw, up, log_path
    yield ns
    env.close()


def log_lines(al):
    with open(al.log, "rb") as f:
        return f.read().split(b"\n")[:-1]


def line_for(al, rid):
    """The one access-log line of request rid (waits for the writer)."""
    def find():
        got = []
        for raw in log_lines(al):
            assert len(raw) + 1 <= LINE_MAX, "line of %d bytes" % (len(raw) + 1)
            doc = json.loads(raw.decode("utf-8"))  # every line is valid JSON
            assert list(doc) == KEYS, list(doc)
            if doc["request_id"] == rid:
                got.append(doc)
        return got
    got = helpers.wait_for(find, timeout=5.0, what="access-log line of %s" % rid)
    assert len(got) == 1, got
    return got[0]


def long_path(prefix, n=7 * 1024):
    return prefix + "/" + "".join("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]
                                  for i in range(n))


def check_cut(doc, path):
    assert doc["truncated"] is True, doc
    assert 1000 < len(doc["path"]) < len(path)
    assert path.startswith(doc["path"])


@pytest.mark.parametrize("prefix,status,error", [
    ("/deny", 403, "forbidden"),
    ("/auth", 401, "unauthorized"),
    ("/nowhere", 404, "route_not_found"),
])
def test_long_path_error_is_logged_cut(al, prefix, status, error):
    path = long_path(prefix)
    r = request(al.gw.port, "GET", path)
    assert r.status == status, r
    doc = line_for(al, r.header("X-Request-Id"))
    assert doc["status"] == status and doc["error"] == error, doc
    assert doc["method"] == "GET" and doc["client_ip"] == "127.0.0.1"
    check_cut(doc, path)


def test_long_path_and_user_on_a_proxied_request(al):
    sub = "user-" + "u" * 3000
    tok = J.mint("HS256", {"sub": sub, "exp": J.now() + 600}, secret=SECRET)
    path = long_path("/auth")
    r = request(al.gw.port, "GET", path, headers=[("Authorization", "Bearer " + tok)])
    assert r.status == 200, r
    doc = line_for(al, r.header("X-Request-Id"))
    assert doc["status"] == 200 and doc["error"] is None
    assert doc["route"] == "auth" and doc["upstream_target"] == al.up.url
    check_cut(doc, path)
    assert 100 < len(doc["user"]) < len(sub) and sub.startswith(doc["user"])


@pytest.mark.parametrize("shift", range(6))
def test_escaped_and_utf8_long_path_cut_cleanly(al, shift):
    """A quote doubles in JSON and an emoji is 4 bytes: wherever the cut
    falls (shift moves it), it never splits an escape or a character."""
    path = "/deny/" + "x" * shift + 'a"\U0001F600\u00e9' * 800
    with helpers.RawConn(al.gw.port) as c:
        c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: e2e.test\r\n\r\n")
        r = c.read_response()
    assert r.status == 403, r
    doc = line_for(al, r.header("X-Request-Id"))
    assert doc["status"] == 403 and doc["error"] == "forbidden"
    check_cut(doc, path)


def test_short_line_is_whole_and_not_truncated(al):
    r = request(al.gw.port, "GET", "/open/x?secret=1")
    assert r.status == 200, r
    doc = line_for(al, r.header("X-Request-Id"))
    assert doc["truncated"] is False
    assert doc["path"] == "/open/x" and doc["status"] == 200 and doc["route"] == "open"


def test_no_line_dropped_for_its_size(al):
    rids = []
    for i in range(20):
        r = request(al.gw.port, "GET", long_path("/deny", 5000 + 100 * i))
        assert r.status == 403
        rids.append(r.header("X-Request-Id"))
    for rid in rids:
        assert line_for(al, rid)["status"] == 403
    assert al.gw.alive()
