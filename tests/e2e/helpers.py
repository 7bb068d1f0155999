"""Harness for the end-to-end tests: the gateway process, the recording
upstream process, a raw HTTP/1.1 client, certificates and small utilities.
Standard library only; everything runs as real processes on 127.0.0.1."""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PORTCULLIS_BIN", os.path.join(ROOT, "build/san/portcullis"))
REL_BIN = os.environ.get("PORTCULLIS_REL_BIN", os.path.join(ROOT, "build/portcullis"))
PYTHON = sys.executable or "/usr/bin/python3"

SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|"
                          r"AddressSanitizer:DEADLYSIGNAL|ThreadSanitizer")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")


def abspath_bin(path):
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


# --------------------------------------------------------------------------
# small utilities


_given_ports = set()


def free_port():
    """A TCP port that was free a moment ago (bind to 0, read, close), never
    one this process handed out before: the kernel may offer a just-closed
    port again, and a listen and an admin port picked one after the other
    must differ."""
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no fresh free port")


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (enough for our configs)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, k))
            elif isinstance(v, list):
                out.append("%s%s: []\n" % (pad, k))
            else:
                out.append("%s%s: %s\n" % (pad, k, yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 2)
                out.append("%s- %s" % (pad, body[indent + 2:]))
            else:
                out.append("%s- %s\n" % (pad, yaml_scalar(v) if not isinstance(v, (dict, list))
                                         else ("{}" if isinstance(v, dict) else "[]")))
    else:
        out.append(pad + yaml_scalar(obj) + "\n")
    return "".join(out)


# --------------------------------------------------------------------------
# certificates (openssl CLI)


def openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


class Certs:
    """A test CA, and server certificates signed by it, in one directory."""

    def __init__(self, d, ca_name="e2e-ca"):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.ca_key = os.path.join(d, ca_name + ".key")
        self.ca = os.path.join(d, ca_name + ".crt")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "3",
                "-subj", "/CN=" + ca_name, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name, sans=None):
        """Returns (cert, key) for CN=name with the given SANs (DNS:/IP:)."""
        sans = sans or ["DNS:" + name]
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".crt")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % ",".join(sans))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", crt, "-days", "3", "-extfile", ext)
        return crt, key


def client_ctx(ca=None, alpn=None, min_v=None, max_v=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if min_v:
        ctx.minimum_version = min_v
    if max_v:
        ctx.maximum_version = max_v
    return ctx


# --------------------------------------------------------------------------
# raw HTTP/1.1 client


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.raw_head = headers, body, raw_head

    def header(self, name):
        v = self.all(name)
        return v[0] if v else None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r %r body=%r>" % (self.status, self.reason, self.headers,
                                                self.body[:300])


class Closed(Exception):
    """The connection closed before a complete response arrived."""


class RawConn:
    """One client connection on which exact bytes are sent and responses read."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=None, sni=None,
                 source=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=sni)
        self.buf = bytearray()
        self.timeout = timeout
        self.recv_size = 262144

    @classmethod
    def from_socket(cls, sock, timeout=10.0):
        """Wraps an already connected (possibly TLS) socket."""
        c = cls.__new__(cls)
        c.sock, c.buf, c.timeout, c.recv_size = sock, bytearray(), timeout, 262144
        sock.settimeout(timeout)
        return c

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self):
        try:
            data = self.sock.recv(self.recv_size)
        except (ConnectionResetError, ssl.SSLError) as e:
            raise Closed("reset: %s" % e)
        if not data:
            raise Closed("eof")
        self.buf += data

    def _until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[: i + len(delim)])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("response head too long")
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        raw = self._until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        assert m, "bad status line %r" % lines[0]
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            assert sep and name and name.strip() == name, "bad response header %r" % line
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode(), headers, raw

    def read_response(self, method="GET", final=True, body_sink=None):
        """Reads one response (skipping 1xx when final). The body is framed by
        Content-Length, chunked, or the connection closing."""
        while True:
            version, status, reason, headers, raw = self.read_head()
            if not (final and 100 <= status < 200):
                break
        r = Response(version, status, reason, headers, b"", raw)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        te = r.all("Transfer-Encoding")
        cl = r.all("Content-Length")
        assert not (te and cl), "response has both Content-Length and Transfer-Encoding"
        parts = []

        def add(data):
            if body_sink:
                body_sink(data)
            else:
                parts.append(data)
        if te:
            assert [t.lower() for t in te] == ["chunked"], "response TE %r" % te
            while True:
                line = self._until(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._until(b"\r\n") != b"\r\n":
                        pass
                    break
                add(self._exact(size))
                assert self._exact(2) == b"\r\n", "chunk not followed by CRLF"
        elif cl:
            assert len(set(cl)) == 1, "differing Content-Length in response %r" % cl
            left = int(cl[0])
            while left:
                if not self.buf:
                    self._fill()
                n = min(left, len(self.buf))
                add(bytes(self.buf[:n]))
                del self.buf[:n]
                left -= n
        else:
            while True:
                if self.buf:
                    add(bytes(self.buf))
                    self.buf.clear()
                try:
                    self._fill()
                except Closed:
                    break
        r.body = b"".join(parts)
        return r

    def closed_within(self, timeout=2.0):
        """True when the peer closes (EOF or RST) within timeout with no more
        data; False when data arrives or it stays open."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except ssl.SSLError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
            return False
        return True


