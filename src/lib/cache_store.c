/* cache_store.c: the process-wide memory store of the HTTP cache and the
 * request-collapsing table (design in cache_store.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/cache_store.h"
#include "portcullis/util.h"

typedef struct flight flight;
struct flight {
    flight *next;
    uint64_t hash;
    char *key;
    size_t klen;
    pc_cache_waiter *head, **tail;
};

typedef struct list {
    pc_cobj *head, *tail; /* head: most recent */
    uint64_t bytes;
} list;

typedef struct shard {
    pthread_mutex_t lock;
    pc_cobj **idx;
    size_t nidx, n;
    list seg[3]; /* [1] probation, [2] protected */
    flight *flights;
} shard;

static struct store {
    pthread_once_t once;
    shard s[PC_CACHE_SHARDS];
    _Atomic uint64_t used;
    _Atomic uint64_t budget; /* last budget given: protected share */
    _Atomic size_t count;
    _Atomic unsigned evict_cursor;
} st = {.once = PTHREAD_ONCE_INIT};

static void store_init(void)
{
    for (unsigned i = 0; i < PC_CACHE_SHARDS; i++) {
        pthread_mutex_init(&st.s[i].lock, NULL);
        st.s[i].nidx = 256;
        st.s[i].idx = pc_xcalloc(st.s[i].nidx, sizeof *st.s[i].idx);
    }
}

static shard *shard_of(uint64_t hash)
{
    pthread_once(&st.once, store_init);
    return &st.s[hash >> 60 & (PC_CACHE_SHARDS - 1)];
}

_Static_assert(PC_CACHE_SHARDS == 16, "shard_of takes the top 4 bits");

