/* test_breaker.c: the circuit-breaker state machine, the health counts and
 * the per-process state table (lib/breaker.c) on a fake clock; the
 * health_check and circuit_breaker config blocks (config_upstream.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "portcullis/breaker.h"
#include "portcullis/config.h"
#include "portcullis/loader.h"

#define MS 1000000ull
#define T0 (1000ull * 1000 * MS) /* an arbitrary monotonic start */

static pc_breaker_conf conf(uint64_t failures, uint64_t open_for_ms,
                            uint64_t probes)
{
    pc_breaker_conf c = {.enabled = 1,
                         .failures = failures,
                         .open_for = open_for_ms,
                         .half_open_requests = probes};
    pc_breaker_status_set(&c, 502);
    pc_breaker_status_set(&c, 503);
    return c;
}

static pc_tstate *fresh(pc_tstate_table **tab)
{
    *tab = pc_tstate_table_new();
    return pc_tstate_get(*tab, "T u http://a");
}

static void done(pc_tstate_table *tab, pc_tstate *s)
{
    pc_tstate_unref(s);
    pc_tstate_table_free(tab);
}

Test(breaker, opens_after_consecutive_failures_only)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    pc_breaker_conf c = conf(3, 1000, 1);
    pc_transition tr;
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_CLOSED);
    cr_assert_eq(pc_breaker_admit(s, &c, T0, &tr), 1);
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_NONE);
    /* a success ends the streak */
    cr_assert_eq(pc_breaker_record(s, &c, T0, 1, 0), PC_TR_NONE);
    cr_assert_eq(atomic_load(&s->failures), 0);
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_CLOSED);
    cr_assert_eq(pc_breaker_record(s, &c, T0 + 5 * MS, 0, 0), PC_TR_OPENED);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_OPEN);
    /* more failures while open change nothing (and report nothing) */
    cr_assert_eq(pc_breaker_record(s, &c, T0 + 6 * MS, 0, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_wait_ns(s, T0 + 5 * MS), 1000 * MS);
    done(tab, s);
}

Test(breaker, open_refuses_until_open_for_then_one_probe)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    pc_breaker_conf c = conf(1, 1000, 1);
    pc_transition tr;
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_OPENED);
    cr_assert_eq(pc_breaker_available(s, &c, T0 + 999 * MS), 0);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 999 * MS, &tr), 0);
    cr_assert_eq(tr, PC_TR_NONE);
    cr_assert_eq(pc_breaker_wait_ns(s, T0 + 999 * MS), 1 * MS);
    cr_assert_eq(pc_breaker_available(s, &c, T0 + 1000 * MS), 1);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 1000 * MS, &tr), 2);
    cr_assert_eq(tr, PC_TR_HALF_OPENED);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_HALF_OPEN);
    /* the one probe slot is taken */
    cr_assert_eq(pc_breaker_available(s, &c, T0 + 1001 * MS), 0);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 1001 * MS, &tr), 0);
    cr_assert_eq(tr, PC_TR_NONE);
    cr_assert_eq(pc_breaker_wait_ns(s, T0 + 1001 * MS), 0);
    /* the probe succeeds: closed, everything admitted again */
    cr_assert_eq(pc_breaker_record(s, &c, T0 + 1002 * MS, 1, 1), PC_TR_CLOSED);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_CLOSED);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 1003 * MS, &tr), 1);
    done(tab, s);
}

