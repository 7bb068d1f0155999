"""Graceful stop (CONTRACT §1 signals, §5 /readyz): SIGTERM lets in-flight
requests finish, refuses new connections, reports 503 on /readyz while
draining, exits 0, and gives up at limits.shutdown_timeout."""

import signal
import socket
import threading
import time

import helpers
from helpers import RawConn, build_request, request


def start(env, shutdown_timeout, workers=2):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up, read_timeout="30s")},
                              [{"name": "all", "match": {"path": "/"}, "upstream": "a"}],
                              workers=workers, limits={"shutdown_timeout": shutdown_timeout})
    return env.gateway(cfg), up


def in_flight(gw, up, path):
    """Starts a request in a thread; returns (thread, result dict) once the
    upstream has it."""
    result = {}

    def run():
        try:
            result["r"] = request(gw.port, "GET", path, timeout=30)
        except Exception as e:  # noqa: BLE001 - reported by the test
            result["e"] = e
        result["t"] = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    helpers.wait_for(lambda: any(e["path"] == path for e in up.requests()), timeout=5,
                     what="request %s upstream" % path)
    return t, result


def refused(port):
    """True once new connections are turned away: refused, or reset when the
    SYN landed in a listener's queue just as the listener closed."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def test_sigterm_drains_in_flight(env):
    gw, up = start(env, "10s")
    idle = RawConn(gw.port)  # an idle keep-alive connection must not delay exit
    idle.send(build_request("GET", "/idle"))
    assert idle.read_response().status == 200
    t, result = in_flight(gw, up, "/sleep/2500/inflight")
    t_term = time.monotonic()
    gw.signal(signal.SIGTERM)
    helpers.wait_for(lambda: refused(gw.port), timeout=1.5, what="listener closed")
    r = request(gw.admin_port, "GET", "/readyz", host="127.0.0.1", timeout=2)
    assert r.status == 503, "/readyz while draining: %r" % r
    assert gw.alive(), "exited before the in-flight request finished"
    t.join(10)
    assert "e" not in result, result
    assert result["r"].status == 200 and result["r"].json()["path"] == "/sleep/2500/inflight"
    code = gw.wait(8)
    exit_after = time.monotonic() - t_term
    assert code == 0
    gw.check_clean()
    assert exit_after < 5.0, "exit took %.1fs with only a 2.5 s request in flight" % exit_after
    assert idle.closed_within(1)
    idle.close()


def test_shutdown_timeout_bounds_exit(env):
    gw, up = start(env, "1s")
    t, result = in_flight(gw, up, "/sleep/15000/hang")
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    code = gw.wait(10)
    elapsed = time.monotonic() - t0
    assert code == 0
    gw.check_clean()
    assert 0.8 <= elapsed <= 3.0, "exit %.1fs after SIGTERM with shutdown_timeout 1s" % elapsed
    t.join(5)
    assert "e" in result or result["r"].status >= 500, result


def test_sigint_is_graceful(env):
    gw, up = start(env, "5s", workers=1)
    assert request(gw.port, "GET", "/x").status == 200
    gw.signal(signal.SIGINT)
    assert gw.wait(10) == 0
    gw.check_clean()


def test_sigterm_idle_exits_quickly(env):
    gw, up = start(env, "10s")
    conns = []
    for i in range(20):
        c = RawConn(gw.port)
        c.send(build_request("GET", "/ka/%d" % i))
        assert c.read_response().status == 200
        conns.append(c)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.wait(10) == 0
    gw.check_clean()
    assert time.monotonic() - t0 < 3.0, "idle keep-alive connections held the stop"
    for c in conns:
        c.close()
