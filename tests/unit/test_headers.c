/* Header rules of CONTRACT §3: hop-by-hop removal (including headers named
 * by Connection), X-Request-Id syntax, headers.request/response transforms,
 * and the JSON error bodies of CONTRACT §4. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

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

/* ---- validation: one table for both sides ---------------------------- */

Test(headers, field_name_and_value_table)
{
    static const struct {
        const char *s;
        int name_ok, value_ok;
    } rows[] = {
        {"Content-Type", 1, 1},
        {"x-a_b.c~d!#$%&'*+^`|", 1, 1},
        {"Transfer Encoding", 0, 1},
        {"Content Length", 0, 1},
        {"a:b", 0, 1},
        {"", 0, 1},
        {"a\tb", 0, 1},
        {"a\x01" "b", 0, 0},
        {"a\x7f", 0, 0},
        {"caf\xc3\xa9", 0, 1}, /* obs-text is a value, never a name */
        {"a\rb", 0, 0},
        {"a\nb", 0, 0},
        {"(x)", 0, 1},
        {"a\"b", 0, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = strlen(rows[i].s);
        cr_assert_eq(pc_header_name_valid(rows[i].s, n), rows[i].name_ok,
                     "name row %zu", i);
        cr_assert_eq(pc_header_value_valid(rows[i].s, n), rows[i].value_ok,
                     "value row %zu", i);
    }
    cr_assert(!pc_header_value_valid("a\0b", 3), "NUL in a value");
}

/* pc_header_value_valid checks eight bytes at a time: against the byte
 * rule itself, every single byte value at every position of values of
 * every length from 0 to 40 (so in each lane of a word and in the tail),
 * over a background of tabs, spaces, obs-text and visible ASCII. */
static int value_ok_slow(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return 0;
    return 1;
}

Test(headers, value_valid_word_at_a_time_matches_the_byte_rule)
{
    static const unsigned char bg[] = {'a', '\t', ' ', 0x80, 0xff, '~', 0x21, 0x7e};
    unsigned char buf[48];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t b = 0; b < sizeof bg; b++) {
            for (size_t i = 0; i < n; i++)
                buf[i] = bg[(i + b) % sizeof bg];
            cr_assert_eq(pc_header_value_valid((char *)buf, n), 1, "n %zu", n);
            for (size_t pos = 0; pos < n; pos++) {
                unsigned char keep = buf[pos];
                for (int v = 0; v < 256; v++) {
                    buf[pos] = (unsigned char)v;
                    cr_assert_eq(pc_header_value_valid((char *)buf, n),
                                 value_ok_slow(buf, n),
                                 "n %zu pos %zu byte %#x", n, pos, v);
                }
                buf[pos] = keep;
            }
        }
    }
}

/* ---- CONTRACT §3 "Header order upstream" ------------------------------ */

static pc_req *fake_req(void)
{
    pc_req *r = pc_arena_alloc(arena, sizeof *r);
    memset(r, 0, sizeof *r);
    r->arena = arena;
    strcpy(r->peer_text, "192.0.2.7");
    strcpy(r->request_id, "rid-1");
    r->host = "api.example.com";
    return r;
}

static const char *get(const pc_headers *h, const char *name)
{
    const pc_header *x = pc_headers_get(h, name);
    return x ? x->value : NULL;
}

static int index_of(const pc_headers *h, const char *name)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0)
            return (int)i;
    return -1;
}

Test(headers, client_cannot_remove_gateway_headers)
{
    pc_req *r = fake_req();
    add(&r->headers, "Connection",
        "X-Api-Version, X-User-Id, X-Forwarded-For, X-Forwarded-Proto, "
        "X-Forwarded-Host, X-Request-Id");
    add(&r->headers, "Accept", "*/*");
    pc_headers_add(&r->gw_headers, arena, "X-User-Id", 9, "alice", 5);
    pc_kv set[] = {{.name = "X-Api-Version", .value = "2"}};
    pc_header_rules rules = {.set = set, .nset = 1};
    pc_headers out;
    pc_headers_upstream(r, 0, &rules, &out, arena);
    cr_assert_str_eq(get(&out, "x-api-version"), "2");
    cr_assert_str_eq(get(&out, "x-user-id"), "alice");
    cr_assert_str_eq(get(&out, "x-forwarded-for"), "192.0.2.7");
    cr_assert_str_eq(get(&out, "x-forwarded-proto"), "http");
    cr_assert_str_eq(get(&out, "x-forwarded-host"), "api.example.com");
    cr_assert_str_eq(get(&out, "x-request-id"), "rid-1");
    cr_assert_str_eq(get(&out, "accept"), "*/*");
    cr_assert_null(get(&out, "connection"));
}

