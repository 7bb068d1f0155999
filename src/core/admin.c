/* admin.c: the admin listener (CONTRACT §5): /healthz, /readyz,
 * /metrics, /admin/routes, /admin/upstreams, /admin/config,
 * POST /admin/cache/purge, and the status page at / (status.html), with
 * admin.token checked in
 * constant time.
 * Runs on the main thread's event loop (admin traffic is small and never
 * on the proxy's hot path); reads the current generation under the
 * runtime's lock. Never touches a worker's state (/metrics reads the
 * workers' counters only through the metrics registry's scrape side).
 *
 * DESIGN: a small HTTP/1.1 server of its own rather than evhttp. The
 * installed libevent's evhttp (2.1) answers a malformed or oversized
 * request itself with a text/html page, has no connection cap, and gives
 * no hook when a connection that never sent a byte goes away, so neither
 * the §4 error shape nor a cap could be kept with it. Here every answer is
 * built in this file, from the one error table:
 *
 *   accept ─► at PC_ADMIN_MAX_CONNS close the connection nearest its
 *             deadline ─► aconn, deadline armed
 *   read   ─► lib/headscan (line discipline, head size) ─► llhttp (head,
 *             then a body of at most PC_ADMIN_MAX_BODY, counted and
 *             dropped: no endpoint reads one) ─► route ─► one response
 *   output drained ─► close, or re-arm the deadline for the next request
 *
 * One deadline per connection covers the whole of a request and its
 * response: a client sending a byte every second gains nothing. The list
 * of connections is kept in deadline order (re-armed ones move to the
 * tail), which is also the order of eviction at the cap. */
#include "portcullis/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "portcullis/cache_store.h"
#include "portcullis/errors.h"
#include "portcullis/headscan.h"
#include "portcullis/log.h"
#include "portcullis/metrics.h"
#include "portcullis/proxy.h"
#include "portcullis/util.h"

/* status_page.c (generated from status.html) */
extern const char pc_status_html[];
extern const size_t pc_status_html_len;

/* A growing byte string, bounded by the head size of the request. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

enum { H_NONE, H_AUTH, H_EXPECT };

typedef struct aconn aconn;

struct pc_admin {
    pc_runtime *rt;
    struct event_base *base;
    struct evconnlistener *lev;
    struct event *resume; /* re-enables accepting after an accept error */
    aconn *first, *last;  /* open connections, earliest deadline first */
    unsigned nconns;
    uint64_t rng;
};

struct aconn {
    pc_admin *a;
    struct bufferevent *bev; /* owns the socket */
    struct event *deadline;
    aconn *prev, *next;
    llhttp_t parser;
    pc_headscan scan;
    size_t head_bytes;
    uint64_t body_bytes;
    unsigned head_done : 1, msg_done : 1, started : 1;
    unsigned head_req : 1;   /* HEAD: the answer has no body */
    unsigned responding : 1; /* a response is queued: reading is off */
    unsigned closing : 1;    /* close once the response is written */
    int hdr;                 /* H_*: which field's value is being read */
    int nauth;
    pc_errcode fail; /* set by a callback that stopped llhttp */
    const char *fail_msg;
    sbuf url, field, auth, expect, body; /* body: POST /admin/cache/purge */
    char rid[33];
};

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = pc_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static const char *sb_str(const sbuf *b)
{
    return b->n ? b->p : "";
}

static void new_id(pc_admin *a, char id[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        a->rng ^= a->rng << 13;
        a->rng ^= a->rng >> 7;
        a->rng ^= a->rng << 17;
        id[i] = hex[a->rng & 15];
    }
    id[32] = '\0';
}

/* ------------------------------------------------------------ connections */

static void unlink_conn(aconn *c)
{
    pc_admin *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        a->last = c->prev;
    c->prev = c->next = NULL;
}

static void append_conn(aconn *c)
{
    pc_admin *a = c->a;
    c->prev = a->last;
    c->next = NULL;
    if (a->last)
        a->last->next = c;
    else
        a->first = c;
    a->last = c;
}

