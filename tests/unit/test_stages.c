/* test_stages.c: the decision logic of the chain's stages (src/chain/:
 * match, validate, acl, auth, verify_signature, route) through a fake
 * request and a recording sink (fake_req.h): real configs from YAML, the
 * real stage table, no sockets. Each test runs the chain up to the proxy
 * stage and checks which stage stopped the request, with what. */
#include <criterion/criterion.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fake_req.h"
#include "jwt_mint.h"

/* ------------------------------------------------------------- helpers */

/* The run stopped at stage `name` with PC_DONE and exactly one error. */
static void assert_stopped(const pc_req *req, fake_result r, const char *name,
                           pc_errcode code)
{
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(r.reached, 0, "the request passed every stage");
    cr_assert_str_eq(r.stage, name, "stopped at '%s', not '%s'", r.stage, name);
    cr_assert_eq(r.verdict, PC_DONE);
    cr_assert_eq(rec->errors, 1, "%u errors sent", rec->errors);
    cr_assert_eq(rec->code, code, "error %d (%d), want %d", rec->code,
                 rec->status, code);
    cr_assert_eq(rec->heads, 0);
}

/* Every stage before proxy said PC_NEXT and nothing reached the sink. */
static void assert_passed(const pc_req *req, fake_result r)
{
    const fake_rec *rec = fake_rec_of(req);
    cr_assert(r.reached, "stopped at '%s' (verdict %d): %d %s", r.stage,
              r.verdict, rec->status, rec->msg);
    cr_assert_str_eq(r.stage, "proxy");
    cr_assert_eq(rec->errors + rec->heads + rec->start_bodies, 0);
    cr_assert_not_null(req->route);
}

#define ROUTE(name, path) "  - name: " name "\n    match: {path: " path "}\n    upstream: u\n"

/* ------------------------------------------------------- match and route */

static const char routes_yaml[] =
    FAKE_LISTEN FAKE_UPSTREAM
    "routes:\n"
    "  - name: orders\n"
    "    match: {path: /orders, methods: [GET, POST]}\n"
    "    upstream: u\n"
    "  - name: user\n"
    "    match: {path: \"/users/{id}\", type: exact}\n"
    "    upstream: u\n"
    "  - name: api-host\n"
    "    match: {path: /v1, host: api.example.com}\n"
    "    upstream: u\n"
    "  - name: wild-host\n"
    "    match: {path: /v1, host: \"*.example.com\"}\n"
    "    upstream: u\n"
    "  - name: tenant-only\n"
    "    match: {path: /t, host: \"*.tenant.test\"}\n"
    "    upstream: u\n"
    "  - name: any-host\n"
    "    match: {path: /v1}\n"
    "    upstream: u\n";

Test(stages, route_not_found_is_404_from_route_stage)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "GET", "/nowhere", "gw.test");
    fake_result r = fake_run(req);
    assert_stopped(req, r, "route", PC_ERR_ROUTE_NOT_FOUND);
    cr_assert_eq(fake_rec_of(req)->status, 404);
    cr_assert(fake_rec_of(req)->msg_null, "404 uses the table's message");
    cr_assert_null(req->route);
    cr_assert_eq(req->match_status, PC_TRIE_NOT_FOUND);
    /* match, validate, acl, auth, verify_signature said NEXT first */
    cr_assert_eq(r.nrun, fake_stage_index("route") + 1);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, wrong_method_is_405_with_allow_mask)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "DELETE", "/orders/7", "gw.test");
    fake_result r = fake_run(req);
    assert_stopped(req, r, "route", PC_ERR_METHOD_NOT_ALLOWED);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->status, 405);
    cr_assert_eq(rec->allow, PC_M_GET | PC_M_POST, "allow mask %#x", rec->allow);
    char allow[64];
    cr_assert_str_eq(pc_methods_format(rec->allow, allow, sizeof allow),
                     "GET, POST");
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, prefix_route_matches_and_reaches_proxy)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "POST", "/orders/7/items?x=1", "gw.test");
    fake_result r = fake_run(req);
    assert_passed(req, r);
    cr_assert_str_eq(req->route->name, "orders");
    cr_assert_str_eq(req->query, "x=1");
    for (unsigned i = 0; i < r.nrun; i++)
        cr_assert_eq(r.verdicts[i], PC_NEXT, "stage %s", fake_stage_name(i));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, prefix_route_respects_segment_boundary)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "GET", "/ordersx", "gw.test");
    assert_stopped(req, fake_run(req), "route", PC_ERR_ROUTE_NOT_FOUND);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, exact_route_captures_param)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "GET", "/users/42", "gw.test");
    assert_passed(req, fake_run(req));
    cr_assert_str_eq(req->route->name, "user");
    cr_assert_eq(req->match.nparams, 1);
    cr_assert_eq(req->match.params[0].len, 2);
    cr_assert_eq(memcmp(req->path + req->match.params[0].off, "42", 2), 0);
    fake_req_free(req);

    /* exact: a longer path is another path */
    req = fake_req_new(e, "GET", "/users/42/x", "gw.test");
    assert_stopped(req, fake_run(req), "route", PC_ERR_ROUTE_NOT_FOUND);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, host_routes_exact_wildcard_and_hostless)
{
    static const struct {
        const char *host, *route;
    } cases[] = {
        {"api.example.com", "api-host"},
        {"API.Example.COM:8443", "api-host"}, /* case and port ignored */
        {"eu.example.com", "wild-host"},
        {"a.b.example.com", "wild-host"},
        {"example.com", "any-host"},          /* "*." needs a label */
        {"other.test", "any-host"},
    };
    fake_env *e = fake_env_from_yaml(routes_yaml);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pc_req *req = fake_req_new(e, "GET", "/v1/things", cases[i].host);
        assert_passed(req, fake_run(req));
        cr_assert_str_eq(req->route->name, cases[i].route, "host %s",
                         cases[i].host);
        fake_req_free(req);
    }
    fake_env_free(e);
}

