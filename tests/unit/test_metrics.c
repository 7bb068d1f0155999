/* test_metrics.c: the metrics registry and its text (lib/metrics*.c,
 * issue 9): method labels, histogram bucket edges, label escaping, exact
 * seconds, name interning (stable across generations, bounded), shard
 * sums across concurrently writing workers (and after a shard is freed),
 * sparse counters past one table, pc_metrics_request, and the rendered
 * exposition (families once, cumulative buckets, +Inf last). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/chain.h"
#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/http.h"
#include "portcullis/metrics.h"
#include "portcullis/node.h"
#include "portcullis/trie.h"

Test(metrics_text, method_labels)
{
    cr_assert_eq(pc_metrics_method_index(PC_M_GET), PC_METRICS_METHOD_GET);
    cr_assert_eq(pc_metrics_method_index(PC_M_TRACE), PC_METRICS_METHOD_TRACE);
    cr_assert_eq(pc_metrics_method_index(PC_M_CONNECT), PC_METRICS_METHOD_OTHER);
    cr_assert_eq(pc_metrics_method_index(PC_M_OTHER), PC_METRICS_METHOD_OTHER);
    cr_assert_eq(pc_metrics_method_index(0), PC_METRICS_METHOD_OTHER);
    cr_assert_eq(pc_metrics_method_index(PC_M_GET | PC_M_HEAD),
                 PC_METRICS_METHOD_OTHER);
    cr_assert_str_eq(pc_metrics_method_name(PC_METRICS_METHOD_PATCH), "PATCH");
    cr_assert_str_eq(pc_metrics_method_name(PC_METRICS_METHOD_OTHER), "OTHER");
    cr_assert_str_eq(pc_metrics_method_name(999), "OTHER");
}

Test(metrics_text, escaping)
{
    char out[64];
    cr_assert_eq(pc_metrics_escape(out, "plain-name_1.x"), 14);
    cr_assert_str_eq(out, "plain-name_1.x");
    size_t n = pc_metrics_escape(out, "a\\b\"c\nd");
    cr_assert_str_eq(out, "a\\\\b\\\"c\\nd");
    cr_assert_eq(n, strlen("a\\\\b\\\"c\\nd"));
    cr_assert_eq(pc_metrics_escape(out, ""), 0);
    cr_assert_str_eq(out, "");
}

Test(metrics_text, seconds)
{
    char s[32];
    static const struct {
        uint64_t ns;
        const char *want;
    } v[] = {
        {0, "0"},
        {1000, "0.000001"},
        {2500, "0.0000025"},
        {500000, "0.0005"},
        {2500000, "0.0025"},
        {1000000000, "1"},
        {2500000000u, "2.5"},
        {10000000000ull, "10"},
        {1234567891, "1.234567891"},
        {18446744073709551615ull, "18446744073.709551615"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        pc_metrics_fmt_seconds(s, sizeof s, v[i].ns);
        cr_assert_str_eq(s, v[i].want, "%llu ns", (unsigned long long)v[i].ns);
    }
}

#ifndef PC_NO_METRICS

Test(metrics, bucket_edges)
{
    size_t n;
    const uint64_t *b = pc_metrics_bounds(PC_MKEY_ROUTE, &n);
    cr_assert_eq(n, 14);
    cr_assert_eq(b[0], 500000u);
    cr_assert_eq(b[n - 1], 10000000000ull);
    /* "le": an observation equal to a bound is in that bucket */
    cr_assert_eq(pc_metrics_bucket(b, n, 0), 0);
    cr_assert_eq(pc_metrics_bucket(b, n, 500000), 0);
    cr_assert_eq(pc_metrics_bucket(b, n, 500001), 1);
    cr_assert_eq(pc_metrics_bucket(b, n, 1000000), 1);
    cr_assert_eq(pc_metrics_bucket(b, n, 2500000), 2);
    cr_assert_eq(pc_metrics_bucket(b, n, 10000000000ull), 13);
    cr_assert_eq(pc_metrics_bucket(b, n, 10000000001ull), 14); /* +Inf */
    cr_assert_eq(pc_metrics_bucket(b, n, UINT64_MAX), 14);
    for (size_t i = 1; i < n; i++)
        cr_assert_gt(b[i], b[i - 1]);

    const uint64_t *u = pc_metrics_bounds(PC_MKEY_UPSTREAM, &n);
    cr_assert_eq(u, b);
    const uint64_t *s = pc_metrics_bounds(PC_MKEY_STAGE, &n);
    cr_assert_eq(s[0], 1000u);            /* 1 us */
    cr_assert_eq(s[n - 1], 1000000000u); /* 1 s */
    cr_assert_eq(pc_metrics_bucket(s, n, 1000), 0);
    cr_assert_eq(pc_metrics_bucket(s, n, 1001), 1);
    cr_assert_eq(pc_metrics_bucket(s, n, 1000000001), n);
    for (size_t i = 1; i < n; i++)
        cr_assert_gt(s[i], s[i - 1]);
}

