/* test_targets.c: CONTRACT §3 step 7 (proxy/targets.c): balancing skips
 * targets whose circuit is open or that health checks hold out, half-open
 * probes are admitted one by one, Retry-After, outcomes recorded, and the
 * binding of generations to the per-process state by stable name. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "portcullis/breaker.h"
#include "portcullis/config.h"
#include "portcullis/events.h"
#include "portcullis/loader.h"
#include "portcullis/proxy.h"

#define MS 1000000ull
#define T0 (5000ull * 1000 * MS)

static pc_config *load(const char *text)
{
    char path[64] = "/tmp/pc_targets_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    pc_errors err;
    pc_errors_init(&err, path);
    pc_config *c = pc_config_load(path, &err);
    unlink(path);
    cr_assert_not_null(c, "%s", err.n ? err.msgs[0] : "");
    pc_errors_free(&err);
    return c;
}

static const char yaml3[] =
    "listen: [{address: 127.0.0.1:8080}]\n"
    "upstreams:\n"
    "  u:\n"
    "    balance: %s\n"
    "    targets: [{url: http://127.0.0.1:1}, {url: http://127.0.0.1:2},\n"
    "              {url: http://127.0.0.1:3}]\n"
    "    circuit_breaker: {failures: 1, open_for: 1500ms}\n"
    "    health_check: {interval: 1s, healthy_after: 3}\n";

static pc_config *load3(const char *balance)
{
    char text[1024];
    snprintf(text, sizeof text, yaml3, balance);
    return load(text);
}

static int choose(pc_pools *ps, pc_config *c, uint64_t now, int *probe)
{
    const pc_upstream *u = &c->upstreams[0];
    pc_ip client = {.family = 4, .b = {10, 0, 0, 7}};
    return pc_targets_choose(ps, c, u, &client, 0, now, probe);
}

Test(targets, balancing_skips_open_and_unhealthy_targets)
{
    static const char *const bal[] = {"round_robin", "least_conn", "ip_hash"};
    for (int b = 0; b < 3; b++) {
        pc_tstate_table *tab = pc_tstate_table_new();
        pc_config *c = load3(bal[b]);
        pc_targets_bind(tab, c);
        pc_pools *ps = pc_pools_new(NULL);
        const pc_upstream *u = &c->upstreams[0];
        int probe;
        int first = choose(ps, c, T0, &probe);
        cr_assert(first >= 0 && !probe);
        /* the target the balancer likes fails once: open */
        pc_targets_record(u, &u->targets[first], 0, 0, T0);
        cr_assert_eq(pc_target_circuit(u, &u->targets[first]), PC_CIRCUIT_OPEN);
        /* another one is held out by health checks */
        int sick = (first + 1) % 3;
        pc_health_record(u->targets[sick].state, 3, 1, 0);
        cr_assert_not(pc_target_healthy(u, &u->targets[sick]));
        int left = 3 - first - sick;
        for (int i = 0; i < 20; i++) {
            cr_assert_eq(choose(ps, c, T0 + MS, &probe), left, "%s", bal[b]);
            cr_assert_not(probe);
        }
        /* the last one opens too: nobody admits the request */
        pc_targets_record(u, &u->targets[left], 0, 0, T0 + 500 * MS);
        cr_assert_eq(choose(ps, c, T0 + 600 * MS, &probe), -1);
        /* first goes half-open at T0 + 1.5s: 0.9s away, so 1 second */
        cr_assert_eq(pc_targets_retry_after(u, T0 + 600 * MS), 1);
        cr_assert_eq(pc_targets_retry_after(u, T0 + 100 * MS), 2);
        /* half-open: exactly one probe */
        cr_assert_eq(choose(ps, c, T0 + 1500 * MS, &probe), first);
        cr_assert(probe);
        cr_assert_eq(choose(ps, c, T0 + 1501 * MS, &probe), -1);
        pc_targets_record(u, &u->targets[first], 1, 1, T0 + 1502 * MS);
        cr_assert_eq(pc_target_circuit(u, &u->targets[first]),
                     PC_CIRCUIT_CLOSED);
        cr_assert_eq(choose(ps, c, T0 + 1503 * MS, &probe), first);
        pc_pools_free(ps);
        pc_config_unref(c);
        pc_tstate_table_free(tab);
    }
}

Test(targets, retry_after_for_unhealthy_targets)
{
    pc_tstate_table *tab = pc_tstate_table_new();
    pc_config *c = load3("round_robin");
    pc_targets_bind(tab, c);
    const pc_upstream *u = &c->upstreams[0];
    for (int i = 0; i < 3; i++)
        pc_health_record(u->targets[i].state, 3, 1, 0);
    pc_pools *ps = pc_pools_new(NULL);
    int probe;
    cr_assert_eq(choose(ps, c, T0, &probe), -1);
    /* healthy_after (3) checks, interval (1s) apart */
    cr_assert_eq(pc_targets_retry_after(u, T0), 3);
    pc_pools_free(ps);
    pc_config_unref(c);
    pc_tstate_table_free(tab);
}

