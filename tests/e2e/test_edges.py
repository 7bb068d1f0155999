"""Edges of the process (issue 8, section C): running out of file
descriptors, a second instance on the same addresses, FIFOs where the
configuration names a file, and control characters in -t's messages."""

import functools
import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

import helpers
from helpers import run_cli


def write(tmp_path, text, name="gw.yaml"):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def cpu_seconds(pid):
    """User + system CPU time of every thread of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------- out of descriptors

NOFILE = 64      # the gateway uses about 15 descriptors before any client
IDLE = 100       # more idle clients than it has descriptors left


def test_out_of_fds_backs_off_quietly_and_recovers(env, monkeypatch):
    """EMFILE on accept: the worker rests instead of spinning (it sat at 100%
    CPU writing millions of "Too many open files" lines), logs at a bounded
    rate, and serves again once descriptors are free."""
    up = env.upstream()
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"u": helpers.upstream_conf(up)},
                              [{"name": "r", "match": {"path": "/"}, "upstream": "u"}],
                              limits={"client_header_timeout": "60s"})
    limit = functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    with monkeypatch.context() as m:
        m.setattr(helpers.subprocess, "Popen",
                  functools.partial(subprocess.Popen, preexec_fn=limit))
        g = env.gateway(cfg)
    idle = []
    try:
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)  # the worker has taken every descriptor it can
        err0 = os.path.getsize(g.stderr_path)
        cpu0 = cpu_seconds(g.pid)
        time.sleep(2.0)
        cpu = cpu_seconds(g.pid) - cpu0
        grew = os.path.getsize(g.stderr_path) - err0
        assert g.alive(), g.stderr()[-2000:]
        assert cpu < 0.4, "gateway used %.2fs of CPU in 2s while out of descriptors" % cpu
        assert grew < 1000, "stderr grew by %d bytes in 2s:\n%s" % (
            grew, g.stderr()[-1500:])
        emfile = [l for l in g.stderr().splitlines() if "Too many open files" in l]
        assert 1 <= len(emfile) <= 5, g.stderr()[-2000:]
        assert all("127.0.0.1:%d" % port in l for l in emfile), emfile
    finally:
        for s in idle:
            s.close()

    def served():
        try:
            r = helpers.request(port, "GET", "/after", timeout=3)
        except (OSError, helpers.Closed):
            return False
        return r.status == 200 and r
    helpers.wait_for(served, timeout=10, interval=0.2, what="a request after recovery")
    assert up.last_request()["path"] == "/after"


# ------------------------------------------------- a second instance, exit 2

def start_plain(path):
    """The gateway on path (no admin listener), once it logged "started"."""
    err = open(path + ".stderr", "wb")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    p = subprocess.Popen([helpers.abspath_bin(helpers.BIN), "-c", path],
                         stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()

    def started():
        assert p.poll() is None, open(path + ".stderr").read()
        return "started" in open(path + ".stderr").read()
    try:
        helpers.wait_for(started, timeout=20, what="the first instance to start")
    except AssertionError:
        p.kill()
        p.wait()
        raise
    return p


def stop_plain(p, path):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    text = open(path + ".stderr").read()
    assert not helpers.SANITIZER_RE.search(text), text
    return p.returncode


def test_second_instance_on_same_config_exits_2(tmp_path):
    """SO_REUSEPORT let `portcullis -c same.yaml` start twice, both "started",
    the kernel splitting the traffic; CONTRACT §1: cannot bind is exit 2."""
    port = helpers.free_port()
    path = write(tmp_path, "workers: 2\nlisten:\n  - address: 127.0.0.1:%d\n"
                           "log: {access: \"off\"}\n" % port)
    first = start_plain(path)
    try:
        r = run_cli("-c", path, timeout=10)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "127.0.0.1:%d" % port in r.stderr, r.stderr
        assert "Address already in use" in r.stderr, r.stderr
        assert "started" not in r.stderr, r.stderr
        for _ in range(6):  # every connection lands on the first instance
            helpers.assert_error(helpers.request(port, "GET", "/x", timeout=5),
                                 404, "route_not_found")
        assert first.poll() is None
    finally:
        assert stop_plain(first, path) == 0


def test_second_instance_admin_address_taken_exits_2(tmp_path):
    """Different listen addresses, the same admin address: exit 2 too."""
    p1, p2, admin = helpers.free_port(), helpers.free_port(), helpers.free_port()
    conf = ("workers: 1\nlisten:\n  - address: 127.0.0.1:%d\n"
            "admin: {listen: 127.0.0.1:%d}\nlog: {access: \"off\"}\n")
    a = write(tmp_path, conf % (p1, admin), "a.yaml")
    b = write(tmp_path, conf % (p2, admin), "b.yaml")
    first = start_plain(a)
    try:
        r = run_cli("-c", b, timeout=10)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "127.0.0.1:%d" % admin in r.stderr, r.stderr
        helpers.assert_error(helpers.request(p1, "GET", "/x", timeout=5),
                             404, "route_not_found")
    finally:
        assert stop_plain(first, a) == 0


def test_one_instance_still_spreads_over_workers(tmp_path):
    """Worker 0 binds without SO_REUSEPORT and sets it afterwards: the other
    workers' sockets still join it, and every connection is served."""
    port = helpers.free_port()
    path = write(tmp_path, "workers: 3\nlisten:\n  - address: 127.0.0.1:%d\n"
                           "log: {access: \"off\"}\n" % port)
    p = start_plain(path)
    try:
        for _ in range(30):
            helpers.assert_error(helpers.request(port, "GET", "/x", timeout=5),
                                 404, "route_not_found")
    finally:
        assert stop_plain(p, path) == 0