static void conn_free(aconn *c)
{
    unlink_conn(c);
    c->a->nconns--;
    event_free(c->deadline);
    bufferevent_free(c->bev);
    free(c->url.p);
    free(c->field.p);
    free(c->auth.p);
    free(c->expect.p);
    free(c->body.p);
    free(c);
}

/* Every deadline is "now + PC_ADMIN_DEADLINE_MS", so moving the connection
 * to the tail keeps the list sorted. */
static void arm_deadline(aconn *c)
{
    struct timeval tv = {PC_ADMIN_DEADLINE_MS / 1000,
                         (PC_ADMIN_DEADLINE_MS % 1000) * 1000};
    event_add(c->deadline, &tv);
    unlink_conn(c);
    append_conn(c);
}

/* -------------------------------------------------------------- responses */

/* Queues one response and stops reading until it is written. The head is
 * the same for GET and HEAD; HEAD gets no body. */
static void respond(aconn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char date[64];
    time_t now = (time_t)pc_unix_now();
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!c->rid[0])
        new_id(c->a, c->rid);
    const char *conn = c->closing ? "Connection: close\r\n"
                       : c->parser.http_minor == 0
                           ? "Connection: keep-alive\r\n"
                           : "";
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                        "Content-Length: %zu\r\nX-Request-Id: %s\r\n%s%s\r\n",
                        status, pc_http_reason(status), date, ctype, n, c->rid,
                        extra ? extra : "", conn);
    if (!c->head_req)
        evbuffer_add(out, body, n);
    c->responding = 1;
    bufferevent_disable(c->bev, EV_READ);
}

static void reply_json(aconn *c, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    respond(c, status, "application/json", NULL, s, strlen(s));
    free(s);
    json_decref(body);
}

static void reply_error(aconn *c, pc_errcode e, const char *msg)
{
    char body[512];
    if (!c->rid[0])
        new_id(c->a, c->rid);
    size_t n = pc_err_body(e, msg, c->rid, body, sizeof body);
    const char *extra = NULL;
    if (e == PC_ERR_UNAUTHORIZED)
        extra = "WWW-Authenticate: Bearer realm=\"portcullis\"\r\n";
    else if (e == PC_ERR_METHOD_NOT_ALLOWED)
        extra = strncmp(sb_str(&c->url), "/admin/cache/purge", 18) == 0
                    ? "Allow: POST\r\n"
                    : "Allow: GET, HEAD\r\n";
    respond(c, pc_err_info(e)->status, "application/json", extra, body, n);
}

/* A request that cannot be read on: answer and close. */
static void fail(aconn *c, pc_errcode e, const char *msg)
{
    c->closing = 1;
    reply_error(c, e, msg);
}

/* ------------------------------------------------------------- endpoints */

static pc_config *current(pc_runtime *rt)
{
    pthread_mutex_lock(&rt->cfg_lock);
    pc_config *cfg = pc_config_ref(rt->cfg);
    pthread_mutex_unlock(&rt->cfg_lock);
    return cfg;
}

static int authorized(const pc_config *cfg, const aconn *c)
{
    if (!cfg->admin_token)
        return 1;
    if (c->nauth != 1 || c->auth.n < 7 ||
        strncasecmp(c->auth.p, "Bearer ", 7) != 0)
        return 0;
    const char *tok = c->auth.p + 7;
    size_t a = c->auth.n - 7, b = strlen(cfg->admin_token);
    while (a && (tok[a - 1] == ' ' || tok[a - 1] == '\t'))
        a--;
    /* Constant time in the token's content; the length is not secret. */
    return a == b && CRYPTO_memcmp(tok, cfg->admin_token, a) == 0;
}

