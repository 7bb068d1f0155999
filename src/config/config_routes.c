/* config_routes.c: the `routes:` block: match (path pattern, type, methods,
 * host), upstream reference, strip_prefix, rewrite, header rules, and the
 * compiled trie. It checks that every route can be applied as written; it
 * never decides how a request is rewritten (the proxy does, from these
 * fields) and never accepts a route that could not be reached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "portcullis/util.h"

static const struct {
    const char *name;
    uint32_t bit;
} method_names[] = {
    {"GET", PC_M_GET},         {"HEAD", PC_M_HEAD},
    {"POST", PC_M_POST},       {"PUT", PC_M_PUT},
    {"DELETE", PC_M_DELETE},   {"PATCH", PC_M_PATCH},
    {"OPTIONS", PC_M_OPTIONS}, {"TRACE", PC_M_TRACE},
    {"CONNECT", PC_M_CONNECT},
};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

/* Where each route came from, for errors found after the first pass. */
typedef struct route_src {
    const pc_node *node, *path;
    int ok; /* the route itself had no error */
} route_src;

/* ---- match ------------------------------------------------------------- */

static int is_token(const char *s)
{
    return pc_is_token(s, strlen(s));
}

/* Request paths are normalised before matching (CONTRACT §3), so a pattern
 * that a normalised path can never equal is a mistake worth reporting. */
static int check_path_text(const char *p, char *why, size_t len)
{
    for (const char *s = p; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch == 0x7F || ch == '?' || ch == '#') {
            snprintf(why, len,
                     "must not contain spaces, control characters, "
                     "'?' or '#'");
            return -1;
        }
    }
    for (const char *s = p; (s = strchr(s, '/')); s++) {
        size_t seg = strcspn(s + 1, "/");
        if ((seg == 1 && s[1] == '.') ||
            (seg == 2 && !strncmp(s + 1, "..", 2))) {
            snprintf(why, len, "must not contain '.' or '..' segments");
            return -1;
        }
    }
    return 0;
}

static void read_methods(pc_route *r, const pc_node *seq, pc_errors *err)
{
    if (pc_node_expect_seq(seq, "methods", err) < 0)
        return;
    if (seq->n == 0) {
        pc_errors_add(err, seq,
                      "'methods' must not be empty (leave it out "
                      "to allow every method)");
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        char *m;
        size_t j = 0;
        if (pc_node_str(seq->vals[i], "methods", &m, err) < 0)
            continue;
        while (j < NMETHODS && strcmp(method_names[j].name, m) != 0)
            j++;
        if (j < NMETHODS)
            r->methods |= method_names[j].bit;
        else
            pc_errors_add(err, seq->vals[i],
                          "unknown method '%s' (expected upper-case GET, HEAD, "
                          "POST, PUT, DELETE, PATCH, OPTIONS, TRACE or "
                          "CONNECT)",
                          m);
        free(m);
    }
}

