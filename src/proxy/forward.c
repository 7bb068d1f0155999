/* forward.c: one request forwarded to its upstream (CONTRACT §3 step 9):
 * the request head built with the header rules, the body streamed with
 * backpressure, the response parsed (llhttp) and streamed to the sink.
 * Owns the per-request forwarding state; never touches the client socket.
 *
 * DESIGN: retries. The head is rebuilt for every attempt (the request is
 * immutable by then); the body sent so far is kept in a replay buffer while
 * it fits in REPLAY_MAX (a body a stage buffered is its own replay). Before any response byte reached the
 * client, a failure on a reused pooled connection is retried once on a
 * fresh connection to the same target (the upstream closed it while idle:
 * not the client's problem), and other failures of idempotent methods are
 * retried on another target up to `retries` times. Past REPLAY_MAX nothing
 * is retried. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"
#include "portcullis/headers.h"
#include "portcullis/hwrite.h"
#include "portcullis/log.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

#define REPLAY_MAX (64 * 1024)
#define UP_READ_HWM (64 * 1024)

typedef enum { F_CONNECT, F_RESET, F_TIMEOUT, F_INVALID } failure;

typedef struct fwd {
    pc_req *req;
    const pc_upstream *up;
    const pc_target *target;
    pc_upconn *uc;
    struct evbuffer *replay;   /* streamed body so far (created lazily) */
    int replayable;            /* everything sent so far can be sent again */
    uint64_t tried;            /* bitmask of target indexes tried */
    unsigned attempts;
    int fresh_retry_used;
    int body_done;             /* client body complete (or none) */
    int got_bytes;             /* upstream sent something on this attempt */
    int resp_started;          /* head passed to the sink */
    int resp_done;
    int in_1xx;
    int paused;
    int force_fresh;           /* next attempt must not use the pool */
    uint64_t raw_left;         /* Content-Length response body to move */
    int up_eof;                /* upstream closed; input may remain */
    pc_resp resp;
    char *field, *value;       /* header being parsed (malloc) */
    size_t flen, vlen, fcap, vcap;
    uint64_t t0;
} fwd;

static const pc_handler_ops handler_ops;
static const llhttp_settings_t resp_settings;
static void start_attempt(fwd *f);
static void up_read_cb(pc_sock *s, void *arg);

static void fwd_free(fwd *f)
{
    if (f->replay)
        evbuffer_free(f->replay);
    free(f->field);
    free(f->value);
    f->replay = NULL;
    f->field = f->value = NULL;
}

static void detach_conn(fwd *f, int keep)
{
    pc_upconn *uc = f->uc;
    if (!uc)
        return;
    f->uc = NULL;
    if (keep)
        pc_pool_release(uc, f->up);
    else
        pc_pool_close(uc);
}

static int idempotent(const pc_req *r)
{
    return (r->method_bit & (PC_M_GET | PC_M_HEAD | PC_M_OPTIONS | PC_M_PUT |
                             PC_M_DELETE)) != 0;
}

/* Ends the request with a gateway error, or aborts the client when part
 * of a response was already sent. Last action on f and req. */
static void finish_error(fwd *f, pc_errcode e, const char *msg)
{
    pc_req *r = f->req;
    int started = f->resp_started;
    detach_conn(f, 0);
    r->handler = NULL;
    r->upstream_ns = pc_now_ns() - f->t0;
    fwd_free(f);
    if (started)
        r->sink->abort(r);
    else
        r->sink->error(r, e, msg);
}

