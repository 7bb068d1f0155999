"""Real redis-server processes for the e2e tests (scope: cluster): each on
a random 127.0.0.1 port with persistence off, stopped by PID; a minimal
RESP client (stdlib sockets) to look at and change what they hold; a
3-master Redis Cluster made with `redis-cli --cluster create`; and a
socket that accepts connections and never answers (a stuck Redis)."""

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import helpers

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def require_redis():
    if not (os.path.exists(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
        pytest.skip("redis-server is not installed")


class RespError(Exception):
    pass


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Client:
    """One connection, one command at a time."""

    def __init__(self, port, password=None, db=0, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if password:
            self.call("AUTH", password)
        if db:
            self.call("SELECT", db)

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RespError("bad reply %r" % line)

    def call(self, *args):
        self.sock.sendall(_encode(args))
        return self._reply()


class Server:
    """redis-server on a free port (or the given one)."""

    def __init__(self, tmpdir, port=None, args=(), name="redis"):
        self.tmpdir = str(tmpdir)
        self.port = port or helpers.free_port()
        self.args = list(args)
        self.name = name
        self.proc = None
        self.log = os.path.join(self.tmpdir, "%s-%d.log" % (name, self.port))

    def start(self, timeout=10.0):
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", self.tmpdir,
               "--logfile", self.log] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
                c.sendall(_encode(["PING"]))
                data = c.recv(100)
                c.close()
                if data.startswith(b"+PONG") or data.startswith(b"-NOAUTH"):
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited %d" % self.proc.returncode)
            if time.monotonic() > deadline:
                raise AssertionError("redis-server on %d not ready" % self.port)
            time.sleep(0.05)

    def client(self, **kw):
        return Client(self.port, **kw)

    def stop(self):
        """Stops this process (by its PID) and waits for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Silent:
    """Accepts TCP connections and never answers: a stuck Redis."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cluster_port():
    """A free port p <= 55535 whose bus port p + 10000 is free too."""
    for _ in range(200):
        p = random.randint(20000, 55000)
        if _bindable(p) and _bindable(p + 10000):
            return p
    raise AssertionError("no free port pair for a cluster node")


class Cluster:
    """Three masters, no replicas, made by redis-cli --cluster create.
    full coverage is not required, so the other masters keep answering
    while one is down."""

    def __init__(self, tmpdir, n=3):
        self.tmpdir = str(tmpdir)
        self.nodes = []
        for i in range(n):
            port = cluster_port()
            self.nodes.append(Server(tmpdir, port, name="cluster%d" % i, args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(self.tmpdir, "nodes-%d.conf" % port),
                "--cluster-node-timeout", "5000",
                "--cluster-require-full-coverage", "no"]))

    def start(self):
        for s in self.nodes:
            s.start()
        p = subprocess.run([REDIS_CLI, "--cluster", "create"] +
                           ["127.0.0.1:%d" % s.port for s in self.nodes] +
                           ["--cluster-replicas", "0", "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        helpers.wait_for(self.ok, timeout=20, what="cluster state ok")
        return self

    def ok(self):
        for s in self.nodes:
            try:
                c = s.client()
                info = c.call("CLUSTER", "INFO").decode()
                c.close()
            except (OSError, RespError):
                return False
            if "cluster_state:ok" not in info:
                return False
        return True

    def node_of_slot(self, slot):
        c = self.nodes[0].client()
        slots = c.call("CLUSTER", "SLOTS")
        c.close()
        for ent in slots:
            if ent[0] <= slot <= ent[1]:
                port = ent[2][1]
                return next(s for s in self.nodes if s.port == port)
        raise AssertionError("slot %d not served" % slot)

    def node_id(self, server):
        c = server.client()
        nid = c.call("CLUSTER", "MYID").decode()
        c.close()
        return nid

    def keyslot(self, key):
        c = self.nodes[0].client()
        slot = c.call("CLUSTER", "KEYSLOT", key)
        c.close()
        return slot

    def stop(self):
        for s in self.nodes:
            s.stop()
