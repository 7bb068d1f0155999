/* ipcount.c: open connections per client address, for
 * limits.max_connections_per_ip. Process-wide (all workers), sharded by
 * address hash with one mutex per shard; touched only at accept and close,
 * never per request. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"
#include "portcullis/worker.h"

#define SHARDS 64

typedef struct entry {
    unsigned char addr[16];
    size_t len;
    unsigned long count;
    struct entry *next;
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry *head;
} shard;

struct pc_ipcount {
    shard s[SHARDS];
};

static unsigned hash(const void *a, size_t len)
{
    const unsigned char *p = a;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % SHARDS;
}

pc_ipcount *pc_ipcount_new(void)
{
    pc_ipcount *c = pc_xcalloc(1, sizeof *c);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&c->s[i].lock, NULL);
    return c;
}

void pc_ipcount_free(pc_ipcount *c)
{
    if (!c)
        return;
    for (int i = 0; i < SHARDS; i++) {
        entry *e = c->s[i].head;
        while (e) {
            entry *n = e->next;
            free(e);
            e = n;
        }
        pthread_mutex_destroy(&c->s[i].lock);
    }
    free(c);
}

unsigned long pc_ipcount_inc(pc_ipcount *c, const void *addr, size_t len)
{
    shard *s = &c->s[hash(addr, len)];
    unsigned long n;
    pthread_mutex_lock(&s->lock);
    entry *e = s->head;
    while (e && !(e->len == len && memcmp(e->addr, addr, len) == 0))
        e = e->next;
    if (!e) {
        e = pc_xcalloc(1, sizeof *e);
        memcpy(e->addr, addr, len);
        e->len = len;
        e->next = s->head;
        s->head = e;
    }
    n = ++e->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void pc_ipcount_dec(pc_ipcount *c, const void *addr, size_t len)
{
    shard *s = &c->s[hash(addr, len)];
    pthread_mutex_lock(&s->lock);
    entry **pp = &s->head;
    while (*pp && !((*pp)->len == len && memcmp((*pp)->addr, addr, len) == 0))
        pp = &(*pp)->next;
    if (*pp && --(*pp)->count == 0) {
        entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&s->lock);
}
