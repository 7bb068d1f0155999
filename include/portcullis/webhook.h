/* webhook.h: outbound webhook deliveries (CONTRACT §6), proxy/webhook.c.
 *
 * DESIGN: pc_event_emit's hook (any thread, a worker's included) builds
 * the event's body once ({"id","type","time","data"}, a random id) and
 * pushes it on a bounded queue (a mutex held for a pointer copy, then an
 * event_active): never a wait, never I/O. One delivery thread with its
 * own event_base (like the health checks) fans each event out to the
 * receivers of the generation it holds whose `events` list names it, and
 * POSTs it (http, or https verified like an https upstream) with the three
 * X-Portcullis-* headers. A 2xx ends a delivery; anything else or no
 * answer within `timeout` is retried after pc_webhook_backoff_ms, with the
 * same id, up to `max_attempts`. Past PC_WEBHOOK_QUEUE events waiting, or
 * PC_WEBHOOK_INFLIGHT deliveries pending, new ones are dropped and
 * counted (portcullis_webhook_dropped_total).
 *
 * Reload: a delivery keeps the receiver it was created for (it holds a
 * reference to that generation: URL, secret, timeout, max_attempts);
 * events emitted after the reload go to the new list.
 * Stop: deliveries waiting for a retry are attempted at once, failures
 * still back off; whatever is pending at the deadline (SIGTERM +
 * limits.shutdown_timeout) is dropped, logged and counted. */
#ifndef PORTCULLIS_WEBHOOK_H
#define PORTCULLIS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/config.h"

#define PC_WEBHOOK_QUEUE 1024    /* events handed over, not yet fanned out */
#define PC_WEBHOOK_INFLIGHT 4096 /* deliveries sending or waiting a retry
                                    (PORTCULLIS_WEBHOOK_MAX_PENDING in the
                                    environment at start overrides it) */

typedef struct pc_webhooks pc_webhooks;

/* Starts the thread on cfg's list and installs the event hook. NULL on
 * failure (logged). */
pc_webhooks *pc_webhooks_start(pc_config *cfg);
/* A new generation's list, for events emitted from now on. */
void pc_webhooks_reconfigure(pc_webhooks *w, pc_config *cfg);
/* Begins the stop: pending deliveries are attempted until deadline_ns
 * (pc_now_ns clock), then dropped. */
void pc_webhooks_drain(pc_webhooks *w, uint64_t deadline_ns);
/* Removes the hook, waits for the thread (drain deadline, or now when
 * pc_webhooks_drain was never called), frees everything. */
void pc_webhooks_stop(pc_webhooks *w);

/* ---- pure parts (unit tests) ------------------------------------------ */

/* The wait before attempt `attempt` + 1 after `attempt` failed (1-based):
 * 1 s doubling per failure, at most 5 min, times 0.8 + 0.4 * r for r in
 * [0, 1) (±20% jitter). */
uint64_t pc_webhook_backoff_ms(unsigned attempt, double r);
/* When the next attempt is due, from an injected clock and random source. */
typedef struct pc_webhook_clock {
    uint64_t (*now_ms)(void *arg);
    double (*rand01)(void *arg); /* [0, 1) */
    void *arg;
} pc_webhook_clock;
uint64_t pc_webhook_next_at(const pc_webhook_clock *c, unsigned attempt);
/* "sha256=" and the lowercase hex HMAC-SHA256 of body keyed by secret;
 * out needs 72 bytes. */
void pc_webhook_sign(const char *secret, const void *body, size_t len,
                     char out[72]);

/* A bounded FIFO of pointers (capacity fixed at creation). */
typedef struct pc_whq {
    void **items;
    size_t cap, head, n;
} pc_whq;
void pc_whq_init(pc_whq *q, size_t cap);
void pc_whq_free(pc_whq *q);
/* 0, or -1 when full (the item is not taken). */
int pc_whq_push(pc_whq *q, void *item);
void *pc_whq_pop(pc_whq *q); /* NULL when empty */

/* The body of an event (malloc'd JSON, *len set) with a fresh id copied to
 * id[33]; time_s/ms: the event's time. */
char *pc_webhook_body(int type, const char *upstream, const char *target,
                      const char *data, char id[33], size_t *len);

#endif
