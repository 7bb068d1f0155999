/* config.c: builds one configuration generation from the YAML tree: the
 * top-level keys (workers, listen, admin, trusted_proxies, limits, log),
 * loading, reference counting and freeing. Upstreams, routes and the JSON
 * view live in config_upstream.c, config_routes.c and config_json.c.
 * It must never stop at the first error, never hand out a half-built
 * generation, and never silently ignore a key it does not implement. */
#include "portcullis/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/tls1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "portcullis/redis.h"
#include "portcullis/metrics.h"
#include "portcullis/tls.h"
#include "portcullis/units.h"
#include "portcullis/util.h"

#define DAY_MS (24ull * 3600 * 1000)

/* ---- helpers shared with the other config files ------------------------ */

int pc_config_given(const pc_node *n)
{
    return n && !(n->kind == PC_NODE_SCALAR && n->is_null && !n->bad);
}

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

void pc_config_check_block(const pc_node *map, const char *const *allowed,
                           const char *const *unsupported, const char *where,
                           pc_errors *err)
{
    const char *merged[48];
    size_t n = 0;
    if (!map || map->kind != PC_NODE_MAP)
        return;
    for (size_t i = 0; i < map->n; i++)
        if (in_list(unsupported, map->keys[i]->value))
            pc_errors_add(err, map->keys[i],
                          "'%s' is not supported by this build yet",
                          map->keys[i]->value);
    for (size_t i = 0; allowed && allowed[i] && n < 47; i++)
        merged[n++] = allowed[i];
    for (size_t i = 0; unsupported && unsupported[i] && n < 47; i++)
        merged[n++] = unsupported[i];
    merged[n] = NULL;
    pc_node_check_keys(map, merged, where, err);
}

void pc_config_check_stage_block(const pc_node *map, const char *const *keys,
                                 const char *const *later,
                                 int (*owned)(const char *key),
                                 const char *where, pc_errors *err)
{
    /* Keys owned by a chain stage are accepted here and read by the stage;
     * the others of later features stay "not supported". */
    const char *allowed[48], *rest[48];
    size_t na = 0, nr = 0;
    for (size_t i = 0; keys && keys[i] && na < 40; i++)
        allowed[na++] = keys[i];
    for (size_t i = 0; later && later[i] && na < 47 && nr < 47; i++) {
        if (owned && owned(later[i]))
            allowed[na++] = later[i];
        else
            rest[nr++] = later[i];
    }
    allowed[na] = NULL;
    rest[nr] = NULL;
    pc_config_check_block(map, allowed, rest, where, err);
}

int pc_config_duration(const pc_node *n, const char *name, uint64_t min,
                       uint64_t max, uint64_t *out, pc_errors *err)
{
    uint64_t v;
    char a[32], b[32];
    if (pc_node_duration(n, name, &v, err) < 0)
        return -1;
    if (v < min || v > max) {
        pc_errors_add(err, n, "value %s for '%s' out of range %s..%s", n->value,
                      name, pc_format_duration(min, a, sizeof a),
                      pc_format_duration(max, b, sizeof b));
        return -1;
    }
    *out = v;
    return 0;
}

