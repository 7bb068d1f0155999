"""Sends of one event-loop turn go to the kernel in one system call
(net/sendbatch.c, io_uring), and TLS records are sent by the loop rather
than by OpenSSL (net/sock.c). Checked from the client's side, with the
batch on and off (PORTCULLIS_NO_URING=1) on the same configuration: many
connections at once each get their own answers, byte for byte, over plain
and TLS; a connection closed after its answer delivers every record first
(a TLS close must not cut the last records); a TLS client that reads
slowly gets a large body intact while the gateway's memory stays flat
(records wait in the kernel, not in the gateway)."""

import socket
import threading
import time

import pytest

import helpers
from helpers import RawConn, build_request
from test_streaming import RssSampler, SlowSink
from upstream import pattern_bytes, pattern_crc

CONNS = 48
PER_CONN = 12
BIG = 64 * 1024 * 1024
RSS_BOUND_KIB = 32 * 1024
RATE_MIB = 48


@pytest.fixture(scope="module", params=["batched", "one-by-one"])
def sb(request, tmp_path_factory, certs):
    env = helpers.Env(tmp_path_factory.mktemp("sendbatch"))
    up = env.upstream("a")
    plain, tls, admin = helpers.free_port(), helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(
        plain, admin, {"a": helpers.upstream_conf(up)},
        [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
        workers=1,
        listen=[{"address": "127.0.0.1:%d" % plain},
                {"address": "127.0.0.1:%d" % tls,
                 "tls": {"certificates": [{"cert": certs.a[0], "key": certs.a[1]}]}}])
    genv = {"PORTCULLIS_NO_URING": "1"} if request.param == "one-by-one" else {}
    gw = env.gateway(cfg, binary=helpers.REL_BIN, env=genv, name="gw-sb")
    ns = type("SB", (), {})()
    ns.gw, ns.up, ns.plain, ns.tls, ns.certs, ns.mode = gw, up, plain, tls, certs, request.param
    yield ns
    env.close()
    err = open(gw.stderr_path, errors="replace").read()
    # the log says which way the sends went
    if request.param == "one-by-one":
        assert "send batching off (PORTCULLIS_NO_URING is set)" in err, err
    else:
        assert "send batching off" not in err, err


def connect(sb, tls):
    if tls:
        return RawConn(sb.tls, timeout=20, tls=helpers.client_ctx(sb.certs.ca), sni="a.test")
    return RawConn(sb.plain, timeout=20)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_concurrent_connections_each_get_their_own_answers(sb, tls):
    """48 keep-alive connections at once, each asking its own targets (an
    echo naming the connection and the request, or a body of a size only
    that request asks for): any answer sent on the wrong socket, cut,
    or joined to another shows."""
    failures = []
    start = threading.Barrier(CONNS)

    def client(i):
        try:
            with connect(sb, tls) as c:
                start.wait()
                for j in range(PER_CONN):
                    if j % 3 == 2:
                        n = 1000 * (i + 1) + j  # a size unique to (i, j)
                        c.send(build_request("GET", "/bytes/%d" % n, host="a.test"))
                        r = c.read_response()
                        if r.status != 200 or r.body != pattern_bytes(n):
                            failures.append((i, j, "bytes", r.status, len(r.body)))
                    else:
                        target = "/echo/c%d/r%d" % (i, j)
                        c.send(build_request("GET", target, host="a.test"))
                        r = c.read_response()
                        if r.status != 200 or r.json()["target"] != target:
                            failures.append((i, j, "echo", r.status, r.body[:80]))
        except Exception as e:  # reported below with the others
            failures.append((i, "exception", repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]
    assert sb.gw.alive()


@pytest.mark.parametrize("n,stall", [(3_000_000, 0), (60_000, 0.5)],
                         ids=["3mb", "60kb-stalled"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_connection_close_delivers_every_byte_first(sb, tls, n, stall):
    """An answer the gateway closes the connection after (the client said
    Connection: close) arrives whole, then the end of the stream (on TLS a
    close_notify, not a cut). The stalled case: a client with a 4 KiB
    receive buffer waits before reading, so when the answer is complete its
    last records are still waiting in the gateway, not in the kernel."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", sb.tls if tls else sb.plain))
    if tls:
        raw = helpers.client_ctx(sb.certs.ca).wrap_socket(raw, server_hostname="a.test")
    with RawConn.from_socket(raw, 20) as c:
        c.send(build_request("GET", "/bytes/%d" % n, host="a.test",
                             headers=[("Connection", "close")]))
        time.sleep(stall)
        r = c.read_response()
        assert r.status == 200
        assert r.body == pattern_bytes(n)
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b""  # an SSLEOFError here would be a cut


def test_tls_slow_reader_gets_64m_intact_memory_flat(sb):
    """A TLS client reading at 48 MiB/s with a small receive buffer: the
    gateway encrypts only what the kernel takes, so its RSS stays flat."""
    with RawConn(sb.tls, timeout=20, tls=helpers.client_ctx(sb.certs.ca), sni="a.test") as c:
        c.send(build_request("GET", "/bytes/4000000", host="a.test"))
        assert c.read_response().status == 200  # warm: buffers and pool touched
    time.sleep(0.2)
    baseline = helpers.rss_kib(sb.gw.pid)
    slow_sink = SlowSink(RATE_MIB)
    raw = socket.create_connection(("127.0.0.1", sb.tls), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s = helpers.client_ctx(sb.certs.ca).wrap_socket(raw, server_hostname="a.test")
    with RssSampler(sb.gw.pid) as rs, RawConn.from_socket(s, 30) as c:
        c.send(build_request("GET", "/stream/%d" % BIG, host="a.test"))
        c.recv_size = 64 * 1024
        r = c.read_response(body_sink=slow_sink)
    assert r.status == 200
    assert slow_sink.n == BIG and slow_sink.crc == pattern_crc(BIG)
    grew = rs.peak - baseline
    assert grew < RSS_BOUND_KIB, "RSS grew by %d KiB (baseline %d KiB)" % (grew, baseline)
