/* auth.c: JWT authentication (CONTRACT §2 jwt/auth, §3 step 4, §4 401/403).
 * The top-level `jwt.providers` block is this stage's global state (the
 * providers); a route's `auth` block names one and lists require_claims.
 * Tokens come from "Authorization: Bearer"; verified tokens are cached per
 * worker until exp (lib/jwt_cache.c) so a client reusing its token pays for
 * RSA/ECDSA once. forward_claims headers replace any client-sent copies.
 * Never does I/O after load (the JWKS file is read at load time). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portcullis/chain.h"
#include "portcullis/headers.h"
#include "portcullis/jwt.h"
#include "portcullis/errlog.h"
#include "portcullis/units.h"
#include "portcullis/util.h"
#include "portcullis/loop.h"

#define CACHE_ENTRIES 16384

typedef struct provider {
    char *name;
    char *jwks_path; /* NULL for a secret provider */
    pc_jwt_keys *keys;
    pc_jwt_policy pol;
    char *issuer;
    char **audiences;
    pc_kv *forward; /* claim -> header */
    size_t nforward;
} provider;

typedef struct providers {
    provider *v;
    size_t n;
} providers;

typedef struct auth_policy {
    const provider *p; /* borrowed from the generation's providers */
    pc_kv *require;    /* claim -> value */
    size_t nrequire;
} auth_policy;

typedef struct worker_state {
    pc_jwt_cache *cache;
    uint64_t generation;
} worker_state;

static const char *const CHALLENGE = "Bearer realm=\"portcullis\"";
static const char *const CHALLENGE_INVALID =
    "Bearer realm=\"portcullis\", error=\"invalid_token\"";

