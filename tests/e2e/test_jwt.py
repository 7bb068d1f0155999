"""JWT authentication end to end (CONTRACT §2 jwt/auth, §3 step 4 and
"Sent upstream", §4 401/403; docs/jwt.md, docs/configuration.md "jwt and
auth"): every algorithm accepted, every rejection answered 401 with the
invalid_token challenge and nothing forwarded, the bare challenge for a
missing token, require_claims 403, forward_claims headers replacing any
client-sent copies, and the verified-token cache (reuse, expiry, per
provider). Tokens are minted here with openssl and hashlib (jwt_util.py)."""

import base64
import json
import os
import time

import pytest

import helpers
import jwt_util as J
from helpers import RawConn, assert_error, build_request, req_headers, request, run_cli

CHALLENGE = 'Bearer realm="portcullis"'
CHALLENGE_INVALID = 'Bearer realm="portcullis", error="invalid_token"'
ISS = "https://auth.e2e.test/"
SECRET = "e2e-hs-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"  # 64 bytes
PK_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
KID = {"RS256": "rsa-1", "RS384": "rsa-1", "RS512": "rsa-1", "PS256": "rsa-1",
       "ES256": "ec-256", "ES384": "ec-384", "EdDSA": "ed-1"}


@pytest.fixture(scope="module")
def jw(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("jwt"))
    assert len(SECRET) == 64
    keys = {"rsa": J.Key(d, "rsa", "RSA"), "ec256": J.Key(d, "ec256", "P-256"),
            "ec384": J.Key(d, "ec384", "P-384"), "ed": J.Key(d, "ed", "Ed25519"),
            "ec256_other": J.Key(d, "ec256_other", "P-256")}
    jwks = {"keys": [keys["rsa"].jwk("rsa-1"),
                     keys["rsa"].jwk("rsa-pin", alg="RS256"),
                     keys["ec256"].jwk("ec-256"),
                     keys["ec384"].jwk("ec-384"),
                     keys["ed"].jwk("ed-1")]}
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    env = helpers.Env(d)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    providers = [
        {"name": "hs", "algorithms": ["HS256", "HS384", "HS512"], "secret": SECRET,
         "forward_claims": {"sub": "X-User-Id", "scope": "X-Scope"}},
        # relative jwks_file: relative to the config file's directory
        {"name": "pk", "issuer": ISS, "audiences": ["orders-api", "billing-api"],
         "algorithms": PK_ALGS, "jwks_file": "jwks.json", "leeway": "30s",
         "forward_claims": {"sub": "X-Sub", "tenant": "X-Tenant"}},
        {"name": "rs", "algorithms": ["RS256"], "jwks_file": os.path.join(d, "jwks.json")},
    ]

    def route(name, **auth):
        r = {"name": name, "match": {"path": "/" + name}, "upstream": "a"}
        if auth:
            r["auth"] = auth
        return r
    routes = [route("hs", jwt="hs"), route("pk", jwt="pk"), route("rs", jwt="rs"),
              route("scope", jwt="hs", require_claims={"scope": "orders.read"}),
              route("roles", jwt="hs", require_claims={"roles": "admin"}),
              route("tenant", jwt="hs", require_claims={"tenant": "acme",
                                                        "scope": "orders.write"}),
              route("open")]
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                              jwt={"providers": providers})
    gw = env.gateway(cfg)
    ns = type("JW", (), {})()
    ns.gw, ns.up, ns.port, ns.keys, ns.dir, ns.cfg = gw, up, port, keys, d, cfg
    yield ns
    env.close()


# ------------------------------------------------------------------ helpers