Test(stages, host_only_route_is_404_for_other_hosts)
{
    fake_env *e = fake_env_from_yaml(routes_yaml);
    pc_req *req = fake_req_new(e, "GET", "/t/x", "acme.tenant.test");
    assert_passed(req, fake_run(req));
    cr_assert_str_eq(req->route->name, "tenant-only");
    fake_req_free(req);

    req = fake_req_new(e, "GET", "/t/x", "tenant.test");
    assert_stopped(req, fake_run(req), "route", PC_ERR_ROUTE_NOT_FOUND);
    fake_req_free(req);

    /* HTTP/1.0 without Host: only host-less routes */
    req = fake_req_new(e, "GET", "/t/x", NULL);
    assert_stopped(req, fake_run(req), "route", PC_ERR_ROUTE_NOT_FOUND);
    fake_req_free(req);
    fake_env_free(e);
}

/* -------------------------------------------------------------- validate */

static const char schema_json[] =
    "{\"type\": \"object\", \"required\": [\"id\"],"
    " \"properties\": {\"id\": {\"type\": \"integer\"}}}";

static const char validate_yaml[] =
    FAKE_LISTEN FAKE_UPSTREAM
    "validate: {content_types: [text/plain]}\n"
    "routes:\n"
    "  - name: json\n"
    "    match: {path: /json}\n"
    "    upstream: u\n"
    "    validate:\n"
    "      max_body_bytes: 100\n"
    "      content_types: [application/json, \"text/*\"]\n"
    "  - name: schema\n"
    "    match: {path: /schema}\n"
    "    upstream: u\n"
    "    validate: {content_types: [application/json], json_schema: order.json}\n"
    ROUTE("plain", "/plain");

static fake_env *validate_env(void)
{
    fake_env *e = fake_env_new();
    fake_env_write(e, "order.json", schema_json);
    fake_env_load(e, validate_yaml);
    return e;
}

