"""Regression tests for bugs found by fuzzing and benchmarking, each
written before its fix was trusted (see the commit that fixed it)."""

import helpers
from helpers import RawConn


def _gateway(env):
    up = env.upstream("A")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(
        port, admin, {"A": helpers.upstream_conf(up)},
        [{"name": "api", "match": {"path": "/api"}, "upstream": "A"}],
        limits={"max_header_bytes": "4k", "max_body_bytes": "64k",
                "client_header_timeout": "2s", "client_body_timeout": "2s"})
    gw = env.gateway(cfg)
    return gw, up, port


def test_trailer_after_chunked_body(env):
    """fuzz_http: trailer fields after a chunked body reached the header
    callbacks after the head's buffers were freed (a crash). Trailers are
    now read, bounded and dropped; the request goes through."""
    gw, up, port = _gateway(env)
    with RawConn(port) as c:
        c.send(b"POST /api/t HTTP/1.1\r\nHost: e2e.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nOther: 2\r\n\r\n"
               b"GET /api/next HTTP/1.1\r\nHost: e2e.test\r\n\r\n")
        first = c.read_response(method="POST")
        second = c.read_response()
    assert first.status == 200
    assert second.status == 200
    reqs = up.requests()
    assert reqs[-2]["path"] == "/api/t" and reqs[-1]["path"] == "/api/next"
    assert gw.alive()


def test_garbage_trailer_refused(env):
    """The same input the fuzzer produced: a trailer line that is not a
    header field ends in 400 and a close, never a crash."""
    gw, up, port = _gateway(env)
    with RawConn(port) as c:
        c.send(b"POST /api/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n5\r\n`ello\r\n0\r\n.1")
        c.sock.shutdown(1)
        closed = c.closed_within(3)
    assert closed
    assert gw.alive()


def test_body_with_line_feeds_is_data(env):
    """A request body full of LF bytes was once scanned as if it were head
    bytes and refused as 'bare LF'. Body bytes are data."""
    gw, up, port = _gateway(env)
    body = b"\n" * 20000 + b"\r\n \r\n" * 100
    with RawConn(port) as c:
        c.send(b"POST /api/lf HTTP/1.1\r\nHost: e2e.test\r\nContent-Length: %d\r\n\r\n"
               % len(body) + body)
        r = c.read_response(method="POST")
    assert r.status == 200
    assert up.requests()[-1]["body_len"] == len(body)
