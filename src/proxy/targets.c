/* targets.c: CONTRACT §3 step 7, the choice of a target that admits the
 * request (its circuit and its health), the record of each attempt's
 * outcome, and the binding of each configuration generation's targets to
 * their per-process state (lib/breaker.c) by stable name.
 *
 * DESIGN: availability is read from the targets' shared atomics without a
 * lock; the balancer (pool.c) then picks among the available targets as
 * it picks among untried ones (one skip mask), and only the picked target
 * is asked to admit the request, which may take a half-open probe slot.
 * When a concurrent request took the last slot in between, that target is
 * skipped and the balancer asked again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"
#include "portcullis/breaker.h"
#include "portcullis/errlog.h"
#include "portcullis/events.h"
#include "portcullis/util.h"

/* 1 when the target may take a request now (no side effect). */
static int target_ok(const pc_upstream *u, const pc_target *t, uint64_t now)
{
    const pc_tstate *s = t->state;
    if (!s)
        return 1;
    if (u->health.enabled && !pc_health_ok(s))
        return 0;
    return !u->breaker.enabled || pc_breaker_available(s, &u->breaker, now);
}

static void report(const pc_upstream *u, const pc_target *t, pc_transition tr)
{
    char detail[96];
    const char *d = NULL;
    switch (tr) {
    case PC_TR_NONE:
        return;
    case PC_TR_OPENED:
        snprintf(detail, sizeof detail,
                 "%llu consecutive failures, open for %llums",
                 (unsigned long long)u->breaker.failures,
                 (unsigned long long)u->breaker.open_for);
        d = detail;
        break;
    case PC_TR_REOPENED:
        snprintf(detail, sizeof detail,
                 "half-open probe failed, open for %llums",
                 (unsigned long long)u->breaker.open_for);
        d = detail;
        break;
    case PC_TR_HALF_OPENED:
        d = "open_for elapsed, admitting probes";
        break;
    case PC_TR_CLOSED:
        d = "half-open probe succeeded";
        break;
    default:
        break;
    }
    pc_event_emit(pc_event_of(tr), u->name, t->url, d);
}

int pc_targets_choose(pc_pools *ps, const pc_config *cfg, const pc_upstream *u,
                      const pc_ip *client, uint64_t tried, uint64_t now,
                      int *probe)
{
    uint64_t skip = tried;
    *probe = 0;
    if (u->health.enabled || u->breaker.enabled)
        for (size_t i = 0; i < u->ntargets && i < 64; i++)
            if (!target_ok(u, &u->targets[i], now))
                skip |= 1ull << i;
    for (;;) {
        int i = pc_balance_pick(ps, cfg, u, client, skip);
        if (i < 0)
            return -1;
        const pc_target *t = &u->targets[i];
        if (!u->breaker.enabled || !t->state)
            return i;
        pc_transition tr;
        int a = pc_breaker_admit(t->state, &u->breaker, now, &tr);
        report(u, t, tr);
        if (a) {
            *probe = a == 2;
            return i;
        }
        if (i >= 64)
            return -1;
        skip |= 1ull << i;
    }
}

void pc_targets_record(const pc_upstream *u, const pc_target *t, int ok,
                       int probe, uint64_t now)
{
    if (!u->breaker.enabled || !t->state)
        return;
    report(u, t, pc_breaker_record(t->state, &u->breaker, now, ok, probe));
}

uint64_t pc_targets_retry_after(const pc_upstream *u, uint64_t now)
{
    uint64_t best = UINT64_MAX;
    for (size_t i = 0; i < u->ntargets; i++) {
        const pc_target *t = &u->targets[i];
        if (!t->state)
            continue;
        uint64_t w = 0;
        if (u->health.enabled && !pc_health_ok(t->state)) {
            /* healthy_after passing checks, interval apart */
            uint64_t ms = u->health.interval * u->health.healthy_after;
            w = ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
        } else if (u->breaker.enabled) {
            w = pc_breaker_wait_ns(t->state, now);
        }
        if (w < best)
            best = w;
    }
    if (best == UINT64_MAX)
        return 1;
    uint64_t s = best / 1000000000u + (best % 1000000000u ? 1 : 0);
    return s ? s : 1;
}

pc_circuit pc_target_circuit(const pc_upstream *u, const pc_target *t)
{
    if (!u->breaker.enabled || !t->state)
        return PC_CIRCUIT_CLOSED;
    return pc_breaker_state(t->state);
}

int pc_target_healthy(const pc_upstream *u, const pc_target *t)
{
    return !u->health.enabled || !t->state || pc_health_ok(t->state);
}

void pc_targets_bind(pc_tstate_table *tab, pc_config *cfg)
{
    pc_tstate_sweep_begin(tab);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        pc_upstream *u = &cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++) {
            pc_target *t = &u->targets[k];
            size_t len = strlen(u->name) + strlen(t->url) + 4;
            char *key = pc_xmalloc(len);
            snprintf(key, len, "T %s %s", u->name, t->url);
            pc_tstate_unref(t->state);
            t->state = pc_tstate_get(tab, key);
            free(key);
            len = strlen(t->pool_key) + 3;
            key = pc_xmalloc(len);
            snprintf(key, len, "P %s", t->pool_key);
            pc_tstate_unref(t->pool_stat);
            t->pool_stat = pc_tstate_get(tab, key);
            free(key);
            /* A circuit of an upstream that no longer has a breaker does
             * not come back half-remembered when the block returns. */
            if (!u->breaker.enabled)
                pc_breaker_reset(t->state);
        }
    }
    size_t gone = pc_tstate_sweep_end(tab);
    if (gone)
        pc_log(PC_LOG_DEBUG, "dropped the state of %zu removed targets/pools",
               gone);
}