Test(stages, validate_413_when_content_length_over_route_limit)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_content_length(req, 101);
    fake_header(req, "Content-Type", "application/json");
    assert_stopped(req, fake_run(req), "validate", PC_ERR_PAYLOAD_TOO_LARGE);
    cr_assert_eq(fake_rec_of(req)->status, 413);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_at_limit_passes_and_lowers_max_body)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    cr_assert_eq(req->max_body, 1024 * 1024, "limits.max_body_bytes default");
    fake_content_length(req, 100);
    fake_header(req, "Content-Type", "application/json");
    assert_passed(req, fake_run(req));
    cr_assert_eq(req->max_body, 100, "a streamed body is held to the route's limit");
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_413_answers_before_415)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_content_length(req, 5000);
    fake_header(req, "Content-Type", "application/xml");
    assert_stopped(req, fake_run(req), "validate", PC_ERR_PAYLOAD_TOO_LARGE);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_415_without_content_type)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_content_length(req, 2);
    assert_stopped(req, fake_run(req), "validate", PC_ERR_UNSUPPORTED_MEDIA_TYPE);
    cr_assert_eq(fake_rec_of(req)->status, 415);
    cr_assert_str_eq(fake_rec_of(req)->msg, "a request body needs a Content-Type");
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_415_on_wrong_content_type)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_content_length(req, 2);
    fake_header(req, "Content-Type", "application/xml; charset=utf-8");
    assert_stopped(req, fake_run(req), "validate", PC_ERR_UNSUPPORTED_MEDIA_TYPE);
    cr_assert(strstr(fake_rec_of(req)->msg, "application/xml"), "msg: %s",
              fake_rec_of(req)->msg);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_chunked_body_needs_content_type)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_chunked(req);
    assert_stopped(req, fake_run(req), "validate", PC_ERR_UNSUPPORTED_MEDIA_TYPE);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_type_ignores_case_parameters_and_takes_wildcards)
{
    static const char *const ok[] = {"Application/JSON; charset=utf-8",
                                      " application/json ", "text/csv",
                                      "TEXT/Plain;q=1"};
    fake_env *e = validate_env();
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        pc_req *req = fake_req_new(e, "PUT", "/json", "gw.test");
        fake_content_length(req, 2);
        fake_header(req, "Content-Type", ok[i]);
        assert_passed(req, fake_run(req));
        fake_req_free(req);
    }
    /* a wildcard names a whole type: "text" is not a prefix of "textual" */
    pc_req *req = fake_req_new(e, "PUT", "/json", "gw.test");
    fake_content_length(req, 2);
    fake_header(req, "Content-Type", "textual/csv");
    assert_stopped(req, fake_run(req), "validate", PC_ERR_UNSUPPORTED_MEDIA_TYPE);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_bodyless_get_passes_without_content_type)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "GET", "/json", "gw.test");
    assert_passed(req, fake_run(req));
    fake_req_free(req);

    /* Content-Length: 0 is no body either */
    req = fake_req_new(e, "POST", "/json", "gw.test");
    fake_content_length(req, 0);
    assert_passed(req, fake_run(req));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_global_block_applies_where_route_has_none)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/plain", "gw.test");
    fake_content_length(req, 2);
    fake_header(req, "Content-Type", "application/json");
    assert_stopped(req, fake_run(req), "validate", PC_ERR_UNSUPPORTED_MEDIA_TYPE);
    fake_req_free(req);

    req = fake_req_new(e, "POST", "/plain", "gw.test");
    fake_content_length(req, 2);
    fake_header(req, "Content-Type", "text/plain");
    assert_passed(req, fake_run(req));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_schema_checks_buffered_body)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/schema", "gw.test");
    fake_header(req, "Content-Type", "application/json");
    fake_body(req, "{\"id\": \"x\"}", 11);
    assert_stopped(req, fake_run(req), "validate", PC_ERR_INVALID_BODY);
    cr_assert(strstr(fake_rec_of(req)->msg, "/id"), "msg: %s",
              fake_rec_of(req)->msg);
    fake_req_free(req);

    req = fake_req_new(e, "POST", "/schema", "gw.test");
    fake_header(req, "Content-Type", "application/json");
    fake_body(req, "{\"id\": 7}", 9);
    assert_passed(req, fake_run(req));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, validate_schema_waits_for_unbuffered_body)
{
    fake_env *e = validate_env();
    pc_req *req = fake_req_new(e, "POST", "/schema", "gw.test");
    fake_header(req, "Content-Type", "application/json");
    fake_content_length(req, 8);
    fake_result r = fake_run(req);
    cr_assert_str_eq(r.stage, "validate");
    cr_assert_eq(r.verdict, PC_WAIT);
    cr_assert_eq(fake_rec_of(req)->start_bodies, 1, "the body was not asked for");
    cr_assert_eq(fake_rec_of(req)->errors, 0);
    /* An invalid body answers from the callback; the chain never resumes. */
    fake_feed_body(req, "not json", 8);
    cr_assert_eq(fake_rec_of(req)->errors, 1);
    cr_assert_eq(fake_rec_of(req)->code, PC_ERR_INVALID_BODY);
    cr_assert_null(req->handler, "the buffering handler is gone");
    fake_req_free(req);
    fake_env_free(e);
}

/* ------------------------------------------------------------------- acl */

static const char acl_yaml[] =
    FAKE_LISTEN FAKE_UPSTREAM
    "trusted_proxies: [10.0.0.0/8]\n"
    "acl: {deny: [198.51.100.0/24]}\n"
    "routes:\n"
    "  - name: inner\n"
    "    match: {path: /inner}\n"
    "    upstream: u\n"
    "    acl: {allow: [10.0.0.0/8, \"2001:db8::/32\"], deny: [10.9.0.0/16]}\n"
    "  - name: public\n"
    "    match: {path: /public}\n"
    "    upstream: u\n"
    "  - name: opened\n"
    "    match: {path: /opened}\n"
    "    upstream: u\n"
    "    acl: {allow: [198.51.100.0/24]}\n";

