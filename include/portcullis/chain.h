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
 *  - worker_init(l) / worker_free(state): per-loop state (caches), kept
 *    in l->stage_state[index]; called on the loop's own thread or before
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
 *    Before returning PC_WAIT the stage takes a token, w = pc_wait_begin
 *    (req, cancel), and keeps only w (never the bare req) for its
 *    callback, which calls pc_wait_resume(w, PC_NEXT) to go on, or
 *    req = pc_wait_take(w) then answers through req->sink itself. Both do
 *    nothing (NULL / 0) when the request was freed, cancelled or its
 *    memory reused since: the token is checked against a per-worker cell
 *    generation, never by reading the request. If the request ends while
 *    waiting (client gone, timeout, another answer), cancel(req, stage) is
 *    called once, with the request still valid, while it is released.
 *
 * Response side (nginx header/body filters, HAProxy filters): calls still
 * go one way, conn ─► chain ─► proxy; the response comes back through the
 * sink, and the sink calls the chain:
 *  - on_response(req, self, resp): optional. Called for EVERY response
 *    head, proxied (sink->head) or gateway-made (sink->error, a stage that
 *    answers), right before conn serialises it (pc_chain_response_head),
 *    in reverse stage order over the stages that ran for the request
 *    (0..req->nran-1: the one that answered, or waits, included). It may
 *    change resp->status, add/remove resp->headers (arena strings),
 *    record the outcome (a breaker), install a body filter. It must not
 *    call the sink. self is the stage's own index (slots, policies).
 *    resp->framing says how the body will be delimited; a stage never
 *    edits Content-Length / Transfer-Encoding itself (body filters below).
 *  - body filters (pc_body_filter_add, from on_request or on_response,
 *    before the head): the body then flows, in reverse stage order, from
 *    the producer through each filter to the client. Only requests with a
 *    filter pay for it; the rest cost one NULL check (req->ext). A filter
 *    that changes the length (changes_length) turns a Content-Length
 *    response into a chunked one (close-delimited for HTTP/1.0) and drops
 *    Content-Length on bodyless ones (HEAD, 304). Contract of the
 *    filter's hooks: see pc_body_filter below.
 *  - slots: pc_req_slot(req, self) / pc_req_set_slot: one pointer per
 *    stage per request, in the request arena, NULL until set; a stage only
 *    touches its own (self = req->stage in on_request, the index passed to
 *    the other hooks, pc_chain_index(&ops) at configure time).
 *  - req->resp_extra (pc_req_add_resp_header): extra headers added to
 *    whatever response the request gets (WWW-Authenticate, Retry-After).
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
    void *(*worker_init)(pc_loop *l);
    void (*worker_free)(void *state);
    pc_verdict (*on_request)(pc_req *req);
    void (*on_response)(pc_req *req, unsigned self, pc_resp *resp);
} pc_stage_ops;

/* From front/conn once the request head is complete and valid. Runs
 * req->stages when set (tests), else the table below. */
void pc_chain_start(pc_req *req);
/* Continues after the stage at req->stage; only from a callback that got
 * the request back from pc_wait_take. */
void pc_chain_resume(pc_req *req, pc_verdict v);

/* ---- waiting (asynchronous stages) ---------------------------------- */

/* A token for a request waiting on something asynchronous. Plain value,
 * copy it freely; it owns nothing. */
typedef struct pc_wait {
    struct pc_wait_table *tab; /* the worker's cells */
    pc_req *req;               /* never read before the cell says so */
    uint64_t gen;
    uint32_t cell;
} pc_wait;

/* From on_request of the stage at req->stage, right before it returns
 * PC_WAIT. cancel (may be NULL) is called if the request is released
 * while waiting. One wait at a time per request. Never fails (the cell
 * table grows with pc_xrealloc, amortised, not per request). */
pc_wait pc_wait_begin(pc_req *req, void (*cancel)(pc_req *req, unsigned stage));
/* The request, when w is still current: the wait is settled (cancel will
 * not be called) and the caller continues it (pc_chain_resume, or answer
 * through req->sink). NULL when the request was released or a newer wait
 * uses the cell: the caller frees its own state and touches nothing else.
 * On the request's worker thread only. */