static void attempt_failed(fwd *f, failure why)
{
    pc_req *r = f->req;
    int reused = f->uc && f->uc->requests > 0;
    pc_log(PC_LOG_DEBUG, "upstream %s: attempt to %s failed (%d)", f->up->name,
           f->target->url, (int)why);
    detach_conn(f, 0);
    if (!f->resp_started && f->replayable) {
        if (reused && !f->got_bytes && why == F_RESET && !f->fresh_retry_used) {
            f->fresh_retry_used = 1;
            f->attempts--; /* not the target's fault: not a retry */
            f->force_fresh = 1;
            start_attempt(f); /* same target, fresh connection */
            return;
        }
        if (why != F_TIMEOUT && why != F_INVALID && idempotent(r) &&
            f->attempts <= f->up->retries) {
            int i = pc_balance_pick(r->worker->pools, r->cfg, f->up, &r->client,
                                    f->tried);
            if (i >= 0) {
                f->target = &f->up->targets[i];
                start_attempt(f);
                return;
            }
        }
    }
    finish_error(f, why == F_TIMEOUT ? PC_ERR_GATEWAY_TIMEOUT
                                     : PC_ERR_BAD_GATEWAY,
                 NULL);
}

/* ---- request head ---------------------------------------------------- */

/* The path sent upstream: rewrite template, or strip_prefix, applied to
 * the normalised path; the rest of a prefix match is appended. */
static void upstream_path(const pc_req *r, pc_hwrite *b)
{
    const pc_route *rt = r->route;
    const char *rest = r->path + r->match.matched_len;
    size_t restlen = r->pathlen - r->match.matched_len;
    if (rt->rewrite) {
        const char *t = rt->rewrite;
        size_t tl = strlen(t);
        for (const char *p = t; *p;) {
            const char *open = strchr(p, '{');
            const char *close = open ? strchr(open, '}') : NULL;
            if (!open || !close) {
                pc_hw_add(b, p, strlen(p));
                break;
            }
            pc_hw_add(b, p, (size_t)(open - p));
            size_t nl = (size_t)(close - open - 1);
            for (size_t i = 0; i < r->match.nparams; i++) {
                const char *pn = r->match.param_names[i];
                if (strlen(pn) == nl && memcmp(pn, open + 1, nl) == 0)
                    pc_hw_add(b, r->path + r->match.params[i].off,
                                 r->match.params[i].len);
            }
            p = close + 1;
        }
        if (restlen && tl && t[tl - 1] == '/' && rest[0] == '/')
            rest++, restlen--;
        pc_hw_add(b, rest, restlen);
        return;
    }
    if (rt->strip_prefix) {
        size_t sl = strlen(rt->strip_prefix);
        if (sl && rt->strip_prefix[sl - 1] == '/')
            sl--;
        if (sl <= r->pathlen && memcmp(r->path, rt->strip_prefix, sl) == 0) {
            if (r->pathlen == sl)
                pc_hw_add(b, "/", 1);
            else
                pc_hw_add(b, r->path + sl, r->pathlen - sl);
            return;
        }
    }
    pc_hw_add(b, r->path, r->pathlen);
}

static int skip_request_header(const pc_header *h)
{
    static const char *const drop[] = {"host", "content-length", "expect",
                                       "x-forwarded-for", "x-forwarded-proto",
                                       "x-forwarded-host", "x-request-id", NULL};
    for (int i = 0; drop[i]; i++)
        if (pc_strieq(h->name, h->nlen, drop[i], strlen(drop[i])))
            return 1;
    return 0;
}

