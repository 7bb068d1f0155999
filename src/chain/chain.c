/* chain.c: runs the fixed list of request stages (CONTRACT §3) over a
 * request, keeping the cursor on the request so an asynchronous stage can
 * resume the chain after itself; hands YAML blocks to the stages that own
 * them; keeps per-worker stage state; runs the response side (on_response
 * hooks, body filters) for the sink, and owns per-request stage slots and
 * wait tokens. Never does I/O.
 *
 * DESIGN:
 *   pc_chain_start ─► stage[0] ─NEXT─► stage[1] ─ ... ─► proxy (DONE)
 *                        │WAIT                 ▲
 *                        └─ callback ─ pc_wait_resume(token, NEXT)
 *   sink head ─► pc_chain_response_head: on_response of stage[nran-1..0]
 *   sink body ─► [filter of the highest stage ─► ... ─► sink->filtered]
 * A stage is never re-entered: resume continues at cursor + 1.
 * "match" computes the route first so that validate/acl/auth read the
 * route's policy; "route" reports its 404/405 at step 6, as the contract
 * orders. */
#include "portcullis/chain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/framing.h"
#include "portcullis/errlog.h"
#include "portcullis/metrics.h"
#include "portcullis/util.h"
#include "portcullis/loop.h"

static const pc_stage_ops *const stages[] = {
    &pc_stage_match,     /* route lookup, outcome reported by "route" */
    &pc_stage_validate,  /* 2: limits, content types, JSON schema */
    &pc_stage_acl,       /* 3: allow/deny lists */
    &pc_stage_auth,      /* 4: JWT */
    &pc_stage_signature, /* 4: webhook HMAC of the raw body */
    &pc_stage_ratelimit, /* 5: token buckets (process-wide table) */
    &pc_stage_route,     /* 6: 404 / 405 */
    &pc_stage_compress,  /* 10: response compression (its body filter
                            sits above the producers' in the body flow) */
    &pc_stage_cache,     /* 8: serve stored responses, store (after
                            compress: its filter sees the upstream's
                            bytes, and hits are compressed) */
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

const char *const *pc_chain_stage_names(void)
{
    static const char *names[NSTAGES];
    for (unsigned i = 0; i < NSTAGES; i++)
        names[i] = stages[i]->name;
    return names;
}

static void run(pc_req *req, unsigned from)
{
    if (!req->stages) {
        req->stages = stages;
        req->nstages = NSTAGES;
    }
    const pc_stage_ops *const *table = req->stages;
    pc_metrics_shard *ms = table == stages && req->loop ? req->loop->metrics : NULL;
    /* One clock read per stage: a stage's end is the next one's start. */
    uint64_t t0 = pc_metrics_clock();
    for (unsigned i = from; i < req->nstages; i++) {
        req->stage = i;
        req->nran = i + 1;
        req->stage_ns = t0;
        pc_verdict v = table[i]->on_request(req);
        if (v == PC_WAIT)
            return; /* a callback resumes us; timed until then (stage_waited) */
        uint64_t t1 = pc_metrics_clock();
        pc_metrics_stage(ms, i, t1 - t0); /* req may be gone */
        if (v != PC_NEXT)
            return; /* DONE: answered */
        t0 = t1;
    }
    /* The last stage (proxy) always answers; reaching here is a bug in a
     * stage table edit, answered rather than left hanging. */
    req->sink->error(req, PC_ERR_BAD_GATEWAY, "no stage answered");
}

void pc_chain_start(pc_req *req)
{
    run(req, 0);
}

/* Stage timing (portcullis_stage_duration_seconds, default table only):
 * a stage's on_request call; for a stage that returned PC_WAIT, from that
 * call to the end of its wait, recorded here once (stage_ns cleared). */
static void stage_waited(pc_req *req)
{
    if (req->stage_ns && req->stages == stages && req->loop)
        pc_metrics_stage(req->loop->metrics, req->stage,
                         pc_metrics_clock() - req->stage_ns);
    req->stage_ns = 0;
}

void pc_chain_resume(pc_req *req, pc_verdict v)
{
    stage_waited(req);
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

void pc_chain_worker_init(pc_loop *w)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i]->worker_init)
            w->stage_state[i] = stages[i]->worker_init(w);
}

static void waits_free(pc_loop *w);

void pc_chain_worker_free(pc_loop *w)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (w->stage_state[i] && stages[i]->worker_free) {
            stages[i]->worker_free(w->stage_state[i]);
            w->stage_state[i] = NULL;
        }
    waits_free(w);
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

unsigned pc_chain_index(const pc_stage_ops *s)
{
    for (unsigned i = 0; i < NSTAGES; i++)
        if (stages[i] == s)
            return i;
    pc_log(PC_LOG_ERROR, "stage '%s' is not in the chain's table",
           s && s->name ? s->name : "?");
    abort();
}