Test(breaker, failed_probe_reopens_for_open_for)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    pc_breaker_conf c = conf(2, 500, 2);
    pc_transition tr;
    pc_breaker_record(s, &c, T0, 0, 0);
    cr_assert_eq(pc_breaker_record(s, &c, T0, 0, 0), PC_TR_OPENED);
    uint64_t t = T0 + 500 * MS;
    cr_assert_eq(pc_breaker_admit(s, &c, t, &tr), 2);
    cr_assert_eq(pc_breaker_admit(s, &c, t, &tr), 2); /* second probe */
    cr_assert_eq(tr, PC_TR_NONE);
    cr_assert_eq(pc_breaker_admit(s, &c, t, &tr), 0); /* only two */
    cr_assert_eq(pc_breaker_record(s, &c, t + 10 * MS, 0, 1), PC_TR_REOPENED);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_OPEN);
    /* the other probe's late answer changes nothing */
    cr_assert_eq(pc_breaker_record(s, &c, t + 11 * MS, 1, 1), PC_TR_NONE);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_OPEN);
    cr_assert_eq(pc_breaker_wait_ns(s, t + 10 * MS), 500 * MS);
    cr_assert_eq(pc_breaker_admit(s, &c, t + 509 * MS, &tr), 0);
    cr_assert_eq(pc_breaker_admit(s, &c, t + 510 * MS, &tr), 2);
    cr_assert_eq(tr, PC_TR_HALF_OPENED);
    done(tab, s);
}

Test(breaker, non_probe_answers_do_not_decide_half_open)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    pc_breaker_conf c = conf(1, 100, 1);
    pc_transition tr;
    pc_breaker_record(s, &c, T0, 0, 0);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 100 * MS, &tr), 2);
    /* answers of requests admitted before the circuit opened */
    cr_assert_eq(pc_breaker_record(s, &c, T0 + 101 * MS, 1, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_record(s, &c, T0 + 101 * MS, 0, 0), PC_TR_NONE);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_HALF_OPEN);
    done(tab, s);
}

Test(breaker, unreported_probes_are_given_back_after_open_for)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    pc_breaker_conf c = conf(1, 100, 1);
    pc_transition tr;
    pc_breaker_record(s, &c, T0, 0, 0);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 100 * MS, &tr), 2);
    /* the probe's client went away: no outcome */
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 199 * MS, &tr), 0);
    cr_assert_eq(pc_breaker_available(s, &c, T0 + 200 * MS), 1);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 200 * MS, &tr), 2);
    cr_assert_eq(tr, PC_TR_NONE);
    cr_assert_eq(pc_breaker_admit(s, &c, T0 + 201 * MS, &tr), 0);
    done(tab, s);
}

Test(breaker, statuses_and_saturation)
{
    pc_breaker_conf c = conf(1, UINT64_MAX / 2, 1);
    cr_assert(pc_breaker_status_fails(&c, 502));
    cr_assert(pc_breaker_status_fails(&c, 503));
    cr_assert_not(pc_breaker_status_fails(&c, 504));
    cr_assert_not(pc_breaker_status_fails(&c, 200));
    cr_assert_not(pc_breaker_status_fails(&c, -1));
    cr_assert_not(pc_breaker_status_fails(&c, 100000));
    pc_breaker_status_set(&c, 100000); /* ignored */
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    cr_assert_eq(pc_breaker_record(s, &c, UINT64_MAX - 5, 0, 0), PC_TR_OPENED);
    /* the deadline saturates instead of wrapping into the past */
    cr_assert_eq(pc_breaker_available(s, &c, UINT64_MAX - 1), 0);
    cr_assert_eq(atomic_load(&s->until_ns), UINT64_MAX);
    pc_breaker_reset(s);
    cr_assert_eq(pc_breaker_state(s), PC_CIRCUIT_CLOSED);
    done(tab, s);
}

Test(breaker, health_counts)
{
    pc_tstate_table *tab;
    pc_tstate *s = fresh(&tab);
    cr_assert(pc_health_ok(s));
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 1), PC_TR_NONE); /* streak ends */
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_UNHEALTHY);
    cr_assert_not(pc_health_ok(s));
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 1), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 0), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 1), PC_TR_NONE);
    cr_assert_eq(pc_health_record(s, 2, 3, 1), PC_TR_HEALTHY);
    cr_assert(pc_health_ok(s));
    pc_health_record(s, 1, 1, 0);
    cr_assert_not(pc_health_ok(s));
    pc_health_reset(s);
    cr_assert(pc_health_ok(s));
    done(tab, s);
}

