/* test_ratelimit.c: the rate_limit stage (src/chain/ratelimit.c) through
 * fake requests (fake_req.h): real configs, the real stage table, the
 * recording sink, one process-wide bucket table per environment. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fake_req.h"
#include "jwt_mint.h"

#define ROUTE(name, path)                                                      \
    "  - name: " name "\n    match: {path: " path "}\n    upstream: u\n"

/* Runs the chain short of proxy; returns the response status as sent, or
 * 0 when the request passed every stage (then a 200 "proxied" head is sent
 * through the sink, as forward.c would, so on_response hooks run). */
static int run(pc_req *req)
{
    fake_result r = fake_run(req);
    if (!r.reached)
        return fake_rec_of(req)->resp_status;
    pc_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    resp.http_minor = 1;
    resp.framing =
        (pc_framing){.kind = PC_FRAME_LENGTH, .length = 0, .has_length = 1};
    pc_headers_add(&resp.headers, req->arena, "RateLimit-Limit", 15, "999", 3);
    req->sink->head(req, &resp);
    return 0;
}

static int hit(fake_env *e, const char *path, const char *ip, const char *hname,
               const char *hvalue)
{
    pc_req *req = fake_req_new(e, "GET", path, "gw.test");
    if (ip)
        fake_peer(req, ip);
    if (hname)
        fake_header(req, hname, hvalue);
    int st = run(req);
    fake_req_free(req);
    return st;
}

static const char basic_yaml[] = FAKE_LISTEN FAKE_UPSTREAM
    "rate_limit: {rate: 1, per: 1m, burst: 3}\n"
    "routes:\n" ROUTE("a", "/a")
        ROUTE("b", "/b") "  - name: own\n"
                         "    match: {path: /own}\n"
                         "    upstream: u\n"
                         "    rate_limit: {rate: 10, per: 1s, burst: 1, key: "
                         "header:X-Api-Key}\n";

Test(ratelimit, burst_then_429_with_headers)
{
    fake_env *e = fake_env_from_yaml(basic_yaml);
    for (int i = 0; i < 3; i++) {
        pc_req *req = fake_req_new(e, "GET", "/a", "gw.test");
        cr_assert_eq(run(req), 0, "request %d refused", i);
        cr_assert_str_eq(fake_resp_header(req, "RateLimit-Limit"), "3",
                         "the gateway's value replaces the upstream's");
        cr_assert_eq(pc_headers_count(&fake_rec_of(req)->resp_headers,
                                      "RateLimit-Limit"),
                     1);
        char want[8];
        snprintf(want, sizeof want, "%d", 2 - i);
        cr_assert_str_eq(fake_resp_header(req, "RateLimit-Remaining"), want);
        snprintf(want, sizeof want, "%d", 60 * (i + 1));
        cr_assert_str_eq(fake_resp_header(req, "RateLimit-Reset"), want);
        cr_assert_null(fake_resp_header(req, "Retry-After"));
        fake_req_free(req);
    }
    pc_req *req = fake_req_new(e, "GET", "/a", "gw.test");
    fake_result r = fake_run(req);
    fake_rec *rec = fake_rec_of(req);
    cr_assert_str_eq(r.stage, "rate_limit");
    cr_assert_eq(r.verdict, PC_DONE);
    cr_assert_eq(rec->code, PC_ERR_RATE_LIMITED);
    cr_assert_eq(rec->resp_status, 429);
    cr_assert_str_eq(rec->msg, "rate limit exceeded for key 192.0.2.10");
    cr_assert(strstr(rec->body, "\"error\": \"rate_limited\"") ||
                  strstr(rec->body, "\"error\":\"rate_limited\""),
              "%s", rec->body);
    const char *ra = fake_resp_header(req, "Retry-After");
    cr_assert_not_null(ra);
    int retry = atoi(ra);
    cr_assert(retry >= 59 && retry <= 60, "Retry-After %s", ra);
    cr_assert_str_eq(fake_resp_header(req, "RateLimit-Remaining"), "0");
    cr_assert_str_eq(fake_resp_header(req, "RateLimit-Limit"), "3");
    fake_req_free(req);
    fake_env_free(e);
}