static void build_head(fwd *f, struct evbuffer *out)
{
    pc_req *r = f->req;
    pc_hwrite w, *b = &w;
    pc_hw_init(b, out);
    pc_hw_add(b, r->method, strlen(r->method));
    pc_hw_add(b, " ", 1);
    upstream_path(r, b);
    if (r->query) {
        pc_hw_add(b, "?", 1);
        pc_hw_add(b, r->query, strlen(r->query));
    }
    pc_hw_add(b, " HTTP/1.1\r\n", 11);
    const char *host = f->up->preserve_host && r->host && *r->host
                           ? r->host
                           : f->target->hostport;
    pc_hw_header(b, "Host", 4, host, strlen(host));
    /* X-Forwarded-For: every client-sent value, then the peer. */
    pc_hw_add(b, "X-Forwarded-For: ", 17);
    for (uint32_t i = 0; i < r->headers.n; i++) {
        const pc_header *h = &r->headers.v[i];
        if (pc_strieq(h->name, h->nlen, "x-forwarded-for", 15) && h->vlen) {
            pc_hw_add(b, h->value, h->vlen);
            pc_hw_add(b, ", ", 2);
        }
    }
    pc_hw_add(b, r->peer_text, strlen(r->peer_text));
    pc_hw_add(b, "\r\n", 2);
    for (uint32_t i = 0; i < r->headers.n; i++) {
        const pc_header *h = &r->headers.v[i];
        if (!skip_request_header(h))
            pc_hw_header(b, h->name, h->nlen, h->value, h->vlen);
    }
    pc_hw_header(b, "X-Forwarded-Proto", 17, r->tls ? "https" : "http",
            r->tls ? 5 : 4);
    if (r->host && *r->host)
        pc_hw_header(b, "X-Forwarded-Host", 16, r->host, strlen(r->host));
    pc_hw_header(b, "X-Request-Id", 12, r->request_id, strlen(r->request_id));
    if (r->chunked) {
        pc_hw_header(b, "Transfer-Encoding", 17, "chunked", 7);
    } else if (r->content_length >= 0) {
        pc_hw_add(b, "Content-Length: ", 16);
        pc_hw_u64(b, (uint64_t)r->content_length);
        pc_hw_add(b, "\r\n", 2);
    }
    pc_hw_add(b, "\r\n", 2);
    pc_hw_flush(b);
}

/* ---- attempts ------------------------------------------------------- */

static void up_event_cb(pc_sock *s, short what, void *arg);
static void up_write_cb(pc_sock *s, void *arg);

static void set_timeouts(fwd *f)
{
    uint64_t ms = f->up->read_timeout;
    /* The response clock starts once the request is fully sent. */
    pc_sock_set_timeouts(f->uc->sock, f->body_done ? ms : 0, ms);
}

/* Appends a copy of src to dst (src unchanged). */
static void copy_buffer(struct evbuffer *dst, struct evbuffer *src)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(src, -1, NULL, NULL, 0);
    if (n <= 0)
        return;
    if (n > 16) { /* rare: many small chains; make them one */
        evbuffer_pullup(src, -1);
        n = 1;
    }
    n = evbuffer_peek(src, -1, NULL, v, n);
    for (int k = 0; k < n; k++)
        evbuffer_add(dst, v[k].iov_base, v[k].iov_len);
}

/* The whole request as sent so far: head, then the body bytes. */
static void send_request(fwd *f, struct evbuffer *out)
{
    build_head(f, out);
    if (f->req->body)
        copy_buffer(out, f->req->body);
    else if (f->replay)
        copy_buffer(out, f->replay);
}

static void start_attempt(fwd *f)
{
    pc_req *r = f->req;
    size_t idx = f->target->index;
    pc_pool *p = pc_pool_get(r->worker->pools, f->target->url);
    f->attempts++;
    if (idx < 64)
        f->tried |= 1ull << idx;
    f->got_bytes = 0;
    r->upstream_target = f->target->url;
    pc_upconn *uc = f->force_fresh ? NULL : pc_pool_take(p);
    f->force_fresh = 0;
    if (!uc)
        uc = pc_pool_connect(p, f->up, f->target);
    if (!uc) {
        attempt_failed(f, F_CONNECT);
        return;
    }
    f->uc = uc;
    uc->owner = f;
    uc->connected = uc->requests > 0;
    llhttp_init(&uc->parser, HTTP_RESPONSE, &resp_settings);
    uc->parser.data = f;
    pc_sock_setcb(uc->sock, up_read_cb, up_write_cb, up_event_cb, f);
    pc_sock_set_read_hwm(uc->sock, UP_READ_HWM);
    pc_sock_set_write_lwm(uc->sock, PC_BODY_HWM / 4);
    if (uc->connected)
        set_timeouts(f);
    send_request(f, pc_sock_output(uc->sock));
    pc_sock_read(uc->sock, 1);
}

