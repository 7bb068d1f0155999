/* loop.h: one event loop's context, as every layer below the process sees
 * it (front/, chain/, proxy/). core/worker.c embeds one in each pc_worker
 * and fills it; the layers below read what they need from it and notify
 * the worker through its ops table, never through core's headers.
 *
 * Everything here is touched only by the loop's own thread. */
#ifndef PORTCULLIS_LOOP_H
#define PORTCULLIS_LOOP_H

#include <stdint.h>

#include "portcullis/cidr.h"

/* Room for one policy / per-loop state per chain stage (chain.c checks its
 * table fits). */
#define PC_STAGE_MAX 12

struct event_base;
struct pc_sock_loop;
struct pc_pools;
struct pc_metrics_shard;
struct pc_wait_table;
struct pc_arena_cache;
struct pc_bucket_table;
struct pc_config;
struct pc_conn;
struct pc_redis;
struct pc_req;
typedef struct pc_loop pc_loop;

/* What the loop's owner (the worker) is told. */
typedef struct pc_loop_ops {
    /* A client connection closed; counted_ip: it was counted against
     * max_connections_per_ip under peer. */
    void (*conn_closed)(pc_loop *l, const pc_ip *peer, int counted_ip);
    /* A request is finished (answered, or given up): log it, count it.
     * Called once per request, before it is freed. */
    void (*request_done)(pc_loop *l, struct pc_req *req);
} pc_loop_ops;

struct pc_loop {
    unsigned id;                     /* worker number */
    struct event_base *base;
    struct pc_sock_loop *sockloop;   /* write queue of this loop's sockets */
    struct pc_config *cfg;           /* current generation (one reference,
                                        owned by the worker) */
    int draining;                    /* graceful stop in progress */
    struct pc_pools *pools;          /* upstream keep-alive pools (proxy/) */
    struct pc_metrics_shard *metrics;/* this loop's counters (lib/metrics) */
    void *stage_state[PC_STAGE_MAX]; /* per chain stage (caches) */
    struct pc_wait_table *waits;     /* pc_wait cells of this loop's waiting
                                        requests (chain.c; on first use) */
    struct pc_bucket_table *buckets; /* rate-limit buckets: ONE table per
                                        process, shared by every loop
                                        (lib/bucket_table.c, thread-safe;
                                        owned by main.c's pc_runtime) */
    struct pc_redis *redis;          /* this loop's Redis client (net/redis.c),
                                        NULL without a `redis` block; made
                                        and replaced by the worker */
    struct pc_arena_cache *arenas;   /* free request-arena chunks (lib/arena.c) */
    struct pc_conn *conns;           /* every client connection (front/) */
    long nconns;
    uint64_t rng[2];                 /* xorshift128+ state for request ids */
    const pc_loop_ops *ops;
};

/* Seeds the request-id generator (getrandom, else time and pid). */
void pc_loop_seed(pc_loop *l);
/* 32 lower-case hex digits of randomness into out (33 bytes). */
void pc_loop_request_id(pc_loop *l, char *out);

#endif