Test(breaker, table_keeps_state_by_name_and_sweeps_the_rest)
{
    pc_tstate_table *tab = pc_tstate_table_new();
    pc_tstate *a = pc_tstate_get(tab, "T u http://a");
    pc_tstate *b = pc_tstate_get(tab, "T u http://b");
    cr_assert_neq(a, b);
    pc_breaker_conf c = conf(1, 1000, 1);
    pc_breaker_record(a, &c, T0, 0, 0);
    /* a reload naming only a: same object, state kept; b unlisted */
    pc_tstate_sweep_begin(tab);
    pc_tstate *a2 = pc_tstate_get(tab, "T u http://a");
    cr_assert_eq(a2, a);
    cr_assert_eq(pc_tstate_sweep_end(tab), 1);
    cr_assert_eq(pc_tstate_count(tab), 1);
    cr_assert_eq(pc_breaker_state(a2), PC_CIRCUIT_OPEN);
    /* b is still valid for whoever holds it (an old generation) */
    cr_assert_eq(pc_breaker_state(b), PC_CIRCUIT_CLOSED);
    /* b re-added later starts fresh */
    pc_tstate *b2 = pc_tstate_get(tab, "T u http://b");
    cr_assert_neq(b2, b);
    pc_tstate_unref(b);
    pc_tstate_unref(b2);
    pc_tstate_unref(a);
    pc_tstate_unref(a2);
    pc_tstate_table_free(tab);
}

/* ---- config blocks ---- */

static char path[256];
static pc_errors errs;