pc_req *pc_wait_take(pc_wait w);
/* pc_wait_take, then pc_chain_resume(req, PC_NEXT) when v is PC_NEXT
 * (PC_DONE: only settles; the caller answered or will answer through a
 * request it got otherwise, never after release). 1 when the request was
 * still there, 0 for a stale token (a no-op). */
int pc_wait_resume(pc_wait w, pc_verdict v);

/* ---- the response side ---------------------------------------------- */

/* The sink calls this right before serialising any response head
 * (proxied or gateway-made): appends req->resp_extra to resp->headers,
 * runs on_response of the stages that ran, in reverse order, then applies
 * the body filters' framing needs (see above). Once per request. */
void pc_chain_response_head(pc_req *req, pc_resp *resp);

/* Per-request stage slots (request arena; NULL until set). */
void *pc_req_slot(const pc_req *req, unsigned stage);
void pc_req_set_slot(pc_req *req, unsigned stage, void *value);

typedef enum { PC_BODY_OK = 0, PC_BODY_SLOW = 1 } pc_body_status;

/* Contract of a body filter (one per stage per request):
 *  - filter(req, slot, data, len, last): data is borrowed for the call
 *    (copy what you keep). Output goes only through pc_body_next(req,
 *    slot, ...), any number of times, synchronously or later from the
 *    filter's own callback (while the response is not complete). last is
 *    1 exactly once, at the end (len may be 0, data then NULL): the filter then passes
 *    everything it holds and calls pc_body_next(..., last = 1) itself,
 *    before returning. Returning PC_BODY_SLOW says "I hold bytes, slow
 *    down": the sink's backlog reports over PC_OUT_HWM (the producer
 *    pauses as for a full client socket) until the filter calls
 *    pc_body_ready(req, slot). Never calls the sink itself.
 *  - release(req, slot): optional; the request is being freed (after
 *    last, or without it when the response was aborted or the client
 *    left): free what the filter allocated. Nothing else may be called.
 *  - changes_length: the filter may emit a different number of bytes than
 *    it gets (compression): the response is re-framed before its head. */
typedef struct pc_body_filter {
    pc_body_status (*filter)(pc_req *req, unsigned slot, const char *data,
                             size_t len, int last);
    void (*release)(pc_req *req, unsigned slot);
    int changes_length;
} pc_body_filter;

/* Installs f (static storage) as the body filter of stage slot for this
 * request; state goes in the stage's slot. Before the head is sent
 * (on_request or on_response); later, or a second filter for the same
 * slot, is a bug: logged and ignored. */
void pc_body_filter_add(pc_req *req, unsigned slot, const pc_body_filter *f);
/* From the filter of stage slot: hands its output to the next filter
 * downstream (a lower stage index), or to the client (sink->filtered). */
pc_body_status pc_body_next(pc_req *req, unsigned slot, const char *data,
                            size_t len, int last);
/* The filter of slot can take more: the producer is resumed
 * (req->handler->resume) once no filter is slow and the client's output
 * is below PC_OUT_LWM. */
void pc_body_ready(pc_req *req, unsigned slot);

/* For sinks: 1 when the request has body filters (then body bytes go to
 * pc_chain_body, which ends in sink->filtered). Inline: the common case
 * is the NULL check. */
int pc_chain_has_filters(const pc_req *req);
static inline int pc_chain_filtering(const pc_req *req)
{
    return req->ext != NULL && pc_chain_has_filters(req);
}
/* For sinks: the response body into the filters; last = 1 once, at the
 * end of the body (before the sink's own end of message). */
void pc_chain_body(pc_req *req, const char *data, size_t len, int last);
/* For sinks: added to the sink's backlog: 0, or over PC_OUT_HWM while a
 * filter is slow. */