def pk_claims(**over):
    t = J.now()
    c = {"iss": ISS, "aud": "orders-api", "sub": "user-pk", "iat": t, "nbf": t,
         "exp": t + 3600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def hs_claims(**over):
    t = J.now()
    c = {"sub": "user-hs", "iat": t, "exp": t + 3600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def pk_token(jw, alg="RS256", claims=None, kid="default", **kw):
    key = {"RS": "rsa", "PS": "rsa", "ES": "ec256" if alg == "ES256" else "ec384",
           "Ed": "ed"}[alg[:2]]
    return J.mint(alg, claims if claims is not None else pk_claims(),
                  key=jw.keys[key], kid=KID[alg] if kid == "default" else kid, **kw)


def hs_token(alg="HS256", claims=None, secret=SECRET, **kw):
    return J.mint(alg, claims if claims is not None else hs_claims(), secret=secret, **kw)


def call(jw, path, token=None, headers=(), scheme="Bearer"):
    """(response, upstream requests it caused)."""
    hdrs = list(headers)
    if token is not None:
        hdrs.append(("Authorization", "%s %s" % (scheme, token)))
    mark = jw.up.mark()
    r = request(jw.port, "GET", path, headers=hdrs)
    return r, jw.up.since(mark, "req")


def assert_invalid_token(r, evs):
    assert_error(r, 401, "unauthorized")
    assert r.all("WWW-Authenticate") == [CHALLENGE_INVALID], r
    assert evs == [], "a rejected request reached the upstream: %r" % evs


def assert_ok(r, evs, path):
    assert r.status == 200, r
    assert len(evs) == 1 and evs[0]["path"] == path, evs
    return req_headers(evs[0])


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms_accepted(jw, alg):
    r, evs = call(jw, "/hs/" + alg, hs_token(alg, hs_claims(sub="s-" + alg)))
    h = assert_ok(r, evs, "/hs/" + alg)
    assert h["x-user-id"] == ["s-" + alg]


@pytest.mark.parametrize("alg", PK_ALGS)
def test_public_key_algorithms_accepted(jw, alg):
    r, evs = call(jw, "/pk/" + alg, pk_token(jw, alg, pk_claims(sub="s-" + alg)))
    h = assert_ok(r, evs, "/pk/" + alg)
    assert h["x-sub"] == ["s-" + alg]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_token_without_kid_tries_fitting_keys(jw, alg):
    r, evs = call(jw, "/pk/nokid", pk_token(jw, alg, kid=None))
    assert_ok(r, evs, "/pk/nokid")


def test_bearer_scheme_case_insensitive(jw):
    # RFC 7235 §2.1: the auth-scheme is case-insensitive
    r, evs = call(jw, "/hs/lower", hs_token(), scheme="bearer")
    assert_ok(r, evs, "/hs/lower")


@pytest.mark.parametrize("form", ["string", "array"])
def test_audience_forms_accepted(jw, form):
    aud = "billing-api" if form == "string" else ["unrelated", "billing-api"]
    r, evs = call(jw, "/pk/aud", pk_token(jw, "ES256", pk_claims(aud=aud)))
    assert_ok(r, evs, "/pk/aud")


@pytest.mark.parametrize("claim,offset", [("exp", -10), ("nbf", 10), ("iat", 10)])
def test_within_leeway_accepted(jw, claim, offset):
    """pk has leeway 30s: exp 10 s ago, nbf and iat 10 s ahead still pass."""
    c = pk_claims(**{claim: J.now() + offset})
    r, evs = call(jw, "/pk/leeway", pk_token(jw, "ES256", c))
    assert_ok(r, evs, "/pk/leeway")


def sized_token(size):
    """An HS256 token of exactly size bytes (header and payload padded)."""
    for hpad in range(4):
        for n in range(size * 3 // 4 - 200, size):
            c = hs_claims(pad="p" * n)
            t = hs_token(claims=c, header={"x": "h" * hpad})
            if len(t) == size:
                return t
            if len(t) > size:
                break
    raise AssertionError("cannot build a token of %d bytes" % size)


def test_token_of_8192_bytes_accepted(jw):
    t = sized_token(8192)
    r, evs = call(jw, "/hs/big", t)
    assert_ok(r, evs, "/hs/big")


# ------------------------------------------------------------------ rejected


def tamper_payload(token, **over):
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims.update(over)
    return h + "." + J.b64url_json(claims) + "." + s


def flip_sig(token):
    h, p, s = token.split(".")
    i = len(s) // 2
    return h + "." + p + "." + s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def std_b64_payload(marker):
    """Claims whose standard base64 contains marker ('+' or '/'), encoded
    with the standard alphabet: invalid base64url though correctly signed."""
    for i in range(64):
        c = hs_claims(note=">?" * i)
        enc = base64.b64encode(json.dumps(c, separators=(",", ":")).encode())
        enc = enc.decode().rstrip("=")
        if marker in enc:
            return enc
    raise AssertionError("no payload with %r" % marker)


def none_token(alg, with_sig):
    h = J.b64url_json({"alg": alg, "typ": "JWT"})
    p = J.b64url_json(hs_claims())
    sig = J.b64url(J.hmac_sign("HS256", SECRET, (h + "." + p).encode())) if with_sig else ""
    return h + "." + p + "." + sig


def padded(obj):
    """obj's base64url with the '=' padding base64 would add (filler members
    make the length one that needs padding)."""
    for i in range(3):
        seg = J.b64url_json(dict(obj, f="x" * i))
        if len(seg) % 4:
            return seg + "=" * (-len(seg) % 4)
    raise AssertionError("unreachable")


def hs_parts():
    return J.b64url_json({"alg": "HS256", "typ": "JWT"}), J.b64url_json(hs_claims())


REJECTED = {
    # alg none in any letter case, with and without a signature
    "alg_none": ("/hs", lambda jw: none_token("none", False)),
    "alg_None": ("/hs", lambda jw: none_token("None", False)),
    "alg_NONE": ("/hs", lambda jw: none_token("NONE", False)),
    "alg_none_with_mac": ("/hs", lambda jw: none_token("none", True)),
    "alg_none_on_jwks": ("/pk", lambda jw: none_token("none", False)),
    # algorithms outside the provider's list
    "es256_on_rs256_provider": ("/rs", lambda jw: pk_token(jw, "ES256")),
    "ps256_on_rs256_provider": ("/rs", lambda jw: pk_token(jw, "PS256")),
    "hs256_on_jwks_provider": ("/pk", lambda jw: hs_token()),
    "rs256_on_hs_provider": ("/hs", lambda jw: pk_token(jw, "RS256")),
    "unknown_alg_name": ("/hs", lambda jw: hs_token(header={"alg": "HS257"})),
    "alg_lowercase": ("/hs", lambda jw: J.sign_segments(
        "HS256", J.b64url_json({"alg": "hs256"}), J.b64url_json(hs_claims()),
        secret=SECRET)),
    # key confusion: the RSA public key (PEM) used as an HMAC secret
    "hs256_signed_with_rsa_pem_kid": ("/pk", lambda jw: J.mint(
        "HS256", pk_claims(), secret=jw.keys["rsa"].public_pem, kid="rsa-1")),
    "hs256_signed_with_rsa_pem_nokid": ("/pk", lambda jw: J.mint(
        "HS256", pk_claims(), secret=jw.keys["rsa"].public_pem)),
    "hs256_signed_with_rsa_pem_rs": ("/rs", lambda jw: J.mint(
        "HS256", pk_claims(), secret=jw.keys["rsa"].public_pem, kid="rsa-1")),
    # a key pinned to RS256 by its JWK "alg" does not verify RS512
    "rs512_with_key_pinned_to_rs256": ("/pk", lambda jw: pk_token(jw, "RS512", kid="rsa-pin")),
    # keys
    "unknown_kid": ("/pk", lambda jw: pk_token(jw, "RS256", kid="rsa-9")),
    "kid_of_other_key_type": ("/pk", lambda jw: pk_token(jw, "ES256", kid="rsa-1")),
    "signed_by_other_ec_key": ("/pk", lambda jw: J.mint(
        "ES256", pk_claims(), key=jw.keys["ec256_other"], kid="ec-256")),
    "ecdsa_der_signature": ("/pk", lambda jw: pk_token(jw, "ES256", der=True)),
    "hs256_wrong_secret": ("/hs", lambda jw: hs_token(secret=SECRET[::-1])),
    # encoding
    "header_padded": ("/hs", lambda jw: J.sign_segments(
        "HS256", padded({"alg": "HS256", "typ": "JWT"}), hs_parts()[1], secret=SECRET)),
    "payload_padded": ("/hs", lambda jw: J.sign_segments(
        "HS256", hs_parts()[0], padded(hs_claims()), secret=SECRET)),
    "signature_padded": ("/hs", lambda jw: hs_token() + "="),
    "payload_plus": ("/hs", lambda jw: J.sign_segments(
        "HS256", hs_parts()[0], std_b64_payload("+"), secret=SECRET)),
    "payload_slash": ("/hs", lambda jw: J.sign_segments(
        "HS256", hs_parts()[0], std_b64_payload("/"), secret=SECRET)),
    "signature_plus_slash": ("/hs", lambda jw: hs_token()[:-2] + "+/"),
    "header_not_json": ("/hs", lambda jw: J.sign_segments(
        "HS256", J.b64url(b'{"alg":"HS256"'), hs_parts()[1], secret=SECRET)),
    "crit_header": ("/hs", lambda jw: hs_token(header={"crit": ["exp"]})),
    "two_segments": ("/hs", lambda jw: ".".join(hs_token().split(".")[:2])),
    "four_segments": ("/hs", lambda jw: hs_token() + "." + J.b64url(b"x")),
    "five_segments": ("/hs", lambda jw: hs_token() + ".eA.eA"),
    "garbage": ("/hs", lambda jw: "not-a-token"),
    # integrity
    "tampered_payload_hs": ("/hs", lambda jw: tamper_payload(hs_token(), sub="admin")),
    "tampered_payload_rs": ("/pk", lambda jw: tamper_payload(pk_token(jw, "RS256"),
                                                             sub="admin")),
    "tampered_payload_es": ("/pk", lambda jw: tamper_payload(pk_token(jw, "ES256"),
                                                             aud="billing-api")),
    "tampered_payload_ed": ("/pk", lambda jw: tamper_payload(pk_token(jw, "EdDSA"),
                                                             sub="admin")),
    "tampered_signature_hs": ("/hs", lambda jw: flip_sig(hs_token())),
    "tampered_signature_ps": ("/pk", lambda jw: flip_sig(pk_token(jw, "PS256"))),
    "empty_signature_hs": ("/hs", lambda jw: hs_token().rsplit(".", 1)[0] + "."),
    # time (hs: leeway 0; pk: leeway 30s)
    "expired_hs": ("/hs", lambda jw: hs_token(claims=hs_claims(exp=J.now() - 5))),
    "expired_pk_beyond_leeway": ("/pk", lambda jw: pk_token(
        jw, "ES256", pk_claims(exp=J.now() - 60))),
    "nbf_future_hs": ("/hs", lambda jw: hs_token(claims=hs_claims(nbf=J.now() + 60))),
    "nbf_future_pk": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(nbf=J.now() + 120))),
    "iat_future_hs": ("/hs", lambda jw: hs_token(claims=hs_claims(iat=J.now() + 60))),
    "iat_future_pk_beyond_leeway": ("/pk", lambda jw: pk_token(
        jw, "ES256", pk_claims(iat=J.now() + 120))),
    "exp_not_a_number": ("/hs", lambda jw: hs_token(claims=hs_claims(exp=str(J.now() + 3600)))),
    # issuer and audience (pk)
    "wrong_iss": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(iss="https://evil.e2e.test/"))),
    "iss_without_slash": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(iss=ISS[:-1]))),
    "missing_iss": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(iss=None))),
    "aud_string_mismatch": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(aud="other-api"))),
    "aud_case_differs": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(aud="Orders-Api"))),
    "aud_array_mismatch": ("/pk", lambda jw: pk_token(
        jw, "ES256", pk_claims(aud=["other-api", "orders"]))),
    "missing_aud": ("/pk", lambda jw: pk_token(jw, "ES256", pk_claims(aud=None))),
    "exp_null": ("/hs", lambda jw: hs_token(claims=dict(hs_claims(), exp=None))),
    # NumericDate fractions round towards the stricter side (docs/jwt.md)
    "exp_fraction_rounds_down": ("/hs", lambda jw: hs_token(claims=hs_claims(exp=J.now() + 0.5))),
    "nbf_fraction_rounds_up": ("/hs", lambda jw: hs_token(claims=hs_claims(nbf=J.now() + 1.5))),
    # JSON shape
    "payload_duplicate_member": ("/hs", lambda jw: J.sign_segments(
        "HS256", hs_parts()[0],
        J.b64url(b'{"sub":"user","sub":"admin","exp":%d}' % (J.now() + 600)), secret=SECRET)),
    "header_duplicate_alg": ("/hs", lambda jw: J.sign_segments(
        "HS256", J.b64url(b'{"alg":"HS256","alg":"none"}'), hs_parts()[1], secret=SECRET)),
    "payload_not_object": ("/hs", lambda jw: J.sign_segments(
        "HS256", hs_parts()[0], J.b64url(b'["sub"]'), secret=SECRET)),
    "kid_not_string": ("/pk", lambda jw: pk_token(jw, "ES256", kid=7)),
    # keys come from the configuration only, never from the token
    "embedded_jwk_ignored": ("/pk", lambda jw: J.mint(
        "ES256", pk_claims(), key=jw.keys["ec256_other"],
        header={"jwk": jw.keys["ec256_other"].jwk()})),
    # size
    "token_8193_bytes": ("/hs", lambda jw: sized_token(8193)),
    "token_12k": ("/hs", lambda jw: hs_token(claims=hs_claims(pad="p" * 9000))),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_invalid_token(jw, case):
    path, make = REJECTED[case]
    token = make(jw)
    r, evs = call(jw, path + "/" + case, token,
                  headers=[("X-User-Id", "forged"), ("X-Sub", "forged")])
    assert_invalid_token(r, evs)


