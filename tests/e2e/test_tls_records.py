"""TLS with records smaller than 16 KiB (issue 8, item 5). OpenSSL's
SSL_read returns one record at a time, so a short SSL_read does not mean
the kernel is drained: with edge-triggered readiness, bytes left in the
kernel raise no new event. Both directions are tested with peers that
write small records: clients POSTing through http.client and a raw ssl
socket, and an https upstream answering in small records."""

import http.client
import socket
import ssl
import threading
import time
import zlib

import pytest

import helpers
from helpers import RawConn
from upstream import pattern_bytes

BODY = 200 * 1024
HS_CONNS = 640


@pytest.fixture(scope="module")
def tr(tmp_path_factory, certs):
    env = helpers.Env(tmp_path_factory.mktemp("tlsrec"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(
        port, admin, {"a": helpers.upstream_conf(up, retries=0)},
        [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
        workers=2,
        limits={"max_body_bytes": "4m", "client_header_timeout": "4s",
                "client_body_timeout": "4s"},
        listen=[{"address": "127.0.0.1:%d" % port,
                 "tls": {"certificates": [{"cert": certs.a[0], "key": certs.a[1]}]}}])
    gw = env.gateway(cfg)
    ns = type("TR", (), {})()
    ns.gw, ns.up, ns.port, ns.certs = gw, up, port, certs
    yield ns
    env.close()


def blocks(data, size, gap):
    """data in writes of `size` bytes (one TLS record each): 48 KiB of them
    back to back, then a pause of `gap` seconds (a slow cadence, with
    records piling up in the gateway's socket in between)."""
    burst = max(1, 48 * 1024 // size)
    for i, off in enumerate(range(0, len(data), size)):
        yield data[off:off + size]
        if gap and i % burst == burst - 1:
            time.sleep(gap)


def sink_event(up, tag):
    ev = helpers.wait_for(lambda: [e for e in up.requests() if tag in e["target"]],
                          timeout=5, what="upstream request %s" % tag)
    assert len(ev) == 1, ev
    return ev[0]


@pytest.mark.parametrize("block", [8192, 1024])
def test_http_client_post_small_records(tr, block):
    """http.client sends a body from an iterable in its own writes: each
    block is one TLS record. Before the fix 10 of 10 such POSTs hung until
    client_body_timeout (408)."""
    data = pattern_bytes(BODY)
    tag = "/sink/hc/%d" % block
    ctx = helpers.client_ctx(tr.certs.ca)
    ctx.check_hostname = False  # 127.0.0.1, no SNI: the default a.test certificate
    conn = http.client.HTTPSConnection("127.0.0.1", tr.port, context=ctx, timeout=10)
    try:
        conn.request("POST", tag, body=blocks(data, block, 0.002),
                     headers={"Host": "a.test", "Content-Length": str(BODY),
                              "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        payload = r.read()
    finally:
        conn.close()
    assert r.status == 200, (r.status, payload[:300])
    ev = sink_event(tr.up, tag)
    assert ev["body_len"] == BODY and ev["crc32"] == zlib.crc32(data), ev


@pytest.mark.parametrize("block", [8192, 1024, 100])
def test_raw_ssl_post_small_records(tr, block):
    data = pattern_bytes(BODY)
    tag = "/sink/raw/%d" % block
    ctx = helpers.client_ctx(tr.certs.ca)
    with RawConn(tr.port, timeout=10, tls=ctx, sni="a.test") as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n" % (tag.encode(), BODY))
        for piece in blocks(data, block, 0.002):
            c.sock.sendall(piece)
        r = c.read_response()
        assert r.status == 200, r
        # the connection is still usable afterwards
        c.send(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert c.read_response().status == 200
    ev = sink_event(tr.up, tag)
    assert ev["body_len"] == BODY and ev["crc32"] == zlib.crc32(data), ev


def test_request_right_after_handshake(tr):
    """A client's first request follows its TLS Finished at once. When the
    server's last handshake step ran on a wake-up without EV_READ, OpenSSL
    had already read that request into its buffer (read-ahead) while the
    socket stayed marked unreadable: no edge came for bytes already taken
    from the kernel, and the request sat until client_header_timeout, then
    the connection closed without an answer (about 1 connection in 100
    under concurrency before the fix)."""
    ctx = helpers.client_ctx(tr.certs.ca)
    stalls, errors = [], []

    def client(k):
        for i in range(HS_CONNS // 8):
            raw = socket.create_connection(("127.0.0.1", tr.port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                s = ctx.wrap_socket(raw, server_hostname="a.test")
                s.sendall(b"GET /hs/%d/%d HTTP/1.1\r\nHost: a.test\r\n"
                          b"Connection: close\r\n\r\n" % (k, i))
                s.settimeout(3)
                first = s.recv(12)
                if first != b"HTTP/1.1 200":
                    errors.append((k, i, first))
                s.close()
            except socket.timeout:
                stalls.append((k, i))
            except (OSError, ssl.SSLError) as e:
                errors.append((k, i, repr(e)))
            finally:
                raw.close()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not stalls, "%d of %d TLS connections got no answer within 3 s: %r" % (
        len(stalls), HS_CONNS, stalls[:10])
    assert not errors, errors[:10]


# ------------------------------------------- an https upstream, small records


class RecordServer:
    """A TLS upstream that answers every request with `size` body bytes,
    written in `record`-byte TLS records (one sendall each), then keeps the
    connection open (Content-Length framing)."""

    def __init__(self, cert, key, size, record, version=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if version:
            self.ctx.minimum_version = self.ctx.maximum_version = version
        self.size, self.record = size, record
        self.body = pattern_bytes(size)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                _, _, buf = buf.partition(b"\r\n\r\n")
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % self.size)
                for off in range(0, self.size, self.record):
                    s.sendall(self.body[off:off + self.record])
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()

    def close(self):
        self.lsock.close()


@pytest.mark.parametrize("record,version", [(8000, None), (100, None),
                                            (8000, ssl.TLSVersion.TLSv1_2)],
                         ids=["8000", "100", "8000-tls12"])
def test_https_upstream_small_records(env, certs, record, version):
    """Before the fix every such response stalled until read_timeout and
    reached the client cut short."""
    size = 1024 * 1024
    srv = RecordServer(certs.localhost[0], certs.localhost[1], size, record, version)
    try:
        port, admin = helpers.free_port(), helpers.free_port()
        url = "https://localhost:%d" % srv.port
        cfg = helpers.base_config(
            port, admin, {"u": helpers.upstream_conf(url, tls_verify=True, ca_file=certs.ca,
                                                     read_timeout="10s", retries=0)},
            [{"name": "all", "match": {"path": "/"}, "upstream": "u"}])
        gw = env.gateway(cfg)
        with RawConn(gw.port, timeout=15) as c:
            for i in range(3):
                t0 = time.monotonic()
                c.send(b"GET /big/%d HTTP/1.1\r\nHost: e2e.test\r\n\r\n" % i)
                r = c.read_response()
                elapsed = time.monotonic() - t0
                assert r.status == 200, r
                assert len(r.body) == size, "response %d: %d of %d bytes" % (
                    i, len(r.body), size)
                assert r.body == srv.body
                assert elapsed < 5.0, "response %d took %.1fs (read_timeout 10s)" % (
                    i, elapsed)
    finally:
        srv.close()
