#!/usr/bin/python3
"""Recording upstream for the end-to-end tests: a threaded HTTP/1.1 server on
raw sockets that writes every request it receives, byte for byte, to a
JSON-lines log, and whose behaviour is chosen by markers in the request path.

It is deliberately strict: a request that is not well framed (both
Content-Length and Transfer-Encoding, a bad chunk, a bare LF...) is logged as
a "bad" event, because the gateway must never send one upstream.

Log events (one JSON object per line, flushed before any answer is sent):
  conn     a TCP connection was accepted (peer, sni for TLS)
  req      a complete request (raw head, method, target, headers, body)
  partial  the connection ended inside a request (head and body so far)
  bad      a malformed request reached us
  close    the connection ended (requests served on it)
  stream   a /stream/N answer ended (bytes sent, complete or not)
  tls_error a TLS handshake failed

Path markers (searched anywhere in the path, so that strip_prefix and
rewrite do not matter):
  /close          close without answering
  /reset          close with RST (SO_LINGER 0)
  /sleep/MS       wait MS before the response head (then echo)
  /dribble/N/MS   N body bytes, one every MS
  /bytes/N        N body bytes with Content-Length
  /chunked/N      N body bytes, chunked (?chunk=K bytes per chunk)
  /noclen/N       N body bytes, delimited by closing the connection
  /stream/N       N body bytes with Content-Length, written as fast as the
                  peer reads, for streaming tests
  /sink           read the body (at most ?rate_mib=R MiB/s) and
                  answer its length and CRC-32
  /status/CODE    answer CODE with a small JSON body
  /hopbyhop       answer with hop-by-hop headers a proxy must drop
  /doc/N          N bytes of compressible text (doc_bytes), headers from
                  the query: ct (Content-Type, default application/json),
                  ce (Content-Encoding), etag, cc (Cache-Control), vary,
                  status (default 200), chunked=1 (chunked, 1000-byte chunks),
                  lm (Last-Modified), expires, date, age, cookie (Set-Cookie),
                  loc (Location), cloc (Content-Location); X-Seq: how many
                  requests of this exact target came before; failfrom=K:
                  from the K-th on, answer failstatus (default 503); a
                  matching If-None-Match (etag) or If-Modified-Since (lm)
                  gets 304 with the same headers
  anything else   echo: JSON of what was received

Usage: upstream.py --log FILE [--name N] [--host H] [--port P]
       [--tls-cert C --tls-key K] [--idle-close-ms MS] [--max-requests K]
       [--drop-after K]
  --idle-close-ms  close a keep-alive connection idle for MS
  --max-requests   close a connection right after its K-th answer, without
                   announcing it (no "Connection: close")
  --drop-after     read the (K+1)-th request of a connection, then close it
                   without answering (logged "dropped"): what a proxy sees
                   when it reuses a pooled connection the upstream closed
Prints "PORT <n>" on stdout once listening.
"""

import argparse
import json
import re
import socket
import ssl
import struct
import sys
import threading
import time
import zlib

MAX_HEAD = 1 << 20
KEEP_BODY = 1 << 20
BLOCK = bytes((i * 7 + 13) % 251 for i in range(65536))
TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def pattern_chunks(n, size=65536):
    """The deterministic body of /bytes, /chunked, /stream: BLOCK repeated,
    cut into pieces of at most size bytes (the same bytes whatever size)."""
    left, off = n, 0
    while left > 0:
        k = min(left, size, len(BLOCK) - off)
        yield BLOCK[off:off + k]
        off = (off + k) % len(BLOCK)
        left -= k


def pattern_bytes(n):
    return b"".join(pattern_chunks(n))


def doc_bytes(n):
    """The deterministic, compressible body of /doc/N."""
    out, i = [], 0
    size = 0
    while size < n:
        line = b'{"id": %d, "name": "item-%d", "tags": ["alpha", "beta"], "ok": true}\n' % (i, i)
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)[:n]


def pattern_crc(n):
    crc = 0
    for c in pattern_chunks(n):
        crc = zlib.crc32(c, crc)
    return crc


class Bad(Exception):
    """The peer sent something that is not well-framed HTTP/1.1."""


