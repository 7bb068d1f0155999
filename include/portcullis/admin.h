/* admin.h: the admin listener (CONTRACT §5) on the main thread's loop. */
#ifndef PORTCULLIS_ADMIN_H
#define PORTCULLIS_ADMIN_H

#include "portcullis/worker.h"

struct event_base;
typedef struct pc_admin pc_admin;

/* Binds rt->cfg->admin_listen (NULL config key: returns a no-op admin).
 * Returns NULL after logging when the address cannot be bound. */
pc_admin *pc_admin_start(struct event_base *base, pc_runtime *rt);
void pc_admin_free(pc_admin *a);

#endif