/* GET path from peer (and client, when the peer is a proxy); returns the
 * status the acl stage answered, or 0 when every stage passed. */
static int acl_status(fake_env *e, const char *path, const char *peer,
                      const char *client)
{
    pc_req *req = fake_req_new(e, "GET", path, "gw.test");
    fake_peer(req, peer);
    if (client)
        fake_client(req, client);
    fake_result r = fake_run(req);
    int status = r.reached ? 0 : fake_rec_of(req)->status;
    if (!r.reached)
        cr_assert_str_eq(r.stage, "acl", "%s answered %d", r.stage, status);
    fake_req_free(req);
    return status;
}

Test(stages, acl_allow_list_admits_only_its_blocks)
{
    fake_env *e = fake_env_from_yaml(acl_yaml);
    cr_assert_eq(acl_status(e, "/inner", "10.1.2.3", NULL), 0);
    cr_assert_eq(acl_status(e, "/inner", "2001:db8::5", NULL), 0);
    cr_assert_eq(acl_status(e, "/inner", "192.0.2.10", NULL), 403);
    cr_assert_eq(acl_status(e, "/inner", "2001:db9::5", NULL), 403);
    fake_env_free(e);
}

Test(stages, acl_deny_wins_over_allow)
{
    fake_env *e = fake_env_from_yaml(acl_yaml);
    pc_req *req = fake_req_new(e, "GET", "/inner", "gw.test");
    fake_peer(req, "10.9.8.7"); /* inside both allow 10/8 and deny 10.9/16 */
    assert_stopped(req, fake_run(req), "acl", PC_ERR_FORBIDDEN);
    cr_assert_str_eq(fake_rec_of(req)->msg, "access denied for 10.9.8.7");
    cr_assert_null(fake_resp_header(req, "WWW-Authenticate"));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, acl_route_block_replaces_global)
{
    fake_env *e = fake_env_from_yaml(acl_yaml);
    /* global deny 198.51.100.0/24 applies to a route without acl... */
    cr_assert_eq(acl_status(e, "/public", "198.51.100.4", NULL), 403);
    cr_assert_eq(acl_status(e, "/public", "192.0.2.10", NULL), 0);
    /* ...and not to one with its own block (replaced, not merged) */
    cr_assert_eq(acl_status(e, "/opened", "198.51.100.4", NULL), 0);
    fake_env_free(e);
}

Test(stages, acl_global_block_answers_before_404)
{
    fake_env *e = fake_env_from_yaml(acl_yaml);
    pc_req *req = fake_req_new(e, "GET", "/no/such/route", "gw.test");
    fake_peer(req, "198.51.100.4");
    assert_stopped(req, fake_run(req), "acl", PC_ERR_FORBIDDEN);
    fake_req_free(req);
    fake_env_free(e);
}

/* The client address is what front/request.c derives from X-Forwarded-For
 * when the peer is in trusted_proxies (fake_client stands for that step,
 * which is static there); acl must judge the client, never the proxy. */
Test(stages, acl_judges_forwarded_client_not_trusted_proxy)
{
    fake_env *e = fake_env_from_yaml(acl_yaml);
    pc_req *req = fake_req_new(e, "GET", "/inner", "gw.test");
    fake_peer(req, "10.0.0.5");
    fake_header(req, "X-Forwarded-For", "203.0.113.7");
    fake_client(req, "203.0.113.7");
    assert_stopped(req, fake_run(req), "acl", PC_ERR_FORBIDDEN);
    cr_assert_str_eq(fake_rec_of(req)->msg, "access denied for 203.0.113.7");
    fake_req_free(req);

    /* the other way round: a denied proxy forwarding an allowed client */
    cr_assert_eq(acl_status(e, "/public", "198.51.100.1", "192.0.2.44"), 0);
    cr_assert_eq(acl_status(e, "/public", "10.0.0.5", "198.51.100.9"), 403);
    fake_env_free(e);
}

/* ------------------------------------------------------------------ auth */

#define JWT_SECRET "0123456789abcdef0123456789abcdef-test"

