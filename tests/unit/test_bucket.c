/* test_bucket.c: token-bucket arithmetic (lib/bucket.c) with an injected
 * clock, and the process-wide bucket table (lib/bucket_table.c): lookups,
 * reload-stable families, concurrent workers sharing one bucket, and the
 * memory bound under 1,000,000 distinct keys. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "portcullis/bucket.h"
#include "portcullis/bucket_table.h"

#define S 1000000ull /* one second in microseconds */

static pc_bucket_rate rate_of(uint64_t rate, uint64_t per_us, uint64_t burst)
{
    pc_bucket_rate r;
    const char *why = NULL;
    cr_assert_eq(pc_bucket_rate_init(&r, rate, per_us, burst, &why), 0, "%s",
                 why ? why : "");
    return r;
}

static int take(pc_bucket *b, const pc_bucket_rate *r, uint64_t now,
                pc_bucket_decision *d)
{
    pc_bucket_take(b, r, now, d);
    return d->allowed;
}

/* ------------------------------------------------------------- the maths */

Test(bucket, burst_then_refused_and_nothing_taken_when_refused)
{
    pc_bucket_rate r = rate_of(10, S, 3); /* 10/s, burst 3 */
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 1000);
    for (int i = 0; i < 3; i++) {
        cr_assert(take(&b, &r, 1000, &d));
        cr_assert_eq(d.limit, 3);
        cr_assert_eq(d.remaining, (uint64_t)(2 - i));
        cr_assert_eq(d.retry_s, 0);
    }
    uint64_t deficit = b.deficit;
    for (int i = 0; i < 5; i++) {
        cr_assert_not(take(&b, &r, 1000, &d));
        cr_assert_eq(d.remaining, 0);
        cr_assert_eq(d.retry_s, 1); /* 100 ms, rounded up, at least 1 */
        cr_assert_eq(b.deficit, deficit, "a refused request took a token");
    }
    cr_assert_eq(d.reset_s, 1); /* 300 ms to full */
}

Test(bucket, default_burst_is_rate)
{
    pc_bucket_rate r = rate_of(7, S, 0);
    cr_assert_eq(r.burst, 7);
    cr_assert_eq(r.cap, 7 * S);
}

/* 3 tokens per 10 s: one token every 3.333... s, exactly, with no drift
 * over many refills. */
Test(bucket, fractional_refill_is_exact)
{
    pc_bucket_rate r = rate_of(3, 10 * S, 1);
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 0);
    cr_assert(take(&b, &r, 0, &d));
    cr_assert_eq(d.reset_s, 4); /* 3.34 s rounded up */
    /* 10 s / 3 = 3,333,333.33 us: at 3,333,333 us not yet, at +1 us yes */
    cr_assert_not(take(&b, &r, 3333333, &d));
    cr_assert_eq(d.retry_s, 1);
    cr_assert(take(&b, &r, 3333334, &d));
    /* 3,000 tokens in exactly 10,000 s, polled every 10 ms, with a bucket
     * that never fills (so polling late loses nothing): no more, no less */
    pc_bucket_rate r10 = rate_of(3, 10 * S, 10);
    pc_bucket_init(&b, 0);
    uint64_t got = 0;
    for (uint64_t t = 0; t <= 10000 * S; t += 10000)
        while (take(&b, &r10, t, &d))
            got++;
    cr_assert_eq(got, 10 + 3000, "got %llu (burst 10 + 3000 refills)",
                 (unsigned long long)got);
}

Test(bucket, refill_capped_at_burst)
{
    pc_bucket_rate r = rate_of(100, S, 5);
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 0);
    for (int i = 0; i < 5; i++)
        cr_assert(take(&b, &r, 0, &d));
    cr_assert_not(take(&b, &r, 0, &d));
    cr_assert_eq(d.reset_s, 1);
    /* an hour later: full (5), never more */
    cr_assert(take(&b, &r, 3600 * S, &d));
    cr_assert_eq(d.remaining, 4);
    int n = 1;
    while (take(&b, &r, 3600 * S, &d))
        n++;
    cr_assert_eq(n, 5);
    /* half a token's time: still nothing; one token's time (10 ms): one */
    cr_assert_not(take(&b, &r, 3600 * S + 5000, &d));
    cr_assert(take(&b, &r, 3600 * S + 10000, &d));
    cr_assert_not(take(&b, &r, 3600 * S + 10000, &d));
}