static void free_kvs(pc_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void providers_free(void *p)
{
    providers *ps = p;
    for (size_t i = 0; i < ps->n; i++) {
        provider *x = &ps->v[i];
        free(x->name);
        free(x->jwks_path);
        pc_jwt_keys_free(x->keys);
        free(x->issuer);
        for (size_t k = 0; k < x->pol.naudiences; k++)
            free(x->audiences[k]);
        free(x->audiences);
        free_kvs(x->forward, x->nforward);
    }
    free(ps->v);
    free(ps);
}

/* A map of string scalars into kv pairs. */
static pc_kv *read_map(const pc_node *n, const char *name, size_t *count,
                       pc_errors *err)
{
    *count = 0;
    if (pc_node_expect_map(n, name, err) < 0)
        return NULL;
    pc_kv *kv = pc_xcalloc(n->n ? n->n : 1, sizeof *kv);
    for (size_t i = 0; i < n->n; i++) {
        char *v = NULL;
        if (pc_node_str(n->vals[i], name, &v, err) < 0)
            continue;
        kv[*count].name = pc_xstrdup(n->keys[i]->value);
        kv[*count].value = v;
        (*count)++;
    }
    return kv;
}

/* forward_claims: claim -> header. The header must be a token and not one
 * the gateway owns: framing, Host, hop-by-hop, X-Forwarded-*, Forwarded,
 * X-Request-Id (a claim would replace the gateway's value, or frame the
 * request differently), nor Authorization (its client copy is removed
 * before the token is read). */
static pc_kv *read_forward(const pc_node *n, size_t *count, pc_errors *err)
{
    static const char *const owned[] = {
        "content-length", "transfer-encoding", "host", "expect",
        "authorization", "forwarded", "x-request-id", NULL};
    pc_kv *kv = read_map(n, "forward_claims", count, err);
    for (size_t i = 0; kv && i < *count; i++) {
        const char *h = kv[i].value;
        size_t hl = strlen(h);
        int bad = !pc_header_name_valid(h, hl) || pc_header_is_hop_by_hop(h, hl) ||
                  (hl >= 12 && pc_strieq(h, 12, "x-forwarded-", 12));
        for (int k = 0; !bad && owned[k]; k++)
            bad = pc_strieq(h, hl, owned[k], strlen(owned[k]));
        if (bad) {
            const pc_node *at = pc_node_get(n, kv[i].name);
            pc_errors_add(err, at ? at : n,
                          "forward_claims: header '%s' cannot carry a claim: "
                          "it is not a header name or the gateway manages it",
                          h);
        }
    }
    return kv;
}

static void read_keys(provider *x, pc_config *c, const pc_node *n,
                      pc_errors *err)
{
    const pc_node *jw = pc_node_get(n, "jwks_file"), *sec = pc_node_get(n, "secret");
    char why[256];
    if ((jw != NULL) == (sec != NULL)) {
        pc_errors_add(err, n, "provider '%s' needs exactly one of jwks_file and secret",
                      x->name ? x->name : "?");
        return;
    }
    char *s = NULL;
    if (jw) {
        if (pc_node_str(jw, "jwks_file", &s, err) < 0)
            return;
        char *path = pc_config_abspath(c, s);
        x->jwks_path = pc_xstrdup(path);
        size_t len = 0;
        /* Regular files only, opened without blocking (a FIFO would hang). */
        char *text = pc_read_regular(path, 16u << 20, &len, why, sizeof why);
        if (!text) {
            pc_errors_add(err, jw, "jwks_file '%s': %s", path, why);
        } else {
            x->keys = pc_jwt_keys_from_jwks(text, len, why, sizeof why);
            if (!x->keys)
                pc_errors_add(err, jw, "jwks_file '%s': %s", path, why);
            free(text);
        }
        free(path);
    } else {
        if (pc_node_str(sec, "secret", &s, err) < 0)
            return;
        x->keys = pc_jwt_keys_from_secret((const unsigned char *)s, strlen(s),
                                          why, sizeof why);
        if (!x->keys)
            pc_errors_add(err, sec, "secret: %s", why);
        memset(s, 0, strlen(s));
    }
    free(s);
}

static void read_provider(provider *x, pc_config *c, const pc_node *n,
                          pc_errors *err)
{
    static const char *const keys[] = {"name",      "issuer", "audiences",
                                       "algorithms", "jwks_file", "secret",
                                       "leeway",    "forward_claims", NULL};
    const pc_node *v;
    if (pc_node_expect_map(n, "provider", err) < 0)
        return;
    pc_node_check_keys(n, keys, "jwt provider", err);
    if ((v = pc_node_get(n, "name")))
        pc_node_str(v, "name", &x->name, err);
    else
        pc_errors_add(err, n, "a jwt provider needs 'name'");
    if ((v = pc_node_get(n, "issuer")) && pc_node_str(v, "issuer", &x->issuer, err) == 0)
        x->pol.issuer = x->issuer;
    if ((v = pc_node_get(n, "audiences")) && pc_node_expect_seq(v, "audiences", err) == 0) {
        x->audiences = pc_xcalloc(v->n ? v->n : 1, sizeof(char *));
        for (size_t i = 0; i < v->n; i++)
            if (pc_node_str(v->vals[i], "audiences", &x->audiences[x->pol.naudiences], err) == 0)
                x->pol.naudiences++;
        x->pol.audiences = (const char *const *)x->audiences;
    }
    const pc_node *algs = pc_node_get(n, "algorithms");
    if (!algs)
        pc_errors_add(err, n, "jwt provider '%s' needs 'algorithms'",
                      x->name ? x->name : "?");
    else if (pc_node_expect_seq(algs, "algorithms", err) == 0) {
        for (size_t i = 0; i < algs->n; i++) {
            const pc_node *a = algs->vals[i];
            uint32_t bit;
            if (a->kind != PC_NODE_SCALAR || pc_jwt_alg_parse(a->value, &bit) != 0)
                pc_errors_add(err, a, "unsupported algorithm '%s' (HS256 HS384 HS512 "
                              "RS256 RS384 RS512 PS256 ES256 ES384 EdDSA)",
                              a->kind == PC_NODE_SCALAR ? a->value : "?");
            else
                x->pol.algorithms |= bit;
        }
        if (algs->n == 0)
            pc_errors_add(err, algs, "'algorithms' must not be empty");
    }
    uint64_t leeway = 0;
    if ((v = pc_node_get(n, "leeway")) && pc_node_duration(v, "leeway", &leeway, err) == 0)
        x->pol.leeway = (int64_t)(leeway / 1000);
    if ((v = pc_node_get(n, "forward_claims")))
        x->forward = read_forward(v, &x->nforward, err);
    read_keys(x, c, n, err);
    char why[160];
    if (x->keys && x->pol.algorithms &&
        pc_jwt_keys_check(x->keys, x->pol.algorithms, why, sizeof why) != 0)
        pc_errors_add(err, algs ? algs : n, "%s", why);
}

static json_t *kv_json(const pc_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kv[i].name, json_string(kv[i].value));
    return o;
}

