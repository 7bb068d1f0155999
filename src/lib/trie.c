/* trie.c: the route table (trie.h): a trie whose edges are path segments,
 * built once per config generation and read-only afterwards. Owns its nodes,
 * the parsed copies of patterns, hosts and parameter names; borrows each
 * route's pattern string and data. Must never allocate, lock or write
 * during a lookup: workers share one trie without synchronisation.
 *
 * DESIGN
 *
 *   "/api/orders/{id}" exact, "/api" prefix, "/" prefix:
 *
 *   root ──"api"──► n1 ──"orders"──► n2 ──{param}──► n3
 *    │               │                                │
 *    prefix-more:"/" prefix:"/api"                    exact:"/api/orders/{id}"
 *
 * A node has its static children in a hash map keyed by the segment's bytes
 * and at most one {param} child (the parameter's name belongs to the route,
 * not to the edge, so "/u/{id}" and "/u/{name}/x" share it). Routes hang on
 * the node their last segment leads to, in one of three groups: exact,
 * prefix, and prefix-with-trailing-slash ("/api/" needs a '/' after "api").
 * A group files its routes by host: an exact host, a wildcard suffix
 * (".example.com" for "*.example.com") or none, so a lookup touches only
 * the routes of the request's own host.
 *
 * A lookup walks the path one segment at a time, trying the static child and
 * then the param child, and compares every matching route with the best so
 * far using the precedence of trie.h (route_cmp). All routes of one group
 * share a shape, so within a group the order is just host rank then file
 * order, which is the order the group's lists are scanned in. The work is
 * bounded by the path's depth (and, when patterns put {param} and static
 * edges side by side, by the edges that exist), never by the route count. */
#include "portcullis/trie.h"
#include "portcullis/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* ---- a string-keyed open-addressing map (keys owned, values uint32) ---- */

typedef struct sent {
    char *key; /* NULL: empty slot */
    uint32_t len, hash, val;
} sent;

typedef struct strmap {
    sent *slots;
    uint32_t cap, n; /* cap is 0 or a power of two */
    int ci;          /* keys compare case-insensitively (stored lower-case) */
} strmap;

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static uint32_t hash_bytes(const char *s, size_t len, int ci)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        h = (h ^ (ci ? lower(c) : c)) * 16777619u;
    }
    return h;
}

static int key_eq(const strmap *m, const sent *e, const char *k, size_t len)
{
    if (e->len != len)
        return 0;
    return m->ci ? pc_strieq(e->key, len, k, len) : memcmp(e->key, k, len) == 0;
}

static uint32_t strmap_get(const strmap *m, const char *k, size_t len)
{
    if (m->n == 0)
        return NONE;
    uint32_t h = hash_bytes(k, len, m->ci);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const sent *e = &m->slots[i];
        if (!e->key)
            return NONE;
        if (e->hash == h && key_eq(m, e, k, len))
            return e->val;
    }
}

static void strmap_place(strmap *m, sent e)
{
    uint32_t i = e.hash & (m->cap - 1);
    while (m->slots[i].key)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = e;
}

/* Adds a key that is not in the map yet. */
static void strmap_put(strmap *m, const char *k, size_t len, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        /* Load factor at most 1/2 keeps probe runs short. */
        sent *old = m->slots;
        uint32_t oldcap = m->cap;
        m->cap = oldcap ? oldcap * 2 : 4;
        m->slots = pc_xcalloc(m->cap, sizeof(sent));
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i].key)
                strmap_place(m, old[i]);
        free(old);
    }
    sent e = {pc_xstrndup(k, len), (uint32_t)len, hash_bytes(k, len, m->ci),
              val};
    if (m->ci)
        for (size_t i = 0; i < len; i++)
            e.key[i] = (char)lower((unsigned char)e.key[i]);
    strmap_place(m, e);
    m->n++;
}

