/* bucket_table.c: the process-wide, sharded store of token buckets (DESIGN
 * in include/portcullis/bucket_table.h). Owns its shards, index arrays and
 * entry chunks. Must never hold a shard lock across anything but a lookup
 * and the bucket arithmetic, never take two shard locks at once, and never
 * hold more than max_keys entries. No libevent, no I/O (getrandom for the
 * hash key only). */
#include "portcullis/bucket_table.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "portcullis/util.h"

#define CHUNK 64u /* entries per chunk: 4 KiB */
#define SCAN 64u  /* entries looked at per eviction */

typedef struct entry {
    uint64_t deficit; /* pc_bucket */
    uint64_t last;
    uint64_t family; /* 0: free entry (families are never 0) */
    uint32_t hash;   /* low 32 bits of the key hash: home slot and tag */
    uint32_t rate;   /* refill units per microsecond, for eviction */
    uint8_t klen;
    uint8_t key[PC_BUCKET_KEY_MAX];
} entry;
_Static_assert(sizeof(entry) == 64, "one cache line per bucket");

typedef struct shard {
    pthread_mutex_t lock;
    uint32_t *index; /* mask + 1 slots (load <= 3/4): 0 empty, else
                        tag << 16 | id + 1 */
    uint32_t mask;
    uint32_t count; /* entries in use */
    uint32_t used;  /* ids handed out so far: 0..used-1 */
    uint32_t free;  /* free list head: id + 1, 0 when empty */
    uint32_t hand;  /* eviction cursor (an id) */
    entry **chunks; /* cap / CHUNK pointers */
    size_t bytes;   /* chunks and index allocated */
    uint64_t evicted_full, evicted_active;
} __attribute__((aligned(64))) shard;

struct pc_bucket_table {
    shard s[PC_BUCKET_TABLE_SHARDS];
    uint32_t cap;    /* entries per shard */
    uint64_t k0, k1; /* SipHash key */
};

/* ---- SipHash-1-3 ------------------------------------------------------ */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < n; k++)
        b |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- table ------------------------------------------------------------ */

/* Cache-line aligned memory; the pc_xmalloc policy on exhaustion. */
static void *xaligned(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) {
        fputs("portcullis: out of memory (rate-limit buckets)\n", stderr);
        abort();
    }
    memset(p, 0, n);
    return p;
}

pc_bucket_table *pc_bucket_table_new(size_t max_keys)
{
    pc_bucket_table *t = xaligned(sizeof *t);
    if (max_keys == 0)
        max_keys = PC_BUCKET_TABLE_DEFAULT_KEYS;
    if (max_keys > PC_BUCKET_TABLE_MAX_KEYS)
        max_keys = PC_BUCKET_TABLE_MAX_KEYS;
    size_t per = max_keys / PC_BUCKET_TABLE_SHARDS;
    t->cap = per ? (uint32_t)per : 1;
    uint64_t k[2];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uintptr_t)t;
        k[1] = (uint64_t)ts.tv_sec ^ ((uintptr_t)&k << 7);
    }
    t->k0 = k[0];
    t->k1 = k[1];
    size_t nchunks = (t->cap + CHUNK - 1) / CHUNK;
    for (unsigned i = 0; i < PC_BUCKET_TABLE_SHARDS; i++) {
        shard *s = &t->s[i];
        pthread_mutex_init(&s->lock, NULL);
        s->chunks = pc_xcalloc(nchunks, sizeof *s->chunks);
        s->bytes = nchunks * sizeof *s->chunks;
    }
    return t;
}

void pc_bucket_table_free(pc_bucket_table *t)
{
    if (!t)
        return;
    size_t nchunks = (t->cap + CHUNK - 1) / CHUNK;
    for (unsigned i = 0; i < PC_BUCKET_TABLE_SHARDS; i++) {
        shard *s = &t->s[i];
        for (size_t c = 0; c < nchunks; c++)
            free(s->chunks[c]);
        free(s->chunks);
        free(s->index);
        pthread_mutex_destroy(&s->lock);
    }
    free(t);
}

static entry *ent(const shard *s, uint32_t id)
{
    return &s->chunks[id / CHUNK][id % CHUNK];
}

static uint32_t tag_of(uint32_t h)
{
    return h >> 16;
}

/* The index slot holding id (it is there). */
static uint32_t slot_of(const shard *s, uint32_t id)
{
    uint32_t i = ent(s, id)->hash & s->mask;
    while ((s->index[i] & 0xffffu) != id + 1)
        i = (i + 1) & s->mask;
    return i;
}

/* Removes entry id: backward-shift deletion keeps every probe run
 * unbroken, so lookups never need tombstones. */
static void remove_id(shard *s, uint32_t id)
{
    uint32_t i = slot_of(s, id);
    for (uint32_t j = (i + 1) & s->mask;; j = (j + 1) & s->mask) {
        uint32_t v = s->index[j];
        if (!v)
            break;
        uint32_t home = ent(s, (v & 0xffffu) - 1)->hash & s->mask;
        /* v may move into the hole at i when its home is not in (i, j] */
        if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
            s->index[i] = v;
            i = j;
        }
    }
    s->index[i] = 0;
    entry *e = ent(s, id);
    e->family = 0;
    e->deficit = s->free;
    s->free = id + 1;
    s->count--;
}

static void index_put(shard *s, uint32_t h, uint32_t id)
{
    uint32_t i = h & s->mask;
    while (s->index[i])
        i = (i + 1) & s->mask;
    s->index[i] = tag_of(h) << 16 | (id + 1);
}

