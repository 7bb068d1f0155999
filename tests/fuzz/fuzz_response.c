/* fuzz_response.c: libFuzzer target for the response path: the input is
 * what an upstream sends back, through the real proxy code
 * (proxy/forward.c: llhttp for heads, http/framing.c, lib/chunked.c,
 * proxy/pool.c) and the client side of front/conn.c, to a client that sent
 * one or two pipelined requests on one connection (gw_harness.h).
 *
 * Input: byte 0 is flags, the rest the upstream's bytes:
 *   bit 0   two pipelined requests (GET /r1, then GET /h/r2), else one
 *   bit 1   the upstream closes right after its answer (else it keeps the
 *           connection open until everything is quiet, then closes)
 *   bit 2   the answer is written in pieces of 1 << bits 3-5 bytes, one
 *           piece per loop round (heads and bodies split anywhere)
 *   bit 6/7 request 1 / request 2 is HEAD instead of GET
 * If the bytes hold "|NEXT|", what comes before answers /r1 and what comes
 * after answers /h/r2; otherwise both get all of it. Each request is
 * answered with its segment whenever it arrives (a retry gets it again).
 * The route of /h/ has response header rules (set X-Fuzz-Resp, remove
 * Server).
 *
 * The oracle (abort on violation), with the reference parser ref_http.h
 * reading both what the upstream sent (segment i, 1xx heads skipped) and
 * what the client got:
 *  - the client's bytes are a sequence of well-formed final responses (no
 *    1xx is ever forwarded), framed by Content-Length or chunked, at most
 *    one per request, each with exactly one X-Request-Id, the one its
 *    request carried (fuzz-1, fuzz-2), in order;
 *  - response i is a 502 (the only status the gateway makes here), or the
 *    status of the final response the reference reads in segment i, with
 *    only header fields the upstream sent (plus the gateway's own and the
 *    route's), and its body: all of it, decoded, when the reference reads
 *    the upstream's response as complete and valid, else a prefix of it,
 *    cut short by the gateway closing the connection;
 *  - a response the reference refuses before its head is complete is
 *    never forwarded (the client gets a 502);
 *  - a complete response without "Connection: close" is followed by the
 *    answer to the next request, and the connection closes after a
 *    response that says so or that was cut short.
 * FUZZ_HTTP_PRINT=1 prints both sides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_harness.h"
#include "ref_http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char CONFIG[] =
    "workers: 1\n"
    "listen: [{address: 127.0.0.1:%d}]\n"
    "limits: {max_header_bytes: 4k, max_body_bytes: 8k,\n"
    "         client_header_timeout: 2s, keepalive_timeout: 5s}\n"
    "log: {access: \"off\", level: error}\n"
    "upstreams:\n"
    "  fake: {targets: [{url: http://127.0.0.1:%d}], retries: 0,\n"
    "         connect_timeout: 2s, read_timeout: 10s}\n"
    "routes:\n"
    "  - {match: {path: /h, type: prefix}, upstream: fake,\n"
    "     headers: {response: {set: {X-Fuzz-Resp: \"1\"}, remove: [Server]}}}\n"
    "  - {match: {path: /, type: prefix}, upstream: fake}\n";

static const char *const PATHS[2] = {"/r1", "/h/r2"};
#define MARK "|NEXT|"

static fz_gw gw;
static fz_up up;
static int ready;

/* The current input's script. */
static struct {
    const unsigned char *seg[2];
    size_t seglen[2];
    int head[2];      /* request i is HEAD */
    int close_after;  /* bit 1 */
    size_t piece;     /* bit 2: bytes per round */
    unsigned asked[2];/* times the upstream was asked for request i */
} S;

