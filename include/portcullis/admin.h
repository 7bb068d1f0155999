/* admin.h: the admin listener (CONTRACT §5) on the main thread's loop. */
#ifndef PORTCULLIS_ADMIN_H
#define PORTCULLIS_ADMIN_H

#include "portcullis/worker.h"

/* Fixed bounds of the admin listener (no configuration keys).
 *
 * PC_ADMIN_MAX_CONNS: open admin connections at most; a connection
 * accepted at the cap closes the one nearest its deadline, so that a flood
 * of idle or slow clients cannot keep a health check out.
 * PC_ADMIN_DEADLINE_MS: a request must be received and its response
 * written within this time from the connection opening (or from the end
 * of the previous response on a keep-alive connection), whatever the pace
 * of its bytes; then the connection is closed (with a 408 when part of a
 * request had arrived).
 * PC_ADMIN_MAX_HEAD / PC_ADMIN_MAX_BODY: request head and body sizes
 * (431 / 413 beyond). */
#define PC_ADMIN_MAX_CONNS 64
#define PC_ADMIN_DEADLINE_MS 10000
#define PC_ADMIN_MAX_HEAD 16384
#define PC_ADMIN_MAX_BODY 65536

struct event_base;
typedef struct pc_admin pc_admin;

/* Binds rt->cfg->admin_listen (NULL config key: returns a no-op admin).
 * Returns NULL after logging when the address cannot be bound. */
pc_admin *pc_admin_start(struct event_base *base, pc_runtime *rt);
/* Closes the listener and every admin connection. NULL is a no-op. */
void pc_admin_free(pc_admin *a);

#endif