size_t pc_chain_body_held(const pc_req *req);
/* For the request's owner, right before its arena is freed: cancels a
 * pending wait (its cancel hook), releases body filters. A NULL check
 * when no stage used slots, filters or waits. */
void pc_chain_req_free(pc_req *req);

/* The stage table, in CONTRACT §3 order. */
unsigned pc_chain_nstages(void);
const pc_stage_ops *pc_chain_stage(unsigned i);
/* The stages' names in table order (a static array of pc_chain_nstages()
 * entries; fill it from one thread before others read it). */
const char *const *pc_chain_stage_names(void);
/* The index of stage s in the table (its slot, its policies'
 * index in cfg->stage_global / route->stage_policy). */
unsigned pc_chain_index(const pc_stage_ops *s);
/* 1 when key is a top-level / route-level key owned by a stage. */
int pc_chain_owns_global_key(const char *key);
int pc_chain_owns_route_key(const char *key);

/* Config loader hooks (config/config*.c). */
void pc_chain_configure_global(pc_config *c, const pc_node *root,
                               pc_errors *err);
void pc_chain_configure_route(pc_config *c, pc_route *r, const pc_node *n,
                              pc_errors *err);
void pc_chain_free_global(pc_config *c);
void pc_chain_free_route(pc_route *r);

/* The above as the loader's callback table (config.h). */
extern const pc_stage_hooks pc_chain_config_hooks;

/* Adds every stage block of the generation / of a route to obj under its
 * key (for GET /admin/config). */
void pc_chain_global_json(const pc_config *c, json_t *obj);
void pc_chain_route_json(const pc_route *r, json_t *obj);

/* Worker hooks (core/worker.c). */
void pc_chain_worker_init(pc_loop *l);
void pc_chain_worker_free(pc_loop *l);

/* The policy a stage applies to req: the route's own block, else the
 * global one (CONTRACT §2: "a route's own block replaces the global one"). */
const void *pc_chain_policy(const pc_req *req, unsigned stage);
/* Only the route's block (stages whose global block is not a policy). */
const void *pc_chain_route_policy(const pc_req *req, unsigned stage);

/* Reads the whole request body into req->body (at most req->max_body
 * bytes, enforced by conn while streaming), then calls done(w) from the
 * event loop with the wait token it took for the calling stage; done gets
 * the request back with pc_wait_take(w). Returns PC_NEXT when there is no
 * body or it is already buffered, PC_WAIT otherwise. Used by the stages
 * the contract lets see the body (json_schema, verify_signature). */
pc_verdict pc_chain_buffer_body(pc_req *req, void (*done)(pc_wait w));

/* The claim the rate_limit policy in force for req keys by (its
 * `claim:NAME`), or NULL. The auth stage, after verifying a token, then
 * stores that claim's text (arena) in its own slot for rate_limit, which
 * reads it there (chain/ratelimit.c); the claims object itself is not
 * kept past auth. */
const char *pc_ratelimit_claim(const pc_req *req);
/* The Lua text `scope: cluster` sends (EVALSHA / EVAL): one decision,
 * KEYS[1] the bucket, ARGV rate, per (us), cap (burst x per); returns
 * {allowed 0|1, deficit units}. For tests. */
const char *pc_ratelimit_script(void);

/* Cancels the background revalidations the cache stage runs on loop l
 * (chain/cache.c, stale-while-revalidate); the worker calls it before it
 * frees its upstream pools. */
void pc_cache_worker_stop(pc_loop *l);

/* The stages (one file each in src/chain/). */
extern const pc_stage_ops pc_stage_match;
extern const pc_stage_ops pc_stage_validate;
extern const pc_stage_ops pc_stage_acl;
extern const pc_stage_ops pc_stage_auth;
extern const pc_stage_ops pc_stage_signature;
extern const pc_stage_ops pc_stage_ratelimit;
extern const pc_stage_ops pc_stage_route;
extern const pc_stage_ops pc_stage_compress;
extern const pc_stage_ops pc_stage_cache;
extern const pc_stage_ops pc_stage_proxy;

#endif