/* The global block is per route: /b has its own buckets; another client
 * has its own; the route's own block replaces the global one. */
Test(ratelimit, global_block_per_route_and_key_and_override)
{
    fake_env *e = fake_env_from_yaml(basic_yaml);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(hit(e, "/a", NULL, NULL, NULL), 0);
    cr_assert_eq(hit(e, "/a", NULL, NULL, NULL), 429);
    cr_assert_eq(hit(e, "/b", NULL, NULL, NULL), 0, "/b shares /a's bucket");
    cr_assert_eq(hit(e, "/a", "2001:db8::1", NULL, NULL), 0);
    cr_assert_eq(hit(e, "/a", "198.51.100.7", NULL, NULL), 0);
    /* /own: burst 1 per X-Api-Key value, not the global 3 */
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", "k1"), 0);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", "k1"), 429);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", "k2"), 0);
    /* the same client without the header: its address (fallback) */
    cr_assert_eq(hit(e, "/own", NULL, NULL, NULL), 0);
    cr_assert_eq(hit(e, "/own", NULL, NULL, NULL), 429);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", ""), 429, "empty = absent");
    cr_assert_eq(hit(e, "/own", "192.0.2.99", NULL, NULL), 0);
    /* long values (digested) are keys too, and distinct */
    char long1[200], long2[200];
    memset(long1, 'x', sizeof long1 - 1);
    long1[sizeof long1 - 1] = '\0';
    memcpy(long2, long1, sizeof long2);
    long2[150] = 'y';
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", long1), 0);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", long1), 429);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", long2), 0);
    fake_env_free(e);
}

/* The message never echoes a header value (it may be a credential). */
Test(ratelimit, message_names_the_key_not_its_value)
{
    fake_env *e = fake_env_from_yaml(basic_yaml);
    cr_assert_eq(hit(e, "/own", NULL, "X-Api-Key", "secret-123"), 0);
    pc_req *req = fake_req_new(e, "GET", "/own", "gw.test");
    fake_header(req, "X-Api-Key", "secret-123");
    cr_assert_eq(run(req), 429);
    cr_assert_str_eq(fake_rec_of(req)->msg,
                     "rate limit exceeded for key header:X-Api-Key");
    cr_assert_null(strstr(fake_rec_of(req)->body, "secret-123"));
    fake_req_free(req);
    fake_env_free(e);
}

Test(ratelimit, key_route_and_unmatched_requests)
{
    fake_env *e =
        fake_env_from_yaml(FAKE_LISTEN FAKE_UPSTREAM
                           "rate_limit: {rate: 2, per: 1h}\n"
                           "routes:\n"
                           "  - name: r\n"
                           "    match: {path: /r}\n"
                           "    upstream: u\n"
                           "    rate_limit: {rate: 1, per: 1h, key: route}\n");
    cr_assert_eq(hit(e, "/r", "192.0.2.1", NULL, NULL), 0);
    cr_assert_eq(hit(e, "/r", "192.0.2.2", NULL, NULL), 429,
                 "one bucket per route");
    /* no route: the global block still applies (then 404 from route) */
    cr_assert_eq(hit(e, "/nowhere", NULL, NULL, NULL), 404);
    cr_assert_eq(hit(e, "/nowhere", NULL, NULL, NULL), 404);
    cr_assert_eq(hit(e, "/nowhere", NULL, NULL, NULL), 429);
    fake_env_free(e);
}

/* A reload (a new generation) with the same route name and limit keeps the
 * buckets; a changed limit starts full buckets. */
