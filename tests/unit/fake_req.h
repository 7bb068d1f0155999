/* fake_req.h: a pc_req without sockets, for unit tests of the chain's
 * decision logic (issue 7). Header-only; every function is static.
 *
 *   fake_env   a generation loaded by the real loader (pc_config_load) from
 *              a YAML string written into a fresh temporary directory
 *              (with any key/schema files the test writes beside it), and
 *              a zeroed pc_loop whose stage_state is filled by
 *              pc_chain_worker_init (the stages' per-worker caches need no
 *              event base).
 *   fake_req   a request head filled the way front/request.c fills it
 *              (method bit, normalised path, query, host/hostname, headers,
 *              peer/client and their text, body framing decided by the real
 *              pc_framing_request, request id, max_body), pinning one
 *              reference to the generation, with a recording sink
 *              (fake_rec) instead of a connection.
 *   fake_run   runs the real stage table (pc_chain_stage(i)->on_request)
 *              the way chain.c's run() does, cursor included, but stops
 *              BEFORE the named stage (by default "proxy", which needs
 *              sockets) and reports which stage stopped the request.
 *
 * The recording sink does what conn.c's sink does on the response side,
 * without a socket: every head, proxied (sink->head) or gateway-made
 * (sink->error, built by errors.c's pc_err_response), goes through
 * pc_chain_response_head (extra headers, on_response hooks, body-filter
 * framing) and is recorded as sent (resp_*); body bytes go through the
 * request's body filters when it has any (pc_chain_body, ending in
 * sink->filtered) and are recorded in `body`; backlog() is the test's
 * `backlog` plus what the filters hold.
 *
 * Everything is freed by fake_req_free / fake_env_free (the unit tests run
 * with detect_leaks=1). A stage that returned PC_WAIT and installed a
 * handler is cancelled by fake_req_free as conn.c does. Do not let a WAIT
 * resume into the proxy stage: a test that feeds a waiting body
 * (fake_feed_body) must make the resumed chain stop before proxy.
 *
 * Where the gateway's own upstream headers live (req->gw_headers today) is
 * known only to fake_forwarded_header and fake_upstream_headers. */
#ifndef PORTCULLIS_TEST_FAKE_REQ_H
#define PORTCULLIS_TEST_FAKE_REQ_H

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portcullis/bucket_table.h"
#include "portcullis/chain.h"
#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/errors.h"
#include "portcullis/framing.h"
#include "portcullis/headers.h"
#include "portcullis/http.h"
#include "portcullis/pathnorm.h"
#include "portcullis/trie.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

#define FAKE_UNUSED __attribute__((unused))
#define FAKE_MAX_FILES 8

/* Minimal pieces every config needs (the loader wants a listener, and a
 * route needs an upstream); the upstream is never contacted. */
#define FAKE_LISTEN "listen: [{address: 127.0.0.1:18080}]\n"
#define FAKE_UPSTREAM "upstreams: {u: {targets: [{url: http://127.0.0.1:9}]}}\n"

/* ------------------------------------------------------------ environment */

typedef struct fake_env {
    char dir[64];                   /* mkdtemp directory */
    char path[96];                  /* the config file's name (pc_errors
                                       borrow it: it outlives the file) */
    char *files[FAKE_MAX_FILES];    /* absolute paths written, unlinked at free */
    size_t nfiles;
    pc_config *cfg;                 /* the environment's reference */
    pc_loop worker;                 /* zeroed; stage_state via the chain */
    int worker_ready;
} fake_env;