def test_control_tokens_for_encoding_cases(jw):
    """The base64 cases are rejected for their encoding only: the same
    claims with the right alphabet and no padding pass."""
    h, p = hs_parts()
    r, evs = call(jw, "/hs/control", J.sign_segments("HS256", h, p, secret=SECRET))
    assert_ok(r, evs, "/hs/control")
    plus = std_b64_payload("+").replace("+", "-").replace("/", "_")
    r, evs = call(jw, "/hs/control2", J.sign_segments("HS256", h, plus, secret=SECRET))
    assert_ok(r, evs, "/hs/control2")


@pytest.mark.parametrize("auth", [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer ",
                                  "Token abc"])
def test_missing_token_plain_challenge(jw, auth):
    hdrs = [("Authorization", auth)] if auth is not None else []
    mark = jw.up.mark()
    r = request(jw.port, "GET", "/pk/x", headers=hdrs)
    assert_error(r, 401, "unauthorized")
    assert r.all("WWW-Authenticate") == [CHALLENGE], r
    assert jw.up.since(mark, "req") == []


def test_missing_token_on_post_forwards_nothing(jw):
    mark = jw.up.mark()
    r = request(jw.port, "POST", "/hs/post", body=b'{"a":1}',
                headers=[("Content-Type", "application/json")])
    assert_error(r, 401, "unauthorized")
    assert r.all("WWW-Authenticate") == [CHALLENGE], r
    assert [e for e in jw.up.since(mark) if e["ev"] in ("req", "partial")] == []