static const char auth_yaml[] =
    FAKE_LISTEN FAKE_UPSTREAM
    "jwt:\n"
    "  providers:\n"
    "    - name: main\n"
    "      issuer: https://issuer.test/\n"
    "      algorithms: [HS256]\n"
    "      secret: \"" JWT_SECRET "\"\n"
    "      forward_claims: {sub: X-User-Id, scope: X-Scope, n: X-Num}\n"
    "    - name: other\n"
    "      algorithms: [HS256]\n"
    "      secret: \"" JWT_SECRET "-other\"\n"
    "      forward_claims: {tenant: X-Tenant}\n"
    "routes:\n"
    "  - name: private\n"
    "    match: {path: /private}\n"
    "    upstream: u\n"
    "    auth: {jwt: main}\n"
    "  - name: admin\n"
    "    match: {path: /admin}\n"
    "    upstream: u\n"
    "    auth: {jwt: main, require_claims: {scope: admin}}\n"
    "  - name: writer\n"
    "    match: {path: /writer}\n"
    "    upstream: u\n"
    "    auth: {jwt: main, require_claims: {scope: write}}\n"
    ROUTE("open", "/open");

static const char *const CHALLENGE = "Bearer realm=\"portcullis\"";

/* An HS256 token for the "main" provider (or with another secret). */
static char *token(const char *secret, const char *claims_fmt, long long exp)
{
    char payload[512];
    snprintf(payload, sizeof payload, claims_fmt, exp);
    signer s = {.alg = PC_JWT_HS256,
                .secret = (const unsigned char *)secret,
                .secret_len = strlen(secret)};
    return mint(&s, NULL, payload);
}

static const char std_claims[] =
    "{\"iss\":\"https://issuer.test/\",\"sub\":\"alice\","
    "\"scope\":\"read write\",\"n\":42,\"exp\":%lld}";

static pc_req *auth_req(fake_env *e, const char *path, const char *authz)
{
    pc_req *req = fake_req_new(e, "GET", path, "gw.test");
    if (authz)
        fake_header(req, "Authorization", authz);
    return req;
}

static void bearer(char *buf, size_t len, const char *tok)
{
    snprintf(buf, len, "Bearer %s", tok);
}

Test(stages, auth_without_token_is_401_with_challenge)
{
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/private", NULL);
    assert_stopped(req, fake_run(req), "auth", PC_ERR_UNAUTHORIZED);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->status, 401);
    cr_assert_not_null(fake_resp_header(req, "WWW-Authenticate"));
    cr_assert_str_eq(fake_resp_header(req, "WWW-Authenticate"), CHALLENGE);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, auth_other_scheme_or_empty_bearer_is_401)
{
    static const char *const bad[] = {"Basic YWxpY2U6cHc=", "Bearer ",
                                      "Bearer    ", "Bearerx abc"};
    fake_env *e = fake_env_from_yaml(auth_yaml);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_req *req = auth_req(e, "/private", bad[i]);
        assert_stopped(req, fake_run(req), "auth", PC_ERR_UNAUTHORIZED);
        cr_assert_str_eq(fake_resp_header(req, "WWW-Authenticate"), CHALLENGE, "'%s'",
                         bad[i]);
        fake_req_free(req);
    }
    fake_env_free(e);
}

Test(stages, auth_malformed_token_is_401_invalid_token)
{
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/private", "Bearer not-a.jwt");
    assert_stopped(req, fake_run(req), "auth", PC_ERR_UNAUTHORIZED);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_not_null(fake_resp_header(req, "WWW-Authenticate"));
    cr_assert_str_eq(fake_resp_header(req, "WWW-Authenticate"),
                     "Bearer realm=\"portcullis\", error=\"invalid_token\"");
    cr_assert_str_eq(rec->msg, pc_jwt_status_message(PC_JWT_MALFORMED));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, auth_wrong_key_expired_or_wrong_issuer_is_401)
{
    long long now = (long long)time(NULL);
    struct {
        char *tok;
        pc_jwt_status want;
    } cases[] = {
        {token(JWT_SECRET "-other", std_claims, now + 600), PC_JWT_BAD_SIGNATURE},
        {token(JWT_SECRET, std_claims, now - 600), PC_JWT_EXPIRED},
        {token(JWT_SECRET, "{\"iss\":\"https://evil.test/\",\"exp\":%lld}",
               now + 600),
         PC_JWT_BAD_ISSUER},
    };
    fake_env *e = fake_env_from_yaml(auth_yaml);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char h[1024];
        bearer(h, sizeof h, cases[i].tok);
        pc_req *req = auth_req(e, "/private", h);
        assert_stopped(req, fake_run(req), "auth", PC_ERR_UNAUTHORIZED);
        cr_assert(strstr(fake_resp_header(req, "WWW-Authenticate"), "invalid_token"));
        cr_assert_str_eq(fake_rec_of(req)->msg,
                         pc_jwt_status_message(cases[i].want), "case %zu", i);
        cr_assert_null(req->user);
        fake_req_free(req);
        free(cases[i].tok);
    }
    fake_env_free(e);
}

