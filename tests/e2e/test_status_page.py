"""The status page on the admin listener (CONTRACT §5 `GET /`): served
self-contained with the admin token rule, its C source generated from
src/core/status.html, and, in a real headless Chromium (Debian's
`chromium`), showing live values: routes in precedence order with their
request rate, 429s and cache hit ratio, targets with health and circuit,
reloads, before and after a SIGHUP reload and a circuit opening."""

import copy
import html
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

import helpers
from helpers import request
from test_reload import Reloader, write_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def config(up, dead_port, port, admin, **extra):
    ups = {
        "a": helpers.upstream_conf(up),
        "dead": {"targets": [{"url": "http://127.0.0.1:%d" % dead_port}], "retries": 0,
                 "circuit_breaker": {"failures": 1, "open_for": "1h"}},
    }
    routes = [
        {"name": "limited", "match": {"path": "/lim"}, "upstream": "a",
         "rate_limit": {"rate": 1, "per": "1h", "burst": 1}},
        {"name": "cached", "match": {"path": "/c"}, "upstream": "a",
         "cache": {"ttl": "60s"}},
        {"name": "down", "match": {"path": "/down"}, "upstream": "dead"},
        {"name": "api", "match": {"path": "/"}, "upstream": "a"},
    ]
    return helpers.base_config(port, admin, ups, routes, workers=1, **extra)


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("status"))
    up = env.upstream("a")
    port, admin, dead = helpers.free_port(), helpers.free_port(), helpers.free_port()
    cfg = config(up, dead, port, admin)
    gw = env.gateway(cfg)
    gw.cfg, gw.dead = cfg, dead
    yield gw
    env.close()


def test_page_is_served_self_contained(sp):
    r = request(sp.admin_port, "GET", "/", host="127.0.0.1")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    csp = r.header("Content-Security-Policy")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert r.header("Cache-Control") == "no-store"
    body = r.body.decode()
    assert body.startswith("<!DOCTYPE html>")
    # no other origin: no external script, style sheet, font or image
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', body)
    assert "http://" not in body and "https://" not in body
    h = request(sp.admin_port, "HEAD", "/", host="127.0.0.1")
    assert h.status == 200 and h.body == b""
    assert request(sp.admin_port, "POST", "/", host="127.0.0.1", body=b"").status == 405


def test_page_takes_the_admin_token(tmp_path):
    env = helpers.Env(tmp_path)
    try:
        up = env.upstream("a")
        port, admin = helpers.free_port(), helpers.free_port()
        cfg = config(up, helpers.free_port(), port, admin)
        cfg["admin"]["token"] = "s3cret-token"
        gw = env.gateway(cfg)
        r = request(admin, "GET", "/", host="127.0.0.1")
        helpers.assert_error(r, 401, "unauthorized")
        r = request(admin, "GET", "/", host="127.0.0.1",
                    headers=[("Authorization", "Bearer wrong")])
        assert r.status == 401
        r = request(admin, "GET", "/", host="127.0.0.1",
                    headers=[("Authorization", "Bearer s3cret-token")])
        assert r.status == 200 and b"portcullis status" in r.body
        assert request(admin, "GET", "/healthz", host="127.0.0.1").status == 200
        gw.stop()
    finally:
        env.close()


def test_generated_source_matches_the_html(tmp_path):
    out = tmp_path / "status_page.c"
    subprocess.run([os.path.join(ROOT, "scripts", "gen-status-page.sh"),
                    os.path.join(ROOT, "src", "core", "status.html"), str(out)],
                   check=True, cwd=ROOT)
    with open(os.path.join(ROOT, "src", "core", "status_page.c")) as f:
        assert out.read_text() == f.read(), \
            "src/core/status_page.c is stale: run scripts/gen-status-page.sh"


def dump(admin_port, budget_ms=7000):
    """The page's DOM after its script ran for budget_ms of virtual time
    (network waits do not count against it)."""
    profile = tempfile.mkdtemp(prefix="pc-e2e-chromium-")
    try:
        p = run_chromium(profile, admin_port, budget_ms)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return re.sub(r"<script>.*?</script>", "", p.stdout, flags=re.S)  # the page's own code


def run_chromium(profile, admin_port, budget_ms):
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + profile,
         "--virtual-time-budget=%d" % budget_ms, "--dump-dom",
         "http://127.0.0.1:%d/" % admin_port],
        capture_output=True, text=True, timeout=90)


def cells(dom, attr, key):
    m = re.search(r'<tr data-%s="%s">(.*?)</tr>' % (attr, re.escape(html.escape(key))), dom, re.S)
    assert m, "no row %s=%s in:\n%s" % (attr, key, dom[:3000])
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), re.S)]


@pytest.mark.skipif(not CHROMIUM, reason="chromium not installed")
def test_browser_shows_live_values_and_follows_a_reload(sp):
    port = sp.port
    assert request(port, "GET", "/lim/a").status == 200
    assert request(port, "GET", "/lim/b").status == 429
    assert request(port, "GET", "/lim/c").status == 429
    assert request(port, "GET", "/c/doc/100").headers  # miss, stored
    r = request(port, "GET", "/c/doc/100")
    assert r.header("X-Cache") == "HIT"
    request(port, "GET", "/down/x")  # refused connect: the circuit opens
    assert request(port, "GET", "/down/x").status == 503

    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            request(port, "GET", "/api/busy")
            time.sleep(0.01)
    t = threading.Thread(target=traffic)
    t.start()
    try:
        dom = dump(sp.admin_port)
    finally:
        stop.set()
        t.join()

    ticks = int(re.search(r'data-ticks="(\d+)"', dom).group(1))
    assert ticks >= 2, "the page polled fewer than twice"
    names = re.findall(r'<tr data-route="([^"]+)">', dom)
    assert names == ["limited", "cached", "down", "api"]  # precedence order
    api = cells(dom, "route", "api")
    assert api[1] == "prefix /" and api[2] == "a"
    assert float(api[3]) > 0, "no request rate for the busy route: %r" % api
    assert api[5] != "–" and float(api[5]) >= 0  # a p50 over the interval
    assert cells(dom, "route", "limited")[8] == "2"  # 429s
    assert cells(dom, "route", "cached")[9] == "50.0 %"  # 1 hit of 2 lookups
    dead = cells(dom, "target", "http://127.0.0.1:%d" % sp.dead)
    assert dead[2] == "healthy" and dead[3] == "open"
    live = cells(dom, "target", sp.cfg["upstreams"]["a"]["targets"][0]["url"])
    assert live[3] == "closed"
    assert re.search(r'id="reload-count"[^>]*>0 / 0<', dom)
    assert "polyline" in dom and 'id="err"></div>' in dom

    # a reload adds a route; the page shows it and counts the reload
    cfg = copy.deepcopy(sp.cfg)
    cfg["routes"].insert(0, {"name": "added", "match": {"path": "/new"}, "upstream": "a"})
    write_config(sp, cfg)
    ok, text = Reloader(sp).reload()
    assert ok, text
    dom = dump(sp.admin_port, budget_ms=3000)
    assert re.findall(r'<tr data-route="([^"]+)">', dom)[0] == "added"
    assert re.search(r'id="reload-count"[^>]*>1 / 0<', dom)
    assert cells(dom, "target", "http://127.0.0.1:%d" % sp.dead)[3] == "open"