Test(ratelimit, buckets_survive_a_reload)
{
    static const char y1[] = FAKE_LISTEN FAKE_UPSTREAM
        "routes:\n"
        "  - name: keep\n"
        "    match: {path: /keep}\n"
        "    upstream: u\n"
        "    rate_limit: {rate: 1, per: 1h, burst: 2}\n"
        "  - name: change\n"
        "    match: {path: /change}\n"
        "    upstream: u\n"
        "    rate_limit: {rate: 1, per: 1h, burst: 1}\n";
    static const char y2[] = FAKE_LISTEN FAKE_UPSTREAM
        "routes:\n"
        "  - name: extra\n"
        "    match: {path: /extra}\n"
        "    upstream: u\n"
        "  - name: keep\n"
        "    match: {path: /keep-moved}\n"
        "    upstream: u\n"
        "    rate_limit: {rate: 1, per: 1h, burst: 2}\n"
        "  - name: change\n"
        "    match: {path: /change}\n"
        "    upstream: u\n"
        "    rate_limit: {rate: 1, per: 1h, burst: 5}\n";
    fake_env *e1 = fake_env_from_yaml(y1);
    cr_assert_eq(hit(e1, "/keep", NULL, NULL, NULL), 0);
    cr_assert_eq(hit(e1, "/keep", NULL, NULL, NULL), 0);
    cr_assert_eq(hit(e1, "/keep", NULL, NULL, NULL), 429);
    cr_assert_eq(hit(e1, "/change", NULL, NULL, NULL), 0);
    cr_assert_eq(hit(e1, "/change", NULL, NULL, NULL), 429);
    fake_env *e2 = fake_env_from_yaml(y2);
    pc_bucket_table_free(e2->worker.buckets); /* one table per process */
    e2->worker.buckets = e1->worker.buckets;
    e1->worker.buckets = NULL;
    cr_assert_eq(hit(e2, "/keep-moved", NULL, NULL, NULL), 429,
                 "the bucket did not survive the reload");
    cr_assert_eq(hit(e2, "/change", NULL, NULL, NULL), 0,
                 "new limit, new bucket");
    fake_env_free(e1);
    fake_env_free(e2);
}

/* ---------------------------------------------------------- claim keys */

#define JWT_SECRET "0123456789abcdef0123456789abcdef-test"

static const char claim_yaml[] = FAKE_LISTEN FAKE_UPSTREAM
    "jwt:\n"
    "  providers:\n"
    "    - name: main\n"
    "      algorithms: [HS256]\n"
    "      secret: \"" JWT_SECRET "\"\n"
    "routes:\n"
    "  - name: private\n"
    "    match: {path: /private}\n"
    "    upstream: u\n"
    "    auth: {jwt: main}\n"
    "    rate_limit: {rate: 1, per: 1h, key: \"claim:tenant\"}\n"
    "  - name: open\n"
    "    match: {path: /open}\n"
    "    upstream: u\n"
    "    rate_limit: {rate: 1, per: 1h, key: \"claim:tenant\"}\n";

static int hit_token(fake_env *e, const char *path, const char *claims)
{
    char payload[256], authz[1024];
    snprintf(payload, sizeof payload, claims, (long long)time(NULL) + 3600);
    signer s = {.alg = PC_JWT_HS256,
                .secret = (const unsigned char *)JWT_SECRET,
                .secret_len = strlen(JWT_SECRET)};
    char *tok = mint(&s, NULL, payload);
    snprintf(authz, sizeof authz, "Bearer %s", tok);
    free(tok);
    return hit(e, path, NULL, "Authorization", authz);
}

Test(ratelimit, claim_key_from_the_verified_token)
{
    fake_env *e = fake_env_from_yaml(claim_yaml);
    cr_assert_eq(hit_token(e, "/private", "{\"tenant\":\"t1\",\"exp\":%lld}"),
                 0);
    cr_assert_eq(hit_token(e, "/private",
                           "{\"tenant\":\"t1\",\"sub\":\"x\",\"exp\":%lld}"),
                 429, "same tenant, another token (cache miss)");
    cr_assert_eq(hit_token(e, "/private", "{\"tenant\":\"t1\",\"exp\":%lld}"),
                 429, "same token again (cache hit)");
    cr_assert_eq(hit_token(e, "/private", "{\"tenant\":\"t2\",\"exp\":%lld}"),
                 0);
    /* no tenant claim: the client address, once */
    cr_assert_eq(hit_token(e, "/private", "{\"sub\":\"a\",\"exp\":%lld}"), 0);
    cr_assert_eq(hit_token(e, "/private", "{\"sub\":\"b\",\"exp\":%lld}"), 429);
    /* a route without auth never trusts a token: client address */
    cr_assert_eq(hit_token(e, "/open", "{\"tenant\":\"t9\",\"exp\":%lld}"), 0);
    cr_assert_eq(hit_token(e, "/open", "{\"tenant\":\"t8\",\"exp\":%lld}"),
                 429);
    fake_env_free(e);
}

