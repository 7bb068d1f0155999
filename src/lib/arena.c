/* arena.c: per-request bump allocator (see arena.h). Large requests get a
 * chunk of their own so a big header never wastes a whole standard chunk.
 * The arena's own header lives at the start of its first chunk (one
 * allocation per request, not two), and a worker's cache keeps freed
 * standard chunks for the next request instead of handing 4 KiB blocks
 * back and forth with malloc on every request. */
#include "portcullis/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"

#define CHUNK 4096
#define STD_SIZE (CHUNK - sizeof(chunk)) /* data bytes of a standard chunk */

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} chunk;

struct pc_arena {
    chunk *head;
    pc_arena_cache *cache; /* where standard chunks go back; may be NULL */
};

struct pc_arena_cache {
    chunk *free;
    unsigned n, max;
};

#define HDR_SIZE ((sizeof(pc_arena) + 7) & ~(size_t)7)

pc_arena_cache *pc_arena_cache_new(unsigned max)
{
    pc_arena_cache *c = pc_xcalloc(1, sizeof *c);
    c->max = max;
    return c;
}

void pc_arena_cache_free(pc_arena_cache *c)
{
    if (!c)
        return;
    while (c->free) {
        chunk *n = c->free->next;
        free(c->free);
        c->free = n;
    }
    free(c);
}

unsigned pc_arena_cache_count(const pc_arena_cache *c)
{
    return c ? c->n : 0;
}

static chunk *std_chunk(pc_arena_cache *cache)
{
    chunk *c;
    if (cache && cache->free) {
        c = cache->free;
        cache->free = c->next;
        cache->n--;
    } else {
        c = pc_xmalloc(sizeof(chunk) + STD_SIZE);
        c->size = STD_SIZE;
    }
    c->next = NULL;
    c->used = 0;
    return c;
}

pc_arena *pc_arena_new_cached(pc_arena_cache *cache)
{
    chunk *c = std_chunk(cache);
    pc_arena *a = (pc_arena *)(void *)c->data;
    c->used = HDR_SIZE;
    a->head = c;
    a->cache = cache;
    return a;
}

pc_arena *pc_arena_new(void)
{
    return pc_arena_new_cached(NULL);
}

void pc_arena_free(pc_arena *a)
{
    if (!a)
        return;
    /* a lives in one of the chunks: read it before any is released */
    chunk *c = a->head;
    pc_arena_cache *cache = a->cache;
    while (c) {
        chunk *n = c->next;
        if (cache && c->size == STD_SIZE && cache->n < cache->max) {
            c->next = cache->free;
            cache->free = c;
            cache->n++;
        } else {
            free(c);
        }
        c = n;
    }
}

void *pc_arena_alloc(pc_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    chunk *c = a->head;
    if (c && c->size - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    chunk *nc;
    if (n > CHUNK / 2) {
        nc = pc_xmalloc(sizeof(chunk) + n);
        nc->size = n;
        nc->used = n;
    } else {
        nc = std_chunk(a->cache);
        nc->used = n;
    }
    if (n > CHUNK / 2 && c) {
        /* Keep the current chunk at the head: it still has room. */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->head = nc;
    }
    return nc->data;
}

char *pc_arena_strndup(pc_arena *a, const char *s, size_t n)
{
    char *p = pc_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