static int valid_host(const char *h)
{
    if (!strncmp(h, "*.", 2))
        h += 2;
    if (!*h)
        return 0;
    for (const char *label = h;;) {
        size_t n = strspn(label, "abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
        if (n == 0 || n > 63)
            return 0;
        if (label[n] == '\0')
            return 1;
        if (label[n] != '.')
            return 0;
        label += n + 1;
    }
}

static void read_match(pc_route *r, const pc_node *m, pc_errors *err)
{
    static const char *const keys[] = {"path", "type", "methods", "host", NULL};
    char *s, why[160];
    if (pc_node_expect_map(m, "match", err) < 0)
        return;
    pc_config_check_block(m, keys, NULL, "match", err);
    const pc_node *p = pc_node_get(m, "path"), *v;
    if (!p)
        pc_errors_add(err, m, "'match' needs 'path'");
    else if (pc_config_nonempty(p, "path", &r->path, err) == 0 &&
             (pc_trie_check_pattern(r->path, why, sizeof why) < 0 ||
              check_path_text(r->path, why, sizeof why) < 0))
        pc_errors_add(err, p, "invalid match.path '%s': %s", r->path, why);
    if ((v = pc_node_get(m, "type")) && pc_node_str(v, "type", &s, err) == 0) {
        if (!strcmp(s, "exact"))
            r->exact = 1;
        else if (strcmp(s, "prefix") != 0)
            pc_errors_add(err, v, "type must be prefix or exact, got '%s'", s);
        free(s);
    }
    if ((v = pc_node_get(m, "methods")))
        read_methods(r, v, err);
    if ((v = pc_node_get(m, "host")) && pc_config_given(v) &&
        pc_node_str(v, "host", &r->host, err) == 0 && !valid_host(r->host))
        pc_errors_add(err, v,
                      "invalid match.host '%s': expected a host name like "
                      "api.example.com or *.example.com, without port",
                      r->host);
}

/* ---- strip_prefix and rewrite ------------------------------------------ */

static void check_strip(const pc_route *r, const pc_node *n, pc_errors *err)
{
    const char *sp = r->strip_prefix;
    size_t len = strlen(sp);
    if (sp[0] != '/' || strchr(sp, '{') || strchr(sp, '}')) {
        pc_errors_add(err, n,
                      "strip_prefix '%s' must be a literal path "
                      "starting with '/', without {params}",
                      sp);
        return;
    }
    if (len > 1 && sp[len - 1] == '/') {
        pc_errors_add(err, n, "strip_prefix '%s' must not end with '/'", sp);
        return;
    }
    if (!r->path)
        return;
    int ok = !strncmp(r->path, sp, len) &&
             (len == 1 || r->path[len] == '\0' || r->path[len] == '/');
    if (!ok)
        pc_errors_add(err, n,
                      "strip_prefix '%s' is not a prefix of match.path '%s' "
                      "on a segment boundary",
                      sp, r->path);
}

/* 1 when {name} (name[0..len)) is a whole-segment parameter of pattern. */
static int has_param(const char *pattern, const char *name, size_t len)
{
    for (const char *s = pattern; (s = strchr(s, '{')); s++) {
        const char *e = strchr(s, '}');
        if (e && (size_t)(e - s - 1) == len && !strncmp(s + 1, name, len))
            return 1;
    }
    return 0;
}

static void check_rewrite(const pc_route *r, const pc_node *n, pc_errors *err)
{
    const char *t = r->rewrite;
    char why[160];
    if (t[0] != '/') {
        pc_errors_add(err, n, "rewrite '%s' must start with '/'", t);
        return;
    }
    if (check_path_text(t, why, sizeof why) < 0) {
        pc_errors_add(err, n, "rewrite '%s' %s", t, why);
        return;
    }
    for (const char *s = t; *s; s++) {
        if (*s == '}') {
            pc_errors_add(err, n, "rewrite '%s' has a '}' without '{'", t);
            return;
        }
        if (*s != '{')
            continue;
        size_t len = strcspn(s + 1, "{}/");
        if (s[1 + len] != '}' || len == 0) {
            pc_errors_add(err, n, "rewrite '%s' has a malformed {param}", t);
            return;
        }
        if (r->path && !has_param(r->path, s + 1, len))
            pc_errors_add(err, n,
                          "rewrite uses '{%.*s}', which is not a parameter of "
                          "match.path '%s'",
                          (int)len, s + 1, r->path);
        s += len + 1;
    }
}

/* ---- header rules ------------------------------------------------------ */

static int in_ci_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcasecmp(list[i], s))
            return 1;
    return 0;
}

static int check_header_name(const pc_node *n, const char *name, pc_errors *err)
{
    if (is_token(name))
        return 0;
    pc_errors_add(err, n, "invalid header name '%s'", name);
    return -1;
}

