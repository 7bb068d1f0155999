/* pool_int.h: upstream connections and per-worker pools, private to proxy/.
 *
 * DESIGN: a pool is per worker and per target pool key (pc_target.pool_key:
 * the URL plus every setting that changes the connection made: resolved
 * address, tls_verify, the CA file's contents), so two upstreams that
 * verify the same URL differently never share a connection. The key is a
 * stable string, so pools survive a config reload that keeps the target
 * and those settings. It holds idle keep-alive connections, most recently
 * used first; an idle connection watches its socket, so an upstream that
 * closes it is noticed and the connection dropped before anyone picks it.
 *
 *   acquire ─► [idle list] hit: reused=1 ─► forward ─► release ─┐
 *       └─ miss: connect (reused=0)                    keep? ──┘ else close
 */
#ifndef PORTCULLIS_POOL_INT_H
#define PORTCULLIS_POOL_INT_H

#include <llhttp.h>

#include "portcullis/proxy.h"

typedef struct ssl_st SSL;

typedef struct pc_sock pc_sock;
typedef struct pc_pool pc_pool;

typedef struct pc_upconn {
    pc_sock *sock;
    pc_pool *pool;
    struct pc_upconn *prev, *next; /* idle list */
    llhttp_t parser;
    unsigned requests;             /* served so far (0: fresh) */
    int connected;
    void *owner;                   /* forwarding state while active */
} pc_upconn;

struct pc_pool {
    char *key;                     /* pc_target.pool_key */
    pc_upconn *idle;
    unsigned nidle, nactive;
    int retired;                   /* its target left the configuration:
                                      connections close when released */
    pc_tstate *stat;               /* process-wide counts (one reference;
                                      NULL for unbound targets) */
    struct pc_pool *hnext;
    struct pc_pools *set;
};

/* Returns the pool of a target (by its pool_key), creating it. */
pc_pool *pc_pool_get(pc_pools *ps, const pc_target *t);
/* A client SSL for an https target: SNI and, with tls_verify, the name or
 * address its certificate must carry. NULL (logged) when OpenSSL fails. */
SSL *pc_target_ssl(const pc_upstream *u, const pc_target *t);
/* An idle connection (removed from the idle list), or NULL. */
pc_upconn *pc_pool_take(pc_pool *p);
/* Opens a new connection to t (not yet connected). NULL on immediate
 * failure (socket/connect error), with errno-style reason logged. */
pc_upconn *pc_pool_connect(pc_pool *p, const pc_upstream *u, const pc_target *t);
/* Gives a healthy connection back; closes it when the pool is full. */
void pc_pool_release(pc_upconn *uc, const pc_upstream *u);
/* Closes and frees an active connection. */
void pc_pool_close(pc_upconn *uc);

/* Chooses a target index of u for this request, skipping those whose bit
 * is set in `tried` when possible; -1 when every target was tried. */
int pc_balance_pick(pc_pools *ps, const pc_config *cfg, const pc_upstream *u,
                    const pc_ip *client, uint64_t tried);

#endif
