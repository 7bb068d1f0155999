/* ratelimit.c: the local rate-limit stage (CONTRACT §2 rate_limit, §3 step
 * 5, §4 429): one token bucket per (route, key) in the process-wide table
 * (lib/bucket_table.c, req->loop->buckets), shared by every worker and
 * kept across reloads. The route's `rate_limit` block replaces the global
 * one. A refused request gets 429 `rate_limited` with Retry-After and
 * takes no token; every response of a limited request, proxied or made
 * by the gateway, gets RateLimit-Limit / -Remaining / -Reset from the
 * on_response hook. Never does I/O itself (the cluster scope hands its
 * command to the worker's Redis client, net/redis.c); the local scope
 * never allocates on the path of a key already in the table (the
 * decision lives in the request arena).
 *
 * Bucket identity: family = hash(route name, rate, per, burst, key spec),
 * so a reload that keeps a route's name and limit keeps its buckets, and a
 * changed limit starts fresh (full) buckets; the global block gets one
 * family per route it applies to (buckets are per route and key). The key
 * bytes are a tag and the client address, or the header / claim value
 * (values longer than 30 bytes: their SHA-256, cut to 30 bytes).
 *
 * `scope: cluster`: the same bucket, kept in Redis (net/redis.c, the
 * worker's client) under `{pc:rl:<route>:<key>}` and decided by ONE Lua
 * script per request (SCRIPT below: the integer arithmetic of
 * lib/bucket.c on Redis's own clock, TIME). The stage suspends the request
 * with a wait token and resumes it from the reply; the script returns the
 * deficit it left, and pc_bucket_decide turns that into the same headers
 * as the local scope. No answer within redis.timeout (down, stuck, no
 * master): redis.on_error: allow lets the request through without
 * RateLimit-* headers, deny answers 503 upstream_unavailable with
 * Retry-After: 1. */
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/bucket_table.h"
#include "portcullis/chain.h"
#include "portcullis/errlog.h"
#include "portcullis/headers.h"
#include "portcullis/loop.h"
#include "portcullis/metrics.h"
#include "portcullis/redis.h"
#include "portcullis/units.h"
#include "portcullis/util.h"

typedef enum { KEY_IP, KEY_ROUTE, KEY_HEADER, KEY_CLAIM } key_kind;

typedef struct rl_policy {
    pc_bucket_rate rate;
    uint64_t per_ms;
    key_kind kind;
    char *name;      /* header or claim name (KEY_HEADER / KEY_CLAIM) */
    char *key_text;  /* the key as written */
    uint64_t family; /* route policies: final; global: mixed per route */
    int global;
    int cluster; /* scope: cluster (Redis) */
    int deny;    /* cluster: redis.on_error is deny */
} rl_policy;

/* The decision, in the request's slot, for the on_response hook. */
typedef struct rl_slot {
    pc_bucket_decision d;
} rl_slot;

/* scope: cluster: the decisions of one key gathered in one event-loop
 * turn, sent as one script call (see "scope: cluster" below). */
#define RL_BATCH_MAX 64
#define RL_BATCH_SLOTS 64
#define RL_KEY_MAX 256

typedef struct rl_batch rl_batch;
struct rl_batch {
    rl_batch *next;     /* hash chain of the turn */
    rl_batch *all;      /* every batch of the turn */
    uint64_t hash;
    pc_bucket_rate rate; /* the policy's, compared too */
    uint32_t n;
    size_t klen;
    char key[RL_KEY_MAX];
    pc_wait w[RL_BATCH_MAX];
};

typedef struct worker_state {
    EVP_MD_CTX *md; /* long key values: SHA-256, context reused */
    EVP_MD *sha256;
    pc_loop *loop;
    struct event *flush;            /* sends the turn's batches */
    rl_batch *slot[RL_BATCH_SLOTS]; /* this turn's batches by key hash */
    rl_batch *all, **tail;          /* in order; NULL: none pending */
} worker_state;

