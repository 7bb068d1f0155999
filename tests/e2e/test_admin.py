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


# ------------------------------------------------------------------ /admin/config hides ${ENV}
# (issue 7 E.18: every value that came from ${NAME} substitution, and every
# secret key, is "***"; literal non-secret values stay readable)

ENV_TOKEN = "adm-tok-7d41c0e2"
LITERAL_NOTE = "plain-literal-value-41"
LITERAL_SIG_SECRET = "literal-sig-secret-2f8e"


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("admin-env"))
    up = env.upstream("envup")
    port, admin = helpers.free_port(), helpers.free_port()
    values = {
        "E2E_ADMIN_TOKEN": ENV_TOKEN,
        "E2E_HDR_CRED": "cred-from-env-5b2f9a71",
        "E2E_BEARER": "bearer-part-c03e6d",
        "E2E_UP_URL": up.url,
        "E2E_ROUTE_PATH": "/envpath-9c1e",
        "E2E_CONNECT_TIMEOUT": "1234ms",
        "E2E_RESP_VAL": "resp-env-val-88aa",
        "E2E_JWT_SECRET": "jwt-env-secret-" + "0123456789abcdef" * 3 + "x" * 1,
        "E2E_CLAIM_HDR": "X-Env-Claim-Hdr-3a",
    }
    ups = {"envup": {"targets": [{"url": "${E2E_UP_URL}"}],
                     "connect_timeout": "${E2E_CONNECT_TIMEOUT}"}}
    routes = [
        {"name": "envroute", "match": {"path": "${E2E_ROUTE_PATH}"}, "upstream": "envup",
         "headers": {
             "request": {"set": {"X-Api-Credential": "${E2E_HDR_CRED}",
                                 "X-Client-Ident": "Bearer ${E2E_BEARER}",
                                 "X-Literal-Note": LITERAL_NOTE}},
             "response": {"set": {"X-Resp-Env": "${E2E_RESP_VAL}"}}}},
        {"name": "hook", "match": {"path": "/hook"}, "upstream": "envup",
         "verify_signature": {"secret": LITERAL_SIG_SECRET}},
        {"name": "jwtroute", "match": {"path": "/jwt"}, "upstream": "envup",
         "auth": {"jwt": "main"}},
    ]
    providers = [{"name": "main", "algorithms": ["HS256"], "secret": "${E2E_JWT_SECRET}",
                  "forward_claims": {"sub": "${E2E_CLAIM_HDR}"}}]
    cfg = helpers.base_config(port, admin, ups, routes, jwt={"providers": providers})
    cfg["admin"]["token"] = "${E2E_ADMIN_TOKEN}"
    gw = env.gateway(cfg, env=values)
    ns = type("EG", (), {})()
    ns.gw, ns.up, ns.values = gw, up, values
    yield ns
    env.close()


def test_admin_config_hides_env_values_and_secrets(eg):
    r = admin_get(eg.gw, "/admin/config", token=ENV_TOKEN)
    assert r.status == 200, r
    for name, value in eg.values.items():
        assert value.encode() not in r.body, "%s's value leaked in /admin/config" % name
    assert LITERAL_SIG_SECRET.encode() not in r.body
    doc = r.json()
    assert doc["admin"]["token"] == "***"
    up = doc["upstreams"]["envup"]
    assert up["targets"][0]["url"] == "***"
    assert up["connect_timeout"] == "***"
    assert up["read_timeout"] == "30s"  # literal/default values stay readable
    by = {x["name"]: x for x in doc["routes"]}
    env_route = by["envroute"]
    assert env_route["match"]["path"] == "***"
    assert env_route["upstream"] == "envup"
    req_set = env_route["headers"]["request"]["set"]
    assert req_set["X-Api-Credential"] == "***"
    assert req_set["X-Client-Ident"] == "***"  # "Bearer ${E2E_BEARER}": masked whole
    assert req_set["X-Literal-Note"] == LITERAL_NOTE
    assert env_route["headers"]["response"]["set"]["X-Resp-Env"] == "***"
    assert by["hook"]["verify_signature"]["secret"] == "***"
    assert by["hook"]["match"]["path"] == "/hook"
    provider = doc["jwt"]["providers"][0]
    assert provider["secret"] == "***"
    assert provider["forward_claims"]["sub"] == "***"
    assert provider["name"] == "main"


def test_env_values_still_apply(eg):
    """Masking is for the view only: the gateway uses the real values."""
    mark = eg.up.mark()
    r = request(eg.gw.port, "GET", eg.values["E2E_ROUTE_PATH"] + "/x")
    assert r.status == 200, r
    assert r.header("X-Resp-Env") == eg.values["E2E_RESP_VAL"]
    reqs = [e for e in eg.up.since(mark) if e["ev"] == "req"]
    assert len(reqs) == 1, reqs
    h = helpers.req_headers(reqs[0])
    assert h["x-api-credential"] == [eg.values["E2E_HDR_CRED"]]
    assert h["x-client-ident"] == ["Bearer " + eg.values["E2E_BEARER"]]
    assert h["x-literal-note"] == [LITERAL_NOTE]
