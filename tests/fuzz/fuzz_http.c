/* fuzz_http.c: libFuzzer target for the HTTP request path with a smuggling
 * oracle. The input is the bytes one client sends on one connection; they
 * go through the real connection code (front/conn.c, front/request.c,
 * llhttp, framing, the chain, proxy/forward.c and the pools) of one
 * worker, to a recording upstream in this process (gw_harness.h), which
 * parses every request it receives with the reference parser (ref_http.h)
 * and answers `200 OK` with the body "ok".
 *
 * The oracle (abort on violation):
 *  - the client side: the same input is split into requests R1..Rk by the
 *    reference parser (stopping at the first one it refuses or that is cut
 *    short). Everything the gateway writes back is a sequence of
 *    well-formed responses (first bytes "HTTP/1.1 "), each with one
 *    X-Request-Id, nothing after a "Connection: close", and the j-th final
 *    response answers Rj. Only the upstream says 200, so the n-th 200 the
 *    client gets pairs with the n-th request the upstream got;
 *  - the upstream side: every request it receives is well-formed and framed
 *    unambiguously (one Host, one X-Request-Id, no hop-by-hop field, at
 *    most one of Content-Length / chunked); paired with Rj, it has Rj's
 *    method, query and body (byte for byte, decoded), the X-Request-Id the
 *    client got back, the path the route makes of Rj's (strip_prefix,
 *    rewrite), the route's header rules applied; and Rj is one the
 *    reference accepts, not after a request that closes the connection;
 *  - the counts: the upstream received exactly as many complete requests
 *    as the client got 200s (a request smuggled inside a body, or forwarded
 *    without an answer, breaks this), and no upstream connection left open
 *    (pooled) holds part of a request;
 *  - no client connection or pooled upstream connection survives an input.
 *
 * Each "|PAUSE|" in the input is not sent: the bytes before it are
 * written, and the loop runs until everything is quiet before the rest
 * goes (a head or body split across reads, a request sent only after the
 * previous answer). The oracle reads the input without the markers.
 *
 * FUZZ_HTTP_PRINT=1 prints both sides of each input (debugging a corpus
 * entry or a crash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_harness.h"
#include "ref_http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char CONFIG[] =
    "workers: 1\n"
    "listen: [{address: 127.0.0.1:%d}]\n"
    "limits: {max_header_bytes: 4k, max_headers: 20, max_body_bytes: 8k,\n"
    "         client_header_timeout: 2s, client_body_timeout: 2s,\n"
    "         keepalive_timeout: 5s}\n"
    "log: {access: \"off\", level: error}\n"
    "trusted_proxies: [127.0.0.0/8]\n"
    "upstreams:\n"
    "  rec: {targets: [{url: http://127.0.0.1:%d}], retries: 0,\n"
    "        connect_timeout: 2s, read_timeout: 5s}\n"
    "routes:\n"
    "  - {match: {path: /api, type: prefix}, upstream: rec, strip_prefix: /api}\n"
    "  - {match: {path: \"/u/{id}\", type: exact, methods: [GET]}, upstream: rec,\n"
    "     rewrite: \"/users/{id}\"}\n"
    "  - {match: {path: /h, type: prefix}, upstream: rec,\n"
    "     headers: {request: {set: {X-Fuzz-Set: \"1\"}, remove: [X-Fuzz-Remove]},\n"
    "               response: {set: {X-Fuzz-Resp: \"1\"}}}}\n"
    "  - {match: {path: /v, type: prefix}, upstream: rec,\n"
    "     validate: {content_types: [application/json], max_body_bytes: 1k}}\n"
    "  - {match: {path: /j, type: prefix}, upstream: rec,\n"
    "     validate: {json_schema: \"%s\"}}\n"
    "  - {match: {path: /, type: prefix}, upstream: rec}\n";

static fz_gw gw;
static fz_up up;
static int ready;
static char host_expected[32]; /* Host the gateway sends: the target's */

