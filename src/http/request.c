/* request.c: turns llhttp callbacks into a validated pc_req head.
 *
 * Owns the strict rules of CONTRACT §3 step 1 that llhttp does not enforce
 * by itself (version 505, Host rules, request-target forms, path
 * normalisation, limits 414/431/413, client address under trusted_proxies).
 * Every violation sets c->fail and returns an error to llhttp, so nothing of
 * an ambiguous request is ever handed to the chain. Never does I/O. */
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "portcullis/chunked.h"
#include "portcullis/headers.h"
#include "portcullis/pathnorm.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

#define MAX_URI 8192

static int fail(pc_conn *c, pc_errcode e, const char *msg)
{
    if (c->fail == PC_ERR_NONE) {
        c->fail = e;
        c->fail_msg = msg;
    }
    return -1;
}

static void buf_add(pc_buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = pc_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void pc_scratch_free(pc_conn *c)
{
    if (!c->scr)
        return;
    free(c->scr->url.p);
    free(c->scr->field.p);
    free(c->scr->value.p);
    free(c->scr);
    c->scr = NULL;
}

static int on_message_begin(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_conn_new_req(c);
    if (!c->scr)
        c->scr = pc_xcalloc(1, sizeof *c->scr);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    if (c->scr->url.len + len > MAX_URI)
        return fail(c, PC_ERR_URI_TOO_LONG, NULL);
    buf_add(&c->scr->url, at, len);
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    if (p->http_major != 1 || p->http_minor > 1)
        return fail(c, PC_ERR_HTTP_VERSION, NULL);
    return 0;
}

/* Trailer fields of a chunked body come through the header callbacks after
 * the head (c->scr already freed). They are not forwarded; their bytes
 * count against the body limit so that they cannot grow without bound. */
static int trailer(pc_conn *c, size_t len)
{
    c->body_bytes += len;
    if (c->body_bytes > c->req->max_body)
        return fail(c, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    if (!c->scr)
        return trailer(c, len);
    buf_add(&c->scr->field, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    if (!c->scr)
        return trailer(c, len);
    buf_add(&c->scr->value, at, len);
    return 0;
}

/* RFC 9110 §5.1: a field name is a token (tchar+); nothing else, not even
 * whitespace before the colon, may reach an upstream. */
static int valid_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

static int on_header_value_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    if (!c->scr)
        return 0; /* a trailer field: dropped */
    if (!valid_token(c->scr->field.p, c->scr->field.len))
        return fail(c, PC_ERR_BAD_REQUEST, "invalid header field name");
    if (++c->nheaders > r->cfg->limits.max_headers)
        return fail(c, PC_ERR_HEADERS_TOO_LARGE, "too many header fields");
    size_t vlen = c->scr->value.len;
    while (vlen && (c->scr->value.p[vlen - 1] == ' ' || c->scr->value.p[vlen - 1] == '\t'))
        vlen--;
    pc_headers_add(&r->headers, r->arena, c->scr->field.p ? c->scr->field.p : "",
                   c->scr->field.len, c->scr->value.p ? c->scr->value.p : "", vlen);
    c->scr->field.len = c->scr->value.len = 0;
    return 0;
}

/* A segment "..;x" or ".;x" is a dot segment to servers that strip path
 * parameters (Tomcat, Jetty): refusing it keeps "/api/..;/admin" from
 * reaching /admin behind a route for /api. */
static int dot_params(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '/')
            continue;
        size_t k = i + 1;
        if (k < n && p[k] == '.')
            k++;
        if (k < n && p[k] == '.')
            k++;
        if (k > i + 1 && k < n && p[k] == ';')
            return 1;
    }
    return 0;
}

/* Splits the request target into authority (absolute-form), path, query. */
static int parse_target(pc_conn *c, pc_req *r, const char **authority,
                        size_t *alen)
{
    const char *u = c->scr->url.p ? c->scr->url.p : "";
    size_t len = c->scr->url.len;
    *authority = NULL;
    *alen = 0;
    if (len == 0)
        return fail(c, PC_ERR_BAD_REQUEST, "empty request target");
    if (u[0] != '/') {
        size_t skip = 0;
        if (len > 7 && pc_strieq(u, 7, "http://", 7))
            skip = 7;
        else if (len > 8 && pc_strieq(u, 8, "https://", 8))
            skip = 8;
        else
            return fail(c, PC_ERR_BAD_REQUEST, "unsupported request target form");
        const char *a = u + skip, *end = u + len;
        const char *slash = a;
        while (slash < end && *slash != '/' && *slash != '?')
            slash++;
        if (slash == a || memchr(a, '@', (size_t)(slash - a)))
            return fail(c, PC_ERR_BAD_REQUEST, "invalid authority");
        *authority = a;
        *alen = (size_t)(slash - a);
        u = slash;
        len = (size_t)(end - slash);
        if (len == 0 || u[0] == '?') {
            /* "http://h" or "http://h?q": the path is "/". */
            char *t = pc_arena_alloc(r->arena, len + 2);
            t[0] = '/';
            memcpy(t + 1, u, len);
            t[len + 1] = '\0';
            u = t;
            len++;
        }
    }
    if (memchr(u, '#', len))
        return fail(c, PC_ERR_BAD_REQUEST, "fragment in request target");
    if (memchr(u, '\\', len))
        return fail(c, PC_ERR_BAD_REQUEST, "backslash in request target");
    const char *q = memchr(u, '?', len);
    size_t plen = q ? (size_t)(q - u) : len;
    char *out = pc_arena_alloc(r->arena, plen + 1);
    size_t olen = 0;
    pc_path_status st = pc_path_normalize(u, plen, out, &olen);
    if (st == PC_PATH_CLIMB)
        return fail(c, PC_ERR_BAD_REQUEST, "path climbs above the root");
    if (st != PC_PATH_OK)
        return fail(c, PC_ERR_BAD_REQUEST, "invalid request path");
    if (dot_params(out, olen))
        return fail(c, PC_ERR_BAD_REQUEST, "dot segment with parameters");
    r->path = out;
    r->pathlen = olen;
    r->query = q ? pc_arena_strndup(r->arena, q + 1, len - plen - 1) : NULL;
    return 0;
}

