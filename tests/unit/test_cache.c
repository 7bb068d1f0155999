/* test_cache.c: the RFC 9111 rules of lib/cache_rules.c with an injected
 * clock (Cache-Control parsing, delta-seconds saturation, HTTP dates,
 * freshness lifetime, §4.2.3 Age, Vary normalisation) and the memory store
 * of lib/cache_store.c (variants, invalidation, purge, budget, segmented
 * LRU eviction under a scan, references that outlive eviction,
 * collapsing). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "portcullis/cache_store.h"

static pc_cc cc_of(const char *v)
{
    pc_cc cc;
    pc_cc_init(&cc);
    pc_cc_parse(&cc, v, strlen(v));
    return cc;
}

/* RFC 9111 §5.2 directives, case-insensitive names, quoted values. */
Test(cache_cc, directives)
{
    pc_cc cc = cc_of("Public, max-age=60, S-MAXAGE=\"120\", no-cache=\"Set-Cookie\","
                     " private, must-revalidate, proxy-revalidate, no-store,"
                     " no-transform, stale-while-revalidate=5, stale-if-error=7,"
                     " x-ext=\"a,b\", only-if-cached");
    cr_assert(cc.public_ && cc.no_cache && cc.private_ && cc.must_revalidate &&
              cc.proxy_revalidate && cc.no_store && cc.no_transform &&
              cc.only_if_cached);
    cr_assert_eq(cc.max_age, 60);
    cr_assert_eq(cc.s_maxage, 120);
    cr_assert_eq(cc.swr, 5);
    cr_assert_eq(cc.sie, 7);
    cr_assert_eq(cc.min_fresh, PC_CC_ABSENT);
    cr_assert(!cc.invalid);
}

/* §4.2.1: the first of repeated directives wins; an invalid one makes the
 * response stale (0). */
Test(cache_cc, repeated_and_invalid)
{
    pc_cc cc;
    pc_cc_init(&cc);
    pc_cc_parse(&cc, "max-age=10", 10);
    pc_cc_parse(&cc, "max-age=99", 10);
    cr_assert_eq(cc.max_age, 10);
    cc = cc_of("max-age=1x");
    cr_assert_eq(cc.max_age, 0);
    cr_assert(cc.invalid);
    cc = cc_of("max-age");
    cr_assert_eq(cc.max_age, 0);
    cc = cc_of("max-age=-5");
    cr_assert_eq(cc.max_age, 0);
}

/* §5.2.1.2: max-stale without a value accepts any staleness. */
Test(cache_cc, request_directives)
{
    pc_cc cc = cc_of("max-stale, min-fresh=3, max-age=9");
    cr_assert(cc.max_stale_any);
    cr_assert_eq(cc.max_stale, PC_CC_ABSENT);
    cr_assert_eq(cc.min_fresh, 3);
    cc = cc_of("max-stale=30");
    cr_assert(!cc.max_stale_any);
    cr_assert_eq(cc.max_stale, 30);
}

/* §1.2.2: delta-seconds larger than 2^31 saturate at 2^31. */
Test(cache_cc, delta_seconds_saturate)
{
    cr_assert_eq(pc_cc_delta("2147483647", 10), 2147483647LL);
    cr_assert_eq(pc_cc_delta("2147483648", 10), PC_CC_DELTA_MAX);
    cr_assert_eq(pc_cc_delta("99999999999999999999999999", 26),
                 PC_CC_DELTA_MAX);
    cr_assert_eq(pc_cc_delta("\"42\"", 4), 42);
    cr_assert_eq(pc_cc_delta("", 0), -1);
    cr_assert_eq(pc_cc_delta("4 2", 3), -1);
    pc_cc cc = cc_of("max-age=18446744073709551617");
    cr_assert_eq(cc.max_age, PC_CC_DELTA_MAX);
}

