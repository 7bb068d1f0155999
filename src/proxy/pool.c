/* pool.c: per-worker keep-alive pools of upstream connections and target
 * selection (smooth weighted round robin, least_conn, ip_hash). Owns every
 * upstream socket of its worker; never parses HTTP (forward.c does). Only
 * the worker thread touches its pools: no locks. */
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"
#include "portcullis/errlog.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"

#define NBUCKETS 256

typedef struct bal_state {
    char *name;
    uint64_t generation;
    int64_t *cw; /* smooth weighted round robin current weights */
    size_t n;
    struct bal_state *next;
} bal_state;

struct pc_pools {
    pc_sock_loop *loop;
    pc_pool *buckets[NBUCKETS];
    bal_state *bal;
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* The process-wide counts (pc_target.pool_stat) mirror nactive / nidle,
 * for /admin/upstreams; pools of unbound targets (tests) have none. */
static void stat_add(pc_pool *p, long active, long idle)
{
    if (!p->stat)
        return;
    if (active)
        atomic_fetch_add_explicit(&p->stat->active, active, memory_order_relaxed);
    if (idle)
        atomic_fetch_add_explicit(&p->stat->idle, idle, memory_order_relaxed);
}

pc_pools *pc_pools_new(pc_sock_loop *loop)
{
    pc_pools *ps = pc_xcalloc(1, sizeof *ps);
    ps->loop = loop;
    return ps;
}

static void upconn_free(pc_upconn *uc)
{
    pc_sock_free(uc->sock);
    free(uc);
}

void pc_pools_free(pc_pools *ps)
{
    if (!ps)
        return;
    for (int i = 0; i < NBUCKETS; i++) {
        pc_pool *p = ps->buckets[i];
        while (p) {
            pc_pool *n = p->hnext;
            while (p->idle) {
                pc_upconn *uc = p->idle;
                p->idle = uc->next;
                upconn_free(uc);
            }
            stat_add(p, -(long)p->nactive, -(long)p->nidle);
            pc_tstate_unref(p->stat);
            free(p->key);
            free(p);
            p = n;
        }
    }
    while (ps->bal) {
        bal_state *b = ps->bal;
        ps->bal = b->next;
        free(b->name);
        free(b->cw);
        free(b);
    }
    free(ps);
}

pc_pool *pc_pool_get(pc_pools *ps, const pc_target *t)
{
    const char *key = t->pool_key;
    unsigned h = hash(key) % NBUCKETS;
    for (pc_pool *p = ps->buckets[h]; p; p = p->hnext)
        if (strcmp(p->key, key) == 0)
            return p;
    pc_pool *p = pc_xcalloc(1, sizeof *p);
    p->key = pc_xstrdup(key);
    p->stat = t->pool_stat ? pc_tstate_ref(t->pool_stat) : NULL;
    p->set = ps;
    p->hnext = ps->buckets[h];
    ps->buckets[h] = p;
    return p;
}

/* key: the target's pool_key (pc_target), not its URL. */
void pc_pools_counts(pc_pools *ps, const char *key, unsigned *active,
                     unsigned *idle)
{
    unsigned h = hash(key) % NBUCKETS;
    *active = *idle = 0;
    for (pc_pool *p = ps->buckets[h]; p; p = p->hnext)
        if (strcmp(p->key, key) == 0) {
            *active = p->nactive;
            *idle = p->nidle;
        }
}

static void idle_unlink(pc_upconn *uc)
{
    pc_pool *p = uc->pool;
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        p->idle = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    uc->prev = uc->next = NULL;
    p->nidle--;
    stat_add(p, 0, -1);
}

pc_upconn *pc_pool_take(pc_pool *p)
{
    pc_upconn *uc = p->idle;
    if (!uc)
        return NULL;
    idle_unlink(uc);
    p->nactive++;
    stat_add(p, 1, 0);
    pc_sock_setcb(uc->sock, NULL, NULL, NULL, NULL);
    return uc;
}

/* An idle connection became readable, closed, or timed out: in every case
 * it can no longer be used (an upstream must not talk unasked). */
static void idle_read_cb(pc_sock *s, void *arg)
{
    pc_upconn *uc = arg;
    (void)s;
    idle_unlink(uc);
    upconn_free(uc);
}

static void idle_event_cb(pc_sock *s, short what, void *arg)
{
    (void)what;
    idle_read_cb(s, arg);
}

void pc_pool_release(pc_upconn *uc, const pc_upstream *u)
{
    pc_pool *p = uc->pool;
    p->nactive--;
    stat_add(p, -1, 0);
    uc->owner = NULL;
    if (p->nidle >= u->keepalive || p->retired) {
        upconn_free(uc);
        return;
    }
    uc->requests++;
    uc->next = p->idle;
    uc->prev = NULL;
    if (p->idle)
        p->idle->prev = uc;
    p->idle = uc;
    p->nidle++;
    stat_add(p, 0, 1);
    pc_sock_setcb(uc->sock, idle_read_cb, NULL, idle_event_cb, uc);
    pc_sock_set_timeouts(uc->sock, u->idle_timeout, 0);
    pc_sock_set_write_lwm(uc->sock, 0);
    pc_sock_read(uc->sock, 1);
}

void pc_pool_close(pc_upconn *uc)
{
    uc->pool->nactive--;
    stat_add(uc->pool, -1, 0);
    upconn_free(uc);
}

static const pc_target *in_config(const pc_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        for (size_t k = 0; k < cfg->upstreams[i].ntargets; k++)
            if (strcmp(cfg->upstreams[i].targets[k].pool_key, key) == 0)
                return &cfg->upstreams[i].targets[k];
    return NULL;
}

/* A pool kept across a reload counts into the entry the new generation
 * names (the same one, unless its key left and came back meanwhile). */
static void restat(pc_pool *p, const pc_target *t)
{
    if (p->stat == t->pool_stat)
        return;
    stat_add(p, -(long)p->nactive, -(long)p->nidle);
    pc_tstate_unref(p->stat);
    p->stat = t->pool_stat ? pc_tstate_ref(t->pool_stat) : NULL;
    stat_add(p, (long)p->nactive, (long)p->nidle);
}

void pc_pools_prune(pc_pools *ps, const pc_config *cfg)
{
    for (int i = 0; i < NBUCKETS; i++) {
        pc_pool **pp = &ps->buckets[i];
        while (*pp) {
            pc_pool *p = *pp;
            const pc_target *t = in_config(cfg, p->key);
            if (t) {
                restat(p, t);
                p->retired = 0; /* back in the configuration */
                pp = &p->hnext;
                continue;
            }
            while (p->idle) {
                pc_upconn *uc = p->idle;
                idle_unlink(uc);
                upconn_free(uc);
            }
            if (p->nactive) { /* in-flight requests of older generations */
                p->retired = 1;
                pp = &p->hnext;
                continue;
            }
            *pp = p->hnext;
            pc_tstate_unref(p->stat);
            free(p->key);
            free(p);
        }
    }
}

static int is_ip_literal(const char *h)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* A client SSL for t: SNI (names only) and, when verifying, the name or
 * address the certificate must carry. NULL when OpenSSL fails. */
SSL *pc_target_ssl(const pc_upstream *u, const pc_target *t)
{
    SSL *ssl = SSL_new(u->ssl_ctx);
    if (!ssl)
        return NULL;
    int ip = is_ip_literal(t->host), ok = 1;
    if (!ip)
        ok = SSL_set_tlsext_host_name(ssl, t->host) == 1;
    if (ok && u->tls_verify)
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->host) == 1
                : SSL_set1_host(ssl, t->host) == 1;
    if (!ok) {
        pc_log(PC_LOG_WARN, "cannot set up TLS to %s", t->url);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

pc_upconn *pc_pool_connect(pc_pool *p, const pc_upstream *u, const pc_target *t)
{
    SSL *ssl = NULL;
    if (t->tls && !(ssl = pc_target_ssl(u, t)))
        return NULL;
    pc_sock *s = pc_sock_connect(p->set->loop, (const struct sockaddr *)&t->addr,
                                 t->addrlen, ssl);
    if (!s) {
        pc_log(PC_LOG_WARN, "connect to %s failed: %s", t->url, strerror(errno));
        return NULL;
    }
    pc_upconn *uc = pc_xcalloc(1, sizeof *uc);
    uc->pool = p;
    uc->sock = s;
    stat_add(p, 1, 0);
    /* Until connected (TLS handshake included) the write timeout is the
     * connect timeout. */
    pc_sock_set_timeouts(s, 0, u->connect_timeout);
    p->nactive++;
    return uc;
}

static bal_state *bal_get(pc_pools *ps, const pc_config *cfg,
                          const pc_upstream *u)
{
    bal_state *b;
    for (b = ps->bal; b; b = b->next)
        if (strcmp(b->name, u->name) == 0)
            break;
    if (!b) {
        b = pc_xcalloc(1, sizeof *b);
        b->name = pc_xstrdup(u->name);
        b->next = ps->bal;
        ps->bal = b;
    }
    if (b->generation != cfg->generation || b->n != u->ntargets) {
        free(b->cw);
        b->cw = pc_xcalloc(u->ntargets, sizeof *b->cw);
        b->n = u->ntargets;
        b->generation = cfg->generation;
    }
    return b;
}

/* nginx's smooth weighted round robin: each pick adds every weight to its
 * current value, takes the largest, and subtracts the total from it. */
static int pick_rr(pc_pools *ps, const pc_config *cfg, const pc_upstream *u,
                   uint64_t tried)
{
    bal_state *b = bal_get(ps, cfg, u);
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < u->ntargets; i++) {
        if (i < 64 && (tried >> i) & 1)
            continue;
        b->cw[i] += u->targets[i].weight;
        total += u->targets[i].weight;
        if (best < 0 || b->cw[i] > b->cw[best])
            best = (int)i;
    }
    if (best >= 0)
        b->cw[best] -= total;
    return best;
}

static int pick_least(pc_pools *ps, const pc_upstream *u, uint64_t tried)
{
    int best = -1;
    uint64_t best_score = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        if (i < 64 && (tried >> i) & 1)
            continue;
        pc_pool *p = pc_pool_get(ps, &u->targets[i]);
        /* active / weight, compared without division */
        uint64_t score = (uint64_t)p->nactive * 1000000 / u->targets[i].weight;
        if (best < 0 || score < best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

static int pick_hash(const pc_upstream *u, const pc_ip *client, uint64_t tried)
{
    uint32_t h = 2166136261u;
    int n = client->family == 4 ? 4 : 16;
    for (int i = 0; i < n; i++)
        h = (h ^ client->b[i]) * 16777619u;
    uint64_t total = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        total += u->targets[i].weight;
    uint64_t slot = h % total;
    size_t idx = 0;
    for (; idx < u->ntargets; idx++) {
        if (slot < u->targets[idx].weight)
            break;
        slot -= u->targets[idx].weight;
    }
    for (size_t k = 0; k < u->ntargets; k++) {
        size_t i = (idx + k) % u->ntargets;
        if (!(i < 64 && (tried >> i) & 1))
            return (int)i;
    }
    return -1;
}

int pc_balance_pick(pc_pools *ps, const pc_config *cfg, const pc_upstream *u,
                    const pc_ip *client, uint64_t tried)
{
    if (u->ntargets == 0)
        return -1;
    switch (u->balance) {
    case PC_BAL_LEAST_CONN:
        return pick_least(ps, u, tried);
    case PC_BAL_IP_HASH:
        return pick_hash(u, client, tried);
    default:
        return pick_rr(ps, cfg, u, tried);
    }
}