def test_missing_token_with_expect_gets_401_not_100(jw):
    """The body is not asked for when the request is refused anyway."""
    mark = jw.up.mark()
    with RawConn(jw.port, timeout=5) as c:
        c.send(build_request("POST", "/hs/expect", [("Content-Length", "10"),
                                                    ("Expect", "100-continue")]))
        r = c.read_response(final=False)
    assert_error(r, 401, "unauthorized")
    assert r.all("WWW-Authenticate") == [CHALLENGE], r
    assert [e for e in jw.up.since(mark) if e["ev"] in ("req", "partial")] == []


# ------------------------------------------------------------------ require_claims


@pytest.mark.parametrize("path,claims,ok", [
    ("/scope", {"scope": "orders.read"}, True),
    ("/scope", {"scope": "profile orders.read email"}, True),
    ("/scope", {"scope": ["email", "orders.read"]}, True),
    ("/scope", {"scope": "orders.readx"}, False),
    ("/scope", {"scope": "orders"}, False),
    ("/scope", {"scope": "orders.write profile"}, False),
    ("/scope", {"scope": ["orders.read.all"]}, False),
    ("/scope", {}, False),
    ("/roles", {"roles": ["user", "admin"]}, True),
    ("/roles", {"roles": "admin"}, True),
    ("/roles", {"roles": ["user"]}, False),
    ("/roles", {"roles": "administrator"}, False),
    ("/tenant", {"tenant": "acme", "scope": "orders.read orders.write"}, True),
    ("/tenant", {"tenant": "acme2", "scope": "orders.write"}, False),
    ("/tenant", {"tenant": "acme"}, False),
    ("/tenant", {"scope": "orders.write"}, False),
])
def test_require_claims(jw, path, claims, ok):
    r, evs = call(jw, path + "/x", hs_token(claims=hs_claims(**claims)))
    if ok:
        assert_ok(r, evs, path + "/x")
    else:
        assert_error(r, 403, "forbidden")
        assert evs == [], evs