Test(headers, client_copies_of_managed_names_removed)
{
    pc_req *r = fake_req();
    r->tls = 1;
    add(&r->headers, "X-Forwarded-For", "203.0.113.1");
    add(&r->headers, "X-Forwarded-Proto", "http");
    add(&r->headers, "X-Forwarded-Host", "evil.test");
    add(&r->headers, "X-Request-Id", "client-id");
    add(&r->headers, "X-User-Id", "root");
    add(&r->headers, "Host", "api.example.com");
    add(&r->headers, "Content-Length", "5");
    add(&r->headers, "Transfer-Encoding", "chunked");
    add(&r->headers, "Expect", "100-continue");
    pc_headers_add(&r->gw_headers, arena, "X-User-Id", 9, "alice", 5);
    pc_headers out;
    pc_headers_upstream(r, 0, NULL, &out, arena);
    cr_assert_str_eq(get(&out, "x-forwarded-for"), "203.0.113.1, 192.0.2.7",
                     "X-Forwarded-For is appended to");
    cr_assert_str_eq(get(&out, "x-forwarded-proto"), "https");
    cr_assert_str_eq(get(&out, "x-forwarded-host"), "api.example.com");
    cr_assert_str_eq(get(&out, "x-request-id"), "rid-1");
    cr_assert_str_eq(get(&out, "x-user-id"), "alice");
    cr_assert_eq(pc_headers_count(&out, "x-user-id"), 1);
    cr_assert_eq(pc_headers_count(&out, "x-forwarded-for"), 1);
    cr_assert_null(get(&out, "host"), "Host is written per attempt");
    cr_assert_null(get(&out, "content-length"));
    cr_assert_null(get(&out, "transfer-encoding"));
    cr_assert_null(get(&out, "expect"));
}

Test(headers, forwarded_family_only_from_trusted_peers)
{
    static const char *const names[] = {
        "Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix",
        "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Server", NULL};
    for (int trusted = 0; trusted <= 1; trusted++) {
        pc_req *r = fake_req();
        for (int i = 0; names[i]; i++)
            add(&r->headers, names[i], "x");
        pc_headers out;
        pc_headers_upstream(r, trusted, NULL, &out, arena);
        for (int i = 0; names[i]; i++)
            cr_assert_eq(get(&out, names[i]) != NULL, trusted, "%s trusted=%d",
                         names[i], trusted);
    }
}

Test(headers, order_rules_after_client_gateway_last)
{
    pc_req *r = fake_req();
    add(&r->headers, "Cookie", "a=1");
    add(&r->headers, "X-Api-Version", "1");
    add(&r->headers, "Accept", "*/*");
    pc_headers_add(&r->gw_headers, arena, "X-User-Id", 9, "alice", 5);
    pc_kv set[] = {{.name = "X-Api-Version", .value = "2"},
                   {.name = "X-Request-Id", .value = "from-rule"},
                   {.name = "X-User-Id", .value = "from-rule"}};
    char *rm[] = {"Cookie"};
    pc_header_rules rules = {.set = set, .nset = 3, .remove = rm, .nremove = 1};
    pc_headers out;
    pc_headers_upstream(r, 0, &rules, &out, arena);
    cr_assert_null(get(&out, "cookie"));
    cr_assert_str_eq(get(&out, "x-api-version"), "2");
    cr_assert_eq(pc_headers_count(&out, "x-api-version"), 1);
    /* the gateway's own come last and win over a rule */
    cr_assert_str_eq(get(&out, "x-request-id"), "rid-1");
    cr_assert_eq(pc_headers_count(&out, "x-request-id"), 1);
    cr_assert_str_eq(get(&out, "x-user-id"), "alice");
    cr_assert_eq(pc_headers_count(&out, "x-user-id"), 1);
    cr_assert_lt(index_of(&out, "accept"), index_of(&out, "x-api-version"));
    cr_assert_lt(index_of(&out, "x-api-version"), index_of(&out, "x-forwarded-for"));
    cr_assert_eq(index_of(&out, "x-user-id"), (int)out.n - 1);
}

Test(headers, downstream_rules)
{
    pc_headers h = {0};
    add(&h, "Connection", "close, X-Internal");
    add(&h, "X-Internal", "1");
    add(&h, "Content-Length", "5");
    add(&h, "Transfer-Encoding", "chunked");
    add(&h, "X-Request-Id", "upstream-id");
    add(&h, "Server", "up");
    add(&h, "Content-Type", "text/plain");
    char *rm[] = {"Server"};
    pc_kv set[] = {{.name = "Strict-Transport-Security", .value = "max-age=1"}};
    pc_header_rules rules = {.set = set, .nset = 1, .remove = rm, .nremove = 1};
    pc_headers_downstream(&h, arena, &rules);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.v[0].name, "Content-Type");
    cr_assert_str_eq(h.v[1].name, "Strict-Transport-Security");
}

/* Connection nominating thousands of names over thousands of fields: the
 * strip is linear (a quadratic one took seconds here) and exact. */
Test(headers, strip_is_linear_and_exact)
{
    pc_headers h = {0};
    enum { N = 3000 };
    char name[32];
    size_t cap = N * 12 + 16;
    char *conn = pc_arena_alloc(arena, cap);
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "X-H%d", i);
        add(&h, name, "v");
        if (i % 2 == 0)
            off += (size_t)snprintf(conn + off, cap - off, "%sx-h%d", off ? "," : "", i);
    }
    add(&h, "Connection", conn);
    pc_headers_strip_hop_by_hop(&h);
    cr_assert_eq(h.n, N / 2);
    for (uint32_t i = 0; i < h.n; i++) {
        int k = atoi(h.v[i].name + 3);
        cr_assert_eq(k % 2, 1, "%s kept", h.v[i].name);
    }
}
