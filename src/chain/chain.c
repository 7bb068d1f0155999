/* chain.c: runs the fixed list of request stages (CONTRACT §3) over a
 * request, keeping the cursor on the request so an asynchronous stage can
 * resume the chain after itself; hands YAML blocks to the stages that own
 * them; keeps per-worker stage state. Never does I/O.
 *
 * DESIGN:
 *   pc_chain_start ─► stage[0] ─NEXT─► stage[1] ─ ... ─► proxy (DONE)
 *                        │WAIT                 ▲
 *                        └─ callback ─ pc_chain_resume(req, NEXT)
 * A stage is never re-entered: resume continues at cursor + 1.
 * "match" computes the route first so that validate/acl/auth read the
 * route's policy; "route" reports its 404/405 at step 6, as the contract
 * orders. */
#include "portcullis/chain.h"

#include <jansson.h>
#include <string.h>

#include "portcullis/worker.h"

static const pc_stage_ops *const stages[] = {
    &pc_stage_match,     /* route lookup, outcome reported by "route" */
    &pc_stage_validate,  /* 2: limits, content types, JSON schema */
    &pc_stage_acl,       /* 3: allow/deny lists */
    &pc_stage_auth,      /* 4: JWT */
    &pc_stage_signature, /* 4: webhook HMAC of the raw body */
    &pc_stage_route,     /* 6: 404 / 405 */
    &pc_stage_proxy,     /* 9: forward */
};

#define NSTAGES (sizeof stages / sizeof stages[0])
_Static_assert(NSTAGES <= PC_STAGE_MAX, "raise PC_STAGE_MAX");

unsigned pc_chain_nstages(void)
{
    return NSTAGES;
}

const pc_stage_ops *pc_chain_stage(unsigned i)
{
    return i < NSTAGES ? stages[i] : NULL;
}

static void run(pc_req *req, unsigned from)
{
    for (unsigned i = from; i < NSTAGES; i++) {
        req->stage = i;
        pc_verdict v = stages[i]->on_request(req);
        if (v != PC_NEXT)
            return; /* DONE: answered; WAIT: a callback resumes us */
    }
    /* The last stage (proxy) always answers; reaching here is a bug in a
     * stage table edit, answered rather than left hanging. */
    req->sink->error(req, PC_ERR_BAD_GATEWAY, "no stage answered");
}

void pc_chain_start(pc_req *req)
{
    run(req, 0);
}

void pc_chain_resume(pc_req *req, pc_verdict v)
{
    if (v == PC_NEXT)
        run(req, req->stage + 1);
}

int pc_chain_owns_global_key(const char *key)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->global_key && !strcmp(stages[i]->global_key, key))
            return 1;
    return 0;
}

int pc_chain_owns_route_key(const char *key)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->route_key && !strcmp(stages[i]->route_key, key))
            return 1;
    return 0;
}

void pc_chain_configure_global(pc_config *c, const pc_node *root,
                               pc_errors *err)
{
    for (unsigned i = 0; i < NSTAGES; i++) {
        const pc_stage_ops *s = stages[i];
        const pc_node *n;
        if (!s->global_key || !s->configure_global ||
            !(n = pc_node_get(root, s->global_key)))
            continue;
        c->stage_global[i] = s->configure_global(n, c, err);
    }
}

void pc_chain_configure_route(pc_config *c, pc_route *r, const pc_node *n,
                              pc_errors *err)
{
    for (unsigned i = 0; i < NSTAGES; i++) {
        const pc_stage_ops *s = stages[i];
        const pc_node *b;
        if (!s->route_key || !s->configure_route ||
            !(b = pc_node_get(n, s->route_key)))
            continue;
        r->stage_policy[i] = s->configure_route(b, c, r, err);
    }
}

void pc_chain_free_global(pc_config *c)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (c->stage_global[i] && stages[i]->free_global) {
            stages[i]->free_global(c->stage_global[i]);
            c->stage_global[i] = NULL;
        }
}

void pc_chain_free_route(pc_route *r)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (r->stage_policy[i] && stages[i]->free_route) {
            stages[i]->free_route(r->stage_policy[i]);
            r->stage_policy[i] = NULL;
        }
}

void pc_chain_global_json(const pc_config *c, json_t *obj)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->global_key && stages[i]->global_json && c->stage_global[i])
            json_object_set_new(obj, stages[i]->global_key,
                                stages[i]->global_json(c->stage_global[i]));
}

void pc_chain_route_json(const pc_route *r, json_t *obj)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->route_key && stages[i]->route_json && r->stage_policy[i])
            json_object_set_new(obj, stages[i]->route_key,
                                stages[i]->route_json(r->stage_policy[i]));
}

void pc_chain_worker_init(pc_worker *w)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->worker_init)
            w->stage_state[i] = stages[i]->worker_init(w);
}

void pc_chain_worker_free(pc_worker *w)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (w->stage_state[i] && stages[i]->worker_free) {
            stages[i]->worker_free(w->stage_state[i]);
            w->stage_state[i] = NULL;
        }
}

const void *pc_chain_policy(const pc_req *req, unsigned stage)
{
    if (req->route && req->route->stage_policy[stage])
        return req->route->stage_policy[stage];
    return req->cfg->stage_global[stage];
}

const void *pc_chain_route_policy(const pc_req *req, unsigned stage)
{
    return req->route ? req->route->stage_policy[stage] : NULL;
}
