/* encoding.h: content codings for response compression (CONTRACT §2
 * `compress`): choosing one from Accept-Encoding (RFC 9110 §12.5.3) and
 * streaming encoders for gzip (zlib), br (libbrotli) and zstd (libzstd,
 * RFC 8878). No I/O, no knowledge of requests: chain/compress.c drives it.
 */
#ifndef PORTCULLIS_ENCODING_H
#define PORTCULLIS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PC_ENC_IDENTITY = 0,
    PC_ENC_GZIP = 1,
    PC_ENC_BR = 2,
    PC_ENC_ZSTD = 3,
} pc_enc;

#define PC_ENC_ALL ((1u << PC_ENC_GZIP) | (1u << PC_ENC_BR) | (1u << PC_ENC_ZSTD))

/* "gzip", "br", "zstd" ("identity" for PC_ENC_IDENTITY). */
const char *pc_enc_name(pc_enc e);

/* Accumulates Accept-Encoding field values (a request may repeat the
 * field: each value is fed in order) and picks the coding the client rates
 * highest among `offered` (a mask of 1u << pc_enc): q-values, `*` for
 * codings not named, `identity;q=0` changes nothing here (the gateway then
 * sends identity anyway: it never answers 406). Ties: zstd > br > gzip.
 * A malformed element (bad q-value, bad token) is ignored, not fatal; "x-gzip"
 * counts as gzip (RFC 9110 §8.4.1.3). */
typedef struct pc_accept_enc {
    int16_t q[4];   /* per pc_enc: -1 not named, else q in thousandths */
    int16_t star;   /* -1 not named */
    unsigned seen;  /* a field was fed */
} pc_accept_enc;

void pc_accept_enc_init(pc_accept_enc *a);
void pc_accept_enc_feed(pc_accept_enc *a, const char *value, size_t len);
pc_enc pc_accept_enc_pick(const pc_accept_enc *a, unsigned offered);

/* Streaming encoder. Output is handed to emit() in pieces of at most
 * PC_ENC_OUT bytes (borrowed for the call). */
#define PC_ENC_OUT 16384

typedef int (*pc_enc_emit)(void *arg, const char *data, size_t len);

typedef struct pc_encoder pc_encoder;

/* A new encoder for e (not identity); size_hint: the body's length when
 * known, else 0 (windows are sized to it: a 2 KiB body does not take a
 * 4 MiB zstd window). NULL when out of memory. Levels: gzip 1, br 1,
 * zstd 1 (throughput first: see docs/configuration.md). */
pc_encoder *pc_encoder_new(pc_enc e, uint64_t size_hint);
/* Compresses len bytes; finish = 1 ends the stream (len may be 0). Returns
 * 0, or -1 on an encoder error or when emit() returned non-zero. */
int pc_encoder_run(pc_encoder *enc, const char *data, size_t len, int finish,
                   pc_enc_emit emit, void *arg);
/* Bytes in and out so far. */
uint64_t pc_encoder_in(const pc_encoder *enc);
uint64_t pc_encoder_out(const pc_encoder *enc);
void pc_encoder_free(pc_encoder *enc);

/* A per-thread cache of finished encoders (one per event loop; no lock):
 * gzip and zstd streams are reset and reused instead of freed and
 * allocated again for every response (zstd's and a large-window deflate's
 * state are big enough for malloc to map and unmap them each time). br
 * has no reset: its encoders are freed. */
typedef struct pc_encoder_pool pc_encoder_pool;

pc_encoder_pool *pc_encoder_pool_new(void);
void pc_encoder_pool_free(pc_encoder_pool *p);
/* pc_encoder_new, from the pool when it holds a reusable one (p may be
 * NULL). */
pc_encoder *pc_encoder_get(pc_encoder_pool *p, pc_enc e, uint64_t size_hint);
/* Gives enc back (finished or not; p may be NULL: then freed). */
void pc_encoder_put(pc_encoder_pool *p, pc_encoder *enc);

#endif
