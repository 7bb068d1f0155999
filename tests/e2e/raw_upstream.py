"""A scriptable raw TCP upstream for the end-to-end tests, run in-process.

RawUpstream listens on 127.0.0.1:0 in a thread. For every accepted
connection it records every byte it receives (Connection.received, appended
as the bytes arrive, before any parsing), parses the stream into requests
(strictly, with the recording upstream's parse_head: a malformed request is
recorded in Connection.bad, answered 400 and the connection closed), and
after each complete request (head and body) replies with raw bytes the test
chose, so that a test can make the upstream misbehave at the byte level.

A reply is a list of steps, run in order:
  bytes           sent as they are (sendall)
  int or float    a pause of that many seconds
  KEEP            keep the connection and read the next request (default)
  CLOSE           half-close (FIN) after the steps; the bytes the gateway
                  still sends until it closes too are recorded
  RESET           close with RST (SO_LINGER 0) after the steps
A bare bytes value means [value, KEEP]; None means the default echo.

Which reply: `replies` (a list, consumed one per request in the order the
requests arrive, over all connections), then `respond(request)` (a
callable returning a reply or None), then the default: 200 with a JSON echo
of what was received (method, target, headers, body length), framed with
Content-Length, honouring Connection: close and HTTP/1.0.

    raw = RawUpstream(respond=lambda req: [b"HTTP/1.1 200 OK\\r\\n", 0.05, RESET])
    ... gateway config with raw.url as a target ...
    raw.requests(), raw.conns(), raw.mark() / raw.since(mark) / raw.delta(mark)
    raw.close()
"""

import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from upstream import Bad, hget, parse_head  # noqa: E402

KEEP, CLOSE, RESET = "keep", "close", "reset"
MAX_HEAD = 1 << 20


class _Eof(Exception):
    pass


class Request:
    """One complete request as the upstream received it."""

    def __init__(self, conn, index, seq, head, method, target, version, headers):
        self.conn, self.index, self.seq = conn, index, seq
        self.head = head
        self.method, self.target, self.version = method, target, version
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.body = b""
        self.chunked = False
        self.trailers = []
        self.raw = b""  # every byte of the request, framing included

    def all(self, name):
        return hget(self.headers, name)

    def header(self, name):
        v = self.all(name)
        return v[0] if v else None

    def hdict(self):
        """{lower name: [values]}"""
        out = {}
        for n, v in self.headers:
            out.setdefault(n.lower(), []).append(v)
        return out

    def __repr__(self):
        return "<Request conn=%d #%d %s %s headers=%r body=%r trailers=%r>" % (
            self.conn, self.index, self.method, self.target, self.headers, self.body[:200],
            self.trailers)


class Connection:
    """What one upstream connection received. `partial` holds the raw bytes
    of a request that was still incomplete when the peer closed."""

    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.received = bytearray()
        self.requests = []
        self.partial = b""
        self.bad = None
        self.eof = False          # the gateway closed (FIN or RST) its side
        self.after_close = bytearray()  # bytes received after we sent FIN
        self.sock = None

    def __repr__(self):
        return "<Connection %d requests=%d received=%d eof=%s bad=%r partial=%r>" % (
            self.id, len(self.requests), len(self.received), self.eof, self.bad,
            self.partial[:200])


class _Reader:
    def __init__(self, up, conn, sock):
        self.up, self.conn, self.sock = up, conn, sock
        self.buf = bytearray()
        self.taken = bytearray()

    def fill(self, deadline=None):
        while True:
            if self.up._stopping:
                raise _Eof("stopping")
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if deadline is not None and time.monotonic() > deadline:
                    raise
                continue
            except OSError as e:
                raise _Eof(str(e))
            break
        with self.up._lock:
            self.conn.received += data
        if not data:
            raise _Eof("eof")
        self.buf += data

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.taken += out
        return out

    def until(self, delim, limit):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                return self._take(i + len(delim))
            if len(self.buf) > limit:
                raise Bad("line or head too long")
            self.fill()

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        return self._take(n)


def echo_reply(req, name="raw"):
    payload = json.dumps({
        "upstream": name, "conn": req.conn, "index": req.index, "method": req.method,
        "target": req.target, "path": req.path, "version": req.version,
        "headers": req.headers, "body_len": len(req.body),
    }).encode()
    conn_hdr = ",".join(req.all("Connection")).lower()
    keep = ("keep-alive" in conn_hdr) if req.version == "HTTP/1.0" else ("close" not in conn_hdr)
    head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nX-Upstream: %s\r\n%s\r\n"
            % (len(payload), name, "" if keep else "Connection: close\r\n")).encode()
    return [head + (b"" if req.method == "HEAD" else payload), KEEP if keep else CLOSE]


def response(status=200, body=b"", headers=(), reason="OK"):
    """Bytes of a simple Content-Length-framed response."""
    if isinstance(body, str):
        body = body.encode()
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    head += "Content-Length: %d\r\n\r\n" % len(body)
    return head.encode("latin-1") + body


