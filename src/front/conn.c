/* conn.c: one client connection (plain or TLS): reading requests with
 * llhttp, running the chain, and writing responses that handlers pass
 * through the sink. Owns the connection, its parser and the current
 * pc_req; never decides policy (chain/) and never talks to upstreams
 * (proxy/).
 *
 * DESIGN: one request at a time per connection. Pipelined bytes wait in
 * the input buffer (bounded by the read high watermark) until the current
 * response is done. The parser pauses at two points: after a head with a
 * body (until a handler calls start_body) and after each complete message
 * (until its response is done).
 *
 *   idle ─first byte─► head ─head ok─► chain ─start_body─► body ─► wait
 *     ▲                  │ bad/limits/timeout: error + close     │
 *     └──────────── response end (keep-alive) ◄─────────────────┘
 *
 * A connection is never freed inside a sink call: closing marks it and a
 * deferred write callback frees it once the output is flushed. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_int.h"
#include "portcullis/chain.h"
#include "portcullis/chunked.h"
#include "portcullis/conn.h"
#include "portcullis/framing.h"
#include "portcullis/headscan.h"
#include "portcullis/headers.h"
#include "portcullis/hwrite.h"
#include "portcullis/errlog.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"
#include "portcullis/loop.h"

#define READ_HWM (64 * 1024)
#define BODY_HWM PC_BODY_HWM
#define OUT_LWM PC_OUT_LWM

static const pc_sink_ops sink_ops;
static void conn_process(pc_conn *c);

static void set_read_timeout(pc_conn *c, uint64_t ms)
{
    /* The send side gets client_body_timeout too: a client that stops
     * reading its response is as stuck as one that stops sending. */
    pc_sock_set_timeouts(c->sock, ms, c->loop->cfg->limits.client_body_timeout);
}

static void conn_closed(pc_conn *c);

static void conn_free(pc_conn *c)
{
    if (c->req)
        pc_conn_free_req(c);
    pc_scratch_free(c);
    pc_sock_free(c->sock);
    pc_config_unref(c->tls_gen);
    conn_closed(c);
    free(c);
}

/* Marks the connection for closing once everything queued is written. */
static void close_later(pc_conn *c)
{
    c->closing = 1;
    pc_sock_read(c->sock, 0);
    pc_sock_set_write_lwm(c->sock, 0);
    pc_sock_trigger_write(c->sock);
}

void pc_conn_free_req(pc_conn *c)
{
    pc_req *r = c->req;
    if (!r)
        return;
    if (r->handler && r->handler->cancel)
        r->handler->cancel(r);
    r->handler = NULL;
    pc_scratch_free(c); /* in the arena freed below */
    pc_chain_req_free(r); /* a pending wait is cancelled, filters released */
    if (r->body)
        evbuffer_free(r->body);
    pc_config_unref(r->cfg);
    pc_arena_free(r->arena);
    c->req = NULL;
}

pc_req *pc_conn_new_req(pc_conn *c)
{
    pc_arena *a = pc_arena_new_cached(c->loop->arenas);
    pc_req *r = pc_arena_alloc(a, sizeof *r);
    memset(r, 0, sizeof *r);
    r->arena = a;
    r->loop = c->loop;
    r->cfg = pc_config_ref(c->loop->cfg);
    c->recent = 1;
    r->start_ns = pc_now_ns();
    r->max_body = r->cfg->limits.max_body_bytes;
    r->tls = c->tls;
    r->peer = c->peer;
    pc_ip_format(&c->peer, r->peer_text, sizeof r->peer_text);
    r->sink = &sink_ops;
    r->sink_ctx = c;
    if (c->tls)
        r->tls_version = SSL_get_version(pc_sock_ssl(c->sock));
    pc_loop_request_id(c->loop, r->request_id);
    c->req = r;
    c->head_bytes = c->body_bytes = c->raw_left = 0;
    c->ck = NULL;
    c->nheaders = 0;
    c->head_ready = c->head_done = c->has_body = c->body_started = 0;
    c->msg_done = c->resp_started = c->resp_chunked = 0;
    c->fail = PC_ERR_NONE;
    c->fail_msg = NULL;
    c->header_deadline = r->start_ns + c->loop->cfg->limits.client_header_timeout *
                                           1000000ull;
    set_read_timeout(c, c->loop->cfg->limits.client_header_timeout);
    return r;
}