int pc_config_nonempty(const pc_node *n, const char *name, char **out,
                       pc_errors *err)
{
    char *s;
    if (pc_node_str(n, name, &s, err) < 0)
        return -1;
    if (!*s) {
        pc_errors_add(err, n, "'%s' must not be empty", name);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

char *pc_config_abspath(const pc_config *c, const char *p)
{
    if (p[0] == '/')
        return pc_xstrdup(p);
    size_t a = strlen(c->dir), b = strlen(p);
    char *s = pc_xmalloc(a + b + 2);
    memcpy(s, c->dir, a);
    s[a] = '/';
    memcpy(s + a + 1, p, b + 1);
    return s;
}

int pc_config_regular_file(const pc_node *at, const char *key, const char *path,
                           pc_errors *err)
{
    int fd = pc_open_regular(path);
    if (fd >= 0)
        close(fd);
    if (fd != -2)
        return 0;
    pc_errors_add(err, at, "%s '%s': not a regular file", key, path);
    return -1;
}

int pc_config_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* ---- host:port --------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (!*s || strlen(s) > 5)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int pc_parse_hostport(const char *s, struct sockaddr_storage *ss,
                      socklen_t *len, char *err, size_t errlen)
{
    char host[64];
    const char *portstr;
    uint16_t port;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' ||
            (size_t)(close - s - 1) >= sizeof host) {
            snprintf(err, errlen, "expected [IPv6]:port");
            return -1;
        }
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        portstr = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host) {
            snprintf(err, errlen, "expected host:port");
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            snprintf(err, errlen,
                     "an IPv6 address needs brackets: [addr]:port");
            return -1;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        portstr = colon + 1;
    }
    if (parse_port(portstr, &port) < 0) {
        snprintf(err, errlen, "invalid port '%s' (expected 1..65535)", portstr);
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (s[0] == '[') {
        if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1) {
            snprintf(err, errlen, "invalid IPv6 address '%s'", host);
            return -1;
        }
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof *v6;
        return 0;
    }
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof *v4;
    if (!host[0] || !strcmp(host, "*")) {
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (!strcmp(host, "localhost")) {
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) != 1) {
        snprintf(err, errlen,
                 "host '%s' must be a numeric address, [IPv6], * or localhost",
                 host);
        return -1;
    }
    return 0;
}

static int same_addr(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr);
}

/* An address value: stored as written plus parsed; -1 after an error. */
static int read_address(const pc_node *n, const char *name, char **text,
                        struct sockaddr_storage *ss, socklen_t *len,
                        pc_errors *err)
{
    char why[128];
    if (pc_node_str(n, name, text, err) < 0)
        return -1;
    if (pc_parse_hostport(*text, ss, len, why, sizeof why) < 0) {
        pc_errors_add(err, n, "invalid address '%s' for '%s': %s", *text, name,
                      why);
        return -1;
    }
    return 0;
}

/* ---- workers, listen, admin, trusted_proxies --------------------------- */

static void read_workers(pc_config *c, const pc_node *n, pc_errors *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers_auto = 1;
    c->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (uint64_t)cpus;
    if (!n)
        return;
    if (n->kind == PC_NODE_SCALAR && !n->bad && !strcmp(n->value, "auto"))
        return;
    if (n->kind == PC_NODE_SCALAR && !n->is_null && !n->bad &&
        strspn(n->value, "0123456789") != strlen(n->value)) {
        pc_errors_add(err, n,
                      "expected 'auto' or an integer 1..256 for 'workers', "
                      "got '%s'",
                      n->value);
        return;
    }
    if (pc_node_uint(n, "workers", 1, 256, &c->workers, err) == 0)
        c->workers_auto = 0;
}

static void read_certificates(pc_config *c, pc_listen *l, const pc_node *seq,
                              pc_errors *err)
{
    static const char *const keys[] = {"cert", "key", NULL};
    if (pc_node_expect_seq(seq, "certificates", err) < 0)
        return;
    if (seq->n == 0) {
        pc_errors_add(err, seq, "'certificates' needs at least one entry");
        return;
    }
    l->certs = pc_xcalloc(seq->n, sizeof *l->certs);
    for (size_t i = 0; i < seq->n; i++) {
        const pc_node *e = seq->vals[i];
        char *s;
        if (pc_node_expect_map(e, "certificates entry", err) < 0)
            continue;
        pc_config_check_block(e, keys, NULL, "certificates entry", err);
        pc_tls_cert *cert = &l->certs[l->ncerts++];
        const pc_node *cn = pc_node_get(e, "cert"), *kn = pc_node_get(e, "key");
        if (!cn || !kn)
            pc_errors_add(err, e,
                          "a certificates entry needs 'cert' and 'key'");
        if (cn && pc_config_nonempty(cn, "cert", &s, err) == 0) {
            cert->cert = pc_config_abspath(c, s);
            pc_config_regular_file(cn, "cert", cert->cert, err);
            free(s);
        }
        if (kn && pc_config_nonempty(kn, "key", &s, err) == 0) {
            cert->key = pc_config_abspath(c, s);
            pc_config_regular_file(kn, "key", cert->key, err);
            free(s);
        }
    }
}