class RawUpstream:
    def __init__(self, respond=None, replies=None, name="raw", host="127.0.0.1"):
        self.name = name
        self.respond = respond
        self.replies = list(replies or [])
        self._lock = threading.Lock()
        self._conns = []
        self._seq = 0
        self._stopping = False
        self._threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="raw-upstream-%s" % name,
                             daemon=True)
        t.start()
        self._accept_thread = t

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    # ------------------------------------------------------------ inspection

    def conns(self):
        with self._lock:
            return list(self._conns)

    def requests(self):
        with self._lock:
            out = [q for c in self._conns for q in c.requests]
        return sorted(out, key=lambda q: q.seq)

    def bad(self):
        return [c for c in self.conns() if c.bad]

    def mark(self):
        """A point in time: bytes received so far per connection, and the
        number of requests."""
        with self._lock:
            return {"bytes": {c.id: len(c.received) for c in self._conns}, "seq": self._seq}

    def since(self, mark):
        return [q for q in self.requests() if q.seq > mark["seq"]]

    def delta(self, mark):
        """[(connection, bytes it received since mark)] for connections that
        received anything since mark."""
        out = []
        with self._lock:
            for c in self._conns:
                new = bytes(c.received[mark["bytes"].get(c.id, 0):])
                if new:
                    out.append((c, new))
        return out

    def wait_request(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for q in self.requests():
                if pred(q):
                    return q
            time.sleep(0.01)
        raise AssertionError("upstream %s: no matching request within %.1fs; got %r"
                             % (self.name, timeout, self.requests()[-5:]))

    # ------------------------------------------------------------ lifecycle

    def close(self):
        self._stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.conns():
            try:
                c.sock.close()
            except (OSError, AttributeError):
                pass
        self._accept_thread.join(2)
        for t in list(self._threads):
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ------------------------------------------------------------ serving

    def _accept_loop(self):
        n = 0
        while not self._stopping:
            try:
                sock, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            n += 1
            c = Connection(n, "%s:%d" % peer[:2])
            c.sock = sock
            with self._lock:
                self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c, sock), daemon=True)
            self._threads.append(t)
            t.start()

    def _pick(self, req):
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        if self.respond is not None:
            return self.respond(req)
        return None

    def _serve(self, conn, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.25)
        rd = _Reader(self, conn, sock)
        try:
            while True:
                try:
                    req = self._read_request(conn, rd)
                except _Eof:
                    with self._lock:
                        conn.eof = True
                        conn.partial = bytes(rd.taken + rd.buf)
                    return
                except Bad as e:
                    with self._lock:
                        conn.bad = str(e)
                    self._send(sock, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                     b"Connection: close\r\n\r\n")
                    self._drain(conn, rd)
                    return
                spec = self._pick(req)
                if spec is None:
                    spec = echo_reply(req, self.name)
                elif isinstance(spec, (bytes, bytearray)):
                    spec = [bytes(spec)]
                action = KEEP
                for step in spec:
                    if isinstance(step, (bytes, bytearray)):
                        if not self._send(sock, bytes(step)):
                            action = None
                            break
                    elif isinstance(step, (int, float)) and not isinstance(step, bool):
                        time.sleep(step)
                    elif step in (KEEP, CLOSE, RESET):
                        action = step
                    else:
                        raise ValueError("bad reply step %r" % (step,))
                if action is None:
                    with self._lock:
                        conn.eof = True
                    return
                if action == RESET:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if action == CLOSE:
                    self._drain(conn, rd)
                    return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _send(self, sock, data):
        try:
            sock.settimeout(5)
            sock.sendall(data)
            return True
        except OSError:
            return False
        finally:
            try:
                sock.settimeout(0.25)
            except OSError:
                pass

    def _drain(self, conn, rd, timeout=3.0):
        """FIN our side; record what still arrives until the gateway closes."""
        try:
            rd.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        before = len(conn.received)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            try:
                rd.fill(deadline)
            except socket.timeout:
                break
            except _Eof:
                with self._lock:
                    conn.eof = True
                break
        with self._lock:
            conn.after_close += conn.received[before:]

    def _read_request(self, conn, rd):
        rd.taken = bytearray()
        # a connection that ends cleanly between requests is not a partial
        while not rd.buf:
            try:
                rd.fill()
            except _Eof:
                rd.taken = bytearray()
                raise
        head = rd.until(b"\r\n\r\n", MAX_HEAD)
        method, target, version, headers = parse_head(head)
        req = Request(conn.id, len(conn.requests) + 1, 0, head, method, target, version,
                      headers)
        te = hget(headers, "Transfer-Encoding")
        cl = hget(headers, "Content-Length")
        if te and cl:
            raise Bad("both Content-Length and Transfer-Encoding")
        body = bytearray()
        if te:
            if len(te) != 1 or te[0].lower() != "chunked":
                raise Bad("transfer-encoding %r" % te)
            req.chunked = True
            while True:
                line = rd.until(b"\r\n", 4096)
                size_s = line[:-2].split(b";", 1)[0]
                try:
                    if not size_s or size_s.strip() != size_s:
                        raise ValueError
                    size = int(size_s, 16)
                except ValueError:
                    raise Bad("chunk size %r" % line[:40])
                if size == 0:
                    while True:
                        t = rd.until(b"\r\n", 65536)
                        if t == b"\r\n":
                            break
                        name, sep, value = t[:-2].partition(b":")
                        if not sep:
                            raise Bad("trailer %r" % t[:40])
                        req.trailers.append((name.decode("latin-1"),
                                             value.strip().decode("latin-1")))
                    break
                body += rd.exact(size)
                if rd.exact(2) != b"\r\n":
                    raise Bad("chunk not followed by CRLF")
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit() or len(cl[0]) > 18:
                raise Bad("content-length %r" % cl)
            body += rd.exact(int(cl[0]))
        req.body = bytes(body)
        req.raw = bytes(rd.taken)
        with self._lock:
            self._seq += 1
            req.seq = self._seq
            conn.requests.append(req)
        return req