static void write_head(pc_conn *c, pc_req *r, pc_resp *resp);

/* Writes a complete gateway error response for the current request: the
 * head from errors.c's table goes through write_head like a proxied one
 * (extra headers such as WWW-Authenticate, on_response hooks), the JSON
 * body through the body filters when the request has any. */
static void write_error(pc_conn *c, pc_errcode e, const char *msg, int close)
{
    char body[1024];
    pc_req *r = c->req ? c->req : pc_conn_new_req(c); /* every caller has one */
    pc_resp resp;
    size_t n = pc_err_response(r, e, msg, &resp, body, sizeof body);
    if (close)
        c->keepalive = 0;
    write_head(c, r, &resp);
    /* A stage may have answered otherwise (the cache's stale-if-error
     * serves a stored response instead): then no error was sent. */
    if (r->status == pc_err_info(e)->status)
        r->error = e;
    if (pc_chain_filtering(r)) {
        pc_chain_body(r, body, n, 1);
        if (c->resp_chunked)
            evbuffer_add(pc_sock_output(c->sock), "0\r\n\r\n", 5);
        return;
    }
    if (resp.framing.kind != PC_FRAME_NONE) /* HEAD: the length only */
        evbuffer_add(pc_sock_output(c->sock), body, n);
    r->bytes_out += n;
}

/* llhttp reads one head and pauses (request.c): every request starts on
 * a fresh parser. */
static void parser_init(pc_conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &pc_request_settings);
    c->parser.data = c;
    /* Let any single-digit version through llhttp so that a well-formed
     * HTTP/1.2 or HTTP/2.0 gets 505 from on_version_complete, not 400. */
    c->parser.lenient_flags |= LENIENT_VERSION;
}

static void scan_reset(pc_conn *c)
{
    pc_headscan_init(&c->scan, 0);
}

/* The current response is complete: log, then either close or get ready
 * for the next (pipelined) request. */
static void finish_request(pc_conn *c)
{
    pc_req *r = c->req;
    int keep = c->keepalive && c->msg_done && !c->peer_eof && !c->loop->draining;
    if (r) {
        c->loop->ops->request_done(c->loop, r);
        pc_conn_free_req(c);
    }
    scan_reset(c);
    if (!keep) {
        close_later(c);
        return;
    }
    set_read_timeout(c, c->loop->cfg->limits.keepalive_timeout);
    parser_init(c);
    pc_sock_read(c->sock, 1);
    /* Pipelined bytes may already be waiting; do not recurse into the
     * handler that called us. */
    pc_sock_trigger_read(c->sock);
}

static void fail_request(pc_conn *c, pc_errcode e, const char *msg)
{
    if (c->req && c->req->handler && c->req->handler->cancel) {
        c->req->handler->cancel(c->req);
        c->req->handler = NULL;
    }
    if (c->resp_started) {
        close_later(c);
        if (c->req)
            pc_conn_free_req(c);
        return;
    }
    write_error(c, e, msg, 1);
    c->keepalive = 0;
    finish_request(c);
}

