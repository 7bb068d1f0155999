"""Admin listener (CONTRACT §5): /healthz, /readyz, /admin/routes in
precedence order, /admin/config with secrets masked, admin.token."""

import pytest

import helpers
from helpers import assert_error, request

TOKEN = "s3cret-admin-token"


def routes():
    # file order differs from precedence order on purpose
    return [
        {"name": "root", "match": {"path": "/"}, "upstream": "a"},
        {"name": "api", "match": {"path": "/api", "type": "prefix", "methods": ["GET", "POST"]},
         "upstream": "a"},
        {"name": "v1", "match": {"path": "/api/v1"}, "upstream": "a"},
        {"name": "x", "match": {"path": "/api/v1/x", "type": "exact"}, "upstream": "a"},
        {"name": "api_host", "match": {"path": "/api", "host": "h.test"}, "upstream": "a"},
    ]


@pytest.fixture(scope="module")
def ag(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("admin"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes())
    cfg["admin"]["token"] = "${E2E_ADMIN_TOKEN}"
    gw = env.gateway(cfg, env={"E2E_ADMIN_TOKEN": TOKEN})
    yield gw
    env.close()


def admin_get(gw, path, token=None, scheme="Bearer"):
    headers = [("Authorization", "%s %s" % (scheme, token))] if token is not None else []
    return request(gw.admin_port, "GET", path, headers=headers, host="127.0.0.1")


def test_healthz(ag):
    r = admin_get(ag, "/healthz")
    assert r.status == 200
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz(ag):
    assert admin_get(ag, "/readyz").status == 200


def test_health_endpoints_open_with_token(ag):
    assert admin_get(ag, "/healthz", token="wrong").status == 200
    assert admin_get(ag, "/readyz", token="wrong").status == 200


@pytest.mark.parametrize("path", ["/admin/routes", "/admin/config"])
def test_admin_needs_token(ag, path):
    assert_error(admin_get(ag, path), 401, "unauthorized")
    assert_error(admin_get(ag, path, token="wrong"), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN[:-1]), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN + "x"), 401, "unauthorized")
    assert_error(admin_get(ag, path, token=TOKEN, scheme="Basic"), 401, "unauthorized")
    assert admin_get(ag, path, token=TOKEN).status == 200


def test_admin_routes_in_precedence_order(ag):
    r = admin_get(ag, "/admin/routes", token=TOKEN)
    assert r.status == 200
    doc = r.json()
    got = doc["routes"]
    assert [x["name"] for x in got] == ["x", "v1", "api_host", "api", "root"], got
    by = {x["name"]: x for x in got}
    for x in got:
        assert set(x["match"]) >= {"path", "type", "methods", "host"}, x
        assert x["upstream"] == "a", x
    assert by["x"]["match"]["type"] == "exact" and by["x"]["match"]["path"] == "/api/v1/x"
    assert by["api"]["match"]["type"] == "prefix"
    assert by["api"]["match"]["methods"] == ["GET", "POST"]
    assert by["root"]["match"]["methods"] in (None, [])
    assert by["api_host"]["match"]["host"] == "h.test"
    assert by["api"]["match"]["host"] is None


def test_admin_config_masks_token(ag):
    r = admin_get(ag, "/admin/config", token=TOKEN)
    assert r.status == 200
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert TOKEN.encode() not in r.body, "admin.token leaked in /admin/config"
    doc = r.json()
    assert doc["admin"]["token"] == "***"
    assert "a" in doc["upstreams"]
    assert len(doc["routes"]) == 5


def test_admin_unknown_path_is_json_404(ag):
    r = admin_get(ag, "/admin/nope", token=TOKEN)
    assert r.status == 404
    doc = r.json()
    assert doc["status"] == 404 and isinstance(doc["error"], str)
    assert doc["request_id"] == r.header("X-Request-Id")


def test_admin_without_token_configured(env):
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    gw = env.gateway(helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)},
                                         routes()))
    r = admin_get(gw, "/admin/routes")
    assert r.status == 200 and len(r.json()["routes"]) == 5
    doc = admin_get(gw, "/admin/config").json()
    assert doc["admin"].get("token") in (None, "***")
