/* metrics.c: the metrics registry (metrics.h): name interning, the
 * per-worker shards and their sums, and the rendering of the registry's
 * families. Owns no I/O and no event loop; never takes a lock on the
 * request path (the mutex guards interning, the list of shards and the
 * retired shard: load time, worker start/stop and scrapes only).
 *
 * DESIGN (see metrics.h for the whole picture): a shard is, per key kind,
 * a fixed table of NCHUNKS chunk pointers; a chunk holds CHUNK entries;
 * an entry is one histogram (non-cumulative bucket counts and a sum in
 * nanoseconds) and a sparse counter table:
 *
 *   shard.chunks[kind][id / CHUNK] ─► chunk.e[id % CHUNK] = entry
 *   entry.ctr: open-addressed (key, value) slots ─► next table when full
 *
 * Only the owning worker writes a shard. A new chunk or counter table is
 * zeroed, then published with a release store; a new counter slot gets
 * its value first and its key last (release). Readers load pointers and
 * keys with acquire and values relaxed, so they see either nothing or a
 * fully formed object, and never memory that moves (nothing is
 * reallocated). */
#ifndef PC_NO_METRICS

#include "portcullis/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/trie.h"

#define CHUNK 64u
#define NCHUNKS (PC_METRICS_MAX_IDS / CHUNK)
#define CTAB_SLOTS 16u /* power of two */
#define HASH_SLOTS (2u * PC_METRICS_MAX_IDS)

_Static_assert(PC_METRICS_MAX_IDS % CHUNK == 0, "whole chunks");

typedef struct ctab ctab;
struct ctab {
    _Atomic uint32_t key[CTAB_SLOTS]; /* 0 = empty */
    _Atomic uint64_t val[CTAB_SLOTS];
    _Atomic(ctab *) next; /* when every slot is taken */
};

typedef struct entry {
    _Atomic uint64_t bucket[PC_METRICS_MAX_BUCKETS + 1]; /* [n] = +Inf */
    _Atomic uint64_t sum_ns;
    ctab ctr;
} entry;

typedef struct chunk {
    entry e[CHUNK];
} chunk;

struct pc_metrics_shard {
    _Atomic(chunk *) chunks[PC_MKEY_N][NCHUNKS];
    pc_metrics_shard *prev, *next; /* the registry's list (under lock) */
};

/* ---- families ----------------------------------------------------------- */

#define MS(x) ((uint64_t)(x) * 1000000u)
#define US(x) ((uint64_t)(x) * 1000u)

/* request and upstream durations: 0.5 ms .. 10 s */
static const uint64_t bounds_request[] = {
    US(500), MS(1),   MS(2) + US(500), MS(5),    MS(10),
    MS(25),  MS(50),  MS(100),         MS(250),  MS(500),
    MS(1000), MS(2500), MS(5000),      MS(10000),
};
/* chain stages: 1 us .. 1 s */
static const uint64_t bounds_stage[] = {
    US(1),   US(2) + 500, US(5),   US(10),  US(25),  US(50),  US(100),
    US(250), US(500),     MS(1),   MS(2) + US(500),  MS(5),   MS(10),
    MS(25),  MS(50),      MS(100), MS(250), MS(500), MS(1000),
};

typedef struct kind_desc {
    const char *label, *name, *help;
    const uint64_t *bounds;
    size_t nbounds;
} kind_desc;

#define NB(a) (sizeof(a) / sizeof((a)[0]))
static const kind_desc kinds[PC_MKEY_N] = {
    [PC_MKEY_ROUTE] = {"route", "portcullis_request_duration_seconds",
                       "Time from the first byte of a request to the end of "
                       "its response, by route (\"\" when none matched).",
                       bounds_request, NB(bounds_request)},
    [PC_MKEY_UPSTREAM] = {"upstream", "portcullis_upstream_duration_seconds",
                          "Time from sending a request upstream to the end of "
                          "the upstream response (or its failure), by "
                          "upstream.",
                          bounds_request, NB(bounds_request)},
    [PC_MKEY_STAGE] = {"stage", "portcullis_stage_duration_seconds",
                       "Time spent in each chain stage: its on_request call, "
                       "and for a stage that waited, until it resumed the "
                       "chain.",
                       bounds_stage, NB(bounds_stage)},
};
_Static_assert(NB(bounds_request) <= PC_METRICS_MAX_BUCKETS, "buckets");
_Static_assert(NB(bounds_stage) <= PC_METRICS_MAX_BUCKETS, "buckets");