static void read_tls(pc_config *c, pc_listen *l, const pc_node *n,
                     pc_errors *err)
{
    static const char *const keys[] = {"certificates", "min_version", NULL};
    if (pc_node_expect_map(n, "tls", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "tls", err);
    l->tls = 1;
    l->min_version = TLS1_2_VERSION;
    const pc_node *certs = pc_node_get(n, "certificates");
    if (certs)
        read_certificates(c, l, certs, err);
    else
        pc_errors_add(err, n, "'tls' needs 'certificates'");
    const pc_node *mv = pc_node_get(n, "min_version");
    char *s;
    if (mv && pc_node_str(mv, "min_version", &s, err) == 0) {
        if (!strcmp(s, "TLSv1.3"))
            l->min_version = TLS1_3_VERSION;
        else if (strcmp(s, "TLSv1.2") != 0)
            pc_errors_add(
                err, mv, "min_version must be TLSv1.2 or TLSv1.3, got '%s'", s);
        free(s);
    }
}

static void read_listen(pc_config *c, pc_listen *l, const pc_node *e,
                        pc_errors *err)
{
    static const char *const keys[] = {"address", "tls", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(e, "listen entry", err) < 0)
        return;
    pc_config_check_block(e, keys, NULL, "listen entry", err);
    const pc_node *a = pc_node_get(e, "address"), *t = pc_node_get(e, "tls");
    if (!a)
        pc_errors_add(err, e, "listen entry needs 'address'");
    else if (read_address(a, "address", &l->address, &l->addr, &l->addrlen,
                          err) < 0)
        l->addrlen = 0;
    if (t)
        read_tls(c, l, t, err);
    if (l->tls && err->n == before)
        pc_tls_server_ctx_new(l, e, err);
}

static void read_listens(pc_config *c, const pc_node *root, const pc_node *seq,
                         pc_errors *err)
{
    if (!seq) {
        pc_errors_add(err, root,
                      "missing 'listen': at least one listener is "
                      "required");
        return;
    }
    if (pc_node_expect_seq(seq, "listen", err) < 0)
        return;
    if (seq->n == 0) {
        pc_errors_add(err, seq, "'listen' needs at least one entry");
        return;
    }
    c->listens = pc_xcalloc(seq->n, sizeof *c->listens);
    for (size_t i = 0; i < seq->n; i++) {
        pc_listen *l = &c->listens[c->nlistens++];
        read_listen(c, l, seq->vals[i], err);
        for (size_t j = 0; l->addrlen && j < i; j++) {
            if (c->listens[j].addrlen &&
                same_addr(&c->listens[j].addr, &l->addr)) {
                pc_errors_add(err, pc_node_get(seq->vals[i], "address"),
                              "duplicate listen address '%s' (also at line %d)",
                              l->address,
                              pc_node_get(seq->vals[j], "address")->line);
                break;
            }
        }
    }
}

static void read_admin(pc_config *c, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"listen", "token", NULL};
    if (pc_node_expect_map(n, "admin", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "admin", err);
    const pc_node *l = pc_node_get(n, "listen"), *t = pc_node_get(n, "token");
    if (!l)
        pc_errors_add(err, n, "'admin' needs 'listen'");
    else if (read_address(l, "listen", &c->admin_listen, &c->admin_addr,
                          &c->admin_addrlen, err) < 0)
        c->admin_addrlen = 0;
    /* An empty token would read as "protected" while leaving /admin open. */
    if (t)
        pc_config_nonempty(t, "token", &c->admin_token, err);
    for (size_t i = 0; c->admin_addrlen && i < c->nlistens; i++) {
        if (c->listens[i].addrlen &&
            same_addr(&c->listens[i].addr, &c->admin_addr)) {
            pc_errors_add(err, l,
                          "admin listen address '%s' is also a "
                          "'listen' address",
                          c->admin_listen);
            break;
        }
    }
}

static void read_trusted(pc_config *c, const pc_node *seq, pc_errors *err)
{
    if (pc_node_expect_seq(seq, "trusted_proxies", err) < 0)
        return;
    c->trusted_proxies_text = pc_xcalloc(seq->n, sizeof(char *));
    for (size_t i = 0; i < seq->n; i++) {
        const pc_node *it = seq->vals[i];
        char *s, why[128] = "";
        pc_ip ip;
        int prefix;
        if (pc_node_str(it, "trusted_proxies", &s, err) < 0)
            continue;
        if (pc_cidr_parse(s, &ip, &prefix, why, sizeof why) < 0) {
            pc_errors_add(err, it, "invalid CIDR '%s' in 'trusted_proxies': %s",
                          s, why[0] ? why : "malformed");
            free(s);
            continue;
        }
        pc_cidr_set_add(c->trusted_proxies, &ip, prefix);
        c->trusted_proxies_text[c->ntrusted_proxies++] = s;
    }
}

/* ---- limits and log ---------------------------------------------------- */

enum { K_UINT, K_SIZE, K_DUR };

typedef struct limit_spec {
    const char *key;
    int kind;
    uint64_t min, max, def;
    size_t off;
} limit_spec;

#define LIM(k, kind, min, max, def)                                            \
    {                                                                          \
#k, kind, min, max, def, offsetof(pc_limits, k)                        \
    }

static const limit_spec limit_specs[] = {
    LIM(max_header_bytes, K_SIZE, 1024, 1u << 20, 16u << 10),
    LIM(max_headers, K_UINT, 1, 10000, 100),
    LIM(max_body_bytes, K_SIZE, 1, 1ull << 40, 1u << 20),
    LIM(client_header_timeout, K_DUR, 1, DAY_MS, 10000),
    LIM(client_body_timeout, K_DUR, 1, DAY_MS, 30000),
    LIM(keepalive_timeout, K_DUR, 1, DAY_MS, 60000),
    LIM(max_connections, K_UINT, 1, 1000000, 10000),
    LIM(max_connections_per_ip, K_UINT, 0, 1000000, 0),
    LIM(shutdown_timeout, K_DUR, 0, DAY_MS, 30000),
    LIM(max_upstream_header_bytes, K_SIZE, 1024, 1u << 20, 64u << 10),
};
#define NLIMITS (sizeof limit_specs / sizeof limit_specs[0])

static void read_limit(const limit_spec *s, const pc_node *v, uint64_t *out,
                       pc_errors *err)
{
    uint64_t x;
    if (s->kind == K_UINT) {
        pc_node_uint(v, s->key, s->min, s->max, out, err);
    } else if (s->kind == K_DUR) {
        pc_config_duration(v, s->key, s->min, s->max, out, err);
    } else if (pc_node_size(v, s->key, &x, err) == 0) {
        if (x < s->min || x > s->max)
            pc_errors_add(err, v, "value %s for '%s' out of range %llu..%llu",
                          v->value, s->key, (unsigned long long)s->min,
                          (unsigned long long)s->max);
        else
            *out = x;
    }
}

static void read_limits(pc_config *c, const pc_node *n, pc_errors *err)
{
    const char *keys[NLIMITS + 1];
    for (size_t i = 0; i < NLIMITS; i++) {
        keys[i] = limit_specs[i].key;
        *(uint64_t *)((char *)&c->limits + limit_specs[i].off) =
            limit_specs[i].def;
    }
    keys[NLIMITS] = NULL;
    if (!n || pc_node_expect_map(n, "limits", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "limits", err);
    for (size_t i = 0; i < NLIMITS; i++) {
        const pc_node *v = pc_node_get(n, limit_specs[i].key);
        if (v)
            read_limit(&limit_specs[i], v,
                       (uint64_t *)((char *)&c->limits + limit_specs[i].off),
                       err);
    }
}

static void read_log(pc_config *c, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"access", "ring_entries", "level", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug",
                                         NULL};
    c->log.access = pc_xstrdup("stdout");
    c->log.ring_entries = 65536;
    c->log.level = PC_LOG_INFO;
    if (!n || pc_node_expect_map(n, "log", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "log", err);
    const pc_node *v;
    char *s;
    if ((v = pc_node_get(n, "access")) &&
        pc_config_nonempty(v, "access", &s, err) == 0) {
        free(c->log.access);
        if (!strcmp(s, "stdout") || !strcmp(s, "off")) {
            c->log.access = s;
        } else {
            c->log.access = pc_config_abspath(c, s);
            free(s);
        }
    }
    uint64_t r;
    if ((v = pc_node_get(n, "ring_entries")) &&
        pc_node_uint(v, "ring_entries", 16, 1u << 24, &r, err) == 0) {
        /* The ring indexes with a mask: round up to a power of two. */
        uint64_t p = 16;
        while (p < r)
            p <<= 1;
        c->log.ring_entries = p;
    }
    if ((v = pc_node_get(n, "level")) &&
        pc_node_str(v, "level", &s, err) == 0) {
        int i = 0;
        while (levels[i] && strcmp(levels[i], s) != 0)
            i++;
        if (levels[i])
            c->log.level = (pc_log_level)i;
        else
            pc_errors_add(err, v,
                          "level must be error, warn, info or debug, got '%s'",
                          s);
        free(s);
    }
}

/* ---- the generation ---------------------------------------------------- */

static char *config_dir(const char *file)
{
    char *real = file ? realpath(file, NULL) : NULL;
    char *src = real ? real : (char *)file;
    const char *slash = src ? strrchr(src, '/') : NULL;
    char *dir;
    if (slash && src[0] == '/') {
        dir = pc_xstrndup(src, slash == src ? 1 : (size_t)(slash - src));
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            strcpy(cwd, "/");
        size_t sub = slash ? (size_t)(slash - src) : 0;
        dir = pc_xmalloc(strlen(cwd) + sub + 2);
        if (sub)
            sprintf(dir, "%s/%.*s", cwd, (int)sub, src);
        else
            strcpy(dir, cwd);
    }
    free(real);
    return dir;
}

static void config_free(pc_config *c)
{
    for (size_t i = 0; i < c->nlistens; i++) {
        pc_listen *l = &c->listens[i];
        pc_tls_server_ctx_free(l);
        for (size_t j = 0; j < l->ncerts; j++) {
            free(l->certs[j].cert);
            free(l->certs[j].key);
        }
        free(l->certs);
        free(l->address);
    }
    free(c->listens);
    free(c->admin_listen);
    free(c->admin_token);
    pc_cidr_set_free(c->trusted_proxies);
    for (size_t i = 0; i < c->ntrusted_proxies; i++)
        free(c->trusted_proxies_text[i]);
    free(c->trusted_proxies_text);
    free(c->log.access);
    pc_config_free_routes(c);
    if (c->hooks->free_global)
        c->hooks->free_global(c);
    pc_config_free_upstreams(c);
    pc_config_free_webhooks(c);
    pc_redis_opts_free(c->redis);
    json_decref(c->env_mask);
    free(c->file);
    free(c->dir);
    free(c);
}

/* Stable metric label ids for every route and upstream name (metrics.h),
 * so that series survive reloads; warns once per kind past the cap. */
static void intern_metric_names(pc_config *c)
{
    for (size_t i = 0; i < c->nupstreams; i++)
        c->upstreams[i].metrics_id =
            pc_metrics_intern(PC_MKEY_UPSTREAM, c->upstreams[i].name);
    for (size_t i = 0; i < c->nroutes; i++)
        c->routes[i].metrics_id =
            pc_metrics_intern(PC_MKEY_ROUTE, c->routes[i].name);
    static const char *const what[] = {"route", "upstream"};
    for (int k = PC_MKEY_ROUTE; k <= PC_MKEY_UPSTREAM; k++)
        if (pc_metrics_overflow_first((pc_metrics_key)k))
            pc_log(PC_LOG_WARN,
                   "metrics: more than %u %s names since start: later ones "
                   "share the label \"%s\"",
                   PC_METRICS_MAX_IDS - 2, what[k], PC_METRICS_OVERFLOW_LABEL);
}

pc_config *pc_config_from_node_with(const pc_node *root, const char *file,
                                    const pc_stage_hooks *hooks, pc_errors *err)
{
    static const char *const keys[] = {
        "workers", "listen",    "admin",  "trusted_proxies", "limits",
        "log",     "upstreams", "routes", "redis",           "webhooks",
        NULL};
    static const char *const later[] = {
        "jwt", "cache", "acl", "rate_limit", "validate", NULL};
    size_t before = err->n;
    static const pc_stage_hooks none;
    pc_config *c = pc_xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    c->generation = 1;
    c->hooks = hooks ? hooks : &none;
    c->file = pc_xstrdup(file ? file : "<config>");
    c->dir = config_dir(file);
    c->trusted_proxies = pc_cidr_set_new();
    if (root->kind != PC_NODE_MAP) {
        if (root->kind == PC_NODE_SCALAR && root->is_null)
            pc_errors_add(err, root, "the configuration is empty");
        else
            pc_errors_add(err, root, "the configuration must be a mapping");
        config_free(c);
        return NULL;
    }
    pc_config_check_stage_block(root, keys, later, c->hooks->owns_global_key,
                                NULL, err);
    read_workers(c, pc_node_get(root, "workers"), err);
    read_listens(c, root, pc_node_get(root, "listen"), err);
    const pc_node *n;
    if ((n = pc_node_get(root, "admin")))
        read_admin(c, n, err);
    if ((n = pc_node_get(root, "trusted_proxies")))
        read_trusted(c, n, err);
    read_limits(c, pc_node_get(root, "limits"), err);
    read_log(c, pc_node_get(root, "log"), err);
    if ((n = pc_node_get(root, "upstreams")))
        pc_config_read_upstreams(c, n, err);
    if ((n = pc_node_get(root, "redis")))
        pc_config_read_redis(c, n, err);
    if ((n = pc_node_get(root, "webhooks")))
        pc_config_read_webhooks(c, n, err);
    if (c->hooks->configure_global)
        c->hooks->configure_global(c, root, err);
    if ((n = pc_node_get(root, "routes")))
        pc_config_read_routes(c, n, err);
    if (err->n != before) {
        config_free(c);
        return NULL;
    }
    if (!c->trie) /* no routes: every request gets 404, from an empty trie */
        c->trie = pc_trie_new();
    c->env_mask = pc_config_env_mask(root);
    intern_metric_names(c);
    return c;
}

typedef struct err_pos {
    long line, col;
    size_t idx;
    char *msg;
} err_pos;

static int pos_cmp(const void *a, const void *b)
{
    const err_pos *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Errors are found block by block (upstreams before routes, whatever the
 * file order); print them in file order as a compiler would. */
static void sort_errors(pc_errors *err, size_t from)
{
    const char *file = err->file ? err->file : "<config>";
    size_t n = err->n - from;
    if (n < 2)
        return;
    /* Messages hold the file name escaped (pc_errors_add). */
    char *shown = pc_xescape(file, strlen(file));
    size_t skip = strlen(shown) + 1;
    free(shown);
    err_pos *v = pc_xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        char *m = err->msgs[from + i], *end;
        v[i].idx = i;
        v[i].msg = m;
        v[i].line = strtol(m + skip, &end, 10);
        v[i].col = *end == ':' ? strtol(end + 1, NULL, 10) : 0;
    }
    qsort(v, n, sizeof *v, pos_cmp);
    for (size_t i = 0; i < n; i++)
        err->msgs[from + i] = v[i].msg;
    free(v);
}

pc_config *pc_config_load_with(const char *file, const pc_stage_hooks *hooks,
                               pc_errors *err)
{
    size_t before = err->n;
    if (!err->file)
        err->file = file;
    pc_node *root = pc_node_load_file(file, err);
    pc_config *c = NULL;
    if (root) {
        c = pc_config_from_node_with(root, file, hooks, err);
        pc_node_free(root);
    }
    if (err->n != before) {
        pc_config_unref(c);
        c = NULL;
        sort_errors(err, before);
    }
    return c;
}

pc_config *pc_config_ref(pc_config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void pc_config_unref(pc_config *c)
{
    if (!c)
        return;
    /* acq_rel: the last owner must see every other owner's reads done. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

pc_upstream *pc_config_upstream(const pc_config *c, const char *name)
{
    for (size_t i = 0; i < c->nupstreams; i++)
        if (c->upstreams[i].name && !strcmp(c->upstreams[i].name, name))
            return &c->upstreams[i];
    return NULL;
}