/* ---- the response side, slots, waits ------------------------------------
 *
 * DESIGN: nothing here costs a request that no stage asked for it. The
 * per-request state (slots, body filters, the pending wait) is one
 * pc_chain_ext in the request arena, created on first use; req->ext ==
 * NULL is the common case, and every entry point below starts with that
 * check. Wait tokens are checked against a per-worker table of cells
 * (index + generation) that lives as long as the worker, so a stale token
 * never reads the request it names:
 *
 *   stage ─pc_wait_begin─► cell i {req, gen g} ◄── token {i, g, req}
 *   request freed ─► cell i gen g+1 (cancel(req) called) ─► token stale
 *   pc_wait_take(token): cell i still {req, g}? ─► req, cell released */

typedef struct pc_chain_ext {
    void **slot;                   /* [n] */
    const pc_body_filter **filter; /* [n] */
    unsigned n;                    /* stage count of the request's table */
    unsigned nfilters;
    uint32_t slow;                 /* bit per stage: its filter holds bytes */
    unsigned changes_length : 1;   /* a filter re-sizes the body */
    unsigned bodyless : 1;         /* the head said no body follows */
    unsigned head_done : 1;        /* pc_chain_response_head ran */
    uint32_t wait_cell;            /* cell + 1 of the pending wait, or 0 */
    unsigned wait_stage;
    void (*wait_cancel)(pc_req *req, unsigned stage);
} pc_chain_ext;

typedef struct wait_cell {
    pc_req *req;   /* NULL when free */
    uint64_t gen;  /* bumped at every begin and release */
    uint32_t next; /* free list: next free cell + 1 */
} wait_cell;

typedef struct pc_wait_table pc_wait_table;
struct pc_wait_table {
    wait_cell *v;
    uint32_t n, cap;
    uint32_t free; /* first free cell + 1, 0 when none */
};

_Static_assert(PC_STAGE_MAX <= 32, "pc_chain_ext.slow is a 32-bit mask");

static const pc_stage_ops *const *table_of(const pc_req *req)
{
    return req->stages ? req->stages : stages;
}

static pc_chain_ext *ext_of(pc_req *req)
{
    if (req->ext)
        return req->ext;
    unsigned n = req->stages ? req->nstages : NSTAGES;
    pc_chain_ext *x = pc_arena_alloc(req->arena, sizeof *x);
    memset(x, 0, sizeof *x);
    x->n = n > 32 ? 32 : n;
    x->slot = pc_arena_alloc(req->arena, n * sizeof *x->slot);
    memset(x->slot, 0, n * sizeof *x->slot);
    x->filter = pc_arena_alloc(req->arena, n * sizeof *x->filter);
    memset(x->filter, 0, n * sizeof *x->filter);
    req->ext = x;
    return x;
}

void *pc_req_slot(const pc_req *req, unsigned stage)
{
    const pc_chain_ext *x = req->ext;
    return x && stage < x->n ? x->slot[stage] : NULL;
}

void pc_req_set_slot(pc_req *req, unsigned stage, void *value)
{
    pc_chain_ext *x = ext_of(req);
    if (stage < x->n)
        x->slot[stage] = value;
    else
        pc_log(PC_LOG_ERROR, "slot %u out of range (%u stages)", stage, x->n);
}

void pc_chain_response_head(pc_req *req, pc_resp *resp)
{
    for (uint32_t k = 0; k < req->resp_extra.n; k++) {
        const pc_header *h = &req->resp_extra.v[k];
        pc_headers_add(&resp->headers, req->arena, h->name, h->nlen, h->value,
                       h->vlen);
    }
    const pc_stage_ops *const *t = table_of(req);
    for (unsigned i = req->nran; i-- > 0;)
        if (t[i]->on_response)
            t[i]->on_response(req, i, resp);
    pc_chain_ext *x = req->ext;
    if (!x)
        return;
    x->head_done = 1;
    if (!x->nfilters)
        return;
    if (x->changes_length) {
        /* The filters decide the length: chunked (pc_framing_out makes it
         * close-delimited for HTTP/1.0), and no Content-Length on a
         * bodyless response either. */
        if (resp->framing.kind == PC_FRAME_LENGTH)
            resp->framing.kind = PC_FRAME_CHUNKED;
        resp->framing.length = 0;
        resp->framing.has_length = 0;
    }
    x->bodyless = resp->framing.kind == PC_FRAME_NONE ||
                  resp->framing.kind == PC_FRAME_INTERIM;
}

int pc_chain_has_filters(const pc_req *req)
{
    return req->ext && req->ext->nfilters;
}

void pc_body_filter_add(pc_req *req, unsigned slot, const pc_body_filter *f)
{
    pc_chain_ext *x = ext_of(req);
    if (slot >= x->n || x->head_done || x->filter[slot] || !f || !f->filter) {
        pc_log(PC_LOG_ERROR, "body filter of stage %u refused (%s)", slot,
               x->head_done ? "head already sent" : "bad slot or twice");
        return;
    }
    x->filter[slot] = f;
    x->nfilters++;
    if (f->changes_length)
        x->changes_length = 1;
}

/* Hands data to the first filter below stage index `below`, or to the
 * client when there is none. */