Test(bucket, long_idle_saturates)
{
    pc_bucket_rate r = rate_of(PC_BUCKET_MAX_RATE, 1000, 1000);
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert(take(&b, &r, 0, &d));
    /* (now - last) * rate overflows 64 bits: saturates to full */
    cr_assert(take(&b, &r, UINT64_MAX - 1, &d));
    cr_assert_eq(d.remaining, 999);
    cr_assert_eq(pc_bucket_full_in(&b, r.rate, UINT64_MAX), 0);
}

Test(bucket, clock_going_backwards_adds_nothing)
{
    pc_bucket_rate r = rate_of(1, S, 2);
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 50 * S);
    cr_assert(take(&b, &r, 50 * S, &d));
    cr_assert(take(&b, &r, 50 * S, &d));
    cr_assert_not(take(&b, &r, 10 * S, &d)); /* back 40 s */
    cr_assert_eq(b.last, 50 * S, "time went back with the clock");
    cr_assert_eq(d.retry_s, 1);
    cr_assert_not(take(&b, &r, 50 * S + 999999, &d));
    cr_assert(take(&b, &r, 51 * S, &d)); /* one second after the real last */
}

Test(bucket, reset_and_retry_round_up)
{
    pc_bucket_rate r = rate_of(1, 60 * S, 2); /* 1 per minute */
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 0);
    cr_assert(take(&b, &r, 0, &d));
    cr_assert_eq(d.reset_s, 60);
    cr_assert(take(&b, &r, 1, &d)); /* 1 us later */
    cr_assert_eq(d.reset_s, 120);   /* 119.999999 s */
    cr_assert_not(take(&b, &r, 2, &d));
    cr_assert_eq(d.retry_s, 60); /* 59.999998 s */
    cr_assert_eq(d.remaining, 0);
}

Test(bucket, ranges_checked)
{
    pc_bucket_rate r;
    const char *why = NULL;
    cr_assert_eq(pc_bucket_rate_init(&r, 0, S, 0, &why), -1);
    cr_assert_eq(pc_bucket_rate_init(&r, PC_BUCKET_MAX_RATE + 1, S, 1, &why),
                 -1);
    cr_assert_eq(pc_bucket_rate_init(&r, 1, 999, 1, &why), -1);
    cr_assert_eq(pc_bucket_rate_init(&r, 1, PC_BUCKET_MAX_PER_US + 1, 1, &why),
                 -1);
    cr_assert_eq(pc_bucket_rate_init(&r, 1, S, PC_BUCKET_MAX_BURST + 1, &why),
                 -1);
    /* 24 h x 1e9 tokens: units would overflow */
    cr_assert_eq(pc_bucket_rate_init(&r, 1, PC_BUCKET_MAX_PER_US,
                                     PC_BUCKET_MAX_BURST, &why),
                 -1);
    cr_assert(strstr(why, "too large"), "%s", why);
    /* the largest accepted values never wrap */
    cr_assert_eq(pc_bucket_rate_init(&r, PC_BUCKET_MAX_RATE, 3600 * S,
                                     PC_BUCKET_MAX_BURST, &why),
                 0);
    pc_bucket b;
    pc_bucket_decision d;
    pc_bucket_init(&b, 0);
    cr_assert(take(&b, &r, 0, &d));
    cr_assert_eq(d.remaining, PC_BUCKET_MAX_BURST - 1);
    cr_assert(take(&b, &r, UINT64_MAX, &d));
    cr_assert_eq(d.remaining, PC_BUCKET_MAX_BURST - 1);
}

/* ------------------------------------------------------------- the table */