/* A counter family: name, help, the key kind of its id, and the labels
 * its (a, b) values print as (",method=\"GET\",status=\"200\""). */
typedef struct counter_desc {
    const char *name, *help;
    pc_metrics_key kind;
    void (*labels)(pc_mbuf *b, uint32_t a, uint32_t b_);
} counter_desc;

static void labels_requests(pc_mbuf *b, uint32_t a, uint32_t st)
{
    pc_mbuf_printf(b, ",method=\"%s\",status=\"%u\"",
                   pc_metrics_method_name(a), (unsigned)st);
}

static void labels_none(pc_mbuf *b, uint32_t a, uint32_t b_)
{
    (void)b;
    (void)a;
    (void)b_;
}

static void labels_redis_error(pc_mbuf *b, uint32_t a, uint32_t b_)
{
    static const char *const names[PC_METRICS_REDIS_N] = {"timeout", "down",
                                                          "error"};
    (void)b_;
    pc_mbuf_printf(b, ",error=\"%s\"",
                   a < PC_METRICS_REDIS_N ? names[a] : "error");
}

static void labels_cache(pc_mbuf *b, uint32_t a, uint32_t b_)
{
    static const char *const r[] = {"none", "hit", "miss", "bypass"};
    (void)b_;
    pc_mbuf_printf(b, ",result=\"%s\"", a < 4 ? r[a] : "none");
}

static const counter_desc counter_families[PC_MC_N] = {
    [PC_MC_REQUESTS] = {"portcullis_requests_total",
                        "Requests answered, by route (\"\" when none "
                        "matched), method and status sent.",
                        PC_MKEY_ROUTE, labels_requests},
    [PC_MC_RATE_LIMITED] = {"portcullis_rate_limited_total",
                            "Requests refused with 429 by a rate limit, by "
                            "route (\"\" when none matched).",
                            PC_MKEY_ROUTE, labels_none},
    [PC_MC_REDIS_ERRORS] = {"portcullis_rate_limit_redis_errors_total",
                            "rate_limit scope: cluster decisions Redis did "
                            "not make (redis.on_error applied), by route and "
                            "error: timeout, down (no connection), error "
                            "(error reply).",
                            PC_MKEY_ROUTE, labels_redis_error},
    [PC_MC_CACHE_REQUESTS] = {"portcullis_cache_requests_total",
                              "Requests of routes with cache, by route and "
                              "result (hit, miss, bypass).",
                              PC_MKEY_ROUTE, labels_cache},
};

/* ---- the registry ------------------------------------------------------- */

static struct registry {
    pthread_mutex_t lock;
    /* names[k][id] for id < n[k], published by the release store of n */
    const char *names[PC_MKEY_N][PC_METRICS_MAX_IDS];
    _Atomic uint32_t n[PC_MKEY_N];
    uint32_t hash[PC_MKEY_N][HASH_SLOTS]; /* id, 0 = empty slot */
    _Atomic int overflow[PC_MKEY_N];      /* the overflow id was given */
    _Atomic int overflow_warned[PC_MKEY_N];
    const char *const *stage_names;       /* pc_metrics_set_stages */
    unsigned nstages;
    pc_metrics_shard *shards;
    pc_metrics_shard retired;
    _Atomic uint64_t reloads[2]; /* [0] failure, [1] success */
    _Atomic uint64_t webhook_dropped;
} reg = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .names = {{""}, {""}, {""}},
    .n = {1, 1, 1},
};

