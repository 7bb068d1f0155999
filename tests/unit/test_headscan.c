/* Head line discipline (lib/headscan.c): one table for request heads, one
 * for response heads, fed whole and byte by byte (state across reads). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/headscan.h"

typedef struct {
    const char *in;
    pc_headscan_status st;
    size_t used; /* DONE: end of the head */
} row;

static pc_headscan_status run(const char *in, int response, int bytewise,
                              size_t *used)
{
    pc_headscan s;
    pc_headscan_init(&s, response);
    size_t n = strlen(in), off = 0, u = 0;
    const char *why = NULL;
    while (off < n) {
        size_t k = bytewise ? 1 : n - off;
        pc_headscan_status st = pc_headscan_feed(&s, in + off, k, &u, &why);
        if (st != PC_HEADSCAN_MORE) {
            *used = off + u;
            if (st == PC_HEADSCAN_ERROR)
                cr_assert(why && *why);
            return st;
        }
        off += k;
    }
    *used = n;
    return PC_HEADSCAN_MORE;
}

static void check(const row *rows, size_t n, int response)
{
    for (size_t i = 0; i < n; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            size_t used = 0;
            pc_headscan_status st = run(rows[i].in, response, bytewise, &used);
            cr_assert_eq(st, rows[i].st, "row %zu bytewise=%d: %d", i, bytewise, st);
            if (st == PC_HEADSCAN_DONE)
                cr_assert_eq(used, rows[i].used, "row %zu: used %zu", i, used);
        }
}

Test(headscan, request_heads)
{
    static const row rows[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", PC_HEADSCAN_DONE, 27},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x", PC_HEADSCAN_DONE, 27},
        {"\r\nGET / HTTP/1.1\r\n\r\n", PC_HEADSCAN_DONE, 20},
        {"GET / HTTP/1.1\r\nHost: a\r\n", PC_HEADSCAN_MORE, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r", PC_HEADSCAN_MORE, 0},
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"GET / HTTP/1.1\r\nHost: a\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"GET / HTTP/1.1\r\nX-A: a\rContent-Length: 3\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n\rX", PC_HEADSCAN_ERROR, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 0200 OK\r\n\r\n", PC_HEADSCAN_DONE, 20}, /* not checked */
    };
    check(rows, sizeof rows / sizeof rows[0], 0);
}

Test(headscan, response_heads)
{
    static const row rows[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", PC_HEADSCAN_DONE, 38},
        {"HTTP/1.0 404 Not Found\r\n\r\n", PC_HEADSCAN_DONE, 26},
        {"HTTP/1.1 204\r\n\r\n", PC_HEADSCAN_DONE, 16},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", PC_HEADSCAN_DONE, 25},
        {"HTTP/1.1 0200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 20 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 2000 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 20\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/2.0 200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.2 200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"http/1.1 200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1  200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"\r\nHTTP/1.1 200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"\x01HTTP/1.1 200 OK\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 200 OK\r\nX: a\r\n\rZ", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 200 OK\nX: a\r\n\r\n", PC_HEADSCAN_ERROR, 0},
        {"HTTP/1.1 200 OK\r\n folded\r\n\r\n", PC_HEADSCAN_ERROR, 0},
    };
    check(rows, sizeof rows / sizeof rows[0], 1);
}

/* The byte-at-a-time scanner headscan.c was before lines were skipped in
 * a tight loop: the fast path must agree with it on every input, however
 * the input is split across calls (status, offset and reason). */
static int ref_status_byte(size_t i, unsigned char ch)
{
    static const char pre[] = "HTTP/1.";
    if (i < 7)
        return ch == (unsigned char)pre[i];
    if (i == 7)
        return ch == '0' || ch == '1';
    if (i == 8)
        return ch == ' ';
    if (i < 12)
        return ch >= '0' && ch <= '9';
    return ch == ' ' || ch == '\r';
}

static pc_headscan_status ref_feed(pc_headscan *s, const char *in, size_t n,
                                   size_t *used, const char **why)
{
#define REF_BAD(msg) return (*used = i, *why = (msg), PC_HEADSCAN_ERROR)
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (s->prev == '\r' && ch != '\n')
            REF_BAD("bare CR in the message head");
        if (ch == '\n') {
            if (s->prev != '\r')
                REF_BAD("bare LF in the message head");
            if (s->response && s->lines == 0 && s->linelen < 12)
                REF_BAD("invalid status line");
            s->prev = ch;
            if (s->linelen == 0 && s->lines > 0) {
                *used = i + 1;
                return PC_HEADSCAN_DONE;
            }
            if (s->linelen > 0)
                s->lines++;
            else if (++s->empty > PC_HEADSCAN_MAX_EMPTY)
                REF_BAD("too many empty lines before the request");
            s->linelen = 0;
            continue;
        }
        if (s->response && s->lines == 0 && s->linelen <= 12 &&
            !ref_status_byte(s->linelen, ch))
            REF_BAD("invalid status line");
        if (ch != '\r') {
            if (s->linelen == 0 && s->lines > 0 && (ch == ' ' || ch == '\t'))
                REF_BAD("obs-fold in the message head");
            s->linelen++;
        }
        s->prev = ch;
    }
#undef REF_BAD
    *used = n;
    return PC_HEADSCAN_MORE;
}

