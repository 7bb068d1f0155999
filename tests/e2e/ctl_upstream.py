"""A small in-process upstream for the breaker and health-check tests, whose
behaviour the test switches while it runs: the status of its health path,
the status of everything else, and whether it listens at all (stop() closes
the listening socket and every connection; start() listens again on the
same port). It counts, from its own side, the connections it accepted and
the requests it answered, so a test can check that the gateway did not
even connect."""

import socket
import threading


class CtlUpstream:
    def __init__(self, name="ctl", health_path="/healthz"):
        self.name = name
        self.health_path = health_path
        self.status = 200          # answer to every other path
        self.health_status = 200   # answer to health_path
        self.lock = threading.Lock()
        self.conns = 0
        self.health_conns = 0      # connections whose first request was a check
        self.requests = []         # paths of non-check requests
        self.checks = 0
        self.port = 0
        self.lsock = None
        self.socks = set()
        self.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self):
        """Stops listening and closes every connection: a dead target."""
        s, self.lsock = self.lsock, None
        if s:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            socks = list(self.socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def counts(self):
        """(traffic requests, accepted connections) so far."""
        with self.lock:
            return len(self.requests), self.conns

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                self.socks.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        c.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                clen = 0
                for ln in lines[1:]:
                    k, _, v = ln.partition(":")
                    if k.strip().lower() == "content-length":
                        clen = int(v.strip())
                while len(buf) < clen:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[clen:]
                with self.lock:
                    if path == self.health_path:
                        self.checks += 1
                        st = self.health_status
                    else:
                        self.requests.append(path)
                        st = self.status
                body = ('{"upstream": "%s", "path": "%s"}' % (self.name, path)).encode()
                c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (st, len(body), body))
        except OSError:
            return
        finally:
            with self.lock:
                self.socks.discard(c)
            c.close()


def rewrite_and_reload(gw, cfg, timeout=10.0):
    """Writes cfg as gw's config file, sends SIGHUP and waits for the
    verdict line; returns (ok, the lines logged meanwhile)."""
    import os
    import re
    import signal
    import time

    import helpers

    with open(gw.stderr_path, "rb") as f:
        pos = len(f.read())
    tmp = gw.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(cfg if isinstance(cfg, str) else helpers.to_yaml(cfg))
    os.replace(tmp, gw.conf_path)
    gw.signal(signal.SIGHUP)
    done = re.compile(r"configuration reloaded \(generation (\d+)\)|reload failed")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(gw.stderr_path, "rb") as f:
            f.seek(pos)
            text = f.read().decode("utf-8", "replace")
        m = done.search(text)
        if m:
            return m.group(1) is not None, text
        time.sleep(0.01)
    raise AssertionError("no reload verdict after %.0fs" % timeout)
