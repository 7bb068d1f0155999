/* encoding.c: Accept-Encoding negotiation and the gzip / br / zstd
 * streaming encoders behind one interface (encoding.h). */
#include "portcullis/encoding.h"

#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "portcullis/util.h"

const char *pc_enc_name(pc_enc e)
{
    switch (e) {
    case PC_ENC_GZIP:
        return "gzip";
    case PC_ENC_BR:
        return "br";
    case PC_ENC_ZSTD:
        return "zstd";
    default:
        return "identity";
    }
}

/* ---- Accept-Encoding -------------------------------------------------- */

void pc_accept_enc_init(pc_accept_enc *a)
{
    for (int i = 0; i < 4; i++)
        a->q[i] = -1;
    a->star = -1;
    a->seen = 0;
}

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
 * thousandths; -1 when malformed. */
static int parse_q(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int v = (s[0] - '0') * 1000;
    if (n == 1)
        return v;
    if (s[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v += (s[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

/* One element "coding *( OWS ; OWS param )": stores its q. */
static void element(pc_accept_enc *a, const char *s, size_t n)
{
    size_t i = 0, tok = 0;
    while (i < n && tchar((unsigned char)s[i]))
        i++;
    tok = i;
    if (tok == 0)
        return;
    int q = 1000;
    while (i < n) {
        while (i < n && ows((unsigned char)s[i]))
            i++;
        if (i == n)
            break;
        if (s[i] != ';')
            return; /* junk after the coding: ignore the element */
        i++;
        while (i < n && ows((unsigned char)s[i]))
            i++;
        size_t ns = i;
        while (i < n && tchar((unsigned char)s[i]))
            i++;
        size_t nl = i - ns;
        if (nl == 0 || i == n || s[i] != '=')
            return;
        i++;
        size_t vs = i;
        while (i < n && tchar((unsigned char)s[i]))
            i++;
        if (nl == 1 && (s[ns] == 'q' || s[ns] == 'Q')) {
            q = parse_q(s + vs, i - vs);
            if (q < 0)
                return;
        }
    }
    int16_t *slot = NULL;
    if (tok == 1 && s[0] == '*')
        slot = &a->star;
    else if (pc_strieq(s, tok, "gzip", 4) || pc_strieq(s, tok, "x-gzip", 6))
        slot = &a->q[PC_ENC_GZIP];
    else if (pc_strieq(s, tok, "br", 2))
        slot = &a->q[PC_ENC_BR];
    else if (pc_strieq(s, tok, "zstd", 4))
        slot = &a->q[PC_ENC_ZSTD];
    else if (pc_strieq(s, tok, "identity", 8))
        slot = &a->q[PC_ENC_IDENTITY];
    if (slot && (*slot < 0 || q > *slot)) /* named twice: the better one */
        *slot = (int16_t)q;
}

void pc_accept_enc_feed(pc_accept_enc *a, const char *value, size_t len)
{
    size_t i = 0;
    a->seen = 1;
    while (i < len) {
        while (i < len && (ows((unsigned char)value[i]) || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && ows((unsigned char)value[end - 1]))
            end--;
        if (end > start)
            element(a, value + start, end - start);
    }
}

pc_enc pc_accept_enc_pick(const pc_accept_enc *a, unsigned offered)
{
    if (!a->seen)
        return PC_ENC_IDENTITY; /* no field: identity (RFC 9110 §12.5.3
                                   allows any, every proxy sends identity) */
    /* identity competes only when the client rated it (by name or `*`):
     * always acceptable, it is not preferred unless said so. */
    int idq = a->q[PC_ENC_IDENTITY] >= 0 ? a->q[PC_ENC_IDENTITY]
              : a->star >= 0            ? a->star
                                        : 0;
    static const pc_enc order[] = {PC_ENC_ZSTD, PC_ENC_BR, PC_ENC_GZIP};
    pc_enc best = PC_ENC_IDENTITY;
    int bestq = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        pc_enc e = order[i];
        if (!(offered & (1u << e)))
            continue;
        int q = a->q[e] >= 0 ? a->q[e] : a->star >= 0 ? a->star : 0;
        if (q > bestq) { /* strictly: earlier (preferred) codings win ties */
            best = e;
            bestq = q;
        }
    }
    /* A client that rates identity above every coding gets identity. */
    return bestq > 0 && bestq >= idq ? best : PC_ENC_IDENTITY;
}

/* ---- encoders ----------------------------------------------------------- */

struct pc_encoder {
    pc_enc kind;
    int finished;
    int wbits;  /* gzip: the window it was made with (reset keeps it) */
    uint64_t in, out;
    union {
        z_stream z;
        BrotliEncoderState *br;
        ZSTD_CCtx *zs;
    } u;
    unsigned char buf[PC_ENC_OUT];
};

/* log2 of the window for a body of `hint` bytes: the smallest power of two
 * holding it, within [lo, hi]; hi when the length is unknown. */
static int window_bits(uint64_t hint, int lo, int hi)
{
    if (hint == 0)
        return hi;
    int b = lo;
    while (b < hi && ((uint64_t)1 << b) < hint)
        b++;
    return b;
}

static int zstd_params(ZSTD_CCtx *z, uint64_t size_hint)
{
    int wl = window_bits(size_hint, 10, 20); /* zstd: windowLog >= 10 */
    return ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1)) ||
                   ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, wl))
               ? -1
               : 0;
}

pc_encoder *pc_encoder_new(pc_enc e, uint64_t size_hint)
{
    pc_encoder *enc = malloc(sizeof *enc);
    if (!enc)
        return NULL;
    memset(enc, 0, offsetof(pc_encoder, buf));
    enc->kind = e;
    switch (e) {
    case PC_ENC_GZIP: {
        /* Level 1 (nginx's gzip_comp_level default); the window and hash
         * sized to the body like nginx's gzip filter: a small body costs
         * a few KiB of state, not 256 KiB. */
        int wb = window_bits(size_hint, 9, 15);
        int mem = wb - 7 < 1 ? 1 : wb - 7 > 8 ? 8 : wb - 7;
        if (deflateInit2(&enc->u.z, 1, Z_DEFLATED, 16 + wb, mem,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(enc);
            return NULL;
        }
        enc->wbits = wb;
        return enc;
    }
    case PC_ENC_BR: {
        enc->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!enc->u.br)
            break;
        int lg = window_bits(size_hint, BROTLI_MIN_WINDOW_BITS, 22);
        if (!BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_QUALITY, 1) ||
            !BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_LGWIN,
                                       (uint32_t)lg) ||
            (size_hint && size_hint <= (1u << 30) &&
             !BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_SIZE_HINT,
                                        (uint32_t)size_hint))) {
            BrotliEncoderDestroyInstance(enc->u.br);
            break;
        }
        return enc;
    }
    case PC_ENC_ZSTD: {
        enc->u.zs = ZSTD_createCCtx();
        if (!enc->u.zs)
            break;
        if (zstd_params(enc->u.zs, size_hint) != 0) {
            ZSTD_freeCCtx(enc->u.zs);
            break;
        }
        return enc;
    }
    default:
        break;
    }
    free(enc);
    return NULL;
}