static void strmap_free(strmap *m)
{
    for (uint32_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
}

/* ---- routes, groups, nodes ---- */

enum { HOST_EXACT, HOST_WILD, HOST_ANY };
enum { G_EXACT, G_PREFIX, G_PREFIX_MORE, G_N };

typedef struct route {
    pc_trie_route r;      /* the caller's description (pattern borrowed) */
    uint32_t index;       /* file order */
    uint32_t nsegs;       /* segments matched (trailing '/' of a prefix
                             pattern not counted: see needs_more) */
    uint32_t static_lead; /* static segments before the first {param} */
    int needs_more;       /* prefix "/api/": a '/' must follow "api" */
    int host_kind;        /* HOST_* */
    char *host_key;       /* lower-case "api.example.com" / ".example.com" */
    uint32_t host_len;
    uint32_t nparams;
    uint32_t param_pos[PC_TRIE_MAX_PARAMS]; /* segment index of each param */
    const char *names[PC_TRIE_MAX_PARAMS];  /* owned */
} route;

typedef struct rlist {
    route **v;
    uint32_t n, cap;
} rlist;

typedef struct group {
    rlist any;    /* host-less routes, file order */
    strmap hosts; /* host key -> index into lists */
    rlist *lists; /* routes of one host key, file order */
    uint32_t nlists;
} group;

typedef struct tnode {
    strmap kids;    /* static segment -> node index */
    uint32_t param; /* {param} child or NONE */
    group *g[G_N];
} tnode;

struct pc_trie {
    tnode *nodes; /* nodes[0] is the root ('/') */
    uint32_t n, cap;
    route **routes; /* insertion order */
    uint32_t nroutes, caproutes;
};

static void rlist_push(rlist *l, route *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 2;
        l->v = pc_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = r;
}

static uint32_t node_new(pc_trie *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->nodes = pc_xrealloc(t->nodes, t->cap * sizeof(tnode));
    }
    tnode *n = &t->nodes[t->n];
    memset(n, 0, sizeof(*n));
    n->param = NONE;
    return t->n++;
}

pc_trie *pc_trie_new(void)
{
    pc_trie *t = pc_xcalloc(1, sizeof(*t));
    node_new(t);
    return t;
}

static void group_free(group *g)
{
    if (!g)
        return;
    free(g->any.v);
    for (uint32_t i = 0; i < g->nlists; i++)
        free(g->lists[i].v);
    free(g->lists);
    strmap_free(&g->hosts);
    free(g);
}

static void route_free(route *r)
{
    for (uint32_t i = 0; i < r->nparams; i++)
        free((char *)r->names[i]);
    free(r->host_key);
    free(r);
}

void pc_trie_free(pc_trie *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        strmap_free(&t->nodes[i].kids);
        for (int k = 0; k < G_N; k++)
            group_free(t->nodes[i].g[k]);
    }
    for (uint32_t i = 0; i < t->nroutes; i++)
        route_free(t->routes[i]);
    free(t->nodes);
    free(t->routes);
    free(t);
}

/* ---- methods ---- */

static const char *const method_names[] = {
    "GET",   "HEAD",    "POST",  "PUT",     "DELETE",
    "PATCH", "OPTIONS", "TRACE", "CONNECT",
};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))

uint32_t pc_method_bit(const char *m, size_t len)
{
    /* Method tokens are case-sensitive (RFC 9110 §9.1): "get" is OTHER. */
    for (size_t i = 0; i < N_METHODS; i++)
        if (strlen(method_names[i]) == len &&
            memcmp(method_names[i], m, len) == 0)
            return 1u << i;
    return PC_M_OTHER;
}

char *pc_methods_format(uint32_t mask, char *buf, size_t len)
{
    size_t off = 0;

    if (!buf || len == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < N_METHODS; i++) {
        if (!(mask & (1u << i)))
            continue;
        size_t need = strlen(method_names[i]) + (off ? 2 : 0);
        if (off + need >= len)
            break; /* never a partial name */
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                                method_names[i]);
    }
    return buf;
}

/* ---- patterns ---- */


typedef struct pseg {
    int param;
    uint32_t off, len; /* into ppat.buf: normalised text, or the name */
} pseg;