# ------------------------------------------------------- FIFOs in the config

def fifo(tmp_path, name):
    p = os.path.join(str(tmp_path), name)
    os.mkfifo(p)
    return p


def regular(tmp_path, name, text="x\n"):
    return write(tmp_path, text, name)


def check_fifo_error(tmp_path, text, key, path):
    """-t returns at once, exit 1, one error at the line of `key`."""
    conf = write(tmp_path, text)
    r = run_cli("-t", "-c", conf, timeout=5)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lineno = next(i + 1 for i, l in enumerate(text.splitlines())
                  if l.strip().lstrip("- ").startswith(key + ":"))
    want = re.compile(r"^%s:%d:\d+: .*'%s': not a regular file$" %
                      (re.escape(conf), lineno, re.escape(path)))
    assert any(want.match(l) for l in r.stderr.splitlines()), r.stderr


def test_fifo_as_config_file(tmp_path):
    path = fifo(tmp_path, "gw.yaml")
    r = run_cli("-t", "-c", path, timeout=5)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == ["%s: not a regular file" % path], r.stderr
    # and the same at start, not only with -t
    r = run_cli("-c", path, timeout=5)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s: not a regular file" % path in r.stderr.splitlines(), r.stderr


LISTEN_TLS = """workers: 1
listen:
  - address: 127.0.0.1:%d
    tls:
      certificates:
        - cert: %s
          key: %s
log: {access: "off"}
"""


def test_fifo_as_certificate(tmp_path):
    cert, key = fifo(tmp_path, "c.crt"), regular(tmp_path, "c.key")
    check_fifo_error(tmp_path, LISTEN_TLS % (helpers.free_port(), cert, key), "cert", cert)


def test_fifo_as_private_key(tmp_path, certs):
    cert, key = certs.localhost[0], fifo(tmp_path, "c.key")
    check_fifo_error(tmp_path, LISTEN_TLS % (helpers.free_port(), cert, key), "key", key)


def test_fifo_as_ca_file(tmp_path):
    ca = fifo(tmp_path, "ca.pem")
    text = ("workers: 1\nlisten:\n  - address: 127.0.0.1:%d\nlog: {access: \"off\"}\n"
            "upstreams:\n  u:\n    targets:\n      - url: https://127.0.0.1:1\n"
            "    ca_file: %s\n" % (helpers.free_port(), ca))
    check_fifo_error(tmp_path, text, "ca_file", ca)


def test_fifo_as_jwks_file(tmp_path):
    jwks = fifo(tmp_path, "jwks.json")
    text = ("workers: 1\nlisten:\n  - address: 127.0.0.1:%d\nlog: {access: \"off\"}\n"
            "jwt:\n  providers:\n    - name: main\n      algorithms: [RS256]\n"
            "      jwks_file: %s\n" % (helpers.free_port(), jwks))
    check_fifo_error(tmp_path, text, "jwks_file", jwks)


