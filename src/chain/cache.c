/* cache.c: the cache stage (CONTRACT §2 `cache`, §3 step 8, §4): a shared
 * HTTP cache per RFC 9111 in front of the proxy stage, with the memory
 * store of lib/cache_store.c (process-wide, shared by every worker, kept
 * across reloads) and the rules of lib/cache_rules.c.
 *
 * Stage table position: after compress, before proxy. Its body filter
 * therefore sees the upstream's bytes (what is stored), and a hit's body
 * still flows through compress's filter, which keeps each coding it makes
 * with the object (resp->codings): a hit in a stored coding is sent as
 * it is, never encoded again.
 *
 *   on_request ─ method not in `methods` ─────────────────► BYPASS, NEXT
 *              ─ lookup(key, Vary) ─ usable ─► serve (HIT, Age) ─► DONE
 *                    │ stale within stale-while-revalidate ─► serve stale
 *                    │   (HIT); the first such request also starts one
 *                    │   background revalidation (a request of the stage's
 *                    │   own, bg_start, with no client)
 *                    ├ stale / no-cache with validators ─► conditional
 *                    │   request (If-None-Match / If-Modified-Since) ─► NEXT
 *                    └ nothing ─ only-if-cached ─► 504 ─► DONE
 *                              ─ collapse: leader ─► NEXT (MISS)
 *                                          waiter ─► WAIT ─► woken: lookup
 *                                             again: HIT, or go upstream
 *   on_response ─ 304 to our conditional ─► stored headers refreshed
 *                   (§4.3.4), the stored body served (HIT)
 *               ─ 5xx / gateway error, stale-if-error window ─► stale (HIT)
 *               ─ storable (§3) ─► the body filter copies the body; at
 *                   its end the object is inserted, the waiters woken
 *               ─ unsafe method, 2xx/3xx ─► invalidate (§4.4)
 *
 * Deviations and choices (docs/configuration.md): responses with
 * Set-Cookie are never stored; the route's `ttl` is the heuristic
 * freshness (§4.2.2) for heuristically cacheable statuses without
 * explicit freshness; qualified no-cache / private are treated as
 * unqualified.
 *
 * store: redis adds a second level shared by instances (see "store:
 * redis" below): a leader's local miss asks Redis before going upstream;
 * stored objects are written there too; Redis failing is a miss. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "portcullis/cache_store.h"
#include "portcullis/chain.h"
#include "portcullis/errlog.h"
#include "portcullis/framing.h"
#include "portcullis/headers.h"
#include "portcullis/loop.h"
#include "portcullis/metrics.h"
#include "portcullis/proxy.h"
#include "portcullis/redis.h"
#include "portcullis/util.h"

#define DEFAULT_MEMORY (64ull << 20)
#define DEFAULT_MAX_OBJECT (1ull << 20)
#define MAX_VARY 8
#define VARY_VALUE_MAX 512
#define MAX_TTL_S (10ull * 365 * 86400)
/* stored bodies from this size on are sent by reference, not copied */
#define ZERO_COPY_MIN 2048

/* store: redis: objects whose Redis form is larger stay local only; a
 * Redis entry lives at most this long (the freshness left plus the
 * stale-while-revalidate / stale-if-error windows, capped). */
#define REDIS_MAX_OBJECT (256u << 10)
#define REDIS_MAX_TTL_S 86400LL

typedef struct ca_global {
    uint64_t memory;
    int redis; /* store: redis */
} ca_global;

typedef struct ca_policy {
    uint64_t ttl_s;
    uint32_t methods; /* PC_M_GET | PC_M_HEAD */
    uint64_t max_object;
} ca_policy;

enum { R_NONE, R_HIT, R_MISS, R_BYPASS };
static const char *const result_text[] = {NULL, "HIT", "MISS", "BYPASS"};

typedef struct ca_waiter {
    pc_cache_waiter w;
    struct event *ev;      /* on the waiter's loop */
    pc_wait tok;
    uint64_t hash;
    pthread_mutex_t mu;    /* wake vs. the waiter's loop freeing ev */
    int gone;              /* ev freed: wake does nothing */
    _Atomic int refs;      /* the flight's and the request's */
} ca_waiter;

typedef struct ca_slot {
    unsigned self;
    int result;
    const ca_policy *pol;
    pc_cc rcc;            /* request Cache-Control */
    char *key;            /* arena */
    size_t klen;
    uint64_t hash;
    long long req_time;
    unsigned unsafe : 1;  /* invalidate on success (§4.4) */
    unsigned cond : 1;    /* we added validators to the request */
    unsigned leader : 1;  /* leads a collapsed flight */
    unsigned storing : 1; /* the body filter collects the body */
    unsigned hit : 1;     /* served from the store by on_request */
    unsigned bg : 1;      /* a background revalidation (no client) */
    pc_cobj *stale;       /* a stored object not served as it is */
    pc_cobj *swr;         /* stale-while-revalidate: we revalidate it */
    pc_cobj *pending;     /* the object being filled */
    pc_cobj *replace;     /* served instead of the upstream's body */
    const pc_cobj *serving; /* serve(): the object answering (borrowed) */
    pc_cobj *stored;      /* the object this miss stored (its codings) */
    const pc_cbody *coded; /* the body taken in a content coding */
    pc_body_codings offer; /* resp->codings of a hit or a stored miss */
    char *buf;            /* body being collected (malloc) */
    size_t len, cap;
    ca_waiter *waiter;
} ca_slot;

static uint64_t budget_of(const pc_req *req)
{
    unsigned self = pc_chain_index(&pc_stage_cache);
    const ca_global *g = req->cfg ? req->cfg->stage_global[self] : NULL;
    return g ? g->memory : DEFAULT_MEMORY;
}

/* ---- configuration ---------------------------------------------------- */

static void *ca_configure_global(const pc_node *n, pc_config *cfg,
                                 pc_errors *err)
{
    static const char *const keys[] = {"memory", "store", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "cache", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "cache", err);
    ca_global *g = pc_xcalloc(1, sizeof *g);
    g->memory = DEFAULT_MEMORY;
    const pc_node *v;
    if ((v = pc_node_get(n, "memory")) &&
        pc_node_size(v, "memory", &g->memory, err) == 0 &&
        (g->memory < 65536 || g->memory > (1ull << 40)))
        pc_errors_add(err, v, "cache: 'memory' out of range 64k..1t");
    if ((v = pc_node_get(n, "store"))) {
        char *s = NULL;
        if (pc_node_str(v, "store", &s, err) == 0) {
            if (!strcmp(s, "redis")) {
                g->redis = 1;
                if (!cfg->redis)
                    pc_errors_add(err, v,
                                  "cache: 'store: redis' needs the top-level "
                                  "'redis' block");
            } else if (strcmp(s, "memory"))
                pc_errors_add(err, v, "invalid store '%s' (memory | redis)",
                              s);
            free(s);
        }
    }
    if (err->n != before) {
        free(g);
        return NULL;
    }
    return g;
}