/* Complete requests the upstream received during the current input, in
 * order, as raw bytes (re-parsed when checked). */
static fz_buf *upreqs;
static size_t nupreqs, capupreqs;

/* The recording upstream: every complete request is kept and answered. */
static void upstream_input(fz_up *u, fz_upconn *c, void *ctx)
{
    (void)u;
    (void)ctx;
    while (c->used < c->in.len) {
        ref_msg m = {0};
        const unsigned char *p = c->in.p + c->used;
        size_t n = c->in.len - c->used;
        ref_status st = ref_message(p, n, 1, 0, c->eof, &m);
        if (st == REF_MORE) { /* a partial request: the rest may follow */
            ref_msg_free(&m);
            break;
        }
        if (st == REF_BAD) {
            fz_dump("upstream connection bytes", c->in.p, c->in.len);
            fz_fail("the upstream received a request the reference refuses "
                    "(%s) at offset %zu of connection %d",
                    m.why, c->used, c->id);
        }
        if (nupreqs == capupreqs) {
            capupreqs = capupreqs ? capupreqs * 2 : 16;
            upreqs = realloc(upreqs, capupreqs * sizeof *upreqs);
            if (!upreqs)
                abort();
        }
        upreqs[nupreqs] = (fz_buf){0};
        fz_buf_add(&upreqs[nupreqs++], p, m.len);
        if (fz_printing())
            fz_dump("upstream received", p, m.len);
        int head = m.mlen == 4 && memcmp(m.method, "HEAD", 4) == 0;
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        fz_up_send(c, resp, head ? sizeof resp - 3 : sizeof resp - 1);
        c->used += m.len;
        ref_msg_free(&m);
    }
}

static void setup(void)
{
    char schema[] = "/tmp/portcullis-fuzz-schema-XXXXXX";
    int fd = mkstemp(schema);
    static const char doc[] = "{\"type\": \"object\"}";
    if (fd < 0 || write(fd, doc, sizeof doc - 1) != (ssize_t)(sizeof doc - 1))
        abort();
    close(fd);
    fz_up_init(&up, upstream_input, NULL);
    char text[sizeof CONFIG + 128];
    snprintf(text, sizeof text, CONFIG, fz_free_port(), up.port, schema);
    fz_gw_init(&gw, text);
    unlink(schema); /* compiled at load */
    snprintf(host_expected, sizeof host_expected, "127.0.0.1:%d", up.port);
    ready = 1;
}

/* ---- checks --------------------------------------------------------- */

static int is_method(const ref_msg *m, const char *name)
{
    return m->mlen == strlen(name) && memcmp(m->method, name, m->mlen) == 0;
}

