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
#include "portcullis/chunked.h"
#include "portcullis/framing.h"
#include "portcullis/headscan.h"
#include "portcullis/headers.h"
#include "portcullis/hwrite.h"
#include "portcullis/errlog.h"
#include "portcullis/sock.h"
#include "portcullis/span.h"
#include "portcullis/util.h"
#include "portcullis/loop.h"

#define REPLAY_MAX (64 * 1024)
#define UP_READ_HWM (64 * 1024)
#define UP_MAX_FIELDS 1000
#define UP_MAX_INTERIM 8       /* 1xx heads before the final one */
#define UP_TRAILER_MAX (64 * 1024) /* trailer bytes of a chunked response */
#define UP_TRAILER_FIELDS 100

typedef enum { F_CONNECT, F_RESET, F_TIMEOUT, F_INVALID } failure;

/* Where the response of an attempt is. */
typedef enum {
    R_HEAD,    /* reading a head (the final one, or after a 1xx) */
    R_LENGTH,  /* Content-Length body: raw_left bytes to move */
    R_CHUNKED, /* chunked body through the strict decoder */
    R_CLOSE,   /* body until the upstream closes */
    R_DONE,    /* the whole response was read */
} resp_phase;

/* Everything one attempt learns from its upstream connection. Rebuilt
 * (zeroed) at the start of every attempt, so nothing a failed target sent
 * (part of a head, a Set-Cookie, a length, a 1xx) survives into the next
 * attempt: there is no other place such state could hide. */
typedef struct attempt {
    pc_upconn *uc;
    resp_phase phase;
    pc_resp resp;              /* headers in the request arena */
    uint64_t raw_left;         /* R_LENGTH: body bytes still to move */
    pc_chunked ck;             /* R_CHUNKED decoder */
    const char *invalid;       /* why the response is invalid (502) */
    pc_span field, value;      /* header being parsed (span.h) */
    uint64_t head_bytes;       /* of every head so far (1xx included):
                                  limits.max_upstream_header_bytes */
    unsigned interim;          /* 1xx heads so far */
    pc_headscan scan;          /* its line discipline and status line */
    int got_bytes;             /* the upstream sent something */
    int probe;                 /* admitted as a half-open probe */
    int recorded;              /* its outcome went to the breaker */
    int up_eof;                /* upstream closed; input may remain */
} attempt;

typedef struct fwd {
    pc_req *req;
    const pc_upstream *up;
    const pc_target *target;
    pc_headers hdrs;           /* end-to-end headers sent upstream, built
                                  once (pc_headers_upstream) */
    pc_framing out;            /* request body framing towards upstreams */
    struct evbuffer *replay;   /* streamed body so far (created lazily) */
    int replayable;            /* everything sent so far can be sent again */
    uint64_t tried;            /* bitmask of target indexes tried */
    unsigned attempts;
    int fresh_retry_used;
    int body_done;             /* client body complete (or none) */
    int resp_started;          /* a head was passed to the sink: no retry */
    int paused;                /* client backpressure: upstream not read */
    int force_fresh;           /* next attempt must not use the pool */
    uint64_t t0;
    attempt a;                 /* the current attempt */
} fwd;

static const pc_handler_ops handler_ops;
static const llhttp_settings_t resp_settings;
static void start_attempt(fwd *f, int probe);
static void up_read_cb(pc_sock *s, void *arg);
static void parser_init(fwd *f);

/* Frees the attempt's parse buffers and zeroes it (its connection must
 * have been detached). */
static void attempt_reset(fwd *f)
{
    pc_span_free(&f->a.field);
    pc_span_free(&f->a.value);
    memset(&f->a, 0, sizeof f->a);
}

static void fwd_free(fwd *f)
{
    if (f->replay)
        evbuffer_free(f->replay);
    f->replay = NULL;
    attempt_reset(f);
}

