/* lib/encoding.c: Accept-Encoding negotiation (RFC 9110 §12.5.3) and the
 * streaming encoders, round-tripped through zlib and libzstd's decoders
 * (br is decoded in the end-to-end tests by the brotli tool). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "portcullis/encoding.h"

static pc_enc pick(const char *v, unsigned offered)
{
    pc_accept_enc a;
    pc_accept_enc_init(&a);
    if (v)
        pc_accept_enc_feed(&a, v, strlen(v));
    return pc_accept_enc_pick(&a, offered);
}

Test(encoding, accept_encoding_choices)
{
    cr_assert_eq(pick(NULL, PC_ENC_ALL), PC_ENC_IDENTITY);
    cr_assert_eq(pick("", PC_ENC_ALL), PC_ENC_IDENTITY);
    cr_assert_eq(pick("gzip, deflate, br", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("gzip, deflate, br, zstd", PC_ENC_ALL), PC_ENC_ZSTD);
    cr_assert_eq(pick("gzip;q=0.9, br;q=0.8", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("gzip ; q=0.9 , br ;Q=1", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("*", PC_ENC_ALL), PC_ENC_ZSTD);
    cr_assert_eq(pick("*", 1u << PC_ENC_GZIP), PC_ENC_GZIP);
    cr_assert_eq(pick("*;q=0", PC_ENC_ALL), PC_ENC_IDENTITY);
    cr_assert_eq(pick("*, zstd;q=0, br;q=0", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("identity;q=1, gzip;q=0.5", PC_ENC_ALL), PC_ENC_IDENTITY);
    cr_assert_eq(pick("identity;q=0.5, gzip;q=0.5", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("x-gzip", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("br", 1u << PC_ENC_GZIP), PC_ENC_IDENTITY);
    /* named twice: the better rating counts */
    cr_assert_eq(pick("gzip;q=0, gzip;q=0.5", PC_ENC_ALL), PC_ENC_GZIP);
}

Test(encoding, malformed_elements_are_ignored)
{
    cr_assert_eq(pick("gzip;q=1.5, br", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("gzip;q=0.1234, br;q=0.1", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("gzip;q=, br;q=0.1", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("gzip junk, br;q=0.1", PC_ENC_ALL), PC_ENC_BR);
    cr_assert_eq(pick("gzip;q=.5", PC_ENC_ALL), PC_ENC_IDENTITY);
    cr_assert_eq(pick(",,, ,gzip,,", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("gzip;level=9;q=0.7, br;q=0.6", PC_ENC_ALL), PC_ENC_GZIP);
    cr_assert_eq(pick("\"gzip\"", PC_ENC_ALL), PC_ENC_IDENTITY);
}

Test(encoding, repeated_fields_accumulate)
{
    pc_accept_enc a;
    pc_accept_enc_init(&a);
    pc_accept_enc_feed(&a, "gzip;q=0.2", 10);
    pc_accept_enc_feed(&a, "zstd;q=0.3", 10);
    cr_assert_eq(pc_accept_enc_pick(&a, PC_ENC_ALL), PC_ENC_ZSTD);
}

typedef struct {
    unsigned char *p;
    size_t n, cap;
    size_t max_piece;
} outbuf;

static int collect(void *arg, const char *d, size_t n)
{
    outbuf *o = arg;
    if (n > o->max_piece)
        o->max_piece = n;
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
        cr_assert_not_null(o->p);
    }
    memcpy(o->p + o->n, d, n);
    o->n += n;
    return 0;
}

static char *text(size_t n)
{
    char *t = malloc(n + 64);
    size_t k = 0;
    for (unsigned i = 0; k < n; i++)
        k += (size_t)snprintf(t + k, 64, "{\"id\": %u, \"v\": \"item-%u\"}\n", i,
                              i % 97);
    return t;
}

/* Feeds `t` in pieces of `step` bytes, then finishes. */
static outbuf encode(pc_enc e, const char *t, size_t n, size_t step,
                     uint64_t hint)
{
    outbuf o = {0};
    pc_encoder *enc = pc_encoder_new(e, hint);
    cr_assert_not_null(enc);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        cr_assert_eq(pc_encoder_run(enc, t + off, k, 0, collect, &o), 0);
    }
    cr_assert_eq(pc_encoder_run(enc, NULL, 0, 1, collect, &o), 0);
    cr_assert_eq(pc_encoder_in(enc), n);
    cr_assert_eq(pc_encoder_out(enc), o.n);
    /* finished: more input is refused */
    cr_assert_eq(pc_encoder_run(enc, "x", 1, 0, collect, &o), -1);
    pc_encoder_free(enc);
    cr_assert_leq(o.max_piece, PC_ENC_OUT);
    return o;
}

static void check_gzip(const outbuf *o, const char *t, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    unsigned char *out = malloc(n + 1);
    z.next_in = o->p;
    z.avail_in = (uInt)o->n;
    z.next_out = out;
    z.avail_out = (uInt)n + 1;
    cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    cr_assert_eq(z.total_out, n);
    cr_assert_eq(memcmp(out, t, n), 0);
    inflateEnd(&z);
    free(out);
}

static void check_zstd(const outbuf *o, const char *t, size_t n)
{
    unsigned char *out = malloc(n + 1);
    ZSTD_DStream *d = ZSTD_createDStream();
    ZSTD_inBuffer in = {o->p, o->n, 0};
    ZSTD_outBuffer ob = {out, n + 1, 0};
    size_t r;
    do
        r = ZSTD_decompressStream(d, &ob, &in);
    while (!ZSTD_isError(r) && r != 0 && in.pos < in.size);
    cr_assert(!ZSTD_isError(r));
    cr_assert_eq(r, 0, "frame complete");
    cr_assert_eq(ob.pos, n);
    cr_assert_eq(memcmp(out, t, n), 0);
    ZSTD_freeDStream(d);
    free(out);
}

Test(encoding, gzip_round_trips_any_piece_size)
{
    size_t sizes[] = {0, 1, 1000, 70000, 3u << 20};
    size_t steps[] = {1, 7, 4096, 1u << 20};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 4; j++) {
            if (sizes[i] > 100000 && steps[j] < 4096)
                continue;
            char *t = text(sizes[i]);
            outbuf o = encode(PC_ENC_GZIP, t, sizes[i], steps[j],
                              j % 2 ? sizes[i] : 0);
            check_gzip(&o, t, sizes[i]);
            if (sizes[i] > 1000)
                cr_assert_lt(o.n, sizes[i] / 3, "compresses");
            free(o.p);
            free(t);
        }
}

Test(encoding, zstd_round_trips_any_piece_size)
{
    size_t sizes[] = {0, 1, 1000, 70000, 3u << 20};
    size_t steps[] = {1, 7, 4096, 1u << 20};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 4; j++) {
            if (sizes[i] > 100000 && steps[j] < 4096)
                continue;
            char *t = text(sizes[i]);
            outbuf o = encode(PC_ENC_ZSTD, t, sizes[i], steps[j],
                              j % 2 ? sizes[i] : 0);
            check_zstd(&o, t, sizes[i]);
            free(o.p);
            free(t);
        }
}