FAKE_UNUSED static fake_env *fake_env_new(void)
{
    fake_env *e = calloc(1, sizeof *e);
    cr_assert_not_null(e);
    snprintf(e->dir, sizeof e->dir, "/tmp/pc_fake_XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir), "mkdtemp failed");
    return e;
}

/* Writes text to DIR/name (a key, a schema, the config); returns the
 * absolute path, owned by the environment. */
FAKE_UNUSED static const char *fake_env_write(fake_env *e, const char *name,
                                              const char *text)
{
    cr_assert_lt(e->nfiles, FAKE_MAX_FILES, "raise FAKE_MAX_FILES");
    size_t n = strlen(e->dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", e->dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
    e->files[e->nfiles++] = p;
    return p;
}

/* Removes the files and the directory: the loader has read them all (keys,
 * schemas), so this happens right after the load, and nothing is left in
 * /tmp even when an assertion ends the test early. */
static void fake_env_clean(fake_env *e)
{
    for (size_t i = 0; i < e->nfiles; i++) {
        unlink(e->files[i]);
        free(e->files[i]);
    }
    e->nfiles = 0;
    if (e->dir[0])
        rmdir(e->dir);
    e->dir[0] = '\0';
}

/* Loads yaml (as DIR/portcullis.yaml, so relative paths resolve against
 * DIR) with pc_config_load and initialises the worker's stage state.
 * Returns 0, or -1 with the loader's messages in *errs when errs is given
 * (the caller then frees them with pc_errors_free); without errs a failed
 * load fails the test and prints every message. */
FAKE_UNUSED static int fake_env_try_load(fake_env *e, const char *yaml,
                                         pc_errors *errs)
{
    cr_assert_null(e->cfg, "environment already loaded");
    snprintf(e->path, sizeof e->path, "%s",
             fake_env_write(e, "portcullis.yaml", yaml));
    pc_errors local;
    pc_errors *err = errs ? errs : &local;
    pc_errors_init(err, e->path);
    e->cfg = pc_config_load(e->path, err);
    fake_env_clean(e);
    if (!e->cfg) {
        if (errs)
            return -1;
        for (size_t i = 0; i < local.n; i++)
            cr_log_error("%s", local.msgs[i]);
        size_t n = local.n;
        pc_errors_free(&local);
        cr_assert_fail("the test's configuration did not load (%zu errors)", n);
    }
    if (!errs)
        pc_errors_free(&local);
    e->worker.cfg = e->cfg; /* borrowed: the environment holds the ref */
    /* the process-wide rate-limit buckets (main.c makes one per process) */
    e->worker.buckets = pc_bucket_table_new(0);
    pc_chain_worker_init(&e->worker);
    e->worker_ready = 1;
    return 0;
}

FAKE_UNUSED static void fake_env_load(fake_env *e, const char *yaml)
{
    fake_env_try_load(e, yaml, NULL);
}

FAKE_UNUSED static fake_env *fake_env_from_yaml(const char *yaml)
{
    fake_env *e = fake_env_new();
    fake_env_load(e, yaml);
    return e;
}

/* Frees the worker state, drops the environment's reference (requests
 * must have been freed first), removes the files and the directory. */
FAKE_UNUSED static void fake_env_free(fake_env *e)
{
    if (!e)
        return;
    if (e->worker_ready)
        pc_chain_worker_free(&e->worker);
    pc_bucket_table_free(e->worker.buckets);
    if (e->cfg)
        cr_expect_eq(atomic_load(&e->cfg->refs), 1,
                     "a request still pins the generation");
    pc_config_unref(e->cfg);
    fake_env_clean(e);
    free(e);
}

/* ------------------------------------------------------- recording sink */

typedef struct fake_rec {
    /* sink->error */
    unsigned errors;             /* calls (more than one is a stage bug) */
    pc_errcode code;             /* of the last call */
    int status;                  /* pc_err_info(code)->status */
    int msg_null;                /* the stage passed NULL (table default) */
    char msg[512];
    uint32_t allow;              /* req->match.allow at the call (405) */
    /* sink->head */
    unsigned heads;
    int head_status;             /* as the producer passed it */
    pc_headers head_headers;     /* copies, in the request's arena */
    /* the head as sent, after pc_chain_response_head (head or error) */
    unsigned sent;               /* heads sent (more than one is a bug) */
    int resp_status;
    pc_headers resp_headers;     /* copies, in the request's arena */
    pc_framing resp_framing;     /* towards the client (pc_framing_out) */
    /* body bytes as sent: after the body filters, gateway errors' JSON
     * included (not for HEAD) */
    char *body;                  /* malloc'd, NUL-terminated */
    size_t body_len, body_cap;
    unsigned filtered;           /* calls of sink->filtered */
    size_t backlog;              /* what backlog() reports, besides filters */
    /* the rest */
    unsigned ends, aborts, start_bodies, resume_bodies;
} fake_rec;

static fake_rec *fake_rec_of(const pc_req *req)
{
    return req->sink_ctx;
}

static void fake_copy_headers(pc_req *req, pc_headers *to, const pc_headers *from)
{
    for (uint32_t i = 0; i < from->n; i++) {
        const pc_header *h = &from->v[i];
        pc_headers_add(to, req->arena, h->name, h->nlen, h->value, h->vlen);
    }
}

/* What conn.c's write_head does before serialising, then records it. */
static void fake_send_head(pc_req *req, pc_resp *resp)
{
    fake_rec *r = fake_rec_of(req);
    pc_chain_response_head(req, resp);
    r->sent++;
    r->resp_status = resp->status;
    fake_copy_headers(req, &r->resp_headers, &resp->headers);
    r->resp_framing = pc_framing_out(&resp->framing, req->http_minor);
    req->status = resp->status;
}

static void fake_sink_head(pc_req *req, pc_resp *resp)
{
    fake_rec *r = fake_rec_of(req);
    r->heads++;
    r->head_status = resp->status;
    fake_copy_headers(req, &r->head_headers, &resp->headers);
    fake_send_head(req, resp);
}

/* Records body bytes as sent to the client. */
static void fake_record_body(pc_req *req, const char *data, size_t len)
{
    fake_rec *r = fake_rec_of(req);
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 256;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        r->body = realloc(r->body, cap);
        cr_assert_not_null(r->body);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
}

static void fake_sink_filtered(pc_req *req, const char *data, size_t len)
{
    fake_rec_of(req)->filtered++;
    fake_record_body(req, data, len);
}

static void fake_sink_body(pc_req *req, const char *data, size_t len)
{
    if (pc_chain_filtering(req))
        pc_chain_body(req, data, len, 0);
    else
        fake_record_body(req, data, len);
}

static void fake_sink_body_move(pc_req *req, struct evbuffer *src, size_t n)
{
    char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        int got = evbuffer_remove(src, buf, k);
        cr_assert_gt(got, 0, "body_move: source ran dry");
        fake_sink_body(req, buf, (size_t)got);
        n -= (size_t)got;
    }
}

static void fake_sink_end(pc_req *req)
{
    if (pc_chain_filtering(req))
        pc_chain_body(req, NULL, 0, 1);
    fake_rec_of(req)->ends++;
}

static void fake_sink_error(pc_req *req, pc_errcode code, const char *msg)
{
    fake_rec *r = fake_rec_of(req);
    r->errors++;
    r->code = code;
    r->status = pc_err_info(code)->status;
    r->msg_null = msg == NULL;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    r->allow = req->match.allow;
    /* As conn.c's write_error: the head from the table through the
     * response side, the JSON body through the filters. */
    char body[1024];
    pc_resp resp;
    size_t n = pc_err_response(req, code, msg, &resp, body, sizeof body);
    fake_send_head(req, &resp);
    req->error = code; /* as conn records it for the log */
    if (pc_chain_filtering(req))
        pc_chain_body(req, body, n, 1);
    else if (resp.framing.kind != PC_FRAME_NONE)
        fake_record_body(req, body, n);
}

static void fake_sink_abort(pc_req *req)
{
    fake_rec_of(req)->aborts++;
}

static size_t fake_sink_backlog(pc_req *req)
{
    return fake_rec_of(req)->backlog + pc_chain_body_held(req);
}

static void fake_sink_start_body(pc_req *req)
{
    fake_rec_of(req)->start_bodies++;
}

static void fake_sink_resume_body(pc_req *req)
{
    fake_rec_of(req)->resume_bodies++;
}

static const pc_sink_ops fake_sink_ops FAKE_UNUSED = {
    .head = fake_sink_head,
    .body = fake_sink_body,
    .body_move = fake_sink_body_move,
    .end = fake_sink_end,
    .error = fake_sink_error,
    .abort = fake_sink_abort,
    .backlog = fake_sink_backlog,
    .start_body = fake_sink_start_body,
    .resume_body = fake_sink_resume_body,
    .filtered = fake_sink_filtered,
};

/* --------------------------------------------------------------- request */

static void fake_set_ip(pc_ip *ip, char *text, size_t tlen, const char *addr)
{
    cr_assert_eq(pc_ip_parse(addr, strlen(addr), ip), 0, "bad address '%s'", addr);
    pc_ip_format(ip, text, tlen);
}

/* The peer address (and the client, as when the peer is not a trusted
 * proxy). */
FAKE_UNUSED static void fake_peer(pc_req *req, const char *addr)
{
    fake_set_ip(&req->peer, req->peer_text, sizeof req->peer_text, addr);
    fake_set_ip(&req->client, req->client_text, sizeof req->client_text, addr);
}

/* The client address alone (what front/request.c derives from
 * X-Forwarded-For when the peer is a trusted proxy). */
FAKE_UNUSED static void fake_client(pc_req *req, const char *addr)
{
    fake_set_ip(&req->client, req->client_text, sizeof req->client_text, addr);
}

FAKE_UNUSED static void fake_header(pc_req *req, const char *name,
                                    const char *value)
{
    pc_headers_add(&req->headers, req->arena, name, strlen(name), value,
                   strlen(value));
}

/* Host as request.c sets it: host keeps the port, hostname is lower-case
 * without it. Adds the Host header too. */
FAKE_UNUSED static void fake_host(pc_req *req, const char *authority)
{
    size_t n = strlen(authority), hl = n;
    fake_header(req, "Host", authority);
    req->host = pc_arena_strndup(req->arena, authority, n);
    if (authority[0] == '[') {
        const char *rb = strchr(authority, ']');
        hl = rb ? (size_t)(rb - authority) + 1 : n;
    } else {
        const char *colon = strchr(authority, ':');
        if (colon)
            hl = (size_t)(colon - authority);
    }
    char *h = pc_arena_strndup(req->arena, authority, hl);
    for (char *x = h; *x; x++)
        if (*x >= 'A' && *x <= 'Z')
            *x += 32;
    req->hostname = h;
}

/* Body framing from the request's headers by the real decision
 * (pc_framing_request), as front/request.c makes it. */
static void fake_reframe(pc_req *req)
{
    const char *why = NULL;
    cr_assert_eq(pc_framing_request(&req->headers, req->http_minor,
                                    &req->framing, &why),
                 0, "framing refused: %s", why ? why : "?");
}

FAKE_UNUSED static void fake_content_length(pc_req *req, uint64_t n)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)n);
    fake_header(req, "Content-Length", v);
    fake_reframe(req);
}