static inline void bump(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t rd(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static uint32_t fnv(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    return x;
}

uint32_t pc_metrics_intern(pc_metrics_key kind, const char *name)
{
    if ((unsigned)kind >= PC_MKEY_N || kind == PC_MKEY_STAGE || !name)
        return PC_METRICS_ID_OVERFLOW;
    if (!*name)
        return PC_METRICS_ID_NONE;
    uint32_t id = PC_METRICS_ID_OVERFLOW;
    pthread_mutex_lock(&reg.lock);
    uint32_t *h = reg.hash[kind];
    uint32_t i = fnv(name) & (HASH_SLOTS - 1);
    for (;; i = (i + 1) & (HASH_SLOTS - 1)) {
        if (h[i] == 0)
            break;
        if (strcmp(reg.names[kind][h[i]], name) == 0) {
            id = h[i];
            goto out;
        }
    }
    /* The table has room: at most MAX_IDS - 2 names in 2 * MAX_IDS slots. */
    uint32_t n = atomic_load_explicit(&reg.n[kind], memory_order_relaxed);
    if (n >= PC_METRICS_ID_OVERFLOW) {
        atomic_store(&reg.overflow[kind], 1);
        goto out;
    }
    reg.names[kind][n] = pc_xstrdup(name);
    h[i] = n;
    id = n;
    atomic_store_explicit(&reg.n[kind], n + 1, memory_order_release);
out:
    pthread_mutex_unlock(&reg.lock);
    return id;
}

int pc_metrics_overflow_first(pc_metrics_key kind)
{
    if ((unsigned)kind >= PC_MKEY_N || !atomic_load(&reg.overflow[kind]))
        return 0;
    return !atomic_exchange(&reg.overflow_warned[kind], 1);
}

void pc_metrics_set_stages(const char *const *names, unsigned n)
{
    reg.stage_names = names;
    reg.nstages = n < PC_METRICS_MAX_IDS ? n : PC_METRICS_MAX_IDS;
}

uint32_t pc_metrics_nids(pc_metrics_key kind)
{
    if ((unsigned)kind >= PC_MKEY_N)
        return 0;
    if (kind == PC_MKEY_STAGE)
        return reg.nstages;
    return atomic_load_explicit(&reg.n[kind], memory_order_acquire);
}

const char *pc_metrics_id_name(pc_metrics_key kind, uint32_t id)
{
    if ((unsigned)kind >= PC_MKEY_N)
        return NULL;
    if (kind == PC_MKEY_STAGE)
        return id < reg.nstages ? reg.stage_names[id] : NULL;
    if (id == PC_METRICS_ID_OVERFLOW)
        return atomic_load(&reg.overflow[kind]) ? PC_METRICS_OVERFLOW_LABEL
                                                : NULL;
    if (id >= atomic_load_explicit(&reg.n[kind], memory_order_acquire))
        return NULL;
    return reg.names[kind][id];
}

/* ---- writer side -------------------------------------------------------- */

static entry *entry_of(pc_metrics_shard *s, pc_metrics_key kind, uint32_t id)
{
    if (!s || (unsigned)kind >= PC_MKEY_N || id >= PC_METRICS_MAX_IDS)
        return NULL;
    _Atomic(chunk *) *slot = &s->chunks[kind][id / CHUNK];
    chunk *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c) {
        c = pc_xcalloc(1, sizeof *c);
        atomic_store_explicit(slot, c, memory_order_release);
    }
    return &c->e[id % CHUNK];
}

static void ctab_add(ctab *t, uint32_t key, uint64_t v)
{
    uint32_t h = mix(key);
    for (;;) {
        for (unsigned i = 0; i < CTAB_SLOTS; i++) {
            unsigned j = (h + i) & (CTAB_SLOTS - 1);
            uint32_t k = atomic_load_explicit(&t->key[j], memory_order_relaxed);
            if (k == key) {
                bump(&t->val[j], v);
                return;
            }
            if (k == 0) {
                atomic_store_explicit(&t->val[j], v, memory_order_relaxed);
                atomic_store_explicit(&t->key[j], key, memory_order_release);
                return;
            }
        }
        ctab *next = atomic_load_explicit(&t->next, memory_order_acquire);
        if (!next) {
            next = pc_xcalloc(1, sizeof *next);
            atomic_store_explicit(&t->next, next, memory_order_release);
        }
        t = next;
    }
}

size_t pc_metrics_bucket(const uint64_t *bounds, size_t n, uint64_t ns)
{
    size_t i = 0;
    while (i < n && ns > bounds[i])
        i++;
    return i;
}

const uint64_t *pc_metrics_bounds(pc_metrics_key kind, size_t *n)
{
    if ((unsigned)kind >= PC_MKEY_N) {
        *n = 0;
        return NULL;
    }
    *n = kinds[kind].nbounds;
    return kinds[kind].bounds;
}

static void hist_add(entry *e, pc_metrics_key kind, size_t bucket,
                     uint64_t count, uint64_t sum_ns)
{
    if (bucket > kinds[kind].nbounds)
        return;
    bump(&e->bucket[bucket], count);
    bump(&e->sum_ns, sum_ns);
}

void pc_metrics_observe(pc_metrics_shard *s, pc_metrics_key kind, uint32_t id,
                        uint64_t ns)
{
    entry *e = entry_of(s, kind, id);
    if (!e)
        return;
    const kind_desc *k = &kinds[kind];
    hist_add(e, kind, pc_metrics_bucket(k->bounds, k->nbounds, ns), 1, ns);
}

/* (family, a, b) packed into a non-zero key; 0 when out of range. */
static uint32_t ckey(pc_metrics_counter fam, uint32_t a, uint32_t b)
{
    if ((unsigned)fam >= PC_MC_N || a >= 1024u || b >= 65536u)
        return 0;
    return (((uint32_t)fam + 1u) << 26) | (a << 16) | b;
}

void pc_metrics_count(pc_metrics_shard *s, pc_metrics_counter fam, uint32_t id,
                      uint32_t a, uint32_t b)
{
    uint32_t key = ckey(fam, a, b);
    if (!key)
        return;
    entry *e = entry_of(s, counter_families[fam].kind, id);
    if (e)
        ctab_add(&e->ctr, key, 1);
}

void pc_metrics_request(pc_metrics_shard *s, uint32_t route_id, unsigned method,
                        int status, uint64_t duration_ns, uint32_t upstream_id,
                        uint64_t upstream_ns)
{
    if (!s)
        return;
    uint32_t st = status >= 0 && status <= 999 ? (uint32_t)status : 0;
    pc_metrics_count(s, PC_MC_REQUESTS, route_id, method, st);
    pc_metrics_observe(s, PC_MKEY_ROUTE, route_id, duration_ns);
    if (upstream_ns)
        pc_metrics_observe(s, PC_MKEY_UPSTREAM, upstream_id, upstream_ns);
}

void pc_metrics_count_reload(int success)
{
    atomic_fetch_add(&reg.reloads[success ? 1 : 0], 1);
}

uint64_t pc_metrics_reloads(int success)
{
    return atomic_load(&reg.reloads[success ? 1 : 0]);
}

void pc_metrics_count_webhook_dropped(uint64_t n)
{
    atomic_fetch_add(&reg.webhook_dropped, n);
}

uint64_t pc_metrics_webhook_dropped(void)
{
    return atomic_load(&reg.webhook_dropped);
}

/* ---- shards ------------------------------------------------------------- */

pc_metrics_shard *pc_metrics_shard_new(void)
{
    pc_metrics_shard *s = pc_xcalloc(1, sizeof *s);
    pthread_mutex_lock(&reg.lock);
    s->next = reg.shards;
    if (reg.shards)
        reg.shards->prev = s;
    reg.shards = s;
    pthread_mutex_unlock(&reg.lock);
    return s;
}

/* Adds every count of s into the retired shard (under the lock). */
static void retire(pc_metrics_shard *s)
{
    for (unsigned k = 0; k < PC_MKEY_N; k++)
        for (uint32_t ci = 0; ci < NCHUNKS; ci++) {
            chunk *c = atomic_load(&s->chunks[k][ci]);
            if (!c)
                continue;
            for (uint32_t i = 0; i < CHUNK; i++) {
                entry *e = &c->e[i], *dst = NULL;
                for (size_t b = 0; b <= kinds[k].nbounds; b++) {
                    uint64_t v = rd(&e->bucket[b]);
                    if (!v)
                        continue;
                    dst = dst ? dst : entry_of(&reg.retired, k, ci * CHUNK + i);
                    hist_add(dst, k, b, v, 0);
                }
                if (dst)
                    bump(&dst->sum_ns, rd(&e->sum_ns));
                for (ctab *t = &e->ctr; t; t = atomic_load(&t->next))
                    for (unsigned j = 0; j < CTAB_SLOTS; j++) {
                        uint32_t key = atomic_load(&t->key[j]);
                        if (!key)
                            continue;
                        dst = dst ? dst
                                  : entry_of(&reg.retired, k, ci * CHUNK + i);
                        ctab_add(&dst->ctr, key, rd(&t->val[j]));
                    }
            }
        }
}

static void free_chunks(pc_metrics_shard *s)
{
    for (unsigned k = 0; k < PC_MKEY_N; k++)
        for (uint32_t ci = 0; ci < NCHUNKS; ci++) {
            chunk *c = atomic_load(&s->chunks[k][ci]);
            if (!c)
                continue;
            for (uint32_t i = 0; i < CHUNK; i++) {
                ctab *t = atomic_load(&c->e[i].ctr.next);
                while (t) {
                    ctab *next = atomic_load(&t->next);
                    free(t);
                    t = next;
                }
            }
            free(c);
        }
}

void pc_metrics_shard_free(pc_metrics_shard *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&reg.lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        reg.shards = s->next;
    if (s->next)
        s->next->prev = s->prev;
    retire(s);
    pthread_mutex_unlock(&reg.lock);
    free_chunks(s);
    free(s);
}

/* ---- reader side (callers hold reg.lock) -------------------------------- */

static entry *peek(pc_metrics_shard *s, pc_metrics_key kind, uint32_t id)
{
    chunk *c = atomic_load_explicit(&s->chunks[kind][id / CHUNK],
                                    memory_order_acquire);
    return c ? &c->e[id % CHUNK] : NULL;
}

#define EACH_SHARD(s)                                                         \
    for (pc_metrics_shard *s = &reg.retired; s;                               \
         s = s == &reg.retired ? reg.shards : s->next)

static int hist_get(pc_metrics_key kind, uint32_t id, pc_metrics_hist_sum *o)
{
    memset(o, 0, sizeof *o);
    size_t nb = kinds[kind].nbounds;
    EACH_SHARD(s)
    {
        entry *e = peek(s, kind, id);
        if (!e)
            continue;
        for (size_t b = 0; b <= nb; b++)
            o->bucket[b] += rd(&e->bucket[b]);
        o->sum_ns += rd(&e->sum_ns);
    }
    for (size_t b = 0; b <= nb; b++)
        o->count += o->bucket[b];
    return o->count > 0;
}

int pc_metrics_hist_get(pc_metrics_key kind, uint32_t id,
                        pc_metrics_hist_sum *out)
{
    memset(out, 0, sizeof *out);
    if ((unsigned)kind >= PC_MKEY_N || id >= PC_METRICS_MAX_IDS)
        return 0;
    pthread_mutex_lock(&reg.lock);
    int r = hist_get(kind, id, out);
    pthread_mutex_unlock(&reg.lock);
    return r;
}

static int cval_cmp(const void *x, const void *y)
{
    const pc_metrics_cval *a = x, *b = y;
    if (a->a != b->a)
        return a->a < b->a ? -1 : 1;
    return a->b < b->b ? -1 : a->b > b->b;
}

static size_t counter_list(pc_metrics_counter fam, uint32_t id,
                           pc_metrics_cval **out)
{
    size_t n = 0, cap = 0;
    pc_metrics_cval *v = NULL;
    uint32_t tag = ((uint32_t)fam + 1u) << 26;
    EACH_SHARD(s)
    {
        entry *e = peek(s, counter_families[fam].kind, id);
        ctab *t = e ? &e->ctr : NULL;
        for (; t; t = atomic_load_explicit(&t->next, memory_order_acquire))
            for (unsigned j = 0; j < CTAB_SLOTS; j++) {
                uint32_t k =
                    atomic_load_explicit(&t->key[j], memory_order_acquire);
                if (!k || (k & ~((1u << 26) - 1)) != tag)
                    continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 32;
                    v = pc_xrealloc(v, cap * sizeof *v);
                }
                v[n].a = (k >> 16) & 1023u;
                v[n].b = k & 0xffffu;
                v[n++].value = rd(&t->val[j]);
            }
    }
    if (n)
        qsort(v, n, sizeof *v, cval_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && v[m - 1].a == v[i].a && v[m - 1].b == v[i].b)
            v[m - 1].value += v[i].value;
        else
            v[m++] = v[i];
    }
    *out = v;
    return m;
}