# ------------------------------------------------------------------ forward_claims


def test_forward_claims_replace_client_copies(jw):
    forged = [("X-User-Id", "forged1"), ("x-user-id", "forged2"), ("X-USER-ID", "forged3"),
              ("X-Scope", "admin"), ("X-Other", "kept")]
    tok = hs_token(claims=hs_claims(sub="user-42", scope="orders.read profile"))
    r, evs = call(jw, "/hs/fwd", tok, headers=forged)
    h = assert_ok(r, evs, "/hs/fwd")
    assert h["x-user-id"] == ["user-42"], h
    assert h["x-scope"] == ["orders.read profile"], h
    assert h["x-other"] == ["kept"], h
    # the echo answer shows the same thing from the upstream's side
    names = [n for n, _ in r.json()["headers"]]
    assert sum(n.lower() == "x-user-id" for n in names) == 1, names


def test_forwarded_claim_absent_removes_client_copy(jw):
    tok = hs_token(claims=hs_claims(sub="user-43"))  # no scope claim
    r, evs = call(jw, "/hs/noscope", tok, headers=[("x-scope", "admin"), ("X-Scope", "root")])
    h = assert_ok(r, evs, "/hs/noscope")
    assert "x-scope" not in h, h
    assert h["x-user-id"] == ["user-43"]