FAKE_UNUSED static void fake_chunked(pc_req *req)
{
    fake_header(req, "Transfer-Encoding", "chunked");
    fake_reframe(req);
}

/* A body already buffered, as chain/body.c leaves it: the whole body in
 * req->body and a known length. */
FAKE_UNUSED static void fake_body(pc_req *req, const char *data, size_t len)
{
    cr_assert_null(req->body, "body already set");
    fake_content_length(req, len);
    req->body = evbuffer_new();
    cr_assert_not_null(req->body);
    evbuffer_add(req->body, data, len);
}

/* The body length the request is now framed with, -1 when it has none
 * (chunked, or no body). */
FAKE_UNUSED static int64_t fake_known_length(const pc_req *req)
{
    return req->framing.kind == PC_FRAME_LENGTH ? (int64_t)req->framing.length
                                                : -1;
}

/* Hands body bytes to the handler a waiting stage installed (as conn does
 * once start_body was called), then ends the body. */
FAKE_UNUSED static void fake_feed_body(pc_req *req, const char *data, size_t len)
{
    cr_assert_not_null(req->handler, "no handler is waiting for the body");
    cr_assert_gt(fake_rec_of(req)->start_bodies, 0, "start_body was not called");
    if (len)
        req->handler->body(req, data, len);
    req->handler->body_end(req);
}

