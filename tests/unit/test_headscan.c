/* Head line discipline (lib/headscan.c): one table for request heads, one
 * for response heads, fed whole and byte by byte (state across reads). */
#include <criterion/criterion.h>
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