static pc_body_status pass(pc_req *req, unsigned below, const char *data,
                           size_t len, int last)
{
    pc_chain_ext *x = req->ext;
    if (x->bodyless)
        return PC_BODY_OK; /* HEAD, 204, 304: nothing may follow the head */
    for (unsigned i = below > x->n ? x->n : below; i-- > 0;) {
        const pc_body_filter *f = x->filter[i];
        if (!f)
            continue;
        pc_body_status st = f->filter(req, i, data, len, last);
        if (st == PC_BODY_SLOW)
            x->slow |= 1u << i;
        else if (last) /* it passed everything on */
            x->slow &= ~(1u << i);
        return st;
    }
    if (len)
        req->sink->filtered(req, data, len);
    return PC_BODY_OK;
}

pc_body_status pc_body_next(pc_req *req, unsigned slot, const char *data,
                            size_t len, int last)
{
    return pass(req, slot, data, len, last);
}

void pc_chain_body(pc_req *req, const char *data, size_t len, int last)
{
    pass(req, req->ext->n, data, len, last);
}

void pc_body_ready(pc_req *req, unsigned slot)
{
    pc_chain_ext *x = req->ext;
    if (!x || slot >= x->n)
        return;
    x->slow &= ~(1u << slot);
    if (!x->slow && req->handler && req->handler->resume &&
        req->sink->backlog(req) <= PC_OUT_LWM)
        req->handler->resume(req);
}

size_t pc_chain_body_held(const pc_req *req)
{
    return req->ext && req->ext->slow ? PC_OUT_HWM + 1 : 0;
}

static void cell_release(pc_wait_table *t, uint32_t i)
{
    wait_cell *c = &t->v[i];
    c->req = NULL;
    c->gen++;
    c->next = t->free;
    t->free = i + 1;
}

pc_wait pc_wait_begin(pc_req *req, void (*cancel)(pc_req *req, unsigned stage))
{
    pc_loop *w = req->loop;
    if (!w->waits)
        w->waits = pc_xcalloc(1, sizeof *w->waits);
    pc_wait_table *t = w->waits;
    pc_chain_ext *x = ext_of(req);
    if (x->wait_cell) { /* a stage bug: one wait at a time */
        pc_log(PC_LOG_ERROR, "stage %u waits twice", req->stage);
        cell_release(t, x->wait_cell - 1);
    }
    uint32_t i;
    if (t->free) {
        i = t->free - 1;
        t->free = t->v[i].next;
    } else {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->v = pc_xrealloc(t->v, t->cap * sizeof *t->v);
        }
        i = t->n++;
        t->v[i].gen = 0;
    }
    wait_cell *c = &t->v[i];
    c->req = req;
    c->gen++;
    c->next = 0;
    x->wait_cell = i + 1;
    x->wait_stage = req->stage;
    x->wait_cancel = cancel;
    return (pc_wait){.tab = t, .req = req, .gen = c->gen, .cell = i};
}

pc_req *pc_wait_take(pc_wait w)
{
    pc_wait_table *t = w.tab;
    if (!t || !w.req || w.cell >= t->n)
        return NULL;
    wait_cell *c = &t->v[w.cell];
    if (c->req != w.req || c->gen != w.gen)
        return NULL; /* released, or the cell serves a newer wait */
    pc_req *req = c->req;
    cell_release(t, w.cell);
    req->ext->wait_cell = 0;
    req->ext->wait_cancel = NULL;
    stage_waited(req); /* the wait ends here, whoever answers next */
    return req;
}

int pc_wait_resume(pc_wait w, pc_verdict v)
{
    pc_req *req = pc_wait_take(w);
    if (!req)
        return 0;
    if (v == PC_NEXT)
        pc_chain_resume(req, PC_NEXT);
    return 1;
}

void pc_chain_req_free(pc_req *req)
{
    pc_chain_ext *x = req->ext;
    if (!x)
        return;
    if (x->wait_cell) {
        /* The cell goes first: a cancel hook that tries to resume finds
         * its token stale. */
        void (*cancel)(pc_req *, unsigned) = x->wait_cancel;
        cell_release(req->loop->waits, x->wait_cell - 1);
        x->wait_cell = 0;
        x->wait_cancel = NULL;
        if (cancel)
            cancel(req, x->wait_stage);
    }
    for (unsigned i = 0; i < x->n; i++)
        if (x->filter[i] && x->filter[i]->release)
            x->filter[i]->release(req, i);
    req->ext = NULL;
}

/* Every request of the worker is gone: no cell is in use. */
static void waits_free(pc_loop *w)
{
    if (!w->waits)
        return;
    free(w->waits->v);
    free(w->waits);
    w->waits = NULL;
}

const pc_stage_hooks pc_chain_config_hooks = {
    .owns_global_key = pc_chain_owns_global_key,
    .owns_route_key = pc_chain_owns_route_key,
    .configure_global = pc_chain_configure_global,
    .configure_route = pc_chain_configure_route,
    .free_global = pc_chain_free_global,
    .free_route = pc_chain_free_route,
    .global_json = pc_chain_global_json,
    .route_json = pc_chain_route_json,
};