Test(targets, without_blocks_state_is_ignored)
{
    pc_tstate_table *tab = pc_tstate_table_new();
    pc_config *c = load("listen: [{address: 127.0.0.1:8080}]\n"
                        "upstreams: {u: {targets: [{url: http://127.0.0.1:1}]}}\n");
    pc_targets_bind(tab, c);
    const pc_upstream *u = &c->upstreams[0];
    pc_targets_record(u, &u->targets[0], 0, 0, T0); /* no breaker: ignored */
    pc_health_record(u->targets[0].state, 1, 1, 0); /* no checks: ignored */
    pc_pools *ps = pc_pools_new(NULL);
    int probe;
    cr_assert_eq(choose(ps, c, T0, &probe), 0);
    cr_assert_eq(pc_target_circuit(u, &u->targets[0]), PC_CIRCUIT_CLOSED);
    cr_assert(pc_target_healthy(u, &u->targets[0]));
    pc_pools_free(ps);
    pc_config_unref(c);
    pc_tstate_table_free(tab);
}

Test(targets, bind_keeps_state_by_name_across_generations)
{
    pc_tstate_table *tab = pc_tstate_table_new();
    pc_config *a = load3("round_robin");
    pc_targets_bind(tab, a);
    const pc_upstream *u = &a->upstreams[0];
    pc_targets_record(u, &u->targets[1], 0, 0, T0);
    /* next generation: target 2 kept (moved to index 0), target 1 gone */
    pc_config *b = load("listen: [{address: 127.0.0.1:8080}]\n"
                        "upstreams:\n"
                        "  u:\n"
                        "    targets: [{url: http://127.0.0.1:3}, "
                        "{url: http://127.0.0.1:4}]\n"
                        "    circuit_breaker: {failures: 1}\n");
    pc_targets_bind(tab, b);
    cr_assert_eq(b->upstreams[0].targets[0].state, u->targets[2].state);
    cr_assert_eq(pc_tstate_count(tab), 4); /* 2 targets + 2 pool keys */
    /* the old generation still holds the removed target's state */
    cr_assert_eq(pc_breaker_state(u->targets[1].state), PC_CIRCUIT_OPEN);
    pc_config_unref(a);
    /* and a generation that brings it back starts closed */
    pc_config *c = load3("round_robin");
    pc_targets_bind(tab, c);
    cr_assert_eq(pc_target_circuit(&c->upstreams[0], &c->upstreams[0].targets[1]),
                 PC_CIRCUIT_CLOSED);
    pc_config_unref(b);
    pc_config_unref(c);
    pc_tstate_table_free(tab);
}

static int hook_calls[PC_EV_N];
static char hook_target[64];

static void hook(pc_event_type t, const char *upstream, const char *target,
                 const char *data)
{
    (void)data;
    cr_assert_str_eq(upstream, "u");
    hook_calls[t]++;
    snprintf(hook_target, sizeof hook_target, "%s", target);
}

/* Every transition goes through pc_event_emit exactly once, with its
 * contract name. */
Test(targets, transitions_reach_the_event_hook_once)
{
    pc_event_set_hook(hook);
    pc_tstate_table *tab = pc_tstate_table_new();
    pc_config *c = load3("round_robin");
    pc_targets_bind(tab, c);
    const pc_upstream *u = &c->upstreams[0];
    pc_targets_record(u, &u->targets[2], 0, 0, T0);
    pc_targets_record(u, &u->targets[2], 0, 0, T0); /* already open */
    cr_assert_eq(hook_calls[PC_EV_CIRCUIT_OPEN], 1);
    cr_assert_str_eq(hook_target, "http://127.0.0.1:3");
    pc_pools *ps = pc_pools_new(NULL);
    int probe, seen = 0;
    for (int i = 0; i < 6; i++)
        seen |= choose(ps, c, T0 + 1500 * MS, &probe) == 2 && probe;
    cr_assert(seen);
    cr_assert_eq(hook_calls[PC_EV_CIRCUIT_HALF_OPEN], 1);
    pc_targets_record(u, &u->targets[2], 0, 1, T0 + 1600 * MS);
    cr_assert_eq(hook_calls[PC_EV_CIRCUIT_OPEN], 2);
    cr_assert_eq(hook_calls[PC_EV_CIRCUIT_CLOSED], 0);
    cr_assert_str_eq(pc_event_name(PC_EV_CIRCUIT_OPEN), "circuit_open");
    cr_assert_str_eq(pc_event_name(PC_EV_TARGET_UNHEALTHY), "target_unhealthy");
    cr_assert_str_eq(pc_event_name(PC_EV_TARGET_HEALTHY), "target_healthy");
    cr_assert_str_eq(pc_event_name(PC_EV_CIRCUIT_CLOSED), "circuit_closed");
    pc_event_set_hook(NULL);
    pc_pools_free(ps);
    pc_config_unref(c);
    pc_tstate_table_free(tab);
}