typedef struct ppat {
    char *buf;
    pseg *segs;
    uint32_t nsegs, nparams;
    int needs_more;
} ppat;

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

static int parse_param(const char *raw, size_t len, ppat *p, uint32_t *bo,
                       char *err, size_t errlen)
{
    const char *name = raw + 1;
    size_t nlen = len - 2;

    if (len < 2 || raw[len - 1] != '}')
        return pc_errf(err, errlen, "'{' inside a segment");
    if (nlen == 0)
        return pc_errf(err, errlen, "empty {}");
    for (size_t i = 0; i < nlen; i++) {
        if (name[i] == '{' || name[i] == '}')
            return pc_errf(err, errlen, "'{' inside a segment");
        if (!is_name_char((unsigned char)name[i]))
            return pc_errf(err, errlen, "invalid parameter name '%.*s'", (int)nlen,
                        name);
    }
    if (p->nparams == PC_TRIE_MAX_PARAMS)
        return pc_errf(err, errlen, "too many parameters (at most %d)",
                    PC_TRIE_MAX_PARAMS);
    for (uint32_t i = 0; i < p->nsegs; i++)
        if (p->segs[i].param && p->segs[i].len == nlen &&
            memcmp(p->buf + p->segs[i].off, name, nlen) == 0)
            return pc_errf(err, errlen, "duplicate parameter '%.*s'", (int)nlen,
                        name);
    memcpy(p->buf + *bo, name, nlen);
    p->segs[p->nsegs++] = (pseg){1, *bo, (uint32_t)nlen};
    p->nparams++;
    *bo += (uint32_t)nlen;
    return 0;
}

/* A static segment is stored the way pc_path_normalize would leave it
 * (unreserved %XX decoded, other %XX in upper case), since that is the form
 * request paths have when they are matched against it. */
static int parse_static(const char *raw, size_t len, ppat *p, uint32_t *bo,
                        char *err, size_t errlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = p->buf + *bo;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '{')
            return pc_errf(err, errlen, "'{' inside a segment");
        if (c == '}')
            return pc_errf(err, errlen, "'}' without '{'");
        if (c < 0x21 || c == 0x7F || c == '#' || c == '?')
            return pc_errf(err, errlen, "invalid character 0x%02X in pattern", c);
        if (c != '%') {
            o[n++] = (char)c;
            continue;
        }
        int hi = i + 2 < len ? hexval((unsigned char)raw[i + 1]) : -1;
        int lo = i + 2 < len ? hexval((unsigned char)raw[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return pc_errf(err, errlen, "'%%' not followed by two hex digits");
        unsigned char v = (unsigned char)(hi << 4 | lo);
        i += 2;
        if (is_unreserved(v)) {
            o[n++] = (char)v;
        } else {
            o[n++] = '%';
            o[n++] = hex[hi];
            o[n++] = hex[lo];
        }
    }
    if ((n == 1 && o[0] == '.') || (n == 2 && o[0] == '.' && o[1] == '.'))
        return pc_errf(err, errlen,
                    "dot segment '%.*s' in pattern (request paths are "
                    "normalised and never contain one)",
                    (int)n, o);
    p->segs[p->nsegs++] = (pseg){0, *bo, (uint32_t)n};
    *bo += (uint32_t)n;
    return 0;
}

static void ppat_free(ppat *p)
{
    free(p->buf);
    free(p->segs);
}

/* Splits and checks a pattern. For a prefix pattern, a trailing '/' is not
 * an empty last segment but the needs_more flag: "/api/" matches what lies
 * under "/api/", and "/" as a prefix matches every path. */