static json_t *providers_json(const void *p)
{
    const providers *ps = p;
    json_t *arr = json_array();
    char d[32];
    for (size_t i = 0; i < ps->n; i++) {
        const provider *x = &ps->v[i];
        json_t *auds = json_array(), *algs = json_array();
        for (size_t k = 0; k < x->pol.naudiences; k++)
            json_array_append_new(auds, json_string(x->audiences[k]));
        for (uint32_t bit = 1; bit <= PC_JWT_ALG_ALL && bit; bit <<= 1)
            if (x->pol.algorithms & bit)
                json_array_append_new(algs, json_string(pc_jwt_alg_name(bit)));
        json_array_append_new(
            arr, json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:o}", "name", x->name,
                           "issuer", x->issuer ? json_string(x->issuer) : json_null(),
                           "audiences", auds, "algorithms", algs, "jwks_file",
                           x->jwks_path ? json_string(x->jwks_path) : json_null(),
                           "secret", x->jwks_path ? json_null() : json_string("***"),
                           "leeway",
                           pc_format_duration((uint64_t)x->pol.leeway * 1000, d, sizeof d),
                           "forward_claims", kv_json(x->forward, x->nforward)));
    }
    return json_pack("{s:o}", "providers", arr);
}

static json_t *auth_json(const void *p)
{
    const auth_policy *a = p;
    return json_pack("{s:s,s:o}", "jwt", a->p->name, "require_claims",
                     kv_json(a->require, a->nrequire));
}

static void *jwt_configure(const pc_node *n, pc_config *c, pc_errors *err)
{
    static const char *const keys[] = {"providers", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "jwt", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "jwt", err);
    const pc_node *ps = pc_node_get(n, "providers");
    providers *all = pc_xcalloc(1, sizeof *all);
    if (ps && pc_node_expect_seq(ps, "providers", err) == 0) {
        all->v = pc_xcalloc(ps->n ? ps->n : 1, sizeof *all->v);
        for (size_t i = 0; i < ps->n; i++) {
            read_provider(&all->v[all->n], c, ps->vals[i], err);
            for (size_t k = 0; k < all->n; k++)
                if (all->v[all->n].name && all->v[k].name &&
                    !strcmp(all->v[k].name, all->v[all->n].name))
                    pc_errors_add(err, ps->vals[i], "duplicate jwt provider '%s'",
                                  all->v[k].name);
            all->n++;
        }
    }
    if (err->n != before) {
        providers_free(all);
        return NULL;
    }
    return all;
}

static void auth_free(void *p)
{
    auth_policy *a = p;
    free_kvs(a->require, a->nrequire);
    free(a);
}

