/* jwt_cache.c: one worker's cache of verified tokens, so a client sending the
 * same bearer token on every request pays for one signature check, not one
 * per request. Owns its entries and one json reference per entry. Must never
 * answer a hit that pc_jwt_verify would refuse at the same time (exp, nbf,
 * iat are re-checked on every get), never hold more than its capacity, never
 * be shared between threads, and never keep a token's text (only a digest).
 *
 * DESIGN: a fixed array of entries, allocated once, linked two ways by index:
 * hash chains from a power-of-two bucket array (at least twice the capacity,
 * so chains stay short), and one LRU list (head = most recently used). A get
 * or put moves its entry to the head; a put into a full cache reuses the
 * tail. The key is SHA-256(provider id || token): the digest is both
 * the bucket hash and the identity, so a token and provider pair is never
 * confused with another without a SHA-256 collision.
 *
 *   buckets[h] -> e7 -> e2 -> NIL          head -> e2 <-> e7 <-> e5 <- tail
 */
#include "portcullis/jwt.h"
#include "portcullis/util.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define MAX_CAPACITY (1u << 22)

typedef struct entry {
    unsigned char digest[32];
    json_t *claims; /* one reference; NULL when the slot is free */
    int64_t exp;
    uint32_t chain;      /* next entry in the same bucket */
    uint32_t prev, next; /* LRU neighbours, or the free list through next */
} entry;

struct pc_jwt_cache {
    entry *e;
    uint32_t *buckets;
    size_t capacity, count, mask;
    uint32_t head, tail, free_list;
    EVP_MD_CTX *md; /* reused for every key digest */
    EVP_MD *sha256; /* fetched once: EVP_sha256() is looked up per call */
};

pc_jwt_cache *pc_jwt_cache_new(size_t capacity)
{
    pc_jwt_cache *c = pc_xcalloc(1, sizeof(*c));
    size_t nb = 2;

    if (capacity > MAX_CAPACITY)
        capacity = MAX_CAPACITY;
    while (nb < capacity * 2)
        nb *= 2;
    c->capacity = capacity;
    c->mask = nb - 1;
    c->e = pc_xcalloc(capacity ? capacity : 1, sizeof(*c->e));
    c->buckets = pc_xmalloc(nb * sizeof(*c->buckets));
    for (size_t i = 0; i < nb; i++)
        c->buckets[i] = NIL;
    c->head = c->tail = NIL;
    c->md = EVP_MD_CTX_new();
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!c->md || !c->sha256) { /* the pc_xmalloc policy, for OpenSSL */
        fputs("portcullis: out of memory allocating a digest context\n",
              stderr);
        abort();
    }
    c->free_list = capacity ? 0 : NIL;
    for (size_t i = 0; i < capacity; i++)
        c->e[i].next = i + 1 < capacity ? (uint32_t)(i + 1) : NIL;
    return c;
}

void pc_jwt_cache_free(pc_jwt_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->capacity; i++)
        json_decref(c->e[i].claims);
    free(c->e);
    free(c->buckets);
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->sha256);
    free(c);
}

size_t pc_jwt_cache_count(const pc_jwt_cache *c)
{
    return c->count;
}

/* Returns 0 with the entry key in out, or -1 when OpenSSL fails (only
 * allocation can), which callers treat as a miss: always safe. */
static int key_digest(pc_jwt_cache *c, uint64_t provider, const char *token,
                      size_t len, unsigned char out[32])
{
    unsigned int n = 0;

    if (EVP_DigestInit_ex(c->md, c->sha256, NULL) != 1 ||
        EVP_DigestUpdate(c->md, &provider, sizeof(provider)) != 1 ||
        EVP_DigestUpdate(c->md, token, len) != 1 ||
        EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != 32)
        return -1;
    return 0;
}

static size_t bucket_of(const pc_jwt_cache *c, const unsigned char *d)
{
    size_t h;
    memcpy(&h, d, sizeof(h));
    return h & c->mask;
}

static uint32_t find(const pc_jwt_cache *c, const unsigned char *d)
{
    uint32_t i = c->buckets[bucket_of(c, d)];
    while (i != NIL && memcmp(c->e[i].digest, d, 32) != 0)
        i = c->e[i].chain;
    return i;
}

static void lru_unlink(pc_jwt_cache *c, uint32_t i)
{
    entry *e = &c->e[i];
    if (e->prev != NIL)
        c->e[e->prev].next = e->next;
    else
        c->head = e->next;
    if (e->next != NIL)
        c->e[e->next].prev = e->prev;
    else
        c->tail = e->prev;
}

static void lru_push_head(pc_jwt_cache *c, uint32_t i)
{
    entry *e = &c->e[i];
    e->prev = NIL;
    e->next = c->head;
    if (c->head != NIL)
        c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == NIL)
        c->tail = i;
}

/* Takes entry i out of its chain and the LRU list, drops its claims and
 * returns the slot to the free list. */
static void remove_entry(pc_jwt_cache *c, uint32_t i)
{
    entry *e = &c->e[i];
    uint32_t *link = &c->buckets[bucket_of(c, e->digest)];

    while (*link != i)
        link = &c->e[*link].chain;
    *link = e->chain;
    lru_unlink(c, i);
    json_decref(e->claims);
    e->claims = NULL;
    e->next = c->free_list;
    c->free_list = i;
    c->count--;
}

/* A claim that must not lie after now for a hit; absent or not a number
 * (verify refused the latter) counts as satisfied. */
static int not_after(const json_t *claims, const char *name, int64_t now)
{
    const json_t *v = json_object_get(claims, name);
    if (json_is_integer(v))
        return json_integer_value(v) <= now;
    if (json_is_real(v))
        return json_real_value(v) <= (double)now;
    return 1;
}

json_t *pc_jwt_cache_get(pc_jwt_cache *c, uint64_t provider, const char *token,
                         size_t len, int64_t now)
{
    unsigned char d[32];
    uint32_t i;

    if (c->count == 0 || key_digest(c, provider, token, len, d) < 0)
        return NULL;
    i = find(c, d);
    if (i == NIL)
        return NULL;
    if (now >= c->e[i].exp) {
        remove_entry(c, i);
        return NULL;
    }
    /* Only a clock stepped back can fail these: verify checked them at put,
     * with leeway. Without leeway here a hit is never laxer than verify. */
    if (!not_after(c->e[i].claims, "nbf", now) ||
        !not_after(c->e[i].claims, "iat", now))
        return NULL;
    lru_unlink(c, i);
    lru_push_head(c, i);
    return c->e[i].claims;
}

void pc_jwt_cache_put(pc_jwt_cache *c, uint64_t provider, const char *token,
                      size_t len, json_t *claims, int64_t exp)
{
    unsigned char d[32];
    uint32_t i;
    size_t b;

    if (c->capacity == 0 || !claims ||
        key_digest(c, provider, token, len, d) < 0)
        return;
    i = find(c, d);
    if (i != NIL) {
        json_incref(claims);
        json_decref(c->e[i].claims);
        c->e[i].claims = claims;
        c->e[i].exp = exp;
        lru_unlink(c, i);
        lru_push_head(c, i);
        return;
    }
    if (c->free_list == NIL)
        remove_entry(c, c->tail);
    i = c->free_list;
    c->free_list = c->e[i].next;
    memcpy(c->e[i].digest, d, sizeof(d));
    c->e[i].claims = json_incref(claims);
    c->e[i].exp = exp;
    b = bucket_of(c, d);
    c->e[i].chain = c->buckets[b];
    c->buckets[b] = i;
    lru_push_head(c, i);
    c->count++;
}