Test(stages, auth_valid_token_passes_and_forwards_claims)
{
    char *tok = token(JWT_SECRET, std_claims, (long long)time(NULL) + 600);
    char h[1024];
    bearer(h, sizeof h, tok);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/private", h);
    assert_passed(req, fake_run(req));
    cr_assert_str_eq(req->route->name, "private");
    const char *uid = fake_forwarded_header(req, "X-User-Id");
    cr_assert_not_null(uid, "the sub claim was not forwarded");
    cr_assert_str_eq(uid, "alice");
    cr_assert_str_eq(fake_forwarded_header(req, "X-Scope"), "read write");
    cr_assert_str_eq(fake_forwarded_header(req, "X-Num"), "42");
    cr_assert_null(fake_forwarded_header(req, "X-Tenant"), "absent claim");
    cr_assert_str_eq(req->user, "alice");
    /* what the upstream gets */
    cr_assert_str_eq(fake_upstream_header(req, "X-User-Id"), "alice");
    cr_assert_eq(fake_upstream_count(req, "X-User-Id"), 1);
    fake_req_free(req);
    fake_env_free(e);
    free(tok);
}

Test(stages, auth_cached_token_still_forwards_claims)
{
    char *tok = token(JWT_SECRET, std_claims, (long long)time(NULL) + 600);
    char h[1024];
    bearer(h, sizeof h, tok);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    for (int round = 0; round < 2; round++) { /* verify, then a cache hit */
        pc_req *req = auth_req(e, "/private", h);
        assert_passed(req, fake_run(req));
        cr_assert_str_eq(fake_forwarded_header(req, "X-User-Id"), "alice",
                         "round %d", round);
        cr_assert_str_eq(req->user, "alice", "round %d", round);
        fake_req_free(req);
    }
    /* a cached token is not a pass for a route that requires more */
    pc_req *req = auth_req(e, "/admin", h);
    assert_stopped(req, fake_run(req), "auth", PC_ERR_FORBIDDEN);
    fake_req_free(req);
    fake_env_free(e);
    free(tok);
}

Test(stages, auth_require_claims_failing_is_403)
{
    char *tok = token(JWT_SECRET, std_claims, (long long)time(NULL) + 600);
    char h[1024];
    bearer(h, sizeof h, tok);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/admin", h);
    assert_stopped(req, fake_run(req), "auth", PC_ERR_FORBIDDEN);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->status, 403);
    cr_assert_null(fake_resp_header(req, "WWW-Authenticate"), "403 carries no challenge");
    cr_assert(strstr(rec->msg, "scope"), "msg: %s", rec->msg);
    cr_assert_null(fake_forwarded_header(req, "X-User-Id"),
                   "claims forwarded on a refused request");
    fake_req_free(req);
    fake_env_free(e);
    free(tok);
}

Test(stages, auth_require_claims_matches_space_separated_and_arrays)
{
    long long exp = (long long)time(NULL) + 600;
    char *spaced = token(JWT_SECRET, std_claims, exp);
    char *array = token(JWT_SECRET,
                        "{\"iss\":\"https://issuer.test/\",\"sub\":\"bob\","
                        "\"scope\":[\"read\",\"write\"],\"exp\":%lld}",
                        exp);
    char *partial = token(JWT_SECRET,
                          "{\"iss\":\"https://issuer.test/\",\"sub\":\"eve\","
                          "\"scope\":\"writer rewrite\",\"exp\":%lld}",
                          exp);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    char h[1024];

    bearer(h, sizeof h, spaced);
    pc_req *req = auth_req(e, "/writer", h);
    assert_passed(req, fake_run(req));
    fake_req_free(req);

    bearer(h, sizeof h, array);
    req = auth_req(e, "/writer", h);
    assert_passed(req, fake_run(req));
    fake_req_free(req);

    /* a word containing "write" is not "write" */
    bearer(h, sizeof h, partial);
    req = auth_req(e, "/writer", h);
    assert_stopped(req, fake_run(req), "auth", PC_ERR_FORBIDDEN);
    fake_req_free(req);

    fake_env_free(e);
    free(spaced);
    free(array);
    free(partial);
}

