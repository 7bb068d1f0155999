/* Message framing (http/framing.c): one table for requests, one for
 * responses, the checked Content-Length parse and the outgoing framing
 * field. Each row is a header section as a parser would hand it over. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "portcullis/framing.h"
#include "portcullis/hwrite.h"

static pc_arena *arena;

static void setup(void)
{
    arena = pc_arena_new();
}

static void teardown(void)
{
    pc_arena_free(arena);
}

TestSuite(framing, .init = setup, .fini = teardown);

/* "Name: value|Name: value" into a header list. */
static pc_headers fields(const char *spec)
{
    pc_headers h = {0};
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *f = strtok_r(buf, "|", &save); f;
         f = strtok_r(NULL, "|", &save)) {
        char *colon = strchr(f, ':');
        cr_assert(colon);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        pc_headers_add(&h, arena, f, (size_t)(colon - f), v, strlen(v));
    }
    return h;
}

typedef struct {
    const char *spec;
    int minor;
    int ok;
    pc_frame_kind kind;
    uint64_t length;
    int close_after;
} req_row;

Test(framing, request_table)
{
    static const req_row rows[] = {
        {"Host: a", 1, 1, PC_FRAME_NONE, 0, 0},
        {"Content-Length: 0", 1, 1, PC_FRAME_LENGTH, 0, 0},
        {"Content-Length: 5", 1, 1, PC_FRAME_LENGTH, 5, 0},
        {"content-length: 9223372036854775807", 1, 1, PC_FRAME_LENGTH,
         9223372036854775807ull, 0},
        {"content-length: 18446744073709551615", 1, 0, 0, 0, 0},
        {"Content-Length: 9223372036854775808", 1, 0, 0, 0, 0},
        {"Content-Length: 18446744073709551616", 1, 0, 0, 0, 0},
        {"Content-Length: 99999999999999999999999", 1, 0, 0, 0, 0},
        {"Content-Length: -1", 1, 0, 0, 0, 0},
        {"Content-Length: +5", 1, 0, 0, 0, 0},
        {"Content-Length: 0x10", 1, 0, 0, 0, 0},
        {"Content-Length: 5, 5", 1, 0, 0, 0, 0},
        {"Content-Length: ", 1, 0, 0, 0, 0},
        {"Content-Length: 5|Content-Length: 5", 1, 0, 0, 0, 0},
        {"Content-Length: 5|Content-Length: 6", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: chunked", 1, 1, PC_FRAME_CHUNKED, 0, 0},
        {"Transfer-Encoding: CHUNKED", 1, 1, PC_FRAME_CHUNKED, 0, 0},
        {"Transfer-Encoding: chunked", 0, 1, PC_FRAME_CHUNKED, 0, 1},
        {"Transfer-Encoding: gzip, chunked", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: gzip|Transfer-Encoding: chunked", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: chunked|Transfer-Encoding: chunked", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: chunked, identity", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: identity", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: xchunked", 1, 0, 0, 0, 0},
        {"Transfer-Encoding: chunked|Content-Length: 5", 1, 0, 0, 0, 0},
        {"Content-Length: 0|Transfer-Encoding: chunked", 1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const req_row *r = &rows[i];
        pc_headers h = fields(r->spec);
        pc_framing f;
        const char *why = NULL;
        int rc = pc_framing_request(&h, r->minor, &f, &why);
        cr_assert_eq(rc == 0, r->ok, "row %zu (%s): rc %d", i, r->spec, rc);
        if (!r->ok) {
            cr_assert(why && *why, "row %zu has a reason", i);
            continue;
        }
        cr_assert_eq(f.kind, r->kind, "row %zu (%s)", i, r->spec);
        cr_assert_eq(f.length, r->length, "row %zu (%s)", i, r->spec);
        cr_assert_eq(f.close_after, r->close_after, "row %zu (%s)", i, r->spec);
    }
}

typedef struct {
    const char *spec;
    int status, head;
    int ok;
    pc_frame_kind kind;
    uint64_t length;
    int has_length;
} resp_row;

Test(framing, response_table)
{
    static const resp_row rows[] = {
        {"Content-Length: 5", 200, 0, 1, PC_FRAME_LENGTH, 5, 1},
        {"Content-Length: 0", 200, 0, 1, PC_FRAME_LENGTH, 0, 1},
        {"Server: x", 200, 0, 1, PC_FRAME_CLOSE, 0, 0},
        {"Transfer-Encoding: chunked", 200, 0, 1, PC_FRAME_CHUNKED, 0, 0},
        {"Content-Length: 5", 200, 1, 1, PC_FRAME_NONE, 5, 1},
        {"Transfer-Encoding: chunked", 200, 1, 1, PC_FRAME_NONE, 0, 0},
        {"Content-Length: 5", 304, 0, 1, PC_FRAME_NONE, 5, 1},
        {"Content-Length: 5", 204, 0, 1, PC_FRAME_NONE, 0, 0},
        {"Server: x", 204, 0, 1, PC_FRAME_NONE, 0, 0},
        /* 1xx: ends at its header section, whatever it says */
        {"Content-Length: 76", 100, 0, 1, PC_FRAME_INTERIM, 0, 0},
        {"Server: x", 103, 0, 1, PC_FRAME_INTERIM, 0, 0},
        {"Server: x", 101, 0, 0, 0, 0, 0},
        {"Server: x", 0, 0, 0, 0, 0, 0},
        {"Server: x", 99, 0, 0, 0, 0, 0},
        {"Server: x", 600, 0, 0, 0, 0, 0},
        {"Server: x", 999, 0, 0, 0, 0, 0},
        {"Content-Length: 18446744073709551616", 200, 0, 0, 0, 0, 0},
        {"Content-Length: 18446744073709551615", 200, 0, 0, 0, 0, 0},
        {"Content-Length: 9223372036854775808", 200, 0, 0, 0, 0, 0},
        {"Content-Length: 1|Content-Length: 1", 200, 0, 0, 0, 0, 0},
        {"Content-Length: 1|Transfer-Encoding: chunked", 200, 0, 0, 0, 0, 0},
        {"Transfer-Encoding: gzip, chunked", 200, 0, 0, 0, 0, 0},
        {"Transfer-Encoding: gzip", 200, 0, 0, 0, 0, 0},
        {"Content-Length: abc", 200, 1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const resp_row *r = &rows[i];
        pc_headers h = fields(r->spec);
        pc_framing f;
        const char *why = NULL;
        int rc = pc_framing_response(&h, r->status, r->head, &f, &why);
        cr_assert_eq(rc == 0, r->ok, "row %zu (%d %s): rc %d", i, r->status,
                     r->spec, rc);
        if (!r->ok) {
            cr_assert(why && *why);
            continue;
        }
        cr_assert_eq(f.kind, r->kind, "row %zu (%d %s)", i, r->status, r->spec);
        cr_assert_eq(f.length, r->length, "row %zu", i);
        cr_assert_eq(f.has_length, r->has_length, "row %zu", i);
    }
}

Test(framing, parse_length_checks_range)
{
    uint64_t v = 7;
    cr_assert_eq(pc_framing_parse_length("0", 1, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(pc_framing_parse_length("9223372036854775807", 19, &v), 0);
    cr_assert_eq(v, (uint64_t)INT64_MAX);
    v = 7;
    cr_assert_eq(pc_framing_parse_length("9223372036854775808", 19, &v), -1);
    cr_assert_eq(pc_framing_parse_length("18446744073709551615", 20, &v), -1);
    cr_assert_eq(pc_framing_parse_length("18446744073709551616", 20, &v), -1);
    cr_assert_eq(v, 7, "untouched on error");
    cr_assert_eq(pc_framing_parse_length("", 0, &v), -1);
    cr_assert_eq(pc_framing_parse_length(" 1", 2, &v), -1);
    cr_assert_eq(pc_framing_parse_length("1 ", 2, &v), -1);
}

static char *written(const pc_framing *f, int status)
{
    struct evbuffer *b = evbuffer_new();
    pc_hwrite w;
    pc_hw_init(&w, b);
    pc_framing_write_header(f, status, &w);
    pc_hw_flush(&w);
    size_t n = evbuffer_get_length(b);
    char *s = pc_arena_alloc(arena, n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

Test(framing, outgoing_field)
{
    pc_framing len = {.kind = PC_FRAME_LENGTH, .length = 42, .has_length = 1};
    pc_framing ck = {.kind = PC_FRAME_CHUNKED};
    pc_framing cl = {.kind = PC_FRAME_CLOSE};
    pc_framing head = {.kind = PC_FRAME_NONE, .length = 9, .has_length = 1};
    pc_framing none = {.kind = PC_FRAME_NONE};

    cr_assert_str_eq(written(&len, 200), "Content-Length: 42\r\n");
    cr_assert_str_eq(written(&len, 0), "Content-Length: 42\r\n");
    cr_assert_str_eq(written(&head, 200), "Content-Length: 9\r\n");
    cr_assert_str_eq(written(&head, 204), "");
    cr_assert_str_eq(written(&none, 200), "");

    pc_framing o = pc_framing_out(&ck, 1);
    cr_assert_eq(o.kind, PC_FRAME_CHUNKED);
    cr_assert_str_eq(written(&o, 200), "Transfer-Encoding: chunked\r\n");
    o = pc_framing_out(&cl, 1);
    cr_assert_eq(o.kind, PC_FRAME_CHUNKED, "close-delimited re-chunked for 1.1");
    o = pc_framing_out(&ck, 0);
    cr_assert_eq(o.kind, PC_FRAME_CLOSE, "HTTP/1.0 clients get close-delimited");
    cr_assert_str_eq(written(&o, 200), "");
    o = pc_framing_out(&len, 0);
    cr_assert_eq(o.kind, PC_FRAME_LENGTH);
    cr_assert_eq(o.length, 42);
}

Test(framing, has_body)
{
    pc_framing f = {.kind = PC_FRAME_LENGTH, .length = 0};
    cr_assert(!pc_framing_has_body(&f));
    f.length = 1;
    cr_assert(pc_framing_has_body(&f));
    f = (pc_framing){.kind = PC_FRAME_CHUNKED};
    cr_assert(pc_framing_has_body(&f));
    f = (pc_framing){.kind = PC_FRAME_NONE, .length = 5, .has_length = 1};
    cr_assert(!pc_framing_has_body(&f));
    f = (pc_framing){.kind = PC_FRAME_INTERIM};
    cr_assert(!pc_framing_has_body(&f));
}