/* Feeds in[0..n) in pieces of random sizes; returns the status, the
 * absolute offset (*used) and the reason. */
static pc_headscan_status feed_split(int ref, const char *in, size_t n,
                                     int response, unsigned *seed,
                                     size_t *used, const char **why)
{
    pc_headscan s;
    pc_headscan_init(&s, response);
    size_t off = 0;
    *why = NULL;
    while (off < n) {
        size_t k = 1 + (size_t)(rand_r(seed) % 24);
        if (k > n - off)
            k = n - off;
        size_t u = 0;
        pc_headscan_status st = ref ? ref_feed(&s, in + off, k, &u, why)
                                    : pc_headscan_feed(&s, in + off, k, &u, why);
        if (st != PC_HEADSCAN_MORE) {
            *used = off + u;
            return st;
        }
        off += k;
    }
    *used = n;
    return PC_HEADSCAN_MORE;
}

Test(headscan, fast_path_matches_byte_loop)
{
    static const char plain[] = "abc:xyz HTTP/1.0 2\t";
    static const char *const ends[] = {"\n", "\r", "\rX", "\r\n ", "\r\n\t",
                                       "\r\r\n", "\n\r"};
    static const char *const starts[] = {"", "HTTP/1.1 200 OK\r\n",
                                         "GET / HTTP/1.1\r\n", "HTTP/1.", "\r\n",
                                         "HTTP/1.0 404"};
    char buf[400];
    unsigned rounds = 0, done = 0, errors = 0;
    for (unsigned iter = 0; iter < 100000; iter++) {
        unsigned gen = iter * 2654435761u + 1;
        const char *st0 = starts[rand_r(&gen) % 6];
        size_t n = strlen(st0);
        memcpy(buf, st0, n);
        /* lines of plain bytes, mostly ended by CRLF; now and then a bad
         * ending, a fold or an empty line */
        while (n < sizeof buf - 40 && rand_r(&gen) % 12) {
            size_t k = (size_t)(rand_r(&gen) % 30);
            for (size_t j = 0; j < k; j++)
                buf[n++] = plain[rand_r(&gen) % (sizeof plain - 1)];
            const char *e = rand_r(&gen) % 40 ? "\r\n" : ends[rand_r(&gen) % 7];
            memcpy(buf + n, e, strlen(e));
            n += strlen(e);
        }
        for (int response = 0; response <= 1; response++) {
            unsigned s1 = iter, s2 = iter;
            size_t u1 = 0, u2 = 0;
            const char *w1 = NULL, *w2 = NULL;
            pc_headscan_status a = feed_split(1, buf, n, response, &s1, &u1, &w1);
            pc_headscan_status b = feed_split(0, buf, n, response, &s2, &u2, &w2);
            cr_assert_eq(a, b, "iter %u response %d: status %d vs %d", iter,
                         response, a, b);
            cr_assert_eq(u1, u2, "iter %u response %d: used %zu vs %zu", iter,
                         response, u1, u2);
            if (a == PC_HEADSCAN_ERROR)
                cr_assert_str_eq(w1, w2);
            rounds++;
            done += a == PC_HEADSCAN_DONE;
            errors += a == PC_HEADSCAN_ERROR;
        }
    }
    /* the inputs reach every outcome, not only errors */
    cr_assert(done > 1000 && errors > 1000 && rounds - done - errors > 1000,
              "done %u errors %u more %u", done, errors, rounds - done - errors);
}

/* The servers' read step: the limit (one byte past it counts), the cut at
 * the head's end, nothing scanned once the end was seen. */
Test(headscan, window_limits_cuts_and_stops_scanning)
{
    pc_headscan s;
    size_t feed = 99;
    const char *why = NULL;
    const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
    pc_headscan_init(&s, 0);
    /* 10 bytes of head so far, max 12: 3 bytes may count */
    cr_assert_eq(pc_headscan_window(&s, head, 5, 10, 12, &feed, &why),
                 PC_HEADSCAN_MORE);
    cr_assert_eq(feed, 3);
    /* a whole head in one read: llhttp gets it and not the body */
    pc_headscan_init(&s, 0);
    cr_assert_eq(pc_headscan_window(&s, head, sizeof head - 1, 0, 1024, &feed, &why),
                 PC_HEADSCAN_DONE);
    cr_assert_eq(feed, sizeof head - 1 - 4);
    cr_assert_eq(s.done, 1);
    /* after the end: not scanned again (a bare CR would be an error) */
    cr_assert_eq(pc_headscan_window(&s, "a\rb", 3, 30, 1024, &feed, &why),
                 PC_HEADSCAN_MORE);
    cr_assert_eq(feed, 3);
    /* a bare CR in the head */
    pc_headscan_init(&s, 0);
    cr_assert_eq(pc_headscan_window(&s, "GET / HTTP/1.1\rX", 16, 0, 1024, &feed, &why),
                 PC_HEADSCAN_ERROR);
    cr_assert_not_null(why);
    /* at the limit already: nothing counts */
    pc_headscan_init(&s, 0);
    cr_assert_eq(pc_headscan_window(&s, "abc", 3, 13, 12, &feed, &why),
                 PC_HEADSCAN_MORE);
    cr_assert_eq(feed, 0);
}
