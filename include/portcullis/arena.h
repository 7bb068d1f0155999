/* arena.h: per-request bump allocator. Chunks of a few KiB; everything is
 * released at once by pc_arena_free. Never returns NULL (pc_xmalloc policy).
 * Not thread-safe: one arena belongs to one request on one worker. */
#ifndef PORTCULLIS_ARENA_H
#define PORTCULLIS_ARENA_H

#include <stddef.h>

typedef struct pc_arena pc_arena;

pc_arena *pc_arena_new(void);
void pc_arena_free(pc_arena *a);
void *pc_arena_alloc(pc_arena *a, size_t n);          /* 8-byte aligned */
char *pc_arena_strndup(pc_arena *a, const char *s, size_t n);

#endif