static json_t *ca_global_json(const void *p)
{
    const ca_global *g = p;
    return json_pack("{s:I,s:s}", "memory", (json_int_t)g->memory, "store",
                     g->redis ? "redis" : "memory");
}

static void *ca_configure_route(const pc_node *n, pc_config *cfg, pc_route *r,
                                pc_errors *err)
{
    (void)cfg;
    (void)r;
    static const char *const keys[] = {"ttl", "methods", "max_object_bytes",
                                       NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "cache", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "cache", err);
    ca_policy *c = pc_xcalloc(1, sizeof *c);
    c->methods = PC_M_GET | PC_M_HEAD;
    c->max_object = DEFAULT_MAX_OBJECT;
    const pc_node *v;
    uint64_t ms;
    if ((v = pc_node_get(n, "ttl")) &&
        pc_node_duration(v, "ttl", &ms, err) == 0) {
        if (ms % 1000 || ms / 1000 > MAX_TTL_S)
            pc_errors_add(err, v,
                          "cache: 'ttl' must be whole seconds, at most 3650d");
        else
            c->ttl_s = ms / 1000;
    }
    if ((v = pc_node_get(n, "methods")) &&
        pc_node_expect_seq(v, "methods", err) == 0) {
        c->methods = 0;
        if (v->n == 0)
            pc_errors_add(err, v, "cache: 'methods' needs GET and/or HEAD");
        for (size_t i = 0; i < v->n; i++) {
            char *m = NULL;
            if (pc_node_str(v->vals[i], "methods", &m, err) < 0)
                continue;
            if (!strcmp(m, "GET"))
                c->methods |= PC_M_GET;
            else if (!strcmp(m, "HEAD"))
                c->methods |= PC_M_HEAD;
            else
                pc_errors_add(err, v->vals[i],
                              "cache: method '%s' is not cacheable here (GET, "
                              "HEAD)", m);
            free(m);
        }
    }
    if ((v = pc_node_get(n, "max_object_bytes")) &&
        pc_node_size(v, "max_object_bytes", &c->max_object, err) == 0 &&
        (c->max_object < 1 || c->max_object > (1ull << 30)))
        pc_errors_add(err, v, "cache: 'max_object_bytes' out of range 1..1g");
    if (err->n != before) {
        free(c);
        return NULL;
    }
    return c;
}

static json_t *ca_route_json(const void *p)
{
    const ca_policy *c = p;
    json_t *m = json_array();
    if (c->methods & PC_M_GET)
        json_array_append_new(m, json_string("GET"));
    if (c->methods & PC_M_HEAD)
        json_array_append_new(m, json_string("HEAD"));
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%llus", (unsigned long long)c->ttl_s);
    return json_pack("{s:s,s:o,s:I}", "ttl", ttl, "methods", m,
                     "max_object_bytes", (json_int_t)c->max_object);
}

/* ---- helpers ---------------------------------------------------------- */

static long long now_s(void)
{
    return (long long)time(NULL);
}

static int is_name(const pc_header *h, const char *name)
{
    return pc_strieq(h->name, h->nlen, name, strlen(name));
}

static void cc_of(const pc_headers *hs, pc_cc *cc)
{
    pc_cc_init(cc);
    for (uint32_t i = 0; i < hs->n; i++)
        if (is_name(&hs->v[i], "cache-control"))
            pc_cc_parse(cc, hs->v[i].value, hs->v[i].vlen);
}

/* The normalised value of request header name (Vary). */
static int vary_value(const pc_req *req, const char *name, char *out,
                      size_t cap)
{
    const char *vals[16];
    size_t lens[16], n = 0;
    for (uint32_t i = 0; i < req->headers.n && n < 16; i++)
        if (is_name(&req->headers.v[i], name)) {
            vals[n] = req->headers.v[i].value;
            lens[n++] = req->headers.v[i].vlen;
        }
    return pc_cache_vary_norm(name, vals, lens, n, out, cap);
}

static int vary_match(const pc_cobj *o, void *ctx)
{
    const pc_req *req = ctx;
    char buf[VARY_VALUE_MAX];
    for (uint32_t i = 0; i < o->nvary; i++)
        if (vary_value(req, o->vary_names[i], buf, sizeof buf) < 0 ||
            strcmp(buf, o->vary_vals[i]) != 0)
            return 0;
    return 1;
}

static int unsafe_method(uint32_t bit)
{
    return !(bit & (PC_M_GET | PC_M_HEAD | PC_M_OPTIONS | PC_M_TRACE));
}

/* key: lower-case host, path, "?query" */
static char *make_key(pc_req *req, const char *host, const char *path,
                      size_t pathlen, const char *query, size_t *klen)
{
    size_t hl = host ? strlen(host) : 0, ql = query ? strlen(query) + 1 : 0;
    char *k = pc_arena_alloc(req->arena, hl + 1 + pathlen + ql + 1);
    size_t o = 0;
    for (size_t i = 0; i < hl; i++)
        k[o++] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32
                                                          : host[i]);
    k[o++] = ' ';
    memcpy(k + o, path, pathlen);
    o += pathlen;
    if (query) {
        k[o++] = '?';
        memcpy(k + o, query, ql - 1);
        o += ql - 1;
    }
    k[o] = '\0';
    *klen = o;
    return k;
}

/* Content-Length / framing for serving n stored bytes. */
static void set_framing(const pc_req *req, pc_resp *resp, size_t n)
{
    memset(&resp->framing, 0, sizeof resp->framing);
    if (req->method_bit & PC_M_HEAD) {
        resp->framing.kind = PC_FRAME_NONE;
        resp->framing.has_length = 1;
    } else {
        resp->framing.kind = PC_FRAME_LENGTH;
    }
    resp->framing.length = n;
}

static void add_age(pc_req *req, pc_resp *resp, const pc_cobj *o)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", pc_cache_current_age(&o->t, now_s()));
    pc_headers_remove(&resp->headers, "Age");
    pc_headers_add(&resp->headers, req->arena, "Age", 3, v, strlen(v));
}

/* resp's head becomes o's (status, headers, Age, framing); extras: the
 * request's extra headers are appended again (on_response replaces a head
 * pc_chain_response_head already extended). */
static void head_of(pc_req *req, pc_resp *resp, const pc_cobj *o, int extras)
{
    resp->status = o->status;
    resp->reason = NULL;
    memset(&resp->headers, 0, sizeof resp->headers);
    for (uint32_t i = 0; i < o->nhdrs; i++)
        pc_headers_add(&resp->headers, req->arena, o->hdrs[i].name,
                       o->hdrs[i].nlen, o->hdrs[i].value, o->hdrs[i].vlen);
    if (extras)
        for (uint32_t k = 0; k < req->resp_extra.n; k++) {
            const pc_header *h = &req->resp_extra.v[k];
            pc_headers_add(&resp->headers, req->arena, h->name, h->nlen,
                           h->value, h->vlen);
        }
    add_age(req, resp, o);
    set_framing(req, resp, o->body ? o->body->len : 0);
}

