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
#include "portcullis/framing.h"
#include "portcullis/headers.h"
#include "portcullis/pathnorm.h"
#include "portcullis/util.h"
#include "portcullis/loop.h"

#define MAX_URI 8192

static int fail(pc_conn *c, pc_errcode e, const char *msg)
{
    if (c->fail == PC_ERR_NONE) {
        c->fail = e;
        c->fail_msg = msg;
    }
    return -1;
}

void pc_scratch_free(pc_conn *c)
{
    if (!c->scr)
        return;
    pc_span_free(&c->scr->url);
    pc_span_free(&c->scr->field);
    pc_span_free(&c->scr->value);
    c->scr = NULL; /* the struct itself is in the request's arena */
}

void pc_scratch_keep(pc_conn *c)
{
    if (!c->scr)
        return;
    pc_span_keep(&c->scr->url);
    pc_span_keep(&c->scr->field);
    pc_span_keep(&c->scr->value);
}

static int on_message_begin(llhttp_t *p)
{
    pc_conn *c = p->data;
    if (!c->req) /* conn starts it at the head's first byte */
        pc_conn_new_req(c);
    if (!c->scr) {
        c->scr = pc_arena_alloc(c->req->arena, sizeof *c->scr);
        memset(c->scr, 0, sizeof *c->scr);
    }
    return 0;
}

/* The method is known from the request line on, so that an error answered
 * before the head is complete still knows it answers a HEAD and sends no
 * body the client would read as the next response. llhttp calls this
 * after a known prefix ("HEAD" of "HEADX"): conn forgets the method when
 * the parser then fails with HPE_INVALID_METHOD. CONNECT is refused here
 * (CONTRACT §3: 405). */
static int on_method_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    r->method_bit = pc_method_bit(r->method, strlen(r->method));
    if (r->method_bit == PC_M_CONNECT) {
        /* Allow names what any route can take. */
        r->match.allow = PC_M_GET | PC_M_HEAD | PC_M_POST | PC_M_PUT |
                         PC_M_DELETE | PC_M_PATCH | PC_M_OPTIONS;
        return fail(c, PC_ERR_METHOD_NOT_ALLOWED, "CONNECT is not supported");
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    if (c->scr->url.len + len > MAX_URI)
        return fail(c, PC_ERR_URI_TOO_LONG, NULL);
    pc_span_add(&c->scr->url, at, len);
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    if (p->http_major != 1 || p->http_minor > 1)
        return fail(c, PC_ERR_HTTP_VERSION, NULL);
    return 0;
}

/* llhttp pauses at the end of every head (on_headers_complete) and is
 * re-initialised for the next request, so these only ever see head
 * fields: a body and its trailers are read by conn with the strict
 * decoder, never by llhttp. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    pc_span_add(&c->scr->field, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    pc_conn *c = p->data;
    pc_span_add(&c->scr->value, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    if (!pc_header_name_valid(c->scr->field.p, c->scr->field.len))
        return fail(c, PC_ERR_BAD_REQUEST, "invalid header field name");
    if (++c->nheaders > r->cfg->limits.max_headers)
        return fail(c, PC_ERR_HEADERS_TOO_LARGE, "too many header fields");
    size_t vlen = c->scr->value.len;
    const char *v = c->scr->value.p ? c->scr->value.p : "";
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (!pc_header_value_valid(v, vlen))
        return fail(c, PC_ERR_BAD_REQUEST, "invalid header field value");
    pc_headers_add(&r->headers, r->arena, c->scr->field.p, c->scr->field.len,
                   v, vlen);
    pc_span_reset(&c->scr->field);
    pc_span_reset(&c->scr->value);
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
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)u[i];
        /* llhttp lets HTAB and FF through in the target; an upstream may
         * split the request line on them (RFC 9112 §3). */
        if (ch < 0x21 || ch == 0x7f)
            return fail(c, PC_ERR_BAD_REQUEST,
                        "whitespace or control character in request target");
    }
    if (memchr(u, '#', len))
        return fail(c, PC_ERR_BAD_REQUEST, "fragment in request target");
    if (memchr(u, '\\', len))
        return fail(c, PC_ERR_BAD_REQUEST, "backslash in request target");
    const char *q = memchr(u, '?', len);
    size_t plen = q ? (size_t)(q - u) : len;
    char *out = pc_arena_alloc(r->arena, plen + 1);
    size_t olen = 0;
    /* CONTRACT §3 "Paths": every form an upstream could read differently
     * (//, ;params, %00, trailing '.' or %20, climbing) is refused. */
    pc_path_status st = pc_path_normalize(u, plen, out, &olen);
    if (st != PC_PATH_OK)
        return fail(c, PC_ERR_BAD_REQUEST, pc_path_status_message(st));
    r->path = out;
    r->pathlen = olen;
    r->query = q ? pc_arena_strndup(r->arena, q + 1, len - plen - 1) : NULL;
    return 0;
}

