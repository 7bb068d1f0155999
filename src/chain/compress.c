/* compress.c: response compression (CONTRACT §2 route `compress`, §3 step
 * 10). on_request reads Accept-Encoding once (lib/encoding.c picks the
 * coding: the client's highest q-value, ties zstd > br > gzip); the
 * on_response hook decides for the response head and installs a body
 * filter that streams the body through the encoder (no buffering beyond
 * the encoder's own window and one 16 KiB output block; backpressure is
 * the client socket's, through the sink).
 *
 * A response of the route whose Content-Type matches `types` always gets
 * `Vary: Accept-Encoding` (CONTRACT §3), compressed or not. It is
 * compressed only when, besides: the client accepts a coding, the status
 * carries a representation of the whole body (not 206, 204, 1xx), it has
 * no Content-Encoding yet (passed through as it is), no
 * `Cache-Control: no-transform` (RFC 9110 §7.7), and its length is unknown
 * or at least `min_bytes`. Then: Content-Encoding set, a strong ETag made
 * weak (the bytes differ from the upstream's), Accept-Ranges removed
 * (ranges of the encoded bytes are not offered) and the body re-framed by
 * the chain (chunked; Content-Length dropped). A 304 to such a request
 * gets the weak ETag too, so that it matches what the client holds.
 * A producer that answers from stored bytes (the cache) offers the
 * codings it holds with the head (resp->codings, http.h): a body encoded
 * before is taken and sent with its Content-Length, never encoded again;
 * otherwise the encoded output is copied while it streams and handed to
 * the producer at its end (keep), so that the next hit takes it.
 * Stage table position: after route (so errors of the earlier stages are
 * never compressed) and before the stages that produce a body (cache,
 * proxy), so their body filters see the upstream's bytes. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/chain.h"
#include "portcullis/encoding.h"
#include "portcullis/errlog.h"
#include "portcullis/loop.h"
#include "portcullis/trie.h"
#include "portcullis/util.h"

#define DEFAULT_MIN_BYTES 1024
#define MAX_TYPES 64

typedef struct cz_policy {
    char **types; /* lower case; "type/" + "*" wildcards */
    size_t ntypes;
    uint64_t min_bytes;
} cz_policy;

typedef struct cz_slot {
    pc_enc enc;        /* chosen from Accept-Encoding (identity: none) */
    pc_encoder *e;     /* while compressing */
    pc_req *req;
    unsigned self;
    int failed;        /* the encoder failed: nothing more is sent */
    /* the encoded body kept for the producer's offer (resp->codings) */
    const pc_body_codings *keep;
    char *kbuf;        /* malloc */
    size_t klen, kcap;
} cz_slot;

static const char *const default_types[] = {
    "text/*", "application/json", "application/javascript",
    "application/xml", "image/svg+xml", NULL};

/* ---- configuration ---------------------------------------------------- */

static void cz_free(void *p)
{
    cz_policy *c = p;
    for (size_t i = 0; i < c->ntypes; i++)
        free(c->types[i]);
    free(c->types);
    free(c);
}

static json_t *cz_json(const void *p)
{
    const cz_policy *c = p;
    json_t *types = json_array();
    for (size_t i = 0; i < c->ntypes; i++)
        json_array_append_new(types, json_string(c->types[i]));
    return json_pack("{s:o,s:I}", "types", types, "min_bytes",
                     (json_int_t)c->min_bytes);
}

/* type "/" subtype, tokens; the subtype may be a lone "*" (any subtype of
 * the type), and a lone "*" type only with it (everything). */
static int valid_type(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"[]?={}", *p))
            return 0;
    if (strchr(s, '*') && strcmp(slash + 1, "*") != 0)
        return 0; /* '*' only as a whole subtype */
    if (s[0] == '*' && slash != s + 1)
        return 0;
    return 1;
}