def build_request(method, target, headers=None, body=None, version="HTTP/1.1", host="e2e.test"):
    hdrs = list(headers or [])
    names = [n.lower() for n, _ in hdrs]
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
    data = head.encode("latin-1")
    if body:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def request(port, method, target, headers=None, body=None, tls=None, sni=None,
            timeout=10.0, host="e2e.test", source=None, addr="127.0.0.1"):
    """One request on a fresh connection to addr:port; returns the Response."""
    with RawConn(port, host=addr, timeout=timeout, tls=tls, sni=sni, source=source) as c:
        c.send(build_request(method, target, headers, body, host=host))
        return c.read_response(method)


def assert_error(resp, status, code):
    """A gateway-made error of CONTRACT §4."""
    assert resp.status == status, "expected %d %s, got %r" % (status, code, resp)
    ctype = resp.header("Content-Type") or ""
    assert ctype.split(";")[0].strip().lower() == "application/json", \
        "error Content-Type %r" % ctype
    doc = json.loads(resp.body)
    assert doc.get("error") == code, doc
    assert doc.get("status") == status, doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    rid = resp.header("X-Request-Id")
    assert rid, "no X-Request-Id on %r" % resp
    assert doc.get("request_id") == rid, (doc, rid)
    return doc


# --------------------------------------------------------------------------
# the recording upstream


