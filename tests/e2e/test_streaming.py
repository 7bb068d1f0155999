"""Streaming with backpressure (issue 3 "Streaming both ways"): 256 MiB up
and down through the optimised build with a slow reader on the far side,
RSS sampled from /proc; client disconnects mid-transfer free everything.
Uses PORTCULLIS_REL_BIN because ASan inflates memory."""

import socket
import threading
import time
import zlib

import pytest

import helpers
from helpers import RawConn, build_request, request
from upstream import pattern_chunks, pattern_crc

SIZE = 256 * 1024 * 1024
RSS_BOUND_KIB = 32 * 1024
RATE_MIB = 48  # the slow far side; the near side pushes several times faster


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, helpers.rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.join()


@pytest.fixture(scope="module")
def sg(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("stream"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                              [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
                              limits={"max_body_bytes": "2g", "client_body_timeout": "10s"})
    gw = env.gateway(cfg, binary=helpers.REL_BIN, name="gw-rel")
    # warm up: pools, buffers and TLS-free paths all touched once
    for _ in range(3):
        assert request(port, "POST", "/sink", body=b"w" * 4_000_000).status == 200
        assert len(request(port, "GET", "/bytes/4000000").body) == 4_000_000
    time.sleep(0.2)
    ns = type("SG", (), {})()
    ns.gw, ns.up, ns.port = gw, up, port
    ns.baseline = helpers.rss_kib(gw.pid)
    ns.expected_crc = pattern_crc(SIZE)
    yield ns
    env.close()


def assert_bounded(sg, peak, what):
    grew = peak - sg.baseline
    assert grew < RSS_BOUND_KIB, "%s: RSS grew by %d KiB (baseline %d KiB, peak %d KiB)" % (
        what, grew, sg.baseline, peak)


def test_upload_256m_bounded_rss(sg):
    t0 = time.monotonic()
    with RssSampler(sg.gw.pid) as rs, RawConn(sg.port, timeout=60) as c:
        c.send(b"POST /sink?rate_mib=%d HTTP/1.1\r\nHost: e2e.test\r\n"
               b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (RATE_MIB, SIZE))
        for chunk in pattern_chunks(SIZE):
            c.sock.sendall(chunk)
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"body_len": SIZE, "crc32": sg.expected_crc}
    assert_bounded(sg, rs.peak, "256 MiB upload")
    assert time.monotonic() - t0 < 40


class SlowSink:
    """A body sink that reads at rate_mib MiB/s at most (sleeping ahead of
    the rate), keeping the byte count and the CRC-32 of what it got."""

    def __init__(self, rate_mib):
        self.rate, self.crc, self.n = rate_mib << 20, 0, 0
        self.t0 = time.monotonic()

    def __call__(self, data):
        self.crc = zlib.crc32(data, self.crc)
        self.n += len(data)
        ahead = self.n / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(ahead)


def test_download_256m_bounded_rss(sg):
    slow_sink = SlowSink(RATE_MIB)
    t0 = slow_sink.t0
    with RssSampler(sg.gw.pid) as rs, RawConn(sg.port, timeout=60) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(build_request("GET", "/stream/%d" % SIZE))
        c.recv_size = 64 * 1024
        r = c.read_response(body_sink=slow_sink)
    assert r.status == 200
    assert slow_sink.n == SIZE and slow_sink.crc == sg.expected_crc
    assert_bounded(sg, rs.peak, "256 MiB download")
    assert time.monotonic() - t0 < 40


def test_client_disconnect_mid_download(sg):
    mark = sg.up.mark()
    with RssSampler(sg.gw.pid) as rs:
        c = RawConn(sg.port, timeout=30)
        c.send(build_request("GET", "/stream/%d" % (1024 * 1024 * 1024)))
        got = 0
        c.read_head()
        while got < 16 * 1024 * 1024:
            data = c.sock.recv(262144)
            assert data
            got += len(data)
        c.close()
        # the gateway must drop the upstream side too: the upstream's
        # writer then fails instead of pushing the whole GiB
        ev = helpers.wait_for(lambda: sg.up.since(mark, "stream"), timeout=10,
                              what="upstream stream aborted")[0]
    assert not ev["complete"] and ev["sent"] < 512 * 1024 * 1024, ev
    assert_bounded(sg, rs.peak, "aborted download")
    assert request(sg.port, "GET", "/after-abort").status == 200
    time.sleep(0.3)
    assert helpers.rss_kib(sg.gw.pid) - sg.baseline < RSS_BOUND_KIB


def test_client_disconnect_mid_upload(sg):
    mark = sg.up.mark()
    c = RawConn(sg.port, timeout=30)
    c.send(b"POST /sink?rate_mib=64 HTTP/1.1\r\nHost: e2e.test\r\nContent-Length: %d\r\n\r\n"
           % (1024 * 1024 * 1024))
    sent = 0
    for chunk in pattern_chunks(16 * 1024 * 1024):
        c.sock.sendall(chunk)
        sent += len(chunk)
    c.close()
    ev = helpers.wait_for(lambda: sg.up.since(mark, "partial"), timeout=10,
                          what="upstream sees the aborted upload end")[0]
    assert ev["body_len"] <= sent
    assert request(sg.port, "GET", "/after-upload-abort").status == 200
    assert helpers.rss_kib(sg.gw.pid) - sg.baseline < RSS_BOUND_KIB