static void read_set(pc_header_rules *h, const pc_node *map, pc_errors *err)
{
    /* The gateway owns message framing, connection management and Host
     * (preserve_host): a rule touching them would break or smuggle. */
    static const char *const managed[] = {
        "Connection", "Keep-Alive", "Transfer-Encoding", "TE",
        "Trailer",    "Upgrade",    "Content-Length",    "Host",
        NULL};
    if (pc_node_expect_map(map, "set", err) < 0)
        return;
    h->set = pc_xcalloc(map->n ? map->n : 1, sizeof *h->set);
    for (size_t i = 0; i < map->n; i++) {
        const pc_node *k = map->keys[i], *v = map->vals[i];
        char *val;
        if (check_header_name(k, k->value, err) < 0)
            continue;
        if (in_ci_list(managed, k->value) ||
            !strncasecmp(k->value, "Proxy-", 6)) {
            pc_errors_add(err, k,
                          "header '%s' cannot be set: it is a "
                          "hop-by-hop or framing header managed by "
                          "the gateway",
                          k->value);
            continue;
        }
        size_t j = 0;
        while (j < h->nset && strcasecmp(h->set[j].name, k->value) != 0)
            j++;
        if (j < h->nset) {
            pc_errors_add(err, k, "header '%s' is set twice", k->value);
            continue;
        }
        if (pc_node_str(v, k->value, &val, err) < 0)
            continue;
        for (const char *s = val; *s; s++) {
            unsigned char ch = (unsigned char)*s;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
                pc_errors_add(err, v,
                              "value of header '%s' must not contain "
                              "CR, LF or other control characters",
                              k->value);
                break;
            }
        }
        h->set[h->nset].name = pc_xstrdup(k->value);
        h->set[h->nset++].value = val;
    }
}

static void read_remove(pc_header_rules *h, const pc_node *seq, pc_errors *err)
{
    static const char *const framing[] = {"Content-Length", "Transfer-Encoding",
                                          "Host", NULL};
    if (pc_node_expect_seq(seq, "remove", err) < 0)
        return;
    h->remove = pc_xcalloc(seq->n ? seq->n : 1, sizeof *h->remove);
    for (size_t i = 0; i < seq->n; i++) {
        const pc_node *it = seq->vals[i];
        char *name;
        if (pc_node_str(it, "remove", &name, err) < 0)
            continue;
        h->remove[h->nremove++] = name;
        if (check_header_name(it, name, err) < 0)
            continue;
        if (in_ci_list(framing, name))
            pc_errors_add(err, it,
                          "header '%s' cannot be removed: the gateway "
                          "needs it to frame or route the message",
                          name);
        for (size_t j = 0; j < h->nset; j++)
            if (!strcasecmp(h->set[j].name, name))
                pc_errors_add(err, it, "header '%s' is both set and removed",
                              name);
    }
}