class Upstream:
    """tests/e2e/upstream.py in its own process, logging to a JSON-lines file."""

    def __init__(self, tmpdir, name="up", tls_cert=None, tls_key=None, idle_close_ms=0,
                 max_requests=0, drop_after=0, host="127.0.0.1"):
        self.name = name
        self.log = os.path.join(str(tmpdir), "upstream-%s-%d.jsonl" % (name, id(self)))
        open(self.log, "w").close()
        cmd = [PYTHON, os.path.join(HERE, "upstream.py"), "--log", self.log, "--name", name,
               "--host", host]
        if tls_cert:
            cmd += ["--tls-cert", tls_cert, "--tls-key", tls_key]
        if idle_close_ms:
            cmd += ["--idle-close-ms", str(idle_close_ms)]
        if max_requests:
            cmd += ["--max-requests", str(max_requests)]
        if drop_after:
            cmd += ["--drop-after", str(drop_after)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError("upstream did not start: %r %s" %
                               (line, self.proc.stderr.read().decode()))
        self.port = int(line.split()[1])
        self.scheme = "https" if tls_cert else "http"

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def events(self, ev=None):
        out = []
        with open(self.log, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    e = json.loads(line)
                    if ev is None or e["ev"] == ev:
                        out.append(e)
        return out

    def requests(self):
        return self.events("req")

    def mark(self):
        return len(self.events())

    def since(self, mark, ev=None):
        evs = self.events()[mark:]
        return [e for e in evs if ev is None or e["ev"] == ev]

    def connections(self):
        return len(self.events("conn"))

    def last_request(self):
        r = self.requests()
        assert r, "upstream %s received no request" % self.name
        return r[-1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def req_headers(ev):
    """{lower name: [values]} of a logged upstream request."""
    out = {}
    for n, v in ev["headers"]:
        out.setdefault(n.lower(), []).append(v)
    return out


# --------------------------------------------------------------------------
# the gateway


def base_config(port, admin_port, upstreams, routes, **extra):
    """A gateway config dict: one plain listener, admin, quiet access log."""
    cfg = {
        "workers": 1,
        "listen": [{"address": "127.0.0.1:%d" % port}],
        "admin": {"listen": "127.0.0.1:%d" % admin_port},
        "log": {"access": "off", "level": "info"},
        "limits": {"client_header_timeout": "5s", "shutdown_timeout": "5s"},
        "upstreams": upstreams,
        "routes": routes,
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = dict(cfg[k], **v)
        else:
            cfg[k] = v
    return cfg


def upstream_conf(*ups, **keys):
    """An upstreams entry: targets from Upstream objects or URLs."""
    targets = []
    for u in ups:
        if isinstance(u, tuple):
            u, w = u
            targets.append({"url": u if isinstance(u, str) else u.url, "weight": w})
        else:
            targets.append({"url": u if isinstance(u, str) else u.url})
    d = {"targets": targets}
    d.update(keys)
    return d


def connect_addr(address):
    """(host, port) to reach a listen address such as 0.0.0.0:80 or [::1]:80."""
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return host, int(port)


class Gateway:
    """The gateway binary on a generated config; stop() checks it exited
    cleanly and that the sanitizers reported nothing."""

    def __init__(self, tmpdir, config, binary=None, env=None, name="gw"):
        self.tmpdir = str(tmpdir)
        self.bin = abspath_bin(binary or BIN)
        self.config = config
        self.name = name
        self.conf_path = os.path.join(self.tmpdir, "%s-%d.yaml" % (name, id(self)))
        with open(self.conf_path, "w") as f:
            f.write(config if isinstance(config, str) else to_yaml(config))
        self.stderr_path = os.path.join(self.tmpdir, "%s-%d.stderr" % (name, id(self)))
        self.stdout_path = os.path.join(self.tmpdir, "%s-%d.stdout" % (name, id(self)))
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=%s:halt_on_error=1" %
                            os.environ.get("E2E_DETECT_LEAKS", "1"))
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.env.update(env or {})
        self.proc = None
        self.returncode = None
        if isinstance(config, dict):
            self.port = int(config["listen"][0]["address"].rsplit(":", 1)[1])
            self.ports = [int(l["address"].rsplit(":", 1)[1]) for l in config["listen"]]
            self.addrs = [connect_addr(l["address"]) for l in config["listen"]]
            self.admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=20.0):
        assert os.path.exists(self.bin), "gateway binary %s not built" % self.bin
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf_path], stdout=self._out,
                                     stderr=self._err, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError("gateway exited %d at start:\n%s" %
                                     (self.proc.returncode, self.stderr()))
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("gateway not ready after %.0fs:\n%s" %
                                     (timeout, self.stderr()))
            time.sleep(0.05)

    def _ready(self):
        try:
            r = request(self.admin_port, "GET", "/healthz", timeout=1.0, host="127.0.0.1")
            if r.status != 200:
                return False
            for a in self.addrs:
                socket.create_connection(a, timeout=1.0).close()
            return True
        except (OSError, Closed, AssertionError):
            return False

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        text = self.stderr()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if SANITIZER_RE.search(line):
                return "\n".join(lines[max(0, i - 3): i + 40])
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def stop(self, timeout=15.0, expect_code=0):
        """SIGTERM, wait, SIGKILL after timeout; asserts a clean exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_files()
                raise AssertionError("gateway did not exit within %.0fs of SIGTERM:\n%s" %
                                     (timeout, self.stderr()[-4000:]))
        self.returncode = self.proc.returncode
        self._close_files()
        self.check_clean(expect_code)
        return self.returncode

    def check_clean(self, expect_code=0):
        rep = self.sanitizer_report()
        assert rep is None, "sanitizer report in gateway stderr:\n" + rep
        rc = self.proc.returncode
        assert rc is not None
        assert rc >= 0, "gateway killed by signal %d:\n%s" % (-rc, self.stderr()[-4000:])
        if expect_code is not None:
            assert rc == expect_code, "gateway exit code %d (expected %d):\n%s" % (
                rc, expect_code, self.stderr()[-4000:])


def run_cli(*args, timeout=20, env=None, binary=None):
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=%s" % os.environ.get("E2E_DETECT_LEAKS", "1"))
    e.update(env or {})
    return subprocess.run([abspath_bin(binary or BIN)] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=e)


class Env:
    """Owns upstreams and gateways started for a test or a module; close()
    stops gateways first (checking each exits cleanly with a silent
    sanitizer), then upstreams (checking none received a malformed request)."""

    def __init__(self, tmpdir):
        self.tmpdir = str(tmpdir)
        self.ups = []
        self.gws = []

    def upstream(self, name="up", **kw):
        u = Upstream(self.tmpdir, name=name, **kw)
        self.ups.append(u)
        return u

    def gateway(self, config, start=True, **kw):
        g = Gateway(self.tmpdir, config, **kw)
        self.gws.append(g)
        if start:
            g.start()
        return g

    def close(self):
        errors = []
        for g in self.gws:
            try:
                if g.proc is None:
                    continue
                if g.returncode is None and g.proc.poll() is None:
                    g.stop()
                else:
                    g.kill()
                    rep = g.sanitizer_report()
                    if rep:
                        errors.append("sanitizer report in gateway stderr:\n" + rep)
            except AssertionError as e:
                errors.append(str(e))
        for u in self.ups:
            bad = u.events("bad")
            if bad:
                errors.append("malformed requests reached upstream %s: %r" % (u.name, bad))
            u.stop()
        assert not errors, "\n\n".join(errors)