/* RFC 9110 §5.6.7: the three date forms; anything else invalid. */
Test(cache_date, forms)
{
    const long long t = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    const char *a = "Sun, 06 Nov 1994 08:49:37 GMT";
    const char *b = "Sunday, 06-Nov-94 08:49:37 GMT";
    const char *c = "Sun Nov  6 08:49:37 1994";
    cr_assert_eq(pc_http_date_parse(a, strlen(a)), t);
    cr_assert_eq(pc_http_date_parse(b, strlen(b)), t);
    cr_assert_eq(pc_http_date_parse(c, strlen(c)), t);
    cr_assert_eq(pc_http_date_parse("0", 1), -1);
    cr_assert_eq(pc_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMTX", 30), -1);
    cr_assert_eq(pc_http_date_parse("Sun, 32 Nov 1994 08:49:37 GMT", 29), -1);
    cr_assert_eq(pc_http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT", 29), -1);
    char out[30];
    pc_http_date_format(t, out);
    cr_assert_str_eq(out, a);
}

/* §4.2.1 order for a shared cache: s-maxage, max-age, Expires - Date,
 * heuristic (only when allowed). */
Test(cache_fresh, lifetime)
{
    int ex;
    pc_cc cc = cc_of("max-age=60, s-maxage=5");
    cr_assert_eq(pc_cache_freshness(&cc, 1000, 900, 30, 1, &ex), 5);
    cr_assert(ex);
    cc = cc_of("max-age=60");
    cr_assert_eq(pc_cache_freshness(&cc, 1000, 900, 30, 1, &ex), 60);
    cc = cc_of("");
    cr_assert_eq(pc_cache_freshness(&cc, 1000, 900, 30, 1, &ex), 100);
    cr_assert(ex);
    cr_assert_eq(pc_cache_freshness(&cc, 800, 900, 30, 1, &ex), 0);
    cr_assert_eq(pc_cache_freshness(&cc, -2, 900, 30, 1, &ex), 0); /* §5.3 */
    cr_assert(ex);
    cr_assert_eq(pc_cache_freshness(&cc, -1, 900, 30, 1, &ex), 30);
    cr_assert(!ex);
    cr_assert_eq(pc_cache_freshness(&cc, -1, 900, 30, 0, &ex), 0);
}

Test(cache_fresh, heuristic_statuses)
{
    static const int yes[] = {200, 203, 204, 206, 300, 301, 308,
                              404, 405, 410, 414, 501};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(pc_cache_status_heuristic(yes[i]), "%d", yes[i]);
    cr_assert(!pc_cache_status_heuristic(302));
    cr_assert(!pc_cache_status_heuristic(500));
    cr_assert(!pc_cache_status_heuristic(201));
}

/* §4.2.3 with an injected clock. */
Test(cache_fresh, current_age)
{
    pc_cache_times t = {.request_time = 1000, .response_time = 1002,
                        .date_value = 995, .age_value = 0};
    /* apparent_age 7 > corrected_age_value 2; +resident 10 */
    cr_assert_eq(pc_cache_current_age(&t, 1012), 17);
    t.age_value = 100; /* corrected_age_value 102 */
    cr_assert_eq(pc_cache_current_age(&t, 1002), 102);
    cr_assert_eq(pc_cache_current_age(&t, 1032), 132);
    t.date_value = 5000; /* a Date in the future: apparent age 0 */
    t.age_value = 0;
    cr_assert_eq(pc_cache_current_age(&t, 1002), 2);
    t.age_value = PC_CC_DELTA_MAX; /* saturates */
    cr_assert_eq(pc_cache_current_age(&t, 999999), PC_CC_DELTA_MAX);
    t = (pc_cache_times){.request_time = 10, .response_time = 10,
                         .date_value = 10};
    cr_assert_eq(pc_cache_current_age(&t, 5), 0); /* clock went back */
}

/* §4.1: Vary values joined and normalised per header. */
Test(cache_vary, normalisation)
{
    char out[64];
    const char *v1[] = {"gzip,  BR"}, *v2[] = {"GZIP", " br "};
    size_t l1[] = {9}, l2[] = {4, 4};
    cr_assert_eq(pc_cache_vary_norm("accept-encoding", v1, l1, 1, out, sizeof out), 7);
    cr_assert_str_eq(out, "gzip,br");
    pc_cache_vary_norm("Accept-Encoding", v2, l2, 2, out, sizeof out);
    cr_assert_str_eq(out, "gzip,br");
    const char *v3[] = {"gzip ; q=0.5"};
    size_t l3[] = {12};
    pc_cache_vary_norm("accept-encoding", v3, l3, 1, out, sizeof out);
    cr_assert_str_eq(out, "gzip;q=0.5");
    /* other headers keep their case; inner whitespace runs collapse */
    const char *v4[] = {"Foo   Bar, Baz"};
    size_t l4[] = {14};
    pc_cache_vary_norm("x-thing", v4, l4, 1, out, sizeof out);
    cr_assert_str_eq(out, "Foo Bar,Baz");
    cr_assert_eq(pc_cache_vary_norm("x", NULL, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(pc_cache_vary_norm("x-thing", v4, l4, 1, out, 4), -1);
}

/* ---- store ---------------------------------------------------------- */

static pc_cobj *mk(const char *key, const char *route, const char *path,
                   const char *vn, const char *vv, size_t body)
{
    static char data[1 << 16];
    const char *names[1] = {vn}, *vals[1] = {vv};
    pc_chdr h = {"Content-Type", "text/plain", 12, 10};
    pc_cobj *o = pc_cache_obj_new(key, strlen(key), route, path, names, vals,
                                  vn ? 1 : 0, 200, &h, 1);
    pc_cbody *b = pc_cache_body_new(data, body);
    pc_cache_obj_set_body(o, b);
    pc_cache_body_unref(b);
    return o;
}

static int match_val(const pc_cobj *o, void *ctx)
{
    return o->nvary == 0 ? ctx == NULL
                         : ctx && strcmp(o->vary_vals[0], ctx) == 0;
}

static void put(pc_cobj *o, uint64_t budget)
{
    cr_assert(pc_cache_insert(o, budget));
    pc_cache_obj_unref(o);
}

static pc_cobj *get(const char *key, void *ctx)
{
    return pc_cache_lookup(key, strlen(key), pc_cache_hash(key, strlen(key)),
                           match_val, ctx);
}

static void reset(void)
{
    pc_cache_purge(NULL, NULL);
}

Test(cache_store, variants_invalidate_purge, .init = reset, .fini = reset)
{
    put(mk("h /a", "r1", "/a", "x-l", "en", 10), 1 << 20);
    put(mk("h /a", "r1", "/a", "x-l", "de", 10), 1 << 20);
    put(mk("h /a", "r1", "/a", "x-l", "en", 20), 1 << 20); /* replaces */
    put(mk("h /a?q=1", "r1", "/a", NULL, NULL, 10), 1 << 20);
    put(mk("h /b", "r2", "/b", NULL, NULL, 10), 1 << 20);
    cr_assert_eq(pc_cache_count(), 4);
    pc_cobj *o = get("h /a", "en");
    cr_assert_not_null(o);
    cr_assert_eq(o->body->len, 20);
    pc_cache_obj_unref(o);
    cr_assert_null(get("h /a", "fr"));
    cr_assert_eq(pc_cache_invalidate("h /a", 4, pc_cache_hash("h /a", 4)), 2);
    cr_assert_null(get("h /a", "en"));
    put(mk("h /a", "r1", "/a", NULL, NULL, 10), 1 << 20);
    cr_assert_eq(pc_cache_purge("r2", "/a"), 0);
    cr_assert_eq(pc_cache_purge(NULL, "/a"), 2); /* any query */
    cr_assert_eq(pc_cache_purge("r2", NULL), 1);
    cr_assert_eq(pc_cache_count(), 0);
    cr_assert_eq(pc_cache_used(), 0);
}

/* The budget holds, and an object hit during a scan of 10x the budget is
 * still there afterwards (segmented LRU); a reference outlives eviction. */
Test(cache_store, eviction_keeps_hot_under_scan, .init = reset, .fini = reset)
{
    const uint64_t budget = 1 << 20;
    put(mk("h /hot", "r", "/hot", NULL, NULL, 4000), budget);
    pc_cobj *held = get("h /hot", NULL); /* a hit: protected */
    cr_assert_not_null(held);
    char key[32];
    for (int i = 0; i < 2560; i++) { /* 2560 x 4 KB = 10 MiB */
        snprintf(key, sizeof key, "h /s%d", i);
        put(mk(key, "r", key + 2, NULL, NULL, 4000), budget);
        cr_assert_leq(pc_cache_used(), budget);
        if (i % 100 == 0) {
            pc_cobj *o = get("h /hot", NULL);
            cr_assert_not_null(o, "hot object evicted after %d", i);
            pc_cache_obj_unref(o);
        }
    }
    cr_assert_lt(pc_cache_count(), 300);
    pc_cache_purge(NULL, NULL);
    /* the store dropped it; our reference still reads it */
    cr_assert_eq(held->body->len, 4000);
    cr_assert_str_eq(held->key, "h /hot");
    pc_cache_obj_unref(held);
}

/* A coded body is charged to its object (and the budget) only while the
 * object is stored, set once, shared by a refreshed copy and released
 * with the object. */
Test(cache_store, coded_bodies, .init = reset, .fini = reset)
{
    const uint64_t budget = 1 << 20;
    pc_cobj *o = mk("h /z", "r", "/z", NULL, NULL, 5000);
    pc_cbody *gz = pc_cache_body_new("gzipped", 7);
    cr_assert(!pc_cache_obj_add_coded(o, 1, gz, budget), "not stored yet");
    cr_assert(pc_cache_insert(o, budget));
    uint64_t before = pc_cache_used();
    size_t charge = o->charge;
    cr_assert(!pc_cache_obj_add_coded(o, 0, gz, budget), "identity slot");
    cr_assert(!pc_cache_obj_add_coded(o, PC_CACHE_CODINGS, gz, budget));
    cr_assert(pc_cache_obj_add_coded(o, 1, gz, budget));
    cr_assert_eq(pc_cache_used(), before + sizeof *gz + 7);
    cr_assert_eq(o->charge, charge + sizeof *gz + 7);
    pc_cbody *other = pc_cache_body_new("again", 5);
    cr_assert(!pc_cache_obj_add_coded(o, 1, other, budget), "set once");
    pc_cache_body_unref(other);
    cr_assert_eq(pc_cache_obj_coded(o, 1), gz);
    cr_assert_null(pc_cache_obj_coded(o, 2));
    cr_assert_null(pc_cache_obj_coded(o, 7));
    /* a refreshed copy shares it and is charged for it */
    pc_cobj *n = mk("h /z", "r", "/z", NULL, NULL, 0);
    pc_cache_obj_set_body(n, o->body);
    size_t ncharge = n->charge;
    pc_cache_obj_share_coded(n, o);
    cr_assert_eq(pc_cache_obj_coded(n, 1), gz);
    cr_assert_eq(n->charge, ncharge + sizeof *gz + 7);
    put(n, budget); /* replaces o in the store */
    cr_assert_eq(pc_cache_count(), 1);
    cr_assert_eq(pc_cache_used(), n->charge);
    /* o is out of the store: nothing more is charged to it */
    pc_cbody *br = pc_cache_body_new("brotli", 6);
    cr_assert(!pc_cache_obj_add_coded(o, 2, br, budget));
    pc_cache_body_unref(br);
    pc_cache_obj_unref(o);
    cr_assert_eq(atomic_load(&gz->refs), 2); /* ours and n's */
    pc_cache_body_unref(gz);
    cr_assert_eq(pc_cache_purge(NULL, NULL), 1);
    cr_assert_eq(pc_cache_used(), 0);
}

/* A coding that does not fit the budget with its object is refused; one
 * that fits makes room by evicting others. */
Test(cache_store, coded_bodies_within_budget, .init = reset, .fini = reset)
{
    const uint64_t budget = 64 << 10;
    static char big[40000];
    put(mk("h /a", "r", "/a", NULL, NULL, 20000), budget);
    put(mk("h /b", "r", "/b", NULL, NULL, 20000), budget);
    pc_cobj *a = get("h /a", NULL);
    pc_cbody *b = pc_cache_body_new(big, sizeof big);
    cr_assert(!pc_cache_obj_add_coded(a, 3, b, 30000), "over the budget");
    cr_assert(pc_cache_obj_add_coded(a, 3, b, budget));
    pc_cache_body_unref(b);
    cr_assert_leq(pc_cache_used(), budget);
    cr_assert_eq(pc_cache_count(), 1, "b made room for a's coding");
    pc_cache_obj_unref(a);
    cr_assert_not_null(a = get("h /a", NULL));
    pc_cache_obj_unref(a);
}

/* Purge rules: route / path / both / all, at or before the purge time;
 * the same rule again moves its time; old rules go; too many collapse
 * into one for everything. */
Test(cache_store, purge_rules, .init = reset, .fini = reset)
{
    pc_cache_shutdown(); /* no rules of other tests */
    cr_assert(!pc_cache_purged("r", "/a", 100));
    pc_cache_purge_rule_add(NULL, "/a", 1000);
    cr_assert(pc_cache_purged("r", "/a", 1000));
    cr_assert(pc_cache_purged("other", "/a", 999));
    cr_assert(!pc_cache_purged("r", "/a", 1001), "stored after the purge");
    cr_assert(!pc_cache_purged("r", "/b", 10));
    pc_cache_purge_rule_add("r", NULL, 2000);
    cr_assert(pc_cache_purged("r", "/b", 2000));
    cr_assert(!pc_cache_purged("s", "/b", 1500));
    pc_cache_purge_rule_add("s", "/b", 3000);
    cr_assert(pc_cache_purged("s", "/b", 2500));
    cr_assert(!pc_cache_purged("s", "/c", 2500));
    pc_cache_purge_rule_add(NULL, "/a", 4000); /* moves the first rule */
    cr_assert(pc_cache_purged("x", "/a", 3999));
    /* two days on, the old rules are dropped */
    pc_cache_purge_rule_add(NULL, "/z", 3500 + PC_CACHE_RULE_TTL_S);
    cr_assert(!pc_cache_purged("s", "/b", 2500));
    cr_assert(pc_cache_purged("x", "/a", 3999), "within two days");
    /* full: one rule for everything at the newest time */
    long long t = 10 * PC_CACHE_RULE_TTL_S;
    char p[32];
    for (int i = 0; i < PC_CACHE_RULES + 1; i++) {
        snprintf(p, sizeof p, "/p%d", i);
        pc_cache_purge_rule_add(NULL, p, t + i);
    }
    cr_assert(pc_cache_purged("any", "/never-purged", t + PC_CACHE_RULES - 1));
    cr_assert(!pc_cache_purged("any", "/never-purged", t + PC_CACHE_RULES + 1));
    cr_assert(pc_cache_purged("any", "/p256", t + PC_CACHE_RULES));
    pc_cache_shutdown();
    cr_assert(!pc_cache_purged("any", "/p256", 0));
}

Test(cache_store, larger_than_budget_refused, .init = reset, .fini = reset)
{
    pc_cobj *o = mk("h /big", "r", "/big", NULL, NULL, 60000);
    cr_assert(!pc_cache_insert(o, 50000));
    pc_cache_obj_unref(o);
    cr_assert_eq(pc_cache_count(), 0);
}

/* The charge counts the per-object overhead; documented bound. */
Test(cache_store, overhead)
{
    pc_cobj *o = mk("example.com /api/items?page=2", "route", "/api/items",
                    NULL, NULL, 1000);
    cr_assert_leq(o->charge - 1000, 1024);
    pc_cache_obj_unref(o);
}

typedef struct tw {
    pc_cache_waiter w;
    int woken;
} tw;

static void wake(pc_cache_waiter *w)
{
    ((tw *)w)->woken++;
}

Test(cache_store, collapsing)
{
    const char *k = "h /c";
    uint64_t h = pc_cache_hash(k, 4);
    tw a = {.w.wake = wake}, b = {.w.wake = wake}, c = {.w.wake = wake};
    cr_assert_eq(pc_cache_flight_join(k, 4, h, &a.w), 1); /* leader */
    cr_assert_eq(pc_cache_flight_join(k, 4, h, &b.w), 0);
    cr_assert_eq(pc_cache_flight_join(k, 4, h, &c.w), 0);
    cr_assert_eq(pc_cache_flight_leave(&c.w, h), 1); /* c's client left */
    pc_cache_flight_done(k, 4, h);
    cr_assert_eq(b.woken, 1);
    cr_assert_eq(c.woken, 0);
    cr_assert_eq(pc_cache_flight_leave(&b.w, h), 0); /* already handed */
    cr_assert_eq(pc_cache_flight_join(k, 4, h, &a.w), 1); /* a new flight */
    pc_cache_flight_done(k, 4, h);
}