#define INLINE_MAX (PC_BUCKET_KEY_MAX - 1)

/* ---- configuration ---------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

#define FNV0 14695981039346656037ull

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void rl_free(void *p)
{
    rl_policy *r = p;
    free(r->name);
    free(r->key_text);
    free(r);
}

static json_t *rl_json(const void *p)
{
    const rl_policy *r = p;
    char d[32];
    return json_pack("{s:I,s:s,s:I,s:s,s:s}", "rate", (json_int_t)r->rate.rate,
                     "per", pc_format_duration(r->per_ms, d, sizeof d), "burst",
                     (json_int_t)r->rate.burst, "key", r->key_text, "scope",
                     r->cluster ? "cluster" : "local");
}

/* key: ip | route | header:NAME | claim:NAME */
static void read_key(rl_policy *r, const pc_node *v, pc_errors *err)
{
    char *s = NULL;
    if (pc_node_str(v, "key", &s, err) < 0)
        return;
    r->key_text = s;
    if (!strcmp(s, "ip")) {
        r->kind = KEY_IP;
    } else if (!strcmp(s, "route")) {
        r->kind = KEY_ROUTE;
    } else if (!strncmp(s, "header:", 7)) {
        r->kind = KEY_HEADER;
        r->name = pc_xstrdup(s + 7);
        if (!pc_header_name_valid(r->name, strlen(r->name)))
            pc_errors_add(err, v, "invalid header name in key '%s'", s);
    } else if (!strncmp(s, "claim:", 6)) {
        r->kind = KEY_CLAIM;
        r->name = pc_xstrdup(s + 6);
        int bad = !r->name[0];
        for (const char *c = r->name; *c; c++)
            bad |= (unsigned char)*c < 0x20 || *c == 0x7f;
        if (bad)
            pc_errors_add(err, v, "invalid claim name in key '%s'", s);
    } else {
        pc_errors_add(
            err, v, "invalid key '%s' (ip | route | header:NAME | claim:NAME)",
            s);
    }
}

/* The Lua script keeps exact integers only below 2^53 (doubles). */
#define CLUSTER_MAX_CAP (1ull << 53)

static void read_scope(rl_policy *r, const pc_node *v, const pc_config *c,
                       pc_errors *err)
{
    char *s = NULL;
    if (pc_node_str(v, "scope", &s, err) < 0)
        return;
    if (!strcmp(s, "cluster")) {
        r->cluster = 1;
        if (!c->redis)
            pc_errors_add(err, v,
                          "'scope: cluster' needs the top-level 'redis' "
                          "block (address of the shared Redis)");
        else
            r->deny = c->redis->deny;
    } else if (strcmp(s, "local")) {
        pc_errors_add(err, v, "invalid scope '%s' (local | cluster)", s);
    }
    free(s);
}