/* A request for method and target ("/path?query", normalised by the real
 * pc_path_normalize) with host as its Host (NULL: no Host, as HTTP/1.0).
 * Peer and client 192.0.2.10, no body, request id "fake-req". */
FAKE_UNUSED static pc_req *fake_req_new(fake_env *e, const char *method,
                                        const char *target, const char *host)
{
    cr_assert_not_null(e->cfg, "load the environment first");
    pc_arena *a = pc_arena_new();
    pc_req *req = pc_arena_alloc(a, sizeof *req);
    memset(req, 0, sizeof *req);
    req->arena = a;
    req->loop = &e->worker;
    req->cfg = pc_config_ref(e->cfg);
    req->start_ns = pc_now_ns();
    req->method = pc_arena_strndup(a, method, strlen(method));
    req->method_bit = pc_method_bit(method, strlen(method));
    req->http_minor = host ? 1 : 0;
    req->keepalive = 1;
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    char *path = pc_arena_alloc(a, plen + 1);
    size_t olen = 0;
    cr_assert_eq(pc_path_normalize(target, plen, path, &olen), PC_PATH_OK,
                 "bad path in '%s'", target);
    path[olen] = '\0';
    req->path = path;
    req->pathlen = olen;
    req->query = q ? pc_arena_strndup(a, q + 1, strlen(q + 1)) : NULL;
    if (host)
        fake_host(req, host);
    else
        req->host = req->hostname = "";
    req->framing = (pc_framing){.kind = PC_FRAME_NONE};
    req->max_body = req->cfg->limits.max_body_bytes;
    snprintf(req->request_id, sizeof req->request_id, "fake-req");
    fake_peer(req, "192.0.2.10");
    fake_rec *rec = calloc(1, sizeof *rec);
    cr_assert_not_null(rec);
    req->sink = &fake_sink_ops;
    req->sink_ctx = rec;
    return req;
}