/* Host or absolute-form authority (pathnorm.c: RFC 3986 §3.2.2 host,
 * DNS-style, optional port). r->host keeps it as sent (X-Forwarded-Host,
 * preserve_host); r->hostname is the lower-case name routes match, without
 * port or trailing dot. */
static int set_host(pc_conn *c, pc_req *r, const char *a, size_t n)
{
    pc_host h;
    const char *why = NULL;
    if (pc_host_parse(a, n, &h, &why) != 0)
        return fail(c, PC_ERR_BAD_REQUEST, why);
    r->host = pc_arena_strndup(r->arena, a, n);
    char *name = pc_arena_strndup(r->arena, a, h.namelen);
    for (char *x = name; *x; x++)
        if (*x >= 'A' && *x <= 'Z')
            *x += 32;
    r->hostname = name;
    return 0;
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

/* CONTRACT §3: fields that must appear at most once, because the gateway
 * and the upstream could each read a different copy (Content-Length is
 * the framing module's). */
static int repeated_fields(pc_conn *c, const pc_req *r)
{
    static const char *const single[] = {"host", "authorization",
                                         "content-type", NULL};
    for (int i = 0; single[i]; i++)
        if (pc_headers_count(&r->headers, single[i]) > 1) {
            static const char *const why[] = {
                "more than one Host header", "more than one Authorization header",
                "more than one Content-Type header"};
            return fail(c, PC_ERR_BAD_REQUEST, why[i]);
        }
    return 0;
}

/* The authority: absolute-form target, else Host (required in 1.1). */
static int request_host(pc_conn *c, pc_req *r, const char *auth, size_t alen)
{
    const pc_header *host = pc_headers_get(&r->headers, "host");
    if (auth) {
        if (set_host(c, r, auth, alen) != 0)
            return -1;
    } else if (host) {
        if (set_host(c, r, host->value, host->vlen) != 0)
            return -1;
    } else if (r->http_minor == 1) {
        return fail(c, PC_ERR_BAD_REQUEST, "missing Host header");
    } else {
        r->host = r->hostname = "";
    }
    return 0;
}

/* Body framing (http/framing.c) and the body limit checked before any
 * body byte is read. */
static int request_framing(pc_conn *c, pc_req *r)
{
    const char *why = NULL;
    if (pc_framing_request(&r->headers, r->http_minor, &r->framing, &why) != 0)
        return fail(c, PC_ERR_BAD_REQUEST, why);
    if (r->framing.kind == PC_FRAME_LENGTH &&
        r->framing.length > r->cfg->limits.max_body_bytes)
        return fail(c, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
    c->has_body = pc_framing_has_body(&r->framing);
    c->raw_left = r->framing.kind == PC_FRAME_LENGTH ? r->framing.length : 0;
    c->ck = NULL; /* set up by conn once the head's size is known */
    if (!c->has_body)
        c->msg_done = 1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    pc_conn *c = p->data;
    pc_req *r = c->req;
    const char *auth;
    size_t alen;

    /* HTTP/0.9 ("GET /path" CRLF): no version, no headers. */
    if (p->http_major != 1)
        return fail(c, PC_ERR_BAD_REQUEST, "request line without an HTTP version");
    r->http_minor = p->http_minor;
    if (parse_target(c, r, &auth, &alen) != 0)
        return -1;
    if (repeated_fields(c, r) != 0 || request_host(c, r, auth, alen) != 0 ||
        request_framing(c, r) != 0)
        return -1;
    const char *expect = pc_req_header(r, "expect");
    r->expect_continue = expect && pc_strieq(expect, strlen(expect),
                                             "100-continue", 12);
    r->keepalive = llhttp_should_keep_alive(p) && !r->framing.close_after;
    const char *rid = pc_req_header(r, "x-request-id");
    if (rid && pc_request_id_valid(rid, strlen(rid)))
        memcpy(r->request_id, rid, strlen(rid) + 1);
    client_address(r);
    pc_ip_format(&r->client, r->client_text, sizeof r->client_text);
    c->head_ready = 1;
    pc_scratch_free(c);
    /* llhttp stops here, for every request: the body (if any) is framed by
     * r->framing and read by conn; the parser is re-initialised for the
     * next request. */
    return HPE_PAUSED;
}

const llhttp_settings_t pc_request_settings = {
    .on_message_begin = on_message_begin,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
};
