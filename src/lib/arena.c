/* arena.c: per-request bump allocator (see arena.h). Large requests get a
 * chunk of their own so a big header never wastes a whole standard chunk. */
#include "portcullis/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"

#define CHUNK 4096

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} chunk;

struct pc_arena {
    chunk *head;
};

pc_arena *pc_arena_new(void)
{
    return pc_xcalloc(1, sizeof(pc_arena));
}

void pc_arena_free(pc_arena *a)
{
    if (!a)
        return;
    chunk *c = a->head;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    free(a);
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
    size_t size = n > CHUNK / 2 ? n : CHUNK - sizeof(chunk);
    chunk *nc = pc_xmalloc(sizeof(chunk) + size);
    nc->size = size;
    nc->used = n;
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