FAKE_UNUSED static void fake_req_free(pc_req *req)
{
    if (!req)
        return;
    if (req->handler && req->handler->cancel)
        req->handler->cancel(req);
    req->handler = NULL;
    pc_chain_req_free(req); /* as conn: pending wait cancelled, filters released */
    if (req->body)
        evbuffer_free(req->body);
    fake_rec *rec = fake_rec_of(req);
    free(rec->body);
    free(rec);
    pc_config_unref(req->cfg);
    pc_arena_free(req->arena);
}

/* ----------------------------------------------------------------- running */

/* Index of the stage called name in the real table; fails the test when
 * there is none. */
FAKE_UNUSED static unsigned fake_stage_index(const char *name)
{
    for (unsigned i = 0; i < pc_chain_nstages(); i++)
        if (!strcmp(pc_chain_stage(i)->name, name))
            return i;
    cr_assert_fail("no stage named '%s'", name);
    return 0;
}

typedef struct fake_result {
    unsigned index;      /* the stage that stopped the run, or `until` */
    const char *stage;   /* its name */
    pc_verdict verdict;  /* its verdict; PC_NEXT when `until` was reached */
    int reached;         /* 1: every stage before `until` said PC_NEXT */
    unsigned nrun;       /* stages run */
    pc_verdict verdicts[PC_STAGE_MAX];
} fake_result;

