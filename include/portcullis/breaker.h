/* breaker.h: a target's per-process state (CONTRACT §2 "state is per
 * process, shared by all workers": its circuit and its health) and the
 * process-wide table that keeps it across reloads (lib/breaker.c).
 *
 * DESIGN: one pc_tstate per target, keyed by a stable name (upstream name
 * and target URL), shared by every worker. No lock on the request path:
 * the circuit's state and the number of probes admitted in a half-open
 * round are one 64-bit atomic word changed by compare-and-swap, so exactly
 * one thread wins each transition (and reports it); the consecutive
 * failure count is its own atomic, bumped only by failures (a success in
 * the closed state is one relaxed load, plus a store only when a failure
 * streak ends). `until_ns` is stored before the CAS that publishes the
 * transition needing it. Every function takes the time (`now`, monotonic
 * ns) from its caller: the state machine is tested with a fake clock.
 *
 *            `failures` consecutive failures
 *   closed ───────────────────────────────────► open
 *     ▲                                         │ open_for elapsed
 *     │ a probe succeeds     a probe fails      ▼ (first admit)
 *     └──────────────────── half_open ──────────┘ ◄─ reopens: open_for again
 *                (at most half_open_requests probes per round; a round
 *                 whose probes never reported ends after open_for)
 *
 * Health (active checks, proxy/health.c): `healthy` is written by the
 * health-check thread only and read by everyone; the consecutive counts
 * behind it are that thread's alone.
 *
 * The table (pc_tstate_table) is touched under its mutex only at load,
 * reload, and when a worker first creates a pool: never per request. A
 * configuration generation holds one reference on each of its targets'
 * states (pc_target.state, pc_target.pool_stat); the table holds one on
 * each entry it lists. An entry the new configuration no longer names is
 * unlisted (its state dropped for future generations) and freed when the
 * last old generation lets go. */
#ifndef PORTCULLIS_BREAKER_H
#define PORTCULLIS_BREAKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PC_CIRCUIT_CLOSED = 0, /* the values of portcullis_circuit_state */
    PC_CIRCUIT_HALF_OPEN = 1,
    PC_CIRCUIT_OPEN = 2,
} pc_circuit;

/* What a call changed, for the one place that reports it (events.h). */
typedef enum {
    PC_TR_NONE,
    PC_TR_OPENED,      /* closed -> open */
    PC_TR_REOPENED,    /* half-open -> open (a probe failed) */
    PC_TR_HALF_OPENED, /* open -> half-open */
    PC_TR_CLOSED,      /* half-open -> closed (a probe succeeded) */
    PC_TR_UNHEALTHY,   /* health checks: healthy -> unhealthy */
    PC_TR_HEALTHY,     /* health checks: unhealthy -> healthy */
} pc_transition;

#define PC_STATUS_BITS 640 /* failure_statuses bitmap: codes 0..639 */

/* An upstream's circuit_breaker block (config.h keeps one per upstream). */
typedef struct pc_breaker_conf {
    int enabled;                 /* the block is present */
    uint64_t failures;           /* 1..1000, default 5 */
    uint64_t open_for;           /* ms, default 30s */
    uint64_t half_open_requests; /* 1..1000, default 1 */
    uint64_t statuses[PC_STATUS_BITS / 64]; /* default 502 503 504 */
} pc_breaker_conf;

typedef struct pc_tstate {
    _Atomic uint64_t word;    /* circuit (bits 0-1) | probes << 8 */
    _Atomic uint32_t failures;/* consecutive, while closed */
    _Atomic uint64_t until_ns;/* open: when it may go half-open;
                                 half-open: when a round's unreported
                                 probes are given up */
    _Atomic int healthy;      /* 1 until health checks say otherwise */
    uint32_t hc_ok, hc_fail;  /* consecutive check results (checker) */
    _Atomic long active, idle;/* pool entries: connections, all workers */
    _Atomic long refs;
    int marked;               /* table sweep (under its mutex) */
    char *key;
    struct pc_tstate *next;   /* table chain */
} pc_tstate;

/* ---- circuit (any thread) ---- */

pc_circuit pc_breaker_state(const pc_tstate *s);
/* 1 when the status code counts as a failure. */
int pc_breaker_status_fails(const pc_breaker_conf *c, int status);
void pc_breaker_status_set(pc_breaker_conf *c, unsigned status);
/* Would the circuit admit a request now? No side effect (balancing uses
 * it to skip targets). */
int pc_breaker_available(const pc_tstate *s, const pc_breaker_conf *c,
                         uint64_t now);
/* Admits a request: 0 refused, 1 admitted, 2 admitted as a half-open
 * probe. *tr gets PC_TR_HALF_OPENED when this call ended the open time. */
int pc_breaker_admit(pc_tstate *s, const pc_breaker_conf *c, uint64_t now,
                     pc_transition *tr);
/* The outcome of one attempt admitted by pc_breaker_admit (probe: its
 * return value was 2). Returns the transition it caused. */
pc_transition pc_breaker_record(pc_tstate *s, const pc_breaker_conf *c,
                                uint64_t now, int ok, int probe);
/* ns until an open circuit may go half-open (0 when not open or due). */
uint64_t pc_breaker_wait_ns(const pc_tstate *s, uint64_t now);
/* Back to closed with no failures (the circuit_breaker block went away). */
void pc_breaker_reset(pc_tstate *s);

/* ---- health (the checker thread writes, anyone reads) ---- */

int pc_health_ok(const pc_tstate *s);
/* One check's result; returns PC_TR_UNHEALTHY / PC_TR_HEALTHY on a
 * change, else PC_TR_NONE. */
pc_transition pc_health_record(pc_tstate *s, uint64_t healthy_after,
                               uint64_t unhealthy_after, int ok);
void pc_health_reset(pc_tstate *s); /* healthy, counts cleared */

/* ---- the table (load / reload / pool creation only) ---- */

typedef struct pc_tstate_table pc_tstate_table;
pc_tstate_table *pc_tstate_table_new(void);
/* Unlists everything (references held elsewhere stay valid). */
void pc_tstate_table_free(pc_tstate_table *t);
/* The entry for key, created closed and healthy when absent; the caller
 * gets one reference. */
pc_tstate *pc_tstate_get(pc_tstate_table *t, const char *key);
/* Starts a sweep: every entry is unmarked; pc_tstate_get marks. */
void pc_tstate_sweep_begin(pc_tstate_table *t);
/* Unlists every entry not marked since the sweep began; returns how many. */
size_t pc_tstate_sweep_end(pc_tstate_table *t);
size_t pc_tstate_count(pc_tstate_table *t);
pc_tstate *pc_tstate_ref(pc_tstate *s);
void pc_tstate_unref(pc_tstate *s); /* NULL is a no-op */

#endif
