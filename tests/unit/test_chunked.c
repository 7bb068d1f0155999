/* The strict chunked decoder: valid bodies decode to the right bytes
 * whatever way the input is split, and every ambiguity the contract names
 * (bad sizes, missing CRLF after data, bare LF, obs-fold in trailers,
 * overflow) is an error. */
#include <criterion/criterion.h>
#include <string.h>

#include "portcullis/chunked.h"

typedef struct sink {
    char buf[4096];
    size_t n;
} sink;

static void collect(void *ctx, const char *p, size_t n)
{
    sink *s = ctx;
    cr_assert_leq(s->n + n, sizeof s->buf);
    memcpy(s->buf + s->n, p, n);
    s->n += n;
}

/* Decodes text split into pieces of `step` bytes; returns the status and
 * where decoding stopped (in the whole text). */
static pc_chunked_status run(const char *text, size_t step, sink *s,
                             size_t *stop)
{
    pc_chunked c;
    pc_chunked_init(&c, 256, 16);
    size_t len = strlen(text), off = 0;
    const char *err = NULL;
    memset(s, 0, sizeof *s);
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used = 0;
        pc_chunked_status st = pc_chunked_decode(&c, text + off, n, &used,
                                                 collect, s, &err);
        off += used;
        if (st != PC_CHUNKED_MORE) {
            *stop = off;
            if (st == PC_CHUNKED_ERROR)
                cr_assert_not_null(err);
            return st;
        }
    }
    *stop = off;
    return PC_CHUNKED_MORE;
}

Test(chunked, decodes_any_split)
{
    const char *t = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for (size_t step = 1; step <= strlen(t); step++) {
        sink s;
        size_t stop;
        cr_assert_eq(run(t, step, &s, &stop), PC_CHUNKED_DONE, "step %zu", step);
        cr_assert_eq(s.n, 11);
        cr_assert(memcmp(s.buf, "hello world", 11) == 0);
        cr_assert_str_eq(t + stop, "NEXT", "stops right after the body");
    }
}

Test(chunked, hex_both_cases_and_zero_padding)
{
    sink s;
    size_t stop;
    cr_assert_eq(run("000a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", 7,
                     &s, &stop),
                 PC_CHUNKED_DONE);
    cr_assert_eq(s.n, 20);
}

Test(chunked, incomplete_is_more)
{
    sink s;
    size_t stop;
    cr_assert_eq(run("5\r\nhel", 100, &s, &stop), PC_CHUNKED_MORE);
    cr_assert_eq(run("5\r\nhello\r\n0\r\n", 100, &s, &stop), PC_CHUNKED_MORE);
}

