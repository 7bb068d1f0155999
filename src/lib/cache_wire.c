/* cache_wire.c: a stored object as one string, for the `store: redis`
 * second level of the cache (chain/cache.c). The format is private to
 * portcullis (the same build on every instance sharing a Redis):
 *
 *   "PCC1\n" key-blob status request_time response_time date_value
 *   age_value lifetime swr sie flags nvary (name-blob value-blob)*nvary
 *   nhdrs (name-blob value-blob)*nhdrs body-blob
 *
 * numbers are decimal ASCII each followed by '\n'; a blob is its length
 * (a number) then its bytes. Decoding trusts nothing: every number is
 * range-checked, every length is checked against what is left, header
 * names must be tokens and values free of CR, LF and NUL, and the key must
 * be the one asked for (a hash collision in the Redis key is a miss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/cache_store.h"
#include "portcullis/util.h"

#define MAGIC "PCC1\n"
#define TIME_MAX (1LL << 40)

typedef struct wbuf {
    char *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *w, const void *d, size_t n)
{
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n)
            nc *= 2;
        w->p = pc_xrealloc(w->p, nc);
        w->cap = nc;
    }
    memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void put_num(wbuf *w, long long v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%lld\n", v);
    put(w, t, (size_t)n);
}

static void put_blob(wbuf *w, const char *d, size_t n)
{
    put_num(w, (long long)n);
    put(w, d, n);
}

char *pc_cache_obj_encode(const pc_cobj *o, size_t *len)
{
    wbuf w = {0};
    put(&w, MAGIC, sizeof MAGIC - 1);
    put_blob(&w, o->key, o->klen);
    long long nums[] = {o->status,
                        o->t.request_time,
                        o->t.response_time,
                        o->t.date_value,
                        o->t.age_value,
                        o->lifetime,
                        o->swr,
                        o->sie,
                        (long long)(o->no_cache | (o->must_revalidate << 1))};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        put_num(&w, nums[i]);
    put_num(&w, o->nvary);
    for (uint32_t i = 0; i < o->nvary; i++) {
        put_blob(&w, o->vary_names[i], strlen(o->vary_names[i]));
        put_blob(&w, o->vary_vals[i], strlen(o->vary_vals[i]));
    }
    put_num(&w, o->nhdrs);
    for (uint32_t i = 0; i < o->nhdrs; i++) {
        put_blob(&w, o->hdrs[i].name, o->hdrs[i].nlen);
        put_blob(&w, o->hdrs[i].value, o->hdrs[i].vlen);
    }
    put_blob(&w, o->body ? o->body->data : "", o->body ? o->body->len : 0);
    *len = w.len;
    return w.p;
}

typedef struct rbuf {
    const char *p, *end;
    int bad;
} rbuf;

/* A number in [lo, hi]; anything else marks the buffer bad. */
static long long get_num(rbuf *r, long long lo, long long hi)
{
    if (r->bad)
        return lo;
    const char *p = r->p;
    int neg = 0;
    if (p < r->end && *p == '-')
        neg = 1, p++;
    long long v = 0;
    int digits = 0;
    while (p < r->end && *p >= '0' && *p <= '9') {
        if (++digits > 15) { /* far beyond every bound below */
            r->bad = 1;
            return lo;
        }
        v = v * 10 + (*p++ - '0');
    }
    if (!digits || p >= r->end || *p != '\n') {
        r->bad = 1;
        return lo;
    }
    r->p = p + 1;
    if (neg)
        v = -v;
    if (v < lo || v > hi) {
        r->bad = 1;
        return lo;
    }
    return v;
}

/* A blob of at most max bytes: its start (in the buffer) and length. */
static const char *get_blob(rbuf *r, size_t max, size_t *n)
{
    long long l = get_num(r, 0, (long long)max);
    *n = 0;
    if (r->bad || (size_t)(r->end - r->p) < (size_t)l) {
        r->bad = 1;
        return NULL;
    }
    const char *d = r->p;
    r->p += l;
    *n = (size_t)l;
    return d;
}