/* ------------------------------------------------------- configuration */

static void expect_load_error(const char *yaml, const char *want)
{
    fake_env *e = fake_env_new();
    pc_errors errs;
    cr_assert_eq(fake_env_try_load(e, yaml, &errs), -1, "loaded: %s", yaml);
    int found = 0;
    for (size_t i = 0; i < errs.n; i++) {
        const char *m = strchr(errs.msgs[i], ':'); /* after FILE */
        if (m && !strcmp(m + 1, want))
            found = 1;
    }
    for (size_t i = 0; !found && i < errs.n; i++)
        cr_log_error("got: %s", errs.msgs[i]);
    cr_expect(found, "want '%s'", want);
    pc_errors_free(&errs);
    fake_env_free(e);
}

#define RL(block) FAKE_LISTEN FAKE_UPSTREAM "rate_limit: " block "\n"

Test(ratelimit, config_errors_have_positions)
{
    expect_load_error(RL("{rate: 0}"),
                      "3:20: value 0 for 'rate' out of range 1..1000000000");
    expect_load_error(
        RL("{rate: 1000000001}"),
        "3:20: value 1000000001 for 'rate' out of range 1..1000000000");
    expect_load_error(RL("{per: 1s}"),
                      "3:13: rate_limit needs 'rate' (tokens per 'per')");
    expect_load_error(RL("{rate: 5, per: 25h}"),
                      "3:28: value 25h for 'per' out of range 1ms..24h");
    expect_load_error(RL("{rate: 5, burst: 0}"),
                      "3:30: value 0 for 'burst' out of range 1..1000000000");
    expect_load_error(RL("{rate: 5, per: 24h, burst: 1000000000}"),
                      "3:40: rate_limit: burst x per too large (burst x per in "
                      "microseconds must stay below 2^62)");
    expect_load_error(RL("{rate: 5, key: cookie}"),
                      "3:28: invalid key 'cookie' (ip | route | header:NAME | "
                      "claim:NAME)");
    expect_load_error(RL("{rate: 5, key: \"header:Bad Name\"}"),
                      "3:28: invalid header name in key 'header:Bad Name'");
    expect_load_error(RL("{rate: 5, key: \"claim:\"}"),
                      "3:28: invalid claim name in key 'claim:'");
    expect_load_error(RL("{rate: 5, scope: cluster}"),
                      "3:30: 'scope: cluster' needs the top-level 'redis' "
                      "block (address of the shared Redis)");
    expect_load_error(RL("{rate: 5, scope: global}"),
                      "3:30: invalid scope 'global' (local | cluster)");
    expect_load_error(RL("{rate: 5, brust: 3}"),
                      "3:23: unknown key 'brust' in rate_limit (did you mean "
                      "'burst'?)");
    expect_load_error(RL("[1]"),
                      "3:13: expected a mapping for 'rate_limit', got a list");
}

Test(ratelimit, admin_config_json)
{
    fake_env *e = fake_env_from_yaml(basic_yaml);
    json_t *o = json_object();
    pc_chain_global_json(e->cfg, o);
    char *s = json_dumps(json_object_get(o, "rate_limit"),
                         JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(s, "{\"burst\":3,\"key\":\"ip\",\"per\":\"1m\",\"rate\":1,"
                        "\"scope\":\"local\"}");
    free(s);
    json_decref(o);
    fake_env_free(e);
}
