/* headers.c: the header list and the header rules of CONTRACT §3 (what is
 * hop-by-hop, what is added on the way up). Pure: no sockets, no events. */
#include "portcullis/headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"

void pc_headers_add(pc_headers *h, pc_arena *a, const char *name, size_t nlen,
                    const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        pc_header *v = pc_arena_alloc(a, cap * sizeof *v);
        if (h->n)
            memcpy(v, h->v, h->n * sizeof *v);
        h->v = v;
        h->cap = cap;
    }
    pc_header *x = &h->v[h->n++];
    x->name = pc_arena_strndup(a, name, nlen);
    x->nlen = (uint32_t)nlen;
    x->value = pc_arena_strndup(a, value, vlen);
    x->vlen = (uint32_t)vlen;
}

const pc_header *pc_headers_get(const pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < h->n; i++)
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            return &h->v[i];
    return NULL;
}

unsigned pc_headers_count(const pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    unsigned c = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            c++;
    return c;
}

unsigned pc_headers_remove(pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    uint32_t j = 0;
    unsigned removed = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            removed++;
        else
            h->v[j++] = h->v[i];
    }
    h->n = j;
    return removed;
}

const char *pc_req_header(const pc_req *req, const char *name)
{
    const pc_header *x = pc_headers_get(&req->headers, name);
    return x ? x->value : NULL;
}

/* A list of names with their lengths: the per-request checks compare
 * lengths first and never call strlen. */
typedef struct name_len {
    const char *s;
    size_t n;
} name_len;
#define NL(lit) {lit, sizeof lit - 1}

static int in_list(const name_len *l, size_t count, const char *name, size_t len)
{
    for (size_t i = 0; i < count; i++)
        if (l[i].n == len && pc_strieq(name, len, l[i].s, l[i].n))
            return 1;
    return 0;
}

int pc_header_is_hop_by_hop(const char *name, size_t len)
{
    static const name_len hop[] = {
        NL("connection"), NL("keep-alive"), NL("te"), NL("trailer"),
        NL("upgrade"), NL("transfer-encoding"), NL("proxy-connection")};
    if (in_list(hop, sizeof hop / sizeof hop[0], name, len))
        return 1;
    return len >= 6 && pc_strieq(name, 6, "proxy-", 6);
}

/* Does the comma-separated token list `list` contain `tok`
 * (case-insensitive, optional whitespace)? */
int pc_header_list_has(const char *list, const char *tok, size_t toklen)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s && pc_strieq(s, (size_t)(e - s), tok, toklen))
            return 1;
    }
    return 0;
}

/* Case-insensitive FNV-1a of a header name or Connection token. */
static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        x = (x ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 16777619u;
    }
    return x;
}

/* Calls fn(h, tok, len) for every token of every Connection field. */
static void each_connection_token(pc_headers *h,
                                  void (*fn)(void *, const char *, size_t),
                                  void *arg)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (!pc_strieq(h->v[i].name, h->v[i].nlen, "connection", 10))
            continue;
        const char *p = h->v[i].value, *end = p + h->v[i].vlen, *t;
        size_t len;
        while ((t = pc_list_next(&p, end, &len)))
            fn(arg, t, len);
    }
}

/* Headers indexed by name hash (chained), so that marking what Connection
 * names costs one lookup per token: linear, whatever the counts. */
typedef struct name_index {
    pc_headers *h;
    uint32_t *bucket, *next, mask;
    unsigned char *drop;
} name_index;

static void mark_token(void *arg, const char *tok, size_t len)
{
    name_index *x = arg;
    for (uint32_t k = x->bucket[name_hash(tok, len) & x->mask]; k; k = x->next[k - 1])
        if (pc_strieq(x->h->v[k - 1].name, x->h->v[k - 1].nlen, tok, len))
            x->drop[k - 1] = 1;
}

