"""TLS listeners (CONTRACT §2 listen.tls): certificates chosen by SNI,
min_version, ALPN http/1.1, session resumption, plain HTTP on a TLS port,
X-Forwarded-Proto https."""

import re
import socket
import subprocess
import ssl
import zlib

import pytest

import helpers
from helpers import RawConn, build_request, req_headers
from upstream import pattern_bytes


@pytest.fixture(scope="module")
def tg(tmp_path_factory, certs):
    env = helpers.Env(tmp_path_factory.mktemp("tls"))
    up = env.upstream("a")
    p12, p13, admin = helpers.free_port(), helpers.free_port(), helpers.free_port()
    both = [{"cert": certs.a[0], "key": certs.a[1]}, {"cert": certs.b[0], "key": certs.b[1]}]
    cfg = helpers.base_config(
        p12, admin, {"a": helpers.upstream_conf(up)},
        [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
        workers=2,
        limits={"max_body_bytes": "4m"},
        listen=[{"address": "127.0.0.1:%d" % p12,
                 "tls": {"certificates": both, "min_version": "TLSv1.2"}},
                {"address": "127.0.0.1:%d" % p13,
                 "tls": {"certificates": both, "min_version": "TLSv1.3"}}])
    gw = env.gateway(cfg)
    ns = type("TG", (), {})()
    ns.gw, ns.up, ns.p12, ns.p13, ns.certs = gw, up, p12, p13, certs
    yield ns
    env.close()


def peer_cn(sock):
    cert = sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def handshake(port, ctx, sni):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=sni)


def unverified_cn(port, sni):
    ctx = helpers.client_ctx(verify=False)
    with handshake(port, ctx, sni) as s:
        der = s.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem,
                                 capture_output=True, text=True).stdout
    return out.strip().split("CN")[-1].lstrip(" =")


def get(sock, target):
    c = RawConn.from_socket(sock, 5)
    c.send(build_request("GET", target, host="a.test"))
    return c.read_response()


@pytest.mark.parametrize("sni,cn", [("a.test", "a.test"), ("b.test", "b.test"),
                                    ("x.a.test", "a.test")])
def test_certificate_chosen_by_sni(tg, sni, cn):
    ctx = helpers.client_ctx(tg.certs.ca)
    with handshake(tg.p12, ctx, sni) as s:
        assert peer_cn(s) == cn
        r = get(s, "/sni")
        assert r.status == 200


def test_unknown_or_no_sni_gets_default_certificate(tg):
    assert unverified_cn(tg.p12, "unknown.test") == "a.test"
    assert unverified_cn(tg.p12, None) == "a.test"


def test_min_version_tls13(tg):
    old = helpers.client_ctx(tg.certs.ca, max_v=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        with handshake(tg.p13, old, "a.test") as s:
            get(s, "/should-not-work")
    with handshake(tg.p13, helpers.client_ctx(tg.certs.ca), "a.test") as s:
        assert s.version() == "TLSv1.3"
        assert get(s, "/v13").status == 200
    with handshake(tg.p12, old, "a.test") as s:
        assert s.version() == "TLSv1.2"
        assert get(s, "/v12").status == 200


def test_tls13_prefers_aes128_gcm(tg):
    """The server's order among OpenSSL's three TLS 1.3 suites: AES-128-GCM
    first (a default client offers AES-256 first); the others still work."""
    with handshake(tg.p13, helpers.client_ctx(tg.certs.ca), "a.test") as s:
        assert s.cipher()[0] == "TLS_AES_128_GCM_SHA256"
        assert get(s, "/aes128").status == 200
    import subprocess
    for suite in ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % tg.p13,
             "-servername", "a.test", "-tls1_3", "-ciphersuites", suite],
            input=b"", capture_output=True, timeout=10).stdout.decode()
        assert "Cipher is " + suite in out, out[-400:]


def test_alpn_http11(tg):
    ctx = helpers.client_ctx(tg.certs.ca, alpn=["h2", "http/1.1"])
    with handshake(tg.p12, ctx, "a.test") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert get(s, "/alpn").status == 200