static int valid_authority(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '@' || ch == '\\' ||
            ch == '?' || ch == '#' || ch == ',')
            return 0;
    }
    return 1;
}

static void set_host(pc_req *r, const char *a, size_t n)
{
    r->host = pc_arena_strndup(r->arena, a, n);
    size_t hl = n;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        hl = rb ? (size_t)(rb - a) + 1 : n;
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon)
            hl = (size_t)(colon - a);
    }
    char *h = pc_arena_strndup(r->arena, a, hl);
    for (char *x = h; *x; x++)
        if (*x >= 'A' && *x <= 'Z')
            *x += 32;
    r->hostname = h;
}

/* CONTRACT §3 "Client address": the peer, unless it is a trusted proxy;
 * then the rightmost X-Forwarded-For entry that is not trusted. */
static void client_address(pc_req *r)
{
    const pc_cidr_set *trusted = r->cfg->trusted_proxies;
    r->client = r->peer;
    if (!pc_cidr_set_contains(trusted, &r->peer))
        return;
    for (uint32_t i = r->headers.n; i-- > 0;) {
        const pc_header *h = &r->headers.v[i];
        if (!pc_strieq(h->name, h->nlen, "x-forwarded-for", 15))
            continue;
        const char *end = h->value + h->vlen;
        while (end > h->value) {
            const char *s = end;
            while (s > h->value && s[-1] != ',')
                s--;
            const char *a = s, *b = end;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            pc_ip ip;
            if (b == a || pc_ip_parse(a, (size_t)(b - a), &ip) != 0)
                return; /* garbage: stop at the last address we trust */
            r->client = ip;
            if (!pc_cidr_set_contains(trusted, &ip))
                return;
            end = s > h->value ? s - 1 : s;
        }
    }
}

static int on_headers_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    const char *auth;
    size_t alen;

    if (parse_target(c, r, &auth, &alen) != 0)
        return -1;
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    r->method_bit = pc_method_bit(r->method, strlen(r->method));
    r->http_minor = p->http_minor;
    unsigned nhost = pc_headers_count(&r->headers, "host");
    const pc_header *host = pc_headers_get(&r->headers, "host");
    if (nhost > 1)
        return fail(c, PC_ERR_BAD_REQUEST, "more than one Host header");
    if (auth) {
        if (!valid_authority(auth, alen))
            return fail(c, PC_ERR_BAD_REQUEST, "invalid authority");
        set_host(r, auth, alen);
    } else if (host) {
        if (!valid_authority(host->value, host->vlen))
            return fail(c, PC_ERR_BAD_REQUEST, "invalid Host header");
        set_host(r, host->value, host->vlen);
    } else if (r->http_minor == 1) {
        return fail(c, PC_ERR_BAD_REQUEST, "missing Host header");
    } else {
        r->host = r->hostname = "";
    }
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (p->flags & F_TRANSFER_ENCODING && !r->chunked)
        return fail(c, PC_ERR_BAD_REQUEST, "unsupported transfer coding");
    if (r->content_length > 0 &&
        (uint64_t)r->content_length > r->cfg->limits.max_body_bytes)
        return fail(c, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
    const char *expect = pc_req_header(r, "expect");
    r->expect_continue = expect && pc_strieq(expect, strlen(expect),
                                             "100-continue", 12);
    r->keepalive = llhttp_should_keep_alive(p);
    const char *rid = pc_req_header(r, "x-request-id");
    if (rid && pc_request_id_valid(rid, strlen(rid)))
        memcpy(r->request_id, rid, strlen(rid) + 1);
    client_address(r);
    pc_ip_format(&r->client, r->client_text, sizeof r->client_text);
    c->has_body = r->chunked || r->content_length > 0;
    /* A Content-Length body needs no parsing: conn moves it as it is. */
    c->raw_left = !r->chunked && r->content_length > 0 ? (uint64_t)r->content_length : 0;
    /* A chunked body is decoded by conn with the strict decoder
     * (lib/chunked.c), not by llhttp. */
    c->ck = NULL;
    if (r->chunked) {
        c->ck = pc_arena_alloc(r->arena, sizeof *c->ck);
        pc_chunked_init(c->ck, r->cfg->limits.max_header_bytes);
    }
    c->head_ready = 1;
    pc_scratch_free(c);
    /* A body waits until a handler asks for it; without one, parsing runs
     * on to message-complete, which pauses. */
    return c->has_body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    c->body_bytes += len;
    r->bytes_in += len;
    if (c->body_bytes > r->max_body)
        return fail(c, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
    if (r->handler && r->handler->body)
        r->handler->body(r, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    c->msg_done = 1;
    /* body_end may run the rest of the chain: conn calls it once llhttp
     * has returned, never from inside the parser. */
    c->body_end_pending = c->has_body;
    return HPE_PAUSED;
}

const llhttp_settings_t pc_request_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