static void add_route(void *data, void *ctx)
{
    const pc_route *r = data;
    json_t *arr = ctx;
    char buf[128];
    json_t *methods = json_array();
    if (r->methods) {
        pc_methods_format(r->methods, buf, sizeof buf);
        for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", "))
            json_array_append_new(methods, json_string(tok));
    }
    json_t *m = json_pack("{s:s, s:s, s:o, s:o}", "path", r->path, "type",
                          r->exact ? "exact" : "prefix", "methods", methods,
                          "host", r->host ? json_string(r->host) : json_null());
    json_t *o = json_pack(
        "{s:s, s:o, s:s, s:o, s:o}", "name", r->name, "match", m, "upstream",
        r->upstream->name, "strip_prefix",
        r->strip_prefix ? json_string(r->strip_prefix) : json_null(), "rewrite",
        r->rewrite ? json_string(r->rewrite) : json_null());
    json_array_append_new(arr, o);
}

/* GET /admin/upstreams (CONTRACT §5): every target's health, circuit and
 * pooled connections (all workers), from the per-process target state. */
static json_t *upstreams_json(const pc_config *cfg)
{
    static const char *const circuit[] = {"closed", "half_open", "open"};
    json_t *ups = json_object();
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const pc_upstream *u = &cfg->upstreams[i];
        json_t *targets = json_array();
        for (size_t k = 0; k < u->ntargets; k++) {
            const pc_target *t = &u->targets[k];
            long active = 0, idle = 0;
            if (t->pool_stat) {
                active = atomic_load(&t->pool_stat->active);
                idle = atomic_load(&t->pool_stat->idle);
            }
            json_array_append_new(
                targets,
                json_pack("{s:s,s:b,s:s,s:I,s:I}", "url", t->url, "healthy",
                          pc_target_healthy(u, t), "circuit",
                          circuit[pc_target_circuit(u, t)], "active",
                          (json_int_t)(active > 0 ? active : 0), "idle",
                          (json_int_t)(idle > 0 ? idle : 0)));
        }
        json_object_set_new(ups, u->name, json_pack("{s:o}", "targets", targets));
    }
    return json_pack("{s:o}", "upstreams", ups);
}

/* GET /metrics: open even when admin.token is set (CONTRACT §5). */
static void reply_metrics(aconn *c, const pc_config *cfg)
{
    long conns = atomic_load(&c->a->rt->connections);
    size_t nt = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        nt += cfg->upstreams[i].ntargets;
    pc_metrics_circuit *circ = pc_xcalloc(nt ? nt : 1, sizeof *circ);
    nt = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const pc_upstream *u = &cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++)
            circ[nt++] = (pc_metrics_circuit){
                u->name, u->targets[k].url,
                (int)pc_target_circuit(u, &u->targets[k])};
    }
    pc_metrics_gauges g = {
        .connections_active = conns > 0 ? conns : 0,
        .log_dropped = pc_access_logger ? pc_logger_dropped(pc_access_logger)
                                        : 0,
        .circuits = circ,
        .ncircuits = nt,
    };
    size_t n;
    char *text = pc_metrics_render(&g, &n);
    free(circ);
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, n);
    free(text);
}

/* The GET (and HEAD) endpoints; 0 when path is none of them. */
static int get_endpoint(aconn *c, const char *path, pc_config *cfg)
{
    if (strcmp(path, "/healthz") == 0) {
        reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(path, "/readyz") == 0) {
        int draining = atomic_load(&c->a->rt->draining);
        reply_json(
            c, draining ? 503 : 200,
            json_pack("{s:s}", "status", draining ? "draining" : "ready"));
    } else if (strcmp(path, "/admin/routes") == 0) {
        json_t *arr = json_array();
        pc_trie_foreach(cfg->trie, add_route, arr);
        reply_json(c, 200, json_pack("{s:o}", "routes", arr));
    } else if (strcmp(path, "/admin/config") == 0) {
        reply_json(c, 200, pc_config_to_json(cfg));
    } else if (strcmp(path, "/admin/upstreams") == 0) {
        reply_json(c, 200, upstreams_json(cfg));
    } else if (strcmp(path, "/metrics") == 0) {
        reply_metrics(c, cfg);
    } else if (strcmp(path, "/") == 0) {
        /* The status page: one self-contained document (inline script and
         * style, no other origin); it reads /admin/routes, /admin/upstreams
         * and /metrics itself. */
        respond(c, 200, "text/html; charset=utf-8",
                "Cache-Control: no-store\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "X-Frame-Options: DENY\r\n"
                "Content-Security-Policy: default-src 'none'; "
                "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "img-src data:; connect-src 'self'; "
                "frame-ancestors 'none'\r\n",
                pc_status_html, pc_status_html_len);
    } else {
        return 0;
    }
    return 1;
}