void pc_proxy_start(pc_req *r)
{
    const pc_upstream *u = r->route->upstream;
    int i = pc_balance_pick(r->worker->pools, r->cfg, u, &r->client, 0);
    if (i < 0) {
        r->sink->error(r, PC_ERR_UPSTREAM_UNAVAILABLE, NULL);
        return;
    }
    /* The forwarding state lives in the request's arena: it never
     * outlives the request (fwd_free runs before the sink's last call). */
    fwd *f = pc_arena_alloc(r->arena, sizeof *f);
    memset(f, 0, sizeof *f);
    f->req = r;
    f->up = u;
    f->target = &u->targets[i];
    f->t0 = pc_now_ns();
    f->replayable = 1;
    f->resp.content_length = -1;
    pc_headers_apply_rules(&r->headers, r->arena, &r->route->req_headers);
    pc_headers_strip_hop_by_hop(&r->headers);
    if (r->body) {
        /* A stage buffered the whole body (bounded by max_body): it is
         * replayable whatever its size. */
        f->body_done = 1;
    } else {
        f->body_done = !(r->chunked || r->content_length > 0);
    }
    r->handler = &handler_ops;
    r->handler_ctx = f;
    /* start_body never calls back synchronously, and start_attempt may end
     * the request (and free it) when every target fails at once: so the
     * body is asked for first. */
    if (!f->body_done)
        r->sink->start_body(r);
    start_attempt(f);
}

/* ---- request body (from conn) --------------------------------------- */

/* Makes room in the replay buffer for n more bytes, or gives replays up
 * when the body outgrows REPLAY_MAX. */
static void keep_for_replay(fwd *f, size_t n)
{
    if (!f->replayable)
        return;
    size_t have = f->replay ? evbuffer_get_length(f->replay) : 0;
    if (have + n > REPLAY_MAX) {
        if (f->replay)
            evbuffer_free(f->replay);
        f->replay = NULL;
        f->replayable = 0;
        return;
    }
    if (!f->replay)
        f->replay = evbuffer_new();
}

static void write_body(fwd *f, const void *data, size_t len)
{
    pc_req *r = f->req;
    char hdr[24];
    int n = 0;
    if (r->chunked)
        n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
    keep_for_replay(f, len + 32);
    struct evbuffer *outs[2] = {f->uc ? pc_sock_output(f->uc->sock) : NULL,
                                f->replay};
    for (int k = 0; k < 2; k++) {
        if (!outs[k])
            continue;
        if (n)
            evbuffer_add(outs[k], hdr, (size_t)n);
        evbuffer_add(outs[k], data, len);
        if (n)
            evbuffer_add(outs[k], "\r\n", 2);
    }
}

static void h_body(pc_req *r, const char *data, size_t len)
{
    fwd *f = r->handler_ctx;
    if (len)
        write_body(f, data, len);
}

/* Content-Length request bodies: the bytes change buffers without a copy,
 * except the copy kept for a replay while the request is still small. */
static void h_body_move(pc_req *r, struct evbuffer *src, size_t n)
{
    fwd *f = r->handler_ctx;
    keep_for_replay(f, n);
    if (f->replay) {
        unsigned char *p = evbuffer_pullup(src, (ssize_t)n);
        evbuffer_add(f->replay, p, n);
    }
    if (f->uc)
        evbuffer_remove_buffer(src, pc_sock_output(f->uc->sock), n);
    else
        evbuffer_drain(src, n);
}

static void h_body_end(pc_req *r)
{
    fwd *f = r->handler_ctx;
    f->body_done = 1;
    if (r->chunked) {
        if (f->uc)
            evbuffer_add(pc_sock_output(f->uc->sock), "0\r\n\r\n", 5);
        if (f->replay)
            evbuffer_add(f->replay, "0\r\n\r\n", 5);
    }
    if (f->uc && f->uc->connected)
        set_timeouts(f);
}