/* Moves Content-Length body bytes to the handler as they are. */
static void move_body(pc_conn *c, struct evbuffer *in, size_t avail)
{
    pc_req *r = c->req;
    size_t n = avail < c->raw_left ? avail : (size_t)c->raw_left;
    c->raw_left -= n;
    c->body_bytes += n;
    r->bytes_in += n;
    if (c->body_bytes > r->max_body) {
        fail_request(c, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
        return;
    }
    if (r->handler && r->handler->body_move)
        r->handler->body_move(r, in, n);
    else
        evbuffer_drain(in, n);
    if (c->raw_left == 0) {
        c->msg_done = 1;
        r = c->req; /* the handler may not end the request, but be safe */
        if (r && r->handler && r->handler->body_end)
            r->handler->body_end(r);
    }
}

static void chunk_data(void *ctx, const char *p, size_t n)
{
    pc_conn *c = ctx;
    pc_req *r = c->req;
    c->body_bytes += n;
    r->bytes_in += n;
    if (c->body_bytes > r->max_body) {
        c->fail = PC_ERR_PAYLOAD_TOO_LARGE;
        return;
    }
    if (c->fail == PC_ERR_NONE && r->handler && r->handler->body)
        r->handler->body(r, p, n);
}

/* Decodes a chunked request body from the input; -1 when the request
 * failed (answered, connection closing). */
static int decode_chunked(pc_conn *c, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return 0;
    size_t used = 0;
    const char *why = NULL;
    pc_chunked_status st =
        pc_chunked_decode(c->ck, v.iov_base, v.iov_len, &used, chunk_data, c, &why);
    evbuffer_drain(in, used);
    if (c->fail != PC_ERR_NONE) {
        fail_request(c, c->fail, NULL);
        return -1;
    }
    if (st == PC_CHUNKED_ERROR) {
        fail_request(c, PC_ERR_BAD_REQUEST, why);
        return -1;
    }
    if (st == PC_CHUNKED_DONE) {
        c->ck = NULL;
        c->msg_done = 1;
        pc_req *r = c->req;
        if (r->handler && r->handler->body_end)
            r->handler->body_end(r);
    }
    return 0;
}

static void run_head(pc_conn *c)
{
    pc_req *r = c->req;
    if (r->framing.kind == PC_FRAME_CHUNKED) {
        /* Trailer fields count against what the head left of
         * max_header_bytes and max_headers (CONTRACT §2 "Trailers"). */
        uint64_t maxb = r->cfg->limits.max_header_bytes;
        uint64_t maxf = r->cfg->limits.max_headers;
        c->ck = pc_arena_alloc(r->arena, sizeof *c->ck);
        pc_chunked_init(c->ck, maxb > c->head_bytes ? (size_t)(maxb - c->head_bytes) : 0,
                        maxf > c->nheaders ? (unsigned)(maxf - c->nheaders) : 0);
    }
    c->head_ready = 0;
    c->head_done = 1;
    c->keepalive = c->req->keepalive;
    set_read_timeout(c, 0);
    if (!c->has_body)
        c->body_started = 1;
    pc_chain_start(c->req);
}

static void conn_process(pc_conn *c)
{
    struct evbuffer *in = pc_sock_input(c->sock);
    while (!c->closing) {
        size_t avail = evbuffer_get_length(in);
        if (c->head_ready) {
            run_head(c);
            continue;
        }
        if (avail == 0)
            break;
        if (!c->req && pc_sock_pending(c->sock) > PC_OUT_HWM) {
            /* One output rule for every response, proxied or made here: a
             * client that does not read its answers gets no more parsed
             * (write_cb resumes below the low watermark). */
            pc_sock_read(c->sock, 0);
            c->out_paused = 1;
            break;
        }
        if (c->req && c->head_done) {
            if (c->msg_done || !c->body_started)
                break;
            if (c->req->handler && c->req->handler->backlog &&
                c->req->handler->backlog(c->req) > BODY_HWM) {
                pc_sock_read(c->sock, 0);
                c->read_paused = 1;
                break;
            }
            if (c->raw_left) {
                move_body(c, in, avail);
                continue;
            }
            if (c->ck) {
                if (decode_chunked(c, in) < 0)
                    return;
                continue;
            }
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t len = v.iov_len;
        int in_head = !c->req || !c->head_done;
        if (!c->req)
            /* The head's first byte (an empty line included) starts the
             * request: its deadline and its byte count. */
            pc_conn_new_req(c);
        if (in_head) {
            /* Line discipline first (bare CR or LF, obs-fold: lib/headscan):
             * llhttp then gets the head and not a byte more. */
            const char *why = NULL;
            if (pc_headscan_window(&c->scan, v.iov_base, len, c->head_bytes,
                                   c->loop->cfg->limits.max_header_bytes, &len,
                                   &why) == PC_HEADSCAN_ERROR) {
                fail_request(c, PC_ERR_BAD_REQUEST, why);
                return;
            }
        }
        enum llhttp_errno e = llhttp_execute(&c->parser, v.iov_base, len);
        size_t used = len;
        if (e != HPE_OK)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - (char *)v.iov_base);
        if (in_head) {
            pc_scratch_keep(c); /* the pieces must outlive the drain */
            c->head_bytes += used;
        }
        evbuffer_drain(in, used);
        if (e == HPE_PAUSED && c->head_ready)
            continue; /* a head, and only a head: run it */
        if (e == HPE_OK && used == 0) {
            /* Every turn consumes input or ends the connection: here the
             * head has reached max_header_bytes. */
            fail_request(c, PC_ERR_HEADERS_TOO_LARGE, NULL);
            return;
        }
        if (e != HPE_OK) {
            if (e == HPE_INVALID_METHOD) /* a prefix was taken for it */
                c->req->method = NULL, c->req->method_bit = 0;
            pc_errcode code = c->fail != PC_ERR_NONE ? c->fail : PC_ERR_BAD_REQUEST;
            const char *msg = c->fail != PC_ERR_NONE ? c->fail_msg
                                                     : llhttp_get_error_reason(&c->parser);
            fail_request(c, code, msg);
            return;
        }
        if (in_head && c->scan.done && !c->head_ready) {
            /* llhttp did not end the head where the scan did. */
            fail_request(c, PC_ERR_BAD_REQUEST, "malformed message head");
            return;
        }
        if (in_head && !c->head_ready &&
            c->head_bytes > c->loop->cfg->limits.max_header_bytes) {
            fail_request(c, PC_ERR_HEADERS_TOO_LARGE, NULL);
            return;
        }
        if (in_head && !c->head_ready) {
            uint64_t now = pc_now_ns();
            uint64_t left = c->header_deadline > now
                                ? (c->header_deadline - now) / 1000000 + 1
                                : 1;
            set_read_timeout(c, left);
        }
    }
}

static void read_cb(pc_sock *s, void *arg)
{
    (void)s;
    conn_process(arg);
}

static void write_cb(pc_sock *s, void *arg)
{
    pc_conn *c = arg;
    if (c->closing) {
        if (pc_sock_pending(s) == 0)
            conn_free(c);
        return;
    }
    if (c->req && c->req->handler && c->req->handler->resume &&
        pc_sock_pending(s) <= OUT_LWM)
        c->req->handler->resume(c->req);
    if (c->out_paused && pc_sock_pending(s) <= OUT_LWM) {
        c->out_paused = 0;
        pc_sock_read(s, 1);
        pc_sock_trigger_read(s);
    }
}

static void event_cb(pc_sock *s, short what, void *arg)
{
    pc_conn *c = arg;
    (void)s;
    if (what & PC_SOCK_TIMEOUT) {
        if (c->closing || (what & PC_SOCK_WRITING)) {
            conn_free(c);
            return;
        }
        if (!c->req) { /* keep-alive idle */
            conn_free(c);
            return;
        }
        fail_request(c, PC_ERR_REQUEST_TIMEOUT, NULL);
        return;
    }
    /* EOF or error. */
    c->peer_eof = 1;
    if (c->closing || !c->req || !c->head_done || !c->msg_done ||
        (what & PC_SOCK_ERROR)) {
        conn_free(c);
        return;
    }
    /* The whole request is in and the client half-closed: answer it, then
     * close. */
    c->keepalive = 0;
}

/* The loop's list of connections (pc_loop.conns). */
static void conn_opened(pc_loop *l, pc_conn *c)
{
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
}

static void conn_closed(pc_conn *c)
{
    pc_loop *l = c->loop;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    l->ops->conn_closed(l, &c->peer, c->counted_ip);
}

/* Called by the worker for each accepted socket. */
pc_conn *pc_conn_accept(pc_loop *w, evutil_socket_t fd,
                        const struct sockaddr *sa, socklen_t salen,
                        SSL_CTX *ssl_ctx, int counted_ip)
{
    pc_conn *c = pc_xcalloc(1, sizeof *c);
    c->loop = w;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)sa;
        c->peer.family = 4;
        memcpy(c->peer.b, &s4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        c->peer.family = 6;
        memcpy(c->peer.b, &s6->sin6_addr, 16);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(c->peer.b, mapped, 12) == 0) {
            c->peer.family = 4;
            memmove(c->peer.b, c->peer.b + 12, 4);
        }
    }
    (void)salen;
    SSL *ssl = NULL;
    if (ssl_ctx) {
        ssl = SSL_new(ssl_ctx);
        if (!ssl) { /* never fall back to plain text on a TLS listener */
            close(fd);
            free(c);
            return NULL;
        }
        c->tls = 1;
        c->recent = 1;
    }
    c->sock = pc_sock_accept(w->sockloop, fd, ssl);
    if (!c->sock) {
        free(c);
        return NULL;
    }
    parser_init(c);
    c->keepalive = 1;
    if (ssl) /* the SNI table and certificates the handshake uses belong to
                this generation: keep it while the connection lives */
        c->tls_gen = pc_config_ref(w->cfg);
    c->counted_ip = counted_ip != 0;
    conn_opened(w, c);
    pc_sock_setcb(c->sock, read_cb, write_cb, event_cb, c);
    pc_sock_set_read_hwm(c->sock, READ_HWM);
    pc_sock_set_write_lwm(c->sock, OUT_LWM);
    /* A new connection gets client_header_timeout to send its first
     * request (nginx does the same); keepalive_timeout applies between
     * requests. */
    set_read_timeout(c, w->cfg->limits.client_header_timeout);
    return c;
}