size_t pc_metrics_counter_list(pc_metrics_counter fam, uint32_t id,
                               pc_metrics_cval **out)
{
    *out = NULL;
    if ((unsigned)fam >= PC_MC_N || id >= PC_METRICS_MAX_IDS)
        return 0;
    pthread_mutex_lock(&reg.lock);
    size_t n = counter_list(fam, id, out);
    pthread_mutex_unlock(&reg.lock);
    if (!n) {
        free(*out);
        *out = NULL;
    }
    return n;
}

uint64_t pc_metrics_counter_get(pc_metrics_counter fam, uint32_t id,
                                uint32_t a, uint32_t b)
{
    pc_metrics_cval *v;
    size_t n = pc_metrics_counter_list(fam, id, &v);
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].a == a && v[i].b == b)
            r = v[i].value;
    free(v);
    return r;
}

/* ---- rendering ---------------------------------------------------------- */

/* Ids to show for a kind: the interned ones, then the overflow id. */
static uint32_t id_at(pc_metrics_key kind, uint32_t i, uint32_t n)
{
    return i < n ? i : PC_METRICS_ID_OVERFLOW;
}

static void label(pc_mbuf *b, const char *key, const char *value)
{
    char *esc = pc_xmalloc(2 * strlen(value) + 1);
    pc_mbuf_printf(b, "%s=\"", key);
    pc_mbuf_add(b, esc, pc_metrics_escape(esc, value));
    pc_mbuf_add(b, "\"", 1);
    free(esc);
}