static int parse_pattern(const char *pat, int exact, ppat *p, char *err,
                         size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!pat || pat[0] != '/')
        return pc_errf(err, errlen, "must start with '/'");
    size_t plen = strlen(pat), nslash = 0;
    for (size_t i = 0; i < plen; i++)
        nslash += pat[i] == '/';
    p->buf = pc_xmalloc(plen + 1);
    p->segs = pc_xmalloc(nslash * sizeof(pseg));
    uint32_t bo = 0;
    const char *s = pat + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int rc = len > 0 && s[0] == '{'
                     ? parse_param(s, len, p, &bo, err, errlen)
                     : parse_static(s, len, p, &bo, err, errlen);
        if (rc < 0) {
            ppat_free(p);
            return -1;
        }
        if (!e)
            break;
        s = e + 1;
    }
    pseg *last = &p->segs[p->nsegs - 1];
    if (!exact && !last->param && last->len == 0) {
        p->nsegs--;
        p->needs_more = 1;
    }
    return 0;
}

int pc_trie_check_pattern(const char *pattern, char *err, size_t errlen)
{
    ppat p;

    if (parse_pattern(pattern, 1, &p, err, errlen) < 0)
        return -1;
    ppat_free(&p);
    return 0;
}

/* ---- insertion ---- */

/* Fills r's host fields from the configured host. */
static int parse_host(const char *host, route *r, char *err, size_t errlen)
{
    if (!host) {
        r->host_kind = HOST_ANY;
        return 0;
    }
    size_t len = strlen(host);
    if (len > 0 && host[len - 1] == '.')
        len--; /* "example.com." is the same name */
    int wild = len >= 2 && host[0] == '*' && host[1] == '.';
    const char *key = wild ? host + 1 : host; /* keep the '.' */
    size_t klen = wild ? len - 1 : len;
    if (klen == 0 || (wild && klen == 1))
        return pc_errf(err, errlen, "empty host");
    if (memchr(key, '*', klen))
        return pc_errf(err, errlen,
                    "'*' is allowed only as the whole first "
                    "label, as in *.example.com");
    /* An empty label would also make an exact key look like a wildcard
     * key (which keeps its leading '.'). */
    const char *name = wild ? key + 1 : key;
    size_t nlen = wild ? klen - 1 : klen;
    if (name[0] == '.' || memmem(name, nlen, "..", 2))
        return pc_errf(err, errlen, "empty label in host '%s'", host);
    r->host_kind = wild ? HOST_WILD : HOST_EXACT;
    r->host_key = pc_xstrndup(key, klen);
    for (size_t i = 0; i < klen; i++)
        r->host_key[i] = (char)lower((unsigned char)r->host_key[i]);
    r->host_len = (uint32_t)klen;
    return 0;
}

static void group_add(group *g, route *r)
{
    if (r->host_kind == HOST_ANY) {
        rlist_push(&g->any, r);
        return;
    }
    uint32_t li = strmap_get(&g->hosts, r->host_key, r->host_len);
    if (li == NONE) {
        li = g->nlists++;
        g->lists = pc_xrealloc(g->lists, g->nlists * sizeof(rlist));
        memset(&g->lists[li], 0, sizeof(rlist));
        strmap_put(&g->hosts, r->host_key, r->host_len, li);
    }
    rlist_push(&g->lists[li], r);
}

/* Walks (and extends) the trie along the pattern; returns the last node. */
static uint32_t walk_create(pc_trie *t, const ppat *p)
{
    uint32_t cur = 0;

    for (uint32_t i = 0; i < p->nsegs; i++) {
        const pseg *s = &p->segs[i];
        uint32_t next =
            s->param ? t->nodes[cur].param
                     : strmap_get(&t->nodes[cur].kids, p->buf + s->off, s->len);
        if (next == NONE) {
            next = node_new(t); /* may move t->nodes: index again below */
            if (s->param)
                t->nodes[cur].param = next;
            else
                strmap_put(&t->nodes[cur].kids, p->buf + s->off, s->len, next);
        }
        cur = next;
    }
    return cur;
}

