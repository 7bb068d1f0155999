/* trie.h: the route table, a path trie whose edges are path segments.
 *
 * Matching rules (CONTRACT §2 routes, §3 step 6):
 *  - a pattern is an absolute path ("/api/orders/{id}"); each segment is
 *    static text or "{name}", which matches exactly one non-empty segment;
 *  - type exact: the whole request path must match the pattern (a trailing
 *    '/' in the request is a different path); type prefix: the pattern's
 *    segments must be the leading segments of the request path ("/api"
 *    matches "/api", "/api/", "/api/x", never "/apix"); pattern "/" as a
 *    prefix matches everything;
 *  - host: NULL (any host), "api.example.com" (equal, case-insensitive, port
 *    ignored by the caller), or "*.example.com" (one or more labels before
 *    ".example.com", never "example.com" itself);
 *  - methods: a bitmask of PC_M_*; 0 means every method.
 * Precedence among routes whose path and host match (first difference wins):
 *  1. exact before prefix;
 *  2. more static leading segments (before the first {param}) before fewer;
 *  3. segment by segment from the left, static before {param}; a longer
 *     pattern before a shorter one when one is a prefix of the other;
 *  4. host-specific before host-less (an exact host before a wildcard);
 *  5. file order (lower index first).
 * The best route whose method set contains the request method wins. If
 * path+host match some routes but none allows the method, the answer is 405
 * with the union of their methods. Otherwise 404.
 *
 * Lookup cost grows with the depth of the path, not with the number of
 * routes. The trie is built once per config generation and is read-only
 * afterwards, so workers share it without locks. */
#ifndef PORTCULLIS_TRIE_H
#define PORTCULLIS_TRIE_H

#include <stddef.h>
#include <stdint.h>

enum {
    PC_M_GET = 1u << 0,
    PC_M_HEAD = 1u << 1,
    PC_M_POST = 1u << 2,
    PC_M_PUT = 1u << 3,
    PC_M_DELETE = 1u << 4,
    PC_M_PATCH = 1u << 5,
    PC_M_OPTIONS = 1u << 6,
    PC_M_TRACE = 1u << 7,
    PC_M_CONNECT = 1u << 8,
    PC_M_OTHER = 1u << 9, /* any other token: only a route with mask 0 */
};

/* Maps a method token to its PC_M_* bit (PC_M_OTHER when unknown). */
uint32_t pc_method_bit(const char *m, size_t len);
/* Writes "GET, HEAD, POST" style text of a mask into buf; returns buf. */
char *pc_methods_format(uint32_t mask, char *buf, size_t len);

#define PC_TRIE_MAX_PARAMS 16

typedef struct pc_trie pc_trie;

typedef struct pc_trie_route {
    const char *pattern; /* "/api/orders/{id}" (borrowed, must outlive trie) */
    int exact;           /* 1 exact, 0 prefix */
    const char *host;    /* NULL or "api.example.com" or "*.example.com" */
    uint32_t methods;    /* 0 = all */
    void *data;          /* returned on match (the caller's route object) */
} pc_trie_route;

typedef struct pc_trie_span {
    uint32_t off, len; /* into the looked-up path */
} pc_trie_span;

typedef enum {
    PC_TRIE_FOUND = 0,
    PC_TRIE_NOT_FOUND = 1,
    PC_TRIE_BAD_METHOD = 2,
} pc_trie_status;

typedef struct pc_trie_match {
    void *data;               /* PC_TRIE_FOUND: the route's data */
    uint32_t allow;           /* PC_TRIE_BAD_METHOD: union of allowed methods */
    size_t nparams;           /* captured {params}, in pattern order */
    pc_trie_span params[PC_TRIE_MAX_PARAMS];
    const char *const *param_names; /* borrowed from the trie */
    uint32_t matched_len;     /* bytes of the path consumed by the pattern */
} pc_trie_match;

pc_trie *pc_trie_new(void);
void pc_trie_free(pc_trie *t);

/* Validates a pattern without inserting it: 0, or -1 with a message
 * ("must start with '/'", "empty {}", "duplicate parameter 'id'", "too many
 * parameters", "'{' inside a segment"). */
int pc_trie_check_pattern(const char *pattern, char *err, size_t errlen);

/* Inserts a route; routes are numbered in insertion order (file order).
 * Returns 0, or -1 with a message when the pattern is invalid. */
int pc_trie_insert(pc_trie *t, const pc_trie_route *r, char *err,
                   size_t errlen);

/* Looks up a normalised path (no query) for host (NULL or without port,
 * any case) and method bit. Fills *m. */
pc_trie_status pc_trie_lookup(const pc_trie *t, const char *host,
                              size_t hostlen, const char *path, size_t pathlen,
                              uint32_t method, pc_trie_match *m);

/* Calls fn for every route in precedence order (as GET /admin/routes lists
 * them). */
void pc_trie_foreach(const pc_trie *t, void (*fn)(void *data, void *ctx),
                     void *ctx);

#endif