static int bytes_eq(const unsigned char *a, size_t an, const unsigned char *b,
                    size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int field_is(const ref_msg *m, const char *name, const char *value)
{
    const ref_field *f = ref_get(m, name);
    return f && ref_count(m, name) == 1 &&
           bytes_eq(f->value, f->vlen, (const unsigned char *)value, strlen(value));
}

/* A path the gateway cannot normalise into anything else ("/" or
 * segments of letters, digits, '-', '_'): the route and the upstream path
 * are known without reimplementing pathnorm. */
static int simple_path(const unsigned char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '/') {
            if (i + 1 < n && p[i + 1] == '/')
                return 0;
            if (i + 1 == n && n > 1)
                return 0; /* trailing slash: leave it to pathnorm */
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int first_segment_is(const unsigned char *p, size_t n, const char *seg)
{
    size_t sl = strlen(seg);
    return n >= sl + 1 && memcmp(p + 1, seg, sl) == 0 &&
           (n == sl + 1 || p[sl + 1] == '/');
}

static size_t nsegments(const unsigned char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '/';
    return n == 1 ? 0 : k;
}

/* The upstream request u answers the client request r (paired through
 * the n-th 200); resp is the client's response to r. */
static void check_pair(const ref_msg *r, size_t j, const ref_msg *resp,
                       const fz_buf *raw, size_t n)
{
    ref_msg u = {0};
    if (ref_message(raw->p, raw->len, 1, 0, 1, &u) != REF_OK)
        abort(); /* it parsed when it was received */
#define PAIR_FAIL(...)                                                       \
    do {                                                                     \
        fz_dump("upstream request", raw->p, raw->len);                          \
        fprintf(stderr, "client request %zu: %.*s\n", j, (int)r->tlen,       \
                (const char *)r->target);                                   \
        fz_fail(__VA_ARGS__);                                                \
    } while (0)
    if (!bytes_eq(u.method, u.mlen, r->method, r->mlen))
        PAIR_FAIL("upstream request %zu has another method than client request %zu", n, j);
    if (!bytes_eq(u.body, u.blen, r->body, r->blen))
        PAIR_FAIL("upstream request %zu: body of %zu bytes, client request %zu "
                  "framed %zu bytes", n, u.blen, j, r->blen);
    if (!field_is(&u, "host", host_expected))
        PAIR_FAIL("upstream request %zu: Host is not exactly one '%s'", n, host_expected);
    if (ref_count(&u, "x-request-id") != 1 || ref_count(&u, "x-forwarded-for") != 1)
        PAIR_FAIL("upstream request %zu: X-Request-Id or X-Forwarded-For not exactly once", n);
    const ref_field *uid = ref_get(&u, "x-request-id"), *cid = ref_get(resp, "x-request-id");
    if (!bytes_eq(uid->value, uid->vlen, cid->value, cid->vlen))
        PAIR_FAIL("upstream request %zu and response %zu carry different X-Request-Id", n, j);
    static const char *const hop[] = {"connection", "keep-alive", "te", "trailer",
                                      "upgrade", "expect", "proxy-connection", NULL};
    for (int i = 0; hop[i]; i++)
        if (ref_count(&u, hop[i]))
            PAIR_FAIL("upstream request %zu carries %s", n, hop[i]);
    const unsigned char *cp, *cq, *up_, *uq;
    size_t cpl, cql, upl, uql;
    if (ref_target_split(&u, &up_, &upl, &uq, &uql) != 0 || up_ != u.target)
        PAIR_FAIL("upstream request %zu: target not in origin-form", n);
    if (ref_target_split(r, &cp, &cpl, &cq, &cql) != 0)
        PAIR_FAIL("client request %zu: served, but its target form is not http(s)", j);
    if (!cq != !uq || !bytes_eq(cq, cql, uq, uql))
        PAIR_FAIL("upstream request %zu: query differs from client request %zu", n, j);
    if (r->target[0] != '/' || cpl > 8000 || !simple_path(cp, cpl))
        goto done;
    /* The routes of CONFIG, for paths pathnorm leaves as they are. */
    char want[8300];
    size_t wl = 0;
    if (first_segment_is(cp, cpl, "api")) {
        wl = cpl == 4 ? (memcpy(want, "/", 1), 1)
                      : (memcpy(want, cp + 4, cpl - 4), cpl - 4);
    } else if (first_segment_is(cp, cpl, "u") && nsegments(cp, cpl) == 2) {
        if (!is_method(r, "GET"))
            goto done; /* 405, or whatever a method mismatch gives */
        memcpy(want, "/users", 6);
        memcpy(want + 6, cp + 2, cpl - 2);
        wl = cpl + 4;
    } else {
        memcpy(want, cp, cpl);
        wl = cpl;
    }
    if (!bytes_eq(up_, upl, (const unsigned char *)want, wl))
        PAIR_FAIL("upstream request %zu: path '%.*s', expected '%.*s'", n,
                  (int)upl, (const char *)up_, (int)wl, want);
    if (first_segment_is(cp, cpl, "h")) {
        if (!field_is(&u, "x-fuzz-set", "1") || ref_count(&u, "x-fuzz-remove"))
            PAIR_FAIL("upstream request %zu: route /h header rules not applied", n);
        if (!field_is(resp, "x-fuzz-resp", "1"))
            PAIR_FAIL("response %zu: route /h response header rule not applied", j);
    }
done:
    ref_msg_free(&u);
#undef PAIR_FAIL
}

/* The client's requests as the reference reads them (the shortest
 * request is 18 bytes: an input of 64 KiB holds fewer than 4096). */
#define MAX_REQS 4096
typedef struct creqs {
    ref_msg r[MAX_REQS];
    size_t k;         /* accepted and complete */
    size_t limit;     /* the last one a server may answer (keep-alive) */
    size_t rest;      /* offset after R_k */
} creqs;

static void client_requests(const unsigned char *data, size_t size, creqs *c)
{
    size_t off = 0;
    c->k = 0;
    c->limit = 0;
    while (off < size && c->k < MAX_REQS) {
        ref_msg *m = &c->r[c->k];
        memset(m, 0, sizeof *m);
        if (ref_message(data + off, size - off, 1, 0, 1, m) != REF_OK) {
            ref_msg_free(m);
            break;
        }
        off += m->len;
        c->k++;
        if (!c->limit && !m->keepalive)
            c->limit = c->k;
    }
    if (!c->limit)
        c->limit = c->k;
    c->rest = off;
}

/* FUZZ_KNOWN "head-prefix-method": a method that starts with HEAD but is
 * not HEAD ("HEADX") is refused with a 400 framed as for HEAD (no body);
 * the client's reading of it may then go either way. */
static int head_prefix_known(const ref_msg *r)
{
    static int known = -1;
    if (known < 0)
        known = ref_known("head-prefix-method");
    return known && r->mlen > 4 && memcmp(r->method, "HEAD", 4) == 0;
}

static void check_input(const unsigned char *data, size_t size, fz_client *cl)
{
    static creqs cr;
    client_requests(data, size, &cr);
    const unsigned char *g = cl->got.p;
    size_t glen = cl->got.len, off = 0, j = 0, n200 = 0;
    if (glen && (glen < 9 || memcmp(g, "HTTP/1.1 ", 9) != 0)) {
        fz_dump("client received", g, glen);
        fz_fail("the gateway's first bytes are not \"HTTP/1.1 \"");
    }
    while (off < glen) {
        ref_msg m = {0};
        int head = j < cr.k && is_method(&cr.r[j], "HEAD");
        ref_status st = ref_message(g + off, glen - off, 0, head, cl->eof, &m);
        if ((j >= cr.k || head_prefix_known(&cr.r[j])) &&
            (st == REF_MORE || (st == REF_OK && !m.interim && m.status != 200 &&
                                off + m.len != glen &&
                                ref_any_list_has(&m, "connection", "close")))) {
            /* The refusal of a request the reference cannot read is framed
             * for whatever method the gateway had read when it failed (a
             * HEAD gets no body): either reading is fine if it ends
             * exactly at the close. A request the reference reads is
             * answered for its own method, refusals included. */
            ref_msg alt = {0};
            ref_status ast = ref_message(g + off, glen - off, 0, !head, cl->eof, &alt);
            if (ast == REF_OK && !alt.interim && alt.status != 200 &&
                off + alt.len == glen && ref_any_list_has(&alt, "connection", "close")) {
                ref_msg_free(&m);
                m = alt;
                st = ast;
            } else {
                ref_msg_free(&alt);
            }
        }
        if (st != REF_OK) {
            fz_dump("client received", g, glen);
            fz_fail("response at offset %zu is %s (%s)", off,
                    st == REF_MORE ? "cut short" : "malformed", m.why ? m.why : "");
        }
        if (m.interim) {
            if (m.status != 100) {
                fz_dump("client received", g, glen);
                fz_fail("interim response %d from the gateway", m.status);
            }
            off += m.len;
            ref_msg_free(&m);
            continue;
        }
        j++;
        if (ref_count(&m, "x-request-id") != 1) {
            fz_dump("client received", g, glen);
            fz_fail("response %zu without exactly one X-Request-Id", j);
        }
        if (m.status == 200) {
            n200++;
            if (j > cr.k) {
                fz_dump("client received", g, glen);
                fz_fail("response %zu is a 200, but the reference reads only %zu "
                        "complete requests in the input (it stops at offset %zu)",
                        j, cr.k, cr.rest);
            }
            if (j > cr.limit) {
                fz_dump("client received", g, glen);
                fz_fail("request %zu was served after request %zu closed the "
                        "connection", j, cr.limit);
            }
            if (n200 > nupreqs) {
                fz_dump("client received", g, glen);
                fz_fail("200 number %zu, but the upstream received %zu requests",
                        n200, nupreqs);
            }
            check_pair(&cr.r[j - 1], j, &m, &upreqs[n200 - 1], n200);
        }
        off += m.len;
        int close = ref_any_list_has(&m, "connection", "close");
        ref_msg_free(&m);
        if (close && off < glen) {
            fz_dump("client received", g, glen);
            fz_fail("bytes after a response with Connection: close");
        }
    }
    if (nupreqs != n200) {
        fz_dump("client received", g, glen);
        fz_fail("the upstream received %zu complete requests, the client got "
                "%zu responses from it", nupreqs, n200);
    }
    for (size_t i = 0; i < cr.k; i++)
        ref_msg_free(&cr.r[i]);
}

/* A pooled upstream connection (still open after the client's connection
 * is gone) must not hold part of a request. */
static void check_upstream_conns(void)
{
    for (size_t i = 0; i < up.n; i++) {
        fz_upconn *c = up.c[i];
        if (c->fd >= 0 && c->used < c->in.len) {
            fz_dump("upstream connection bytes", c->in.p, c->in.len);
            fz_fail("upstream connection %d is still open (pooled) with %zu "
                    "bytes of an unfinished request", c->id, c->in.len - c->used);
        }
    }
}

#define PAUSE "|PAUSE|"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static fz_buf sent;
    if (!ready)
        setup();
    fz_client cl = {.fd = fz_gw_client(&gw)};
    sent.len = 0;
    const unsigned char *p = data, *end = data + size;
    for (;;) {
        const unsigned char *mark = memmem(p, (size_t)(end - p), PAUSE, sizeof PAUSE - 1);
        const unsigned char *stop = mark ? mark : end;
        fz_buf_add(&sent, p, (size_t)(stop - p));
        fz_client_write(&cl, &gw, &up, p, (size_t)(stop - p));
        /* Everything answered that can be before the client goes on or
         * says it is done (a half-close ends pipelining at the current
         * response). */
        fz_settle(&gw, &up, &cl, 0, 20000);
        if (!mark)
            break;
        p = mark + sizeof PAUSE - 1;
    }
    if (fz_printing())
        fz_dump("client sent", sent.p, sent.len);
    shutdown(cl.fd, SHUT_WR);
    if (!fz_settle(&gw, &up, &cl, 1, 20000)) {
        fz_dump("client received", cl.got.p, cl.got.len);
        fz_fail("the gateway kept the client connection open after the "
                "client's half-close, with nothing left to do");
    }
    if (fz_printing())
        fz_dump("client received", cl.got.p, cl.got.len);
    check_input(sent.p ? sent.p : (const unsigned char *)"", sent.len, &cl);
    check_upstream_conns();
    fz_teardown(&gw, &up, &cl);
    for (size_t i = 0; i < nupreqs; i++)
        free(upreqs[i].p);
    nupreqs = 0;
    return 0;
}