int pc_trie_insert(pc_trie *t, const pc_trie_route *r, char *err, size_t errlen)
{
    ppat p;

    if (parse_pattern(r->pattern, r->exact, &p, err, errlen) < 0)
        return -1;
    route *rt = pc_xcalloc(1, sizeof(*rt));
    rt->r = *r;
    rt->r.exact = r->exact ? 1 : 0;
    if (parse_host(r->host, rt, err, errlen) < 0) {
        ppat_free(&p);
        free(rt);
        return -1;
    }
    rt->index = t->nroutes;
    rt->nsegs = p.nsegs;
    rt->needs_more = p.needs_more;
    rt->static_lead = p.nsegs;
    for (uint32_t i = 0; i < p.nsegs; i++) {
        if (!p.segs[i].param)
            continue;
        if (rt->nparams == 0)
            rt->static_lead = i;
        rt->param_pos[rt->nparams] = i;
        rt->names[rt->nparams++] =
            pc_xstrndup(p.buf + p.segs[i].off, p.segs[i].len);
    }
    uint32_t node = walk_create(t, &p);
    ppat_free(&p);

    int gk =
        rt->r.exact ? G_EXACT : (rt->needs_more ? G_PREFIX_MORE : G_PREFIX);
    tnode *n = &t->nodes[node];
    if (!n->g[gk]) {
        n->g[gk] = pc_xcalloc(1, sizeof(group));
        n->g[gk]->hosts.ci = 1;
    }
    group_add(n->g[gk], rt);
    if (t->nroutes == t->caproutes) {
        t->caproutes = t->caproutes ? t->caproutes * 2 : 16;
        t->routes = pc_xrealloc(t->routes, t->caproutes * sizeof(route *));
    }
    t->routes[t->nroutes++] = rt;
    return 0;
}

/* ---- precedence ---- */

static int host_rank(const route *r)
{
    return r->host_kind;
}

/* <0 when a goes before b (trie.h "Precedence"); a total order, so that
 * foreach can sort with it and a lookup can keep the smallest. */
static int route_cmp(const route *a, const route *b)
{
    if (a->r.exact != b->r.exact)
        return a->r.exact ? -1 : 1;
    if (a->static_lead != b->static_lead)
        return a->static_lead > b->static_lead ? -1 : 1;
    /* Shapes from the left: the first segment where only one of them has
     * a {param} decides (static first); otherwise the longer one first. */
    uint32_t i = 0, j = 0;
    while (i < a->nparams && j < b->nparams &&
           a->param_pos[i] == b->param_pos[j]) {
        i++;
        j++;
    }
    uint32_t pa = i < a->nparams ? a->param_pos[i] : NONE;
    uint32_t pb = j < b->nparams ? b->param_pos[j] : NONE;
    uint32_t first = pa < pb ? pa : pb;
    uint32_t minsegs = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
    if (first < minsegs)
        return pa == first ? 1 : -1;
    if (a->nsegs != b->nsegs)
        return a->nsegs > b->nsegs ? -1 : 1;
    if (a->needs_more != b->needs_more)
        return a->needs_more ? -1 : 1;
    if (host_rank(a) != host_rank(b))
        return host_rank(a) < host_rank(b) ? -1 : 1;
    if (a->host_kind == HOST_WILD && a->host_len != b->host_len)
        return a->host_len > b->host_len ? -1 : 1;
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return 0;
}

/* ---- lookup ---- */

typedef struct lctx {
    const pc_trie *t;
    const char *host;
    size_t hostlen;
    const char *path;
    size_t pathlen;
    uint32_t method;
    pc_trie_span spans[PC_TRIE_MAX_PARAMS]; /* params on the current walk */
    uint32_t nspans;
    const route *best;
    pc_trie_match *m;
    uint32_t allow; /* union of methods of path+host matches */
    int matched;    /* some route matched path and host */
} lctx;

static int allows(const route *r, uint32_t method)
{
    return r->r.methods == 0 || (r->r.methods & method) != 0;
}

/* Scans one list (already in precedence order). Returns 1 when a route
 * allowed the method: the rest of the list can only rank lower. */
static int consider_list(lctx *c, const rlist *l, uint32_t matched_len)
{
    for (uint32_t i = 0; i < l->n; i++) {
        const route *r = l->v[i];
        c->matched = 1;
        if (!allows(r, c->method)) {
            c->allow |= r->r.methods;
            continue;
        }
        if (!c->best || route_cmp(r, c->best) < 0) {
            c->best = r;
            c->m->data = r->r.data;
            c->m->matched_len = matched_len;
            c->m->nparams = c->nspans;
            memcpy(c->m->params, c->spans, c->nspans * sizeof(c->spans[0]));
            c->m->param_names = r->names;
        }
        return 1;
    }
    return 0;
}