/* POST /admin/cache/purge (CONTRACT §5): {"route", "path"}, both
 * optional strings; answers {"purged": N}. */
static void reply_purge(aconn *c)
{
    json_error_t jerr;
    json_t *b = c->body.n ? json_loadb(c->body.p, c->body.n, 0, &jerr)
                          : json_object();
    const char *route = NULL, *path = NULL;
    if (!b || !json_is_object(b)) {
        reply_error(c, PC_ERR_BAD_REQUEST,
                    "body must be a JSON object {\"route\", \"path\"}");
        json_decref(b);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) {
        if (strcmp(k, "route") && strcmp(k, "path")) {
            reply_error(c, PC_ERR_BAD_REQUEST,
                        "unknown key in purge body (route, path)");
            json_decref(b);
            return;
        }
        if (!json_is_string(v)) {
            reply_error(c, PC_ERR_BAD_REQUEST,
                        "'route' and 'path' must be strings");
            json_decref(b);
            return;
        }
        if (!strcmp(k, "route"))
            route = json_string_value(v);
        else
            path = json_string_value(v);
    }
    /* the rule first: a Redis entry older than the purge read by a
     * worker meanwhile is not taken back */
    pc_cache_purge_rule_add(route, path, (long long)time(NULL));
    size_t n = pc_cache_purge(route, path);
    json_decref(b);
    reply_json(c, 200, json_pack("{s:I}", "purged", (json_int_t)n));
}

/* The admin paths behind admin.token: under /admin/, and the status page. */
static int guarded(const char *path)
{
    return strncmp(path, "/admin/", 7) == 0 || strcmp(path, "/") == 0;
}

static int known_path(const char *path)
{
    return strcmp(path, "/") == 0 ||
           strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
           strcmp(path, "/metrics") == 0 ||
           strcmp(path, "/admin/routes") == 0 ||
           strcmp(path, "/admin/upstreams") == 0 ||
           strcmp(path, "/admin/config") == 0 ||
           strcmp(path, "/admin/cache/purge") == 0;
}

static void route(aconn *c)
{
    /* origin-form target: the path is what comes before '?' */
    const char *url = sb_str(&c->url);
    char *path = pc_xstrndup(url, strcspn(url, "?#"));
    uint8_t m = llhttp_get_method(&c->parser);
    int get = m == HTTP_GET || m == HTTP_HEAD;
    pc_config *cfg = current(c->a->rt);

    if (guarded(path) && !authorized(cfg, c))
        reply_error(c, PC_ERR_UNAUTHORIZED, "admin token required");
    else if (!known_path(path))
        reply_error(c, PC_ERR_ROUTE_NOT_FOUND, "no such admin endpoint");
    else if (strcmp(path, "/admin/cache/purge") == 0) {
        if (m == HTTP_POST)
            reply_purge(c);
        else
            reply_error(c, PC_ERR_METHOD_NOT_ALLOWED, NULL);
    } else if (!get)
        reply_error(c, PC_ERR_METHOD_NOT_ALLOWED, NULL);
    else
        get_endpoint(c, path, cfg);
    pc_config_unref(cfg);
    free(path);
}

/* ----------------------------------------------------------------- llhttp */

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    sb_add(&((aconn *)p->data)->url, at, n);
    return 0;
}