/* The entity-tag of an If-None-Match element without W/ (weak
 * comparison, RFC 9110 §8.8.3.2). */
static int etag_eq(const char *a, size_t al, const char *b, size_t bl)
{
    if (al >= 2 && a[0] == 'W' && a[1] == '/')
        a += 2, al -= 2;
    if (bl >= 2 && b[0] == 'W' && b[1] == '/')
        b += 2, bl -= 2;
    return al == bl && memcmp(a, b, al) == 0;
}

/* RFC 9111 §4.3.2: the client's own conditions evaluated against the
 * stored response (If-None-Match first, else If-Modified-Since). */
static int not_modified(const pc_req *req, const pc_cobj *o)
{
    const char *inm = pc_req_header(req, "if-none-match");
    if (inm) {
        if (!o->etag)
            return 0;
        const char *p = inm;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (!*p)
                break;
            const char *e = p;
            if (*e == 'W' && e[1] == '/')
                e += 2;
            if (*e == '"') {
                e = strchr(e + 1, '"');
                e = e ? e + 1 : p + strlen(p);
            } else {
                e += strcspn(e, ", \t");
            }
            if ((e - p == 1 && *p == '*') ||
                etag_eq(p, (size_t)(e - p), o->etag, strlen(o->etag)))
                return 1;
            p = e;
        }
        return 0;
    }
    const char *ims = pc_req_header(req, "if-modified-since");
    if (!ims || !o->last_modified)
        return 0;
    long long since = pc_http_date_parse(ims, strlen(ims));
    long long lm = pc_http_date_parse(o->last_modified,
                                      strlen(o->last_modified));
    return since >= 0 && lm >= 0 && lm <= since;
}

/* ---- stored content codings -------------------------------------------
 *
 * The compress stage (after this one in the response's direction) takes
 * a body it would encode from the object being served when the object
 * holds it in that coding, and hands back what it encoded otherwise
 * (pc_body_codings, http.h). The object answering: a hit's (serve), the
 * refreshed or stale one served instead of the upstream's body
 * (replace), or the one this miss stored (stored, set at the body's end,
 * before compress's filter sees the end). */

static const pc_cobj *coded_obj(const ca_slot *s)
{
    return s->serving ? s->serving : s->replace ? s->replace : s->stored;
}

static const char *codings_take(pc_req *req, void *ctx, unsigned coding,
                                size_t *len)
{
    (void)req;
    ca_slot *s = ctx;
    const pc_cobj *o = s->serving ? s->serving : s->replace;
    const pc_cbody *b = o ? pc_cache_obj_coded(o, coding) : NULL;
    if (!b)
        return NULL;
    s->coded = b;
    *len = b->len;
    return b->data;
}

static void codings_keep(pc_req *req, void *ctx, unsigned coding,
                         const char *data, size_t len)
{
    ca_slot *s = ctx;
    pc_cobj *o = (pc_cobj *)coded_obj(s);
    if (!o)
        return;
    pc_cbody *b = pc_cache_body_new(data, len);
    pc_cache_obj_add_coded(o, coding, b, budget_of(req));
    pc_cache_body_unref(b);
}

/* Offers the codings of the object answering with resp's head. */
static void offer(ca_slot *s, pc_resp *resp)
{
    const pc_cobj *o = coded_obj(s);
    size_t n = o && o->body ? o->body->len : s->pol->max_object;
    s->offer.take = codings_take;
    s->offer.keep = codings_keep;
    /* an encoding that grows the body past this is not kept */
    s->offer.keep_max = n + n / 8 + 1024;
    s->offer.ctx = s;
    resp->codings = &s->offer;
}

static void body_unref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    pc_cache_body_unref(arg);
}

/* Sends a stored body. Without body filters (nothing re-encodes it on
 * the way) a large one is not copied: the output buffer references the
 * stored block, which holds a reference until the bytes are written (an
 * eviction or purge meanwhile frees nothing). Small ones are copied:
 * cheaper than a chain of their own. */
static void send_body(pc_req *req, const pc_cbody *b)
{
    if (b->len >= ZERO_COPY_MIN && !pc_chain_has_filters(req) &&
        req->sink->body_move) {
        struct evbuffer *buf = evbuffer_new();
        pc_cbody *mb = (pc_cbody *)b; /* the count only */
        atomic_fetch_add_explicit(&mb->refs, 1, memory_order_relaxed);
        if (buf && evbuffer_add_reference(buf, b->data, b->len, body_unref,
                                          mb) == 0) {
            req->sink->body_move(req, buf, b->len);
            evbuffer_free(buf);
            return;
        }
        pc_cache_body_unref(mb);
        if (buf)
            evbuffer_free(buf);
    }
    req->sink->body(req, b->data, b->len);
}

/* Answers req from o (a reference the caller keeps until this returns).
 * req is gone afterwards. */
static void serve(pc_req *req, ca_slot *s, const pc_cobj *o)
{
    pc_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.http_minor = 1;
    head_of(req, &resp, o, 0);
    s->serving = o;
    s->result = R_HIT;
    s->hit = 1;
    if (o->status == 200 && not_modified(req, o)) {
        resp.status = 304; /* §4.3.2; RFC 9110 §15.4.5: no body */
        memset(&resp.framing, 0, sizeof resp.framing);
        pc_headers_remove(&resp.headers, "Content-Type");
        req->sink->head(req, &resp);
        req->sink->end(req);
        return;
    }
    req->sink->head(req, &resp);
    if (req->method_bit & PC_M_HEAD)
        ;
    else if (s->coded)
        send_body(req, s->coded);
    else if (o->body && o->body->len)
        send_body(req, o->body);
    req->sink->end(req);
}

typedef enum { U_NO, U_YES, U_SWR_OTHER, U_SWR_LEAD } usable;

/* RFC 9111 §4.2, §4.2.4 and §5.2.1: may o answer this request as it is? */
static usable judge(const ca_slot *s, pc_cobj *o, long long now)
{
    const pc_cc *r = &s->rcc;
    long long age = pc_cache_current_age(&o->t, now);
    if (r->max_age != PC_CC_ABSENT && age > r->max_age)
        return U_NO;
    if (o->no_cache)
        return U_NO; /* §5.2.2.4: always validated */
    long long left = o->lifetime - age;
    if (left > 0) {
        if (r->min_fresh != PC_CC_ABSENT && left < r->min_fresh)
            return U_NO;
        return U_YES;
    }
    if (o->must_revalidate)
        return U_NO; /* §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10 */
    long long stale = -left;
    if (r->max_stale_any ||
        (r->max_stale != PC_CC_ABSENT && stale <= r->max_stale))
        return U_YES; /* §5.2.1.2 */
    if (o->swr >= 0 && stale <= o->swr) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&o->revalidating, &expect, 1))
            return U_SWR_LEAD;
        return U_SWR_OTHER; /* RFC 5861 §3 */
    }
    return U_NO;
}

