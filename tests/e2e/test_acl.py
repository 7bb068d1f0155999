"""Allow/deny lists end to end (CONTRACT §2 acl and trusted_proxies, §3 step
3 and "Client address", §4 403 forbidden; docs/configuration.md "acl" and
"trusted_proxies", docs/security.md "Client address"): IPv4 and IPv6
clients, deny winning over allow, a route's block replacing the global one,
X-Forwarded-For believed only from trusted peers (rightmost untrusted
entry), and a 100,000-entry deny list loading fast. Client addresses come
from binding the client socket to 127.0.0.N and from a [::1] listener."""

import os
import time

import pytest

import helpers
from helpers import RawConn, assert_error, build_request, req_headers, request, run_cli


@pytest.fixture(scope="module")
def acl(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("acl"))
    env = helpers.Env(d)
    up = env.upstream("a")
    port, port6, admin = helpers.free_port(), helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "open", "match": {"path": "/open"}, "upstream": "a"},
        {"name": "allow4", "match": {"path": "/allow4"}, "upstream": "a",
         "acl": {"allow": ["127.0.0.0/29"], "deny": ["127.0.0.4"]}},
        {"name": "allow6", "match": {"path": "/allow6"}, "upstream": "a",
         "acl": {"allow": ["::1/128"]}},
        {"name": "deny6", "match": {"path": "/deny6"}, "upstream": "a",
         "acl": {"deny": ["::1"]}},
        {"name": "xff", "match": {"path": "/xff"}, "upstream": "a",
         "acl": {"allow": ["198.51.100.0/24", "2001:db8::/32"],
                 "deny": ["198.51.100.66", "2001:db8:bad::/48"]}},
        {"name": "empty", "match": {"path": "/empty"}, "upstream": "a", "acl": {}},
    ]
    cfg = helpers.base_config(
        port, admin, {"a": helpers.upstream_conf(up)}, routes,
        listen=[{"address": "127.0.0.1:%d" % port}, {"address": "[::1]:%d" % port6}],
        trusted_proxies=["127.0.0.1", "10.20.0.0/16"],
        acl={"deny": ["127.0.0.3", "2001:db8:bad::/48"]})
    gw = env.gateway(cfg)
    ns = type("ACL", (), {})()
    ns.gw, ns.up, ns.port, ns.port6 = gw, up, port, port6
    yield ns
    env.close()


def call(acl, path, source="127.0.0.2", xff=None, headers=()):
    """GET path from source (an IPv4 loopback address, or '::1'); returns
    (response, upstream requests it caused)."""
    hdrs = list(headers)
    if xff is not None:
        hdrs.append(("X-Forwarded-For", xff))
    mark = acl.up.mark()
    if source == "::1":
        r = request(acl.port6, "GET", path, headers=hdrs, addr="::1")
    else:
        r = request(acl.port, "GET", path, headers=hdrs, source=source)
    return r, acl.up.since(mark, "req")


def allowed(r, evs, path):
    assert r.status == 200, r
    assert len(evs) == 1 and evs[0]["path"] == path, evs
    return req_headers(evs[0])


def forbidden(r, evs):
    assert_error(r, 403, "forbidden")
    assert evs == [], "a denied request reached the upstream: %r" % evs


def check(acl, path, source, ok, xff=None):
    r, evs = call(acl, path, source, xff)
    if ok:
        return allowed(r, evs, path)
    forbidden(r, evs)


# ------------------------------------------------------------------ peers


@pytest.mark.parametrize("path,source,ok", [
    # global block: deny 127.0.0.3
    ("/open/a", "127.0.0.2", True),
    ("/open/a", "127.0.0.3", False),
    ("/open/a", "::1", True),
    # route block replaces the global one: .3 allowed here, deny .4 wins
    # over allow 127.0.0.0/29, .9 is outside the allow list
    ("/allow4/a", "127.0.0.2", True),
    ("/allow4/a", "127.0.0.3", True),
    ("/allow4/a", "127.0.0.4", False),
    ("/allow4/a", "127.0.0.7", True),
    ("/allow4/a", "127.0.0.9", False),
    ("/allow4/a", "::1", False),
    # IPv6 lists
    ("/allow6/a", "::1", True),
    ("/allow6/a", "127.0.0.2", False),
    ("/deny6/a", "::1", False),
    ("/deny6/a", "127.0.0.2", True),
    ("/deny6/a", "127.0.0.3", True),
    # an empty route block replaces the global deny too
    ("/empty/a", "127.0.0.3", True),
])
def test_peer_allow_deny(acl, path, source, ok):
    check(acl, path, source, ok)


def test_unrouted_request_checked_with_global_block(acl):
    r, evs = call(acl, "/nowhere", "127.0.0.3")
    forbidden(r, evs)
    r, evs = call(acl, "/nowhere", "127.0.0.2")
    assert_error(r, 404, "route_not_found")


# ------------------------------------------------------------------ X-Forwarded-For


@pytest.mark.parametrize("xff,ok", [
    ("198.51.100.7", True),
    ("198.51.100.66", False),
    ("198.51.100.66, 198.51.100.7", True),       # rightmost untrusted decides
    ("198.51.100.7, 198.51.100.66", False),
    ("198.51.100.7,198.51.100.66", False),
    ("198.51.100.66, 127.0.0.1", False),         # trusted entries are skipped
    ("198.51.100.7, 10.20.3.4, 127.0.0.1", True),
    ("198.51.100.66, 10.20.3.4, 10.20.9.9", False),
    ("203.0.113.9", False),                      # outside the allow list
    ("2001:db8::5", True),
    ("2001:db8:bad::1", False),
    ("2001:db8:bad:ffff::1, 10.20.0.1", False),
    ("::ffff:198.51.100.7", True),               # IPv4-mapped matched as IPv4
    ("::ffff:198.51.100.66", False),
    ("198.51.100.7, bogus", False),              # unparsable: walk stops, peer counts
])
def test_trusted_peer_xff(acl, xff, ok):
    check(acl, "/xff/a", "127.0.0.1", ok, xff=xff)


