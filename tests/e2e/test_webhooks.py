"""Outbound webhooks (CONTRACT §2 `webhooks`, §6): signed JSON deliveries
for circuit and reload events, filtered by each receiver's `events`, none
for the first load, retried with the same id, off the request path, and
overflow counted in portcullis_webhook_dropped_total."""

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helpers
from ctl_upstream import CtlUpstream, rewrite_and_reload
from helpers import request

SECRET = "whsec-e2e"


class Receiver:
    """A recording webhook receiver on 127.0.0.1; answers statuses[i] to
    the i-th delivery (200 once the list is used up)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.got = []
        self.lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rec.lock:
                    rec.got.append((self.path, dict(self.headers.items()), body))
                    st = rec.statuses.pop(0) if rec.statuses else 200
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path="/hooks/pc"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def events(self):
        with self.lock:
            return [(p, h, b, json.loads(b)) for p, h, b in self.got]

    def types(self):
        return [d["type"] for _, _, _, d in self.events()]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def check_signed(headers, body, doc):
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    h = {k.lower(): v for k, v in headers.items()}
    assert h["x-portcullis-signature"] == sig, (h, body)
    assert h["x-portcullis-event"] == doc["type"]
    assert h["x-portcullis-delivery"] == doc["id"]
    assert h["content-type"] == "application/json"
    assert set(doc) == {"id", "type", "time", "data"}, doc
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", doc["time"]), doc


def gw_config(up_url, hooks, breaker=None, **extra):
    port, admin = helpers.free_port(), helpers.free_port()
    u = helpers.upstream_conf(up_url, retries=0)
    if breaker:
        u["circuit_breaker"] = breaker
    return helpers.base_config(port, admin, {"u": u},
                               [{"name": "all", "match": {"path": "/"}, "upstream": "u"}],
                               webhooks=hooks, **extra)


def hook(url, **kw):
    d = {"url": url, "secret": SECRET, "timeout": "2s"}
    d.update(kw)
    return d


def test_circuit_events_signed_filtered_and_no_first_load_event(env):
    rcv = Receiver()
    other = Receiver()  # only config events: never sees circuit events
    up = CtlUpstream("a")
    up.status = 502
    gw = env.gateway(gw_config(up.url, [
        hook(rcv.url(), events=["circuit_open", "circuit_closed", "config_reloaded"]),
        hook(other.url("/o"), events=["config_reload_failed"]),
    ], {"failures": 2, "open_for": "1s"}))
    time.sleep(0.5)
    assert rcv.events() == [] and other.events() == []  # no first-load event
    assert request(gw.port, "GET", "/x").status == 502
    assert request(gw.port, "GET", "/x").status == 502
    helpers.wait_for(lambda: rcv.types() == ["circuit_open"], what="circuit_open")
    path, h, body, doc = rcv.events()[0]
    assert path == "/hooks/pc"
    check_signed(h, body, doc)
    assert doc["data"]["upstream"] == "u" and doc["data"]["target"] == up.url, doc
    up.status = 200
    time.sleep(1.1)
    assert request(gw.port, "GET", "/x").status == 200  # half-open probe
    helpers.wait_for(lambda: rcv.types() == ["circuit_open", "circuit_closed"],
                     what="circuit_closed")
    check_signed(*rcv.events()[1][1:])
    time.sleep(0.3)
    assert other.events() == []  # filtered; half-open never sent
    gw.stop()
    up.stop()
    rcv.close()
    other.close()


def test_reload_success_and_failure_events(env):
    rcv = Receiver()
    up = CtlUpstream("a")
    cfg = gw_config(up.url, [hook(rcv.url())])
    gw = env.gateway(cfg)
    ok, _ = rewrite_and_reload(gw, cfg)
    assert ok
    helpers.wait_for(lambda: rcv.types() == ["config_reloaded"], what="config_reloaded")
    _, h, body, doc = rcv.events()[0]
    check_signed(h, body, doc)
    assert doc["data"] == {"detail": "generation 2"}, doc
    bad = dict(cfg, workers="many")
    ok, _ = rewrite_and_reload(gw, bad)
    assert not ok
    helpers.wait_for(lambda: len(rcv.types()) == 2, what="config_reload_failed")
    _, h, body, doc = rcv.events()[1]
    check_signed(h, body, doc)
    assert doc["type"] == "config_reload_failed"
    assert "workers" in doc["data"]["error"], doc
    # /admin/config hides the secret
    r = request(gw.admin_port, "GET", "/admin/config", host="127.0.0.1")
    assert r.status == 200
    wh = r.json()["webhooks"]
    assert wh[0]["secret"] == "***" and SECRET not in r.body.decode(), wh
    gw.stop()
    up.stop()
    rcv.close()


def test_retry_keeps_the_same_id(env):
    rcv = Receiver(statuses=[500, 200])
    up = CtlUpstream("a")
    cfg = gw_config(up.url, [hook(rcv.url(), max_attempts=2)])
    gw = env.gateway(cfg)
    t0 = time.monotonic()
    ok, _ = rewrite_and_reload(gw, cfg)
    assert ok
    helpers.wait_for(lambda: len(rcv.events()) == 2, timeout=6, what="retry")
    waited = time.monotonic() - t0
    a, b = rcv.events()
    assert a[3]["id"] == b[3]["id"] and a[2] == b[2], (a, b)
    assert a[1]["X-Portcullis-Delivery"] == b[1]["X-Portcullis-Delivery"]
    assert waited >= 0.8, waited  # 1 s -20%
    time.sleep(1.5)
    assert len(rcv.events()) == 2  # 2xx ends it; max_attempts 2
    assert "attempt 1 failed (status 5xx)" in gw.stderr()
    gw.stop()
    up.stop()
    rcv.close()


def silent_listener():
    """Accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    return s


def test_dead_receivers_never_delay_requests_and_overflow_is_counted(env):
    dead = helpers.free_port()  # nothing listens there
    silent = silent_listener()
    up = CtlUpstream("a")
    cfg = gw_config(up.url, [
        hook("http://127.0.0.1:%d/" % dead),
        hook("http://127.0.0.1:%d/" % silent.getsockname()[1], timeout="10m"),
    ], limits={"shutdown_timeout": "1s"})
    gw = env.gateway(cfg, env={"PORTCULLIS_WEBHOOK_MAX_PENDING": "4"})
    bad = dict(cfg, workers="many")
    for _ in range(5):  # 5 events x 2 receivers: 4 pending, 6 dropped
        ok, _ = rewrite_and_reload(gw, bad)
        assert not ok
    worst = 0.0
    for _ in range(100):
        t = time.monotonic()
        assert request(gw.port, "GET", "/x").status == 200
        worst = max(worst, time.monotonic() - t)
    assert worst < 0.5, worst
    r = request(gw.admin_port, "GET", "/metrics", host="127.0.0.1")
    m = re.search(r"^portcullis_webhook_dropped_total (\d+)$", r.body.decode(), re.M)
    assert m and int(m.group(1)) == 6, r.body.decode()[-600:]
    t = time.monotonic()
    gw.stop()
    assert time.monotonic() - t < 4
    assert re.search(r"webhooks: shutdown_timeout reached: \d+ pending deliver",
                     gw.stderr()), gw.stderr()[-2000:]
    silent.close()
    up.stop()