/* ---- collapsing -------------------------------------------------------
 *
 * A waiter record has two references: the flight's (dropped by wake, or
 * by cancel when it takes the record out of the queue itself) and the
 * waiting request's (dropped by the event callback, or by cancel). Its
 * event belongs to the waiter's loop and is freed only there; the
 * record's mutex orders wake (another worker's thread: event_active) with
 * cancel / the callback (event_free), so that a waiter whose client left
 * is freed at once, even after the leader handed it over, and a forced
 * stop leaks nothing. */

static void waiter_cb(evutil_socket_t fd, short what, void *arg);

static void waiter_unref(ca_waiter *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void waiter_wake(pc_cache_waiter *pw)
{
    ca_waiter *w = (ca_waiter *)pw;
    pthread_mutex_lock(&w->mu);
    if (!w->gone)
        event_active(w->ev, EV_READ, 0); /* thread-safe: evthread */
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w); /* the flight's reference */
}

/* On the waiter's loop: no wake may touch the event any more; frees it. */
static void waiter_detach(ca_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->gone = 1;
    pthread_mutex_unlock(&w->mu);
    event_free(w->ev); /* a pending activation goes with it */
    w->ev = NULL;
}

static void waiter_cancel(pc_req *req, unsigned stage)
{
    ca_slot *s = pc_req_slot(req, stage);
    if (!s || !s->waiter)
        return;
    ca_waiter *w = s->waiter;
    s->waiter = NULL;
    if (pc_cache_flight_leave(&w->w, w->hash))
        waiter_unref(w); /* still queued: the flight's reference is ours */
    waiter_detach(w);
    waiter_unref(w);
}

static void waiter_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ca_waiter *w = arg;
    pc_req *req = pc_wait_take(w->tok);
    waiter_detach(w);
    waiter_unref(w);
    if (!req)
        return; /* (cancel frees the event first: not expected) */
    unsigned self = pc_chain_index(&pc_stage_cache);
    ca_slot *s = pc_req_slot(req, self);
    s->waiter = NULL;
    pc_cobj *o = pc_cache_lookup(s->key, s->klen, s->hash, vary_match, req);
    if (o && judge(s, o, now_s()) == U_YES) {
        serve(req, s, o);
        pc_cache_obj_unref(o);
        return;
    }
    pc_cache_obj_unref(o);
    /* not storable, or not usable for this request: go upstream */
    pc_chain_resume(req, PC_NEXT);
}

/* ---- the body filter -------------------------------------------------- */

static void finish_flight(ca_slot *s)
{
    if (s->leader) {
        s->leader = 0;
        pc_cache_flight_done(s->key, s->klen, s->hash);
    }
}

static void stop_storing(ca_slot *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
    s->storing = 0;
    pc_cache_obj_unref(s->pending);
    s->pending = NULL;
}

/* ---- store: redis ------------------------------------------------------
 *
 * The memory store stays the first level; Redis (the worker's client,
 * net/redis.c, shared by every instance) is the second. One entry per
 * cache key, `{pc:c:<16 hex digits of the key's hash>}` (a hash tag: one
 * slot), holding the last stored variant (pc_cache_obj_encode; the key
 * itself is inside and checked, and the Vary values are matched as for
 * the memory store). A local miss that leads its collapsed flight asks
 * Redis (GET) before going upstream; a usable entry is inserted into the
 * memory store, served (HIT) and wakes the flight's waiters. A stored
 * object is written with SET PX (freshness left + stale windows, at most
 * REDIS_MAX_TTL_S) unless its Redis form is over REDIS_MAX_OBJECT. Every
 * Redis failure (down, timeout, error reply, corrupt entry) is a miss:
 * the cache never answers an error because of Redis. */

static const char GET_SCRIPT[] = "return redis.call('GET', KEYS[1])";
static const char SET_SCRIPT[] =
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";
static const char DEL_SCRIPT[] = "return redis.call('DEL', KEYS[1])";
static pc_redis_script get_script, set_script, del_script;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    pc_redis_script_init(&get_script, GET_SCRIPT);
    pc_redis_script_init(&set_script, SET_SCRIPT);
    pc_redis_script_init(&del_script, DEL_SCRIPT);
}

static pc_redis *redis_of(const pc_req *req)
{
    unsigned self = pc_chain_index(&pc_stage_cache);
    const ca_global *g = req->cfg ? req->cfg->stage_global[self] : NULL;
    if (!g || !g->redis || !req->loop || !req->loop->redis)
        return NULL;
    pthread_once(&scripts_once, scripts_init);
    return req->loop->redis;
}

#define RKEY_MAX 32
static size_t redis_key(uint64_t hash, char *out)
{
    return (size_t)snprintf(out, RKEY_MAX, "{pc:c:%016llx}",
                            (unsigned long long)hash);
}

static void redis_ignore(void *ctx, pc_redis_status st,
                         const struct redisReply *rep)
{
    (void)ctx;
    (void)st;
    (void)rep; /* best effort: a lost write is a later miss */
}

static void redis_put(pc_req *req, const pc_cobj *o)
{
    pc_redis *rc = redis_of(req);
    if (!rc)
        return;
    long long win = o->swr > o->sie ? o->swr : o->sie;
    long long ttl = o->lifetime - pc_cache_current_age(&o->t, now_s()) +
                    (win > 0 ? win : 0);
    if (ttl <= 0)
        return; /* stale already: kept locally for revalidation only */
    if (ttl > REDIS_MAX_TTL_S)
        ttl = REDIS_MAX_TTL_S;
    size_t len;
    char *v = pc_cache_obj_encode(o, &len);
    if (len <= REDIS_MAX_OBJECT) {
        char key[RKEY_MAX], px[24];
        size_t klen = redis_key(o->hash, key);
        const char *args[2] = {v, px};
        size_t lens[2] = {len, (size_t)snprintf(px, sizeof px, "%lld",
                                                ttl * 1000)};
        char nothing = 0;
        (void)pc_redis_eval(rc, &set_script, key, klen, 2, args, lens,
                            redis_ignore, &nothing, 0);
    }
    free(v);
}

static void redis_del(pc_req *req, uint64_t hash)
{
    pc_redis *rc = redis_of(req);
    if (!rc)
        return;
    char key[RKEY_MAX], nothing = 0;
    size_t klen = redis_key(hash, key);
    (void)pc_redis_eval(rc, &del_script, key, klen, 0, NULL, NULL,
                        redis_ignore, &nothing, 0);
}

static void conditional(pc_req *req, ca_slot *s);