Test(metrics, observe_sums_and_edges)
{
    pc_metrics_shard *s = pc_metrics_shard_new();
    uint32_t id = pc_metrics_intern(PC_MKEY_UPSTREAM, "edges");
    pc_metrics_observe(s, PC_MKEY_UPSTREAM, id, 500000);  /* le 0.0005 */
    pc_metrics_observe(s, PC_MKEY_UPSTREAM, id, 500001);  /* le 0.001 */
    pc_metrics_observe(s, PC_MKEY_UPSTREAM, id, 20000000000ull); /* +Inf */
    pc_metrics_hist_sum h;
    cr_assert(pc_metrics_hist_get(PC_MKEY_UPSTREAM, id, &h));
    cr_assert_eq(h.bucket[0], 1);
    cr_assert_eq(h.bucket[1], 1);
    cr_assert_eq(h.bucket[14], 1);
    cr_assert_eq(h.count, 3);
    cr_assert_eq(h.sum_ns, 500000u + 500001u + 20000000000ull);
    /* out of range: ignored, never a crash */
    pc_metrics_observe(s, PC_MKEY_UPSTREAM, PC_METRICS_MAX_IDS, 1);
    pc_metrics_observe(s, (pc_metrics_key)99, 1, 1);
    pc_metrics_observe(NULL, PC_MKEY_UPSTREAM, id, 1);
    pc_metrics_count(s, PC_MC_REQUESTS, 1, 1024, 200);
    pc_metrics_count(s, PC_MC_REQUESTS, 1, 0, 65536);
    pc_metrics_count(s, (pc_metrics_counter)50, 1, 0, 0);
    pc_metrics_count(s, PC_MC_REQUESTS, PC_METRICS_MAX_IDS, 0, 0);
    cr_assert(pc_metrics_hist_get(PC_MKEY_UPSTREAM, id, &h));
    cr_assert_eq(h.count, 3);
    pc_metrics_cval *v;
    cr_assert_eq(pc_metrics_counter_list(PC_MC_REQUESTS, 1, &v), 0);
    cr_assert_null(v);
    pc_metrics_shard_free(s);
}

Test(metrics, interning_is_stable)
{
    uint32_t a = pc_metrics_intern(PC_MKEY_ROUTE, "orders");
    uint32_t b = pc_metrics_intern(PC_MKEY_ROUTE, "users");
    cr_assert_neq(a, PC_METRICS_ID_NONE);
    cr_assert_neq(a, b);
    cr_assert_eq(pc_metrics_intern(PC_MKEY_ROUTE, "orders"), a);
    cr_assert_eq(pc_metrics_intern(PC_MKEY_ROUTE, ""), PC_METRICS_ID_NONE);
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_ROUTE, a), "orders");
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_ROUTE, 0), "");
    /* route and upstream names are separate id spaces */
    uint32_t u = pc_metrics_intern(PC_MKEY_UPSTREAM, "users");
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_UPSTREAM, u), "users");
    cr_assert_eq(pc_metrics_intern(PC_MKEY_UPSTREAM, "users"), u);
    /* stage ids are the chain's table indexes */
    pc_metrics_set_stages(pc_chain_stage_names(), pc_chain_nstages());
    cr_assert_eq(pc_metrics_nids(PC_MKEY_STAGE), pc_chain_nstages());
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_STAGE, 0),
                     pc_chain_stage(0)->name);
    cr_assert_null(pc_metrics_id_name(PC_MKEY_STAGE, pc_chain_nstages()));
}