/* The scripted upstream: each complete request gets its segment. */
static void upstream_input(fz_up *u, fz_upconn *c, void *ctx)
{
    (void)u;
    (void)ctx;
    while (c->used < c->in.len) {
        ref_msg m = {0};
        ref_status st = ref_message(c->in.p + c->used, c->in.len - c->used, 1, 0,
                                    c->eof, &m);
        if (st == REF_MORE) {
            ref_msg_free(&m);
            break;
        }
        if (st == REF_BAD) {
            fz_dump("upstream connection bytes", c->in.p, c->in.len);
            fz_fail("the upstream received a request the reference refuses (%s)", m.why);
        }
        int i = -1;
        for (int k = 0; k < 2; k++)
            if (m.tlen == strlen(PATHS[k]) && memcmp(m.target, PATHS[k], m.tlen) == 0)
                i = k;
        if (i < 0 || m.blen != 0 || (m.mlen == 4) != S.head[i]) {
            fz_dump("upstream connection bytes", c->in.p, c->in.len);
            fz_fail("the upstream received a request the client did not send");
        }
        S.asked[i]++;
        fz_up_send(c, S.seg[i], S.seglen[i]);
        c->piece = S.piece;
        c->close_when_written = S.close_after;
        c->used += m.len;
        ref_msg_free(&m);
    }
}

static void setup(void)
{
    fz_up_init(&up, upstream_input, NULL);
    char text[sizeof CONFIG + 64];
    snprintf(text, sizeof text, CONFIG, fz_free_port(), up.port);
    fz_gw_init(&gw, text);
    ready = 1;
}

/* ---- the reference reading of a segment ------------------------------ */

typedef enum {
    UP_HEAD_BAD,  /* no valid final head: must never be forwarded */
    UP_BODY_BAD,  /* a valid final head, then an invalid or cut body */
    UP_OK,        /* a complete, valid final response */
} up_verdict;

typedef struct up_ref {
    up_verdict v;
    ref_msg m;    /* the final response (head fields, body so far) */
    const char *why;
} up_ref;

static void read_segment(const unsigned char *p, size_t n, int head, up_ref *r)
{
    size_t off = 0;
    memset(r, 0, sizeof *r);
    for (;;) {
        ref_msg_free(&r->m);
        ref_status st = ref_message(p + off, n - off, 0, head, 1, &r->m);
        if (st == REF_OK && r->m.interim) {
            off += r->m.len;
            continue;
        }
        r->why = r->m.why ? r->m.why : "cut short";
        if (st == REF_OK)
            r->v = UP_OK;
        else if (r->m.head_len && r->m.status >= 200 &&
                 (st == REF_MORE || r->m.frame == REF_FRAME_CHUNKED))
            r->v = UP_BODY_BAD; /* head read and framed; the body broke */
        else
            r->v = UP_HEAD_BAD;
        return;
    }
}

/* ---- checks --------------------------------------------------------- */