static void redis_got(void *ctx, pc_redis_status st,
                      const struct redisReply *rep)
{
    pc_wait w;
    memcpy(&w, ctx, sizeof w);
    pc_req *req = pc_wait_take(w);
    if (!req)
        return; /* released meanwhile: its release ended the flight */
    ca_slot *s = pc_req_slot(req, pc_chain_index(&pc_stage_cache));
    pc_cobj *o = NULL;
    if (st == PC_REDIS_OK && rep && rep->type == REDIS_REPLY_STRING) {
        o = pc_cache_obj_decode(rep->str, rep->len, s->key, s->klen,
                                req->route ? req->route->name : "",
                                req->path);
        if (!o)
            pc_log(PC_LOG_WARN, "cache: a corrupt entry in redis (a miss)");
        else if (pc_cache_purged(o->route, o->path, o->t.response_time)) {
            pc_cache_obj_unref(o); /* stored before a purge: a miss, */
            o = NULL;
            redis_del(req, s->hash); /* and gone for every instance */
        }
    }
    if (o) {
        pc_cache_insert(o, budget_of(req)); /* the first level from now on */
        if (vary_match(o, req)) {
            usable u = judge(s, o, now_s());
            if (u == U_YES || u == U_SWR_OTHER) {
                finish_flight(s); /* the waiters find it in memory */
                serve(req, s, o); /* req is gone */
                pc_cache_obj_unref(o);
                return;
            }
            if (u == U_SWR_LEAD) /* we go upstream ourselves */
                atomic_store(&o->revalidating, 0);
            /* stale or to be validated: as a local one, revalidated with
             * its validators (a 304 serves it), kept for stale-if-error */
            s->stale = o; /* our reference */
            conditional(req, s);
            o = NULL;
        }
        pc_cache_obj_unref(o);
    }
    pc_chain_resume(req, PC_NEXT); /* a miss: upstream, as the leader */
}

/* The leader of a local miss: Redis first when the store is redis. */
static pc_verdict redis_lookup(pc_req *req, ca_slot *s)
{
    pc_redis *rc = redis_of(req);
    if (!rc)
        return PC_NEXT;
    char key[RKEY_MAX];
    size_t klen = redis_key(s->hash, key);
    pc_wait w = pc_wait_begin(req, NULL);
    if (pc_redis_eval(rc, &get_script, key, klen, 0, NULL, NULL, redis_got,
                      &w, sizeof w) == 0)
        return PC_WAIT;
    req->stage_ns = 0; /* the chain times this stage itself: not twice */
    pc_wait_take(w);
    return PC_NEXT; /* Redis unreachable now: a miss */
}

static pc_body_status ca_filter(pc_req *req, unsigned slot, const char *data,
                                size_t len, int last)
{
    ca_slot *s = pc_req_slot(req, slot);
    if (s->replace) { /* the stored body instead of the upstream's */
        if (!last)
            return PC_BODY_OK;
        const pc_cbody *b = s->replace->body;
        if (s->coded)
            pc_body_next(req, slot, s->coded->data, s->coded->len, 0);
        else if (b && b->len)
            pc_body_next(req, slot, b->data, b->len, 0);
        return pc_body_next(req, slot, NULL, 0, 1);
    }
    if (s->storing && len) {
        if (s->len + len > s->pol->max_object) {
            stop_storing(s); /* too large: streamed, not stored */
            finish_flight(s);
        } else {
            if (s->len + len > s->cap) {
                size_t nc = s->cap ? s->cap : 4096;
                while (nc < s->len + len)
                    nc *= 2;
                if (nc > s->pol->max_object)
                    nc = s->pol->max_object;
                s->buf = pc_xrealloc(s->buf, nc);
                s->cap = nc;
            }
            memcpy(s->buf + s->len, data, len);
            s->len += len;
        }
    }
    if (last && s->storing) { /* complete: store it */
        pc_cbody *b = pc_cache_body_new(s->buf, s->len);
        pc_cache_obj_set_body(s->pending, b);
        pc_cache_body_unref(b);
        pc_cache_insert(s->pending, budget_of(req));
        redis_put(req, s->pending);
        s->stored = s->pending; /* our reference: compress's codings */
        s->pending = NULL;
        stop_storing(s);
        finish_flight(s);
    }
    return pc_body_next(req, slot, data, len, last);
}

static void ca_release(pc_req *req, unsigned slot)
{
    ca_slot *s = pc_req_slot(req, slot);
    if (!s)
        return;
    stop_storing(s); /* an aborted body is dropped */
    finish_flight(s);
    if (s->swr) {
        atomic_store(&s->swr->revalidating, 0);
        pc_cache_obj_unref(s->swr);
        s->swr = NULL;
    }
    pc_cache_obj_unref(s->stale);
    s->stale = NULL;
    pc_cache_obj_unref(s->replace);
    s->replace = NULL;
    pc_cache_obj_unref(s->stored);
    s->stored = NULL;
}

static const pc_body_filter ca_body = {
    .filter = ca_filter, .release = ca_release, .changes_length = 0};

/* ---- background revalidation (RFC 5861 §3) ----------------------------
 *
 * A request of its own, made by the stage, with no client: its sink
 * (bg_sink) runs the response side like conn's does (route response
 * rules, pc_chain_response_head, the body filters) and writes nothing.
 * The cache stage's on_response and body filter then do what they do for
 * a conditional request: a 304 refreshes the stored object, a 200
 * replaces it. The per-worker list lets the worker cancel the ones still
 * running when it stops (pc_cache_worker_stop, before its pools go). */

typedef struct bg_link {
    struct bg_link *prev, *next;
    pc_req *req;
} bg_link;

typedef struct ca_worker {
    bg_link head; /* circular list of running revalidations */
} ca_worker;

static void *ca_worker_init(pc_loop *l)
{
    (void)l;
    ca_worker *w = pc_xcalloc(1, sizeof *w);
    w->head.prev = w->head.next = &w->head;
    return w;
}

static void bg_free(pc_req *r)
{
    bg_link *k = r->sink_ctx;
    k->prev->next = k->next;
    k->next->prev = k->prev;
    r->handler = NULL;
    pc_chain_req_free(r); /* releases the filter: refs, revalidating flag */
    pc_config_unref(r->cfg);
    pc_arena_free(r->arena);
}

void pc_cache_worker_stop(pc_loop *l)
{
    unsigned self = pc_chain_index(&pc_stage_cache);
    ca_worker *w = l->stage_state[self];
    while (w && w->head.next != &w->head) {
        pc_req *r = w->head.next->req;
        if (r->handler && r->handler->cancel)
            r->handler->cancel(r);
        bg_free(r);
    }
}

static void ca_worker_free(void *state)
{
    free(state); /* pc_cache_worker_stop emptied it */
}

static void bg_head(pc_req *r, pc_resp *resp)
{
    pc_headers_downstream(&resp->headers, r->arena,
                          r->route ? &r->route->resp_headers : NULL);
    pc_chain_response_head(r, resp);
    r->status = resp->status;
}

static void bg_body(pc_req *r, const char *data, size_t len)
{
    if (pc_chain_filtering(r) && len)
        pc_chain_body(r, data, len, 0);
}