void pc_headers_strip_hop_by_hop(pc_headers *h)
{
    /* Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1). */
    name_index x = {.h = h};
    /* The usual head fits on the stack; a big one pays two allocations. */
    enum { SMALL = 64 };
    unsigned char drop_small[SMALL];
    uint32_t bucket_small[2 * SMALL], next_small[SMALL];
    int small = h->n <= SMALL;
    if (pc_headers_count(h, "connection")) {
        uint32_t nb = 16;
        while (nb < 2 * h->n)
            nb *= 2;
        x.mask = nb - 1;
        if (small) {
            memset(bucket_small, 0, nb * sizeof *bucket_small);
            memset(drop_small, 0, h->n);
            x.bucket = bucket_small;
            x.next = next_small;
            x.drop = drop_small;
        } else {
            x.bucket = pc_xcalloc(nb, sizeof *x.bucket);
            x.next = pc_xmalloc(h->n * sizeof *x.next);
            x.drop = pc_xcalloc(h->n, 1);
        }
        for (uint32_t i = 0; i < h->n; i++) {
            uint32_t b = name_hash(h->v[i].name, h->v[i].nlen) & x.mask;
            x.next[i] = x.bucket[b];
            x.bucket[b] = i + 1;
        }
        each_connection_token(h, mark_token, &x);
    }
    uint32_t j = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if ((x.drop && x.drop[i]) ||
            pc_header_is_hop_by_hop(h->v[i].name, h->v[i].nlen))
            continue;
        h->v[j++] = h->v[i];
    }
    h->n = j;
    if (x.drop && !small) {
        free(x.drop);
        free(x.bucket);
        free(x.next);
    }
}

int pc_request_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':'))
            return 0;
    }
    return 1;
}

void pc_headers_apply_rules(pc_headers *h, pc_arena *a,
                            const pc_header_rules *r)
{
    for (size_t i = 0; i < r->nremove; i++)
        pc_headers_remove(h, r->remove[i]);
    for (size_t i = 0; i < r->nset; i++) {
        pc_headers_remove(h, r->set[i].name);
        pc_headers_add(h, a, r->set[i].name, strlen(r->set[i].name),
                       r->set[i].value, strlen(r->set[i].value));
    }
}

int pc_header_name_valid(const char *s, size_t n)
{
    return pc_is_token(s, n);
}

static int value_byte_ok(unsigned char ch)
{
    return !((ch < 0x20 && ch != '\t') || ch == 0x7f);
}

/* Eight bytes at a time: a word in which no byte is below 0x20 or equal to
 * 0x7f is valid as a whole (the two tests are exact as to whether any byte
 * matches: "hasless" and "haszero" of the bit-twiddling folklore); only a
 * word that has such a byte (a tab, or a real control byte) is looked at
 * byte by byte. Tokens and cookies are long: this runs on every header of
 * every request and response. */
int pc_header_value_valid(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        uint64_t del = w ^ (ones * 0x7f);
        if (((w - ones * 0x20) & ~w & highs) | ((del - ones) & ~del & highs)) {
            for (size_t j = i; j < i + 8; j++)
                if (!value_byte_ok((unsigned char)s[j]))
                    return 0;
        }
    }
    for (; i < n; i++)
        if (!value_byte_ok((unsigned char)s[i]))
            return 0;
    return 1;
}

static int is_name(const pc_header *h, const char *name)
{
    return pc_strieq(h->name, h->nlen, name, strlen(name));
}

/* Step 2 of pc_headers_upstream: a client header whose name the gateway
 * manages. */
static int gateway_managed(const pc_req *r, const pc_header *h, int trusted)
{
    static const name_len managed[] = {
        NL("host"), NL("content-length"), NL("transfer-encoding"),
        NL("expect"), NL("x-forwarded-for"), NL("x-forwarded-proto"),
        NL("x-forwarded-host"), NL("x-request-id")};
    if (in_list(managed, sizeof managed / sizeof managed[0], h->name, h->nlen))
        return 1;
    if (!trusted && ((h->nlen == 9 && is_name(h, "forwarded")) ||
                     (h->nlen > 12 && pc_strieq(h->name, 12, "x-forwarded-", 12))))
        return 1;
    for (uint32_t i = 0; i < r->gw_headers.n; i++)
        if (pc_strieq(h->name, h->nlen, r->gw_headers.v[i].name,
                      r->gw_headers.v[i].nlen))
            return 1;
    return 0;
}