class Eof(Exception):
    """The peer closed (or reset) the connection."""


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, **ev):
        ev["t"] = time.time()
        line = json.dumps(ev, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


class Reader:
    """Buffered reads from a socket, with the raw bytes kept for the log."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self, timeout=None):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise
            raise Eof(str(e))
        if not data:
            raise Eof("eof")
        self.buf += data

    def read_until(self, delim, limit):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[: i + len(delim)])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise Bad("line or head too long")
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n):
        if not self.buf:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Body:
    """Accumulates a request body: kept when small, always counted and CRC'd.
    With a rate (bytes/s) it reads no faster than that: a slow reader."""

    def __init__(self, rate=0):
        self.len = 0
        self.crc = 0
        self.kept = bytearray()
        self.rate = rate
        self.t0 = time.monotonic()

    def add(self, data):
        self.len += len(data)
        self.crc = zlib.crc32(data, self.crc)
        if self.len <= KEEP_BODY:
            self.kept += data
        if self.rate:
            ahead = self.len / self.rate - (time.monotonic() - self.t0)
            if ahead > 0:
                time.sleep(ahead)


def parse_head(raw):
    """Strict parse of a request head; raises Bad on anything irregular."""
    if b"\r\n" not in raw or re.search(rb"(?<!\r)\n", raw):
        raise Bad("bare LF in head")
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1] or not re.match(rb"^HTTP/1\.[01]$", parts[2]):
        raise Bad("request line")
    method, target, version = parts
    if not TOKEN_RE.match(method):
        raise Bad("method")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise Bad("obs-fold")
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN_RE.match(name):
            raise Bad("header name %r" % name)
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
            raise Bad("control char in value")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return method.decode(), target.decode("latin-1"), version.decode(), headers


def hget(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def read_chunked(rd, body):
    while True:
        line = rd.read_until(b"\r\n", 4096)
        m = re.match(rb"^([0-9A-Fa-f]{1,15})(;[^\r\n]*)?\r\n$", line)
        if not m:
            raise Bad("chunk size %r" % line[:40])
        size = int(m.group(1), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                t = rd.read_until(b"\r\n", 65536)
                if t == b"\r\n":
                    return
                if b":" not in t:
                    raise Bad("trailer")
        left = size
        while left:
            data = rd.read_some(min(left, 262144))
            body.add(data)
            left -= len(data)
        if rd.read_exact(2) != b"\r\n":
            raise Bad("chunk not followed by CRLF")


def read_body(rd, headers, body):
    te = hget(headers, "Transfer-Encoding")
    cl = hget(headers, "Content-Length")
    if te and cl:
        raise Bad("both Content-Length and Transfer-Encoding")
    if te:
        if len(te) != 1 or te[0].lower() != "chunked":
            raise Bad("transfer-encoding %r" % te)
        read_chunked(rd, body)
        return True
    if cl:
        if len(set(cl)) != 1 or not re.match(r"^[0-9]{1,18}$", cl[0]):
            raise Bad("content-length %r" % cl)
        left = int(cl[0])
        while left:
            data = rd.read_some(min(left, 65536))
            body.add(data)
            left -= len(data)
    return False


class Conn(threading.Thread):
    counter = 0
    counter_lock = threading.Lock()

    def __init__(self, server, sock, peer):
        super().__init__(daemon=True)
        self.srv = server
        self.sock = sock
        self.peer = peer
        with Conn.counter_lock:
            Conn.counter += 1
            self.id = Conn.counter
        self.served = 0

    def send(self, data):
        self.sock.sendall(data)

    def run(self):
        log = self.srv.log
        try:
            if self.srv.tls:
                try:
                    self.sock.settimeout(10)
                    self.sock.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    log.write(ev="tls_error", peer=self.peer, error=str(e))
                    return
            log.write(ev="conn", conn=self.id, peer=self.peer,
                      sni=getattr(self.sock, "e2e_sni", None),
                      alpn=self.sock.selected_alpn_protocol() if self.srv.tls else None)
            self.serve()
        finally:
            log.write(ev="close", conn=self.id, requests=self.served)
            try:
                self.sock.close()
            except OSError:
                pass

    def serve(self):
        rd = Reader(self.sock)
        while True:
            if self.served and not rd.buf:
                idle = self.srv.idle_close_ms
                try:
                    rd.fill(idle / 1000 if idle else None)
                except socket.timeout:
                    self.srv.log.write(ev="idle_close", conn=self.id)
                    return
                except Eof:
                    return
            if not self.one(rd):
                return
            if self.srv.max_requests and self.served >= self.srv.max_requests:
                return

    def one(self, rd):
        """Serves one request; returns whether the connection stays open."""
        log = self.srv.log
        head = b""
        body = Body()
        try:
            head = rd.read_until(b"\r\n\r\n", MAX_HEAD)
            method, target, version, headers = parse_head(head)
            path = target.split("?", 1)[0]
            q = target.split("?", 1)[1] if "?" in target else ""
            m = re.search(r"rate_mib=(\d+)", q)
            if "/sink" in path and m:
                body.rate = int(m.group(1)) << 20
                body.t0 = time.monotonic()
            chunked = read_body(rd, headers, body)
        except Eof as e:
            if head or rd.buf:
                log.write(ev="partial", conn=self.id, head=head.decode("latin-1"),
                          buffered=bytes(rd.buf[:4096]).decode("latin-1"),
                          body_len=body.len, reason=str(e))
            return False
        except Bad as e:
            log.write(ev="bad", conn=self.id, reason=str(e),
                      head=head.decode("latin-1"),
                      buffered=bytes(rd.buf[:4096]).decode("latin-1"))
            self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                      b"Connection: close\r\n\r\n")
            return False
        if self.srv.drop_after and self.served >= self.srv.drop_after:
            log.write(ev="dropped", conn=self.id, target=target)
            return False
        self.served += 1
        log.write(ev="req", conn=self.id, seq=self.served, head=head.decode("latin-1"),
                  method=method, target=target, path=path, query=q, version=version,
                  headers=headers, chunked=chunked, body_len=body.len, crc32=body.crc,
                  body=bytes(body.kept).decode("latin-1") if body.len <= KEEP_BODY else None)
        conn_hdr = ",".join(hget(headers, "Connection")).lower()
        if version == "HTTP/1.0":
            keep = "keep-alive" in conn_hdr
        else:
            keep = "close" not in conn_hdr
        req = dict(method=method, target=target, path=path, query=q, version=version,
                   headers=headers, body=body, keep=keep)
        try:
            return self.respond(req)
        except (OSError, ssl.SSLError):
            return False

    def head_bytes(self, status, headers, keep):
        reason = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
                  404: "Not Found",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Status")
        out = ["HTTP/1.1 %d %s" % (status, reason),
               "Server: e2e-upstream",
               "X-Upstream: %s" % self.srv.name,
               "X-Conn: %d" % self.id]
        out += ["%s: %s" % kv for kv in headers]
        if not keep:
            out.append("Connection: close")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def simple(self, req, status, ctype, payload, extra=()):
        hdrs = [("Content-Type", ctype), ("Content-Length", str(len(payload)))] + list(extra)
        data = self.head_bytes(status, hdrs, req["keep"])
        if req["method"] != "HEAD":
            data += payload
        self.send(data)
        return req["keep"]

    def respond(self, req):
        path = req["path"]
        m = re.search(r"/sleep/(\d+)", path)
        if m:
            time.sleep(int(m.group(1)) / 1000)
        if re.search(r"/close(/|$)", path):
            return False
        if re.search(r"/reset(/|$)", path):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        m = re.search(r"/status/(\d+)", path)
        if m:
            code = int(m.group(1))
            if code in (204, 304):  # no body, no framing headers
                self.send(self.head_bytes(code, [], req["keep"]))
                return req["keep"]
            return self.simple(req, code, "application/json",
                               json.dumps({"status": code}).encode())
        m = re.search(r"/bytes/(\d+)", path)
        if m:
            return self.simple(req, 200, "application/octet-stream", pattern_bytes(int(m.group(1))))
        m = re.search(r"/chunked/(\d+)", path)
        if m:
            return self.chunked(req, int(m.group(1)))
        m = re.search(r"/noclen/(\d+)", path)
        if m:
            data = self.head_bytes(200, [("Content-Type", "application/octet-stream")], False)
            self.send(data if req["method"] == "HEAD" else data + pattern_bytes(int(m.group(1))))
            return False
        m = re.search(r"/stream/(\d+)", path)
        if m:
            return self.stream(req, int(m.group(1)))
        m = re.search(r"/dribble/(\d+)/(\d+)", path)
        if m:
            n, gap = int(m.group(1)), int(m.group(2)) / 1000
            self.send(self.head_bytes(200, [("Content-Length", str(n))], req["keep"]))
            for i in range(n):
                time.sleep(gap)
                self.send(b"d")
            return req["keep"]
        m = re.search(r"/doc/(\d+)", path)
        if m:
            return self.doc(req, int(m.group(1)))
        if "/hopbyhop" in path:
            extra = [("Connection", "X-Up-Secret, Keep-Alive"), ("X-Up-Secret", "1"),
                     ("Keep-Alive", "timeout=5"), ("X-Up-Public", "1")]
            return self.simple(req, 200, "text/plain", b"hop", extra)
        if "/sink" in path:
            b = req["body"]
            return self.simple(req, 200, "application/json",
                               json.dumps({"body_len": b.len, "crc32": b.crc}).encode())
        return self.echo(req)

    def echo(self, req):
        b = req["body"]
        payload = json.dumps({
            "upstream": self.srv.name, "conn": self.id, "seq": self.served,
            "method": req["method"], "target": req["target"], "path": req["path"],
            "query": req["query"], "version": req["version"], "headers": req["headers"],
            "body_len": b.len, "crc32": b.crc,
        }).encode()
        return self.simple(req, 200, "application/json", payload)

    def doc(self, req, n):
        from urllib.parse import parse_qs
        q = {k: v[0] for k, v in parse_qs(req["query"] or "").items()}
        status = int(q.get("status", "200"))
        hdrs = [("Content-Type", q.get("ct", "application/json"))]
        for key, name in (("ce", "Content-Encoding"), ("etag", "ETag"),
                          ("cc", "Cache-Control"), ("vary", "Vary"),
                          ("lm", "Last-Modified"), ("expires", "Expires"),
                          ("date", "Date"), ("age", "Age"), ("cookie", "Set-Cookie"),
                          ("loc", "Location"), ("cloc", "Content-Location")):
            if key in q:
                hdrs.append((name, q[key]))
        hdrs.append(("Accept-Ranges", "bytes"))
        # the n-th request (from 0) of this exact target
        with self.srv.lock:
            seen = self.srv.seen.get(req["target"], 0)
            self.srv.seen[req["target"]] = seen + 1
        hdrs.append(("X-Seq", str(seen)))
        if "failfrom" in q and seen >= int(q["failfrom"]):
            status = int(q.get("failstatus", "503"))
        # conditional requests (RFC 9110 §13.1.2, §13.1.3)
        inm = (hget(req["headers"], "if-none-match") or [None])[0]
        ims = (hget(req["headers"], "if-modified-since") or [None])[0]
        if status == 200 and (("etag" in q and inm == q["etag"]) or
                              ("lm" in q and inm is None and ims == q["lm"])):
            status = 304
        body = doc_bytes(n)
        if status in (204, 304):
            self.send(self.head_bytes(status, hdrs, req["keep"]))
            return req["keep"]
        if q.get("chunked") == "1":
            self.send(self.head_bytes(status, hdrs + [("Transfer-Encoding", "chunked")],
                                      req["keep"]))
            if req["method"] != "HEAD":
                for off in range(0, len(body), 1000):
                    c = body[off:off + 1000]
                    self.send(b"%x\r\n" % len(c) + c + b"\r\n")
                self.send(b"0\r\n\r\n")
            return req["keep"]
        return self.simple(req, status, hdrs[0][1], body, hdrs[1:])

    def chunked(self, req, n):
        m = re.search(r"chunk=(\d+)", req["query"])
        size = int(m.group(1)) if m else 1000
        self.send(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                        ("Transfer-Encoding", "chunked")], req["keep"]))
        if req["method"] == "HEAD":
            return req["keep"]
        for c in pattern_chunks(n, size):
            self.send(b"%x\r\n" % len(c) + c + b"\r\n")
        self.send(b"0\r\n\r\n")
        return req["keep"]

    def stream(self, req, n):
        self.send(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                        ("Content-Length", str(n))], req["keep"]))
        if req["method"] == "HEAD":
            return req["keep"]
        sent = 0
        try:
            self.sock.settimeout(60)
            for c in pattern_chunks(n):
                self.sock.sendall(c)
                sent += len(c)
        except (OSError, ssl.SSLError) as e:
            self.srv.log.write(ev="stream", conn=self.id, sent=sent, complete=False,
                               error=str(e))
            return False
        self.srv.log.write(ev="stream", conn=self.id, sent=sent, complete=True)
        return req["keep"]


class Server:
    def __init__(self, args):
        self.log = Log(args.log)
        self.name = args.name
        self.idle_close_ms = args.idle_close_ms
        self.max_requests = args.max_requests
        self.drop_after = args.drop_after
        self.lock = threading.Lock()
        self.seen = {}  # target -> requests so far (/doc X-Seq, failfrom)
        self.tls = None
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            ctx.set_alpn_protocols(["http/1.1"])

            def sni(sslsock, name, _ctx):
                sslsock.e2e_sni = name
            ctx.sni_callback = sni
            self.tls = ctx
        fam = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((args.host, args.port))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]

    def run(self):
        while True:
            sock, peer = self.lsock.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
            Conn(self, sock, "%s:%d" % peer[:2]).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--name", default="up")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--idle-close-ms", type=int, default=0)
    ap.add_argument("--max-requests", type=int, default=0)
    ap.add_argument("--drop-after", type=int, default=0)
    args = ap.parse_args()
    srv = Server(args)
    sys.stdout.write("PORT %d\n" % srv.port)
    sys.stdout.flush()
    srv.run()


if __name__ == "__main__":
    main()
