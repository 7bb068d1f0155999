/* pathnorm.h: the request target's path and host, checked and normalised
 * before anything matches on them (CONTRACT §3 "Paths"). Pure functions:
 * no I/O, no allocation, no state. */
#ifndef PORTCULLIS_PATHNORM_H
#define PORTCULLIS_PATHNORM_H

#include <stddef.h>
#include <stdint.h>

/* Every status but PC_PATH_OK refuses the path (400); each says why, so
 * that the 400 message can (pc_path_status_message). */
typedef enum {
    PC_PATH_OK = 0,
    PC_PATH_BAD = -1,   /* not starting with '/', bad %XX, raw byte < 0x21,
                           0x7F or '#' */
    PC_PATH_CLIMB = -2, /* a ".." would climb above "/" */
    PC_PATH_EMPTY_SEGMENT = -3, /* "//": an empty segment that is not the
                                   last one (in the input as sent) */
    PC_PATH_PARAM = -4,         /* a literal ';' (path parameters) */
    PC_PATH_CONTROL = -5,       /* %00..%1F or %7F */
    PC_PATH_TRAILING_DOT = -6,  /* a segment ending in '.' (or %2E) that is
                                   not "." or ".." itself */
    PC_PATH_TRAILING_SPACE = -7 /* a segment ending in %20 */
} pc_path_status;

/* Normalises the path part (no query, no fragment) of an origin-form target:
 *  - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded
 *    (%2E -> '.', %7e -> '~'); every other %XX stays encoded, with its hex
 *    digits upper-cased (%2f -> %2F), so %2F never separates segments and
 *    %3B is data, never a parameter;
 *  - dot segments ("." and "..", after decoding) are removed as RFC 3986
 *    §5.2.4 does, except that a ".." that would climb above "/" returns
 *    PC_PATH_CLIMB instead of being dropped.
 * Refused, because upstreams read them differently (nginx merges "//",
 * Tomcat and Spring drop ";params", Windows drops trailing dots and spaces):
 *  - PC_PATH_EMPTY_SEGMENT: an empty segment anywhere but at the end. It is
 *    checked on the input as sent, before dot segments are removed, so
 *    "/a//../b" and "/a/.//b" are refused; "/" and "/api/" are fine;
 *  - PC_PATH_PARAM: a literal ';' anywhere ("/..;/", "/a;jsessionid=x");
 *  - PC_PATH_CONTROL: an encoded control character, %00..%1F or %7F;
 *  - PC_PATH_TRAILING_DOT: a segment whose last decoded byte is '.' and
 *    that is not a dot segment ("/admin.", "/admin%2e", "/a.../b");
 *  - PC_PATH_TRAILING_SPACE: a segment ending in %20 ("/admin%20/x").
 * The input is read left to right and the first problem met is the one
 * returned. The result of an accepted path has none of the refused forms
 * and normalises to itself again.
 * in[0..inlen) must start with '/'. out must have room for inlen + 1 bytes
 * and may be the same buffer as in; on PC_PATH_OK the result is
 * NUL-terminated and its length stored in *outlen, otherwise out holds
 * garbage. */
pc_path_status pc_path_normalize(const char *in, size_t inlen, char *out,
                                 size_t *outlen);

/* A short English reason for a status ("empty path segment"), static
 * storage, never NULL; "ok" for PC_PATH_OK. */
const char *pc_path_status_message(pc_path_status st);

typedef enum {
    PC_HOST_NAME = 0, /* a reg-name: DNS-style labels */
    PC_HOST_IPV4,     /* a dotted quad, 0-255 each, no leading zeros */
    PC_HOST_IPV6      /* an IP-literal "[...]": the only bracketed form */
} pc_host_kind;

/* Where the parts of a valid Host value lie; the host starts at s[0]. */
typedef struct pc_host {
    size_t hostlen;    /* s[0..hostlen): the host as sent, brackets and a
                          trailing dot included, port excluded */
    size_t namelen;    /* s[0..namelen): the host to match on: hostlen less
                          the trailing dot, if any */
    pc_host_kind kind; /* PC_HOST_IPV6 is the IP-literal case */
    int has_port;      /* 1 when ":port" was present */
    uint16_t port;     /* the port when has_port, else 0 */
} pc_host;

/* Validates a Host field value or an absolute-form authority s[0..n):
 * host [ ":" port ] per RFC 3986 §3.2.2, but strictly, DNS-style:
 *  - host is "[IPv6address]" (RFC 3986 grammar: 8 groups of 1-4 hex digits,
 *    one "::", an optional trailing dotted quad; no IPvFuture, no zone id),
 *    or a dotted quad, or labels of letters, digits, '-' and '_', each 1..63
 *    bytes, 253 bytes at most without the one trailing dot allowed;
 *  - a name whose last label is numeric (all digits, or 0x and hex digits)
 *    must be a valid dotted quad, so "127.1", "2130706433", "0x7f.1" and
 *    "010.0.0.1", which resolvers may read as addresses, are refused;
 *  - no percent-encoding, no sub-delims, no userinfo, no empty label, no
 *    bytes outside ASCII (IDNs come as punycode);
 *  - the port, when present, is 1-5 digits, value 0..65535.
 * Letter case is kept: callers that match lower-case it themselves.
 * Returns 0 and fills *out, or -1 with a short English reason in *why
 * (static storage; why may be NULL). */
int pc_host_parse(const char *s, size_t n, pc_host *out, const char **why);

#endif