static int flush_buf(pc_encoder *enc, size_t n, pc_enc_emit emit, void *arg)
{
    if (n == 0)
        return 0;
    enc->out += n;
    return emit(arg, (const char *)enc->buf, n) ? -1 : 0;
}

static int run_gzip(pc_encoder *enc, const char *data, size_t len, int finish,
                    pc_enc_emit emit, void *arg)
{
    z_stream *z = &enc->u.z;
    z->next_in = (Bytef *)(uintptr_t)data;
    size_t left = len;
    for (;;) {
        /* avail_in is a uInt: at most 1 GiB per round */
        uInt take = left > (1u << 30) ? (1u << 30) : (uInt)left;
        int flush = finish && take == left ? Z_FINISH : Z_NO_FLUSH;
        z->avail_in = take;
        for (;;) {
            z->next_out = enc->buf;
            z->avail_out = sizeof enc->buf;
            int r = deflate(z, flush);
            if (r == Z_STREAM_ERROR)
                return -1;
            if (flush_buf(enc, sizeof enc->buf - z->avail_out, emit, arg))
                return -1;
            if (r == Z_STREAM_END)
                return 0;
            /* Z_NO_FLUSH: done once the input is taken and the output
             * did not fill up (Z_BUF_ERROR: nothing to do at all). */
            if (flush == Z_NO_FLUSH && z->avail_in == 0 && z->avail_out > 0)
                break;
        }
        left -= take;
        if (left == 0)
            return 0;
    }
}

static int run_br(pc_encoder *enc, const char *data, size_t len, int finish,
                  pc_enc_emit emit, void *arg)
{
    const uint8_t *in = (const uint8_t *)data;
    size_t avail_in = len;
    BrotliEncoderOperation op =
        finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
    for (;;) {
        uint8_t *out = enc->buf;
        size_t avail_out = sizeof enc->buf;
        if (!BrotliEncoderCompressStream(enc->u.br, op, &avail_in, &in,
                                         &avail_out, &out, NULL))
            return -1;
        if (flush_buf(enc, sizeof enc->buf - avail_out, emit, arg))
            return -1;
        if (finish ? BrotliEncoderIsFinished(enc->u.br)
                   : avail_in == 0 && !BrotliEncoderHasMoreOutput(enc->u.br))
            return 0;
    }
}

