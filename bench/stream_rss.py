#!/usr/bin/env python3
"""bench/stream_rss.py: does a gateway stream bodies, or buffer them?

Two parts, run by bench/stream.sh around the gateway under test:

  serve --port P   the origin: POST /upload?rate=R reads the request body at
                   R bytes/s (a slow reader) and answers {"bytes", "ok"};
                   GET /download?bytes=N sends N bytes as fast as the gateway
                   takes them.
  run --port G --pid PID
                   through the gateway at G: a 1 GiB upload (streamed from a
                   generator, never held in memory) read slowly by the origin,
                   then a 1 GiB download read slowly by this client; the RSS
                   of PID is sampled every 100 ms and baseline, maximum and
                   increase are reported.

The body is a fixed pseudo-random pattern whose period (1 MiB + 7) matches
no buffer size, and both ends compare every byte with it, so a lost,
repeated or reordered piece fails the run, as does a wrong byte count
(exit 1). Python stdlib only; it listens and connects on 127.0.0.1 only.
"""

import argparse
import json
import random
import socket
import ssl
import sys
import threading
import time

from idle_conns import total_rss

PAT_LEN = (1 << 20) + 7
PAT2 = memoryview(random.Random(20261123).randbytes(PAT_LEN) * 2)
SEND_PIECE = 256 * 1024
READ_PIECE = 64 * 1024


def parse_size(text):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower()
    if t and t[-1] in mult:
        return int(t[:-1]) * mult[t[-1]]
    return int(t)


def pattern_pieces(total):
    """The body, as views into the pattern: nothing is built in memory."""
    off = 0
    while off < total:
        n = min(SEND_PIECE, total - off)
        s = off % PAT_LEN
        yield PAT2[s:s + n]
        off += n


class Checker:
    """Counts bytes and compares each with the pattern at its offset."""

    def __init__(self):
        self.count = 0
        self.ok = True

    def feed(self, data):
        mv = memoryview(data)
        i = 0
        while i < len(mv) and self.ok:
            s = (self.count + i) % PAT_LEN
            n = min(len(mv) - i, PAT_LEN)
            if bytes(mv[i:i + n]) != bytes(PAT2[s:s + n]):
                self.ok = False
            i += n
        self.count += len(mv)


def pace(start, done, rate):
    """Sleeps until `done` bytes are due at `rate` bytes/s after start."""
    if rate > 0:
        ahead = start + done / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def read_head(f):
    """Reads a request or status line and headers from a binary file.
    Returns (first line, {lower-case name: value}) or (None, None) at EOF."""
    first = f.readline(65536)
    if not first:
        return None, None
    headers = {}
    while True:
        line = f.readline(65536)
        if not line:
            raise ConnectionError("closed inside a header")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return first.decode("latin-1").rstrip("\r\n"), headers


def read_body(f, headers, sink, rate=0.0):
    """Reads a Content-Length or chunked body into sink(data), at most
    READ_PIECE at a time and paced to `rate` bytes/s when rate > 0."""
    start, done = time.monotonic(), 0

    def take(n):
        nonlocal done
        while n > 0:
            data = f.read1(min(n, READ_PIECE))
            if not data:
                raise ConnectionError("closed inside the body")
            sink(data)
            n -= len(data)
            done += len(data)
            pace(start, done, rate)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int(f.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            take(size)
            f.readline(16)
    else:
        take(int(headers.get("content-length", "0")))


def respond(conn, status, body, ctype="application/json"):
    head = ("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, ctype, len(body)))
    conn.sendall(head.encode() + body)


def serve_conn(conn):
    f = conn.makefile("rb", buffering=READ_PIECE)
    with conn, f:
        while True:
            line, headers = read_head(f)
            if line is None:
                return
            method, target, _ = line.split(" ", 2)
            path, _, query = target.partition("?")
            args = dict(kv.partition("=")[::2] for kv in query.split("&") if kv)
            if method == "POST" and path == "/upload":
                chk = Checker()
                t0 = time.monotonic()
                try:
                    read_body(f, headers, chk.feed,
                              float(args.get("rate", "0")))
                except OSError as e:
                    raise ConnectionError("upload: %s after %d bytes" %
                                          (e, chk.count)) from e
                body = json.dumps({"bytes": chk.count, "ok": chk.ok,
                                   "seconds": time.monotonic() - t0})
                respond(conn, 200, body.encode())
            elif method == "GET" and path == "/download":
                n = int(args.get("bytes", "0"))
                read_body(f, headers, lambda d: None)
                conn.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/"
                              "octet-stream\r\nContent-Length: %d\r\n\r\n"
                              % n).encode())
                for piece in pattern_pieces(n):
                    conn.sendall(piece)
            else:
                read_body(f, headers, lambda d: None)
                respond(conn, 404, b'{"error": "not found"}')