/* Two generations of a config (a reload that reorders and adds routes):
 * every name keeps its id. */
static pc_config *load_yaml(const char *text)
{
    pc_errors errs;
    pc_errors_init(&errs, "t.yaml");
    pc_node *root = pc_node_load_string(text, strlen(text), &errs);
    cr_assert_not_null(root);
    pc_config *c = pc_config_from_node(root, "t.yaml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        cr_log_error("%s", errs.msgs[i]);
    cr_assert_not_null(c);
    pc_node_free(root);
    pc_errors_free(&errs);
    return c;
}

Test(metrics, ids_stable_across_generations)
{
    pc_config *g1 = load_yaml(
        "listen: [{address: 127.0.0.1:18080}]\n"
        "upstreams: {ua: {targets: [{url: http://127.0.0.1:9}]},\n"
        "            ub: {targets: [{url: http://127.0.0.1:9}]}}\n"
        "routes:\n"
        "  - {name: r1, match: {path: /a}, upstream: ua}\n"
        "  - {name: r2, match: {path: /b}, upstream: ub}\n");
    pc_config *g2 = load_yaml(
        "listen: [{address: 127.0.0.1:18080}]\n"
        "upstreams: {ub: {targets: [{url: http://127.0.0.1:9}]},\n"
        "            uc: {targets: [{url: http://127.0.0.1:9}]}}\n"
        "routes:\n"
        "  - {name: r3, match: {path: /c}, upstream: uc}\n"
        "  - {name: r2, match: {path: /b2}, upstream: ub}\n");
    cr_assert_str_eq(g1->routes[1].name, "r2");
    cr_assert_str_eq(g2->routes[1].name, "r2");
    cr_assert_eq(g1->routes[1].metrics_id, g2->routes[1].metrics_id);
    cr_assert_neq(g1->routes[0].metrics_id, g2->routes[0].metrics_id);
    cr_assert_neq(g2->routes[0].metrics_id, PC_METRICS_ID_NONE);
    const pc_upstream *ub1 = pc_config_upstream(g1, "ub");
    const pc_upstream *ub2 = pc_config_upstream(g2, "ub");
    cr_assert_eq(ub1->metrics_id, ub2->metrics_id);
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_UPSTREAM, ub2->metrics_id),
                     "ub");
    cr_assert_str_eq(
        pc_metrics_id_name(PC_MKEY_ROUTE, g2->routes[0].metrics_id), "r3");
    pc_config_unref(g1);
    pc_config_unref(g2);
}