void pc_conn_close_now(pc_conn *c)
{
    conn_free(c);
}

void pc_conns_close_now(pc_loop *l)
{
    while (l->conns)
        conn_free(l->conns);
}

void pc_conns_drain(pc_loop *l)
{
    pc_conn *c = l->conns;
    while (c) {
        pc_conn *next = c->next;
        pc_conn_drain(c);
        c = next;
    }
}

void pc_conns_release_idle(pc_loop *l)
{
    /* A connection that started no request since the last sweep and has
     * none now has been idle for at least one sweep interval. */
    for (pc_conn *c = l->conns; c; c = c->next) {
        if (!c->tls || c->req || c->closing)
            continue;
        if (c->recent)
            c->recent = 0;
        else
            pc_sock_release_tls_buffers(c->sock);
    }
}

/* Graceful stop: idle connections close now, busy ones after their
 * response (finish_request sees w->draining). */
void pc_conn_drain(pc_conn *c)
{
    if (!c->req && !c->closing)
        close_later(c);
}

/* ---- the response sink ------------------------------------------------ */

static pc_conn *conn_of(pc_req *r)
{
    return r->sink_ctx;
}

static void sink_head(pc_req *r, pc_resp *resp)
{
    pc_conn *c = conn_of(r);
    c->resp_started = 1;
    pc_headers_downstream(&resp->headers, r->arena,
                          r->route ? &r->route->resp_headers : NULL);
    if (!c->msg_done || c->loop->draining)
        c->keepalive = 0;
    write_head(c, r, resp);
}