def test_alpn_never_h2(tg):
    ctx = helpers.client_ctx(tg.certs.ca, alpn=["h2"])
    try:
        with handshake(tg.p12, ctx, "a.test") as s:
            assert s.selected_alpn_protocol() in (None, "http/1.1")
    except ssl.SSLError:
        pass  # no_application_protocol alert is also correct


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_session_resumption(tg, version):
    v = getattr(ssl.TLSVersion, version.replace(".", "_"))
    ctx = helpers.client_ctx(tg.certs.ca, min_v=v, max_v=v)
    reused = []
    session = None
    for i in range(4):  # with 2 workers, resumption must work on either
        s = socket.create_connection(("127.0.0.1", tg.p12), timeout=5)
        s = ctx.wrap_socket(s, server_hostname="a.test", session=session)
        with s:
            assert get(s, "/resume/%d" % i).status == 200
            if i:
                reused.append(s.session_reused)
            session = s.session
    assert all(reused), "TLS %s sessions not resumed: %r" % (version, reused)


def test_x_forwarded_proto_https(tg):
    with handshake(tg.p12, helpers.client_ctx(tg.certs.ca), "a.test") as s:
        assert get(s, "/xfp").status == 200
    h = req_headers(tg.up.last_request())
    assert h["x-forwarded-proto"] == ["https"]


def test_bodies_over_tls(tg):
    body = pattern_bytes(1_000_000)
    with RawConn(tg.p12, tls=helpers.client_ctx(tg.certs.ca), sni="a.test") as c:
        c.send(build_request("POST", "/upload", body=body, host="a.test"))
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == len(body)
        c.send(build_request("GET", "/bytes/2000000", host="a.test"))
        r = c.read_response()
        assert r.status == 200 and r.body == pattern_bytes(2_000_000)
    assert tg.up.requests()[-2]["crc32"] == zlib.crc32(body)


def test_idle_connection_gives_back_buffers_and_goes_on(tg):
    """An idle TLS connection's record buffers are freed by the worker's
    once-a-second sweep; the connection must go on as if nothing happened:
    right after the handshake, between requests, and in the middle of a
    head (then nothing is freed)."""
    import time
    with RawConn(tg.p12, tls=helpers.client_ctx(tg.certs.ca), sni="a.test") as c:
        time.sleep(2.3)  # idle since the handshake: two sweeps
        c.send(build_request("GET", "/first", host="a.test"))
        assert c.read_response().status == 200
        time.sleep(2.3)
        body = pattern_bytes(300_000)
        c.send(build_request("POST", "/after-idle", body=body, host="a.test") +
               build_request("GET", "/bytes/70000", host="a.test"))
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == len(body)
        r = c.read_response()
        assert r.status == 200 and r.body == pattern_bytes(70_000)
        req = build_request("GET", "/split-head", host="a.test")
        c.send(req[:20])
        time.sleep(2.3)
        c.send(req[20:])
        assert c.read_response().status == 200
    assert tg.up.requests()[-3]["crc32"] == zlib.crc32(body)
    assert tg.up.last_request()["path"] == "/split-head"


