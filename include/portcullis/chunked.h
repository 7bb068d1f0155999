/* chunked.h: a strict decoder for the chunked transfer coding of request
 * and response bodies (RFC 9112 §7.1), used instead of llhttp's lenient one so that
 * nothing ambiguous reaches an upstream: chunk sizes are 1-16 hex digits,
 * every line ends in CRLF (no bare LF, no bare CR), chunk data must be
 * followed by CRLF, extensions are `;name[=value]` of visible characters,
 * and the trailer section is bounded. Trailer lines must be valid field
 * lines (token, colon, field value: RFC 9110 §5.1, §5.5): a line without a
 * colon is an error, never a swallowed "trailer" that another parser would
 * read as the next request. Pure: no allocation, no I/O. */
#ifndef PORTCULLIS_CHUNKED_H
#define PORTCULLIS_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_chunked {
    int state;
    uint64_t left;       /* data bytes left in the current chunk */
    unsigned digits;     /* hex digits of the size line */
    size_t line;         /* bytes of the current extension / trailer line */
    size_t trailer;      /* bytes of the trailer section so far */
    size_t max_trailer;  /* limit for the trailer section */
    unsigned fields;     /* trailer fields so far */
    unsigned max_fields; /* limit for trailer fields */
    int colon;           /* the current trailer line has had its colon */
    int bws;             /* accept RFC 9112 §7.1.1 whitespace before ';'
                            and HTAB in extensions (pc_chunked_allow_bws) */
} pc_chunked;

typedef enum {
    PC_CHUNKED_MORE = 0,   /* all input consumed, message not finished */
    PC_CHUNKED_DONE = 1,   /* the last chunk and trailers are complete */
    PC_CHUNKED_ERROR = -1, /* malformed; *err says why */
} pc_chunked_status;

/* Starts a body; a trailer section larger than max_trailer bytes or with
 * more than max_fields fields is an error. */
void pc_chunked_init(pc_chunked *c, size_t max_trailer, unsigned max_fields);

/* Accepts everything RFC 9112 §7.1.1 allows in a chunk extension: BWS
 * before ';' ("5 ;a=b") and HTAB inside quoted values. For what upstreams
 * send (their extensions are dropped, never forwarded); client bodies stay
 * on the strict grammar, where such whitespace has split parsers before. */
void pc_chunked_allow_bws(pc_chunked *c);

/* Decodes in[0..len). Every run of chunk data is passed to data(ctx, p, n)
 * (p points into in). *used is set to the bytes consumed: all of len for
 * MORE, the position just after the final CRLF for DONE (what follows is
 * the next request), the offending position for ERROR. */
pc_chunked_status pc_chunked_decode(pc_chunked *c, const char *in, size_t len,
                                    size_t *used,
                                    void (*data)(void *ctx, const char *p,
                                                 size_t n),
                                    void *ctx, const char **err);

#endif
