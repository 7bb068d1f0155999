"""CONTRACT §1: the command line, -t validation with FILE:LINE:COL errors,
and the exit codes (0 clean, 1 bad configuration, 2 runtime failure)."""

import os
import re
import socket
import subprocess

import helpers
from helpers import run_cli


def write(tmp_path, text, name="gw.yaml"):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def valid_yaml(port=None, admin=None):
    port = port or helpers.free_port()
    admin = admin or helpers.free_port()
    return ("workers: auto\n"
            "listen:\n"
            "  - address: 127.0.0.1:%d\n"
            "admin:\n"
            "  listen: 127.0.0.1:%d\n"
            "log:\n"
            "  access: \"off\"\n"
            "limits:\n"
            "  client_header_timeout: 1m30s\n"
            "  max_header_bytes: 16k\n"
            "  max_body_bytes: 1m\n"
            "  shutdown_timeout: 2s\n"
            "upstreams:\n"
            "  a:\n"
            "    targets:\n"
            "      - url: http://127.0.0.1:1\n"
            "        weight: 2\n"
            "    balance: least_conn\n"
            "    connect_timeout: 250ms\n"
            "routes:\n"
            "  - name: api\n"
            "    match:\n"
            "      path: /api/{id}\n"
            "      type: prefix\n"
            "      methods: [GET, POST]\n"
            "    upstream: a\n"
            "    strip_prefix: /api\n" % (port, admin))


def error_lines(text, path):
    """(line, col, message) of every 'FILE:LINE:COL: message' line."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^%s:(\d+):(\d+): (.+)$" % re.escape(path), line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def cols_of(text, lineno, *needles):
    """1-based columns where each needle starts on that (1-based) line."""
    line = text.splitlines()[lineno - 1]
    cols = set()
    for n in needles:
        i = line.find(n)
        assert i >= 0, (line, n)
        cols.add(i + 1)
    return cols


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0, r
    with open(os.path.join(helpers.ROOT, "VERSION")) as f:
        version = f.read().strip()
    assert version in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_help():
    r = run_cli("-h")
    assert r.returncode == 0, r
    out = r.stdout + r.stderr
    for opt in ("-c", "--config", "-t", "--test", "--version", "-h"):
        assert opt in out, (opt, out)


def test_check_valid_file(tmp_path):
    path = write(tmp_path, valid_yaml())
    r = run_cli("-t", "-c", path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "%s: ok" % path in (r.stdout + r.stderr).splitlines(), (r.stdout, r.stderr)


def test_check_long_options(tmp_path):
    path = write(tmp_path, valid_yaml())
    r = run_cli("--test", "--config", path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "%s: ok" % path in r.stdout + r.stderr


BROKEN = """workers: 1
listen:
  - address: 127.0.0.1:%d
limits:
  max_headers: lots
  bogus_key: 1
trusted_proxies: [10.0.0.0/33]
upstreams:
  a:
    targets:
      - url: http://127.0.0.1:1
routes:
  - match: {path: /api/v1}
    upstream: nope
  - match: {path: /api/v1}
    upstream: a
    strip_prefix: /other
"""


def test_check_reports_every_error(tmp_path):
    text = BROKEN % helpers.free_port()
    path = write(tmp_path, text)
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    errs = error_lines(r.stderr, path)
    assert errs, "no FILE:LINE:COL error on stderr: %r" % r.stderr
    expected = {
        5: cols_of(text, 5, "max_headers", "lots"),       # wrong type
        6: cols_of(text, 6, "bogus_key"),                 # unknown key
        7: cols_of(text, 7, "[", "10.0.0.0/33", "trusted_proxies"),  # bad CIDR
        14: cols_of(text, 14, "upstream", "nope"),        # unknown upstream
        17: cols_of(text, 17, "strip_prefix", "/other"),  # not a prefix of match.path
    }
    for line, cols in expected.items():
        hits = [e for e in errs if e[0] == line]
        assert hits, "no error reported for line %d (%s); got %r" % (
            line, text.splitlines()[line - 1].strip(), errs)
        assert any(c in cols for _, c, _ in hits), \
            "line %d: column %r not in %r" % (line, [h[1] for h in hits], sorted(cols))
    assert "ok" not in r.stdout.split()


def test_check_yaml_syntax_error_has_position(tmp_path):
    text = "workers: 1\nlisten:\n  - address: [127.0.0.1:80\nroutes: []\n"
    path = write(tmp_path, text)
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = error_lines(r.stderr, path)
    assert errs and all(e[0] >= 3 for e in errs), r.stderr


def test_check_missing_file(tmp_path):
    path = os.path.join(str(tmp_path), "absent.yaml")
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert path in r.stderr


def test_check_env_expansion(tmp_path):
    text = valid_yaml() + "  - match: {path: /x}\n    upstream: ${E2E_UPSTREAM_NAME}\n"
    path = write(tmp_path, text)
    r = run_cli("-t", "-c", path, env={"E2E_UPSTREAM_NAME": "a"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    env = {k: v for k, v in os.environ.items() if k != "E2E_UPSTREAM_NAME"}
    r = subprocess.run([helpers.abspath_bin(helpers.BIN), "-t", "-c", path],
                               capture_output=True, text=True, env=env, timeout=20)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = error_lines(r.stderr, path)
    assert any(e[0] == len(text.splitlines()) for e in errs), r.stderr
    assert "E2E_UPSTREAM_NAME" in r.stderr


def test_check_rejects_unitless_duration_and_bad_size(tmp_path):
    text = valid_yaml().replace("client_header_timeout: 1m30s", "client_header_timeout: 10") \
                       .replace("max_body_bytes: 1m", "max_body_bytes: 1q")
    path = write(tmp_path, text)
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = {e[0] for e in error_lines(r.stderr, path)}
    lineno = {l.strip().split(":")[0]: i + 1 for i, l in enumerate(text.splitlines())}
    assert lineno["client_header_timeout"] in lines, r.stderr
    assert lineno["max_body_bytes"] in lines, r.stderr


def test_check_rejects_unknown_route_key(tmp_path):
    """A misspelt security block in a route must be an error, not ignored."""
    text = valid_yaml() + "    acls:\n      deny: [0.0.0.0/0]\n"
    path = write(tmp_path, text)
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    n = len(text.splitlines())
    assert any(e[0] == n - 1 for e in error_lines(r.stderr, path)), r.stderr


def test_start_with_bad_config_exits_1(tmp_path):
    text = BROKEN % helpers.free_port()
    path = write(tmp_path, text)
    r = run_cli("-c", path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert error_lines(r.stderr, path), r.stderr


def test_cannot_bind_exits_2(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        path = write(tmp_path, valid_yaml(port=port))
        r = run_cli("-c", path)
        assert r.returncode == 2, (r.returncode, r.stderr)
    finally:
        blocker.close()


def test_admin_cannot_bind_exits_2(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        path = write(tmp_path, valid_yaml(admin=port))
        r = run_cli("-c", path)
        assert r.returncode == 2, (r.returncode, r.stderr)
    finally:
        blocker.close()