static rl_policy *rl_configure(const pc_node *n, const pc_config *c,
                               const char *route, pc_errors *err)
{
    static const char *const keys[] = {"rate", "per",   "burst",
                                       "key",  "scope", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "rate_limit", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "rate_limit", err);
    rl_policy *r = pc_xcalloc(1, sizeof *r);
    uint64_t rate = 0, burst = 0, per_ms = 1000;
    const pc_node *v, *vrate = pc_node_get(n, "rate"),
                      *vburst = pc_node_get(n, "burst"),
                      *vper = pc_node_get(n, "per");
    if (!vrate)
        pc_errors_add(err, n, "rate_limit needs 'rate' (tokens per 'per')");
    else
        pc_node_uint(vrate, "rate", 1, PC_BUCKET_MAX_RATE, &rate, err);
    if (vper && pc_node_duration(vper, "per", &per_ms, err) == 0 &&
        (per_ms < 1 || per_ms > PC_BUCKET_MAX_PER_US / 1000)) {
        pc_errors_add(err, vper, "value %s for 'per' out of range 1ms..24h",
                      vper->value);
    }
    if (vburst)
        pc_node_uint(vburst, "burst", 1, PC_BUCKET_MAX_BURST, &burst, err);
    if ((v = pc_node_get(n, "key")))
        read_key(r, v, err);
    else
        r->key_text = pc_xstrdup("ip");
    if ((v = pc_node_get(n, "scope")))
        read_scope(r, v, c, err);
    const char *why = NULL;
    if (err->n == before &&
        pc_bucket_rate_init(&r->rate, rate, per_ms * 1000, burst, &why) != 0)
        pc_errors_add(err,
                      vburst ? vburst
                      : vper ? vper
                             : vrate,
                      "rate_limit: %s", why);
    else if (err->n == before && r->cluster && r->rate.cap > CLUSTER_MAX_CAP)
        pc_errors_add(err,
                      vburst ? vburst
                      : vper ? vper
                             : vrate,
                      "rate_limit: burst x per too large for scope: cluster "
                      "(burst x per in microseconds must stay below 2^53)");
    if (err->n != before) {
        rl_free(r);
        return NULL;
    }
    r->per_ms = per_ms;
    uint64_t h = FNV0;
    uint64_t vals[4] = {r->rate.rate, r->rate.per_us, r->rate.burst, r->kind};
    h = fnv(h, vals, sizeof vals);
    h = fnv(h, r->name ? r->name : "", r->name ? strlen(r->name) + 1 : 1);
    if (route) {
        h = fnv(h, "route:", 6);
        h = fnv(h, route, strlen(route) + 1);
    } else {
        r->global = 1;
    }
    r->family = mix(h);
    return r;
}

static void *rl_configure_global(const pc_node *n, pc_config *c, pc_errors *err)
{
    return rl_configure(n, c, NULL, err);
}

static void *rl_configure_route(const pc_node *n, pc_config *c, pc_route *r,
                                pc_errors *err)
{
    return rl_configure(n, c, r->name, err);
}

/* ---- per worker ------------------------------------------------------- */

static void *rl_worker_init(pc_loop *l)
{
    worker_state *s = pc_xcalloc(1, sizeof *s);
    s->loop = l;
    s->md = EVP_MD_CTX_new();
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!s->md || !s->sha256) {
        fputs("portcullis: out of memory allocating a digest context\n",
              stderr);
        abort();
    }
    return s;
}

static void rl_worker_free(void *p)
{
    worker_state *s = p;
    while (s->all) { /* never sent: their requests are being torn down */
        rl_batch *b = s->all;
        s->all = b->all;
        free(b);
    }
    if (s->flush)
        event_free(s->flush);
    EVP_MD_CTX_free(s->md);
    EVP_MD_free(s->sha256);
    free(s);
}

/* ---- the decision ----------------------------------------------------- */

const char *pc_ratelimit_claim(const pc_req *req)
{
    const rl_policy *r =
        pc_chain_policy(req, pc_chain_index(&pc_stage_ratelimit));
    return r && r->kind == KEY_CLAIM ? r->name : NULL;
}

/* The value the key is made of, or NULL (then the client address). */
static const char *key_value(const pc_req *req, const rl_policy *r, size_t *len)
{
    const char *v = NULL;
    if (r->kind == KEY_HEADER)
        v = pc_req_header(req, r->name);
    else if (r->kind == KEY_CLAIM)
        v = pc_req_slot(req, pc_chain_index(&pc_stage_auth));
    if (!v || !*v)
        return NULL;
    *len = strlen(v);
    return v;
}