Test(metrics, id_cap_shares_the_overflow_label)
{
    char name[32];
    uint32_t last = 0;
    /* ids 1 .. MAX-2 are free for names (0 is "", MAX-1 the overflow) */
    for (unsigned i = 1; i <= PC_METRICS_MAX_IDS - 2; i++) {
        snprintf(name, sizeof name, "n%u", i);
        last = pc_metrics_intern(PC_MKEY_UPSTREAM, name);
        cr_assert_eq(last, i);
    }
    cr_assert_null(pc_metrics_id_name(PC_MKEY_UPSTREAM, PC_METRICS_ID_OVERFLOW));
    cr_assert_eq(pc_metrics_overflow_first(PC_MKEY_UPSTREAM), 0);
    cr_assert_eq(pc_metrics_intern(PC_MKEY_UPSTREAM, "one-too-many"),
                 PC_METRICS_ID_OVERFLOW);
    cr_assert_eq(pc_metrics_overflow_first(PC_MKEY_UPSTREAM), 1); /* warn once */
    cr_assert_eq(pc_metrics_overflow_first(PC_MKEY_UPSTREAM), 0);
    cr_assert_eq(pc_metrics_intern(PC_MKEY_UPSTREAM, "two-too-many"),
                 PC_METRICS_ID_OVERFLOW);
    cr_assert_str_eq(pc_metrics_id_name(PC_MKEY_UPSTREAM, PC_METRICS_ID_OVERFLOW),
                     PC_METRICS_OVERFLOW_LABEL);
    /* a known name keeps its id at the cap */
    cr_assert_eq(pc_metrics_intern(PC_MKEY_UPSTREAM, "n7"), 7);
    cr_assert_eq(pc_metrics_nids(PC_MKEY_UPSTREAM), PC_METRICS_MAX_IDS - 1);
    /* and the overflow series render */
    pc_metrics_shard *s = pc_metrics_shard_new();
    pc_metrics_observe(s, PC_MKEY_UPSTREAM, PC_METRICS_ID_OVERFLOW, 1000);
    pc_metrics_gauges g = {0};
    size_t len;
    char *text = pc_metrics_render(&g, &len);
    cr_assert_not_null(strstr(
        text, "portcullis_upstream_duration_seconds_count{upstream=\"(other)\"} 1\n"));
    free(text);
    pc_metrics_shard_free(s);
}

/* ---- shards: one writer each, summed by a concurrent reader ------------ */

#define PER_WORKER 200000u

typedef struct wargs {
    pc_metrics_shard *s;
    uint32_t route;
    pthread_barrier_t *go;
} wargs;

static void *writer(void *arg)
{
    wargs *a = arg;
    pthread_barrier_wait(a->go);
    for (uint32_t i = 0; i < PER_WORKER; i++) {
        pc_metrics_count(a->s, PC_MC_REQUESTS, a->route, PC_METRICS_METHOD_GET,
                         i % 2 ? 200 : 404);
        pc_metrics_observe(a->s, PC_MKEY_ROUTE, a->route, 1000000);
        pc_metrics_observe(a->s, PC_MKEY_STAGE, i % 3, 2000);
    }
    return NULL;
}

Test(metrics, shard_sums_across_workers)
{
    enum { NW = 3 };
    uint32_t route = pc_metrics_intern(PC_MKEY_ROUTE, "summed");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NW + 1);
    pthread_t th[NW];
    wargs args[NW];
    for (int i = 0; i < NW; i++) {
        args[i] = (wargs){pc_metrics_shard_new(), route, &go};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    pthread_barrier_wait(&go);
    /* scrapes while the workers write: totals only grow */
    uint64_t prev = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t ok = pc_metrics_counter_get(PC_MC_REQUESTS, route,
                                             PC_METRICS_METHOD_GET, 200);
        cr_assert_geq(ok, prev);
        prev = ok;
        pc_metrics_hist_sum h;
        pc_metrics_hist_get(PC_MKEY_ROUTE, route, &h);
        cr_assert_leq(h.count, (uint64_t)NW * PER_WORKER);
    }
    for (int i = 0; i < NW; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);

    uint64_t want_each = (uint64_t)NW * PER_WORKER / 2;
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, route,
                                        PC_METRICS_METHOD_GET, 200),
                 want_each);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, route,
                                        PC_METRICS_METHOD_GET, 404),
                 want_each);
    pc_metrics_hist_sum h;
    cr_assert(pc_metrics_hist_get(PC_MKEY_ROUTE, route, &h));
    cr_assert_eq(h.count, (uint64_t)NW * PER_WORKER);
    cr_assert_eq(h.bucket[1], (uint64_t)NW * PER_WORKER); /* 1 ms: le 0.001 */
    cr_assert_eq(h.sum_ns, (uint64_t)NW * PER_WORKER * 1000000u);
    pc_metrics_hist_get(PC_MKEY_STAGE, 0, &h);
    cr_assert_eq(h.count, (uint64_t)NW * ((PER_WORKER + 2) / 3));

    /* a freed shard's counts stay (the retired shard) */
    pc_metrics_shard_free(args[0].s);
    pc_metrics_shard_free(args[1].s);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, route,
                                        PC_METRICS_METHOD_GET, 200),
                 want_each);
    cr_assert(pc_metrics_hist_get(PC_MKEY_ROUTE, route, &h));
    cr_assert_eq(h.count, (uint64_t)NW * PER_WORKER);
    cr_assert_eq(h.sum_ns, (uint64_t)NW * PER_WORKER * 1000000u);
    pc_metrics_shard_free(args[2].s);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, route,
                                        PC_METRICS_METHOD_GET, 404),
                 want_each);
}