static int on_method_complete(llhttp_t *p)
{
    ((aconn *)p->data)->head_req = llhttp_get_method(p) == HTTP_HEAD;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    sb_add(&((aconn *)p->data)->field, at, n);
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    aconn *c = p->data;
    const char *f = sb_str(&c->field);
    c->hdr = H_NONE;
    if (pc_strieq(f, c->field.n, "authorization", 13)) {
        c->hdr = H_AUTH;
        c->nauth++;
        c->auth.n = 0;
    } else if (pc_strieq(f, c->field.n, "expect", 6)) {
        c->hdr = H_EXPECT;
        c->expect.n = 0;
    }
    c->field.n = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    aconn *c = p->data;
    if (c->hdr == H_AUTH)
        sb_add(&c->auth, at, n);
    else if (c->hdr == H_EXPECT)
        sb_add(&c->expect, at, n);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    ((aconn *)p->data)->hdr = H_NONE;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    aconn *c = p->data;
    c->head_done = 1;
    if (p->http_major != 1 || p->http_minor > 1) {
        c->fail = PC_ERR_HTTP_VERSION;
        return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) &&
        p->content_length > PC_ADMIN_MAX_BODY) {
        c->fail = PC_ERR_PAYLOAD_TOO_LARGE;
        c->fail_msg = "request body is larger than the admin limit";
        return -1;
    }
    int body = (p->flags & F_CHUNKED) || p->content_length > 0;
    if (body && p->http_minor == 1 && c->expect.n &&
        pc_strieq(c->expect.p, c->expect.n, "100-continue", 12))
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    aconn *c = p->data;
    c->body_bytes += n;
    if (c->body_bytes > PC_ADMIN_MAX_BODY) {
        c->fail = PC_ERR_PAYLOAD_TOO_LARGE;
        c->fail_msg = "request body is larger than the admin limit";
        return -1;
    }
    sb_add(&c->body, at, n); /* bounded by PC_ADMIN_MAX_BODY */
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    ((aconn *)p->data)->msg_done = 1;
    return HPE_PAUSED; /* one request at a time */
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_method_complete = on_method_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Ready for the next request: a fresh parser and no request state. */
static void req_reset(aconn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    /* any single-digit version reaches on_headers_complete: 505, not 400 */
    c->parser.lenient_flags |= LENIENT_VERSION;
    pc_headscan_init(&c->scan, 0);
    c->head_bytes = 0;
    c->body_bytes = 0;
    c->head_done = c->msg_done = c->started = 0;
    c->head_req = c->responding = c->closing = 0;
    c->hdr = H_NONE;
    c->nauth = 0;
    c->fail = PC_ERR_NONE;
    c->fail_msg = NULL;
    c->url.n = c->field.n = c->auth.n = c->expect.n = c->body.n = 0;
    c->rid[0] = '\0';
}

/* Feeds what has been read to the parser until a request is complete (and
 * answered) or the input runs out. The head goes through headscan first,
 * and llhttp gets the head and not a byte more until headscan has seen its
 * end. */