/* Doubles the index (or makes the first one) and re-inserts every entry. */
static void index_grow(shard *s)
{
    uint32_t n = s->index ? (s->mask + 1) * 2 : 16;
    if (s->index)
        s->bytes -= (size_t)(s->mask + 1) * 4;
    free(s->index);
    s->index = pc_xcalloc(n, sizeof *s->index);
    s->mask = n - 1;
    s->bytes += (size_t)n * 4;
    for (uint32_t id = 0; id < s->used; id++)
        if (ent(s, id)->family)
            index_put(s, ent(s, id)->hash, id);
}

/* Makes room for one entry in a full shard (see the DESIGN block). */
static void evict(shard *s, uint64_t now_us)
{
    uint32_t best = UINT32_MAX;
    uint64_t best_in = UINT64_MAX;
    size_t freed = 0;
    for (uint32_t k = 0; k < SCAN && k < s->used; k++) {
        uint32_t id = s->hand;
        s->hand = s->hand + 1 < s->used ? s->hand + 1 : 0;
        entry *e = ent(s, id);
        if (!e->family)
            continue;
        pc_bucket b = {e->deficit, e->last};
        uint64_t in = pc_bucket_full_in(&b, e->rate, now_us);
        if (in == 0) {
            remove_id(s, id);
            s->evicted_full++;
            freed++;
        } else if (in < best_in) {
            best_in = in;
            best = id;
        }
    }
    if (!freed && best != UINT32_MAX) {
        remove_id(s, best);
        s->evicted_active++;
    }
}

static uint32_t new_id(shard *s)
{
    if (s->free) {
        uint32_t id = s->free - 1;
        s->free = (uint32_t)ent(s, id)->deficit;
        return id;
    }
    uint32_t id = s->used++;
    if (!s->chunks[id / CHUNK]) {
        s->chunks[id / CHUNK] = xaligned(CHUNK * sizeof(entry));
        s->bytes += CHUNK * sizeof(entry);
    }
    return id;
}

static entry *find(const shard *s, uint32_t h, uint64_t family,
                   const uint8_t *key, size_t len)
{
    if (!s->index)
        return NULL;
    uint32_t tag = tag_of(h);
    for (uint32_t i = h & s->mask;; i = (i + 1) & s->mask) {
        uint32_t v = s->index[i];
        if (!v)
            return NULL;
        if ((v >> 16) != tag)
            continue;
        entry *e = ent(s, (v & 0xffffu) - 1);
        if (e->hash == h && e->family == family && e->klen == len &&
            !memcmp(e->key, key, len))
            return e;
    }
}

void pc_bucket_table_take(pc_bucket_table *t, uint64_t family, const void *key,
                          size_t len, const pc_bucket_rate *r, uint64_t now_us,
                          pc_bucket_decision *d)
{
    uint8_t buf[8 + PC_BUCKET_KEY_MAX];
    if (len > PC_BUCKET_KEY_MAX)
        len = PC_BUCKET_KEY_MAX;
    family |= 1; /* never 0: 0 marks a free entry */
    memcpy(buf, &family, 8);
    memcpy(buf + 8, key, len);
    uint64_t h64 = siphash13(t->k0, t->k1, buf, 8 + len);
    uint32_t h = (uint32_t)h64;
    shard *s = &t->s[h64 >> 56];
    pthread_mutex_lock(&s->lock);
    entry *e = find(s, h, family, buf + 8, len);
    if (!e) {
        if (s->count >= t->cap)
            evict(s, now_us);
        if (!s->index || (s->count + 1) * 4 > (s->mask + 1) * 3)
            index_grow(s);
        uint32_t id = new_id(s);
        e = ent(s, id);
        e->family = family;
        e->hash = h;
        e->klen = (uint8_t)len;
        memcpy(e->key, buf + 8, len);
        e->deficit = 0;
        e->last = now_us;
        index_put(s, h, id);
        s->count++;
    }
    pc_bucket b = {e->deficit, e->last};
    pc_bucket_take(&b, r, now_us, d);
    e->deficit = b.deficit;
    e->last = b.last;
    e->rate = (uint32_t)r->rate; /* <= PC_BUCKET_MAX_RATE < 2^32 */
    pthread_mutex_unlock(&s->lock);
}

void pc_bucket_table_stats_get(pc_bucket_table *t, pc_bucket_table_stats *out)
{
    memset(out, 0, sizeof *out);
    out->max_keys = (size_t)t->cap * PC_BUCKET_TABLE_SHARDS;
    out->bytes = sizeof *t;
    for (unsigned i = 0; i < PC_BUCKET_TABLE_SHARDS; i++) {
        shard *s = &t->s[i];
        pthread_mutex_lock(&s->lock);
        out->keys += s->count;
        out->bytes += s->bytes;
        out->evicted_full += s->evicted_full;
        out->evicted_active += s->evicted_active;
        pthread_mutex_unlock(&s->lock);
    }
}

size_t pc_bucket_table_sweep(pc_bucket_table *t, uint64_t now_us)
{
    size_t n = 0;
    for (unsigned i = 0; i < PC_BUCKET_TABLE_SHARDS; i++) {
        shard *s = &t->s[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t id = 0; id < s->used; id++) {
            entry *e = ent(s, id);
            if (!e->family)
                continue;
            pc_bucket b = {e->deficit, e->last};
            if (pc_bucket_full_in(&b, e->rate, now_us) == 0) {
                remove_id(s, id);
                n++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}
