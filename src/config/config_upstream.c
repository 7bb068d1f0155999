/* config_upstream.c: the `upstreams:` block: targets (URL parsed, host
 * resolved once with getaddrinfo), balancing, pool and timeout settings,
 * the upstream TLS client context, and each target's pool key (what makes
 * two targets' connections interchangeable). It never opens a connection
 * and never resolves a name again after load. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "portcullis/tls.h"
#include "portcullis/util.h"

#define DAY_MS (24ull * 3600 * 1000)

/* Splits "http[s]://host[:port][/]" into t->tls, t->host, t->port and
 * t->hostport. Returns 0, or -1 with a reason in why. */
int pc_config_parse_url(const char *url, pc_target *t, char *why, size_t len)
{
    const char *p;
    if (!strncasecmp(url, "http://", 7)) {
        p = url + 7;
    } else if (!strncasecmp(url, "https://", 8)) {
        p = url + 8;
        t->tls = 1;
    } else {
        snprintf(why, len, "must start with http:// or https://");
        return -1;
    }
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    if (*rest && strcmp(rest, "/") != 0) {
        snprintf(why, len, "must not have a path, query or fragment ('%s')",
                 rest);
        return -1;
    }
    if (memchr(p, '@', alen)) {
        snprintf(why, len, "must not contain user information");
        return -1;
    }
    const char *hend, *portp = NULL;
    if (p[0] == '[') {
        hend = memchr(p, ']', alen);
        if (!hend || (hend + 1 != p + alen && hend[1] != ':')) {
            snprintf(why, len, "malformed [IPv6] host");
            return -1;
        }
        t->host = pc_xstrndup(p + 1, (size_t)(hend - p - 1));
        if (hend + 1 != p + alen)
            portp = hend + 2;
    } else {
        hend = memchr(p, ':', alen);
        if (!hend)
            hend = p + alen;
        else
            portp = hend + 1;
        t->host = pc_xstrndup(p, (size_t)(hend - p));
    }
    if (!t->host[0] || strspn(t->host, "abcdefghijklmnopqrstuvwxyz"
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789.-_:%") != strlen(t->host)) {
        snprintf(why, len, "invalid host '%s'", t->host);
        return -1;
    }
    unsigned long port = t->tls ? 443 : 80;
    if (portp) {
        size_t plen = (size_t)(p + alen - portp);
        if (plen == 0 || plen > 5 || strspn(portp, "0123456789") < plen ||
            (port = strtoul(portp, NULL, 10)) < 1 || port > 65535) {
            snprintf(why, len, "invalid port '%.*s' (expected 1..65535)",
                     (int)plen, portp);
            return -1;
        }
    }
    t->port = (uint16_t)port;
    int v6 = strchr(t->host, ':') != NULL;
    int dflt = port == (t->tls ? 443u : 80u);
    size_t hp = strlen(t->host) + 9;
    t->hostport = pc_xmalloc(hp);
    snprintf(t->hostport, hp, dflt ? "%s%s%s" : "%s%s%s:%lu", v6 ? "[" : "",
             t->host, v6 ? "]" : "", port);
    return 0;
}

int pc_config_resolve(pc_target *t, char *why, size_t len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)t->port);
    int rc = getaddrinfo(t->host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, len, "cannot resolve '%s': %s", t->host,
                 rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void read_target(pc_upstream *u, pc_target *t, const pc_node *e,
                        pc_errors *err)
{
    static const char *const keys[] = {"url", "weight", NULL};
    char why[256];
    t->weight = 1;
    pc_config_check_block(e, keys, NULL, "target", err);
    const pc_node *un = pc_node_get(e, "url"), *wn = pc_node_get(e, "weight");
    uint64_t w;
    if (wn && pc_node_uint(wn, "weight", 1, 1000, &w, err) == 0)
        t->weight = (uint32_t)w;
    if (!un) {
        pc_errors_add(err, e, "target needs 'url'");
        return;
    }
    if (pc_node_str(un, "url", &t->url, err) < 0)
        return;
    if (pc_config_parse_url(t->url, t, why, sizeof why) < 0 ||
        pc_config_resolve(t, why, sizeof why) < 0) {
        pc_errors_add(err, un, "invalid target url '%s': %s", t->url, why);
        return;
    }
    for (size_t i = 0; i < t->index; i++) {
        if (u->targets[i].url && !strcasecmp(u->targets[i].url, t->url)) {
            pc_errors_add(err, un, "duplicate target '%s' in upstream '%s'",
                          t->url, u->name);
            return;
        }
    }
}

static void read_targets(pc_upstream *u, const pc_node *upn, const pc_node *seq,
                         pc_errors *err)
{
    if (!seq) {
        pc_errors_add(err, upn, "upstream '%s' needs 'targets'", u->name);
        return;
    }
    if (pc_node_expect_seq(seq, "targets", err) < 0)
        return;
    if (seq->n == 0) {
        pc_errors_add(err, seq, "upstream '%s' needs at least one target",
                      u->name);
        return;
    }
    if (seq->n > PC_MAX_TARGETS) {
        pc_errors_add(err, seq, "upstream '%s' has %zu targets (at most %d)",
                      u->name, seq->n, PC_MAX_TARGETS);
        return;
    }
    u->targets = pc_xcalloc(seq->n, sizeof *u->targets);
    for (size_t i = 0; i < seq->n; i++) {
        if (pc_node_expect_map(seq->vals[i], "target", err) < 0)
            continue;
        pc_target *t = &u->targets[u->ntargets];
        t->index = u->ntargets++;
        read_target(u, t, seq->vals[i], err);
    }
}

static void read_balance(pc_upstream *u, const pc_node *n, pc_errors *err)
{
    char *s;
    if (pc_node_str(n, "balance", &s, err) < 0)
        return;
    if (!strcmp(s, "round_robin"))
        u->balance = PC_BAL_ROUND_ROBIN;
    else if (!strcmp(s, "least_conn"))
        u->balance = PC_BAL_LEAST_CONN;
    else if (!strcmp(s, "ip_hash"))
        u->balance = PC_BAL_IP_HASH;
    else
        pc_errors_add(err, n,
                      "balance must be round_robin, least_conn or ip_hash, "
                      "got '%s'",
                      s);
    free(s);
}

static void read_settings(pc_config *c, pc_upstream *u, const pc_node *n,
                          pc_errors *err)
{
    const pc_node *v;
    if ((v = pc_node_get(n, "balance")))
        read_balance(u, v, err);
    if ((v = pc_node_get(n, "keepalive")))
        pc_node_uint(v, "keepalive", 0, 65535, &u->keepalive, err);
    if ((v = pc_node_get(n, "idle_timeout")))
        pc_config_duration(v, "idle_timeout", 1, DAY_MS, &u->idle_timeout, err);
    if ((v = pc_node_get(n, "connect_timeout")))
        pc_config_duration(v, "connect_timeout", 1, DAY_MS, &u->connect_timeout,
                           err);
    if ((v = pc_node_get(n, "read_timeout")))
        pc_config_duration(v, "read_timeout", 1, DAY_MS, &u->read_timeout, err);
    if ((v = pc_node_get(n, "retries")))
        pc_node_uint(v, "retries", 0, 10, &u->retries, err);
    if ((v = pc_node_get(n, "preserve_host")))
        pc_node_bool(v, "preserve_host", &u->preserve_host, err);
    if ((v = pc_node_get(n, "tls_verify")))
        pc_node_bool(v, "tls_verify", &u->tls_verify, err);
    char *s;
    if ((v = pc_node_get(n, "ca_file")) && pc_config_given(v) &&
        pc_config_nonempty(v, "ca_file", &s, err) == 0) {
        u->ca_file = pc_config_abspath(c, s);
        free(s);
        /* OpenSSL opens it by name and would block on a FIFO. */
        pc_config_regular_file(v, "ca_file", u->ca_file, err);
    }
}

/* Sets every target's pool_key: "URL ADDRESS" and, for https, " verify=0"
 * or " verify=1 ca=system" / " verify=1 ca=sha256:HEX" (the CA file's
 * contents, so a reload with a replaced CA file gets fresh connections).
 * A URL holds no space (parse_url), so different settings never make the
 * same key. Errors go at n. */
static void set_pool_keys(const pc_upstream *u, int https, const pc_node *n,
                          pc_errors *err)
{
    char ca[80] = "ca=system", host[NI_MAXHOST], serv[NI_MAXSERV];
    if (https && u->tls_verify && u->ca_file) {
        char hex[65];
        if (pc_tls_file_sha256(u->ca_file, hex) < 0) {
            pc_errors_add(err, n, "cannot read CA file '%s': %s", u->ca_file,
                          strerror(errno));
            return;
        }
        snprintf(ca, sizeof ca, "ca=sha256:%s", hex);
    }
    for (size_t i = 0; i < u->ntargets; i++) {
        pc_target *t = &u->targets[i];
        if (getnameinfo((const struct sockaddr *)&t->addr, t->addrlen, host,
                        sizeof host, serv, sizeof serv,
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
            pc_errors_add(err, n, "cannot format the address of '%s'", t->url);
            return;
        }
        size_t len = strlen(t->url) + strlen(host) + strlen(serv) +
                     strlen(ca) + 32;
        t->pool_key = pc_xmalloc(len);
        if (!t->tls)
            snprintf(t->pool_key, len, "%s [%s]:%s", t->url, host, serv);
        else
            snprintf(t->pool_key, len, "%s [%s]:%s verify=%d%s%s", t->url,
                     host, serv, u->tls_verify ? 1 : 0,
                     u->tls_verify ? " " : "", u->tls_verify ? ca : "");
    }
}

/* A path for the health check's request line: origin-form, visible
 * ASCII, no fragment. */
static int valid_check_path(const char *p)
{
    if (p[0] != '/' || strlen(p) > 1024)
        return 0;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return 0;
    return 1;
}

static void read_health(pc_upstream *u, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"path",          "interval",
                                       "timeout",       "healthy_after",
                                       "unhealthy_after", NULL};
    pc_health_conf *h = &u->health;
    h->enabled = 1;
    h->path = pc_xstrdup("/healthz");
    h->interval = 5000;
    h->timeout = 1000;
    h->healthy_after = 2;
    h->unhealthy_after = 3;
    if (pc_node_expect_map(n, "health_check", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "health_check", err);
    const pc_node *v;
    char *s;
    if ((v = pc_node_get(n, "path")) && pc_node_str(v, "path", &s, err) == 0) {
        if (!valid_check_path(s)) {
            pc_errors_add(err, v,
                          "invalid health_check path '%s' (must start with "
                          "'/', at most 1024 visible ASCII characters, no "
                          "'#')",
                          s);
            free(s);
        } else {
            free(h->path);
            h->path = s;
        }
    }
    if ((v = pc_node_get(n, "interval")))
        pc_config_duration(v, "interval", 10, DAY_MS, &h->interval, err);
    const pc_node *tn = pc_node_get(n, "timeout");
    if (tn && pc_config_duration(tn, "timeout", 1, DAY_MS, &h->timeout, err) == 0 &&
        h->timeout > h->interval)
        pc_errors_add(err, tn,
                      "health_check timeout (%llums) must not exceed its "
                      "interval (%llums)",
                      (unsigned long long)h->timeout,
                      (unsigned long long)h->interval);
    else if (!tn && h->timeout > h->interval)
        h->timeout = h->interval; /* the default 1s, under a shorter interval */
    if ((v = pc_node_get(n, "healthy_after")))
        pc_node_uint(v, "healthy_after", 1, 100, &h->healthy_after, err);
    if ((v = pc_node_get(n, "unhealthy_after")))
        pc_node_uint(v, "unhealthy_after", 1, 100, &h->unhealthy_after, err);
}

static void read_breaker(pc_upstream *u, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"failures", "failure_statuses",
                                       "open_for", "half_open_requests", NULL};
    pc_breaker_conf *b = &u->breaker;
    b->enabled = 1;
    b->failures = 5;
    b->open_for = 30000;
    b->half_open_requests = 1;
    if (pc_node_expect_map(n, "circuit_breaker", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "circuit_breaker", err);
    const pc_node *v;
    if ((v = pc_node_get(n, "failures")))
        pc_node_uint(v, "failures", 1, 1000, &b->failures, err);
    if ((v = pc_node_get(n, "open_for")))
        pc_config_duration(v, "open_for", 1, DAY_MS, &b->open_for, err);
    if ((v = pc_node_get(n, "half_open_requests")))
        pc_node_uint(v, "half_open_requests", 1, 1000, &b->half_open_requests,
                     err);
    if (!(v = pc_node_get(n, "failure_statuses"))) {
        pc_breaker_status_set(b, 502);
        pc_breaker_status_set(b, 503);
        pc_breaker_status_set(b, 504);
        return;
    }
    if (pc_node_expect_seq(v, "failure_statuses", err) < 0)
        return;
    for (size_t i = 0; i < v->n; i++) {
        uint64_t st;
        if (pc_node_uint(v->vals[i], "failure_statuses", 100, 599, &st, err) < 0)
            continue;
        if (pc_breaker_status_fails(b, (int)st))
            pc_errors_add(err, v->vals[i], "duplicate status %llu in "
                                           "failure_statuses",
                          (unsigned long long)st);
        pc_breaker_status_set(b, (unsigned)st);
    }
}

static void read_upstream(pc_config *c, pc_upstream *u, const pc_node *key,
                          const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {
        "targets",         "balance",      "keepalive", "idle_timeout",
        "connect_timeout", "read_timeout", "retries",   "preserve_host",
        "tls_verify",      "ca_file",      "health_check", "circuit_breaker",
        NULL};
    size_t before = err->n;
    u->name = pc_xstrdup(key->value);
    u->balance = PC_BAL_ROUND_ROBIN;
    u->keepalive = 64;
    u->idle_timeout = 60000;
    u->connect_timeout = 2000;
    u->read_timeout = 30000;
    u->retries = 1;
    u->tls_verify = 1;
    if (!pc_config_valid_name(u->name))
        pc_errors_add(err, key,
                      "invalid upstream name '%s' (1..128 characters of "
                      "A-Z a-z 0-9 _ . -)",
                      u->name);
    if (pc_node_expect_map(n, u->name, err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "upstream", err);
    read_targets(u, n, pc_node_get(n, "targets"), err);
    read_settings(c, u, n, err);
    const pc_node *v;
    if ((v = pc_node_get(n, "health_check")))
        read_health(u, v, err);
    if ((v = pc_node_get(n, "circuit_breaker")))
        read_breaker(u, v, err);
    int https = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        https |= u->targets[i].tls;
    if (https && err->n == before)
        pc_tls_client_ctx_new(u, n, err);
    if (err->n == before)
        set_pool_keys(u, https, n, err);
}

void pc_config_read_upstreams(pc_config *c, const pc_node *map, pc_errors *err)
{
    if (pc_node_expect_map(map, "upstreams", err) < 0)
        return;
    c->upstreams = pc_xcalloc(map->n ? map->n : 1, sizeof *c->upstreams);
    for (size_t i = 0; i < map->n; i++) {
        pc_upstream *u = &c->upstreams[c->nupstreams];
        u->index = c->nupstreams++;
        read_upstream(c, u, map->keys[i], map->vals[i], err);
    }
}

void pc_config_free_upstreams(pc_config *c)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        pc_upstream *u = &c->upstreams[i];
        pc_tls_client_ctx_free(u);
        for (size_t j = 0; j < u->ntargets; j++) {
            free(u->targets[j].url);
            free(u->targets[j].host);
            free(u->targets[j].hostport);
            free(u->targets[j].pool_key);
            pc_tstate_unref(u->targets[j].state);
            pc_tstate_unref(u->targets[j].pool_stat);
        }
        free(u->health.path);
        free(u->targets);
        free(u->ca_file);
        free(u->name);
    }
    free(c->upstreams);
    c->upstreams = NULL;
    c->nupstreams = 0;
}