static void bg_body_move(pc_req *r, struct evbuffer *src, size_t n)
{
    if (n && pc_chain_filtering(r)) {
        const char *p = (const char *)evbuffer_pullup(src, (ssize_t)n);
        pc_chain_body(r, p, n, 0);
    }
    evbuffer_drain(src, n);
}

static void bg_end(pc_req *r)
{
    if (pc_chain_filtering(r))
        pc_chain_body(r, NULL, 0, 1);
    bg_free(r);
}

static void bg_error(pc_req *r, pc_errcode e, const char *msg)
{
    (void)e;
    (void)msg;
    bg_free(r); /* the stale object stays; the next request may retry */
}

static size_t bg_backlog(pc_req *r)
{
    (void)r;
    return 0;
}

static void bg_nothing(pc_req *r)
{
    (void)r;
}

static void bg_filtered(pc_req *r, const char *data, size_t len)
{
    (void)r;
    (void)data;
    (void)len;
}

static const pc_sink_ops bg_sink = {
    .head = bg_head,
    .body = bg_body,
    .body_move = bg_body_move,
    .end = bg_end,
    .error = bg_error,
    .abort = bg_free,
    .backlog = bg_backlog,
    .start_body = bg_nothing,
    .resume_body = bg_nothing,
    .filtered = bg_filtered,
};

static int is_conditional(const pc_header *h)
{
    return is_name(h, "if-none-match") || is_name(h, "if-modified-since") ||
           is_name(h, "if-match") || is_name(h, "if-unmodified-since") ||
           is_name(h, "if-range") || is_name(h, "range") ||
           is_name(h, "cache-control") || is_name(h, "pragma");
}

/* Starts a revalidation of o (the caller holds a reference it gives to
 * the new request) for the key of s, as the client's request req asked
 * (its headers, its route). o->revalidating is set: the new request's
 * release clears it. */
static void bg_start(pc_req *req, const ca_slot *s, pc_cobj *o)
{
    ca_worker *w = req->loop->stage_state[s->self];
    pc_arena *a = pc_arena_new();
    pc_req *r = pc_arena_alloc(a, sizeof *r);
    memset(r, 0, sizeof *r);
    r->arena = a;
    r->loop = req->loop;
    r->cfg = pc_config_ref(req->cfg);
    r->start_ns = pc_now_ns();
    r->method = "GET";
    r->method_bit = PC_M_GET;
    r->http_minor = 1;
    r->path = pc_arena_strndup(a, req->path, req->pathlen);
    r->pathlen = req->pathlen;
    r->query = req->query ? pc_arena_strndup(a, req->query, strlen(req->query))
                          : NULL;
    r->host = req->host ? pc_arena_strndup(a, req->host, strlen(req->host))
                        : NULL;
    r->hostname = req->hostname
                      ? pc_arena_strndup(a, req->hostname,
                                         strlen(req->hostname))
                      : NULL;
    for (uint32_t i = 0; i < req->headers.n; i++) {
        const pc_header *h = &req->headers.v[i];
        if (!is_conditional(h))
            pc_headers_add(&r->headers, a, h->name, h->nlen, h->value,
                           h->vlen);
    }
    for (uint32_t i = 0; i < req->gw_headers.n; i++) {
        const pc_header *h = &req->gw_headers.v[i];
        pc_headers_add(&r->gw_headers, a, h->name, h->nlen, h->value,
                       h->vlen);
    }
    if (o->etag)
        pc_headers_add(&r->gw_headers, a, "If-None-Match", 13, o->etag,
                       strlen(o->etag));
    else if (o->last_modified)
        pc_headers_add(&r->gw_headers, a, "If-Modified-Since", 17,
                       o->last_modified, strlen(o->last_modified));
    r->framing.kind = PC_FRAME_NONE;
    r->keepalive = 1;
    r->tls = req->tls;
    pc_loop_request_id(req->loop, r->request_id);
    r->peer = req->peer;
    r->client = req->client;
    memcpy(r->client_text, req->client_text, sizeof r->client_text);
    memcpy(r->peer_text, req->peer_text, sizeof r->peer_text);
    r->route = req->route;
    r->match = req->match; /* spans into the path, copied as it is */
    r->match_status = req->match_status;
    r->sink = &bg_sink;
    bg_link *k = pc_arena_alloc(a, sizeof *k);
    k->req = r;
    k->prev = &w->head;
    k->next = w->head.next;
    w->head.next->prev = k;
    w->head.next = k;
    r->sink_ctx = k;
    ca_slot *b = pc_arena_alloc(a, sizeof *b);
    memset(b, 0, sizeof *b);
    b->self = s->self;
    b->pol = s->pol;
    pc_cc_init(&b->rcc);
    b->key = pc_arena_strndup(a, s->key, s->klen);
    b->klen = s->klen;
    b->hash = s->hash;
    b->req_time = now_s();
    b->result = R_MISS;
    b->bg = 1;
    b->cond = o->etag || o->last_modified;
    pc_cache_obj_ref(o);
    b->stale = o;
    b->swr = o; /* the caller's reference: cleared and dropped at release */
    r->stage = s->self + 1;
    r->nran = s->self + 1; /* on_response of the stages up to this one */
    pc_req_set_slot(r, s->self, b);
    pc_body_filter_add(r, s->self, &ca_body);
    pc_proxy_start(r); /* may end (and free) r at once */
}

/* ---- request ---------------------------------------------------------- */

static int has_header(const pc_req *req, const char *name)
{
    return pc_req_header(req, name) != NULL;
}

/* §4.3.1: the request goes upstream with the validators of the stored
 * response s->stale, unless the client sent its own conditions (then its
 * 304 is its own). */
static void conditional(pc_req *req, ca_slot *s)
{
    if (!(req->method_bit & PC_M_GET) || has_header(req, "if-none-match") ||
        has_header(req, "if-modified-since"))
        return;
    if (s->stale->etag)
        pc_headers_add(&req->gw_headers, req->arena, "If-None-Match", 13,
                       s->stale->etag, strlen(s->stale->etag));
    else if (s->stale->last_modified)
        pc_headers_add(&req->gw_headers, req->arena, "If-Modified-Since", 17,
                       s->stale->last_modified,
                       strlen(s->stale->last_modified));
    else
        return;
    s->cond = 1;
}