static int bytes_eq(const unsigned char *a, size_t an, const unsigned char *b,
                    size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int upstream_has(const ref_msg *u, const ref_field *f)
{
    for (size_t i = 0; i < u->nf; i++)
        if (bytes_eq(u->f[i].name, u->f[i].nlen, f->name, f->nlen) &&
            bytes_eq(u->f[i].value, u->f[i].vlen, f->value, f->vlen))
            return 1;
    return 0;
}

static fz_client cl;

#define FAIL(...)                                                             \
    do {                                                                      \
        fz_dump("client received", cl.got.p, cl.got.len);                       \
        fz_fail(__VA_ARGS__);                                                 \
    } while (0)

/* Response number i (0-based) the client got, against the reference. */
static void check_forwarded(int i, const ref_msg *m, ref_status st,
                            const up_ref *r)
{
    if (m->status == 502)
        return; /* the gateway's own, or the upstream's */
    if (!S.asked[i])
        FAIL("response %d has status %d but request %d never reached the upstream",
             i + 1, m->status, i + 1);
    if (r->v == UP_HEAD_BAD)
        FAIL("response %d (status %d) forwarded, but the reference refuses the "
             "upstream's response head: %s", i + 1, m->status, r->why);
    if (m->status != r->m.status)
        FAIL("response %d has status %d, the upstream said %d", i + 1,
             m->status, r->m.status);
    for (size_t k = 0; k < m->nf; k++) {
        const ref_field *f = &m->f[k];
        static const char *const own[] = {"x-request-id", "content-length",
                                          "transfer-encoding", "connection", NULL};
        int mine = 0;
        for (int o = 0; own[o]; o++)
            mine |= ref_ieq(f->name, f->nlen, own[o]);
        if (i == 1 && ref_ieq(f->name, f->nlen, "x-fuzz-resp"))
            mine = 1;
        if (!mine && !upstream_has(&r->m, f))
            FAIL("response %d carries '%.*s: %.*s', which the upstream did not send",
                 i + 1, (int)f->nlen, (const char *)f->name, (int)f->vlen,
                 (const char *)f->value);
        if (i == 1 && ref_ieq(f->name, f->nlen, "server"))
            FAIL("response 2 carries Server despite the route's remove rule");
    }
    if (i == 1 && ref_count(m, "x-fuzz-resp") != 1)
        FAIL("response 2 lacks the route's X-Fuzz-Resp");
    int complete = st == REF_OK;
    if (m->blen > r->m.blen || (m->blen && memcmp(m->body, r->m.body, m->blen) != 0))
        FAIL("response %d: body is not the upstream's (%zu bytes, upstream %zu)",
             i + 1, m->blen, r->m.blen);
    if (r->v == UP_OK && complete && m->blen != r->m.blen)
        FAIL("response %d: body of %zu bytes, the upstream sent %zu", i + 1,
             m->blen, r->m.blen);
    if (r->v == UP_BODY_BAD && complete && m->blen == r->m.blen &&
        r->m.frame == REF_FRAME_CHUNKED)
        FAIL("response %d forwarded as complete, but the upstream's chunked "
             "body is %s", i + 1, r->why);
    if (r->v == UP_BODY_BAD && complete && r->m.frame == REF_FRAME_LENGTH)
        FAIL("response %d forwarded as complete, but the upstream's body was "
             "cut short", i + 1);
}

static void check_input(int nreq, int maybe_stale)
{
    up_ref ref[2];
    for (int i = 0; i < nreq; i++)
        read_segment(S.seg[i], S.seglen[i], S.head[i], &ref[i]);
    const unsigned char *g = cl.got.p;
    size_t glen = cl.got.len, off = 0;
    int n = 0, last_complete = 1, last_close = 0;
    while (off < glen) {
        if (n == nreq)
            FAIL("more responses than requests");
        ref_msg m = {0};
        ref_status st = ref_message(g + off, glen - off, 0, S.head[n], 0, &m);
        if (st == REF_BAD)
            FAIL("response %d is malformed: %s", n + 1, m.why);
        if (!m.head_len)
            FAIL("response %d: head cut short", n + 1);
        if (m.interim)
            FAIL("a %d interim response reached the client", m.status);
        if (m.frame == REF_FRAME_CLOSE)
            FAIL("response %d is close-delimited towards an HTTP/1.1 client", n + 1);
        if ((m.status == 204 || m.status == 304) &&
            (ref_count(&m, "transfer-encoding") ||
             (m.status == 204 && ref_count(&m, "content-length"))))
            FAIL("response %d: %d with framing fields", n + 1, m.status);
        char rid[16];
        snprintf(rid, sizeof rid, "fuzz-%d", n + 1);
        const ref_field *id = ref_get(&m, "x-request-id");
        if (ref_count(&m, "x-request-id") != 1 ||
            !bytes_eq(id->value, id->vlen, (const unsigned char *)rid, strlen(rid)))
            FAIL("response %d does not carry exactly X-Request-Id: %s", n + 1, rid);
        if (!(n == 1 && maybe_stale))
            check_forwarded(n, &m, st, &ref[n]);
        last_complete = st == REF_OK;
        last_close = ref_any_list_has(&m, "connection", "close");
        n++;
        off += last_complete ? m.len : glen - off;
        ref_msg_free(&m);
        if (!last_complete && off < glen)
            abort(); /* cannot happen: a cut response ends the bytes */
        if (last_close && off < glen)
            FAIL("bytes after a response with Connection: close");
    }
    if (!last_complete && !cl.eof)
        FAIL("response %d cut short, yet the connection is still open", n);
    if (n > 0 && last_close && !cl.eof)
        FAIL("the connection stayed open after Connection: close");
    if (n < nreq && last_complete && !last_close)
        FAIL("request %d was never answered (%d responses, the last complete "
             "and keep-alive%s)", n + 1, n, cl.eof ? ", then the gateway closed" : "");
    for (int i = 0; i < nreq; i++)
        ref_msg_free(&ref[i].m);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!ready)
        setup();
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const unsigned char *p = data + 1;
    size_t n = size - 1;
    memset(&S, 0, sizeof S);
    const unsigned char *mark = memmem(p, n, MARK, sizeof MARK - 1);
    S.seg[0] = S.seg[1] = p;
    S.seglen[0] = S.seglen[1] = n;
    if (mark) {
        S.seglen[0] = (size_t)(mark - p);
        S.seg[1] = mark + sizeof MARK - 1;
        S.seglen[1] = n - S.seglen[0] - (sizeof MARK - 1);
    }
    int nreq = flags & 1 ? 2 : 1;
    S.close_after = (flags >> 1) & 1;
    S.piece = flags & 4 ? (size_t)1 << ((flags >> 3) & 7) : 0;
    S.head[0] = (flags >> 6) & 1;
    S.head[1] = (flags >> 7) & 1;

    cl = (fz_client){.fd = fz_gw_client(&gw)};
    char req[2][128];
    size_t rl[2];
    for (int i = 0; i < nreq; i++)
        rl[i] = (size_t)snprintf(req[i], sizeof req[i],
                                 "%s %s HTTP/1.1\r\nHost: fuzz.test\r\n"
                                 "X-Request-Id: fuzz-%d\r\n\r\n",
                                 S.head[i] ? "HEAD" : "GET", PATHS[i], i + 1);
    char both[256];
    memcpy(both, req[0], rl[0]);
    if (nreq == 2)
        memcpy(both + rl[0], req[1], rl[1]);
    if (fz_printing()) {
        fz_dump("client sends", (const unsigned char *)both, rl[0] + (nreq == 2 ? rl[1] : 0));
        for (int i = 0; i < nreq; i++)
            fz_dump(i ? "upstream answers /h/r2" : "upstream answers /r1", S.seg[i], S.seglen[i]);
    }
    fz_client_write(&cl, &gw, &up, (const unsigned char *)both,
                    rl[0] + (nreq == 2 ? rl[1] : 0));
    /* Quiet, then the upstream hangs up on whatever it still holds open
     * (ending a close-delimited or cut-short answer), until a quiet round
     * leaves no upstream connection open. */
    for (int phase = 0; phase < 8; phase++) {
        fz_settle(&gw, &up, &cl, 0, 20000);
        if (!fz_up_close_all(&up))
            break;
    }
    if (fz_printing())
        fz_dump("client received", cl.got.p, cl.got.len);
    /* Written in pieces, a segment's bytes after its first response may
     * arrive after the gateway has pooled the connection and sent request
     * 2 on it: no HTTP/1.1 client can tell those from the answer to
     * request 2 (an upstream that sends unasked bytes is broken), so
     * response 2 is then only checked for its form. */
    up_ref r0;
    read_segment(S.seg[0], S.seglen[0], S.head[0], &r0);
    int stale = S.piece && r0.v == UP_OK && r0.m.len < S.seglen[0];
    ref_msg_free(&r0.m);
    check_input(nreq, stale);
    fz_teardown(&gw, &up, &cl);
    return 0;
}