Test(stages, auth_client_claim_headers_removed_on_route_without_auth)
{
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/open", NULL);
    fake_header(req, "X-User-Id", "admin");
    fake_header(req, "x-user-id", "root");
    fake_header(req, "X-Tenant", "acme"); /* another provider's header */
    fake_header(req, "X-Other", "kept");
    assert_passed(req, fake_run(req));
    cr_assert_eq(pc_headers_count(&req->headers, "X-User-Id"), 0);
    cr_assert_eq(pc_headers_count(&req->headers, "X-Tenant"), 0);
    cr_assert_eq(fake_upstream_count(req, "X-User-Id"), 0);
    cr_assert_eq(fake_upstream_count(req, "X-Tenant"), 0);
    cr_assert_str_eq(fake_upstream_header(req, "X-Other"), "kept");
    cr_assert_null(req->user);
    fake_req_free(req);

    /* also when the request is answered later (404): nothing to forward,
     * but the auth stage ran before route */
    req = auth_req(e, "/missing", NULL);
    fake_header(req, "X-User-Id", "admin");
    assert_stopped(req, fake_run(req), "route", PC_ERR_ROUTE_NOT_FOUND);
    cr_assert_eq(pc_headers_count(&req->headers, "X-User-Id"), 0);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, auth_client_claim_header_replaced_by_verified_claim)
{
    char *tok = token(JWT_SECRET, std_claims, (long long)time(NULL) + 600);
    char h[1024];
    bearer(h, sizeof h, tok);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/private", h);
    fake_header(req, "X-User-Id", "mallory");
    assert_passed(req, fake_run(req));
    cr_assert_eq(pc_headers_count(&req->headers, "X-User-Id"), 0,
                 "the client's copy is still in the request");
    cr_assert_str_eq(fake_forwarded_header(req, "X-User-Id"), "alice");
    cr_assert_eq(fake_upstream_count(req, "X-User-Id"), 1);
    cr_assert_str_eq(fake_upstream_header(req, "X-User-Id"), "alice");
    fake_req_free(req);

    /* refused: the client's copy is gone all the same */
    req = auth_req(e, "/private", NULL);
    fake_header(req, "X-User-Id", "mallory");
    assert_stopped(req, fake_run(req), "auth", PC_ERR_UNAUTHORIZED);
    cr_assert_eq(pc_headers_count(&req->headers, "X-User-Id"), 0);
    cr_assert_null(fake_forwarded_header(req, "X-User-Id"));
    fake_req_free(req);
    fake_env_free(e);
    free(tok);
}

Test(stages, auth_claim_with_control_characters_is_not_forwarded)
{
    char *tok = token(JWT_SECRET,
                      "{\"iss\":\"https://issuer.test/\",\"sub\":\"eve\\r\\nX-Admin: 1\","
                      "\"scope\":\"read\",\"exp\":%lld}",
                      (long long)time(NULL) + 600);
    char h[1024];
    bearer(h, sizeof h, tok);
    fake_env *e = fake_env_from_yaml(auth_yaml);
    pc_req *req = auth_req(e, "/private", h);
    fake_header(req, "X-User-Id", "mallory");
    assert_passed(req, fake_run(req));
    cr_assert_null(fake_forwarded_header(req, "X-User-Id"));
    cr_assert_eq(fake_upstream_count(req, "X-User-Id"), 0,
                 "neither the claim nor the client's copy goes upstream");
    cr_assert_str_eq(fake_forwarded_header(req, "X-Scope"), "read");
    fake_req_free(req);
    fake_env_free(e);
    free(tok);
}

/* ------------------------------------------------------- verify_signature */

#define SIG_SECRET "It's a Secret to Everybody"

static const char sig_yaml[] =
    FAKE_LISTEN FAKE_UPSTREAM
    "routes:\n"
    "  - name: hook\n"
    "    match: {path: /hook}\n"
    "    upstream: u\n"
    "    verify_signature: {secret: \"" SIG_SECRET "\"}\n"
    "  - name: hook512\n"
    "    match: {path: /hook512}\n"
    "    upstream: u\n"
    "    verify_signature: {secret: \"" SIG_SECRET "\", algorithm: sha512,"
    " header: X-Sig, prefix: \"\"}\n"
    ROUTE("plain", "/plain");

/* prefix + lower-case hex HMAC of body. */
static void sign(char *out, size_t len, const EVP_MD *md, const char *prefix,
                 const char *body)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    cr_assert(HMAC(md, SIG_SECRET, (int)strlen(SIG_SECRET),
                   (const unsigned char *)body, strlen(body), mac, &n));
    size_t o = (size_t)snprintf(out, len, "%s", prefix);
    for (unsigned i = 0; i < n && o + 3 <= len; i++)
        o += (size_t)snprintf(out + o, len - o, "%02x", mac[i]);
}

