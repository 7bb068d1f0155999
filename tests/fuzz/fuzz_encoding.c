/* fuzz_encoding.c: libFuzzer target for lib/encoding.c. The first line of
 * the input is an Accept-Encoding value (also fed a second time, as a
 * repeated field); the pick must be a coding that was offered, or identity.
 * The rest is compressed with gzip and zstd in pieces whose sizes come from
 * the input, then decompressed: the bytes must come back unchanged
 * (abort otherwise). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "portcullis/encoding.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;

static int collect(void *arg, const char *d, size_t n)
{
    buf *b = arg;
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 64;
        unsigned char *q = realloc(b->p, cap);
        if (!q)
            abort();
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

static void round_trip(pc_encoder_pool *pool, pc_enc e, const unsigned char *d,
                       size_t n, size_t step)
{
    buf out = {0};
    pc_encoder *enc = pc_encoder_get(pool, e, step & 1 ? n : 0);
    if (!enc)
        abort();
    for (size_t off = 0; off < n; off += step)
        if (pc_encoder_run(enc, (const char *)d + off,
                           n - off < step ? n - off : step, 0, collect,
                           &out) != 0)
            abort();
    if (pc_encoder_run(enc, NULL, 0, 1, collect, &out) != 0)
        abort();
    pc_encoder_put(pool, enc);
    unsigned char *back = malloc(n + 1);
    size_t got = 0;
    if (e == PC_ENC_GZIP) {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            abort();
        z.next_in = out.p;
        z.avail_in = (uInt)out.n;
        z.next_out = back;
        z.avail_out = (uInt)n + 1;
        if (inflate(&z, Z_FINISH) != Z_STREAM_END)
            abort();
        got = z.total_out;
        inflateEnd(&z);
    } else {
        ZSTD_DCtx *dc = ZSTD_createDCtx();
        ZSTD_inBuffer in = {out.p, out.n, 0};
        ZSTD_outBuffer ob = {back, n + 1, 0};
        size_t r;
        do
            r = ZSTD_decompressStream(dc, &ob, &in);
        while (!ZSTD_isError(r) && r != 0 && in.pos < in.size);
        if (ZSTD_isError(r) || r != 0)
            abort();
        got = ob.pos;
        ZSTD_freeDCtx(dc);
    }
    if (got != n || (n && memcmp(back, d, n) != 0))
        abort();
    free(back);
    free(out.p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static pc_encoder_pool *pool;
    if (!pool)
        pool = pc_encoder_pool_new();
    const unsigned char *nl = memchr(data, '\n', size);
    size_t alen = nl ? (size_t)(nl - data) : size;
    pc_accept_enc a;
    pc_accept_enc_init(&a);
    pc_accept_enc_feed(&a, (const char *)data, alen);
    pc_accept_enc_feed(&a, (const char *)data, alen);
    for (unsigned offered = 0; offered < 16; offered += 2) {
        pc_enc e = pc_accept_enc_pick(&a, offered);
        if (e != PC_ENC_IDENTITY && !(offered & (1u << e)))
            abort();
    }
    if (!nl)
        return 0;
    const unsigned char *body = nl + 1;
    size_t n = size - alen - 1;
    size_t step = n ? 1 + (body[0] % 61) * 67 : 1;
    round_trip(pool, PC_ENC_GZIP, body, n, step);
    round_trip(pool, PC_ENC_ZSTD, body, n, step + 13);
    return 0;
}