static pc_verdict ca_on_request(pc_req *req)
{
    const ca_policy *pol = pc_chain_route_policy(req, req->stage);
    if (!pol)
        return PC_NEXT;
    ca_slot *s = pc_arena_alloc(req->arena, sizeof *s);
    memset(s, 0, sizeof *s);
    s->self = req->stage;
    s->pol = pol;
    pc_req_set_slot(req, req->stage, s);
    s->key = make_key(req, req->host, req->path, req->pathlen, req->query,
                      &s->klen);
    s->hash = pc_cache_hash(s->key, s->klen);
    if (!(req->method_bit & pol->methods)) {
        s->unsafe = unsafe_method(req->method_bit);
        s->result = R_BYPASS;
        return PC_NEXT; /* nothing to store or replace: no filter */
    }
    cc_of(&req->headers, &s->rcc);
    if (!pc_req_header(req, "cache-control")) {
        const char *pragma = pc_req_header(req, "pragma");
        if (pragma && strstr(pragma, "no-cache"))
            s->rcc.no_cache = 1; /* §5.4 */
    }
    long long now = now_s();
    s->req_time = now;
    s->result = R_MISS;
    pc_cobj *o = pc_cache_lookup(s->key, s->klen, s->hash, vary_match, req);
    if (o) {
        usable u = s->rcc.no_cache ? U_NO : judge(s, o, now);
        if (u == U_YES || u == U_SWR_OTHER) {
            serve(req, s, o); /* req is gone */
            pc_cache_obj_unref(o);
            return PC_DONE;
        }
        if (u == U_SWR_LEAD) {
            /* RFC 5861 §3: the stale object now, one revalidation in the
             * background (it takes over our reference) */
            pc_cache_obj_ref(o);
            bg_start(req, s, o);
            serve(req, s, o);
            pc_cache_obj_unref(o);
            return PC_DONE;
        }
        s->stale = o;
    }
    /* not answered from memory now: the response may be stored or
     * replaced (a hit served above has no filter of ours) */
    pc_body_filter_add(req, req->stage, &ca_body);
    if (s->rcc.only_if_cached) { /* §5.2.1.7 */
        req->sink->error(req, PC_ERR_GATEWAY_TIMEOUT,
                         "only-if-cached: no stored response");
        return PC_DONE;
    }
    if (s->stale) {
        conditional(req, s);
        return PC_NEXT;
    }
    if (!(req->method_bit & PC_M_GET) || s->rcc.no_cache || s->rcc.no_store ||
        !req->loop->base) /* (no event loop: unit tests' fake requests) */
        return PC_NEXT;
    /* a miss: collapse concurrent ones on this key */
    ca_waiter *w = pc_xcalloc(1, sizeof *w);
    w->w.wake = waiter_wake;
    w->hash = s->hash;
    pthread_mutex_init(&w->mu, NULL);
    atomic_init(&w->refs, 2);
    w->ev = event_new(req->loop->base, -1, 0, waiter_cb, w);
    if (pc_cache_flight_join(s->key, s->klen, s->hash, &w->w)) {
        event_free(w->ev);
        pthread_mutex_destroy(&w->mu);
        free(w);
        s->leader = 1;
        return redis_lookup(req, s);
    }
    s->waiter = w;
    w->tok = pc_wait_begin(req, waiter_cancel);
    return PC_WAIT;
}

/* ---- response --------------------------------------------------------- */

static long long header_date(const pc_headers *hs, const char *name)
{
    const pc_header *h = pc_headers_get(hs, name);
    if (!h)
        return -1;
    long long t = pc_http_date_parse(h->value, h->vlen);
    return t < 0 ? -2 : t;
}

static int skip_stored(const pc_header *h)
{
    return is_name(h, "age") || is_name(h, "x-cache") ||
           is_name(h, "content-length") || is_name(h, "transfer-encoding");
}

/* Fills o's times and freshness from the response head (hs) and cc. */
static void set_freshness(pc_cobj *o, const ca_slot *s, const pc_headers *hs,
                          const pc_cc *cc, long long now)
{
    o->t.request_time = s->req_time;
    o->t.response_time = now;
    long long date = header_date(hs, "date");
    o->t.date_value = date >= 0 ? date : now;
    const pc_header *age = pc_headers_get(hs, "age");
    long long a = age ? pc_cc_delta(age->value, age->vlen) : 0;
    o->t.age_value = a < 0 ? 0 : a;
    int explicit_;
    int heuristic_ok = pc_cache_status_heuristic(o->status) || cc->public_;
    o->lifetime = pc_cache_freshness(cc, header_date(hs, "expires"),
                                     o->t.date_value, (long long)s->pol->ttl_s,
                                     heuristic_ok, &explicit_);
    o->swr = cc->swr;
    o->sie = cc->sie;
    o->no_cache = cc->no_cache;
    o->must_revalidate = cc->must_revalidate || cc->proxy_revalidate ||
                         cc->s_maxage != PC_CC_ABSENT;
}

/* The response's headers without the request's extras (appended at the
 * tail by pc_chain_response_head) and what the cache computes. */
static uint32_t stored_headers(const pc_req *req, const pc_resp *resp,
                               pc_chdr *out, uint32_t cap)
{
    uint32_t n = resp->headers.n >= req->resp_extra.n
                     ? resp->headers.n - req->resp_extra.n
                     : 0,
             k = 0;
    for (uint32_t i = 0; i < n && k < cap; i++) {
        const pc_header *h = &resp->headers.v[i];
        if (skip_stored(h))
            continue;
        out[k++] = (pc_chdr){h->name, h->value, h->nlen, h->vlen};
    }
    return k;
}

static void refresh_from_304(pc_req *req, ca_slot *s, pc_resp *resp)
{
    /* §4.3.4: the stored header fields are updated with those of the 304
     * (except the framing ones), the body kept */
    pc_cobj *old = s->stale;
    uint32_t cap = old->nhdrs + resp->headers.n + 1;
    pc_chdr *h = pc_arena_alloc(req->arena, cap * sizeof *h);
    pc_chdr fresh[128];
    uint32_t nf = stored_headers(req, resp, fresh, 128), n = 0;
    for (uint32_t i = 0; i < old->nhdrs; i++) {
        int replaced = 0;
        for (uint32_t k = 0; k < nf && !replaced; k++)
            replaced = pc_strieq(old->hdrs[i].name, old->hdrs[i].nlen,
                                 fresh[k].name, fresh[k].nlen);
        if (!replaced)
            h[n++] = old->hdrs[i];
    }
    for (uint32_t k = 0; k < nf; k++)
        h[n++] = fresh[k];
    pc_cobj *o = pc_cache_obj_new(old->key, old->klen, old->route, old->path,
                                  old->vary_names, old->vary_vals, old->nvary,
                                  old->status, h, n);
    pc_cache_obj_set_body(o, old->body);
    pc_cache_obj_share_coded(o, old); /* same body, same codings */
    /* freshness from the merged head */
    pc_headers merged;
    memset(&merged, 0, sizeof merged);
    for (uint32_t i = 0; i < n; i++)
        pc_headers_add(&merged, req->arena, h[i].name, h[i].nlen, h[i].value,
                       h[i].vlen);
    pc_cc cc;
    cc_of(&merged, &cc);
    set_freshness(o, s, &merged, &cc, now_s());
    if (!cc.no_store) {
        pc_cache_insert(o, budget_of(req));
        redis_put(req, o);
    }
    s->replace = o; /* our reference */
    head_of(req, resp, o, 1);
}