def test_fifo_as_json_schema(tmp_path):
    schema = fifo(tmp_path, "schema.json")
    text = ("workers: 1\nlisten:\n  - address: 127.0.0.1:%d\nlog: {access: \"off\"}\n"
            "upstreams:\n  u:\n    targets:\n      - url: http://127.0.0.1:1\n"
            "routes:\n  - match: {path: /x}\n    upstream: u\n    validate:\n"
            "      json_schema: %s\n" % (helpers.free_port(), schema))
    check_fifo_error(tmp_path, text, "json_schema", schema)


def test_device_as_jwks_file_is_not_read(tmp_path):
    """/dev/zero never ends: only regular files are read."""
    text = ("workers: 1\nlisten:\n  - address: 127.0.0.1:%d\nlog: {access: \"off\"}\n"
            "jwt:\n  providers:\n    - name: main\n      algorithms: [RS256]\n"
            "      jwks_file: /dev/zero\n" % helpers.free_port())
    check_fifo_error(tmp_path, text, "jwks_file", "/dev/zero")


# ------------------------------------------- control characters in messages

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def one_error_per_line(r, conf):
    """Every stderr line is one FILE:LINE:COL error; no raw control byte."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    raw = r.stderr
    assert not CONTROL.search(raw), repr(raw)
    lines = raw.splitlines()
    assert lines, raw
    for l in lines:
        assert re.match(r"^%s:\d+:\d+: " % re.escape(conf), l), repr(l)
    return lines


def test_control_characters_in_values_are_escaped(tmp_path):
    """YAML double-quoted escapes put ESC, CR, LF and C1 bytes in a key and a
    value: -t printed them raw, forging a second error line and colouring
    the terminal."""
    text = ('workers: "\\e[31mred\\nFAKE.yaml:9:9: forged error\\r"\n'
            'listen:\n  - address: 127.0.0.1:%d\n'
            '"k\\x1b[2J\\x9b\\tey": 1\n' % helpers.free_port())
    conf = write(tmp_path, text)
    r = run_cli("-t", "-c", conf, timeout=10)
    lines = one_error_per_line(r, conf)
    assert len(lines) == 2, lines
    assert "'\\e[31mred\\nFAKE.yaml:9:9: forged error\\r'" in lines[0], lines
    assert "'k\\e[2J\\xc2\\x9b\\tey'" in lines[1], lines


def test_control_characters_from_raw_bytes_and_env(tmp_path):
    """Raw bytes: a TAB in a plain value, ESC from ${NAME}, a newline in the
    file name; the start path prints the same messages."""
    d = os.path.join(str(tmp_path), "dir\nFAKE.yaml:1:1: forged")
    os.mkdir(d)
    text = ("workers: a\tb\nlisten:\n  - address: ${E2E_EVIL}\n")
    conf = write(d, text)
    env = {"E2E_EVIL": "\x1b[31m127.0.0.1\n:x"}
    for args in (("-t", "-c", conf), ("-c", conf)):
        r = run_cli(*args, timeout=10, env=env)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert not CONTROL.search(r.stderr), repr(r.stderr)
        shown = conf.replace("\n", "\\n")
        lines = r.stderr.splitlines()
        assert len(lines) == 2, lines
        assert all(l.startswith(shown + ":") for l in lines), lines
        assert "'a\\tb'" in lines[0], lines
        assert "\\e[31m127.0.0.1\\n:x" in lines[1], lines


def test_yaml_with_raw_control_byte_is_one_line(tmp_path):
    """A raw ESC byte is refused by the YAML reader; the message is one line."""
    conf = os.path.join(str(tmp_path), "gw.yaml")
    with open(conf, "wb") as f:
        f.write(b"workers: 1\nlisten: [{address: \"\x1b[31m\"}]\n")
    r = run_cli("-t", "-c", conf, timeout=10)
    lines = one_error_per_line(r, conf)
    assert len(lines) == 1, lines


def test_ok_line_escapes_the_file_name(tmp_path):
    d = os.path.join(str(tmp_path), "a\x1bb")
    os.mkdir(d)
    conf = write(d, "workers: 1\nlisten:\n  - address: 127.0.0.1:%d\n"
                    "log: {access: \"off\"}\n" % helpers.free_port())
    r = run_cli("-t", "-c", conf, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%s: ok\n" % conf.replace("\x1b", "\\e"), repr(r.stdout)