Test(metrics, sparse_counters_past_one_table)
{
    pc_metrics_shard *s = pc_metrics_shard_new();
    uint32_t route = pc_metrics_intern(PC_MKEY_ROUTE, "many-statuses");
    /* 9 methods x 60 statuses: far more than one 16-slot table */
    for (unsigned rep = 0; rep < 3; rep++)
        for (unsigned m = 0; m < PC_METRICS_NMETHODS; m++)
            for (unsigned st = 100; st < 160; st++)
                pc_metrics_count(s, PC_MC_REQUESTS, route, m, st);
    pc_metrics_cval *v;
    size_t n = pc_metrics_counter_list(PC_MC_REQUESTS, route, &v);
    cr_assert_eq(n, PC_METRICS_NMETHODS * 60);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(v[i].value, 3);
        cr_assert_eq(v[i].a, i / 60);
        cr_assert_eq(v[i].b, 100 + i % 60);
    }
    free(v);
    pc_metrics_shard_free(s);
    n = pc_metrics_counter_list(PC_MC_REQUESTS, route, &v);
    cr_assert_eq(n, PC_METRICS_NMETHODS * 60);
    free(v);
}

Test(metrics, request_end)
{
    pc_metrics_shard *s = pc_metrics_shard_new();
    pc_upstream up = {.name = "orders-up"};
    up.metrics_id = pc_metrics_intern(PC_MKEY_UPSTREAM, up.name);
    pc_route rt = {.name = "orders", .upstream = &up};
    rt.metrics_id = pc_metrics_intern(PC_MKEY_ROUTE, rt.name);
    /* what core/worker.c hands over at the end of a request */
    pc_metrics_request(s, rt.metrics_id, pc_metrics_method_index(PC_M_PATCH), 201,
                       3000000, up.metrics_id, 2000000);
    /* unmatched, odd method, not sent upstream */
    pc_metrics_request(s, PC_METRICS_ID_NONE, pc_metrics_method_index(PC_M_OTHER),
                       404, 0, PC_METRICS_ID_NONE, 0);
    /* a request line that did not parse */
    pc_metrics_request(s, PC_METRICS_ID_NONE, PC_METRICS_METHOD_OTHER, 400, 0,
                       PC_METRICS_ID_NONE, 0);
    /* never sent: counted as status 0, not cast blindly */
    pc_metrics_request(s, PC_METRICS_ID_NONE, PC_METRICS_METHOD_OTHER, -5, 0,
                       PC_METRICS_ID_NONE, 0);

    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, rt.metrics_id,
                                        PC_METRICS_METHOD_PATCH, 201),
                 1);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, PC_METRICS_ID_NONE,
                                        PC_METRICS_METHOD_OTHER, 404),
                 1);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, PC_METRICS_ID_NONE,
                                        PC_METRICS_METHOD_OTHER, 400),
                 1);
    cr_assert_eq(pc_metrics_counter_get(PC_MC_REQUESTS, PC_METRICS_ID_NONE,
                                        PC_METRICS_METHOD_OTHER, 0),
                 1);
    pc_metrics_hist_sum h;
    cr_assert(pc_metrics_hist_get(PC_MKEY_ROUTE, rt.metrics_id, &h));
    cr_assert_eq(h.count, 1);
    cr_assert_geq(h.sum_ns, 3000000u);
    cr_assert(pc_metrics_hist_get(PC_MKEY_UPSTREAM, up.metrics_id, &h));
    cr_assert_eq(h.count, 1);
    cr_assert_eq(h.sum_ns, 2000000u);
    cr_assert_eq(h.bucket[2], 1); /* 2 ms: le 0.0025 */
    cr_assert(pc_metrics_hist_get(PC_MKEY_ROUTE, PC_METRICS_ID_NONE, &h));
    cr_assert_eq(h.count, 3);
    pc_metrics_shard_free(s);
}