static void *auth_configure(const pc_node *n, pc_config *c, pc_route *r,
                            pc_errors *err)
{
    static const char *const keys[] = {"jwt", "require_claims", NULL};
    (void)r;
    size_t before = err->n;
    if (pc_node_expect_map(n, "auth", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "auth", err);
    auth_policy *a = pc_xcalloc(1, sizeof *a);
    const pc_node *v = pc_node_get(n, "jwt");
    char *name = NULL;
    if (!v) {
        pc_errors_add(err, n, "auth needs 'jwt' (a provider name)");
    } else if (pc_node_str(v, "jwt", &name, err) == 0) {
        const providers *ps = c->stage_global[pc_chain_index(&pc_stage_auth)];
        for (size_t i = 0; ps && i < ps->n; i++)
            if (ps->v[i].name && !strcmp(ps->v[i].name, name))
                a->p = &ps->v[i];
        if (!a->p)
            pc_errors_add(err, v, "unknown jwt provider '%s'", name);
    }
    free(name);
    if ((v = pc_node_get(n, "require_claims")))
        a->require = read_map(v, "require_claims", &a->nrequire, err);
    if (err->n != before) {
        auth_free(a);
        return NULL;
    }
    return a;
}

static void *auth_worker_init(pc_loop *w)
{
    (void)w;
    worker_state *s = pc_xcalloc(1, sizeof *s);
    s->cache = pc_jwt_cache_new(CACHE_ENTRIES);
    return s;
}

static void auth_worker_free(void *p)
{
    worker_state *s = p;
    pc_jwt_cache_free(s->cache);
    free(s);
}

/* CONTRACT §2 require_claims: equal, or contained in a space-separated
 * string or an array. */
static int claim_matches(const json_t *c, const char *want)
{
    size_t wl = strlen(want);
    if (json_is_string(c)) {
        const char *s = json_string_value(c);
        if (!strcmp(s, want))
            return 1;
        for (const char *p = s; *p;) {
            while (*p == ' ')
                p++;
            const char *e = p;
            while (*e && *e != ' ')
                e++;
            if ((size_t)(e - p) == wl && !memcmp(p, want, wl))
                return 1;
            p = e;
        }
        return 0;
    }
    if (json_is_array(c)) {
        size_t i;
        json_t *x;
        json_array_foreach(c, i, x) if (claim_matches(x, want) && !json_is_array(x)) return 1;
        return 0;
    }
    if (json_is_integer(c) || json_is_real(c) || json_is_boolean(c)) {
        char *t = json_dumps(c, JSON_ENCODE_ANY | JSON_COMPACT);
        int ok = t && !strcmp(t, want);
        free(t);
        return ok;
    }
    return 0;
}

/* Header value of a claim: strings as they are, other values as compact
 * JSON. A value that cannot be a field value (CR, LF, NUL or any other
 * control character, RFC 9110 §5.5) gives NULL: the header is not sent
 * (docs/jwt.md), never a cleaned-up guess of what the issuer meant. */
static const char *claim_text(pc_req *req, const json_t *c)
{
    const char *t;
    size_t n;
    if (json_is_string(c)) {
        t = pc_arena_strndup(req->arena, json_string_value(c), json_string_length(c));
        n = json_string_length(c);
    } else {
        char *d = json_dumps(c, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!d)
            return NULL;
        n = strlen(d);
        t = pc_arena_strndup(req->arena, d, n);
        free(d);
    }
    if (strlen(t) != n || !pc_header_value_valid(t, n))
        return NULL;
    return t;
}

static pc_verdict deny(pc_req *req, pc_errcode e, const char *challenge,
                       const char *msg)
{
    if (challenge)
        pc_req_add_resp_header(req, "WWW-Authenticate", challenge);
    req->sink->error(req, e, msg);
    return PC_DONE;
}

static pc_verdict authorize(pc_req *req, const auth_policy *a, const json_t *claims)
{
    const provider *p = a->p;
    for (size_t i = 0; i < a->nrequire; i++) {
        const json_t *c = json_object_get(claims, a->require[i].name);
        if (!c || !claim_matches(c, a->require[i].value)) {
            char msg[200];
            snprintf(msg, sizeof msg, "claim '%.64s' does not allow this request",
                     a->require[i].name);
            return deny(req, PC_ERR_FORBIDDEN, NULL, msg);
        }
    }
    for (size_t i = 0; i < p->nforward; i++) {
        const json_t *c = json_object_get(claims, p->forward[i].name);
        const char *v = c ? claim_text(req, c) : NULL;
        if (v)
            pc_headers_add(&req->gw_headers, req->arena, p->forward[i].value,
                           strlen(p->forward[i].value), v, strlen(v));
        else if (c)
            pc_log(PC_LOG_DEBUG, "claim '%s' not forwarded: its value has "
                   "control characters", p->forward[i].name);
    }
    /* claim:NAME rate limits read the verified claim from this stage's
     * slot (chain.h, pc_ratelimit_claim); absent: the client address. */
    const char *rl_claim = pc_ratelimit_claim(req);
    if (rl_claim) {
        const json_t *c = json_object_get(claims, rl_claim);
        const char *v = c ? claim_text(req, c) : NULL;
        if (v)
            pc_req_set_slot(req, req->stage, (void *)v);
    }
    const json_t *sub = json_object_get(claims, "sub");
    if (json_is_string(sub))
        req->user = pc_arena_strndup(req->arena, json_string_value(sub),
                                     json_string_length(sub));
    return PC_NEXT;
}

static pc_verdict auth_on_request(pc_req *req)
{
    const auth_policy *a = pc_chain_route_policy(req, req->stage);
    const providers *ps = req->cfg->stage_global[req->stage];
    /* Claim headers are the gateway's to set: a client's copies go first,
     * on every route, protected or not. */
    for (size_t i = 0; ps && i < ps->n; i++)
        for (size_t k = 0; k < ps->v[i].nforward; k++)
            pc_headers_remove(&req->headers, ps->v[i].forward[k].value);
    if (!a)
        return PC_NEXT;
    const char *h = pc_req_header(req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return deny(req, PC_ERR_UNAUTHORIZED, CHALLENGE, "bearer token required");
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    if (len == 0)
        return deny(req, PC_ERR_UNAUTHORIZED, CHALLENGE, "bearer token required");
    worker_state *ws = req->loop->stage_state[req->stage];
    if (ws->generation != req->cfg->generation) {
        /* Providers are addressed by pointer: a new generation starts a
         * new cache. */
        pc_jwt_cache_free(ws->cache);
        ws->cache = pc_jwt_cache_new(CACHE_ENTRIES);
        ws->generation = req->cfg->generation;
    }
    int64_t now = pc_unix_now();
    json_t *claims = pc_jwt_cache_get(ws->cache, (uint64_t)(uintptr_t)a->p, tok, len, now);
    if (claims)
        return authorize(req, a, claims);
    int64_t exp = 0;
    pc_jwt_status st = pc_jwt_verify(tok, len, a->p->keys, &a->p->pol, now,
                                     &claims, &exp);
    if (st != PC_JWT_OK)
        return deny(req, PC_ERR_UNAUTHORIZED, CHALLENGE_INVALID,
                    pc_jwt_status_message(st));
    pc_jwt_cache_put(ws->cache, (uint64_t)(uintptr_t)a->p, tok, len, claims, exp);
    pc_verdict v = authorize(req, a, claims);
    json_decref(claims);
    return v;
}

const pc_stage_ops pc_stage_auth = {
    .name = "auth",
    .global_key = "jwt",
    .route_key = "auth",
    .configure_global = jwt_configure,
    .configure_route = auth_configure,
    .free_global = providers_free,
    .free_route = auth_free,
    .global_json = providers_json,
    .route_json = auth_json,
    .worker_init = auth_worker_init,
    .worker_free = auth_worker_free,
    .on_request = auth_on_request,
};
