/* test_cache_stage.c: the cache stage (chain/cache.c) on fake_req.h's
 * requests, without sockets: the chain runs up to the proxy stage, the
 * test plays the upstream through the recording sink (head, body, end or
 * abort), and the next request shows what the store kept (RFC 9111 §3:
 * only complete, storable responses; the per-request extra headers never
 * stored; §4.2.3 Age and X-Cache on the hit). */
#include <criterion/criterion.h>

#include <string.h>

#include "fake_req.h"
#include "portcullis/cache_store.h"

static const char yaml[] = FAKE_LISTEN FAKE_UPSTREAM
    "routes:\n"
    "  - name: c\n"
    "    match: {path: /c}\n"
    "    upstream: u\n"
    "    cache: {ttl: 60s, max_object_bytes: 10}\n";

static fake_env *env;

static void setup(void)
{
    pc_cache_purge(NULL, NULL);
    env = fake_env_from_yaml(yaml);
}

static void teardown(void)
{
    fake_env_free(env);
    pc_cache_purge(NULL, NULL);
}

static pc_req *get(const char *target)
{
    return fake_req_new(env, "GET", target, "e2e.test");
}

/* The upstream's head: 200 with the given extra header, n body bytes. */
static void up_head(pc_req *req, const char *name, const char *value, size_t n)
{
    pc_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    resp.http_minor = 1;
    pc_headers_add(&resp.headers, req->arena, "Content-Type", 12, "text/plain",
                   10);
    if (name)
        pc_headers_add(&resp.headers, req->arena, name, strlen(name), value,
                       strlen(value));
    resp.framing.kind = PC_FRAME_LENGTH;
    resp.framing.length = n;
    req->sink->head(req, &resp);
}

/* A miss answered by the "upstream" with body (complete or not). */
static void miss(const char *target, const char *hn, const char *hv,
                 const char *body, int complete)
{
    pc_req *req = get(target);
    pc_req_add_resp_header(req, "RateLimit-Remaining", "7");
    fake_result r = fake_run(req);
    cr_assert(r.reached, "stopped at %s", r.stage);
    up_head(req, hn, hv, strlen(body));
    cr_assert_str_eq(fake_resp_header(req, "X-Cache"), "MISS");
    size_t half = strlen(body) / 2;
    req->sink->body(req, body, half);
    if (complete) {
        req->sink->body(req, body + half, strlen(body) - half);
        req->sink->end(req);
    } else {
        req->sink->abort(req);
    }
    fake_req_free(req);
}

/* 1 and the body when the next GET of target is a hit. */
static int hit(const char *target, char *body, size_t cap)
{
    pc_req *req = get(target);
    fake_result r = fake_run(req);
    int h = !r.reached;
    if (h) {
        fake_rec *rec = fake_rec_of(req);
        cr_assert_str_eq(r.stage, "cache");
        cr_assert_eq(r.verdict, PC_DONE);
        cr_assert_str_eq(fake_resp_header(req, "X-Cache"), "HIT");
        const char *age = fake_resp_header(req, "Age");
        cr_assert_not_null(age);
        cr_assert(!strcmp(age, "0") || !strcmp(age, "1"), "Age %s", age);
        cr_assert_null(fake_resp_header(req, "RateLimit-Remaining"),
                       "a per-request header was stored");
        cr_assert_eq(rec->ends, 1);
        snprintf(body, cap, "%.*s", (int)rec->body_len,
                 rec->body ? rec->body : "");
        cr_assert_str_eq(req->cache, "HIT");
    }
    fake_req_free(req);
    return h;
}

Test(cache_stage, complete_response_stored_and_served, .init = setup,
     .fini = teardown)
{
    char body[64];
    miss("/c/a", NULL, NULL, "hello", 1);
    cr_assert(hit("/c/a", body, sizeof body));
    cr_assert_str_eq(body, "hello");
    cr_assert_eq(pc_cache_count(), 1);
}

Test(cache_stage, aborted_body_not_stored, .init = setup, .fini = teardown)
{
    char body[64];
    miss("/c/b", NULL, NULL, "hello", 0);
    cr_assert(!hit("/c/b", body, sizeof body));
    cr_assert_eq(pc_cache_count(), 0);
}

Test(cache_stage, not_storable_responses, .init = setup, .fini = teardown)
{
    char body[64];
    miss("/c/d", "Set-Cookie", "a=1", "x", 1);          /* CONTRACT §4 */
    miss("/c/e", "Cache-Control", "no-store", "x", 1);  /* §5.2.2.5 */
    miss("/c/f", "Cache-Control", "private", "x", 1);   /* §5.2.2.7 */
    miss("/c/g", "Vary", "*", "x", 1);                  /* §4.1 */
    miss("/c/h", NULL, NULL, "0123456789abc", 1);       /* > max_object_bytes */
    cr_assert_eq(pc_cache_count(), 0);
    miss("/c/i", "Cache-Control", "max-age=5", "0123456789", 1); /* = max */
    cr_assert(hit("/c/i", body, sizeof body));
    cr_assert_str_eq(body, "0123456789");
}

Test(cache_stage, head_from_stored_get, .init = setup, .fini = teardown)
{
    miss("/c/j", NULL, NULL, "hello", 1);
    pc_req *req = fake_req_new(env, "HEAD", "/c/j", "e2e.test");
    fake_result r = fake_run(req);
    cr_assert(!r.reached);
    fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->resp_status, 200);
    cr_assert_eq(rec->body_len, 0);
    cr_assert_str_eq(fake_resp_header(req, "X-Cache"), "HIT");
    fake_req_free(req);
}