static void render_counters(pc_mbuf *b, pc_metrics_counter fam)
{
    const counter_desc *d = &counter_families[fam];
    uint32_t n = pc_metrics_nids(d->kind);
    pc_mbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", d->name, d->help,
                   d->name);
    for (uint32_t i = 0; i <= n; i++) {
        uint32_t id = id_at(d->kind, i, n);
        const char *name = pc_metrics_id_name(d->kind, id);
        pc_metrics_cval *v = NULL;
        size_t nv = name ? counter_list(fam, id, &v) : 0;
        for (size_t j = 0; j < nv; j++) {
            pc_mbuf_printf(b, "%s{", d->name);
            label(b, kinds[d->kind].label, name);
            d->labels(b, v[j].a, v[j].b);
            pc_mbuf_printf(b, "} %llu\n", (unsigned long long)v[j].value);
        }
        free(v);
    }
}

static void render_hist(pc_mbuf *b, pc_metrics_key kind)
{
    const kind_desc *k = &kinds[kind];
    uint32_t n = pc_metrics_nids(kind);
    pc_mbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", k->name, k->help,
                   k->name);
    for (uint32_t i = 0; i <= n; i++) {
        uint32_t id = id_at(kind, i, n);
        const char *name = pc_metrics_id_name(kind, id);
        pc_metrics_hist_sum h;
        /* every stage is shown; routes and upstreams once observed */
        if (!name || (!hist_get(kind, id, &h) && kind != PC_MKEY_STAGE))
            continue;
        uint64_t cum = 0;
        for (size_t j = 0; j <= k->nbounds; j++) {
            char le[32];
            cum += h.bucket[j];
            if (j < k->nbounds)
                pc_metrics_fmt_seconds(le, sizeof le, k->bounds[j]);
            else
                strcpy(le, "+Inf");
            pc_mbuf_printf(b, "%s_bucket{", k->name);
            label(b, k->label, name);
            pc_mbuf_printf(b, ",le=\"%s\"} %llu\n", le,
                           (unsigned long long)cum);
        }
        char sum[32];
        pc_metrics_fmt_seconds(sum, sizeof sum, h.sum_ns);
        pc_mbuf_printf(b, "%s_sum{", k->name);
        label(b, k->label, name);
        pc_mbuf_printf(b, "} %s\n%s_count{", sum, k->name);
        label(b, k->label, name);
        pc_mbuf_printf(b, "} %llu\n", (unsigned long long)h.count);
    }
}