def cmd_serve(a):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(128)
    print("stream_rss: origin on 127.0.0.1:%d" % a.port, file=sys.stderr)
    while True:
        conn, _ = ls.accept()

        def run(c=conn):
            try:
                serve_conn(c)
            except (OSError, ValueError) as e:
                print("stream_rss: origin connection: %s" % e, file=sys.stderr)

        threading.Thread(target=run, daemon=True).start()


class Sampler(threading.Thread):
    """RSS of the gateway every `interval` s while `window` is open."""

    def __init__(self, pids, children, interval):
        super().__init__(daemon=True)
        self.pids, self.children, self.interval = pids, children, interval
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.peak = 0
        self.samples = 0

    def run(self):
        while not self.stop.is_set():
            kib = total_rss(self.pids, self.children)
            with self.lock:
                self.peak = max(self.peak, kib)
                self.samples += 1
            self.stop.wait(self.interval)

    def reset(self):
        with self.lock:
            self.peak, self.samples = 0, 0

    def result(self):
        with self.lock:
            return self.peak, self.samples


def connect(a):
    sock = socket.create_connection((a.host, a.port), timeout=120)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    return sock


def read_response(sock):
    f = sock.makefile("rb", buffering=READ_PIECE)
    line, headers = read_head(f)
    if line is None:
        raise ConnectionError("connection closed without an answer")
    return int(line.split()[1]), headers, f


def upload(a, size):
    """Sends `size` bytes; the origin reads them in about a.seconds."""
    sock = connect(a)
    rate = size / a.seconds
    head = "POST /upload?rate=%.0f HTTP/1.1\r\nHost: localhost\r\n" % rate
    head += "Content-Type: application/octet-stream\r\n"
    head += ("Transfer-Encoding: chunked\r\n\r\n" if a.chunked
             else "Content-Length: %d\r\n\r\n" % size)
    try:
        sock.sendall(head.encode())
        for piece in pattern_pieces(size):
            if a.chunked:
                sock.sendall(b"%x\r\n" % len(piece))
            sock.sendall(piece)
            if a.chunked:
                sock.sendall(b"\r\n")
        if a.chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError as e:  # an early answer (413, 502) explains it best
        try:
            status, headers, f = read_response(sock)
            body = bytearray()
            read_body(f, headers, body.extend)
            return "gateway answered %d while uploading (%s): %s" % (
                status, e, bytes(body[:300]).decode("latin-1"))
        except (OSError, ValueError):
            return "upload failed: %s" % e
    status, headers, f = read_response(sock)
    body = bytearray()
    read_body(f, headers, body.extend)
    sock.close()
    if status != 200:
        return "answer %d: %s" % (status, bytes(body[:200]))
    got = json.loads(body)
    if got["bytes"] != size:
        return "origin received %d bytes, %d sent" % (got["bytes"], size)
    if not got["ok"]:
        return "origin received the right count but wrong bytes"
    return None