def test_claim_headers_removed_on_route_without_auth(jw):
    forged = [("X-User-Id", "forged"), ("x-sub", "forged"), ("X-TENANT", "evil"),
              ("X-Scope", "admin"), ("X-Keep", "1")]
    r, evs = call(jw, "/open/x", headers=forged)
    h = assert_ok(r, evs, "/open/x")
    for name in ("x-user-id", "x-sub", "x-tenant", "x-scope"):
        assert name not in h, (name, h)
    assert h["x-keep"] == ["1"]


def test_other_providers_claim_headers_removed(jw):
    tok = pk_token(jw, "RS256", pk_claims(sub="pk-user", tenant="acme"))
    r, evs = call(jw, "/pk/cross", tok, headers=[("X-User-Id", "forged"), ("X-Tenant", "x")])
    h = assert_ok(r, evs, "/pk/cross")
    assert "x-user-id" not in h, h
    assert h["x-sub"] == ["pk-user"] and h["x-tenant"] == ["acme"], h


def test_claim_headers_removed_when_auth_fails_too(jw):
    r, evs = call(jw, "/hs/bad", "x.y.z", headers=[("X-User-Id", "forged")])
    assert_invalid_token(r, evs)


# ------------------------------------------------------------------ the cache


def test_reused_token_many_times(jw):
    tok = pk_token(jw, "RS256", pk_claims(sub="reuser"))
    mark = jw.up.mark()
    with RawConn(jw.port) as c:
        for i in range(40):
            c.send(build_request("GET", "/pk/reuse/%d" % i,
                                 [("Authorization", "Bearer " + tok)]))
            r = c.read_response()
            assert r.status == 200, (i, r)
    for i in range(10):
        r = request(jw.port, "GET", "/pk/reuse/n%d" % i, [("Authorization", "Bearer " + tok)])
        assert r.status == 200, (i, r)
    evs = jw.up.since(mark, "req")
    assert len(evs) == 50
    assert all(req_headers(e)["x-sub"] == ["reuser"] for e in evs)


def test_cached_token_for_one_provider_refused_by_another(jw):
    tok = hs_token(claims=hs_claims(sub="cache-x", iss=ISS, aud="orders-api"))
    r, evs = call(jw, "/hs/c1", tok)
    assert_ok(r, evs, "/hs/c1")
    r, evs = call(jw, "/hs/c2", tok)
    assert_ok(r, evs, "/hs/c2")
    r, evs = call(jw, "/pk/c3", tok)
    assert_invalid_token(r, evs)


def test_cached_token_refused_after_exp(jw):
    exp = J.now() + 2
    tok = hs_token(claims=hs_claims(sub="short", exp=exp))
    for i in range(3):
        r, evs = call(jw, "/hs/short/%d" % i, tok)
        assert_ok(r, evs, "/hs/short/%d" % i)
    while time.time() < exp + 0.3:
        time.sleep(0.1)
    r, evs = call(jw, "/hs/short/late", tok)
    assert_invalid_token(r, evs)
    r, evs = call(jw, "/scope/late", tok)
    assert_invalid_token(r, evs)


# ------------------------------------------------------------------ configuration


def test_jwks_provider_cannot_list_hmac(jw, tmp_path):
    """HS256 on a JWK Set provider is refused at load: a public key can never
    become an HMAC secret."""
    cfg = dict(jw.cfg)
    cfg["jwt"] = {"providers": [{"name": "mix", "algorithms": ["RS256", "HS256"],
                                 "jwks_file": os.path.join(jw.dir, "jwks.json")}]}
    cfg["routes"] = [{"name": "x", "match": {"path": "/x"}, "upstream": "a",
                      "auth": {"jwt": "mix"}}]
    path = os.path.join(str(tmp_path), "mix.yaml")
    with open(path, "w") as f:
        f.write(helpers.to_yaml(cfg))
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert any(line.startswith(path + ":") and "HS256" in line
               for line in r.stderr.splitlines()), r.stderr