/* Runs one stage exactly as chain.c does (the cursor is set first). */
FAKE_UNUSED static pc_verdict fake_run_stage(pc_req *req, const char *name)
{
    unsigned i = fake_stage_index(name);
    cr_assert_neq(pc_chain_stage(i), &pc_stage_proxy, "proxy needs sockets");
    req->stage = i;
    req->nran = i + 1;
    return pc_chain_stage(i)->on_request(req);
}

/* Runs the stages from the first up to, not including, the stage named
 * until; stops at the first verdict other than PC_NEXT (as chain.c's run()
 * does). The proxy stage is never run. */
FAKE_UNUSED static fake_result fake_run_until(pc_req *req, const char *until)
{
    unsigned stop = fake_stage_index(until);
    fake_result res;
    memset(&res, 0, sizeof res);
    for (unsigned i = 0; i < stop; i++) {
        const pc_stage_ops *s = pc_chain_stage(i);
        cr_assert_neq(s, &pc_stage_proxy, "proxy needs sockets");
        req->stage = i;
        req->nran = i + 1;
        pc_verdict v = s->on_request(req);
        res.verdicts[res.nrun++] = v;
        if (v != PC_NEXT) {
            res.index = i;
            res.stage = s->name;
            res.verdict = v;
            return res;
        }
    }
    res.index = stop;
    res.stage = pc_chain_stage(stop)->name;
    res.verdict = PC_NEXT;
    res.reached = 1;
    return res;
}

/* The whole chain short of the proxy stage. */
FAKE_UNUSED static fake_result fake_run(pc_req *req)
{
    return fake_run_until(req, "proxy");
}

/* ------------------------------------------------------------- observing */

/* The value of a header of the response as sent (after the chain's
 * response side: extra headers, on_response hooks), or NULL. */
FAKE_UNUSED static const char *fake_resp_header(const pc_req *req,
                                                const char *name)
{
    const pc_header *h = pc_headers_get(&fake_rec_of(req)->resp_headers, name);
    return h ? h->value : NULL;
}

FAKE_UNUSED static const char *fake_stage_name(unsigned i)
{
    return pc_chain_stage(i)->name;
}

/* The value of a header the gateway adds for the upstream from a stage
 * (forwarded JWT claims: req->gw_headers), or NULL. One place to change
 * if those move again. */
FAKE_UNUSED static const char *fake_forwarded_header(const pc_req *req,
                                                     const char *name)
{
    const pc_header *h = pc_headers_get(&req->gw_headers, name);
    return h ? h->value : NULL;
}

/* The header list the upstream would receive, built by the real
 * pc_headers_upstream (trusted as the config says of the peer, with the
 * route's headers.request rules), in the request's arena. */
FAKE_UNUSED static pc_headers fake_upstream_headers(const pc_req *req)
{
    pc_headers out;
    int trusted = pc_cidr_set_contains(req->cfg->trusted_proxies, &req->peer);
    pc_headers_upstream(req, trusted, req->route ? &req->route->req_headers : NULL,
                        &out, req->arena);
    return out;
}

/* The first value of name sent upstream, or NULL. */
FAKE_UNUSED static const char *fake_upstream_header(const pc_req *req,
                                                    const char *name)
{
    pc_headers out = fake_upstream_headers(req);
    const pc_header *h = pc_headers_get(&out, name);
    return h ? h->value : NULL;
}

/* How many headers called name are sent upstream. */
FAKE_UNUSED static unsigned fake_upstream_count(const pc_req *req,
                                                const char *name)
{
    pc_headers out = fake_upstream_headers(req);
    return pc_headers_count(&out, name);
}

#endif