static void invalidate_uri(pc_req *req, const char *v)
{
    /* §4.4: Location / Content-Location of the same origin */
    const char *path = v;
    if (!strncasecmp(v, "http://", 7) || !strncasecmp(v, "https://", 8)) {
        const char *h = strstr(v, "//") + 2;
        const char *e = h + strcspn(h, "/?#");
        if (!req->host || (size_t)(e - h) != strlen(req->host) ||
            !pc_strieq(h, (size_t)(e - h), req->host, strlen(req->host)))
            return;
        path = *e == '/' ? e : "/";
    }
    if (*path != '/')
        return;
    size_t pl = strcspn(path, "?#");
    const char *q = path[pl] == '?' ? path + pl + 1 : NULL;
    char *qq = q ? pc_arena_strndup(req->arena, q, strcspn(q, "#")) : NULL;
    size_t klen;
    char *k = make_key(req, req->host, path, pl, qq, &klen);
    uint64_t hash = pc_cache_hash(k, klen);
    pc_cache_invalidate(k, klen, hash);
    redis_del(req, hash);
}

static void count(pc_req *req, ca_slot *s)
{
    req->cache = result_text[s->result];
    if (req->loop && req->loop->metrics)
        pc_metrics_count(req->loop->metrics, PC_MC_CACHE_REQUESTS,
                         req->route ? req->route->metrics_id
                                    : PC_METRICS_ID_NONE,
                         (uint32_t)s->result, 0);
}

static void ca_on_response(pc_req *req, unsigned self, pc_resp *resp)
{
    ca_slot *s = pc_req_slot(req, self);
    if (!s)
        return;
    if (s->hit)
        goto done;
    if (s->unsafe) {
        if (resp->status >= 200 && resp->status < 400) {
            pc_cache_invalidate(s->key, s->klen, s->hash);
            redis_del(req, s->hash);
            const pc_header *h;
            if ((h = pc_headers_get(&resp->headers, "location")))
                invalidate_uri(req, h->value);
            if ((h = pc_headers_get(&resp->headers, "content-location")))
                invalidate_uri(req, h->value);
        }
        goto done;
    }
    if (s->result == R_BYPASS)
        goto done;
    long long now = now_s();
    if (s->cond && s->stale && resp->status == 304) {
        refresh_from_304(req, s, resp);
        s->result = R_HIT;
        finish_flight(s);
        goto done;
    }
    if (s->stale && (resp->status >= 500 && resp->status <= 504)) {
        /* RFC 5861 §4: stale-if-error, from the response or the request */
        pc_cobj *o = s->stale;
        long long stale = pc_cache_current_age(&o->t, now) - o->lifetime;
        long long win = o->sie;
        if (s->rcc.sie != PC_CC_ABSENT && s->rcc.sie > win)
            win = s->rcc.sie;
        if (!o->must_revalidate && !o->no_cache && win >= 0 && stale <= win) {
            s->replace = o;
            s->stale = NULL;
            head_of(req, resp, o, 1);
            s->result = R_HIT;
            goto done;
        }
    }
    if (!(req->method_bit & PC_M_GET) || s->rcc.no_store)
        goto not_stored;
    /* §3 */
    int st = resp->status;
    if (st < 200 || st == 206 || st == 304 || req->error != PC_ERR_NONE)
        goto not_stored;
    pc_cc cc;
    cc_of(&resp->headers, &cc);
    if (cc.no_store || cc.private_)
        goto not_stored;
    if (pc_headers_get(&resp->headers, "set-cookie"))
        goto not_stored; /* choice: never stored (CONTRACT §4) */
    if (pc_req_header(req, "authorization") && !cc.public_ &&
        cc.s_maxage == PC_CC_ABSENT && !cc.must_revalidate)
        goto not_stored; /* §3.5 */
    int explicit_ = cc.max_age != PC_CC_ABSENT ||
                    cc.s_maxage != PC_CC_ABSENT ||
                    pc_headers_get(&resp->headers, "expires");
    if (!explicit_ && !pc_cache_status_heuristic(st) && !cc.public_)
        goto not_stored;
    if ((resp->framing.kind == PC_FRAME_LENGTH || resp->framing.has_length) &&
        resp->framing.length > s->pol->max_object)
        goto not_stored;
    if (resp->framing.kind == PC_FRAME_NONE)
        goto not_stored; /* no body will flow (204): nothing to store */
    /* Vary (§4.1): the request's values of the named headers */
    const char *vn[MAX_VARY], *vv[MAX_VARY];
    uint32_t nv = 0;
    for (uint32_t i = 0; i < resp->headers.n; i++) {
        const pc_header *h = &resp->headers.v[i];
        if (!is_name(h, "vary"))
            continue;
        const char *p = h->value, *e = h->value + h->vlen;
        while (p < e) {
            while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *a = p;
            while (p < e && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            size_t l = (size_t)(p - a);
            if (!l)
                continue;
            if (l == 1 && *a == '*')
                goto not_stored; /* Vary: * never matches */
            if (nv == MAX_VARY)
                goto not_stored;
            char *name = pc_arena_strndup(req->arena, a, l);
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            char *val = pc_arena_alloc(req->arena, VARY_VALUE_MAX);
            if (vary_value(req, name, val, VARY_VALUE_MAX) < 0)
                goto not_stored;
            vn[nv] = name;
            vv[nv++] = val;
        }
    }
    pc_chdr hv[128];
    uint32_t nh = stored_headers(req, resp, hv, 128);
    if (nh == 128)
        goto not_stored;
    pc_cobj *o = pc_cache_obj_new(s->key, s->klen, req->route->name,
                                  req->path, vn, vv, nv, st, hv, nh);
    set_freshness(o, s, &resp->headers, &cc, now);
    if (o->lifetime <= 0 && !o->etag && !o->last_modified && o->sie < 0) {
        pc_cache_obj_unref(o); /* stale at once and no way to revalidate */
        goto not_stored;
    }
    s->pending = o;
    s->storing = 1;
    goto done;
not_stored:
    finish_flight(s);
done:
    if (s->result != R_NONE && !s->bg) {
        const char *x = result_text[s->result];
        pc_headers_remove(&resp->headers, "X-Cache");
        pc_headers_add(&resp->headers, req->arena, "X-Cache", 7, x,
                       strlen(x));
        if (s->result == R_HIT && !pc_headers_get(&resp->headers, "age") &&
            s->replace)
            add_age(req, resp, s->replace);
        count(req, s);
        if (s->serving || s->replace || s->storing)
            offer(s, resp);
    }
}

const pc_stage_ops pc_stage_cache = {
    .name = "cache",
    .global_key = "cache",
    .route_key = "cache",
    .configure_global = ca_configure_global,
    .configure_route = ca_configure_route,
    .free_global = free,
    .free_route = free,
    .global_json = ca_global_json,
    .route_json = ca_route_json,
    .worker_init = ca_worker_init,
    .worker_free = ca_worker_free,
    .on_request = ca_on_request,
    .on_response = ca_on_response,
};