/* The one place a response head is serialised, proxied or gateway-made:
 * the chain's response side first (extra headers, on_response hooks in
 * reverse stage order, the body filters' framing), then our framing. */
static void write_head(pc_conn *c, pc_req *r, pc_resp *resp)
{
    pc_hwrite w;
    pc_chain_response_head(r, resp);
    r->status = resp->status;
    /* The client's side is framed by us, whatever the upstream did. */
    pc_framing out = pc_framing_out(&resp->framing, r->http_minor);
    c->resp_chunked = out.kind == PC_FRAME_CHUNKED;
    if (out.kind == PC_FRAME_CLOSE)
        c->keepalive = 0; /* close-delimited for HTTP/1.0 */
    pc_hw_init(&w, pc_sock_output(c->sock));
    pc_hw_add(&w, "HTTP/1.1 ", 9);
    pc_hw_u64(&w, (uint64_t)resp->status);
    pc_hw_add(&w, " ", 1);
    pc_hw_str(&w, resp->reason ? resp->reason : pc_http_reason(resp->status));
    pc_hw_add(&w, "\r\n", 2);
    for (uint32_t i = 0; i < resp->headers.n; i++) {
        const pc_header *h = &resp->headers.v[i];
        pc_hw_header(&w, h->name, h->nlen, h->value, h->vlen);
    }
    pc_hw_header(&w, "X-Request-Id", 12, r->request_id, strlen(r->request_id));
    pc_framing_write_header(&out, resp->status, &w);
    if (!c->keepalive)
        pc_hw_header(&w, "Connection", 10, "close", 5);
    else if (r->http_minor == 0)
        pc_hw_header(&w, "Connection", 10, "keep-alive", 10);
    pc_hw_add(&w, "\r\n", 2);
    pc_hw_flush(&w);
}