Test(encoding, brotli_produces_a_finished_stream)
{
    char *t = text(200000);
    outbuf o = encode(PC_ENC_BR, t, 200000, 5000, 0);
    cr_assert_gt(o.n, 0);
    cr_assert_lt(o.n, 200000 / 3);
    free(o.p);
    free(t);
}

static int refuse(void *arg, const char *d, size_t n)
{
    (void)arg;
    (void)d;
    (void)n;
    return 1;
}

Test(encoding, emit_failure_is_reported)
{
    char *t = text(100000);
    pc_encoder *enc = pc_encoder_new(PC_ENC_GZIP, 0);
    cr_assert_eq(pc_encoder_run(enc, t, 100000, 1, refuse, NULL), -1);
    pc_encoder_free(enc);
    cr_assert_null(pc_encoder_new(PC_ENC_IDENTITY, 0));
    free(t);
}

Test(encoding, pool_reuses_gzip_and_zstd_streams)
{
    pc_encoder_pool *p = pc_encoder_pool_new();
    char *t = text(50000);
    for (int kind = 0; kind < 2; kind++) {
        pc_enc e = kind ? PC_ENC_ZSTD : PC_ENC_GZIP;
        pc_encoder *first = NULL;
        for (int round = 0; round < 3; round++) {
            pc_encoder *enc = pc_encoder_get(p, e, 50000);
            cr_assert_not_null(enc);
            if (round == 0)
                first = enc;
            else
                cr_assert_eq(enc, first, "the finished stream is reused");
            outbuf o = {0};
            /* round 2 gives it back unfinished: a reset still starts clean */
            cr_assert_eq(pc_encoder_run(enc, t, 50000, round != 1, collect, &o), 0);
            if (round != 1) {
                cr_assert_eq(pc_encoder_in(enc), 50000);
                if (kind)
                    check_zstd(&o, t, 50000);
                else
                    check_gzip(&o, t, 50000);
            }
            free(o.p);
            pc_encoder_put(p, enc);
        }
    }
    /* another window size: not the pooled gzip stream, still correct */
    pc_encoder *small = pc_encoder_get(p, PC_ENC_GZIP, 600);
    outbuf o = {0};
    cr_assert_eq(pc_encoder_run(small, t, 600, 1, collect, &o), 0);
    check_gzip(&o, t, 600);
    free(o.p);
    pc_encoder_put(p, small);
    pc_encoder_put(p, pc_encoder_get(p, PC_ENC_BR, 0)); /* freed, not kept */
    pc_encoder_put(NULL, pc_encoder_get(NULL, PC_ENC_ZSTD, 0));
    pc_encoder_pool_free(p);
    free(t);
}
