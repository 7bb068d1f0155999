/* chain.h: the fixed, ordered list of request stages (CONTRACT §3) and the
 * one interface every stage implements.
 *
 * Contract of a stage's hooks (HAProxy filters-t.h style):
 *  - configure_global(node, cfg, err): called once per generation with the
 *    stage's top-level YAML block (global_key), before any route. Returns
 *    the stage's global policy, or NULL after adding errors (or when the
 *    block says nothing). Never keeps pointers into the node tree.
 *  - configure_route(node, cfg, route, err): the route-level block
 *    (route_key) of one route; may read the global policy from
 *    cfg->stage_global[index]. Returns the route's policy or NULL.
 *  - free_global / free_route: free what configure returned (never NULL
 *    arguments).
 *  - worker_init(w) / worker_free(state): per-worker state (caches), kept
 *    in w->stage_state[index]; called on the worker's own thread or before
 *    it starts.
 *  - on_request(req):
 *      PC_NEXT  the stage is done with the request; the chain moves on;
 *      PC_DONE  the stage answered (through req->sink) or handed the
 *               request to a handler that will; the chain stops;
 *      PC_WAIT  the stage started something asynchronous; its callback
 *               calls pc_chain_resume(req, verdict) exactly once, unless
 *               the request is cancelled first (req->handler->cancel,
 *               installed by the stage). The chain continues AFTER the
 *               waiting stage: a stage is never re-entered.
 */
#ifndef PORTCULLIS_CHAIN_H
#define PORTCULLIS_CHAIN_H

#include "portcullis/http.h"
#include "portcullis/node.h"

typedef enum { PC_NEXT, PC_DONE, PC_WAIT } pc_verdict;

typedef struct pc_stage_ops {
    const char *name;
    const char *global_key; /* top-level YAML key owned, or NULL */
    const char *route_key;  /* route-level YAML key owned, or NULL */
    void *(*configure_global)(const pc_node *n, pc_config *c, pc_errors *err);
    void *(*configure_route)(const pc_node *n, pc_config *c, pc_route *r,
                             pc_errors *err);
    void (*free_global)(void *policy);
    void (*free_route)(void *policy);
    /* The block as JSON for GET /admin/config, secrets as "***". */
    json_t *(*global_json)(const void *policy);
    json_t *(*route_json)(const void *policy);
    void *(*worker_init)(pc_worker *w);
    void (*worker_free)(void *state);
    pc_verdict (*on_request)(pc_req *req);
} pc_stage_ops;

/* From http/conn once the request head is complete and valid. */
void pc_chain_start(pc_req *req);
/* From an async callback of the stage at req->stage. */
void pc_chain_resume(pc_req *req, pc_verdict v);

/* The stage table, in CONTRACT §3 order. */
unsigned pc_chain_nstages(void);
const pc_stage_ops *pc_chain_stage(unsigned i);
/* 1 when key is a top-level / route-level key owned by a stage. */
int pc_chain_owns_global_key(const char *key);
int pc_chain_owns_route_key(const char *key);

/* Config loader hooks (core/config*.c). */
void pc_chain_configure_global(pc_config *c, const pc_node *root,
                               pc_errors *err);
void pc_chain_configure_route(pc_config *c, pc_route *r, const pc_node *n,
                              pc_errors *err);
void pc_chain_free_global(pc_config *c);
void pc_chain_free_route(pc_route *r);

/* Adds every stage block of the generation / of a route to obj under its
 * key (for GET /admin/config). */
void pc_chain_global_json(const pc_config *c, json_t *obj);
void pc_chain_route_json(const pc_route *r, json_t *obj);

/* Worker hooks (core/worker.c). */
void pc_chain_worker_init(pc_worker *w);
void pc_chain_worker_free(pc_worker *w);

/* The policy a stage applies to req: the route's own block, else the
 * global one (CONTRACT §2: "a route's own block replaces the global one"). */
const void *pc_chain_policy(const pc_req *req, unsigned stage);
/* Only the route's block (stages whose global block is not a policy). */
const void *pc_chain_route_policy(const pc_req *req, unsigned stage);

/* Reads the whole request body into req->body (at most req->max_body
 * bytes, enforced by conn while streaming), then calls done(req) from the
 * event loop. Returns PC_NEXT when there is no body or it is already
 * buffered, PC_WAIT otherwise. Used by the stages the contract lets see
 * the body (json_schema, verify_signature). */
pc_verdict pc_chain_buffer_body(pc_req *req, void (*done)(pc_req *req));

/* The stages (one file each in src/chain/). */
extern const pc_stage_ops pc_stage_match;
extern const pc_stage_ops pc_stage_validate;
extern const pc_stage_ops pc_stage_acl;
extern const pc_stage_ops pc_stage_auth;
extern const pc_stage_ops pc_stage_signature;
extern const pc_stage_ops pc_stage_route;
extern const pc_stage_ops pc_stage_proxy;

#endif
