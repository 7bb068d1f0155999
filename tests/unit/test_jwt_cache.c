/* test_jwt_cache.c: the per-worker verified-token cache (lib/jwt_cache.c):
 * hits, expiry, LRU eviction at capacity, provider separation, and that a
 * hit is never laxer than pc_jwt_verify. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "portcullis/jwt.h"

/* Provider ids as the stage makes them: generation << 16 | index. */
static const uint64_t provider_a = (7u << 16) | 0, provider_b = (7u << 16) | 1;

static json_t *claims_with(const char *sub)
{
    return json_pack("{s:s}", "sub", sub);
}

static void put(pc_jwt_cache *c, uint64_t prov, const char *tok,
                const char *sub, int64_t exp)
{
    json_t *cl = claims_with(sub);
    pc_jwt_cache_put(c, prov, tok, strlen(tok), cl, exp);
    json_decref(cl); /* the cache holds its own reference */
}

static json_t *get(pc_jwt_cache *c, uint64_t prov, const char *tok, int64_t now)
{
    return pc_jwt_cache_get(c, prov, tok, strlen(tok), now);
}

static void hit_is(pc_jwt_cache *c, uint64_t prov, const char *tok, int64_t now,
                   const char *sub)
{
    json_t *cl = get(c, prov, tok, now);
    cr_assert(cl, "miss for %s at %lld", tok, (long long)now);
    cr_assert_str_eq(json_string_value(json_object_get(cl, "sub")), sub);
}

Test(jwt_cache, hit_and_miss)
{
    pc_jwt_cache *c = pc_jwt_cache_new(8);
    cr_assert_null(get(c, provider_a, "t1", 100));
    put(c, provider_a, "t1", "alice", 1000);
    hit_is(c, provider_a, "t1", 100, "alice");
    hit_is(c, provider_a, "t1", 999, "alice");
    cr_assert_null(get(c, provider_a, "t2", 100));
    /* A token that differs only in its last byte or its length. */
    cr_assert_null(get(c, provider_a, "t", 100));
    cr_assert_null(pc_jwt_cache_get(c, provider_a, "t1x", 3, 100));
    cr_assert_eq(pc_jwt_cache_count(c), 1);
    pc_jwt_cache_free(c);
}

Test(jwt_cache, miss_at_exp_and_evicted)
{
    pc_jwt_cache *c = pc_jwt_cache_new(8);
    put(c, provider_a, "t1", "alice", 1000);
    put(c, provider_a, "t2", "bob", 5000);
    cr_assert_null(get(c, provider_a, "t1", 1000));
    cr_assert_eq(pc_jwt_cache_count(c), 1, "expired entry not evicted");
    cr_assert_null(get(c, provider_a, "t1", 10), "evicted entry came back");
    hit_is(c, provider_a, "t2", 4999, "bob");
    cr_assert_null(get(c, provider_a, "t2", 6000));
    cr_assert_eq(pc_jwt_cache_count(c), 0);
    pc_jwt_cache_free(c);
}

Test(jwt_cache, different_provider_is_a_miss)
{
    pc_jwt_cache *c = pc_jwt_cache_new(8);
    put(c, provider_a, "tok", "alice", 1000);
    cr_assert_null(get(c, provider_b, "tok", 10));
    put(c, provider_b, "tok", "bob", 1000);
    hit_is(c, provider_a, "tok", 10, "alice");
    hit_is(c, provider_b, "tok", 10, "bob");
    cr_assert_eq(pc_jwt_cache_count(c), 2);
    pc_jwt_cache_free(c);
}