static void consider_group(lctx *c, const group *g, size_t matched_len)
{
    uint32_t ml = (uint32_t)matched_len;

    if (c->hostlen > 0 && g->nlists > 0) {
        uint32_t li = NONE;
        if (c->host[0] != '.') /* never equal to a wildcard's key */
            li = strmap_get(&g->hosts, c->host, c->hostlen);
        if (li != NONE && consider_list(c, &g->lists[li], ml))
            return;
        /* Wildcards, longest suffix first: at least one label must stand
         * before the suffix, so the search starts at index 1. */
        for (size_t i = 1; i < c->hostlen; i++) {
            if (c->host[i] != '.')
                continue;
            li = strmap_get(&g->hosts, c->host + i, c->hostlen - i);
            if (li != NONE && consider_list(c, &g->lists[li], ml))
                return;
        }
    }
    consider_list(c, &g->any, ml);
}

/* pos is the offset of the '/' that starts the next segment, or pathlen
 * when the node consumed the whole path. */
static void visit(lctx *c, uint32_t ni, size_t pos)
{
    const tnode *n = &c->t->nodes[ni];
    int more = pos < c->pathlen;

    if (!more && n->g[G_EXACT])
        consider_group(c, n->g[G_EXACT], pos);
    if (n->g[G_PREFIX])
        consider_group(c, n->g[G_PREFIX], pos);
    if (more && n->g[G_PREFIX_MORE])
        consider_group(c, n->g[G_PREFIX_MORE], pos + 1);
    if (!more)
        return;
    size_t start = pos + 1;
    const char *slash = memchr(c->path + start, '/', c->pathlen - start);
    size_t end = slash ? (size_t)(slash - c->path) : c->pathlen;
    uint32_t k = strmap_get(&n->kids, c->path + start, end - start);
    if (k != NONE)
        visit(c, k, end);
    if (n->param != NONE && end > start && c->nspans < PC_TRIE_MAX_PARAMS) {
        c->spans[c->nspans++] =
            (pc_trie_span){(uint32_t)start, (uint32_t)(end - start)};
        visit(c, n->param, end);
        c->nspans--;
    }
}

pc_trie_status pc_trie_lookup(const pc_trie *t, const char *host,
                              size_t hostlen, const char *path, size_t pathlen,
                              uint32_t method, pc_trie_match *m)
{
    lctx c;

    memset(m, 0, sizeof(*m));
    if (!t || !path || pathlen == 0 || path[0] != '/')
        return PC_TRIE_NOT_FOUND;
    if (!host)
        hostlen = 0;
    if (hostlen > 0 && host[hostlen - 1] == '.')
        hostlen--;
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.host = host;
    c.hostlen = hostlen;
    c.path = path;
    c.pathlen = pathlen;
    c.method = method;
    c.m = m;
    visit(&c, 0, 0);
    if (c.best)
        return PC_TRIE_FOUND;
    if (c.matched) {
        m->allow = c.allow;
        return PC_TRIE_BAD_METHOD;
    }
    return PC_TRIE_NOT_FOUND;
}

/* ---- listing ---- */

static int route_qcmp(const void *a, const void *b)
{
    return route_cmp(*(route *const *)a, *(route *const *)b);
}

void pc_trie_foreach(const pc_trie *t, void (*fn)(void *data, void *ctx),
                     void *ctx)
{
    if (!t || t->nroutes == 0)
        return;
    route **v = pc_xmalloc(t->nroutes * sizeof(*v));
    memcpy(v, t->routes, t->nroutes * sizeof(*v));
    qsort(v, t->nroutes, sizeof(*v), route_qcmp);
    for (uint32_t i = 0; i < t->nroutes; i++)
        fn(v[i]->r.data, ctx);
    free(v);
}
