#!/usr/bin/env python3
"""bench/soak.py: the soak test of issue 8, shared by tests/e2e/test_soak.py
(bounded, about a minute) and bench/soak.sh (as long as SOAK_SECONDS says).

One gateway (2 workers, a plain and a TLS listener) in front of three
upstreams:

  rec     tests/e2e/upstream.py, the strict recording upstream: the
          well-behaved client's ordinary traffic, and the Upgrade requests
  soak    this file's `serve` process, stable listener: /sink (counts and
          CRCs a body), /stream/N (N bytes as fast as the peer reads),
          anything else a small "ok" answer; never closes a connection
  flaky   the same process, another listener: after each response it
          keeps the connection, or 0-50 ms later closes it (FIN) or resets
          it (RST), at random: the pooled-connection race is the gateway's
          to absorb (retry on a fresh connection), never the client's
  tlsup   the same process, a TLS listener answering /tlsdown/N in small
          TLS records (1 KiB or 8 KiB per record)

Phases, each measured by one well-behaved client (this process, two
keep-alive connections, plain and TLS, sequential requests paced every
10 ms, every answer checked: status, echoed target, body length/CRC):

  warmup    2 s, pools and sessions are made
  baseline  the well-behaved client alone
  attack    the same, while the `hostile` process (another process, so that
            its threads do not share our GIL) loops over the hostile kinds
            below until the attack time is over
  after     3 s more, alone again: does latency come back?

Hostile kinds (threads of the hostile process, each its own loop):

  tls_records   TLS POST of 200 KiB written in 1 KiB or 8 KiB records,
                then a GET on the same connection: expects 200 + CRC, 200
  tls_down      GET /tlsdown/256K: the https upstream answers in 1 KiB or
                8 KiB records; expects every byte
  pipeline      thousands of pipelined GETs (gateway-made 405, upstream,
                flaky upstream), never reading, 4 KiB receive buffer;
                then closes (RST, with unread data)
  upgrade       GET with Upgrade: h2c, then an HTTP/2 preface and garbage:
                expects the 200 of a plain request first
  connect       CONNECT host:443 then TLS-looking bytes: expects 405, closed
  crlf_flood    8193 x CRLF: expects 400, closed
  slowloris     (3 threads) a head at one byte per 0.5 s: expects 408 (or a
                close) within client_header_timeout
  slow_reader   (2 threads) 4 MiB read at 1 MiB/s, 64 KiB receive buffer:
                expects every byte
  reset_mid     RST in the middle of a request body, of a response, of a
                head

Measured: requests, errors, p50/p99/max latency per phase (p99 also for
the stable upstream alone: the flaky one's races cost up to its 50 ms close
delay in every phase); gateway RSS (sampled every 0.5 s: start = after
warmup, peak, end = after the `after` phase, and at each tenth of the
attack), open fds, CPU seconds per phase; hostile connections made, and
unexpected outcomes, per kind; malformed requests seen by the upstreams;
whether the gateway is alive after the attack, its exit code on SIGTERM and
any sanitizer report. When RSS grew by half its bound, gdb asks glibc for
malloc_stats() and malloc_trim(0): kept free memory versus live memory.

Verdict (check()): no error for the well-behaved client in any phase; p99
(all, and stable upstream) during the attack below max(10 x baseline p99,
200 ms); peak RSS at most 64 MiB above start; no unexpected hostile
outcome; no malformed request upstream; the gateway alive, exit 0 on
SIGTERM, no sanitizer report.

Environment: SOAK_KINDS (comma-separated subset of the hostile kinds),
SOAK_ACCESS_LOG=1 (access log in the work directory, for diagnosis),
SOAK_MALLOC_PROBE (auto | 1 | 0), SOAK_WB_INTERVAL_MS (default 10).

    soak.py run --seconds 600 --bin build/portcullis --markdown FILE
    soak.py serve ...      (internal: the soak/flaky/tlsup upstream)
    soak.py hostile ...    (internal: the hostile clients)

Python standard library only; 127.0.0.1 only; every process it starts is
stopped by its PID."""

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
E2E = os.path.join(ROOT, "tests", "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)

import helpers  # noqa: E402
from helpers import Closed, RawConn  # noqa: E402
from upstream import (Bad, Body, Eof, Reader, hget, parse_head,  # noqa: E402
                      pattern_bytes, pattern_chunks, pattern_crc, read_body)

PYTHON = sys.executable or "/usr/bin/python3"
HEADER_TIMEOUT_S = 4          # limits.client_header_timeout of the soak gateway
TLS_POST_BYTES = 200 * 1024
SLOW_READ_BYTES = 4 * 1024 * 1024
SLOW_READ_RATE = 1024 * 1024  # bytes/s
TLS_DOWN_BYTES = 256 * 1024
WB_INTERVAL = float(os.environ.get("SOAK_WB_INTERVAL_MS", "10")) / 1000
HOST = "soak.test"


def split_seconds(total):
    """(baseline, attack) for a soak of `total` seconds: a quarter of it
    (at most 60 s) of baseline, the rest attack."""
    total = max(8.0, float(total))
    base = min(60.0, total / 4.0)
    return base, total - base


# ==========================================================================
# the soak/flaky/tlsup upstream (`serve`)


class SoakServer:
    FLAKY_CLOSE_P = 0.5   # after a response: P(close or reset)
    FLAKY_RESET_P = 0.4   # of those, P(reset)

    def __init__(self, cert, key):
        self.lock = threading.Lock()
        self.stats = {"conns": {"stable": 0, "flaky": 0, "tls": 0}, "requests": 0,
                      "flaky_closes": 0, "flaky_resets": 0, "bad": 0, "bad_samples": [],
                      "tls_errors": 0}
        self.rng = random.Random(8)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listeners = {}
        for kind in ("stable", "flaky", "tls"):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(512)
            self.listeners[kind] = s
            threading.Thread(target=self.accept_loop, args=(kind, s), daemon=True).start()

    def port(self, kind):
        return self.listeners[kind].getsockname()[1]

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def accept_loop(self, kind, ls):
        while True:
            try:
                sock, _ = ls.accept()
            except OSError:
                return
            with self.lock:
                self.stats["conns"][kind] += 1
            threading.Thread(target=self.serve_conn, args=(kind, sock), daemon=True).start()

    def serve_conn(self, kind, sock):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kind == "tls":
                sock.settimeout(10)
                try:
                    sock = self.ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    self.count("tls_errors")
                    return
            rd = Reader(sock)
            while self.one(kind, sock, rd):
                pass
        except (OSError, ssl.SSLError, Eof):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def one(self, kind, sock, rd):
        head = b""
        body = Body()
        try:
            head = rd.read_until(b"\r\n\r\n", 1 << 20)
            method, target, version, headers = parse_head(head)
            read_body(rd, headers, body)
        except Eof:
            return False
        except Bad as e:
            with self.lock:
                self.stats["bad"] += 1
                if len(self.stats["bad_samples"]) < 5:
                    self.stats["bad_samples"].append("%s: %r" % (e, head[:300]))
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return False
        self.count("requests")
        conn_hdr = ",".join(hget(headers, "Connection")).lower()
        keep = ("keep-alive" in conn_hdr) if version == "HTTP/1.0" else ("close" not in conn_hdr)
        path, _, query = target.partition("?")
        ch = "" if keep else "Connection: close\r\n"
        sock.settimeout(30)
        m = re.search(r"/(stream|tlsdown)/(\d+)", path)
        if m:
            n = int(m.group(2))
            sock.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Length: %d\r\n%s\r\n" % (n, ch)).encode())
            if method != "HEAD":
                rec = re.search(r"rec=(\d+)", query)
                size = int(rec.group(1)) if (rec and m.group(1) == "tlsdown") else 65536
                for c in pattern_chunks(n, size):
                    sock.sendall(c)
        else:
            if "/sink" in path:
                payload = json.dumps({"body_len": body.len, "crc32": body.crc}).encode()
            else:
                payload = ("ok %s %d %d" % (target, body.len, body.crc)).encode()
            sock.sendall(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %d\r\n%s\r\n" % (len(payload), ch)).encode() +
                         (b"" if method == "HEAD" else payload))
        sock.settimeout(None)
        if not keep:
            return False
        if kind == "flaky":
            with self.lock:
                r = self.rng.random()
                delay = self.rng.uniform(0, 0.05)
                reset = self.rng.random() < self.FLAKY_RESET_P
            if r < self.FLAKY_CLOSE_P:
                time.sleep(delay)
                if reset:
                    self.count("flaky_resets")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.count("flaky_closes")
                return False
        return True


def cmd_serve(args):
    srv = SoakServer(args.cert, args.key)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    sys.stdout.write("PORTS %d %d %d\n" % (srv.port("stable"), srv.port("flaky"),
                                           srv.port("tls")))
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    with srv.lock:
        data = json.dumps(srv.stats)
    with open(args.stats, "w") as f:
        f.write(data)
    os._exit(0)


# ==========================================================================
# the hostile clients (`hostile`)


class Hostile:
    THREADS = {"tls_records": 1, "tls_down": 1, "pipeline": 1, "upgrade": 1, "connect": 1,
               "crlf_flood": 1, "slowloris": 3, "slow_reader": 2, "reset_mid": 1}
    # an operation of this kind is started only when it can end in time
    EST = {"slowloris": HEADER_TIMEOUT_S + 2.0, "slow_reader": 5.5, "pipeline": 2.5}

    def __init__(self, plain, tls, ca, seconds, kinds=None):
        if kinds:
            unknown = set(kinds) - set(self.THREADS)
            if unknown:
                raise SystemExit("unknown hostile kinds %s" % sorted(unknown))
            self.THREADS = {k: n for k, n in self.THREADS.items() if k in kinds}
        self.plain, self.tls_port = plain, tls
        self.ctx = helpers.client_ctx(ca)
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.res = {k: {"conns": 0, "ok": 0, "unexpected": 0, "samples": []}
                    for k in self.THREADS}
        self.post_body = pattern_bytes(TLS_POST_BYTES)
        self.post_crc = zlib.crc32(self.post_body)
        self.down_body = pattern_bytes(TLS_DOWN_BYTES)
        self.slow_crc = pattern_crc(SLOW_READ_BYTES)

    # ------------------------------------------------------------ helpers

    def connect(self, kind, tls, timeout=10.0, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", self.tls_port if tls else self.plain))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.res[kind]["conns"] += 1
        if tls:
            s = self.ctx.wrap_socket(s, server_hostname="localhost")
        return s

    def ok(self, kind, **add):
        with self.lock:
            r = self.res[kind]
            r["ok"] += 1
            for k, v in add.items():
                r[k] = r.get(k, 0) + v

    def bad(self, kind, what):
        with self.lock:
            r = self.res[kind]
            r["unexpected"] += 1
            if len(r["samples"]) < 6:
                r["samples"].append("t+%.1fs %s" % (time.monotonic() - self.start, what))

    def add(self, kind, **add):
        with self.lock:
            r = self.res[kind]
            for k, v in add.items():
                r[k] = r.get(k, 0) + v

    @staticmethod
    def read_all(s, timeout):
        """Bytes until EOF/RST or timeout: (data, closed)."""
        end = time.monotonic() + timeout
        got = b""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return got, False
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                return got, False
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                return got, True
            except OSError:
                return got, True
            if not d:
                return got, True
            got += d

    @staticmethod
    def rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    # ------------------------------------------------------------ kinds

    def k_tls_records(self, i):
        block = (1024, 8192)[i % 2]
        tag = "/soak/sink/tls%d/%d" % (block, i)
        s = self.connect("tls_records", True)
        c = RawConn.from_socket(s, timeout=10)
        try:
            c.send(("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                    "X-Request-Id: soak-tls_records-%d\r\n"
                    "Content-Length: %d\r\n\r\n" % (tag, HOST, i, TLS_POST_BYTES)).encode())
            data = self.post_body
            for j, off in enumerate(range(0, len(data), block)):
                s.sendall(data[off:off + block])
                time.sleep(0.004 if j % 16 == 15 else 0.0005)
            t0 = time.monotonic()
            r = c.read_response()
            took = time.monotonic() - t0
            if r.status != 200:
                return self.bad("tls_records", "%d-byte records: status %d %r" %
                                (block, r.status, r.body[:120]))
            doc = json.loads(r.body)
            if doc != {"body_len": TLS_POST_BYTES, "crc32": self.post_crc}:
                return self.bad("tls_records", "%d-byte records: upstream got %r" % (block, doc))
            c.send("GET /soak/after-tls/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, HOST))
            r2 = c.read_response()
            if r2.status != 200:
                return self.bad("tls_records", "GET after the POST: %d" % r2.status)
            self.ok("tls_records", bytes=TLS_POST_BYTES, answer_wait_s=took)
        except (Closed, OSError, ssl.SSLError, AssertionError, ValueError) as e:
            self.bad("tls_records", "soak-tls_records-%d, %d-byte records: %s: %s" % (
                i, block, type(e).__name__, e))
        finally:
            c.close()

    def k_tls_down(self, i):
        rec = (1024, 8192)[i % 2]
        tls = (i // 2) % 2 == 1
        c = RawConn.from_socket(self.connect("tls_down", tls), timeout=10)
        parts = []
        head = []
        t0 = time.monotonic()
        rid = "soak-tls_down-%d" % i
        try:
            c.send("GET /tlsdown/%d?rec=%d HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\n\r\n"
                   % (TLS_DOWN_BYTES, rec, HOST, rid))
            hd = c.read_head()
            head.append(hd[1])
            c.buf[:0] = hd[4]  # read_response parses the head again
            r = c.read_response(body_sink=parts.append)
            body = b"".join(parts)
            if r.status != 200 or body != self.down_body:
                return self.bad("tls_down", "%s %s, %d-byte upstream records: status %d, %d of "
                                "%d bytes%s" % (rid, "tls" if tls else "plain", rec, r.status,
                                                len(body), TLS_DOWN_BYTES,
                                                "" if len(body) != TLS_DOWN_BYTES
                                                else " (bytes differ)"))
            self.ok("tls_down", bytes=TLS_DOWN_BYTES)
        except (Closed, OSError, ssl.SSLError, AssertionError, ValueError) as e:
            self.bad("tls_down", "%s %s, %d-byte upstream records: %s: %s after %.1fs, head %s, "
                     "%d of %d body bytes" % (rid, "tls" if tls else "plain", rec,
                                             type(e).__name__, e, time.monotonic() - t0,
                                             head[0] if head else "not received",
                                             sum(map(len, parts)), TLS_DOWN_BYTES))
        finally:
            c.close()

    def k_pipeline(self, i):
        target = ("/gw405/p", "/soak/pipe", "/flaky/pipe")[i % 3]
        tls = (i // 3) % 2 == 1
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, HOST)).encode()
        chunk = req * 500
        s = self.connect("pipeline", tls, rcvbuf=4096)
        sent = 0
        t0 = time.monotonic()
        try:
            s.settimeout(0.5)
            while time.monotonic() - t0 < 2.0 and sent < (16 << 20):
                s.sendall(chunk)
                sent += len(chunk)
        except (socket.timeout, OSError, ssl.SSLError):
            pass  # blocked (backpressure) or closed by the gateway: both fine
        finally:
            self.rst(s)
        self.ok("pipeline", requests_sent=sent // len(req))

    def expect(self, kind, s, desc, want, need_closed, t0):
        """Reads the answer to what was just sent: ok when it starts with
        `want` (and the gateway closed, if need_closed) within 3 s. When
        nothing came, waits up to 8 s more to tell a slow answer from a
        stall."""
        got, closed = self.read_all(s, 3.0)
        if got.startswith(want) and (closed or not need_closed):
            return self.ok(kind)
        more = ""
        if not got and not closed:
            t1 = time.monotonic()
            got2, closed2 = self.read_all(s, 8.0)
            more = "; nothing within 3 s, then after %.1f s more: %r closed=%s" % (
                time.monotonic() - t1, got2[:80], closed2)
        self.bad(kind, "%s: %r closed=%s after %.1f s%s" % (desc, got[:100], closed,
                                                          time.monotonic() - t0, more))

    def k_upgrade(self, i):
        tls = i % 2 == 1
        s = self.connect("upgrade", tls)
        rid = "soak-upgrade-%d" % i
        t0 = time.monotonic()
        try:
            s.sendall(("GET /upg/%d HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\n"
                       "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                       "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                       % (i, HOST, rid)).encode() +
                      b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(64))
            self.expect("upgrade", s, "%s %s" % (rid, "tls" if tls else "plain"),
                        b"HTTP/1.1 200 ", False, t0)
        except (OSError, ssl.SSLError) as e:
            self.bad("upgrade", "%s: %s: %s" % (rid, type(e).__name__, e))
        finally:
            self.rst(s)

    def k_connect(self, i):
        tls = i % 2 == 1
        s = self.connect("connect", tls)
        rid = "soak-connect-%d" % i
        t0 = time.monotonic()
        try:
            s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\nX-Request-Id: %s\r\n\r\n"
                       % (HOST, HOST, rid)).encode()
                      + b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(32))
            self.expect("connect", s, "%s %s" % (rid, "tls" if tls else "plain"),
                        b"HTTP/1.1 405 ", True, t0)
        except (OSError, ssl.SSLError) as e:
            self.bad("connect", "%s: %s: %s" % (rid, type(e).__name__, e))
        finally:
            self.rst(s)

    def k_crlf_flood(self, i):
        tls = i % 2 == 1
        s = self.connect("crlf_flood", tls)
        t0 = time.monotonic()
        try:
            try:
                s.sendall(b"\r\n" * 8193)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the gateway answered and closed before we finished
            self.expect("crlf_flood", s, "#%d %s" % (i, "tls" if tls else "plain"),
                        b"HTTP/1.1 400 ", True, t0)
        except (OSError, ssl.SSLError) as e:
            self.bad("crlf_flood", "%s: %s" % (type(e).__name__, e))
        finally:
            self.rst(s)

    def k_slowloris(self, i):
        tls = i % 2 == 1
        head = ("GET /slow/%d HTTP/1.1\r\nHost: %s\r\nX-Slow: %s" % (i, HOST, "a" * 200)).encode()
        t0 = time.monotonic()
        s = self.connect("slowloris", tls)
        got, closed, sent = b"", False, 0
        limit = HEADER_TIMEOUT_S + 5.0
        try:
            while time.monotonic() - t0 < limit and not closed:
                if sent < len(head):
                    try:
                        s.sendall(head[sent:sent + 1])  # one byte (TLS: one record)
                        sent += 1
                    except (OSError, ssl.SSLError):
                        d, closed = self.read_all(s, 0.5)
                        got += d
                        closed = True
                        break
                d, closed = self.read_all(s, 0.5)
                got += d
            held = time.monotonic() - t0
            if got.startswith(b"HTTP/1.1 408 ") or (closed and not got):
                self.ok("slowloris", held_s=held, got_408=int(bool(got)))
            else:
                self.bad("slowloris", "%s: after %.1fs (%d bytes sent) got %r closed=%s" %
                         ("tls" if tls else "plain", held, sent, got[:100], closed))
        except (OSError, ssl.SSLError) as e:
            self.bad("slowloris", "%s: %s" % (type(e).__name__, e))
        finally:
            self.rst(s)

    def k_slow_reader(self, i):
        tls = i % 2 == 1
        s = self.connect("slow_reader", tls, rcvbuf=65536)
        c = RawConn.from_socket(s, timeout=10)
        c.recv_size = 16384
        st = {"n": 0, "crc": 0}
        t0 = time.monotonic()

        def sink(data):
            st["n"] += len(data)
            st["crc"] = zlib.crc32(data, st["crc"])
            ahead = st["n"] / SLOW_READ_RATE - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        try:
            c.send("GET /soak/stream/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (SLOW_READ_BYTES, HOST))
            r = c.read_response(body_sink=sink)
            if r.status != 200 or st["n"] != SLOW_READ_BYTES or st["crc"] != self.slow_crc:
                return self.bad("slow_reader", "status %d, %d of %d bytes, crc %s" % (
                    r.status, st["n"], SLOW_READ_BYTES,
                    "ok" if st["crc"] == self.slow_crc else "differs"))
            self.ok("slow_reader", bytes=st["n"])
        except (Closed, OSError, ssl.SSLError, AssertionError, ValueError) as e:
            self.bad("slow_reader", "%s after %d bytes: %s: %s" % (
                "tls" if tls else "plain", st["n"], type(e).__name__, e))
        finally:
            c.close()

    def k_reset_mid(self, i):
        v = i % 3
        tls = (i // 3) % 2 == 1
        try:
            s = self.connect("reset_mid", tls)
        except (OSError, ssl.SSLError) as e:
            return self.bad("reset_mid", "connect: %s: %s" % (type(e).__name__, e))
        try:
            if v == 0:
                s.sendall(("POST /soak/sink/reset HTTP/1.1\r\nHost: %s\r\n"
                           "Content-Length: 1000000\r\n\r\n" % HOST).encode())
                s.sendall(pattern_bytes(65536))
                time.sleep(0.05)
            elif v == 1:
                s.sendall(("GET /soak/stream/%d HTTP/1.1\r\nHost: %s\r\n\r\n"
                           % (16 << 20, HOST)).encode())
                got = 0
                s.settimeout(5)
                while got < 256 * 1024:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += len(d)
            else:
                s.sendall(("GET /soak/x HTTP/1.1\r\nHost: %s\r\nX-Half: ab" % HOST).encode())
                time.sleep(0.05)
            self.ok("reset_mid")
        except (OSError, ssl.SSLError) as e:
            self.bad("reset_mid", "variant %d: %s: %s" % (v, type(e).__name__, e))
        finally:
            self.rst(s)

    # ------------------------------------------------------------ loop

    def loop(self, kind, idx):
        fn = getattr(self, "k_" + kind)
        rng = random.Random(hash((kind, idx)))
        i = idx
        est = self.EST.get(kind, 1.0)
        while time.monotonic() + est < self.deadline:
            try:
                fn(i)
            except (OSError, ssl.SSLError) as e:  # connect or handshake failed
                self.bad(kind, "connect: %s: %s" % (type(e).__name__, e))
                time.sleep(0.2)
            except Exception as e:  # noqa: BLE001 - a driver bug must not hang the soak
                self.bad(kind, "driver: %s: %s" % (type(e).__name__, e))
                time.sleep(0.2)
            i += self.THREADS[kind]
            time.sleep(rng.uniform(0.03, 0.12))

    def run(self):
        self.start = time.monotonic()
        ts = []
        for kind, n in self.THREADS.items():
            for k in range(n):
                t = threading.Thread(target=self.loop, args=(kind, k), daemon=True)
                t.start()
                ts.append(t)
        for t in ts:
            t.join()
        return self.res


def cmd_hostile(args):
    h = Hostile(args.plain, args.tls, args.ca, args.seconds,
                [k for k in args.kinds.split(",") if k] if args.kinds else None)
    res = h.run()
    with open(args.out, "w") as f:
        json.dump(res, f)


# ==========================================================================
# the driver (`run`, and run_soak() for tests/e2e/test_soak.py)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


class WellBehaved:
    """Sequential requests on two keep-alive connections (plain and TLS),
    every answer checked; latencies and errors per phase."""

    # (listener, method, path prefix, upstream)
    SCHEDULE = [("plain", "GET", "/wb", "rec"), ("tls", "GET", "/flaky/wb", "flaky"),
                ("plain", "GET", "/flaky/wb", "flaky"), ("tls", "POST", "/wb", "rec"),
                ("plain", "POST", "/flaky/wb", "flaky"), ("tls", "GET", "/wb", "rec")]

    def __init__(self, plain, tls, ctx):
        self.ports = {"plain": plain, "tls": tls}
        self.ctx = ctx
        self.conns = {}
        self.i = 0
        self.phase = "warmup"
        self.lat = {}
        self.errors = {}
        self.samples = []
        self.reconnects = 0
        self.body = pattern_bytes(512)
        self.body_crc = zlib.crc32(self.body)

    def conn(self, which):
        c = self.conns.get(which)
        if c is None:
            c = RawConn(self.ports[which], timeout=10,
                        tls=self.ctx if which == "tls" else None,
                        sni="localhost" if which == "tls" else None)
            self.conns[which] = c
            self.reconnects += 1
        return c

    def drop(self, which):
        c = self.conns.pop(which, None)
        if c:
            c.close()

    def error(self, what):
        self.errors[self.phase] = self.errors.get(self.phase, 0) + 1
        if len(self.samples) < 20:
            self.samples.append("%s %s" % (self.phase, what))

    def one(self):
        which, method, prefix, up = self.SCHEDULE[self.i % len(self.SCHEDULE)]
        target = "%s/%d" % (prefix, self.i)
        self.i += 1
        body = self.body if method == "POST" else None
        hdrs = [("X-Request-Id", "soak-wb-%d" % (self.i - 1))]
        if body:
            hdrs.append(("Content-Type", "application/octet-stream"))
        data = helpers.build_request(method, target, hdrs, body, host=HOST)
        t0 = time.perf_counter()
        try:
            c = self.conn(which)
            c.send(data)
            r = c.read_response(method)
        except (Closed, OSError, ssl.SSLError, AssertionError) as e:
            self.drop(which)
            self.error("%s %s %s: %s: %s" % (which, method, target, type(e).__name__, e))
            return
        took = time.perf_counter() - t0
        bad = None
        if r.status != 200:
            bad = "status %d %r" % (r.status, r.body[:160])
        elif up == "rec":
            try:
                doc = json.loads(r.body)
            except ValueError:
                doc = {}
            if doc.get("target") != target or doc.get("body_len") != (len(body) if body else 0):
                bad = "wrong echo %r" % r.body[:160]
            elif body and doc.get("crc32") != self.body_crc:
                bad = "body corrupted on the way"
        else:
            want = ("ok %s %d %d" % (target, len(body) if body else 0,
                                     self.body_crc if body else 0)).encode()
            if r.body != want:
                bad = "wrong answer %r" % r.body[:160]
        if bad:
            self.drop(which)
            self.error("%s %s %s: %s" % (which, method, target, bad))
            return
        self.lat.setdefault(self.phase, []).append(took)
        self.lat.setdefault((self.phase, up), []).append(took)
        if "close" in (r.header("Connection") or "").lower():
            self.drop(which)

    def run(self, phase, until):
        """Requests every WB_INTERVAL until until() is true."""
        self.phase = phase
        self.lat.setdefault(phase, [])
        nxt = time.monotonic()
        while not until():
            self.one()
            nxt += WB_INTERVAL
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            else:
                nxt = now

    def figures(self, phase):
        v = sorted(self.lat.get(phase, []))
        st = sorted(self.lat.get((phase, "rec"), []))
        fl = sorted(self.lat.get((phase, "flaky"), []))
        return {"requests": len(v) + self.errors.get(phase, 0),
                "errors": self.errors.get(phase, 0),
                "p50_ms": round(pct(v, 50) * 1000, 2), "p99_ms": round(pct(v, 99) * 1000, 2),
                "max_ms": round(v[-1] * 1000, 2) if v else float("nan"),
                # the stable upstream alone, and the flaky one (whose
                # pooled-connection races cost up to its 50 ms close delay)
                "p99_stable_ms": round(pct(st, 99) * 1000, 2),
                "p99_flaky_ms": round(pct(fl, 99) * 1000, 2)}

    def close(self):
        for w in list(self.conns):
            self.drop(w)


class Sampler(threading.Thread):
    """Gateway RSS and fds every 0.5 s, tagged with the current phase."""

    def __init__(self, pid, phase_of):
        super().__init__(daemon=True)
        self.pid, self.phase_of = pid, phase_of
        self.samples = []
        self.ev = threading.Event()

    def sample(self):
        try:
            self.samples.append((time.monotonic(), self.phase_of(), helpers.rss_kib(self.pid),
                                 nfds(self.pid)))
        except (OSError, AssertionError):
            pass

    def run(self):
        while not self.ev.wait(0.5):
            self.sample()

    def stop(self):
        self.ev.set()
        self.join(2)


def _gateway_config(workdir, port, tls_port, admin, cert, key, rec_url, ports, ca, workers):
    stable, flaky, tlsup = ports
    ups = {
        "rec": helpers.upstream_conf(rec_url),
        "soak": helpers.upstream_conf("http://127.0.0.1:%d" % stable, read_timeout="20s"),
        "flaky": helpers.upstream_conf("http://127.0.0.1:%d" % flaky),
        "tlsup": helpers.upstream_conf("https://127.0.0.1:%d" % tlsup, tls_verify=True,
                                       ca_file=ca),
    }
    routes = [
        {"name": "flaky", "match": {"path": "/flaky"}, "upstream": "flaky"},
        {"name": "soak", "match": {"path": "/soak"}, "upstream": "soak"},
        {"name": "tlsdown", "match": {"path": "/tlsdown"}, "upstream": "tlsup"},
        # no catch-all route: a GET of /gw405 is answered 405 by the gateway
        {"name": "gw405", "match": {"path": "/gw405", "methods": ["POST"]}, "upstream": "soak"},
        {"name": "wb", "match": {"path": "/wb"}, "upstream": "rec"},
        {"name": "upg", "match": {"path": "/upg"}, "upstream": "rec"},
    ]
    extra = {}
    if os.environ.get("SOAK_ACCESS_LOG") == "1":  # for diagnosis: big with pipeliners
        extra["log"] = {"access": os.path.join(workdir, "access.log"), "level": "info"}
    return helpers.base_config(
        port, admin, ups, routes, workers=workers, **extra,
        listen=[{"address": "127.0.0.1:%d" % port},
                {"address": "127.0.0.1:%d" % tls_port,
                 "tls": {"certificates": [{"cert": cert, "key": key}]}}],
        limits={"client_header_timeout": "%ds" % HEADER_TIMEOUT_S,
                "client_body_timeout": "5s", "shutdown_timeout": "5s"})


def smaps_rss(pid):
    """Resident KiB by kind of mapping: the main heap, anonymous (other
    malloc arenas, large mmap'd blocks, thread stacks), file-backed."""
    out = {"heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", first):
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
                kind = "heap" if name == "[heap]" else ("file" if name.startswith("/") else "anon")
            elif first == "Rss:":
                out[kind] += int(line.split()[1])
    return out


def malloc_probe(gw):
    """Allocator view of the gateway's RSS (needs gdb; SOAK_MALLOC_PROBE=1):
    glibc's per-arena malloc_stats() into its stderr, then malloc_trim(0).
    RSS that malloc_trim gives back was free memory the allocator kept
    (main.c sets M_TRIM_THRESHOLD to 64 MiB), not live memory."""
    gdb = shutil.which("gdb")
    if not gdb:
        return {"error": "gdb not found"}
    before = helpers.rss_kib(gw.pid)
    smaps_before = smaps_rss(gw.pid)
    mark = len(gw.stderr())
    r = subprocess.run([gdb, "-p", str(gw.pid), "-batch", "-nx",
                        "-ex", "call (void)malloc_stats()",
                        "-ex", "call (int)malloc_trim(0)"],
                       capture_output=True, text=True, timeout=60)
    time.sleep(0.3)
    out = {"rss_before_kib": before, "rss_after_trim_kib": helpers.rss_kib(gw.pid),
           "smaps_before_kib": smaps_before, "smaps_after_trim_kib": smaps_rss(gw.pid)}
    stats = gw.stderr()[mark:]
    m = re.findall(r"Total \(incl. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)",
                   stats)
    if m:
        out["malloc_system_kib"] = int(m[-1][0]) // 1024
        out["malloc_in_use_kib"] = int(m[-1][1]) // 1024
    out["arenas"] = len(re.findall(r"^Arena \d+:", stats, re.M))
    if r.returncode != 0 and not m:
        out["error"] = r.stderr[-500:]
    return out


def _distinct_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop_proc(p, sig=signal.SIGTERM, timeout=5.0):
    if p is None or p.poll() is not None:
        return p.returncode if p else None
    p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def run_soak(workdir, binary, baseline_s, attack_s, workers=2, log=None, label="soak",
             malloc_probe_default=True):
    """Runs the whole soak; returns a dict of figures (see summary_line,
    check). Never raises for a gateway misbehaviour: that is in the dict.
    When RSS grew by half the bound or more (or SOAK_MALLOC_PROBE=1; =0
    never), malloc_probe() tells allocator-kept memory from live memory."""
    log = log or (lambda *a: None)
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    src_bin = helpers.abspath_bin(binary)
    # a private copy: a concurrent rebuild cannot swap the binary mid-soak
    gw_bin = os.path.join(workdir, "portcullis-soak")
    shutil.copy2(src_bin, gw_bin)
    certs = helpers.Certs(os.path.join(workdir, "certs"), "soak-ca")
    cert, key = certs.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    res = {"label": label, "binary": src_bin,
           "binary_mtime": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(os.path.getmtime(src_bin))),
           "workers": workers, "baseline_s": baseline_s, "attack_s": attack_s,
           "wb_interval_ms": WB_INTERVAL * 1000, "failures_setup": []}
    rec = soakup = hostile = gw = sampler = wb = None
    files = []
    stats_path = os.path.join(workdir, "soak-upstream-stats.json")
    hostile_out = os.path.join(workdir, "hostile.json")
    try:
        rec = helpers.Upstream(workdir, name="rec")
        files.append(open(os.path.join(workdir, "soak-upstream.stderr"), "wb"))
        soakup = subprocess.Popen([PYTHON, os.path.abspath(__file__), "serve", "--cert", cert,
                                   "--key", key, "--stats", stats_path],
                                  stdout=subprocess.PIPE, stderr=files[-1])
        line = soakup.stdout.readline().decode()
        if not line.startswith("PORTS "):
            raise RuntimeError("soak upstream did not start: %r" % line)
        up_ports = [int(x) for x in line.split()[1:]]
        port, tls_port, admin = _distinct_ports(3)
        cfg = _gateway_config(workdir, port, tls_port, admin, cert, key, rec.url, up_ports,
                              certs.ca, workers)
        gw = helpers.Gateway(workdir, cfg, binary=gw_bin, name="gw-soak")
        gw.start()
        res["version"] = subprocess.run([gw_bin, "--version"], capture_output=True,
                                        text=True).stdout.strip()
        wb = WellBehaved(port, tls_port, helpers.client_ctx(certs.ca))
        sampler = Sampler(gw.pid, lambda: wb.phase)
        sampler.start()
        cpu = {}
        t_cpu = cpu_seconds(gw.pid)

        def timed(sec):
            end = time.monotonic() + sec
            return lambda: time.monotonic() >= end

        # warmup
        wb.run("warmup", timed(2.0))
        cpu["warmup"] = cpu_seconds(gw.pid) - t_cpu
        time.sleep(0.3)
        res["rss_start_kib"] = helpers.rss_kib(gw.pid)
        res["fds_start"] = nfds(gw.pid)
        log("%s: baseline %.0fs" % (label, baseline_s))
        t_cpu = cpu_seconds(gw.pid)
        wb.run("baseline", timed(baseline_s))
        cpu["baseline"] = cpu_seconds(gw.pid) - t_cpu
        log("%s: attack %.0fs" % (label, attack_s))
        t_cpu = cpu_seconds(gw.pid)
        t_att = time.monotonic()
        files.append(open(os.path.join(workdir, "hostile.stderr"), "wb"))
        hostile = subprocess.Popen(
            [PYTHON, os.path.abspath(__file__), "hostile", "--plain", str(port),
             "--tls", str(tls_port), "--ca", certs.ca, "--seconds", str(attack_s),
             "--out", hostile_out, "--kinds", os.environ.get("SOAK_KINDS", "")],
            stdout=files[-1], stderr=subprocess.STDOUT)
        hard_end = time.monotonic() + attack_s + 20
        wb.run("attack", lambda: hostile.poll() is not None or time.monotonic() > hard_end)
        res["hostile_overran"] = hostile.poll() is None
        _stop_proc(hostile, signal.SIGKILL)
        res["attack_actual_s"] = round(time.monotonic() - t_att, 1)
        cpu["attack"] = cpu_seconds(gw.pid) - t_cpu
        res["alive_after_attack"] = gw.alive()
        try:
            with open(hostile_out) as f:
                res["hostile"] = json.load(f)
        except (OSError, ValueError) as e:
            res["hostile"] = {}
            with open(os.path.join(workdir, "hostile.stderr"), errors="replace") as f:
                res["failures_setup"].append("hostile process gave no results (%s): %s" %
                                             (e, f.read()[-2000:]))
        t_cpu = cpu_seconds(gw.pid)
        if res["alive_after_attack"]:
            wb.run("after", timed(3.0))
            cpu["after"] = cpu_seconds(gw.pid) - t_cpu
            time.sleep(0.3)
            res["rss_end_kib"] = helpers.rss_kib(gw.pid)
            res["fds_end"] = nfds(gw.pid)
            probe = os.environ.get("SOAK_MALLOC_PROBE", "auto")
            grew = max(s[2] for s in sampler.samples + [(0, 0, 0, 0)]) - res["rss_start_kib"]
            if probe == "1" or (probe == "auto" and malloc_probe_default and
                                grew >= RSS_GROWTH_LIMIT_KIB // 2):
                try:
                    res["malloc_probe"] = malloc_probe(gw)
                except (OSError, subprocess.SubprocessError, AssertionError) as e:
                    res["malloc_probe"] = {"error": str(e)}
            res["cpu_total_s"] = round(cpu_seconds(gw.pid), 2)
        res["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    except Exception as e:  # noqa: BLE001 - reported, processes still stopped below
        res["failures_setup"].append("soak driver: %s: %s" % (type(e).__name__, e))
    finally:
        if sampler:
            sampler.stop()
        if wb:
            wb.close()
        _stop_proc(hostile, signal.SIGKILL)
        if gw is not None and gw.proc is not None:
            res.setdefault("alive_after_attack", gw.alive())
            if gw.proc.poll() is None:
                gw.signal(signal.SIGTERM)
                try:
                    gw.wait(15)
                except subprocess.TimeoutExpired:
                    res["failures_setup"].append("gateway did not exit within 15 s of SIGTERM")
                    gw.proc.kill()
                    gw.proc.wait()
            gw._close_files()
            res["exit_code"] = gw.proc.returncode
            res["sanitizer"] = gw.sanitizer_report()
            res["stderr_tail"] = gw.stderr()[-3000:]
        _stop_proc(soakup)
        if soakup is not None:
            soakup.stdout.close()
            try:
                with open(stats_path) as f:
                    res["soak_upstream"] = json.load(f)
            except (OSError, ValueError):
                res["soak_upstream"] = {}
        if rec is not None:
            try:
                res["rec_bad"] = rec.events("bad")[:5]
                res["rec_requests"] = len(rec.requests())
            except (OSError, ValueError) as e:
                res["rec_bad"] = ["could not read the log: %s" % e]
            rec.stop()
        for f in files:
            f.close()
    if wb:
        res["wb"] = {ph: wb.figures(ph) for ph in ("warmup", "baseline", "attack", "after")}
        res["wb_error_samples"] = wb.samples
        res["wb_connections"] = wb.reconnects
    if sampler and sampler.samples:
        res["rss_peak_kib"] = max(s[2] for s in sampler.samples)
        res["rss_peak_attack_kib"] = max([s[2] for s in sampler.samples if s[1] == "attack"]
                                         or [0])
        res["fds_peak"] = max(s[3] for s in sampler.samples)
        # RSS through the attack, at each tenth of it: a plateau or a slope
        att = [x for x in sampler.samples if x[1] == "attack"]
        if att:
            res["rss_attack_trend_kib"] = [att[min(len(att) - 1, (len(att) * k) // 10)][2]
                                           for k in range(1, 11)]
        res["rss_samples"] = len(sampler.samples)
    return res


# ------------------------------------------------------------ verdict, reports

P99_FLOOR_MS = 200.0
P99_FACTOR = 10.0
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def check(res, latency=True, rss=True):
    """The soak's verdict: a list of failures, empty when it passed."""
    f = list(res.get("failures_setup", []))
    wb = res.get("wb", {})
    for ph in ("warmup", "baseline", "attack", "after"):
        e = wb.get(ph, {}).get("errors", 0)
        if e:
            f.append("well-behaved client: %d error(s) in the %s phase" % (e, ph))
    if any(wb.get(ph, {}).get("errors") for ph in wb):
        f.append("well-behaved client errors (first ones):\n    " +
                 "\n    ".join(res.get("wb_error_samples", [])))
    if latency and "baseline" in wb and "attack" in wb:
        # all requests, and the stable upstream's alone (the flaky one's
        # races cost up to its 50 ms close delay in both phases, which
        # would make 10 x baseline a looser bound)
        for key, what in (("p99_ms", "p99"), ("p99_stable_ms", "p99 (stable upstream)")):
            limit = max(P99_FACTOR * wb["baseline"][key], P99_FLOOR_MS)
            if not wb["attack"][key] < limit:
                f.append("%s during the attack %.1f ms, not below %.1f ms (baseline %.1f ms)"
                         % (what, wb["attack"][key], limit, wb["baseline"][key]))
    if rss and "rss_peak_kib" in res and "rss_start_kib" in res:
        grew = res["rss_peak_kib"] - res["rss_start_kib"]
        if grew >= RSS_GROWTH_LIMIT_KIB:
            f.append("gateway RSS grew by %d KiB (start %d, peak %d), limit %d; "
                     "through the attack: %s; allocator at the end: %s" % (
                         grew, res["rss_start_kib"], res["rss_peak_kib"], RSS_GROWTH_LIMIT_KIB,
                         res.get("rss_attack_trend_kib"), res.get("malloc_probe", "not probed")))
    if res.get("alive_after_attack") is False:
        f.append("the gateway died during the attack:\n" + res.get("stderr_tail", "")[-2000:])
    if res.get("exit_code") not in (0,):
        f.append("gateway exit code on SIGTERM: %r\n%s" % (res.get("exit_code"),
                                                           res.get("stderr_tail", "")[-2000:]))
    if res.get("sanitizer"):
        f.append("sanitizer report:\n" + res["sanitizer"])
    if res.get("hostile_overran"):
        f.append("the hostile clients did not finish within attack + 20 s (killed)")
    for kind, r in sorted(res.get("hostile", {}).items()):
        if r.get("unexpected"):
            f.append("hostile %s: %d unexpected outcome(s) of %d connections: %s" % (
                kind, r["unexpected"], r["conns"], "; ".join(r.get("samples", []))))
    if res.get("rec_bad"):
        f.append("malformed requests reached the recording upstream: %r" % res["rec_bad"])
    su = res.get("soak_upstream", {})
    if su.get("bad"):
        f.append("malformed requests reached the soak upstream: %r" % su.get("bad_samples"))
    return f


def _ms(v):
    return "%.1f" % v if isinstance(v, (int, float)) and not math.isnan(v) else "-"


def summary_line(res):
    wb = res.get("wb", {})
    b, a = wb.get("baseline", {}), wb.get("attack", {})
    ho = res.get("hostile", {})
    kinds = " ".join("%s=%d" % (k, ho[k]["conns"]) for k in sorted(ho))
    unexpected = sum(r.get("unexpected", 0) for r in ho.values())
    return ("%s: %s %dw %.0fs+%.0fs | wb requests %d/%d errors %d/%d (warmup %d, after %d) | "
            "p50 %s/%s ms p99 %s/%s ms (stable %s/%s, after %s) | "
            "RSS KiB start %s peak %s end %s | "
            "fds %s/%s/%s | cpu s %s/%s | hostile conns %s (unexpected %d) | exit %s%s" % (
                res.get("label"), os.path.basename(res.get("binary", "?")), res.get("workers", 0),
                res.get("baseline_s", 0), res.get("attack_s", 0),
                b.get("requests", 0), a.get("requests", 0), b.get("errors", 0),
                a.get("errors", 0), wb.get("warmup", {}).get("errors", 0),
                wb.get("after", {}).get("errors", 0),
                _ms(b.get("p50_ms")), _ms(a.get("p50_ms")), _ms(b.get("p99_ms")),
                _ms(a.get("p99_ms")), _ms(b.get("p99_stable_ms")), _ms(a.get("p99_stable_ms")),
                _ms(wb.get("after", {}).get("p99_ms")),
                res.get("rss_start_kib", "-"), res.get("rss_peak_kib", "-"),
                res.get("rss_end_kib", "-"), res.get("fds_start", "-"), res.get("fds_peak", "-"),
                res.get("fds_end", "-"), res.get("cpu_s", {}).get("baseline", "-"),
                res.get("cpu_s", {}).get("attack", "-"), kinds or "-", unexpected,
                res.get("exit_code"), " SANITIZER" if res.get("sanitizer") else ""))


def markdown(res, command, failures):
    wb = res.get("wb", {})
    out = ["# bench/soak.sh results, %s" % time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), ""]
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out += ["Command: `%s`" % command, "",
            "Machine: %d cores (%s), Linux %s. portcullis: %s, %d workers, a plain and a TLS "
            "listener." % (os.cpu_count() or 0, cpu, os.uname().release,
                           res.get("binary_desc") or "%s, binary %s of %s" % (
                               res.get("version", "?"), res.get("binary"),
                               res.get("binary_mtime")),
                           res.get("workers", 0)),
            "",
            "Well-behaved client: sequential requests every %.0f ms on two keep-alive "
            "connections (plain, TLS), GET and 512-byte POST, to a stable upstream and to an "
            "upstream that closes or resets half of its connections 0-50 ms after a response. "
            "Baseline %.0f s, attack %.0f s (%s s with the hostile clients draining), then "
            "3 s after." % (res.get("wb_interval_ms", 0), res.get("baseline_s", 0),
                            res.get("attack_s", 0), res.get("attack_actual_s", "?")),
            "",
            "| phase | requests | errors | p50 ms | p99 ms | max ms | p99 stable upstream ms "
            "| p99 flaky upstream ms | gateway CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ph in ("warmup", "baseline", "attack", "after"):
        r = wb.get(ph)
        if r:
            out.append("| %s | %d | %d | %s | %s | %s | %s | %s | %s |" % (
                ph, r["requests"], r["errors"], _ms(r["p50_ms"]), _ms(r["p99_ms"]),
                _ms(r["max_ms"]), _ms(r.get("p99_stable_ms")), _ms(r.get("p99_flaky_ms")),
                res.get("cpu_s", {}).get(ph, "-")))
    out += ["", "Gateway RSS (KiB, sampled every 0.5 s): start %s, peak %s (attack %s), end %s; "
            "open fds start %s, peak %s, end %s." % (
                res.get("rss_start_kib", "-"), res.get("rss_peak_kib", "-"),
                res.get("rss_peak_attack_kib", "-"), res.get("rss_end_kib", "-"),
                res.get("fds_start", "-"), res.get("fds_peak", "-"), res.get("fds_end", "-")),
            "", "RSS (KiB) at each tenth of the attack: %s." % (
                ", ".join(str(v) for v in res.get("rss_attack_trend_kib", [])) or "-"),
            "", "Allocator at the end (gdb: malloc_stats, then malloc_trim(0)): %s." % (
                res.get("malloc_probe", "not probed (RSS grew by less than half the bound)")),
            "", "| hostile kind | connections | as expected | unexpected | notes |",
            "|---|---:|---:|---:|---|"]
    for kind, r in sorted(res.get("hostile", {}).items()):
        extra = ", ".join("%s %s" % (k, round(v, 1) if isinstance(v, float) else v)
                          for k, v in sorted(r.items())
                          if k not in ("conns", "ok", "unexpected", "samples"))
        out.append("| %s | %d | %d | %d | %s |" % (kind, r["conns"], r["ok"], r["unexpected"],
                                                   extra))
    su = res.get("soak_upstream", {})
    out += ["", "Upstreams: recording upstream %s requests; soak upstream %s requests, "
            "connections %s, flaky closes %s, flaky resets %s; malformed requests: %d." % (
                res.get("rec_requests", "?"), su.get("requests", "?"), su.get("conns", "?"),
                su.get("flaky_closes", "?"), su.get("flaky_resets", "?"),
                len(res.get("rec_bad", [])) + su.get("bad", 0)),
            "", "Gateway exit code on SIGTERM: %s; sanitizer report: %s." % (
                res.get("exit_code"), "YES" if res.get("sanitizer") else "none"),
            "", "Verdict: %s" % ("PASS" if not failures else "FAIL"), ""]
    for f in failures:
        out.append("- " + f.replace("\n", "\n  "))
    out += ["", "```", summary_line(res), "```", ""]
    return "\n".join(out)


def cmd_run(args):
    base, att = split_seconds(args.seconds)
    if args.baseline:
        base, att = args.baseline, args.seconds - args.baseline
    workdir = args.workdir or os.path.join("/tmp", "pc-soak-%d" % os.getpid())
    res = run_soak(workdir, args.bin, base, att, workers=args.workers,
                   log=lambda m: print("soak: " + m, file=sys.stderr, flush=True),
                   malloc_probe_default=not args.no_rss_check)
    if args.bin_desc:
        res["binary_desc"] = args.bin_desc
    failures = check(res, latency=not args.no_latency_check, rss=not args.no_rss_check)
    line = summary_line(res)
    print(line)
    with open(os.path.join(workdir, "soak-summary.txt"), "w") as f:
        f.write(line + "\n")
    with open(os.path.join(workdir, "soak-result.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    if args.markdown:
        md = markdown(res, args.command or " ".join(sys.argv), failures)
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(md)
    for x in failures:
        print("FAIL: " + x, file=sys.stderr)
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the soak: gateway, upstreams, clients; prints a summary")
    r.add_argument("--seconds", type=float, default=60.0, help="baseline + attack")
    r.add_argument("--baseline", type=float, default=0.0)
    r.add_argument("--bin", default=helpers.REL_BIN)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--workdir")
    r.add_argument("--markdown")
    r.add_argument("--command")
    r.add_argument("--bin-desc", help="how the report names the binary")
    r.add_argument("--no-latency-check", action="store_true")
    r.add_argument("--no-rss-check", action="store_true")
    s = sub.add_parser("serve")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--stats", required=True)
    h = sub.add_parser("hostile")
    h.add_argument("--plain", type=int, required=True)
    h.add_argument("--tls", type=int, required=True)
    h.add_argument("--ca", required=True)
    h.add_argument("--seconds", type=float, required=True)
    h.add_argument("--out", required=True)
    h.add_argument("--kinds", default="", help="comma-separated subset of the kinds")
    args = ap.parse_args()
    if args.cmd == "serve":
        return cmd_serve(args)
    if args.cmd == "hostile":
        return cmd_hostile(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