static void detach_conn(fwd *f, int keep)
{
    pc_upconn *uc = f->a.uc;
    if (!uc)
        return;
    f->a.uc = NULL;
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

/* THE place where an attempt's outcome reaches the circuit breaker: once
 * per attempt, at its final response head (ok unless the status is in
 * failure_statuses) or at its failure, whichever comes first. A request
 * the client cancels records nothing (a probe slot it held is given back
 * when its half-open round ends). */
static void attempt_outcome(fwd *f, int ok)
{
    if (f->a.recorded || !f->up->breaker.enabled)
        return;
    f->a.recorded = 1;
    pc_targets_record(f->up, f->target, ok, f->a.probe, pc_now_ns());
}

static void attempt_failed(fwd *f, failure why)
{
    pc_req *r = f->req;
    int reused = f->a.uc && f->a.uc->requests > 0;
    int got_bytes = f->a.got_bytes;
    int probe = f->a.probe;
    pc_log(PC_LOG_DEBUG, "upstream %s: attempt to %s failed (%d)", f->up->name,
           f->target->url, (int)why);
    detach_conn(f, 0);
    if (!f->resp_started && f->replayable) {
        if (reused && !got_bytes && why == F_RESET && !f->fresh_retry_used) {
            f->fresh_retry_used = 1;
            f->attempts--; /* not the target's fault: not a retry */
            f->force_fresh = 1;
            start_attempt(f, probe); /* same target, fresh connection */
            return;
        }
    }
    attempt_outcome(f, 0);
    if (!f->resp_started && f->replayable && why != F_TIMEOUT &&
        why != F_INVALID && idempotent(r) && f->attempts <= f->up->retries) {
        int i = pc_targets_choose(r->loop->pools, r->cfg, f->up, &r->client,
                                  f->tried, pc_now_ns(), &probe);
        if (i >= 0) {
            f->target = &f->up->targets[i];
            start_attempt(f, probe);
            return;
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

/* The head of one attempt: request line, Host (the target's, or the
 * client's with preserve_host), the header list built once by
 * pc_headers_upstream (CONTRACT §3 order), the framing field. */
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
    for (uint32_t i = 0; i < f->hdrs.n; i++) {
        const pc_header *h = &f->hdrs.v[i];
        pc_hw_header(b, h->name, h->nlen, h->value, h->vlen);
    }
    pc_framing_write_header(&f->out, 0, b);
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
    pc_sock_set_timeouts(f->a.uc->sock, f->body_done ? ms : 0, ms);
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

static void start_attempt(fwd *f, int probe)
{
    pc_req *r = f->req;
    size_t idx = f->target->index;
    pc_pool *p = pc_pool_get(r->loop->pools, f->target);
    attempt_reset(f);
    f->a.probe = probe;
    f->attempts++;
    if (idx < 64)
        f->tried |= 1ull << idx;
    r->upstream_target = f->target->url;
    pc_upconn *uc = f->force_fresh ? NULL : pc_pool_take(p);
    f->force_fresh = 0;
    if (!uc)
        uc = pc_pool_connect(p, f->up, f->target);
    if (!uc) {
        attempt_failed(f, F_CONNECT);
        return;
    }
    f->a.uc = uc;
    uc->owner = f;
    uc->connected = uc->requests > 0;
    parser_init(f);
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
    /* The chain read the clock as the proxy stage started, just now
     * (stage_ns is 0 only with the metrics compiled out). */
    uint64_t now = r->stage_ns ? r->stage_ns : pc_now_ns();
    int probe;
    int i = pc_targets_choose(r->loop->pools, r->cfg, u, &r->client, 0, now,
                              &probe);
    if (i < 0) {
        /* No target admits it: answered without any upstream connection. */
        char v[24];
        snprintf(v, sizeof v, "%llu",
                 (unsigned long long)pc_targets_retry_after(u, now));
        pc_req_add_resp_header(r, "Retry-After", v);
        r->sink->error(r, PC_ERR_UPSTREAM_UNAVAILABLE,
                       "every target is unhealthy or its circuit open");
        return;
    }
    /* The forwarding state lives in the request's arena: it never
     * outlives the request (fwd_free runs before the sink's last call). */
    fwd *f = pc_arena_alloc(r->arena, sizeof *f);
    memset(f, 0, sizeof *f);
    f->req = r;
    f->up = u;
    f->target = &u->targets[i];
    f->t0 = now;
    f->replayable = 1;
    pc_headers_upstream(r, pc_cidr_set_contains(r->cfg->trusted_proxies, &r->peer),
                        &r->route->req_headers, &f->hdrs, r->arena);
    f->out = pc_framing_out(&r->framing, 1);
    /* A body a stage buffered (bounded by max_body) is replayable
     * whatever its size. */
    f->body_done = r->body != NULL || !pc_framing_has_body(&r->framing);
    r->handler = &handler_ops;
    r->handler_ctx = f;
    /* start_body never calls back synchronously, and start_attempt may end
     * the request (and free it) when every target fails at once: so the
     * body is asked for first. */
    if (!f->body_done)
        r->sink->start_body(r);
    start_attempt(f, probe);
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
    char hdr[24];
    int n = 0;
    if (f->out.kind == PC_FRAME_CHUNKED)
        n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
    keep_for_replay(f, len + 32);
    struct evbuffer *outs[2] = {f->a.uc ? pc_sock_output(f->a.uc->sock) : NULL,
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
    if (f->a.uc)
        evbuffer_remove_buffer(src, pc_sock_output(f->a.uc->sock), n);
    else
        evbuffer_drain(src, n);
}

static void h_body_end(pc_req *r)
{
    fwd *f = r->handler_ctx;
    f->body_done = 1;
    if (f->out.kind == PC_FRAME_CHUNKED) {
        if (f->a.uc)
            evbuffer_add(pc_sock_output(f->a.uc->sock), "0\r\n\r\n", 5);
        if (f->replay)
            evbuffer_add(f->replay, "0\r\n\r\n", 5);
    }
    if (f->a.uc && f->a.uc->connected)
        set_timeouts(f);
}

static size_t h_backlog(pc_req *r)
{
    fwd *f = r->handler_ctx;
    return f->a.uc ? pc_sock_pending(f->a.uc->sock) : 0;
}

static void h_resume(pc_req *r)
{
    fwd *f = r->handler_ctx;
    if (!f->paused || !f->a.uc)
        return;
    f->paused = 0;
    pc_sock_read(f->a.uc->sock, 1);
    pc_sock_trigger_read(f->a.uc->sock);
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

/* The upstream's own word on persistence (RFC 9112 §9.3), from the final
 * head's Connection field; framing is judged by the caller. Not
 * llhttp_should_keep_alive: it also looks at body framing as llhttp would
 * have read it, and llhttp reads no body here. */
static int upstream_keeps(const llhttp_t *p)
{
    if (p->flags & F_CONNECTION_CLOSE)
        return 0;
    if (p->http_major == 1 && p->http_minor == 0)
        return (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
    return 1;
}

static void complete(fwd *f)
{
    pc_req *r = f->req;
    pc_upconn *uc = f->a.uc;
    /* Bytes past the end of the response mean the upstream framed it
     * differently from us: that connection is never reused. */
    int keep = uc && f->a.resp.framing.kind != PC_FRAME_CLOSE &&
               upstream_keeps(&uc->parser) && f->body_done &&
               pc_sock_pending(uc->sock) == 0 &&
               evbuffer_get_length(pc_sock_input(uc->sock)) == 0;
    detach_conn(f, keep);
    r->handler = NULL;
    r->upstream_ns = pc_now_ns() - f->t0;
    fwd_free(f);
    r->sink->end(r);
}

/* A whole head was parsed (the parser paused at its end): a 1xx is
 * dropped and the next head parsed on a fresh parser; a final head is
 * checked, framed (http/framing.c) and passed to the sink. -1 when the
 * response is invalid. */
static int head_complete(fwd *f)
{
    pc_req *r = f->req;
    attempt *a = &f->a;
    llhttp_t *p = &a->uc->parser;
    int status = p->status_code;
    if (pc_framing_response(&a->resp.headers, status, r->method_bit == PC_M_HEAD,
                            &a->resp.framing, &a->invalid) != 0)
        return -1;
    if (a->resp.framing.kind == PC_FRAME_INTERIM) {
        if (++a->interim > UP_MAX_INTERIM) {
            a->invalid = "too many interim (1xx) responses";
            return -1;
        }
        a->resp.headers.n = 0; /* RFC 9110 §15.2: ends at its header section */
        parser_init(f);
        return 0;
    }
    a->resp.status = status;
    a->resp.http_minor = p->http_minor;
    attempt_outcome(f, !pc_breaker_status_fails(&f->up->breaker, status));
    switch (a->resp.framing.kind) {
    case PC_FRAME_LENGTH:
        a->raw_left = a->resp.framing.length;
        a->phase = a->raw_left ? R_LENGTH : R_DONE;
        break;
    case PC_FRAME_CHUNKED:
        pc_chunked_init(&a->ck, UP_TRAILER_MAX, UP_TRAILER_FIELDS);
        pc_chunked_allow_bws(&a->ck); /* extensions are dropped anyway */
        a->phase = R_CHUNKED;
        break;
    case PC_FRAME_CLOSE:
        a->phase = R_CLOSE;
        break;
    default:
        a->phase = R_DONE;
        break;
    }
    f->resp_started = 1;
    r->sink->head(r, &a->resp);
    return 0;
}

static void chunk_data(void *ctx, const char *p, size_t n)
{
    fwd *f = ctx;
    f->req->sink->body(f->req, p, n);
}

/* Reads what the upstream sent in the current phase from `in`. Returns 0
 * to go on, -1 when the response is invalid (a->invalid says why). */
static int read_some(fwd *f, struct evbuffer *in)
{
    attempt *a = &f->a;
    size_t avail = evbuffer_get_length(in);
    if (a->phase == R_LENGTH || a->phase == R_CLOSE) {
        size_t n = a->phase == R_CLOSE || avail < a->raw_left ? avail
                                                              : (size_t)a->raw_left;
        f->req->sink->body_move(f->req, in, n);
        if (a->phase == R_LENGTH && (a->raw_left -= n) == 0)
            a->phase = R_DONE;
        return 0;
    }
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return 0;
    if (a->phase == R_CHUNKED) {
        size_t used = 0;
        pc_chunked_status st = pc_chunked_decode(&a->ck, v.iov_base, v.iov_len,
                                                 &used, chunk_data, f, &a->invalid);
        evbuffer_drain(in, used);
        if (st == PC_CHUNKED_ERROR)
            return -1;
        if (st == PC_CHUNKED_DONE)
            a->phase = R_DONE;
        return 0;
    }
    a->got_bytes = 1;
    uint64_t max = f->req->cfg->limits.max_upstream_header_bytes;
    if (a->head_bytes + v.iov_len > max)
        v.iov_len = (size_t)(max + 1 - a->head_bytes);
    size_t end = 0;
    pc_headscan_status hs = pc_headscan_feed(&a->scan, v.iov_base, v.iov_len,
                                             &end, &a->invalid);
    if (hs == PC_HEADSCAN_ERROR)
        return -1;
    if (hs == PC_HEADSCAN_DONE)
        v.iov_len = end; /* llhttp gets the head and not a byte more */
    enum llhttp_errno e = llhttp_execute(&a->uc->parser, v.iov_base, v.iov_len);
    size_t used = v.iov_len;
    if (e != HPE_OK)
        used = (size_t)(llhttp_get_error_pos(&a->uc->parser) - (char *)v.iov_base);
    pc_span_keep(&a->field); /* a field cut by the end of this read */
    pc_span_keep(&a->value);
    evbuffer_drain(in, used);
    a->head_bytes += used;
    if (e == HPE_PAUSED)
        return head_complete(f);
    if (e != HPE_OK) {
        if (!a->invalid)
            a->invalid = llhttp_get_error_reason(&a->uc->parser);
        return -1;
    }
    if (hs == PC_HEADSCAN_DONE) {
        a->invalid = "malformed response head"; /* llhttp read it otherwise */
        return -1;
    }
    if (a->head_bytes > max) {
        a->invalid = "response head too large";
        return -1;
    }
    return 0;
}

/* The upstream closed and everything received is parsed: a
 * close-delimited body ends here; anything else was cut short. */
static void at_eof(fwd *f)
{
    attempt *a = &f->a;
    if (a->phase == R_CLOSE) {
        a->phase = R_DONE;
        complete(f);
        return;
    }
    /* Closed before a whole head: nothing reached the client, so this is
     * a failed connection like a reset (retried on another target for
     * idempotent methods, as nginx's "error" does); closed inside a body
     * is a truncated response. */
    attempt_failed(f, a->phase == R_HEAD ? F_RESET : F_INVALID);
}

/* Parses what the upstream sent. Returns -1 when the request ended
 * (completed or failed: f is freed), 0 otherwise. */
static int drain_input(fwd *f)
{
    struct evbuffer *in = pc_sock_input(f->a.uc->sock);
    while (evbuffer_get_length(in) > 0 && f->a.phase != R_DONE) {
        if (f->resp_started && f->req->sink->backlog(f->req) > PC_OUT_HWM) {
            f->paused = 1;
            pc_sock_read(f->a.uc->sock, 0);
            return 0;
        }
        if (read_some(f, in) != 0) {
            pc_log(PC_LOG_WARN, "upstream %s sent an invalid response: %s",
                   f->target->url, f->a.invalid ? f->a.invalid : "?");
            attempt_failed(f, F_INVALID);
            return -1;
        }
    }
    if (f->a.phase == R_DONE) {
        complete(f);
        return -1;
    }
    if (f->a.up_eof) {
        at_eof(f);
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
        f->a.uc->connected = 1;
        set_timeouts(f);
        return;
    }
    if (what & PC_SOCK_TIMEOUT) {
        attempt_failed(f, f->a.uc->connected ? F_TIMEOUT : F_CONNECT);
        return;
    }
    if (!f->a.uc->connected) {
        attempt_failed(f, F_CONNECT);
        return;
    }
    if ((what & PC_SOCK_EOF) && !(what & PC_SOCK_ERROR)) {
        f->a.up_eof = 1;
        if (!f->paused)
            drain_input(f);
        return;
    }
    attempt_failed(f, f->resp_started ? F_INVALID : F_RESET);
}

/* ---- response heads (llhttp: heads only) ------------------------------- */

static int r_field(llhttp_t *p, const char *at, size_t n)
{
    attempt *a = &((fwd *)p->data)->a;
    pc_span_add(&a->field, at, n);
    return 0;
}

static int r_value(llhttp_t *p, const char *at, size_t n)
{
    attempt *a = &((fwd *)p->data)->a;
    pc_span_add(&a->value, at, n);
    return 0;
}

/* Response fields are checked like the client's (RFC 9110 §5): a field
 * name that is not a token or a value with control characters makes the
 * whole response invalid (502), never forwarded. */
static int r_value_complete(llhttp_t *p)
{
    fwd *f = p->data;
    attempt *a = &f->a;
    size_t vl = a->value.len;
    const char *v = a->value.p ? a->value.p : "";
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    if (!pc_header_name_valid(a->field.p, a->field.len)) {
        a->invalid = "invalid header field name";
        return -1;
    }
    if (!pc_header_value_valid(v, vl)) {
        a->invalid = "invalid header field value";
        return -1;
    }
    if (a->resp.headers.n >= UP_MAX_FIELDS) {
        a->invalid = "too many header fields";
        return -1;
    }
    pc_headers_add(&a->resp.headers, f->req->arena, a->field.p, a->field.len,
                   v, vl);
    pc_span_reset(&a->field);
    pc_span_reset(&a->value);
    return 0;
}

/* Every head stops the parser: its body (if any) is read by framing, never
 * by llhttp (read_some). */
static int r_headers_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_header_field = r_field,
    .on_header_value = r_value,
    .on_header_value_complete = r_value_complete,
    .on_headers_complete = r_headers_complete,
};

/* A fresh parser and scanner for the next head (each attempt, and after
 * each 1xx). */
static void parser_init(fwd *f)
{
    llhttp_init(&f->a.uc->parser, HTTP_RESPONSE, &resp_settings);
    f->a.uc->parser.data = f;
    pc_span_reset(&f->a.field);
    pc_span_reset(&f->a.value);
    pc_headscan_init(&f->a.scan, 1);
}
