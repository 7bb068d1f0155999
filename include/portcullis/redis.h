/* redis.h: an asynchronous Redis / Redis Cluster client for one event
 * loop (net/redis.c), on hiredis's async API and its libevent adapter.
 * One pc_redis per worker; nothing here is shared between threads.
 *
 * What it promises its callers (the rate-limit stage's `scope: cluster`):
 *  - every command is answered exactly once, through its callback, and
 *    never from inside the call that issued it: with the reply, or with
 *    PC_REDIS_TIMEOUT no later than `timeout` after it was issued, or with
 *    PC_REDIS_DOWN when the connection it was on failed;
 *  - a command that cannot be sent at all (no connection, reconnecting in
 *    backoff) is refused synchronously (-1) and its callback never runs;
 *  - AUTH and SELECT are sent first on every connection; commands are
 *    pipelined; a connection that lets a command time out is closed and
 *    reconnected with exponential backoff (100 ms doubling to 1 s);
 *  - when the seed address is a cluster node (CLUSTER SLOTS answers), keys
 *    go to the master of their slot (one connection per master), MOVED
 *    updates the slot map and is followed, ASK is followed with ASKING,
 *    and the map is refreshed every 5 s and after errors. */
#ifndef PORTCULLIS_REDIS_H
#define PORTCULLIS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/redis_proto.h"

struct event_base;
struct redisReply;

/* The `redis` block (CONTRACT §2), checked by the config loader. */
typedef struct pc_redis_opts {
    char *address;                /* as written */
    char host[PC_REDIS_HOST_MAX]; /* host, or unix socket path */
    uint16_t port;                /* 0 for unix */
    int is_unix;
    char *password;      /* NULL: no AUTH */
    uint64_t db;         /* 0..1000000; SELECT only when > 0 */
    uint64_t timeout_ms; /* 1ms..60s, default 50ms */
    int deny;            /* on_error: 0 allow (default), 1 deny */
} pc_redis_opts;

/* 1 when a and b connect the same way (address, password, db, timeout);
 * on_error is policy, not connection, and is not compared. NULLs: both. */
int pc_redis_opts_same(const pc_redis_opts *a, const pc_redis_opts *b);
void pc_redis_opts_free(pc_redis_opts *o); /* NULL is a no-op */

typedef enum {
    PC_REDIS_OK = 0,  /* reply is a non-error reply */
    PC_REDIS_ERROR,   /* reply is an error reply (its text in reply->str) */
    PC_REDIS_TIMEOUT, /* no answer within timeout; reply NULL */
    PC_REDIS_DOWN,    /* the connection failed or the client was freed */
} pc_redis_status;

/* ctx points at the caller's bytes copied at issue time (ctxlen). reply is
 * borrowed for the call. */
typedef void (*pc_redis_cb)(void *ctx, pc_redis_status st,
                            const struct redisReply *reply);

/* A Lua script sent with EVALSHA, and with EVAL after NOSCRIPT. */
typedef struct pc_redis_script {
    const char *text; /* static */
    char sha[41];     /* lower-case hex SHA-1 of text */
} pc_redis_script;

/* Computes s->sha. */
void pc_redis_script_init(pc_redis_script *s, const char *text);

typedef struct pc_redis pc_redis;

/* A client on base for o (copied); starts connecting at once. Never
 * fails: an unreachable Redis is retried in the background. */
pc_redis *pc_redis_new(struct event_base *base, const pc_redis_opts *o);
/* Closes every connection; each command still pending gets its callback
 * with PC_REDIS_DOWN before this returns. NULL is a no-op. Never call it
 * from inside one of the client's callbacks. */
void pc_redis_free(pc_redis *r);

#define PC_REDIS_MAX_ARGS 8
#define PC_REDIS_CTX_MAX 64

/* EVALSHA s 1 key args... (at most PC_REDIS_MAX_ARGS args) to the node
 * owning key's slot. ctx (ctxlen <= PC_REDIS_CTX_MAX bytes) is copied and
 * handed back to cb. Returns 0 when issued (cb runs later, once), -1 when
 * it cannot be sent now (cb never runs). */
int pc_redis_eval(pc_redis *r, const pc_redis_script *s, const char *key,
                  size_t klen, unsigned nargs, const char *const *args,
                  const size_t *arglens, pc_redis_cb cb, const void *ctx,
                  size_t ctxlen);

/* Reads a CLUSTER SLOTS reply: calls range(arg, from, to, host, port) for
 * each slot range's master. An empty host (Redis says "unknown endpoint")
 * becomes fallback_host. Returns the number of ranges, or -1 when the
 * reply is not a well-formed slot table (then range may have been called
 * for the ranges before the bad one). */
int pc_redis_slots_parse(const struct redisReply *rep,
                         void (*range)(void *arg, unsigned from, unsigned to,
                                       const char *host, uint16_t port),
                         void *arg, const char *fallback_host);

/* A reply that is an array of exactly two integers (a Lua table of two
 * numbers): 0 with them in *a and *b, else -1. */
int pc_redis_reply_pair(const struct redisReply *rep, long long *a,
                        long long *b);

/* Counters of this client since it was made (tests, logs). */
typedef struct pc_redis_stats {
    uint64_t sent, replies, errors, timeouts, down, moved, ask, noscript,
        connects, refreshes;
} pc_redis_stats;
const pc_redis_stats *pc_redis_get_stats(const pc_redis *r);

#endif