static pc_config *load(const char *text)
{
    snprintf(path, sizeof path, "/tmp/pc_breaker_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    pc_errors_init(&errs, path);
    pc_config *c = pc_config_load(path, &errs);
    unlink(path);
    return c;
}

static void expect_errors(const char *const *want, size_t n)
{
    char full[1024];
    for (size_t i = 0; i < errs.n && i < n; i++) {
        snprintf(full, sizeof full, "%s:%s", path, want[i]);
        cr_expect_str_eq(errs.msgs[i], full);
    }
    cr_assert_eq(errs.n, n, "expected %zu errors, got %zu (first: %s)", n,
                 errs.n, errs.n ? errs.msgs[0] : "");
}

#define EXPECT(...)                                                            \
    do {                                                                       \
        static const char *const want_[] = {__VA_ARGS__};                      \
        expect_errors(want_, sizeof want_ / sizeof want_[0]);                  \
    } while (0)

#define HEAD                                                                   \
    "listen: [{address: 127.0.0.1:8080}]\n"                                    \
    "upstreams:\n"                                                             \
    "  u:\n"                                                                   \
    "    targets: [{url: http://127.0.0.1:1}]\n"

Test(breaker_config, defaults_and_values)
{
    pc_config *c = load(HEAD "    health_check: {}\n"
                             "    circuit_breaker: {}\n"
                             "  v:\n"
                             "    targets: [{url: http://127.0.0.1:2}]\n"
                             "    health_check: {path: /ping?x=1, interval: "
                             "100ms, timeout: 50ms, healthy_after: 1, "
                             "unhealthy_after: 4}\n"
                             "    circuit_breaker: {failures: 2, "
                             "failure_statuses: [500, 429], open_for: 1s, "
                             "half_open_requests: 3}\n"
                             "  w:\n"
                             "    targets: [{url: http://127.0.0.1:3}]\n"
                             "    health_check: {interval: 200ms}\n");
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    const pc_upstream *u = pc_config_upstream(c, "u");
    cr_assert(u->health.enabled);
    cr_assert_str_eq(u->health.path, "/healthz");
    cr_assert_eq(u->health.interval, 5000);
    cr_assert_eq(u->health.timeout, 1000);
    cr_assert_eq(u->health.healthy_after, 2);
    cr_assert_eq(u->health.unhealthy_after, 3);
    cr_assert(u->breaker.enabled);
    cr_assert_eq(u->breaker.failures, 5);
    cr_assert_eq(u->breaker.open_for, 30000);
    cr_assert_eq(u->breaker.half_open_requests, 1);
    cr_assert(pc_breaker_status_fails(&u->breaker, 502));
    cr_assert(pc_breaker_status_fails(&u->breaker, 503));
    cr_assert(pc_breaker_status_fails(&u->breaker, 504));
    cr_assert_not(pc_breaker_status_fails(&u->breaker, 500));
    const pc_upstream *v = pc_config_upstream(c, "v");
    cr_assert_str_eq(v->health.path, "/ping?x=1");
    cr_assert_eq(v->health.interval, 100);
    cr_assert_eq(v->health.timeout, 50);
    cr_assert_eq(v->health.healthy_after, 1);
    cr_assert_eq(v->health.unhealthy_after, 4);
    cr_assert_eq(v->breaker.failures, 2);
    cr_assert_eq(v->breaker.open_for, 1000);
    cr_assert_eq(v->breaker.half_open_requests, 3);
    cr_assert(pc_breaker_status_fails(&v->breaker, 500));
    cr_assert(pc_breaker_status_fails(&v->breaker, 429));
    cr_assert_not(pc_breaker_status_fails(&v->breaker, 502));
    const pc_upstream *w = pc_config_upstream(c, "w");
    cr_assert_eq(w->health.timeout, 200); /* default capped by interval */
    cr_assert_not(w->breaker.enabled);
    /* unbound generation: no state */
    cr_assert_null(u->targets[0].state);
    pc_config_unref(c);
    pc_errors_free(&errs);
}

Test(breaker_config, every_value_checked)
{
    pc_config *c = load(HEAD "    health_check:\n"
                             "      path: healthz\n"
                             "      interval: 5ms\n"
                             "      timeout: 0s\n"
                             "      healthy_after: 0\n"
                             "      unhealthy_after: 101\n"
                             "      method: GET\n"
                             "    circuit_breaker:\n"
                             "      failures: 1001\n"
                             "      failure_statuses: [99, 600, 503, 503, x]\n"
                             "      open_for: 0ms\n"
                             "      half_open_requests: 0\n");
    cr_assert_null(c);
    EXPECT("6:13: invalid health_check path 'healthz' (must start with '/', "
           "at most 1024 visible ASCII characters, no '#')",
           "7:17: value 5ms for 'interval' out of range 10ms..1d",
           "8:16: value 0s for 'timeout' out of range 1ms..1d",
           "9:22: value 0 for 'healthy_after' out of range 1..100",
           "10:24: value 101 for 'unhealthy_after' out of range 1..100",
           "11:7: unknown key 'method' in health_check",
           "13:17: value 1001 for 'failures' out of range 1..1000",
           "14:26: value 99 for 'failure_statuses' out of range 100..599",
           "14:30: value 600 for 'failure_statuses' out of range 100..599",
           "14:40: duplicate status 503 in failure_statuses",
           "14:45: expected an integer for 'failure_statuses', got 'x'",
           "15:17: value 0ms for 'open_for' out of range 1ms..1d",
           "16:27: value 0 for 'half_open_requests' out of range 1..1000");
    pc_errors_free(&errs);
}

Test(breaker_config, timeout_over_interval_and_wrong_types)
{
    pc_config *c = load(HEAD "    health_check: {interval: 1s, timeout: 2s}\n"
                             "    circuit_breaker: [failures]\n");
    cr_assert_null(c);
    EXPECT("5:43: health_check timeout (2000ms) must not exceed its interval "
           "(1000ms)",
           "6:22: expected a mapping for 'circuit_breaker', got a list");
    pc_errors_free(&errs);
}