static const char hook_body[] = "Hello, World!";

static pc_req *hook_req(fake_env *e, const char *path, const char *hdr,
                        const char *sig)
{
    pc_req *req = fake_req_new(e, "POST", path, "gw.test");
    fake_header(req, "Content-Type", "application/json");
    if (sig)
        fake_header(req, hdr, sig);
    fake_body(req, hook_body, strlen(hook_body));
    return req;
}

Test(stages, signature_hmac_right_signature_passes)
{
    char sig[256];
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", hook_body);
    /* GitHub's published example for this secret and body */
    cr_assert_str_eq(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586"
                          "c22c46f4379c8b043e17");
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/hook", "X-Hub-Signature-256", sig);
    assert_passed(req, fake_run(req));
    cr_assert_str_eq(pc_req_header(req, "X-Hub-Signature-256"), sig,
                     "the header is forwarded unchanged");
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_hex_compares_case_insensitively)
{
    char sig[256];
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", hook_body);
    for (char *p = sig + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p -= 32;
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/hook", "X-Hub-Signature-256", sig);
    assert_passed(req, fake_run(req));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_wrong_signature_is_401)
{
    char sig[256];
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", "Hello, World?");
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/hook", "X-Hub-Signature-256", sig);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_str_eq(rec->msg, "webhook signature does not match");
    cr_assert_null(fake_resp_header(req, "WWW-Authenticate"),
                   "no WWW-Authenticate for webhooks");
    fake_req_free(req);

    /* right hex, wrong prefix; and a truncated MAC */
    sign(sig, sizeof sig, EVP_sha256(), "sha1=", hook_body);
    req = hook_req(e, "/hook", "X-Hub-Signature-256", sig);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    fake_req_free(req);
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", hook_body);
    sig[strlen(sig) - 2] = '\0';
    req = hook_req(e, "/hook", "X-Hub-Signature-256", sig);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_missing_header_is_401)
{
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/hook", NULL, NULL);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    cr_assert_str_eq(fake_rec_of(req)->msg, "webhook signature header missing");
    fake_req_free(req);

    /* a signature in another header is not looked at */
    char sig[256];
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", hook_body);
    req = hook_req(e, "/hook", "X-Hub-Signature", sig);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_configured_header_algorithm_and_prefix)
{
    char sig[256];
    sign(sig, sizeof sig, EVP_sha512(), "", hook_body);
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/hook512", "X-Sig", sig);
    assert_passed(req, fake_run(req));
    fake_req_free(req);

    /* a SHA-256 MAC where SHA-512 is configured */
    sign(sig, sizeof sig, EVP_sha256(), "", hook_body);
    req = hook_req(e, "/hook512", "X-Sig", sig);
    assert_stopped(req, fake_run(req), "verify_signature", PC_ERR_UNAUTHORIZED);
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_not_checked_on_other_routes)
{
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = hook_req(e, "/plain", NULL, NULL);
    assert_passed(req, fake_run(req));
    fake_req_free(req);
    fake_env_free(e);
}

Test(stages, signature_waits_for_body_then_checks_it)
{
    char sig[256];
    sign(sig, sizeof sig, EVP_sha256(), "sha256=", hook_body);
    fake_env *e = fake_env_from_yaml(sig_yaml);
    pc_req *req = fake_req_new(e, "POST", "/hook", "gw.test");
    fake_header(req, "X-Hub-Signature-256", sig);
    fake_chunked(req);
    fake_result r = fake_run(req);
    cr_assert_str_eq(r.stage, "verify_signature");
    cr_assert_eq(r.verdict, PC_WAIT);
    cr_assert_eq(fake_rec_of(req)->start_bodies, 1);
    cr_assert_not_null(req->handler);
    /* a body other than the signed one: answered from the callback */
    fake_feed_body(req, "Hello, World?", 13);
    cr_assert_eq(fake_known_length(req), 13, "a buffered body has a length");
    cr_assert_eq(fake_rec_of(req)->errors, 1);
    cr_assert_eq(fake_rec_of(req)->code, PC_ERR_UNAUTHORIZED);
    fake_req_free(req);

    /* cancelled while waiting: fake_req_free cancels the handler (ASan
     * checks nothing leaks) */
    req = fake_req_new(e, "POST", "/hook", "gw.test");
    fake_header(req, "X-Hub-Signature-256", sig);
    fake_content_length(req, 13);
    cr_assert_eq(fake_run(req).verdict, PC_WAIT);
    fake_req_free(req);
    fake_env_free(e);
}
