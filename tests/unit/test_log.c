/* test_log.c: the access-log line (core/log.c): JSON string escaping and
 * cutting (pc_log_jstr), and whole lines that always fit one ring entry
 * (pc_log_format_access, issue 8 task 13: a line over 4 KiB was dropped,
 * so a long path hid a 401/403). */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/log.h"

static char out[PC_LOG_LINE_MAX + 1];

static const char *jstr(const char *s, size_t max, int *cut)
{
    *cut = 0;
    memset(out, 'X', sizeof out);
    size_t n = pc_log_jstr(out, max, s, cut);
    cr_assert_leq(n, max, "literal of %zu bytes for max %zu", n, max);
    out[n] = '\0';
    return out;
}

/* The literal parses as a JSON string; returns its decoded value (freed by
 * the caller). */
static char *decoded(const char *lit)
{
    json_error_t err;
    json_t *v = json_loads(lit, JSON_DECODE_ANY, &err);
    cr_assert(v != NULL, "not JSON: %s (%s)", lit, err.text);
    cr_assert(json_is_string(v), "not a string: %s", lit);
    char *s = strdup(json_string_value(v));
    json_decref(v);
    return s;
}

Test(log_jstr, plain_and_null)
{
    int cut;
    cr_assert_str_eq(jstr("/api/orders", 100, &cut), "\"/api/orders\"");
    cr_assert_eq(cut, 0);
    cr_assert_str_eq(jstr(NULL, 100, &cut), "null");
    cr_assert_str_eq(jstr("", 100, &cut), "\"\"");
    /* exactly fits: not cut */
    cr_assert_str_eq(jstr("abcd", 6, &cut), "\"abcd\"");
    cr_assert_eq(cut, 0);
}

Test(log_jstr, escapes)
{
    int cut;
    cr_assert_str_eq(jstr("a\"b\\c", 100, &cut), "\"a\\\"b\\\\c\"");
    cr_assert_str_eq(jstr("\n\x01\x7f", 100, &cut),
                     "\"\\u000a\\u0001\\u007f\"");
    /* well-formed UTF-8 is kept, C1 controls escaped */
    cr_assert_str_eq(jstr("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 100, &cut),
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    cr_assert_str_eq(jstr("\xc2\x85", 100, &cut), "\"\\u0085\"");
    /* bytes that are not UTF-8: overlong, surrogate, lone continuation,
     * truncated sequence, beyond U+10FFFF */
    cr_assert_str_eq(jstr("\xc0\xaf", 100, &cut), "\"\\u00c0\\u00af\"");
    cr_assert_str_eq(jstr("\xed\xa0\x80", 100, &cut),
                     "\"\\u00ed\\u00a0\\u0080\"");
    cr_assert_str_eq(jstr("\x80x", 100, &cut), "\"\\u0080x\"");
    cr_assert_str_eq(jstr("\xe2\x82", 100, &cut), "\"\\u00e2\\u0082\"");
    cr_assert_str_eq(jstr("\xf4\x90\x80\x80", 100, &cut),
                     "\"\\u00f4\\u0090\\u0080\\u0080\"");
    cr_assert_eq(cut, 0);
}

Test(log_jstr, cut_at_character_boundaries)
{
    int cut;
    /* room for "ab" only */
    cr_assert_str_eq(jstr("abcdef", 4, &cut), "\"ab\"");
    cr_assert_eq(cut, 1);
    /* an escape is never split: one byte short of a second \" */
    cr_assert_str_eq(jstr("a\"\"\"", 6, &cut), "\"a\\\"\"");
    cr_assert_eq(cut, 1);
    cr_assert_str_eq(jstr("\x01\x01", 9, &cut), "\"\\u0001\"");
    cr_assert_eq(cut, 1);
    /* a UTF-8 sequence is never split */
    cr_assert_str_eq(jstr("a\xf0\x9f\x98\x80", 6, &cut), "\"a\"");
    cr_assert_eq(cut, 1);
    cr_assert_str_eq(jstr("\xc3\xa9\xc3\xa9", 5, &cut), "\"\xc3\xa9\"");
    cr_assert_eq(cut, 1);
}

Test(log_jstr, every_cut_is_valid_json_and_a_prefix)
{
    const char *s = "/p\"\\\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff/x";
    char *full = decoded(jstr(s, 200, &(int){0}));
    for (size_t max = 6; max < 60; max++) {
        int cut;
        char *got = decoded(jstr(s, max, &cut));
        cr_assert_eq(strncmp(full, got, strlen(got)), 0,
                     "max %zu: %s is not a prefix of %s", max, got, full);
        cr_assert_eq(cut, strlen(got) < strlen(full), "max %zu", max);
        free(got);
    }
    free(full);
}

static json_t *parse_line(const char *line, size_t n)
{
    cr_assert_leq(n, PC_LOG_LINE_MAX);
    cr_assert_eq(strlen(line), n);
    cr_assert_eq(line[n - 1], '\n');
    cr_assert_null(memchr(line, '\n', n - 1), "a line break inside the line");
    json_error_t err;
    json_t *o = json_loadb(line, n - 1, 0, &err);
    cr_assert(o != NULL, "invalid JSON line (%s): %s", err.text, line);
    static const char *const keys[] = {"ts",
                                       "request_id",
                                       "client_ip",
                                       "method",
                                       "path",
                                       "status",
                                       "bytes_in",
                                       "bytes_out",
                                       "duration_ms",
                                       "route",
                                       "upstream_target",
                                       "upstream_ms",
                                       "cache",
                                       "user",
                                       "tls",
                                       "error",
                                       "truncated"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(json_object_get(o, keys[i]) != NULL, "no %s in %s", keys[i],
                  line);
    cr_assert_eq(json_object_size(o), sizeof keys / sizeof *keys);
    return o;
}

static char *repeat(const char *unit, size_t times, const char *prefix)
{
    size_t u = strlen(unit), p = strlen(prefix);
    char *s = malloc(p + u * times + 1);
    memcpy(s, prefix, p);
    for (size_t i = 0; i < times; i++)
        memcpy(s + p + i * u, unit, u);
    s[p + u * times] = '\0';
    return s;
}

static pc_access_fields fields(void)
{
    pc_access_fields f = {
        .ts_ms = 1795447168123LL, /* 2026-11-23T15:19:28.123Z */
        .request_id = "0123456789abcdef0123456789abcdef",
        .client_ip = "203.0.113.7",
        .method = "GET",
        .path = "/api/orders",
        .status = 403,
        .bytes_in = 120,
        .bytes_out = 140,
        .duration_ms = 1.25,
        .route = "orders",
        .upstream_target = NULL,
        .upstream_ms = 0,
        .user = NULL,
        .tls = "TLSv1.3",
        .error = "forbidden",
    };
    return f;
}

Test(log_line, short_line_is_whole)
{
    pc_access_fields f = fields();
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    cr_assert_str_eq(json_string_value(json_object_get(o, "ts")),
                     "2026-11-23T15:19:28.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")),
                     "/api/orders");
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 403);
    cr_assert(json_is_false(json_object_get(o, "truncated")));
    cr_assert(json_is_null(json_object_get(o, "upstream_ms")));
    cr_assert(json_is_null(json_object_get(o, "user")));
    cr_assert(json_is_null(json_object_get(o, "cache")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")),
                     "forbidden");
    json_decref(o);
}

Test(log_line, long_path_is_cut_not_dropped)
{
    pc_access_fields f = fields();
    char *path = repeat("a", 7 * 1024, "/deny/");
    f.path = path;
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    const char *p = json_string_value(json_object_get(o, "path"));
    cr_assert_gt(strlen(p), 3000, "path cut to %zu bytes", strlen(p));
    cr_assert_eq(strncmp(p, path, strlen(p)), 0);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 403);
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")),
                     "forbidden");
    json_decref(o);
    free(path);
}