/* Key bytes into out (PC_BUCKET_KEY_MAX); returns their length. */
static size_t make_key(pc_req *req, const rl_policy *r, uint8_t *out)
{
    size_t len = 0;
    const char *v = r->kind == KEY_HEADER || r->kind == KEY_CLAIM
                        ? key_value(req, r, &len)
                        : NULL;
    if (r->kind == KEY_ROUTE) {
        out[0] = 'R';
        return 1;
    }
    if (!v) { /* ip, or the contract's fallback for a missing value */
        out[0] = 'I';
        if (req->client.family == 4) {
            out[1] = '4';
            memcpy(out + 2, req->client.b, 4);
            return 6;
        }
        out[1] = '6';
        memcpy(out + 2, req->client.b, 16);
        return 18;
    }
    if (len <= INLINE_MAX) {
        out[0] = 'V';
        memcpy(out + 1, v, len);
        return len + 1;
    }
    unsigned char md[32];
    unsigned int n = 0;
    worker_state *ws = req->loop->stage_state[req->stage];
    out[0] = 'D';
    if (ws && EVP_DigestInit_ex(ws->md, ws->sha256, NULL) == 1 &&
        EVP_DigestUpdate(ws->md, v, len) == 1 &&
        EVP_DigestFinal_ex(ws->md, md, &n) == 1 && n == 32) {
        memcpy(out + 1, md, INLINE_MAX);
        return PC_BUCKET_KEY_MAX;
    }
    /* a digest failure (allocation only): the value's head, still a key */
    memcpy(out + 1, v, INLINE_MAX);
    return PC_BUCKET_KEY_MAX;
}

static uint64_t family_of(const pc_req *req, const rl_policy *r)
{
    if (!r->global)
        return r->family;
    const char *name = req->route ? req->route->name : "";
    return mix(fnv(r->family, name, strlen(name) + 1));
}

static void describe_key(const pc_req *req, const rl_policy *r, char *out,
                         size_t cap)
{
    size_t len;
    if (r->kind == KEY_ROUTE)
        snprintf(out, cap, "route %s",
                 req->route ? req->route->name : "(none)");
    else if (r->kind != KEY_IP && key_value(req, r, &len))
        snprintf(out, cap, "%s", r->key_text); /* never echo the value */
    else
        snprintf(out, cap, "%s", req->client_text);
}

/* 429 with Retry-After for a refused decision; counted. */
static void refuse(pc_req *req, const rl_policy *r, const rl_slot *slot)
{
    char v[24], msg[160], what[128];
    snprintf(v, sizeof v, "%llu", (unsigned long long)slot->d.retry_s);
    pc_req_add_resp_header(req, "Retry-After", v);
    if (req->loop->metrics)
        pc_metrics_count(
            req->loop->metrics, PC_MC_RATE_LIMITED,
            req->route ? req->route->metrics_id : PC_METRICS_ID_NONE, 0, 0);
    describe_key(req, r, what, sizeof what);
    snprintf(msg, sizeof msg, "rate limit exceeded for key %s", what);
    req->sink->error(req, PC_ERR_RATE_LIMITED, msg);
}

/* ---- scope: cluster ---------------------------------------------------- */

/* The decisions of N requests for one key, in order, atomically, on
 * Redis's clock (TIME, microseconds): the deficit arithmetic of
 * lib/bucket.c in doubles, exact because cap <= 2^53 (checked at load).
 * State: the string "DEFICIT LAST" (units missing to a full bucket, and
 * when, in microseconds), written with %.0f so that no digit is lost; a
 * missing key is a full bucket, so the key expires (PX) once the bucket
 * would be full again. The N requests see the same instant: the first K
 * that fit take a token each, one after the other, and the rest are
 * refused (a refusal takes nothing, so once one is refused every later
 * one is too) — the very decisions N separate calls would have made at
 * that instant. Nothing is written when K is 0. Three calls (TIME, GET,
 * SET): a hash with HSET + PEXPIRE cost Redis about a third more CPU per
 * call. Returns {K, D0}: D0 the deficit before the first admission, so
 * request i (from 0) was admitted when i < K, and left the deficit
 * D0 + min(i + 1, K) * per. */