void pc_metrics_render_registry(pc_mbuf *b)
{
    pthread_mutex_lock(&reg.lock);
    for (unsigned f = 0; f < PC_MC_N; f++)
        render_counters(b, (pc_metrics_counter)f);
    for (unsigned k = 0; k < PC_MKEY_N; k++)
        render_hist(b, (pc_metrics_key)k);
    pthread_mutex_unlock(&reg.lock);
    pc_mbuf_printf(b,
                   "# HELP portcullis_config_reloads_total Configuration "
                   "reloads (SIGHUP), by result.\n"
                   "# TYPE portcullis_config_reloads_total counter\n"
                   "portcullis_config_reloads_total{result=\"success\"} %llu\n"
                   "portcullis_config_reloads_total{result=\"failure\"} %llu\n",
                   (unsigned long long)pc_metrics_reloads(1),
                   (unsigned long long)pc_metrics_reloads(0));
    pc_mbuf_printf(b,
                   "# HELP portcullis_webhook_dropped_total Webhook deliveries "
                   "dropped (queue full, or pending at shutdown).\n"
                   "# TYPE portcullis_webhook_dropped_total counter\n"
                   "portcullis_webhook_dropped_total %llu\n",
                   (unsigned long long)pc_metrics_webhook_dropped());
}

#else
typedef int pc_metrics_compiled_out; /* ISO C: no empty translation unit */
#endif