Test(bucket_table, keys_and_families_are_separate)
{
    pc_bucket_table *t = pc_bucket_table_new(0);
    pc_bucket_rate r = rate_of(1, 60 * S, 2);
    pc_bucket_decision d;
    for (int i = 0; i < 2; i++) {
        pc_bucket_table_take(t, 11, "a", 1, &r, 0, &d);
        cr_assert(d.allowed);
    }
    pc_bucket_table_take(t, 11, "a", 1, &r, 0, &d);
    cr_assert_not(d.allowed);
    pc_bucket_table_take(t, 11, "ab", 2, &r, 0, &d); /* longer key */
    cr_assert(d.allowed);
    pc_bucket_table_take(t, 12, "a", 1, &r, 0, &d); /* other family */
    cr_assert(d.allowed);
    pc_bucket_table_take(t, 11, "a", 1, &r, 0, &d); /* still refused */
    cr_assert_not(d.allowed);
    pc_bucket_table_stats st;
    pc_bucket_table_stats_get(t, &st);
    cr_assert_eq(st.keys, 3);
    /* one token back per minute; a sweep drops the full buckets only */
    cr_assert_eq(pc_bucket_table_sweep(t, 60 * S - 1), 0);
    cr_assert_eq(pc_bucket_table_sweep(t, 60 * S), 2);
    pc_bucket_table_take(t, 11, "a", 1, &r, 60 * S, &d); /* the refilled one */
    cr_assert(d.allowed);
    cr_assert_eq(pc_bucket_table_sweep(t, 180 * S - 1), 0);
    cr_assert_eq(pc_bucket_table_sweep(t, 180 * S), 1);
    pc_bucket_table_stats_get(t, &st);
    cr_assert_eq(st.keys, 0);
    pc_bucket_table_free(t);
}

/* Deleting from the middle of probe runs (backward shift) keeps every
 * other key findable. */
Test(bucket_table, delete_keeps_probe_runs)
{
    pc_bucket_table *t = pc_bucket_table_new(PC_BUCKET_TABLE_SHARDS * 64);
    pc_bucket_rate slow = rate_of(1, 3600 * S, 1), fast = rate_of(1000, S, 1);
    pc_bucket_decision d;
    char k[16];
    for (int i = 0; i < 4000; i++) { /* half slow (kept), half fast */
        snprintf(k, sizeof k, "k%d", i);
        pc_bucket_table_take(t, 1, k, strlen(k), i % 2 ? &fast : &slow, 0, &d);
        cr_assert(d.allowed);
    }
    cr_assert_eq(pc_bucket_table_sweep(t, 10000), 2000); /* the fast ones */
    for (int i = 0; i < 4000; i += 2) {
        snprintf(k, sizeof k, "k%d", i);
        pc_bucket_table_take(t, 1, k, strlen(k), &slow, 10000, &d);
        cr_assert_not(d.allowed, "slow key %s lost its bucket", k);
    }
    pc_bucket_table_free(t);
}

typedef struct worker_arg {
    pc_bucket_table *t;
    const pc_bucket_rate *r;
    int n;
    int allowed;
} worker_arg;

static void *hammer(void *p)
{
    worker_arg *a = p;
    pc_bucket_decision d;
    char k[16];
    for (int i = 0; i < a->n; i++) {
        pc_bucket_table_take(a->t, 5, "shared", 6, a->r, 0, &d);
        a->allowed += d.allowed;
        snprintf(k, sizeof k, "own%d", i % 997); /* other shards too */
        pc_bucket_table_take(a->t, 6, k, strlen(k), a->r, 0, &d);
    }
    return NULL;
}

/* Four threads on one key: exactly burst admitted, no lost update. */
Test(bucket_table, threads_share_one_bucket)
{
    pc_bucket_table *t = pc_bucket_table_new(0);
    pc_bucket_rate r = rate_of(1, 3600 * S, 1000);
    pthread_t th[4];
    worker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (worker_arg){t, &r, 5000, 0};
        pthread_create(&th[i], NULL, hammer, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].allowed;
    }
    cr_assert_eq(total, 1000, "admitted %d, burst 1000", total);
    pc_bucket_table_free(t);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * 4;
}