static int is_tchar(unsigned char c)
{
    return c > 32 && c < 127 && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static int clean_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

pc_cobj *pc_cache_obj_decode(const char *buf, size_t len, const char *key,
                             size_t klen, const char *route, const char *path)
{
    if (!buf || len < sizeof MAGIC - 1 ||
        memcmp(buf, MAGIC, sizeof MAGIC - 1) != 0)
        return NULL;
    rbuf r = {buf + sizeof MAGIC - 1, buf + len, 0};
    size_t kl;
    const char *k = get_blob(&r, PC_CACHE_WIRE_MAX, &kl);
    if (r.bad || kl != klen || memcmp(k, key, klen) != 0)
        return NULL;
    int status = (int)get_num(&r, 100, 599);
    pc_cache_times t;
    t.request_time = get_num(&r, 0, TIME_MAX);
    t.response_time = get_num(&r, 0, TIME_MAX);
    t.date_value = get_num(&r, 0, TIME_MAX);
    t.age_value = get_num(&r, 0, PC_CC_DELTA_MAX);
    long long lifetime = get_num(&r, -TIME_MAX, TIME_MAX);
    long long swr = get_num(&r, -1, PC_CC_DELTA_MAX);
    long long sie = get_num(&r, -1, PC_CC_DELTA_MAX);
    long long flags = get_num(&r, 0, 3);
    uint32_t nvary = (uint32_t)get_num(&r, 0, PC_CACHE_WIRE_MAX_VARY);
    if (r.bad)
        return NULL;
    char vbuf[PC_CACHE_WIRE_MAX_VARY][2][PC_CACHE_WIRE_VARY_VALUE];
    const char *vn[PC_CACHE_WIRE_MAX_VARY], *vv[PC_CACHE_WIRE_MAX_VARY];
    for (uint32_t i = 0; i < nvary; i++) {
        for (int j = 0; j < 2; j++) {
            size_t n;
            const char *d = get_blob(&r, PC_CACHE_WIRE_VARY_VALUE - 1, &n);
            if (r.bad || memchr(d, '\0', n) || (j == 0 && n == 0))
                return NULL;
            memcpy(vbuf[i][j], d, n);
            vbuf[i][j][n] = '\0';
        }
        vn[i] = vbuf[i][0];
        vv[i] = vbuf[i][1];
    }
    uint32_t nhdrs = (uint32_t)get_num(&r, 0, PC_CACHE_WIRE_MAX_HDRS);
    if (r.bad)
        return NULL;
    pc_chdr *h = pc_xcalloc(nhdrs ? nhdrs : 1, sizeof *h);
    for (uint32_t i = 0; i < nhdrs; i++) {
        size_t nl, vl;
        const char *nm = get_blob(&r, PC_CACHE_WIRE_MAX, &nl);
        const char *v = get_blob(&r, PC_CACHE_WIRE_MAX, &vl);
        int ok = !r.bad && nl > 0 && clean_value(v, vl);
        for (size_t c = 0; ok && c < nl; c++)
            ok = is_tchar((unsigned char)nm[c]);
        if (!ok) {
            free(h);
            return NULL;
        }
        h[i] = (pc_chdr){nm, v, (uint32_t)nl, (uint32_t)vl};
    }
    size_t bl;
    const char *body = get_blob(&r, PC_CACHE_WIRE_MAX, &bl);
    if (r.bad || r.p != r.end) {
        free(h);
        return NULL;
    }
    pc_cobj *o = pc_cache_obj_new(key, klen, route, path, vn, vv, nvary, status,
                                  h, nhdrs);
    free(h);
    pc_cbody *b = pc_cache_body_new(body, bl);
    pc_cache_obj_set_body(o, b);
    pc_cache_body_unref(b);
    o->t = t;
    o->lifetime = lifetime;
    o->swr = swr;
    o->sie = sie;
    o->no_cache = (flags & 1) != 0;
    o->must_revalidate = (flags & 2) != 0;
    return o;
}