static void process(aconn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->responding) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return;
        size_t len = v.iov_len;
        int in_head = !c->head_done;
        c->started = 1;
        if (in_head) {
            const char *why = NULL;
            if (pc_headscan_window(&c->scan, v.iov_base, len, c->head_bytes,
                                   PC_ADMIN_MAX_HEAD, &len,
                                   &why) == PC_HEADSCAN_ERROR) {
                fail(c, PC_ERR_BAD_REQUEST, why);
                return;
            }
        }
        enum llhttp_errno e = llhttp_execute(&c->parser, v.iov_base, len);
        size_t used = len;
        if (e != HPE_OK)
            used =
                (size_t)(llhttp_get_error_pos(&c->parser) - (char *)v.iov_base);
        if (in_head)
            c->head_bytes += used;
        evbuffer_drain(in, used);
        if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && c->msg_done) {
            /* no protocol switch here: answer, then close */
            c->closing =
                !llhttp_should_keep_alive(&c->parser) || c->parser.upgrade;
            route(c);
            return;
        }
        if (e != HPE_OK) {
            if (c->fail != PC_ERR_NONE)
                fail(c, c->fail, c->fail_msg);
            else
                fail(c, PC_ERR_BAD_REQUEST,
                     llhttp_get_error_reason(&c->parser));
            return;
        }
        if (in_head && !c->head_done && c->scan.done) {
            fail(c, PC_ERR_BAD_REQUEST, "malformed message head");
            return;
        }
        if (in_head && !c->head_done && c->head_bytes > PC_ADMIN_MAX_HEAD) {
            fail(c, PC_ERR_HEADERS_TOO_LARGE, NULL);
            return;
        }
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    aconn *c = arg;
    if (!c->responding)
        return; /* a 100 Continue went out */
    if (c->closing) {
        conn_free(c);
        return;
    }
    req_reset(c);
    arm_deadline(c);
    bufferevent_enable(bev, EV_READ);
    process(c); /* a pipelined request may be waiting */
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* EOF, reset or write error: nothing more to say */
    conn_free(arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    aconn *c = arg;
    (void)fd;
    (void)what;
    if (c->started && !c->responding) {
        /* Part of a request came: one non-blocking try at a 408, no wait. */
        fail(c, PC_ERR_REQUEST_TIMEOUT, "request not completed in time");
        struct evbuffer *out = bufferevent_get_output(c->bev);
        /* the bufferevent keeps its output's front frozen for itself */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(c->bev));
    }
    conn_free(c);
}

/* --------------------------------------------------------------- listener */

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    pc_admin *a = arg;
    (void)lev;
    (void)sa;
    (void)salen;
    if (a->nconns >= PC_ADMIN_MAX_CONNS) {
        pc_log(PC_LOG_DEBUG, "admin: %d connections open, closing the oldest",
               PC_ADMIN_MAX_CONNS);
        conn_free(a->first);
    }
    aconn *c = pc_xcalloc(1, sizeof *c);
    c->a = a;
    c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(a->base, deadline_cb, c);
    if (!c->bev || !c->deadline) {
        pc_log(PC_LOG_ERROR, "admin: cannot set up a connection");
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->deadline)
            event_free(c->deadline);
        free(c);
        return;
    }
    a->nconns++;
    append_conn(c);
    req_reset(c);
    arm_deadline(c);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_admin *a = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(a->lev);
}

/* accept(2) failed (EMFILE...): pause a second rather than spin. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    pc_admin *a = arg;
    pc_log(PC_LOG_WARN, "admin: accept failed: %s", strerror(errno));
    struct timeval tv = {1, 0};
    if (a->resume && event_add(a->resume, &tv) == 0)
        evconnlistener_disable(lev);
}

pc_admin *pc_admin_start(struct event_base *base, pc_runtime *rt)
{
    pc_admin *a = pc_xcalloc(1, sizeof *a);
    a->rt = rt;
    a->base = base;
    a->rng = pc_now_ns() | 1;
    if (!rt->cfg->admin_listen)
        return a;
    int fd = socket(rt->cfg->admin_addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 ||
        bind(fd, (const struct sockaddr *)&rt->cfg->admin_addr,
             rt->cfg->admin_addrlen) != 0 ||
        listen(fd, 128) != 0 ||
        !(a->lev = evconnlistener_new(base, accept_cb, a, LEV_OPT_CLOSE_ON_FREE,
                                      0, fd))) {
        pc_log(PC_LOG_ERROR, "cannot listen on admin address %s: %s",
               rt->cfg->admin_listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        pc_admin_free(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->lev, accept_error_cb);
    a->resume = evtimer_new(base, resume_cb, a);
    return a;
}

void pc_admin_free(pc_admin *a)
{
    if (!a)
        return;
    while (a->first)
        conn_free(a->first);
    if (a->lev)
        evconnlistener_free(a->lev);
    if (a->resume)
        event_free(a->resume);
    free(a);
}