static void *cz_configure_route(const pc_node *n, pc_config *cfg, pc_route *r,
                                pc_errors *err)
{
    (void)cfg;
    (void)r;
    static const char *const keys[] = {"types", "min_bytes", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "compress", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "compress", err);
    cz_policy *c = pc_xcalloc(1, sizeof *c);
    c->min_bytes = DEFAULT_MIN_BYTES;
    const pc_node *v = pc_node_get(n, "types");
    if (v && pc_node_expect_seq(v, "types", err) == 0) {
        if (v->n == 0)
            pc_errors_add(err, v, "compress: 'types' needs at least one "
                                  "media type");
        else if (v->n > MAX_TYPES)
            pc_errors_add(err, v, "compress: at most %d types", MAX_TYPES);
        else {
            c->types = pc_xcalloc(v->n, sizeof *c->types);
            for (size_t i = 0; i < v->n; i++) {
                char *t = NULL;
                if (pc_node_str(v->vals[i], "types", &t, err) < 0)
                    continue;
                for (char *p = t; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                if (!valid_type(t)) {
                    pc_errors_add(err, v->vals[i],
                                  "invalid media type '%s' (type/subtype or "
                                  "type/*)", t);
                    free(t);
                    continue;
                }
                c->types[c->ntypes++] = t;
            }
        }
    } else if (!v) {
        size_t k = 0;
        while (default_types[k])
            k++;
        c->types = pc_xcalloc(k, sizeof *c->types);
        for (size_t i = 0; i < k; i++)
            c->types[c->ntypes++] = pc_xstrdup(default_types[i]);
    }
    if ((v = pc_node_get(n, "min_bytes")))
        pc_node_size(v, "min_bytes", &c->min_bytes, err);
    if (err->n != before) {
        cz_free(c);
        return NULL;
    }
    return c;
}

/* ---- request ---------------------------------------------------------- */

static pc_verdict cz_on_request(pc_req *req)
{
    if (!pc_chain_route_policy(req, req->stage))
        return PC_NEXT;
    pc_accept_enc a;
    pc_accept_enc_init(&a);
    for (uint32_t i = 0; i < req->headers.n; i++) {
        const pc_header *h = &req->headers.v[i];
        if (h->nlen == 15 && pc_strieq(h->name, 15, "accept-encoding", 15))
            pc_accept_enc_feed(&a, h->value, h->vlen);
    }
    cz_slot *s = pc_arena_alloc(req->arena, sizeof *s);
    memset(s, 0, sizeof *s);
    s->enc = pc_accept_enc_pick(&a, PC_ENC_ALL);
    s->req = req;
    s->self = req->stage;
    pc_req_set_slot(req, req->stage, s);
    return PC_NEXT;
}

/* ---- response head ---------------------------------------------------- */

static int type_matches(const cz_policy *c, const char *ct, size_t len)
{
    const char *end = memchr(ct, ';', len);
    if (end)
        len = (size_t)(end - ct);
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    while (len && (*ct == ' ' || *ct == '\t'))
        ct++, len--;
    if (!len)
        return 0;
    for (size_t i = 0; i < c->ntypes; i++) {
        const char *t = c->types[i];
        size_t tl = strlen(t);
        if (tl == 3 && t[0] == '*') /* any */
            return 1;
        if (t[tl - 1] == '*') { /* "type/": the prefix up to the slash */
            if (len > tl - 1 && pc_strieq(ct, tl - 1, t, tl - 1))
                return 1;
        } else if (pc_strieq(ct, len, t, tl)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when a comma-separated list field (every field of that name) has an
 * element equal to word (case-insensitive). */
static int list_has(const pc_headers *hs, const char *name, const char *word)
{
    size_t wl = strlen(word);
    for (uint32_t i = 0; i < hs->n; i++) {
        const pc_header *h = &hs->v[i];
        if (!pc_strieq(h->name, h->nlen, name, strlen(name)))
            continue;
        const char *p = h->value, *e = h->value + h->vlen, *s;
        size_t len;
        while ((s = pc_list_next(&p, e, &len))) {
            /* "no-transform" may carry no argument; compare the name */
            const char *eq = memchr(s, '=', len);
            if (eq)
                len = (size_t)(eq - s);
            if (len == wl && pc_strieq(s, wl, word, wl))
                return 1;
        }
    }
    return 0;
}

static void add_vary(pc_req *req, pc_resp *resp)
{
    if (list_has(&resp->headers, "vary", "accept-encoding") ||
        list_has(&resp->headers, "vary", "*"))
        return;
    pc_headers_add(&resp->headers, req->arena, "Vary", 4, "Accept-Encoding",
                   15);
}

/* A strong ETag becomes weak: W/"x" (RFC 9110 §8.8.3). */
static void weaken_etag(pc_req *req, pc_resp *resp)
{
    for (uint32_t i = 0; i < resp->headers.n; i++) {
        pc_header *h = &resp->headers.v[i];
        if (h->nlen != 4 || !pc_strieq(h->name, 4, "etag", 4))
            continue;
        if (h->vlen >= 2 && h->value[0] == 'W' && h->value[1] == '/')
            continue;
        char *v = pc_arena_alloc(req->arena, (size_t)h->vlen + 3);
        v[0] = 'W';
        v[1] = '/';
        memcpy(v + 2, h->value, h->vlen);
        v[h->vlen + 2] = '\0';
        h->value = v;
        h->vlen += 2;
    }
}

static void keep_drop(cz_slot *s)
{
    free(s->kbuf);
    s->kbuf = NULL;
    s->klen = s->kcap = 0;
    s->keep = NULL;
}

/* Copies encoded output for the offer's keep(); past keep_max (or out of
 * memory) nothing is kept and the stream goes on. */
static void keep_add(cz_slot *s, const char *data, size_t len)
{
    if (s->klen + len > s->keep->keep_max) {
        keep_drop(s);
        return;
    }
    if (s->klen + len > s->kcap) {
        size_t nc = s->kcap ? s->kcap : 4096;
        while (nc < s->klen + len)
            nc *= 2;
        char *nb = realloc(s->kbuf, nc);
        if (!nb) {
            keep_drop(s);
            return;
        }
        s->kbuf = nb;
        s->kcap = nc;
    }
    memcpy(s->kbuf + s->klen, data, len);
    s->klen += len;
}

static int emit(void *arg, const char *data, size_t len)
{
    cz_slot *s = arg;
    if (s->keep)
        keep_add(s, data, len);
    pc_body_next(s->req, s->self, data, len, 0);
    return 0;
}

static pc_body_status cz_filter(pc_req *req, unsigned slot, const char *data,
                                size_t len, int last)
{
    cz_slot *s = pc_req_slot(req, slot);
    if (!s->failed && s->e &&
        pc_encoder_run(s->e, data, len, last, emit, s) != 0) {
        s->failed = 1; /* the client sees a truncated stream and knows */
        pc_log(PC_LOG_ERROR, "request %s: %s encoder failed", req->request_id,
               pc_enc_name(s->enc));
    }
    /* The filter never holds bytes (the encoder's window is not output
     * owed): downstream backpressure is the sink's own. */
    if (last) {
        if (s->keep && !s->failed)
            s->keep->keep(req, s->keep->ctx, s->enc, s->kbuf, s->klen);
        keep_drop(s);
        return pc_body_next(req, slot, NULL, 0, 1);
    }
    return PC_BODY_OK;
}

static void cz_release(pc_req *req, unsigned slot)
{
    cz_slot *s = pc_req_slot(req, slot);
    if (s) {
        pc_encoder_put(req->loop->stage_state[slot], s->e);
        s->e = NULL;
        keep_drop(s);
    }
}

static const pc_body_filter cz_body = {
    .filter = cz_filter, .release = cz_release, .changes_length = 1};

static void cz_on_response(pc_req *req, unsigned self, pc_resp *resp)
{
    cz_slot *s = pc_req_slot(req, self);
    const cz_policy *c = pc_chain_route_policy(req, self);
    if (!s || !c || resp->status < 200 || resp->status == 204 ||
        resp->status == 206)
        return;
    const pc_header *ct = pc_headers_get(&resp->headers, "Content-Type");
    if (!ct || !type_matches(c, ct->value, ct->vlen))
        return;
    add_vary(req, resp);
    if (s->enc == PC_ENC_IDENTITY ||
        pc_headers_get(&resp->headers, "Content-Encoding") ||
        list_has(&resp->headers, "cache-control", "no-transform"))
        return;
    if (resp->status == 304) {
        weaken_etag(req, resp);
        return;
    }
    if ((resp->framing.kind == PC_FRAME_LENGTH || resp->framing.has_length) &&
        resp->framing.length < c->min_bytes)
        return;
    const char *name = pc_enc_name(s->enc);
    const pc_body_codings *cod = resp->codings;
    size_t ready_len = 0;
    const char *ready = cod && cod->take
                            ? cod->take(req, cod->ctx, s->enc, &ready_len)
                            : NULL;
    if (ready) { /* encoded before: the producer sends these bytes */
        int head = (req->method_bit & PC_M_HEAD) != 0;
        memset(&resp->framing, 0, sizeof resp->framing);
        resp->framing.kind = head ? PC_FRAME_NONE : PC_FRAME_LENGTH;
        resp->framing.has_length = head;
        resp->framing.length = ready_len;
        pc_headers_add(&resp->headers, req->arena, "Content-Encoding", 16,
                       name, strlen(name));
        weaken_etag(req, resp);
        pc_headers_remove(&resp->headers, "Accept-Ranges");
        return;
    }
    uint64_t hint = resp->framing.kind == PC_FRAME_LENGTH ||
                            resp->framing.has_length
                        ? resp->framing.length
                        : 0;
    if (!(req->method_bit & PC_M_HEAD)) {
        s->e = pc_encoder_get(req->loop->stage_state[self], s->enc, hint);
        if (!s->e) { /* out of memory: send it as it is */
            pc_log(PC_LOG_WARN, "request %s: no memory for a %s encoder",
                   req->request_id, pc_enc_name(s->enc));
            return;
        }
        if (cod && cod->keep)
            s->keep = cod;
    }
    pc_headers_add(&resp->headers, req->arena, "Content-Encoding", 16, name,
                   strlen(name));
    weaken_etag(req, resp);
    pc_headers_remove(&resp->headers, "Accept-Ranges");
    pc_body_filter_add(req, self, &cz_body);
}

/* ---- per worker: the encoder pool -------------------------------------- */

static void *cz_worker_init(pc_loop *l)
{
    (void)l;
    pc_encoder_pool *p = pc_encoder_pool_new();
    if (!p) {
        fputs("portcullis: out of memory allocating an encoder pool\n", stderr);
        abort();
    }
    return p;
}

static void cz_worker_free(void *p)
{
    pc_encoder_pool_free(p);
}

const pc_stage_ops pc_stage_compress = {
    .name = "compress",
    .route_key = "compress",
    .configure_route = cz_configure_route,
    .free_route = cz_free,
    .route_json = cz_json,
    .worker_init = cz_worker_init,
    .worker_free = cz_worker_free,
    .on_request = cz_on_request,
    .on_response = cz_on_response,
};