static size_t h_backlog(pc_req *r)
{
    fwd *f = r->handler_ctx;
    return f->uc ? evbuffer_get_length(pc_sock_output(f->uc->sock)) : 0;
}

static void h_resume(pc_req *r)
{
    fwd *f = r->handler_ctx;
    if (!f->paused || !f->uc)
        return;
    f->paused = 0;
    pc_sock_read(f->uc->sock, 1);
    pc_sock_trigger_read(f->uc->sock);
}

static void h_cancel(pc_req *r)
{
    fwd *f = r->handler_ctx;
    /* The client is gone: a half-used upstream connection cannot be
     * reused. */
    detach_conn(f, 0);
    fwd_free(f);
}

static const pc_handler_ops handler_ops = {
    .body = h_body,
    .body_move = h_body_move,
    .body_end = h_body_end,
    .backlog = h_backlog,
    .resume = h_resume,
    .cancel = h_cancel,
};

/* ---- upstream events -------------------------------------------------- */

static void up_write_cb(pc_sock *s, void *arg)
{
    fwd *f = arg;
    (void)s;
    if (f->req->sink->resume_body)
        f->req->sink->resume_body(f->req);
}

static void complete(fwd *f)
{
    pc_req *r = f->req;
    pc_upconn *uc = f->uc;
    int keep = uc && llhttp_should_keep_alive(&uc->parser) && f->body_done &&
               evbuffer_get_length(pc_sock_output(uc->sock)) == 0 &&
               evbuffer_get_length(pc_sock_input(uc->sock)) == 0;
    detach_conn(f, keep);
    r->handler = NULL;
    r->upstream_ns = pc_now_ns() - f->t0;
    fwd_free(f);
    r->sink->end(r);
}

/* Parses what the upstream sent. Returns -1 when the request ended
 * (completed or failed: f is freed), 0 otherwise. */
static int drain_input(fwd *f)
{
    struct evbuffer *in = pc_sock_input(f->uc->sock);
    while (evbuffer_get_length(in) > 0 && !f->resp_done) {
        if (f->resp_started && f->req->sink->backlog(f->req) > PC_OUT_HWM) {
            f->paused = 1;
            pc_sock_read(f->uc->sock, 0);
            return 0;
        }
        if (f->raw_left) {
            size_t avail = evbuffer_get_length(in);
            size_t n = avail < f->raw_left ? avail : (size_t)f->raw_left;
            f->req->sink->body_move(f->req, in, n);
            f->raw_left -= n;
            if (f->raw_left == 0)
                f->resp_done = 1;
            continue;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        f->got_bytes = 1;
        enum llhttp_errno e = llhttp_execute(&f->uc->parser, v.iov_base, v.iov_len);
        size_t used = v.iov_len;
        if (e != HPE_OK)
            used = (size_t)(llhttp_get_error_pos(&f->uc->parser) - (char *)v.iov_base);
        evbuffer_drain(in, used);
        if (e == HPE_PAUSED && (f->resp_done || f->raw_left))
            continue;
        if (e != HPE_OK) {
            pc_log(PC_LOG_WARN, "upstream %s sent an invalid response: %s",
                   f->target->url, llhttp_get_error_reason(&f->uc->parser));
            attempt_failed(f, F_INVALID);
            return -1;
        }
    }
    if (f->resp_done) {
        complete(f);
        return -1;
    }
    if (f->up_eof) {
        /* Everything received is parsed: a close-delimited body ends
         * here; anything else is a truncated response. */
        enum llhttp_errno e = f->resp_started && !f->raw_left
                                  ? llhttp_finish(&f->uc->parser)
                                  : HPE_INVALID_EOF_STATE;
        /* message-complete pauses the parser, so a close-delimited body
         * that ended cleanly reports HPE_PAUSED here. */
        if ((e == HPE_OK || e == HPE_PAUSED) && f->resp_done) {
            complete(f);
            return -1;
        }
        attempt_failed(f, f->got_bytes ? F_INVALID : F_RESET);
        return -1;
    }
    return 0;
}

static void up_read_cb(pc_sock *s, void *arg)
{
    (void)s;
    drain_input(arg);
}

static void up_event_cb(pc_sock *s, short what, void *arg)
{
    fwd *f = arg;
    (void)s;
    if (what & PC_SOCK_CONNECTED) {
        f->uc->connected = 1;
        set_timeouts(f);
        return;
    }
    if (what & PC_SOCK_TIMEOUT) {
        attempt_failed(f, f->uc->connected ? F_TIMEOUT : F_CONNECT);
        return;
    }
    if (!f->uc->connected) {
        attempt_failed(f, F_CONNECT);
        return;
    }
    if ((what & PC_SOCK_EOF) && !(what & PC_SOCK_ERROR)) {
        f->up_eof = 1;
        if (!f->paused)
            drain_input(f);
        return;
    }
    attempt_failed(f, f->resp_started ? F_INVALID : F_RESET);
}

/* ---- response parsing ------------------------------------------------- */

static void grow(char **p, size_t *len, size_t *cap, const char *at, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *p = pc_xrealloc(*p, *cap);
    }
    memcpy(*p + *len, at, n);
    *len += n;
    (*p)[*len] = '\0';
}