def test_trusted_peer_without_xff_is_the_client(acl):
    check(acl, "/xff/a", "127.0.0.1", False)
    check(acl, "/open/a", "127.0.0.1", True)


def test_trusted_peer_xff_over_several_header_lines(acl):
    """Two X-Forwarded-For fields are one list (RFC 9110 §5.3): the rightmost
    entry of the last field is nearest."""
    for first, last, ok in (("198.51.100.66", "198.51.100.7", True),
                            ("198.51.100.7", "198.51.100.66", False)):
        mark = acl.up.mark()
        r = request(acl.port, "GET", "/xff/multi", source="127.0.0.1",
                    headers=[("X-Forwarded-For", first), ("X-Forwarded-For", last)])
        evs = acl.up.since(mark, "req")
        if ok:
            allowed(r, evs, "/xff/multi")
        else:
            forbidden(r, evs)


def test_trusted_peer_xff_denied_by_global_list(acl):
    check(acl, "/open/a", "127.0.0.1", False, xff="127.0.0.3")
    check(acl, "/open/a", "127.0.0.1", False, xff="2001:db8:bad::9")
    check(acl, "/open/a", "127.0.0.1", True, xff="127.0.0.2")


@pytest.mark.parametrize("source,path,xff,ok", [
    # the XFF would be allowed / denied if believed: it is not
    ("127.0.0.2", "/xff/a", "198.51.100.7", False),
    ("::1", "/xff/a", "198.51.100.7", False),
    ("127.0.0.3", "/open/a", "198.51.100.7", False),
    ("127.0.0.3", "/open/a", "127.0.0.2", False),
    ("127.0.0.2", "/open/a", "127.0.0.3", True),
    ("127.0.0.2", "/allow4/a", "127.0.0.4", True),
    ("127.0.0.4", "/allow4/a", "127.0.0.2", False),
    ("::1", "/deny6/a", "127.0.0.2", False),
])
def test_untrusted_peer_spoofed_xff_changes_nothing(acl, source, path, xff, ok):
    h = check(acl, path, source, ok, xff=xff)
    if ok:
        # passed upstream with the peer appended
        assert h["x-forwarded-for"] == ["%s, %s" % (xff, source)], h


# ------------------------------------------------------------------ a large list


def big_deny_list():
    """100,000 distinct entries: 60,000 IPv4 /32 spread over 11.0.0.0/8 and
    40,000 IPv6 /64, plus 127.0.0.5."""
    out = []
    for i in range(60000):
        v = i * 277 + 13  # spread, distinct (277 * 60000 < 2^24)
        out.append("11.%d.%d.%d" % (v >> 16, (v >> 8) & 255, v & 255))
    for i in range(39999):
        out.append("2001:db8:%x:%x::/64" % (i >> 8, i & 255))
    out.append("127.0.0.5")
    return out


def test_100k_entry_deny_list(tmp_path):
    deny = big_deny_list()
    assert len(set(deny)) == 100000
    env = helpers.Env(tmp_path)
    try:
        up = env.upstream("a")
        port, admin = helpers.free_port(), helpers.free_port()
        cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                                  [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
                                  trusted_proxies=["127.0.0.1"], acl={"deny": deny})
        conf = os.path.join(str(tmp_path), "big.yaml")
        with open(conf, "w") as f:
            f.write(helpers.to_yaml(cfg))
        # the optimised build checks the whole file in well under a second
        if os.path.exists(helpers.REL_BIN):
            t0 = time.monotonic()
            r = run_cli("-t", "-c", conf, binary=helpers.REL_BIN)
            took = time.monotonic() - t0
            assert r.returncode == 0, r.stderr
            assert took < 1.0, "release -t with 100k ACL entries took %.2fs" % took
        t0 = time.monotonic()
        gw = env.gateway(cfg)
        took = time.monotonic() - t0
        assert took < 5.0, "ASan gateway with 100k ACL entries ready after %.2fs" % took

        def get(source="127.0.0.2", xff=None):
            hdrs = [("X-Forwarded-For", xff)] if xff else []
            mark = up.mark()
            resp = request(gw.port, "GET", "/big", headers=hdrs, source=source)
            return resp, up.since(mark, "req")
        r, evs = get("127.0.0.5")
        forbidden(r, evs)
        r, evs = get("127.0.0.2")
        allowed(r, evs, "/big")
        # entries from all over the list match (via a trusted peer's XFF)
        for entry in (deny[0], deny[31337], deny[59999], deny[60000], deny[99998]):
            addr = entry.split("/")[0].replace("::", "::42")
            r, evs = get("127.0.0.1", addr)
            forbidden(r, evs)
        for addr in ("11.0.0.12", "11.0.0.14", "2001:db8:9c:41::1", "2001:db8:ffff::1",
                     "10.1.2.3"):
            r, evs = get("127.0.0.1", addr)
            allowed(r, evs, "/big")
        # and requests keep flowing
        with RawConn(gw.port, source="127.0.0.2") as c:
            for i in range(50):
                c.send(build_request("GET", "/big/%d" % i))
                assert c.read_response().status == 200
    finally:
        env.close()
