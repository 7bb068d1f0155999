/* Header rules of CONTRACT §3: hop-by-hop removal (including headers named
 * by Connection), X-Request-Id syntax, headers.request/response transforms,
 * and the JSON error bodies of CONTRACT §4. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "portcullis/errors.h"
#include "portcullis/headers.h"

static pc_arena *arena;

static void setup(void)
{
    arena = pc_arena_new();
}

static void teardown(void)
{
    pc_arena_free(arena);
}

static void add(pc_headers *h, const char *n, const char *v)
{
    pc_headers_add(h, arena, n, strlen(n), v, strlen(v));
}

TestSuite(headers, .init = setup, .fini = teardown);

Test(headers, hop_by_hop_removed)
{
    pc_headers h = {0};
    add(&h, "Host", "a");
    add(&h, "Connection", "keep-alive, X-Secret");
    add(&h, "Keep-Alive", "timeout=5");
    add(&h, "TE", "trailers");
    add(&h, "Trailer", "X");
    add(&h, "Upgrade", "websocket");
    add(&h, "Transfer-Encoding", "chunked");
    add(&h, "Proxy-Authorization", "Basic x");
    add(&h, "proxy-connection", "keep-alive");
    add(&h, "x-secret", "1");
    add(&h, "X-Kept", "2");
    pc_headers_strip_hop_by_hop(&h);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.v[0].name, "Host");
    cr_assert_str_eq(h.v[1].name, "X-Kept");
}

Test(headers, connection_tokens_are_exact)
{
    pc_headers h = {0};
    add(&h, "Connection", "x-a , X-B");
    add(&h, "X-A", "1");
    add(&h, "X-AB", "keep");
    add(&h, "x-b", "2");
    pc_headers_strip_hop_by_hop(&h);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.v[0].name, "X-AB");
}

Test(headers, list_has)
{
    cr_assert(pc_header_list_has("close", "close", 5));
    cr_assert(pc_header_list_has(" Keep-Alive ,close", "close", 5));
    cr_assert(pc_header_list_has("a,  CLOSE", "close", 5));
    cr_assert_not(pc_header_list_has("closed", "close", 5));
    cr_assert_not(pc_header_list_has("", "close", 5));
}

Test(headers, request_id_syntax)
{
    cr_assert(pc_request_id_valid("abc-DEF_1.2:3", 13));
    cr_assert_not(pc_request_id_valid("", 0));
    cr_assert_not(pc_request_id_valid("a b", 3));
    cr_assert_not(pc_request_id_valid("a\"b", 3));
    char big[130];
    memset(big, 'a', sizeof big);
    cr_assert(pc_request_id_valid(big, 128));
    cr_assert_not(pc_request_id_valid(big, 129));
}

Test(headers, rules_remove_then_set)
{
    pc_headers h = {0};
    add(&h, "Cookie", "a=1");
    add(&h, "X-Api-Version", "1");
    add(&h, "x-api-version", "0");
    add(&h, "Accept", "*/*");
    pc_kv set[] = {{"X-Api-Version", "2"}};
    char *rm[] = {"cookie"};
    pc_header_rules r = {.set = set, .nset = 1, .remove = rm, .nremove = 1};
    pc_headers_apply_rules(&h, arena, &r);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.v[0].name, "Accept");
    cr_assert_str_eq(h.v[1].name, "X-Api-Version");
    cr_assert_str_eq(h.v[1].value, "2");
}

Test(headers, get_count_remove_case_insensitive)
{
    pc_headers h = {0};
    for (int i = 0; i < 40; i++) /* forces the array to grow */
        add(&h, i % 2 ? "X-Forwarded-For" : "x-other", "v");
    cr_assert_eq(pc_headers_count(&h, "x-forwarded-for"), 20);
    cr_assert_not_null(pc_headers_get(&h, "X-OTHER"));
    cr_assert_eq(pc_headers_remove(&h, "X-FORWARDED-FOR"), 20);
    cr_assert_eq(h.n, 20);
    cr_assert_null(pc_headers_get(&h, "x-forwarded-for"));
}

Test(errors, json_body_shape)
{
    char buf[512];
    size_t n = pc_err_body(PC_ERR_RATE_LIMITED, "limit \"x\"", "rid-1", buf,
                           sizeof buf);
    cr_assert_gt(n, 0);
    json_error_t e;
    json_t *o = json_loadb(buf, n, 0, &e);
    cr_assert_not_null(o, "invalid JSON: %s", e.text);
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")),
                     "rate_limited");
    cr_assert_str_eq(json_string_value(json_object_get(o, "message")),
                     "limit \"x\"");
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 429);
    cr_assert_str_eq(json_string_value(json_object_get(o, "request_id")),
                     "rid-1");
    json_decref(o);
}

Test(errors, table_matches_contract)
{
    struct {
        pc_errcode e;
        int status;
        const char *code;
    } want[] = {
        {PC_ERR_BAD_REQUEST, 400, "bad_request"},
        {PC_ERR_INVALID_BODY, 400, "invalid_body"},
        {PC_ERR_UNAUTHORIZED, 401, "unauthorized"},
        {PC_ERR_FORBIDDEN, 403, "forbidden"},
        {PC_ERR_ROUTE_NOT_FOUND, 404, "route_not_found"},
        {PC_ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed"},
        {PC_ERR_REQUEST_TIMEOUT, 408, "request_timeout"},
        {PC_ERR_PAYLOAD_TOO_LARGE, 413, "payload_too_large"},
        {PC_ERR_URI_TOO_LONG, 414, "uri_too_long"},
        {PC_ERR_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type"},
        {PC_ERR_RATE_LIMITED, 429, "rate_limited"},
        {PC_ERR_HEADERS_TOO_LARGE, 431, "headers_too_large"},
        {PC_ERR_HTTP_VERSION, 505, "http_version_not_supported"},
        {PC_ERR_BAD_GATEWAY, 502, "bad_gateway"},
        {PC_ERR_UPSTREAM_UNAVAILABLE, 503, "upstream_unavailable"},
        {PC_ERR_GATEWAY_TIMEOUT, 504, "gateway_timeout"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const pc_errinfo *in = pc_err_info(want[i].e);
        cr_assert_eq(in->status, want[i].status);
        cr_assert_str_eq(in->code, want[i].code);
    }
}

Test(errors, small_buffer_fails_cleanly)
{
    char buf[10];
    cr_assert_eq(pc_err_body(PC_ERR_BAD_GATEWAY, NULL, "x", buf, sizeof buf), 0);
}