static int r_field(llhttp_t *p, const char *at, size_t n)
{
    fwd *f = p->data;
    grow(&f->field, &f->flen, &f->fcap, at, n);
    return 0;
}

static int r_value(llhttp_t *p, const char *at, size_t n)
{
    fwd *f = p->data;
    grow(&f->value, &f->vlen, &f->vcap, at, n);
    return 0;
}

static int r_value_complete(llhttp_t *p)
{
    fwd *f = p->data;
    size_t vl = f->vlen;
    while (vl && (f->value[vl - 1] == ' ' || f->value[vl - 1] == '\t'))
        vl--;
    if (f->resp.headers.n >= 1000)
        return -1;
    pc_headers_add(&f->resp.headers, f->req->arena, f->field ? f->field : "",
                   f->flen, f->value ? f->value : "", vl);
    f->flen = f->vlen = 0;
    return 0;
}

static int r_headers_complete(llhttp_t *p)
{
    fwd *f = p->data;
    pc_req *r = f->req;
    int status = p->status_code;
    if (status >= 100 && status < 200) {
        if (status == 101)
            return -1; /* no upgrade was asked for */
        f->in_1xx = 1;
        f->resp.headers.n = 0;
        return 0;
    }
    f->resp.status = status;
    f->resp.http_minor = p->http_minor;
    f->resp.content_length =
        (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (p->flags & F_CHUNKED)
        f->resp.content_length = -1;
    int head = r->method_bit == PC_M_HEAD;
    f->resp.no_body = head || status == 204 || status == 304;
    if (status == 204)
        f->resp.content_length = -1;
    pc_headers_strip_hop_by_hop(&f->resp.headers);
    pc_headers_remove(&f->resp.headers, "content-length");
    f->resp_started = 1;
    r->sink->head(r, &f->resp);
    if (f->resp.no_body)
        return 1;
    if (f->resp.content_length > 0 && r->sink->body_move) {
        /* Known length: the body is moved buffer to buffer by
         * drain_input, without llhttp (re-initialised per request). */
        f->raw_left = (uint64_t)f->resp.content_length;
        return HPE_PAUSED;
    }
    return 0;
}

static int r_body(llhttp_t *p, const char *at, size_t n)
{
    fwd *f = p->data;
    f->req->sink->body(f->req, at, n);
    return 0;
}

static int r_message_complete(llhttp_t *p)
{
    fwd *f = p->data;
    if (f->in_1xx) {
        f->in_1xx = 0;
        return 0;
    }
    f->resp_done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_header_field = r_field,
    .on_header_value = r_value,
    .on_header_value_complete = r_value_complete,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_message_complete,
};