Test(log_line, every_field_long_and_escaped_still_fits)
{
    pc_access_fields f = fields();
    char *path = repeat("\"\x01\xc3\xa9", 3000, "/");
    char *user = repeat("\xf0\x9f\x98\x80\\", 3000, "u");
    char *route = repeat("r\"", 3000, "");
    char *target = repeat("\x02", 3000, "http://");
    char *rid = repeat("i", 5000, "");
    f.path = path;
    f.user = user;
    f.route = route;
    f.upstream_target = target;
    f.upstream_ms = 1e300;
    f.duration_ms = 1e300;
    f.request_id = rid;
    f.method = route;
    f.client_ip = route;
    f.tls = route;
    f.error = route;
    f.cache = route;
    f.bytes_in = f.bytes_out = INT64_MAX; /* jansson reads int64 at most */
    f.status = -2147483647 - 1;
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    const char *up = json_string_value(json_object_get(o, "upstream_target"));
    cr_assert_eq(strncmp(up, target, strlen(up)), 0);
    cr_assert_gt(strlen(json_string_value(json_object_get(o, "path"))), 100);
    cr_assert_gt(strlen(json_string_value(json_object_get(o, "user"))), 100);
    json_decref(o);
    free(path);
    free(user);
    free(route);
    free(target);
    free(rid);
}

Test(log_line, path_just_fitting_is_not_cut)
{
    pc_access_fields f = fields();
    char probe[PC_LOG_LINE_MAX + 1];
    f.path = "";
    size_t base = pc_log_format_access(probe, &f);
    /* the empty-path line with "false" is base bytes: the path may take
     * exactly the rest */
    char *path = repeat("b", PC_LOG_LINE_MAX - base, "");
    f.path = path;
    size_t n = pc_log_format_access(out, &f);
    cr_assert_eq(n, PC_LOG_LINE_MAX);
    json_t *o = parse_line(out, n);
    cr_assert(json_is_false(json_object_get(o, "truncated")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")), path);
    json_decref(o);
    free(path);
    path = repeat("b", PC_LOG_LINE_MAX - base + 1, "");
    f.path = path;
    n = pc_log_format_access(out, &f);
    o = parse_line(out, n);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    free(path);
}
