/* pathnorm.h: request path normalisation (CONTRACT §3 "Paths").
 * Pure function, no allocation. */
#ifndef PORTCULLIS_PATHNORM_H
#define PORTCULLIS_PATHNORM_H

#include <stddef.h>

typedef enum {
    PC_PATH_OK = 0,
    PC_PATH_BAD = -1,   /* not starting with '/', bad %XX, NUL, control chars */
    PC_PATH_CLIMB = -2, /* dot segments would climb above "/" */
} pc_path_status;

/* Normalises the path part (no query, no fragment) of an origin-form target:
 *  - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded
 *    (%2E -> '.', %7e -> '~'); every other %XX stays encoded, with its hex
 *    digits upper-cased (%2f -> %2F), so %2F never separates segments;
 *  - a '%' not followed by two hex digits, a byte < 0x21 or 0x7F, or '#' is
 *    PC_PATH_BAD;
 *  - dot segments ("." and "..", after decoding) are removed as RFC 3986
 *    §5.2.4 does, except that a ".." that would climb above "/" returns
 *    PC_PATH_CLIMB instead of being dropped;
 *  - "//" runs are kept as they are (empty segments are data).
 * in[0..inlen) must start with '/'. out must have room for inlen + 1 bytes;
 * the result is NUL-terminated and its length stored in *outlen. */
pc_path_status pc_path_normalize(const char *in, size_t inlen, char *out,
                                 size_t *outlen);

#endif