/* X-Forwarded-For: every value the client sent, then the peer. */
static void add_forwarded_for(const pc_req *r, pc_headers *out, pc_arena *a)
{
    size_t len = strlen(r->peer_text);
    for (uint32_t i = 0; i < r->headers.n; i++)
        if (is_name(&r->headers.v[i], "x-forwarded-for"))
            len += r->headers.v[i].vlen + 2;
    char *v = pc_arena_alloc(a, len + 1), *p = v;
    for (uint32_t i = 0; i < r->headers.n; i++) {
        const pc_header *h = &r->headers.v[i];
        if (!is_name(h, "x-forwarded-for") || h->vlen == 0)
            continue;
        memcpy(p, h->value, h->vlen);
        p += h->vlen;
        *p++ = ',';
        *p++ = ' ';
    }
    memcpy(p, r->peer_text, strlen(r->peer_text));
    p += strlen(r->peer_text);
    *p = '\0';
    pc_headers_add(out, a, "X-Forwarded-For", 15, v, (size_t)(p - v));
}

/* Step 4: the gateway's value replaces any copy a rule set. */
static void set_own(pc_headers *out, pc_arena *a, const char *name,
                    size_t nlen, const char *v, size_t vlen)
{
    pc_headers_remove(out, name);
    pc_headers_add(out, a, name, nlen, v, vlen);
}

void pc_headers_upstream(const pc_req *r, int peer_trusted,
                         const pc_header_rules *rules, pc_headers *out,
                         pc_arena *a)
{
    /* The entries are shared with the client's list (arena strings that
     * live as long as the request); only the array is new. */
    uint32_t cap = r->headers.n + r->gw_headers.n + 8;
    if (rules)
        cap += (uint32_t)rules->nset;
    *out = (pc_headers){.v = pc_arena_alloc(a, cap * sizeof *out->v), .cap = cap};
    if (r->headers.n)
        memcpy(out->v, r->headers.v, r->headers.n * sizeof *out->v);
    out->n = r->headers.n;
    pc_headers_strip_hop_by_hop(out); /* 1 */
    uint32_t j = 0;                   /* 2 */
    for (uint32_t i = 0; i < out->n; i++)
        if (!gateway_managed(r, &out->v[i], peer_trusted))
            out->v[j++] = out->v[i];
    out->n = j;
    if (rules)
        pc_headers_apply_rules(out, a, rules); /* 3 */
    /* 4: added after every removal, so no client header can take them
     * away. */
    pc_headers_remove(out, "x-forwarded-for");
    add_forwarded_for(r, out, a);
    if (r->tls)
        set_own(out, a, "X-Forwarded-Proto", 17, "https", 5);
    else
        set_own(out, a, "X-Forwarded-Proto", 17, "http", 4);
    if (r->host && *r->host)
        set_own(out, a, "X-Forwarded-Host", 16, r->host, strlen(r->host));
    set_own(out, a, "X-Request-Id", 12, r->request_id, strlen(r->request_id));
    for (uint32_t i = 0; i < r->gw_headers.n; i++) {
        const pc_header *g = &r->gw_headers.v[i];
        set_own(out, a, g->name, g->nlen, g->value, g->vlen);
    }
}

void pc_headers_downstream(pc_headers *h, pc_arena *a,
                           const pc_header_rules *rules)
{
    pc_headers_strip_hop_by_hop(h);
    pc_headers_remove(h, "content-length");
    pc_headers_remove(h, "x-request-id");
    if (rules)
        pc_headers_apply_rules(h, a, rules);
}

void pc_req_add_resp_header(pc_req *req, const char *name, const char *value)
{
    pc_headers_add(&req->resp_extra, req->arena, name, strlen(name), value,
                   strlen(value));
}