/* ---- the rendered exposition -------------------------------------------- */

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(metrics, render)
{
    pc_metrics_shard *s = pc_metrics_shard_new();
    uint32_t odd = pc_metrics_intern(PC_MKEY_ROUTE, "we\"ird\\na\nme");
    uint32_t ok = pc_metrics_intern(PC_MKEY_ROUTE, "api");
    pc_metrics_count(s, PC_MC_REQUESTS, odd, PC_METRICS_METHOD_GET, 200);
    pc_metrics_count(s, PC_MC_REQUESTS, ok, PC_METRICS_METHOD_POST, 502);
    pc_metrics_count(s, PC_MC_REQUESTS, ok, PC_METRICS_METHOD_GET, 200);
    pc_metrics_count(s, PC_MC_REQUESTS, ok, PC_METRICS_METHOD_GET, 200);
    pc_metrics_observe(s, PC_MKEY_ROUTE, ok, 1000000);  /* le 0.001 */
    pc_metrics_observe(s, PC_MKEY_ROUTE, ok, 7000000);  /* le 0.01 */
    pc_metrics_observe(s, PC_MKEY_STAGE, 1, 1500);
    pc_metrics_count_reload(1);
    pc_metrics_count_reload(0);
    pc_metrics_count_reload(1);
    pc_metrics_set_stages(pc_chain_stage_names(), pc_chain_nstages());
    static const pc_metrics_circuit circ[] = {
        {"orders", "http://10.0.1.5:8080", 0},
        {"orders", "http://10.0.1.6:8080", 2},
        {"we\"ird", "http://h:1", 1},
    };
    pc_metrics_gauges g = {.connections_active = 7, .log_dropped = 42,
                           .circuits = circ, .ncircuits = 3};
    size_t len;
    char *t = pc_metrics_render(&g, &len);
    cr_assert_eq(count_of(t, "portcullis_circuit_state{upstream=\"orders\","
                             "target=\"http://10.0.1.6:8080\"} 2\n"), 1);
    cr_assert_eq(count_of(t, "portcullis_circuit_state{upstream=\"orders\","
                             "target=\"http://10.0.1.5:8080\"} 0\n"), 1);
    cr_assert_eq(count_of(t, "portcullis_circuit_state{upstream=\"we\\\"ird\","
                             "target=\"http://h:1\"} 1\n"), 1);
    cr_assert_eq(len, strlen(t));
    cr_log_info("%s", t);

    static const char *const fams[] = {
        "portcullis_requests_total counter",
        "portcullis_request_duration_seconds histogram",
        "portcullis_upstream_duration_seconds histogram",
        "portcullis_stage_duration_seconds histogram",
        "portcullis_connections_active gauge",
        "portcullis_log_dropped_total counter",
        "portcullis_config_reloads_total counter",
        "portcullis_circuit_state gauge",
    };
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "# TYPE %s\n", fams[i]);
        cr_assert_eq(count_of(t, line), 1, "%s", line);
        char name[96];
        snprintf(name, sizeof name, "# HELP %.*s ",
                 (int)(strchr(fams[i], ' ') - fams[i]), fams[i]);
        cr_assert_eq(count_of(t, name), 1, "%s", name);
    }
    cr_assert_not_null(strstr(
        t, "portcullis_requests_total{route=\"we\\\"ird\\\\na\\nme\","
           "method=\"GET\",status=\"200\"} 1\n"));
    cr_assert_not_null(strstr(
        t, "portcullis_requests_total{route=\"api\",method=\"GET\",status=\"200\"} 2\n"
           "portcullis_requests_total{route=\"api\",method=\"POST\",status=\"502\"} 1\n"));
    cr_assert_not_null(strstr(
        t,
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"0.0005\"} 0\n"
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"0.001\"} 1\n"
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"0.0025\"} 1\n"
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"0.005\"} 1\n"
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"0.01\"} 2\n"));
    cr_assert_not_null(strstr(
        t,
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"10\"} 2\n"
        "portcullis_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 2\n"
        "portcullis_request_duration_seconds_sum{route=\"api\"} 0.008\n"
        "portcullis_request_duration_seconds_count{route=\"api\"} 2\n"));
    /* a route never observed has no histogram series */
    cr_assert_null(strstr(t, "duration_seconds_count{route=\"we"));
    /* every stage shows, observed or not; the 1.5 us one in le 2.5e-6 */
    for (unsigned i = 0; i < pc_chain_nstages(); i++) {
        char line[160];
        snprintf(line, sizeof line,
                 "portcullis_stage_duration_seconds_count{stage=\"%s\"} %d\n",
                 pc_chain_stage(i)->name, i == 1);
        cr_assert_not_null(strstr(t, line), "%s", line);
    }
    char line[160];
    snprintf(line, sizeof line,
             "portcullis_stage_duration_seconds_bucket{stage=\"%s\",le=\"0.000001\"} 0\n"
             "portcullis_stage_duration_seconds_bucket{stage=\"%s\",le=\"0.0000025\"} 1\n",
             pc_chain_stage(1)->name, pc_chain_stage(1)->name);
    cr_assert_not_null(strstr(t, line));
    cr_assert_not_null(strstr(t, "portcullis_connections_active 7\n"));
    cr_assert_not_null(strstr(t, "portcullis_log_dropped_total 42\n"));
    cr_assert_not_null(
        strstr(t, "portcullis_config_reloads_total{result=\"success\"} 2\n"
                  "portcullis_config_reloads_total{result=\"failure\"} 1\n"));

    /* cumulative buckets never go down, and each series ends with +Inf */
    char prev_series[256] = "";
    unsigned long long prev_v = 0;
    int prev_inf = 1;
    for (const char *p = t; *p;) {
        const char *eol = strchr(p, '\n');
        cr_assert_not_null(eol);
        const char *le = strstr(p, ",le=\"");
        if (le && le < eol) {
            char series[256];
            snprintf(series, sizeof series, "%.*s", (int)(le - p), p);
            unsigned long long v = strtoull(strchr(le, '}') + 2, NULL, 10);
            if (strcmp(series, prev_series) != 0) {
                cr_assert(prev_inf, "series before %s did not end in +Inf",
                          series);
                strcpy(prev_series, series);
            } else {
                cr_assert_geq(v, prev_v, "%s", series);
            }
            prev_v = v;
            prev_inf = strncmp(le, ",le=\"+Inf\"}", 11) == 0;
        }
        p = eol + 1;
    }
    cr_assert(prev_inf);
    int infs = count_of(t, "le=\"+Inf\"}");
    int counts = count_of(t, "_count{");
    cr_assert_eq(infs, counts);
    cr_assert_eq(t[len - 1], '\n');
    free(t);
    pc_metrics_shard_free(s);
}

#endif
