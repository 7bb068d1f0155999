/* arena.h: per-request bump allocator. Chunks of a few KiB; everything is
 * released at once by pc_arena_free. Never returns NULL (pc_xmalloc policy).
 * Not thread-safe: one arena belongs to one request on one worker. */
#ifndef PORTCULLIS_ARENA_H
#define PORTCULLIS_ARENA_H

#include <stddef.h>

typedef struct pc_arena pc_arena;
/* Freed standard chunks kept for the next arenas (at most max of them),
 * so that a request costs no malloc for its first chunk. One per worker:
 * no locks; every arena made from it must be freed on that same thread
 * (or after it stopped) and before the cache. */
typedef struct pc_arena_cache pc_arena_cache;

pc_arena_cache *pc_arena_cache_new(unsigned max);
void pc_arena_cache_free(pc_arena_cache *c);
unsigned pc_arena_cache_count(const pc_arena_cache *c); /* chunks kept */

pc_arena *pc_arena_new(void);                         /* no cache */
pc_arena *pc_arena_new_cached(pc_arena_cache *cache); /* cache may be NULL */
void pc_arena_free(pc_arena *a);
void *pc_arena_alloc(pc_arena *a, size_t n);          /* 8-byte aligned */
char *pc_arena_strndup(pc_arena *a, const char *s, size_t n);

#endif