/* n body bytes to the client, copied from data or moved out of src,
 * framed as a chunk when the response is chunked. */
static void body_out(pc_req *r, const char *data, struct evbuffer *src, size_t n)
{
    pc_conn *c = conn_of(r);
    struct evbuffer *out = pc_sock_output(c->sock);
    if (n == 0)
        return;
    r->bytes_out += n;
    if (c->resp_chunked) {
        char hdr[24];
        int k = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
        evbuffer_add(out, hdr, (size_t)k);
    }
    if (src)
        evbuffer_remove_buffer(src, out, n);
    else
        evbuffer_add(out, data, n);
    if (c->resp_chunked)
        evbuffer_add(out, "\r\n", 2);
}

static void sink_body(pc_req *r, const char *data, size_t len)
{
    if (pc_chain_filtering(r)) {
        pc_chain_body(r, data, len, 0);
        return;
    }
    body_out(r, data, NULL, len);
}

static void sink_body_move(pc_req *r, struct evbuffer *src, size_t n)
{
    if (pc_chain_filtering(r)) {
        if (n == 0)
            return;
        /* Filters read contiguous bytes: the only copy-free path is the
         * one without filters. */
        const char *p = (const char *)evbuffer_pullup(src, (ssize_t)n);
        pc_chain_body(r, p, n, 0);
        evbuffer_drain(src, n);
        return;
    }
    body_out(r, NULL, src, n);
}

/* What the last body filter produced. */
static void sink_filtered(pc_req *r, const char *data, size_t len)
{
    body_out(r, data, NULL, len);
}

static void sink_end(pc_req *r)
{
    pc_conn *c = conn_of(r);
    if (pc_chain_filtering(r))
        pc_chain_body(r, NULL, 0, 1);
    if (c->resp_chunked)
        evbuffer_add(pc_sock_output(c->sock), "0\r\n\r\n", 5);
    r->handler = NULL;
    finish_request(c);
}

static void sink_error(pc_req *r, pc_errcode e, const char *msg)
{
    pc_conn *c = conn_of(r);
    r->handler = NULL;
    if (c->resp_started) {
        close_later(c);
        pc_conn_free_req(c);
        return;
    }
    int close = !c->msg_done || !c->keepalive || c->loop->draining;
    if (close)
        c->keepalive = 0;
    write_error(c, e, msg, close);
    finish_request(c);
}

static void sink_abort(pc_req *r)
{
    pc_conn *c = conn_of(r);
    r->handler = NULL;
    c->keepalive = 0;
    pc_conn_free_req(c);
    close_later(c);
}

static size_t sink_backlog(pc_req *r)
{
    /* A body filter that holds bytes counts as a full output. */
    return pc_sock_pending(conn_of(r)->sock) +
           pc_chain_body_held(r);
}

static void sink_start_body(pc_req *r)
{
    pc_conn *c = conn_of(r);
    if (c->body_started)
        return;
    c->body_started = 1;
    if (r->expect_continue && r->http_minor >= 1 && !c->msg_done)
        evbuffer_add(pc_sock_output(c->sock),
                     "HTTP/1.1 100 Continue\r\n\r\n", 25);
    set_read_timeout(c, c->loop->cfg->limits.client_body_timeout);
    pc_sock_read(c->sock, 1);
    pc_sock_trigger_read(c->sock);
}

static void sink_resume_body(pc_req *r)
{
    pc_conn *c = conn_of(r);
    if (!c->read_paused)
        return;
    c->read_paused = 0;
    pc_sock_read(c->sock, 1);
    pc_sock_trigger_read(c->sock);
}

static const pc_sink_ops sink_ops = {
    .head = sink_head,
    .body = sink_body,
    .body_move = sink_body_move,
    .end = sink_end,
    .error = sink_error,
    .abort = sink_abort,
    .backlog = sink_backlog,
    .start_body = sink_start_body,
    .resume_body = sink_resume_body,
    .filtered = sink_filtered,
};
