/* The request arena (lib/arena.c): alignment, big allocations, and the
 * per-worker chunk cache (reuse, its bound, arenas without a cache). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "portcullis/arena.h"

Test(arena, aligned_and_separate)
{
    pc_arena *a = pc_arena_new();
    char *prev = NULL;
    for (size_t n = 1; n < 3000; n += 37) {
        char *p = pc_arena_alloc(a, n);
        cr_assert_eq((uintptr_t)p % 8, 0, "size %zu", n);
        memset(p, (int)(n & 0xff), n); /* ASan: the whole block is ours */
        cr_assert_neq(p, prev);
        prev = p;
    }
    char *s = pc_arena_strndup(a, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    pc_arena_free(a);
    pc_arena_free(NULL);
}

Test(arena, big_allocations)
{
    pc_arena *a = pc_arena_new();
    char *small = pc_arena_alloc(a, 16);
    char *big = pc_arena_alloc(a, 100000);
    memset(big, 1, 100000);
    char *small2 = pc_arena_alloc(a, 16);
    /* the big block got a chunk of its own: the small ones share one */
    cr_assert_eq(small2, small + 16);
    pc_arena_free(a);
}

Test(arena, cache_reuses_chunks)
{
    pc_arena_cache *c = pc_arena_cache_new(4);
    pc_arena *a = pc_arena_new_cached(c);
    void *p1 = pc_arena_alloc(a, 100);
    for (int i = 0; i < 5; i++) /* 2040 + 2040 > a chunk: one each */
        pc_arena_alloc(a, 2040);
    pc_arena_alloc(a, 50000); /* not a standard chunk: never kept */
    pc_arena_free(a);
    cr_assert_eq(pc_arena_cache_count(c), 4, "bounded by max");
    pc_arena *b = pc_arena_new_cached(c);
    cr_assert_eq(pc_arena_cache_count(c), 3);
    void *q1 = pc_arena_alloc(b, 100);
    memset(q1, 0, 100);
    (void)p1;
    pc_arena *d = pc_arena_new_cached(c);
    pc_arena_alloc(d, 8);
    cr_assert_eq(pc_arena_cache_count(c), 2);
    pc_arena_free(b);
    pc_arena_free(d);
    cr_assert_eq(pc_arena_cache_count(c), 4);
    pc_arena_cache_free(c);
    pc_arena_cache_free(NULL);
    cr_assert_eq(pc_arena_cache_count(NULL), 0);
}

Test(arena, no_cache)
{
    pc_arena *a = pc_arena_new_cached(NULL);
    for (int i = 0; i < 10; i++)
        memset(pc_arena_alloc(a, 3000), 0, 3000);
    pc_arena_free(a);
}