def download(a, size):
    """Reads `size` bytes in about a.seconds."""
    sock = connect(a)
    sock.sendall(b"GET /download?bytes=%d HTTP/1.1\r\nHost: localhost\r\n\r\n"
                 % size)
    status, headers, f = read_response(sock)
    if status != 200:
        return "answer %d" % status
    chk = Checker()
    try:
        read_body(f, headers, chk.feed, size / a.seconds)
    except OSError as e:
        return "%s after %d of %d bytes" % (e, chk.count, size)
    sock.close()
    if chk.count != size:
        return "received %d bytes, %d expected" % (chk.count, size)
    if not chk.ok:
        return "received the right count but wrong bytes"
    return None


def cmd_run(a):
    size = parse_size(a.size)
    sampler = Sampler(a.pid, a.children, a.interval)
    sampler.start()
    failed, rows, notes = False, [], []
    for name in a.only.split(","):
        fn = {"upload": upload, "download": download}[name]
        time.sleep(1.0)  # let the gateway settle, then take the baseline
        sampler.reset()
        time.sleep(0.5)
        base, _ = sampler.result()
        sampler.reset()
        t0 = time.monotonic()
        try:
            err = fn(a, size)
        except (OSError, ValueError) as e:
            err = "%s (after %.1f s)" % (e, time.monotonic() - t0)
        secs = time.monotonic() - t0
        peak, samples = sampler.result()
        peak = max(peak, base)
        inc = (peak - base) / 1024
        print("stream_rss: %s of %d bytes: %s in %.1f s; RSS baseline %.1f "
              "MiB, max %.1f MiB, increase %.1f MiB (%d samples)" %
              (name, size, "FAILED: " + err if err else "ok", secs,
               base / 1024, peak / 1024, inc, samples), file=sys.stderr)
        rows.append("| %s | %s | %d MiB | %s | %.1f | %.1f | %.1f | %.1f |" % (
            a.label or "gateway", name, size >> 20,
            "FAILED" if err else "ok", secs, base / 1024, peak / 1024, inc))
        if err:
            notes.append("- %s %s: %s" % (a.label or "gateway", name, err))
        failed = failed or err is not None
        if a.max_increase_mib and inc > a.max_increase_mib:
            print("stream_rss: %s: RSS grew %.1f MiB, over the %.1f MiB "
                  "allowed" % (name, inc, a.max_increase_mib), file=sys.stderr)
            failed = True
    sampler.stop.set()
    if a.label:
        print("\n".join(rows + notes))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the origin")
    s.add_argument("--port", type=int, required=True)
    r = sub.add_parser("run", help="upload and download through a gateway")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--tls", action="store_true")
    r.add_argument("--pid", type=int, action="append", required=True,
                   help="gateway process to sample (repeatable)")
    r.add_argument("--children", action="store_true",
                   help="add the RSS of the pids' children (nginx workers)")
    r.add_argument("--size", default="1g", help="bytes each way (k, m, g)")
    r.add_argument("--seconds", type=float, default=30.0,
                   help="how long the slow reader takes for the whole body")
    r.add_argument("--interval", type=float, default=0.1)
    r.add_argument("--chunked", action="store_true",
                   help="upload with Transfer-Encoding: chunked")
    r.add_argument("--only", default="upload,download",
                   help="upload, download or both (comma-separated)")
    r.add_argument("--label", default="",
                   help="print markdown table rows with this label")
    r.add_argument("--max-increase-mib", type=float, default=0.0,
                   help="fail when the RSS grows more (0: report only)")
    a = ap.parse_args()
    if a.cmd == "serve":
        return cmd_serve(a)
    if a.seconds <= 0:
        sys.exit("stream_rss: --seconds must be positive")
    if any(x not in ("upload", "download") for x in a.only.split(",")):
        sys.exit("stream_rss: --only takes upload, download or both")
    return cmd_run(a)


if __name__ == "__main__":
    sys.exit(main())