static void read_rules(pc_header_rules *h, const pc_node *n, const char *where,
                       pc_errors *err)
{
    static const char *const keys[] = {"set", "remove", NULL};
    const pc_node *v;
    if (pc_node_expect_map(n, where, err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, where, err);
    if ((v = pc_node_get(n, "set")))
        read_set(h, v, err);
    if ((v = pc_node_get(n, "remove")))
        read_remove(h, v, err);
}

static void read_headers(pc_route *r, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"request", "response", NULL};
    const pc_node *v;
    if (pc_node_expect_map(n, "headers", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "headers", err);
    if ((v = pc_node_get(n, "request")))
        read_rules(&r->req_headers, v, "headers.request", err);
    if ((v = pc_node_get(n, "response")))
        read_rules(&r->resp_headers, v, "headers.response", err);
}

/* ---- one route --------------------------------------------------------- */

static void read_upstream_ref(pc_config *c, pc_route *r, const pc_node *n,
                              pc_errors *err)
{
    char *s;
    if (pc_node_str(n, "upstream", &s, err) < 0)
        return;
    r->upstream = pc_config_upstream(c, s);
    if (!r->upstream)
        pc_errors_add(err, n, "unknown upstream '%s'", s);
    free(s);
}

static void read_route(pc_config *c, pc_route *r, const pc_node *n,
                       pc_errors *err)
{
    static const char *const keys[] = {
        "name",    "match",   "upstream", "strip_prefix",
        "rewrite", "headers", NULL};
    static const char *const later[] = {
        "acl",   "auth",     "rate_limit",       "validate",
        "cache", "compress", "verify_signature", NULL};
    const pc_node *v;
    char buf[32];
    pc_config_check_stage_block(n, keys, later, c->hooks->owns_route_key,
                                "route", err);
    if ((v = pc_node_get(n, "name"))) {
        if (pc_node_str(v, "name", &r->name, err) == 0 &&
            !pc_config_valid_name(r->name))
            pc_errors_add(err, v,
                          "invalid route name '%s' (1..128 characters of "
                          "A-Z a-z 0-9 _ . -)",
                          r->name);
    }
    if (!r->name) {
        snprintf(buf, sizeof buf, "route%zu", r->index + 1);
        r->name = pc_xstrdup(buf);
    }
    if ((v = pc_node_get(n, "match")))
        read_match(r, v, err);
    else
        pc_errors_add(err, n, "route '%s' needs 'match'", r->name);
    if ((v = pc_node_get(n, "upstream")))
        read_upstream_ref(c, r, v, err);
    else
        pc_errors_add(err, n, "route '%s' needs 'upstream'", r->name);
    if ((v = pc_node_get(n, "strip_prefix")) && pc_config_given(v) &&
        pc_node_str(v, "strip_prefix", &r->strip_prefix, err) == 0)
        check_strip(r, v, err);
    if ((v = pc_node_get(n, "rewrite")) && pc_config_given(v) &&
        pc_node_str(v, "rewrite", &r->rewrite, err) == 0)
        check_rewrite(r, v, err);
    if ((v = pc_node_get(n, "headers")))
        read_headers(r, v, err);
    if (n->kind == PC_NODE_MAP)
        if (c->hooks->configure_route)
            c->hooks->configure_route(c, r, n, err);
}

/* ---- checks across routes, and the trie -------------------------------- */

typedef struct sort_ctx {
    const pc_route *routes;
} sort_ctx;

static int hostcmp(const char *a, const char *b)
{
    return strcasecmp(a ? a : "", b ? b : "");
}

static int cmp_name(const void *a, const void *b, void *arg)
{
    const pc_route *r = ((sort_ctx *)arg)->routes;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(r[x].name, r[y].name);
    return c ? c : (x < y ? -1 : x > y);
}

static int cmp_match(const void *a, const void *b, void *arg)
{
    const pc_route *r = ((sort_ctx *)arg)->routes;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = r[x].exact - r[y].exact;
    if (!c)
        c = strcmp(r[x].path, r[y].path);
    if (!c)
        c = hostcmp(r[x].host, r[y].host);
    return c ? c : (x < y ? -1 : x > y);
}

static void check_names(pc_config *c, const route_src *src, size_t *idx,
                        pc_errors *err)
{
    sort_ctx ctx = {c->routes};
    qsort_r(idx, c->nroutes, sizeof *idx, cmp_name, &ctx);
    for (size_t i = 1, first = 0; i < c->nroutes; i++) {
        if (strcmp(c->routes[idx[first]].name, c->routes[idx[i]].name) != 0) {
            first = i;
            continue;
        }
        const pc_node *at = pc_node_get(src[idx[i]].node, "name");
        pc_errors_add(err, at ? at : src[idx[i]].node,
                      "duplicate route name '%s' (first at line %d)",
                      c->routes[idx[i]].name, src[idx[first]].node->line);
    }
}

/* A route whose path, type and host equal earlier routes' can only win for
 * methods none of them takes; when they take all of its methods it is dead
 * configuration, almost always a copy-and-paste mistake. */
static void check_unreachable(pc_config *c, const route_src *src, size_t *idx,
                              pc_errors *err)
{
    sort_ctx ctx = {c->routes};
    size_t n = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        if (src[i].ok)
            idx[n++] = i;
    qsort_r(idx, n, sizeof *idx, cmp_match, &ctx);
    uint32_t seen = 0;
    int all = 0;
    for (size_t i = 0, first = 0; i < n; i++) {
        const pc_route *r = &c->routes[idx[i]], *f = &c->routes[idx[first]];
        if (i == 0 || r->exact != f->exact || strcmp(r->path, f->path) != 0 ||
            hostcmp(r->host, f->host) != 0) {
            first = i;
            seen = r->methods;
            all = r->methods == 0;
            continue;
        }
        if (all || (r->methods != 0 && (r->methods & ~seen) == 0))
            pc_errors_add(err, src[idx[i]].path,
                          "route '%s' can never be selected: earlier routes "
                          "with the same match (first '%s' at line %d) take "
                          "all its methods",
                          r->name, f->name, src[idx[first]].path->line);
        seen |= r->methods;
        all |= r->methods == 0;
    }
}

static void build_trie(pc_config *c, const route_src *src, pc_errors *err)
{
    char why[160];
    c->trie = pc_trie_new();
    for (size_t i = 0; i < c->nroutes; i++) {
        pc_route *r = &c->routes[i];
        if (!src[i].ok)
            continue;
        pc_trie_route tr = {.pattern = r->path,
                            .exact = r->exact,
                            .host = r->host,
                            .methods = r->methods,
                            .data = r};
        if (pc_trie_insert(c->trie, &tr, why, sizeof why) < 0)
            pc_errors_add(err, src[i].path, "invalid match.path '%s': %s",
                          r->path, why);
    }
}

void pc_config_read_routes(pc_config *c, const pc_node *seq, pc_errors *err)
{
    if (pc_node_expect_seq(seq, "routes", err) < 0)
        return;
    c->routes = pc_xcalloc(seq->n ? seq->n : 1, sizeof *c->routes);
    route_src *src = pc_xcalloc(seq->n ? seq->n : 1, sizeof *src);
    for (size_t i = 0; i < seq->n; i++) {
        const pc_node *n = seq->vals[i];
        if (pc_node_expect_map(n, "route", err) < 0)
            continue;
        size_t before = err->n;
        pc_route *r = &c->routes[c->nroutes];
        src[c->nroutes].node = n;
        src[c->nroutes].path = pc_node_get(pc_node_get(n, "match"), "path");
        r->index = c->nroutes++;
        read_route(c, r, n, err);
        /* A value with an unset ${NAME} was reported when the file was
         * read (before `before`) and its readers stay quiet: a route
         * without a path is not ok either. */
        src[r->index].ok = err->n == before && r->path != NULL;
    }
    size_t *idx = pc_xmalloc((c->nroutes ? c->nroutes : 1) * sizeof *idx);
    for (size_t i = 0; i < c->nroutes; i++)
        idx[i] = i;
    check_names(c, src, idx, err);
    check_unreachable(c, src, idx, err);
    free(idx);
    build_trie(c, src, err);
    free(src);
}

static void free_rules(pc_header_rules *h)
{
    for (size_t i = 0; i < h->nset; i++) {
        free(h->set[i].name);
        free(h->set[i].value);
    }
    free(h->set);
    for (size_t i = 0; i < h->nremove; i++)
        free(h->remove[i]);
    free(h->remove);
}

void pc_config_free_routes(pc_config *c)
{
    pc_trie_free(c->trie);
    c->trie = NULL;
    for (size_t i = 0; i < c->nroutes; i++) {
        pc_route *r = &c->routes[i];
        free(r->name);
        free(r->path);
        free(r->host);
        free(r->strip_prefix);
        free(r->rewrite);
        free_rules(&r->req_headers);
        free_rules(&r->resp_headers);
        if (c->hooks->free_route)
            c->hooks->free_route(r);
    }
    free(c->routes);
    c->routes = NULL;
    c->nroutes = 0;
}