uint64_t pc_cache_hash(const char *key, size_t klen)
{
    /* FNV-1a 64 then a murmur finaliser: the top bits pick the shard */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* ---- objects -------------------------------------------------------------- */

static size_t up8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

pc_cobj *pc_cache_obj_new(const char *key, size_t klen, const char *route,
                          const char *path, const char *const *vary_names,
                          const char *const *vary_vals, uint32_t nvary,
                          int status, const pc_chdr *hdrs, uint32_t nhdrs)
{
    size_t rl = strlen(route), pl = strlen(path);
    size_t need = up8(sizeof(pc_chdr) * nhdrs) +
                  up8(2 * sizeof(char *) * nvary) + klen + 1 + rl + 1 +
                  pl + 1;
    for (uint32_t i = 0; i < nvary; i++)
        need += strlen(vary_names[i]) + strlen(vary_vals[i]) + 2;
    for (uint32_t i = 0; i < nhdrs; i++)
        need += (size_t)hdrs[i].nlen + hdrs[i].vlen + 2;
    pc_cobj *o = pc_xmalloc(sizeof *o + need);
    memset(o, 0, sizeof *o);
    char *m = o->mem;
    pc_chdr *hv = (pc_chdr *)(void *)m;
    m += up8(sizeof(pc_chdr) * nhdrs);
    const char **vn = (const char **)(void *)m;
    const char **vv = vn + nvary;
    m += up8(2 * sizeof(char *) * nvary);
    for (uint32_t i = 0; i < nhdrs; i++) {
        char *nm = m;
        memcpy(m, hdrs[i].name, hdrs[i].nlen);
        m[hdrs[i].nlen] = '\0';
        m += hdrs[i].nlen + 1;
        char *val = m;
        memcpy(m, hdrs[i].value, hdrs[i].vlen);
        m[hdrs[i].vlen] = '\0';
        m += hdrs[i].vlen + 1;
        hv[i] = (pc_chdr){nm, val, hdrs[i].nlen, hdrs[i].vlen};
        if (hv[i].nlen == 4 && pc_strieq(nm, 4, "etag", 4))
            o->etag = val;
        else if (hv[i].nlen == 13 && pc_strieq(nm, 13, "last-modified", 13))
            o->last_modified = val;
    }
    for (uint32_t i = 0; i < nvary; i++) {
        size_t a = strlen(vary_names[i]), b = strlen(vary_vals[i]);
        memcpy(m, vary_names[i], a + 1);
        vn[i] = m;
        m += a + 1;
        memcpy(m, vary_vals[i], b + 1);
        vv[i] = m;
        m += b + 1;
    }
    memcpy(m, key, klen);
    m[klen] = '\0';
    o->key = m;
    o->klen = klen;
    m += klen + 1;
    memcpy(m, route, rl + 1);
    o->route = m;
    m += rl + 1;
    memcpy(m, path, pl + 1);
    o->path = m;
    o->hash = pc_cache_hash(key, klen);
    o->vary_names = vn;
    o->vary_vals = vv;
    o->nvary = nvary;
    o->status = status;
    o->hdrs = hv;
    o->nhdrs = nhdrs;
    o->swr = o->sie = -1;
    atomic_init(&o->refs, 1);
    atomic_init(&o->revalidating, 0);
    o->charge = sizeof *o + need;
    return o;
}

pc_cbody *pc_cache_body_new(const char *data, size_t len)
{
    pc_cbody *b = pc_xmalloc(sizeof *b + (len ? len : 1));
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

void pc_cache_body_unref(pc_cbody *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

void pc_cache_obj_set_body(pc_cobj *o, pc_cbody *b)
{
    if (o->body) {
        o->charge -= sizeof *o->body + o->body->len;
        pc_cache_body_unref(o->body);
    }
    o->body = b;
    if (b) {
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        /* a shared body is charged to each object holding it: the budget
         * errs on the safe side while a refreshed object replaces its
         * predecessor */
        o->charge += sizeof *b + b->len;
    }
}

const pc_cbody *pc_cache_obj_coded(const pc_cobj *o, unsigned coding)
{
    if (coding == 0 || coding >= PC_CACHE_CODINGS)
        return NULL;
    return atomic_load_explicit(&o->coded[coding], memory_order_acquire);
}

void pc_cache_obj_share_coded(pc_cobj *dst, const pc_cobj *src)
{
    for (unsigned i = 1; i < PC_CACHE_CODINGS; i++) {
        pc_cbody *b =
            atomic_load_explicit(&src->coded[i], memory_order_acquire);
        if (!b || atomic_load_explicit(&dst->coded[i], memory_order_relaxed))
            continue;
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&dst->coded[i], b, memory_order_release);
        dst->charge += sizeof *b + b->len;
    }
}

void pc_cache_obj_ref(pc_cobj *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void pc_cache_obj_unref(pc_cobj *o)
{
    if (o && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
        pc_cache_body_unref(o->body);
        for (unsigned i = 1; i < PC_CACHE_CODINGS; i++)
            pc_cache_body_unref(
                atomic_load_explicit(&o->coded[i], memory_order_relaxed));
        free(o);
    }
}

/* ---- lists and index (shard lock held) -------------------------------------- */

static void list_unlink(shard *s, pc_cobj *o)
{
    list *l = &s->seg[o->seg];
    if (o->prev)
        o->prev->next = o->next;
    else
        l->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        l->tail = o->prev;
    l->bytes -= o->charge;
    o->prev = o->next = NULL;
    o->seg = 0;
}

static void list_push(shard *s, pc_cobj *o, uint8_t seg)
{
    list *l = &s->seg[seg];
    o->seg = seg;
    o->prev = NULL;
    o->next = l->head;
    if (l->head)
        l->head->prev = o;
    else
        l->tail = o;
    l->head = o;
    l->bytes += o->charge;
}

static pc_cobj **slot_of(shard *s, uint64_t hash)
{
    return &s->idx[hash & (s->nidx - 1)];
}

/* Unlinks o from index and lists and drops the store's reference. */
static void drop(shard *s, pc_cobj *o)
{
    pc_cobj **pp = slot_of(s, o->hash);
    while (*pp && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = o->hnext;
    o->hnext = NULL;
    list_unlink(s, o);
    s->n--;
    atomic_fetch_sub(&st.used, o->charge);
    atomic_fetch_sub(&st.count, 1);
    pc_cache_obj_unref(o);
}

static void grow(shard *s)
{
    size_t nn = s->nidx * 2;
    pc_cobj **idx = pc_xcalloc(nn, sizeof *idx);
    for (size_t i = 0; i < s->nidx; i++) {
        pc_cobj *o = s->idx[i];
        while (o) {
            pc_cobj *next = o->hnext;
            pc_cobj **pp = &idx[o->hash & (nn - 1)];
            o->hnext = *pp;
            *pp = o;
            o = next;
        }
    }
    free(s->idx);
    s->idx = idx;
    s->nidx = nn;
}

static int same_key(const pc_cobj *o, const char *key, size_t klen,
                    uint64_t hash)
{
    return o->hash == hash && o->klen == klen && memcmp(o->key, key, klen) == 0;
}

static int same_variant(const pc_cobj *a, const pc_cobj *b)
{
    if (a->nvary != b->nvary)
        return 0;
    for (uint32_t i = 0; i < a->nvary; i++)
        if (strcmp(a->vary_names[i], b->vary_names[i]) ||
            strcmp(a->vary_vals[i], b->vary_vals[i]))
            return 0;
    return 1;
}

/* The protected segment's share of one shard. */
static uint64_t protected_cap(void)
{
    return atomic_load(&st.budget) / PC_CACHE_SHARDS * 4 / 5;
}

pc_cobj *pc_cache_lookup(const char *key, size_t klen, uint64_t hash,
                         int (*match)(const pc_cobj *o, void *ctx), void *ctx)
{
    shard *s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    pc_cobj *o = *slot_of(s, hash);
    for (; o; o = o->hnext)
        if (same_key(o, key, klen, hash) && (!match || match(o, ctx)))
            break;
    if (o) {
        pc_cache_obj_ref(o);
        /* segmented LRU: a hit promotes to (or refreshes in) protected */
        list_unlink(s, o);
        list_push(s, o, 2);
        uint64_t cap = protected_cap();
        while (s->seg[2].bytes > cap && s->seg[2].tail != o) {
            pc_cobj *d = s->seg[2].tail;
            list_unlink(s, d);
            list_push(s, d, 1);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return o;
}

/* Evicts one object of shard s (probation tail first), never `keep`
 * (the object whose insertion or growth made room necessary); 0 when
 * there is none. */
static int evict_one(shard *s, const pc_cobj *keep)
{
    pc_cobj *o = NULL;
    for (int seg = 1; seg <= 2 && !o; seg++) {
        o = s->seg[seg].tail;
        if (o == keep)
            o = o->prev;
    }
    if (!o)
        return 0;
    drop(s, o);
    return 1;
}

static void enforce(shard *own, uint64_t budget, const pc_cobj *keep)
{
    if (atomic_load(&st.used) <= budget)
        return;
    pthread_mutex_lock(&own->lock);
    while (atomic_load(&st.used) > budget && evict_one(own, keep))
        ;
    pthread_mutex_unlock(&own->lock);
    /* other shards in turn, one lock at a time */
    int evicted = 0;
    for (unsigned k = 0; k < PC_CACHE_SHARDS && atomic_load(&st.used) > budget;
         k++) {
        shard *s = &st.s[atomic_fetch_add(&st.evict_cursor, 1) %
                         PC_CACHE_SHARDS];
        pthread_mutex_lock(&s->lock);
        /* a few at a time: spread the loss over the shards */
        for (int i = 0; i < 8 && atomic_load(&st.used) > budget; i++) {
            if (!evict_one(s, keep))
                break;
            evicted = 1;
        }
        pthread_mutex_unlock(&s->lock);
        if (k == PC_CACHE_SHARDS - 1 && atomic_load(&st.used) > budget &&
            evicted) {
            k = (unsigned)-1; /* another round, while rounds evict */
            evicted = 0;
        }
    }
}

int pc_cache_insert(pc_cobj *o, uint64_t budget)
{
    if (o->charge > budget)
        return 0;
    atomic_store(&st.budget, budget);
    shard *s = shard_of(o->hash);
    pthread_mutex_lock(&s->lock);
    pc_cobj *c = *slot_of(s, o->hash);
    while (c) {
        pc_cobj *next = c->hnext;
        if (same_key(c, o->key, o->klen, o->hash) && same_variant(c, o))
            drop(s, c);
        c = next;
    }
    if (s->n + 1 > s->nidx)
        grow(s);
    pc_cache_obj_ref(o);
    pc_cobj **pp = slot_of(s, o->hash);
    o->hnext = *pp;
    *pp = o;
    list_push(s, o, 1);
    s->n++;
    atomic_fetch_add(&st.used, o->charge);
    atomic_fetch_add(&st.count, 1);
    pthread_mutex_unlock(&s->lock);
    enforce(s, budget, o);
    return 1;
}

int pc_cache_obj_add_coded(pc_cobj *o, unsigned coding, pc_cbody *b,
                           uint64_t budget)
{
    if (coding == 0 || coding >= PC_CACHE_CODINGS || !b)
        return 0;
    size_t add = sizeof *b + b->len;
    shard *s = shard_of(o->hash);
    int done = 0;
    pthread_mutex_lock(&s->lock);
    /* o->seg: still in the store (drop unlinks under this lock), so its
     * charge, counted in its list and in `used`, is ours to change */
    if (o->seg && !atomic_load_explicit(&o->coded[coding],
                                        memory_order_relaxed) &&
        o->charge + add <= budget) {
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&o->coded[coding], b, memory_order_release);
        o->charge += add;
        s->seg[o->seg].bytes += add;
        atomic_fetch_add(&st.used, add);
        done = 1;
    }
    pthread_mutex_unlock(&s->lock);
    if (done)
        enforce(s, budget, o);
    return done;
}

size_t pc_cache_invalidate(const char *key, size_t klen, uint64_t hash)
{
    shard *s = shard_of(hash);
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    pc_cobj *c = *slot_of(s, hash);
    while (c) {
        pc_cobj *next = c->hnext;
        if (same_key(c, key, klen, hash)) {
            drop(s, c);
            n++;
        }
        c = next;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t pc_cache_purge(const char *route, const char *path)
{
    pthread_once(&st.once, store_init);
    size_t n = 0;
    for (unsigned i = 0; i < PC_CACHE_SHARDS; i++) {
        shard *s = &st.s[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nidx; b++) {
            pc_cobj *c = s->idx[b];
            while (c) {
                pc_cobj *next = c->hnext;
                if ((!route || strcmp(route, c->route) == 0) &&
                    (!path || strcmp(path, c->path) == 0)) {
                    drop(s, c);
                    n++;
                }
                c = next;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

/* ---- purge rules -------------------------------------------------------- */

typedef struct prule {
    char *route, *path; /* NULL: any */
    long long at;
} prule;

static struct {
    pthread_mutex_t mu;
    prule v[PC_CACHE_RULES];
    size_t n;
} rules = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void rule_free(prule *r)
{
    free(r->route);
    free(r->path);
    r->route = r->path = NULL;
}

void pc_cache_purge_rule_add(const char *route, const char *path,
                             long long now)
{
    pthread_mutex_lock(&rules.mu);
    size_t k = 0;
    for (size_t i = 0; i < rules.n; i++) {
        prule *r = &rules.v[i];
        int same = (!r->route == !route) && (!route || !strcmp(r->route, route)) &&
                   (!r->path == !path) && (!path || !strcmp(r->path, path));
        if (same || r->at < now - PC_CACHE_RULE_TTL_S)
            rule_free(r); /* superseded or outlived every entry */
        else
            rules.v[k++] = *r;
    }
    rules.n = k;
    if (rules.n == PC_CACHE_RULES) { /* one rule for everything */
        for (size_t i = 0; i < rules.n; i++) {
            if (rules.v[i].at > now)
                now = rules.v[i].at;
            rule_free(&rules.v[i]);
        }
        rules.n = 0;
        route = path = NULL;
    }
    rules.v[rules.n++] = (prule){route ? pc_xstrdup(route) : NULL,
                                 path ? pc_xstrdup(path) : NULL, now};
    pthread_mutex_unlock(&rules.mu);
}

int pc_cache_purged(const char *route, const char *path, long long stored_at)
{
    int hit = 0;
    pthread_mutex_lock(&rules.mu);
    for (size_t i = 0; i < rules.n && !hit; i++) {
        const prule *r = &rules.v[i];
        hit = stored_at <= r->at && (!r->route || !strcmp(r->route, route)) &&
              (!r->path || !strcmp(r->path, path));
    }
    pthread_mutex_unlock(&rules.mu);
    return hit;
}

uint64_t pc_cache_used(void)
{
    return atomic_load(&st.used);
}

size_t pc_cache_count(void)
{
    return atomic_load(&st.count);
}

void pc_cache_shutdown(void)
{
    pthread_once(&st.once, store_init);
    pc_cache_purge(NULL, NULL);
    pthread_mutex_lock(&rules.mu);
    for (size_t i = 0; i < rules.n; i++)
        rule_free(&rules.v[i]);
    rules.n = 0;
    pthread_mutex_unlock(&rules.mu);
    for (unsigned i = 0; i < PC_CACHE_SHARDS; i++) {
        shard *s = &st.s[i];
        pthread_mutex_lock(&s->lock);
        while (s->flights) {
            flight *f = s->flights;
            s->flights = f->next;
            free(f->key);
            free(f);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- collapsing ------------------------------------------------------------------ */

int pc_cache_flight_join(const char *key, size_t klen, uint64_t hash,
                         pc_cache_waiter *w)
{
    shard *s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    flight *f = s->flights;
    for (; f; f = f->next)
        if (f->hash == hash && f->klen == klen && !memcmp(f->key, key, klen))
            break;
    if (!f) {
        f = pc_xcalloc(1, sizeof *f);
        f->hash = hash;
        f->key = pc_xstrndup(key, klen);
        f->klen = klen;
        f->tail = &f->head;
        f->next = s->flights;
        s->flights = f;
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    w->next = NULL;
    w->flight = f;
    *f->tail = w;
    f->tail = &w->next;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void pc_cache_flight_done(const char *key, size_t klen, uint64_t hash)
{
    shard *s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    flight **pp = &s->flights;
    while (*pp && !((*pp)->hash == hash && (*pp)->klen == klen &&
                    !memcmp((*pp)->key, key, klen)))
        pp = &(*pp)->next;
    flight *f = *pp;
    pc_cache_waiter *w = NULL;
    if (f) {
        *pp = f->next;
        w = f->head;
        for (pc_cache_waiter *x = w; x; x = x->next)
            x->flight = NULL; /* handed to wake: leave() says 0 */
    }
    pthread_mutex_unlock(&s->lock);
    if (f) {
        free(f->key);
        free(f);
    }
    while (w) {
        pc_cache_waiter *next = w->next;
        w->wake(w); /* may free w */
        w = next;
    }
}

int pc_cache_flight_leave(pc_cache_waiter *w, uint64_t hash)
{
    shard *s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    flight *f = w->flight;
    int queued = 0;
    if (f) {
        pc_cache_waiter **pp = &f->head;
        while (*pp && *pp != w)
            pp = &(*pp)->next;
        if (*pp) {
            *pp = w->next;
            if (f->tail == &w->next)
                f->tail = pp;
            queued = 1;
        }
        w->flight = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return queued;
}