static const char SCRIPT[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local rate = tonumber(ARGV[1])\n"
    "local per = tonumber(ARGV[2])\n"
    "local cap = tonumber(ARGV[3])\n"
    "local n = tonumber(ARGV[4]) or 1\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local d, last = 0, now\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then\n"
    "  local a, b = string.match(v, '^(%d+) (%d+)$')\n"
    "  if a then d = tonumber(a); last = tonumber(b) end\n"
    "end\n"
    "if now > last and d > 0 then\n"
    "  local refill = (now - last) * rate\n"
    "  if refill >= d then d = 0 else d = d - refill end\n"
    "end\n"
    "if d > cap then d = cap end\n"
    "if now > last then last = now end\n"
    "local d0, k = d, 0\n"
    "while k < n and cap - d >= per do d = d + per; k = k + 1 end\n"
    "if k == 0 then return {0, d0} end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f %.0f', d, last), 'PX',\n"
    "           math.floor(d / rate / 1000) + 1)\n"
    "return {k, d0}\n";

static pc_redis_script script;
static pthread_once_t script_once = PTHREAD_ONCE_INIT;

static void script_init(void)
{
    pc_redis_script_init(&script, SCRIPT);
}

const char *pc_ratelimit_script(void)
{
    return SCRIPT;
}

/* `{pc:rl:<route>:<key>}`: the braces make the whole name the hash tag
 * (one slot). The key: "ip:<address>", "route", or the tag letter of the
 * local key and its bytes in hex (header / claim values, or their digest). */
static size_t cluster_key(pc_req *req, const rl_policy *r, char *out,
                          size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t k[PC_BUCKET_KEY_MAX];
    size_t klen = make_key(req, r, k);
    const char *route = req->route ? req->route->name : "";
    int n = snprintf(out, cap, "{pc:rl:%s:", route);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t o = (size_t)n;
    if (k[0] == 'I') {
        n = snprintf(out + o, cap - o, "ip:%s}", req->client_text);
        return n < 0 || (size_t)n >= cap - o ? 0 : o + (size_t)n;
    }
    if (k[0] == 'R') {
        n = snprintf(out + o, cap - o, "route}");
        return n < 0 || (size_t)n >= cap - o ? 0 : o + (size_t)n;
    }
    if (o + 3 + 2 * (klen - 1) + 1 >= cap)
        return 0;
    out[o++] = (char)k[0];
    out[o++] = ':';
    for (size_t i = 1; i < klen; i++) {
        out[o++] = hex[k[i] >> 4];
        out[o++] = hex[k[i] & 15];
    }
    out[o++] = '}';
    out[o] = '\0';
    return o;
}

/* Redis did not decide: on_error. allow: on, without RateLimit-* (there
 * is no bucket state to report); deny: 503 with Retry-After: 1 (the
 * client's reconnect backoff is at most 1 s). */
static pc_verdict unavailable(pc_req *req, const rl_policy *r, unsigned why)
{
    if (req->loop->metrics)
        pc_metrics_count(
            req->loop->metrics, PC_MC_REDIS_ERRORS,
            req->route ? req->route->metrics_id : PC_METRICS_ID_NONE, why, 0);
    if (!r->deny)
        return PC_NEXT;
    pc_req_add_resp_header(req, "Retry-After", "1");
    req->sink->error(req, PC_ERR_UPSTREAM_UNAVAILABLE,
                     "rate limit store (redis) unavailable");
    return PC_DONE;
}

/* The reply for batch b (its requests in order): each request still
 * waiting gets its own decision, or on_error. */
static void batch_done(void *ctx, pc_redis_status st,
                       const struct redisReply *rep)
{
    rl_batch *b;
    memcpy(&b, ctx, sizeof b);
    long long k = -1, d0 = -1;
    const pc_bucket_rate *rt = &b->rate;
    /* range-checked before any cast: a reply is not trusted */
    int ok = st == PC_REDIS_OK && pc_redis_reply_pair(rep, &k, &d0) == 0 &&
             k >= 0 && (uint64_t)k <= b->n && d0 >= 0 &&
             (uint64_t)d0 <= rt->cap &&
             (uint64_t)k <= (rt->cap - (uint64_t)d0) / rt->per_us;
    if (st == PC_REDIS_OK && !ok)
        pc_log(PC_LOG_WARN, "rate_limit: unexpected reply from the redis "
                            "script (on_error applies)");
    unsigned why = st == PC_REDIS_TIMEOUT ? PC_METRICS_REDIS_TIMEOUT
                   : st == PC_REDIS_DOWN  ? PC_METRICS_REDIS_DOWN
                                          : PC_METRICS_REDIS_ERROR;
    for (uint32_t i = 0; i < b->n; i++) {
        pc_req *req = pc_wait_take(b->w[i]);
        if (!req)
            continue; /* the client left: nothing of it is touched */
        const rl_policy *r = pc_chain_policy(req, req->stage);
        rl_slot *slot = pc_arena_alloc(req->arena, sizeof *slot);
        int allowed = ok && i < (uint64_t)k;
        uint64_t taken = allowed ? i + 1 : (uint64_t)(ok ? k : 0);
        if (!ok || !r ||
            pc_bucket_decide(&r->rate,
                             (uint64_t)d0 + taken * rt->per_us, allowed,
                             &slot->d) != 0) {
            if (!r || unavailable(req, r, why) == PC_NEXT)
                pc_chain_resume(req, PC_NEXT);
            continue;
        }
        pc_req_set_slot(req, req->stage, slot);
        if (slot->d.allowed)
            pc_chain_resume(req, PC_NEXT);
        else
            refuse(req, r, slot);
    }
    free(b);
}

/* Sends the turn's batches: one script call each. A batch that cannot
 * be sent gets on_error at once. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_state *ws = arg;
    rl_batch *list = ws->all;
    ws->all = NULL;
    ws->tail = &ws->all;
    memset(ws->slot, 0, sizeof ws->slot);
    pthread_once(&script_once, script_init);
    while (list) {
        rl_batch *b = list;
        list = b->all;
        char a[4][24];
        const char *args[4] = {a[0], a[1], a[2], a[3]};
        size_t lens[4];
        uint64_t v[4] = {b->rate.rate, b->rate.per_us, b->rate.cap, b->n};
        for (int i = 0; i < 4; i++)
            lens[i] = (size_t)snprintf(a[i], sizeof a[i], "%llu",
                                       (unsigned long long)v[i]);
        pc_redis *rc = ws->loop->redis;
        if (rc && pc_redis_eval(rc, &script, b->key, b->klen, 4, args, lens,
                                batch_done, &b, sizeof b) == 0)
            continue;
        batch_done(&b, PC_REDIS_DOWN, NULL);
    }
}

/* scope: cluster. The request waits for its decision; decisions of one
 * key (and limit) made in the same event-loop turn — requests read from
 * many connections in one pass — go to Redis as one script call at the
 * end of the turn (flush_cb, an event activated by the turn's first
 * decision, runs after the turn's other ready events), up to
 * RL_BATCH_MAX per call. Each request still gets the decision a call of
 * its own would have given at that instant (the script applies them in
 * order), so limits stay exact across instances; what is saved is
 * Redis's per-call cost for hot keys. */
static pc_verdict cluster_take(pc_req *req, const rl_policy *r)
{
    worker_state *ws = req->loop->stage_state[req->stage];
    char key[RL_KEY_MAX];
    size_t klen = cluster_key(req, r, key, sizeof key);
    if (!klen || !req->loop->redis || !ws || !req->loop->base)
        return unavailable(req, r, PC_METRICS_REDIS_ERROR);
    if (!ws->flush &&
        !(ws->flush = event_new(req->loop->base, -1, 0, flush_cb, ws)))
        return unavailable(req, r, PC_METRICS_REDIS_ERROR);
    uint64_t h = fnv(FNV0, key, klen);
    rl_batch **pp = &ws->slot[h % RL_BATCH_SLOTS], *b;
    while ((b = *pp) && !(b->hash == h && b->klen == klen &&
                          !memcmp(b->key, key, klen) &&
                          !memcmp(&b->rate, &r->rate, sizeof b->rate)))
        pp = &b->next;
    if (!b || b->n == RL_BATCH_MAX) {
        if (b) /* full: a new one takes its place in the chain */
            *pp = b->next;
        pp = &ws->slot[h % RL_BATCH_SLOTS];
        b = malloc(sizeof *b);
        if (!b)
            return unavailable(req, r, PC_METRICS_REDIS_ERROR);
        b->hash = h;
        b->rate = r->rate;
        b->n = 0;
        b->klen = klen;
        memcpy(b->key, key, klen);
        b->next = *pp;
        *pp = b;
        if (!ws->all) {
            event_active(ws->flush, 0, 0);
            ws->tail = &ws->all;
        }
        b->all = NULL;
        *ws->tail = b;
        ws->tail = &b->all;
    }
    b->w[b->n++] = pc_wait_begin(req, NULL);
    return PC_WAIT;
}

static pc_verdict rl_on_request(pc_req *req)
{
    const rl_policy *r = pc_chain_policy(req, req->stage);
    if (r && r->cluster)
        return cluster_take(req, r);
    pc_bucket_table *t = req->loop->buckets;
    if (!r || !t)
        return PC_NEXT;
    uint8_t key[PC_BUCKET_KEY_MAX];
    size_t klen = make_key(req, r, key);
    uint64_t now = req->stage_ns ? req->stage_ns : pc_now_ns();
    rl_slot *slot = pc_arena_alloc(req->arena, sizeof *slot);
    pc_bucket_table_take(t, family_of(req, r), key, klen, &r->rate, now / 1000,
                         &slot->d);
    pc_req_set_slot(req, req->stage, slot);
    if (slot->d.allowed)
        return PC_NEXT;
    refuse(req, r, slot);
    return PC_DONE;
}

static void add_number(pc_req *req, pc_resp *resp, const char *name,
                       size_t nlen, uint64_t value)
{
    char v[24], *p = v + sizeof v;
    do /* no printf on the per-request path */
        *--p = (char)('0' + value % 10);
    while (value /= 10);
    pc_headers_add(&resp->headers, req->arena, name, nlen, p,
                   (size_t)(v + sizeof v - p));
}

/* 1 when the response already has one of our RateLimit-* fields (the
 * upstream's): one pass, comparing names only when the length fits. */
static int has_ours(const pc_resp *resp)
{
    for (uint32_t i = 0; i < resp->headers.n; i++) {
        const pc_header *h = &resp->headers.v[i];
        if ((h->nlen == 15 || h->nlen == 19) &&
            pc_strieq(h->name, 10, "ratelimit-", 10))
            return 1;
    }
    return 0;
}

/* RateLimit-* on every response of a limited request (the gateway's values
 * replace any the upstream sent). */
static void rl_on_response(pc_req *req, unsigned self, pc_resp *resp)
{
    const rl_slot *s = pc_req_slot(req, self);
    if (!s)
        return;
    if (has_ours(resp)) {
        pc_headers_remove(&resp->headers, "RateLimit-Limit");
        pc_headers_remove(&resp->headers, "RateLimit-Remaining");
        pc_headers_remove(&resp->headers, "RateLimit-Reset");
    }
    add_number(req, resp, "RateLimit-Limit", 15, s->d.limit);
    add_number(req, resp, "RateLimit-Remaining", 19, s->d.remaining);
    add_number(req, resp, "RateLimit-Reset", 15, s->d.reset_s);
}

const pc_stage_ops pc_stage_ratelimit = {
    .name = "rate_limit",
    .global_key = "rate_limit",
    .route_key = "rate_limit",
    .configure_global = rl_configure_global,
    .configure_route = rl_configure_route,
    .free_global = rl_free,
    .free_route = rl_free,
    .global_json = rl_json,
    .route_json = rl_json,
    .worker_init = rl_worker_init,
    .worker_free = rl_worker_free,
    .on_request = rl_on_request,
    .on_response = rl_on_response,
};