/* 1,000,000 distinct keys fit the default budget; 1,000,000 more (an
 * attacker rotating keys, one hour per token so nothing refills) never
 * grow it: the table stays at its cap and evicts. */
Test(bucket_table, one_million_keys_stay_in_budget, .timeout = 120)
{
    long rss0 = rss_kib();
    pc_bucket_table *t = pc_bucket_table_new(0);
    pc_bucket_rate r = rate_of(1, 3600 * S, 10);
    pc_bucket_decision d;
    char k[24];
    for (uint32_t i = 0; i < 1000000; i++) {
        int n = snprintf(k, sizeof k, "203.0.%u", i);
        pc_bucket_table_take(t, 9, k, (size_t)n, &r, i, &d);
    }
    pc_bucket_table_stats st;
    pc_bucket_table_stats_get(t, &st);
    long rss1 = rss_kib();
    cr_log_info("1,000,000 keys: %zu held, %.1f MiB allocated, RSS +%.1f MiB",
                st.keys, st.bytes / 1048576.0, (rss1 - rss0) / 1024.0);
    cr_assert_eq(st.max_keys, PC_BUCKET_TABLE_DEFAULT_KEYS);
    cr_assert_eq(st.keys, 1000000, "a shard reached its cap: %zu held",
                 st.keys);
    cr_assert_leq(st.bytes, 72u << 20, "%zu bytes", st.bytes);
    uint32_t refused = 0;
    for (uint32_t i = 0; i < 1000000; i++) {
        int n = snprintf(k, sizeof k, "198.51.%u", i);
        pc_bucket_table_take(t, 9, k, (size_t)n, &r, 1000000 + i, &d);
        refused += !d.allowed;
    }
    cr_assert_eq(refused, 0, "%u new keys refused", refused);
    pc_bucket_table_stats st2;
    pc_bucket_table_stats_get(t, &st2);
    long rss2 = rss_kib();
    cr_log_info("2,000,000 keys rotated: %zu held, %.1f MiB allocated, RSS "
                "+%.1f MiB, %llu evicted (not full)",
                st2.keys, st2.bytes / 1048576.0, (rss2 - rss0) / 1024.0,
                (unsigned long long)st2.evicted_active);
    cr_assert_leq(st2.keys, st2.max_keys);
    cr_assert_leq(st2.bytes, 77u << 20, "%zu bytes", st2.bytes);
    cr_assert_gt(st2.evicted_active, 0);
    pc_bucket_table_free(t);
}

/* At the cap, full buckets go first: a key with state is kept while idle
 * (full) buckets are there to drop. */
Test(bucket_table, full_buckets_evicted_first)
{
    pc_bucket_table *t = pc_bucket_table_new(PC_BUCKET_TABLE_SHARDS * 4);
    pc_bucket_rate slow = rate_of(1, 3600 * S, 1), fast = rate_of(1000, S, 1);
    pc_bucket_decision d;
    pc_bucket_table_take(t, 3, "victim", 6, &slow, 0, &d);
    cr_assert(d.allowed);
    char k[16];
    for (int i = 0; i < 20000; i++) { /* fast buckets: full 1 ms later */
        snprintf(k, sizeof k, "x%d", i);
        pc_bucket_table_take(t, 3, k, strlen(k), &fast, (uint64_t)i * 1000, &d);
    }
    pc_bucket_table_stats st;
    pc_bucket_table_stats_get(t, &st);
    cr_assert_leq(st.keys, PC_BUCKET_TABLE_SHARDS * 4);
    cr_assert_eq(st.evicted_active, 0);
    pc_bucket_table_take(t, 3, "victim", 6, &slow, 20000000, &d);
    cr_assert_not(d.allowed, "the limited key was evicted");
    pc_bucket_table_free(t);
}
