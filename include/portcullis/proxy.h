/* proxy.h: forwarding a routed request to its upstream over pooled
 * keep-alive connections, streaming both ways (proxy/forward.c), the
 * per-worker pools (proxy/pool.c) and target selection (proxy/balance.c). */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

#include "portcullis/breaker.h"
#include "portcullis/http.h"

typedef struct pc_pools pc_pools;
typedef struct pc_sock_loop pc_sock_loop;

/* Starts forwarding req (req->route set). Answers through req->sink, always:
 * a response, or a gateway error (502/503/504). */
void pc_proxy_start(pc_req *req);

/* Per-worker pool set: created at worker start, freed at its end. */
pc_pools *pc_pools_new(pc_sock_loop *loop);
void pc_pools_free(pc_pools *p);
/* After a reload to cfg: closes the idle connections of every target cfg
 * no longer has, and frees its pool once no request uses it; connections
 * still busy with requests of older generations close when released. */
void pc_pools_prune(pc_pools *p, const pc_config *cfg);
/* Idle and active connection counts of a target (admin, least_conn). */
void pc_pools_counts(pc_pools *p, const char *url, unsigned *active,
                     unsigned *idle);

/* ---- target choice (CONTRACT §3 step 7, proxy/targets.c) ---- */

typedef struct pc_tstate_table pc_tstate_table;

/* A target of u that admits the request now: healthy (when u has health
 * checks) and whose circuit admits it (when u has a circuit breaker),
 * chosen by u's balancing among those, skipping the indexes set in tried.
 * -1 when none admits it. *probe: the request is a half-open probe (its
 * outcome must be recorded). now: monotonic ns. */
int pc_targets_choose(pc_pools *ps, const pc_config *cfg, const pc_upstream *u,
                      const pc_ip *client, uint64_t tried, uint64_t now,
                      int *probe);
/* The outcome of one attempt on t (ok: a response whose status is not in
 * failure_statuses). Transitions are reported (events.h). */
void pc_targets_record(const pc_upstream *u, const pc_target *t, int ok,
                       int probe, uint64_t now);
/* Retry-After seconds for a 503 upstream_unavailable: until the earliest
 * open circuit may go half-open, or healthy_after check intervals for an
 * unhealthy target; at least 1. */
uint64_t pc_targets_retry_after(const pc_upstream *u, uint64_t now);
/* What /admin/upstreams and the circuit metric show (closed without a
 * breaker; healthy without health checks). */
pc_circuit pc_target_circuit(const pc_upstream *u, const pc_target *t);
int pc_target_healthy(const pc_upstream *u, const pc_target *t);
/* Gives every target of cfg its per-process state (pc_target.state,
 * pool_stat) from tab, by stable name, and drops from tab what cfg no
 * longer names. Main thread, before cfg is published. */
void pc_targets_bind(pc_tstate_table *tab, pc_config *cfg);

/* ---- active health checks (proxy/health.c) ---- */

typedef struct pc_health pc_health;
/* Starts the health-check thread (its own event_base) on cfg; NULL when
 * the thread cannot start (logged). */
pc_health *pc_health_start(pc_config *cfg);
/* Hands it a new generation (after a reload): checks follow the targets
 * and settings of cfg; a target's health survives by stable name.
 * Thread-safe. */
void pc_health_reconfigure(pc_health *h, pc_config *cfg);
/* Stops the thread and frees everything (NULL is a no-op). */
void pc_health_stop(pc_health *h);

#endif