static int run_zstd(pc_encoder *enc, const char *data, size_t len, int finish,
                    pc_enc_emit emit, void *arg)
{
    ZSTD_inBuffer in = {data, len, 0};
    for (;;) {
        ZSTD_outBuffer out = {enc->buf, sizeof enc->buf, 0};
        size_t r = ZSTD_compressStream2(enc->u.zs, &out, &in,
                                        finish ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r))
            return -1;
        if (flush_buf(enc, out.pos, emit, arg))
            return -1;
        if (finish ? r == 0 : in.pos == in.size && out.pos < out.size)
            return 0;
    }
}

int pc_encoder_run(pc_encoder *enc, const char *data, size_t len, int finish,
                   pc_enc_emit emit, void *arg)
{
    if (enc->finished)
        return len || !finish ? -1 : 0;
    if (!data)
        len = 0;
    enc->in += len;
    int r;
    switch (enc->kind) {
    case PC_ENC_GZIP:
        r = run_gzip(enc, data, len, finish, emit, arg);
        break;
    case PC_ENC_BR:
        r = run_br(enc, data, len, finish, emit, arg);
        break;
    case PC_ENC_ZSTD:
        r = run_zstd(enc, data, len, finish, emit, arg);
        break;
    default:
        r = -1;
    }
    if (finish && r == 0)
        enc->finished = 1;
    return r;
}

uint64_t pc_encoder_in(const pc_encoder *enc)
{
    return enc->in;
}

uint64_t pc_encoder_out(const pc_encoder *enc)
{
    return enc->out;
}

void pc_encoder_free(pc_encoder *enc)
{
    if (!enc)
        return;
    switch (enc->kind) {
    case PC_ENC_GZIP:
        deflateEnd(&enc->u.z);
        break;
    case PC_ENC_BR:
        BrotliEncoderDestroyInstance(enc->u.br);
        break;
    case PC_ENC_ZSTD:
        ZSTD_freeCCtx(enc->u.zs);
        break;
    default:
        break;
    }
    free(enc);
}

/* ---- per-thread pool -------------------------------------------------- */

#define POOL_MAX 8

struct pc_encoder_pool {
    pc_encoder *idle[POOL_MAX];
    unsigned n;
};

pc_encoder_pool *pc_encoder_pool_new(void)
{
    return calloc(1, sizeof(pc_encoder_pool));
}

void pc_encoder_pool_free(pc_encoder_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n; i++)
        pc_encoder_free(p->idle[i]);
    free(p);
}

/* Back to a fresh stream; 0 when reusable for (e, hint). */
static int reuse(pc_encoder *enc, pc_enc e, uint64_t size_hint)
{
    if (enc->kind != e)
        return -1;
    if (e == PC_ENC_GZIP) {
        if (enc->wbits != window_bits(size_hint, 9, 15) ||
            deflateReset(&enc->u.z) != Z_OK)
            return -1;
    } else if (e == PC_ENC_ZSTD) {
        if (ZSTD_isError(ZSTD_CCtx_reset(enc->u.zs,
                                         ZSTD_reset_session_and_parameters)) ||
            zstd_params(enc->u.zs, size_hint) != 0)
            return -1;
    } else {
        return -1;
    }
    enc->finished = 0;
    enc->in = enc->out = 0;
    return 0;
}

pc_encoder *pc_encoder_get(pc_encoder_pool *p, pc_enc e, uint64_t size_hint)
{
    for (unsigned i = p ? p->n : 0; i-- > 0;) {
        pc_encoder *enc = p->idle[i];
        if (enc->kind != e)
            continue;
        p->idle[i] = p->idle[--p->n];
        if (reuse(enc, e, size_hint) == 0)
            return enc;
        pc_encoder_free(enc); /* another window: make the right one */
        break;
    }
    return pc_encoder_new(e, size_hint);
}

void pc_encoder_put(pc_encoder_pool *p, pc_encoder *enc)
{
    if (!enc)
        return;
    if (!p || enc->kind == PC_ENC_BR) {
        pc_encoder_free(enc);
        return;
    }
    if (p->n == POOL_MAX) { /* the oldest goes */
        pc_encoder_free(p->idle[0]);
        memmove(p->idle, p->idle + 1, (POOL_MAX - 1) * sizeof p->idle[0]);
        p->n--;
    }
    p->idle[p->n++] = enc;
}