Test(jwt_cache, lru_eviction_at_capacity)
{
    pc_jwt_cache *c = pc_jwt_cache_new(3);
    put(c, provider_a, "t1", "1", 1000);
    put(c, provider_a, "t2", "2", 1000);
    put(c, provider_a, "t3", "3", 1000);
    hit_is(c, provider_a, "t1", 10, "1"); /* t2 is now the oldest used */
    put(c, provider_a, "t4", "4", 1000);
    cr_assert_eq(pc_jwt_cache_count(c), 3);
    cr_assert_null(get(c, provider_a, "t2", 10));
    hit_is(c, provider_a, "t1", 10, "1");
    hit_is(c, provider_a, "t3", 10, "3");
    hit_is(c, provider_a, "t4", 10, "4");
    put(c, provider_a, "t5", "5", 1000); /* evicts t1 */
    cr_assert_null(get(c, provider_a, "t1", 10));
    hit_is(c, provider_a, "t5", 10, "5");
    pc_jwt_cache_free(c);
}

Test(jwt_cache, put_replaces_same_token)
{
    pc_jwt_cache *c = pc_jwt_cache_new(2);
    put(c, provider_a, "t1", "old", 1000);
    put(c, provider_a, "t1", "new", 2000);
    cr_assert_eq(pc_jwt_cache_count(c), 1);
    hit_is(c, provider_a, "t1", 1500, "new");
    pc_jwt_cache_free(c);
}

Test(jwt_cache, many_tokens_stay_bounded)
{
    pc_jwt_cache *c = pc_jwt_cache_new(64);
    char tok[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        put(c, provider_a, tok, tok, 1000 + i % 7);
        cr_assert_leq(pc_jwt_cache_count(c), 64);
        if (i % 3 == 0) { /* touch an older one now and then */
            snprintf(tok, sizeof(tok), "token-%d", i / 2);
            get(c, provider_a, tok, 10);
        }
    }
    for (int i = 5000 - 40; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        hit_is(c, provider_a, tok, 10, tok);
    }
    cr_assert_null(get(c, provider_a, "token-1", 10));
    pc_jwt_cache_free(c);
}

Test(jwt_cache, zero_capacity_stores_nothing)
{
    pc_jwt_cache *c = pc_jwt_cache_new(0);
    put(c, provider_a, "t1", "x", 1000);
    cr_assert_null(get(c, provider_a, "t1", 10));
    cr_assert_eq(pc_jwt_cache_count(c), 0);
    pc_jwt_cache_free(c);
    pc_jwt_cache_free(NULL);
}

Test(jwt_cache, claims_outlive_the_callers_reference)
{
    pc_jwt_cache *c = pc_jwt_cache_new(2);
    json_t *cl = json_pack("{s:s,s:[s,s]}", "sub", "carol", "aud", "a", "b");
    pc_jwt_cache_put(c, provider_a, "t", 1, cl, 1000);
    json_decref(cl);
    json_t *got = get(c, provider_a, "t", 10);
    cr_assert(got);
    cr_assert_eq(json_array_size(json_object_get(got, "aud")), 2);
    /* Kept past an eviction with the caller's own reference. */
    json_incref(got);
    put(c, provider_a, "u", "u", 1000);
    put(c, provider_a, "v", "v", 1000);
    cr_assert_null(get(c, provider_a, "t", 10));
    cr_assert_str_eq(json_string_value(json_object_get(got, "sub")), "carol");
    json_decref(got);
    pc_jwt_cache_free(c);
}

/* A clock stepped back must not make a cached token valid before its nbf or
 * iat, even inside the leeway verify allowed when it was put. */
Test(jwt_cache, hit_rechecks_nbf_and_iat)
{
    pc_jwt_cache *c = pc_jwt_cache_new(4);
    json_t *a = json_pack("{s:I}", "nbf", (json_int_t)500);
    json_t *b = json_pack("{s:f}", "iat", 500.5);
    pc_jwt_cache_put(c, provider_a, "a", 1, a, 1000);
    pc_jwt_cache_put(c, provider_a, "b", 1, b, 1000);
    cr_assert_null(get(c, provider_a, "a", 499));
    cr_assert_eq(get(c, provider_a, "a", 500), a);
    cr_assert_null(get(c, provider_a, "b", 500));
    cr_assert_eq(get(c, provider_a, "b", 501), b);
    json_decref(a);
    json_decref(b);
    pc_jwt_cache_free(c);
}