def test_plain_http_on_tls_port(tg):
    mark = tg.up.mark()
    with RawConn(tg.p12, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        try:
            data = c.sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        # closed, a TLS alert, or a 400: anything but a proxied answer
        assert (data == b"" or data[:1] == b"\x15" or
                re.match(rb"^HTTP/1\.[01] 400 ", data)), "answer to plain HTTP: %r" % data[:100]
        if data:
            assert c.closed_within(3), "connection left open after plain HTTP on a TLS port"
    assert not tg.up.since(mark, "req")
    with handshake(tg.p12, helpers.client_ctx(tg.certs.ca), "a.test") as s:
        assert get(s, "/after-plain").status == 200


def test_truncated_handshakes_are_harmless(tg):
    hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x11" * 32
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", tg.p12), timeout=5)
        s.sendall(hello_start)
        s.close()
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", tg.p12), timeout=5)
        s.close()
    with handshake(tg.p12, helpers.client_ctx(tg.certs.ca), "b.test") as s:
        assert get(s, "/after-junk").status == 200


# ------------------------------------------- sessions never cross server names
# RFC 6066 section 3: a session made for one server name must not resume
# under another (the client would be served the first name's certificate
# without any check). Seen from the attacker's side: keep a session made
# with SNI X, offer it with SNI Y.
#
# Every connection stays open until the test ends: OpenSSL drops a cached
# (session-id) session when a connection that used it is freed without the
# server having sent close_notify, which is what happens when the client
# closes first.

RESUME_MODES = ["tls12-session-id", "tls12-ticket", "tls13-ticket"]


@pytest.fixture
def keep():
    socks = []
    yield socks
    for s in socks:
        s.close()


def resume_ctx(tg, mode):
    """(context, port) for one way of resuming; the context verifies the
    chain but not the name, so that a wrongly resumed session is seen by
    the assertions rather than refused by the client."""
    tls13 = mode == "tls13-ticket"
    v = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    ctx = helpers.client_ctx(tg.certs.ca, min_v=v, max_v=v)
    ctx.check_hostname = False
    if mode == "tls12-session-id":
        ctx.options |= ssl.OP_NO_TICKET
    return ctx, tg.p13 if tls13 else tg.p12


def session_visit(keep, port, ctx, sni, session=None):
    """One connection (left open in keep) and one request, which also
    brings the TLS 1.3 tickets; returns (session, reused, certificate CN)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t = ctx.wrap_socket(s, server_hostname=sni, session=session)
    keep.append(t)
    assert get(t, "/session").status == 200
    return t.session, t.session_reused, peer_cn(t)


def fresh_session(keep, tg, mode, sni):
    ctx, port = resume_ctx(tg, mode)
    sess, reused, cn = session_visit(keep, port, ctx, sni)
    assert not reused
    assert sess is not None
    assert sess.has_ticket == (mode != "tls12-session-id"), \
        "%s: session %s a ticket (test would not cover %s)" % (
            mode, "has" if sess.has_ticket else "lacks", mode)
    return ctx, port, sess, cn


@pytest.mark.parametrize("mode", RESUME_MODES)
@pytest.mark.parametrize("made,offered,cn", [("b.test", "a.test", "a.test"),
                                             ("a.test", "b.test", "b.test"),
                                             ("x.a.test", "a.test", "a.test"),
                                             ("b.test", "B.TEST", "b.test")])
def test_session_not_resumed_under_another_name(tg, keep, mode, made, offered, cn):
    ctx, port, sess, _ = fresh_session(keep, tg, mode, made)
    same = made.lower() == offered.lower()
    for _ in range(2):  # with 2 workers, neither may resume it
        _, reused, got_cn = session_visit(keep, port, ctx, offered, sess)
        assert got_cn == cn, "%s: SNI %s served %s's certificate" % (mode, offered, got_cn)
        if same:  # names compare without regard to case
            assert reused, "%s session for %s not resumed under %s" % (mode, made, offered)
        else:
            assert not reused, "%s session made for %s resumed under %s" % (
                mode, made, offered)


@pytest.mark.parametrize("mode", RESUME_MODES)
@pytest.mark.parametrize("sni,cn", [("a.test", "a.test"), ("b.test", "b.test"),
                                    ("x.a.test", "a.test")])
def test_session_resumed_under_same_name(tg, keep, mode, sni, cn):
    ctx, port, sess, first_cn = fresh_session(keep, tg, mode, sni)
    assert first_cn == cn
    # a refused offer under another name does not spoil the session
    other = "a.test" if cn == "b.test" else "b.test"
    assert not session_visit(keep, port, ctx, other, sess)[1]
    for i in range(3):
        sess2, reused, got_cn = session_visit(keep, port, ctx, sni, sess)
        assert reused, "%s session for %s not resumed (visit %d)" % (mode, sni, i)
        assert got_cn == cn
        if mode == "tls13-ticket":
            sess = sess2  # tickets are renewed; keep the newest
