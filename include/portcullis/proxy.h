/* proxy.h: forwarding a routed request to its upstream over pooled
 * keep-alive connections, streaming both ways (proxy/forward.c), the
 * per-worker pools (proxy/pool.c) and target selection (proxy/balance.c). */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

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

#endif