Test(chunked, rejects_ambiguities)
{
    static const char *const bad[] = {
        "zz\r\nhello\r\n0\r\n\r\n",           /* not hex */
        "-5\r\nhello\r\n0\r\n\r\n",           /* negative */
        "\r\nhello\r\n0\r\n\r\n",             /* empty size */
        "5 \r\nhello\r\n0\r\n\r\n",           /* space after size */
        "5\nhello\r\n0\r\n\r\n",              /* bare LF after size */
        "5\r\nhelloXX0\r\n\r\n",              /* data not followed by CRLF */
        "5\r\nhello\n0\r\n\r\n",              /* bare LF after data */
        "5\r\nhello\r\n0\r\n\n",              /* bare LF at the end */
        "5\r\nhello\r\n0\r\nX: 1\nY: 2\r\n\r\n", /* bare LF in trailer */
        "5\r\nhello\r\n0\r\nX: 1\r\n folded\r\n\r\n", /* obs-fold */
        "10000000000000000\r\n",              /* 17 digits: overflow */
        "5;a\nb\r\nhello\r\n0\r\n\r\n",       /* bare LF in extension */
        "5\r\nhello\r\r\n0\r\n\r\n",          /* CR CR LF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sink s;
        size_t stop;
        cr_assert_eq(run(bad[i], 3, &s, &stop), PC_CHUNKED_ERROR, "case %zu", i);
    }
}

Test(chunked, trailer_section_is_bounded)
{
    char t[1024] = "0\r\n";
    for (int i = 0; i < 40; i++)
        strcat(t, "X-Trailer: 123456789\r\n");
    strcat(t, "\r\n");
    sink s;
    size_t stop;
    cr_assert_eq(run(t, 64, &s, &stop), PC_CHUNKED_ERROR); /* over 256 */
}

Test(chunked, max_size_accepted)
{
    pc_chunked c;
    pc_chunked_init(&c, 64, 16);
    size_t used;
    const char *err;
    cr_assert_eq(pc_chunked_decode(&c, "ffffffffffffffff\r\nab", 20, &used,
                                   NULL, NULL, &err),
                 PC_CHUNKED_MORE);
    cr_assert_eq(c.left, UINT64_MAX - 2);
}

/* CONTRACT §2 "Trailers": each trailer line is a field line; a request
 * line after the last chunk is not swallowed as a trailer. */
Test(chunked, trailer_lines_must_be_fields)
{
    static const struct {
        const char *in;
        int ok;
    } rows[] = {
        {"0\r\nX-Sum: 1\r\n\r\n", 1},
        {"0\r\nX-A: 1\r\nX-B:\r\n\r\n", 1},
        {"0\r\nGET /admin HTTP/1.1\r\n\r\n", 0},
        {"0\r\nnocolon\r\n\r\n", 0},
        {"0\r\n: empty-name\r\n\r\n", 0},
        {"0\r\nBad Name: 1\r\n\r\n", 0},
        {"0\r\nX: a\x01" "b\r\n\r\n", 0},
        {"0\r\nX: a\x7f\r\n\r\n", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        pc_chunked c;
        size_t used = 0;
        const char *err = NULL;
        pc_chunked_init(&c, 256, 16);
        pc_chunked_status st = pc_chunked_decode(&c, rows[i].in, strlen(rows[i].in),
                                                 &used, NULL, NULL, &err);
        cr_assert_eq(st, rows[i].ok ? PC_CHUNKED_DONE : PC_CHUNKED_ERROR,
                     "row %zu: %d (%s)", i, st, err ? err : "");
    }
}

Test(chunked, trailer_fields_are_counted)
{
    const char *in = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    pc_chunked c;
    size_t used = 0;
    const char *err = NULL;
    pc_chunked_init(&c, 256, 3);
    cr_assert_eq(pc_chunked_decode(&c, in, strlen(in), &used, NULL, NULL, &err),
                 PC_CHUNKED_DONE);
    pc_chunked_init(&c, 256, 2);
    cr_assert_eq(pc_chunked_decode(&c, in, strlen(in), &used, NULL, NULL, &err),
                 PC_CHUNKED_ERROR);
    cr_assert_str_eq(err, "too many trailer fields");
}

/* RFC 9112 §7.1.1 extensions with BWS and quoted strings: accepted from
 * upstreams (pc_chunked_allow_bws), refused from clients. */
Test(chunked, extension_whitespace_by_mode)
{
    static const struct {
        const char *in;
        int strict_ok, bws_ok;
    } rows[] = {
        {"5;a=b\r\nhello\r\n0\r\n\r\n", 1, 1},
        {"5;a=\"b\\\"c\"\r\nhello\r\n0\r\n\r\n", 1, 1},
        {"5 ;a=b\r\nhello\r\n0\r\n\r\n", 0, 1},
        {"5\t ;a=b\r\nhello\r\n0\r\n\r\n", 0, 1},
        {"5;a=\"b\tc\"\r\nhello\r\n0\r\n\r\n", 0, 1},
        {"5 \r\nhello\r\n0\r\n\r\n", 0, 0},
        {"5 x\r\nhello\r\n0\r\n\r\n", 0, 0},
        {"5;a\nhello\r\n0\r\n\r\n", 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (int bws = 0; bws <= 1; bws++) {
            pc_chunked c;
            size_t used = 0;
            const char *err = NULL;
            pc_chunked_init(&c, 256, 16);
            if (bws)
                pc_chunked_allow_bws(&c);
            pc_chunked_status st = pc_chunked_decode(&c, rows[i].in, strlen(rows[i].in),
                                                     &used, NULL, NULL, &err);
            int ok = bws ? rows[i].bws_ok : rows[i].strict_ok;
            cr_assert_eq(st, ok ? PC_CHUNKED_DONE : PC_CHUNKED_ERROR,
                         "row %zu bws=%d: %d (%s)", i, bws, st, err ? err : "");
        }
}
