/* trie_bench.c: micro-benchmark of the route trie (src/lib/trie.c). Builds
 * a table of 10 and one of 10,000 routes from the same realistic templates
 * and prints the nanoseconds per pc_trie_lookup for several kinds of
 * request path, to show that lookup cost follows path depth and not the
 * number of routes. Built and run by bench/trie_bench.sh; no I/O beyond
 * stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portcullis/trie.h"
#include "portcullis/util.h"

#define NTEMPLATES 5
#define NPATHS 1024

/* Route i uses template i % NTEMPLATES. */
static void make_pattern(int i, char *buf, size_t len, char *hostbuf,
                         size_t hostlen, int *exact, uint32_t *methods)
{
    hostbuf[0] = '\0';
    *methods = 0;
    switch (i % NTEMPLATES) {
    case 0: /* plain prefix, 3 segments */
        snprintf(buf, len, "/api/v%d/svc%d", 1 + i % 3, i);
        *exact = 0;
        break;
    case 1: /* exact with one param, 5 segments */
        snprintf(buf, len, "/api/v1/svc%d/items/{id}", i);
        *exact = 1;
        *methods = PC_M_GET | PC_M_HEAD | PC_M_PUT | PC_M_DELETE;
        break;
    case 2: /* two params, 5 segments */
        snprintf(buf, len, "/org/{org}/proj%d/tasks/{task}", i);
        *exact = 1;
        break;
    case 3: /* host-specific prefix */
        snprintf(hostbuf, hostlen, "tenant%d.example.com", i);
        snprintf(buf, len, "/");
        *exact = 0;
        break;
    default: /* deep static prefix, 6 segments */
        snprintf(buf, len, "/static/assets%d/img/icons/x/y", i);
        *exact = 0;
        break;
    }
}

typedef struct kind {
    const char *name;
    int tmpl;
    const char *fmt; /* %d: a route number of the template */
    int host;        /* send host "tenant%d.example.com" */
    uint32_t method;
    pc_trie_status want;
} kind;

static const kind kinds[] = {
    {"prefix, 3 seg + tail", 0, "/api/v%d/svc%d/orders/list", 0, PC_M_GET,
     PC_TRIE_FOUND},
    {"exact, 1 param", 1, "/api/v1/svc%d/items/12345", 0, PC_M_GET,
     PC_TRIE_FOUND},
    {"exact, 2 params", 2, "/org/acme/proj%d/tasks/99", 0, PC_M_GET,
     PC_TRIE_FOUND},
    {"host + prefix /", 3, "/anything/here", 1, PC_M_GET, PC_TRIE_FOUND},
    {"deep static, 8 seg", 4, "/static/assets%d/img/icons/x/y/z/a.png", 0,
     PC_M_GET, PC_TRIE_FOUND},
    {"405 (POST)", 1, "/api/v1/svc%d/items/1", 0, PC_M_POST,
     PC_TRIE_BAD_METHOD},
    {"404", 1, "/nope/%d/at/all", 0, PC_M_GET, PC_TRIE_NOT_FOUND},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

typedef struct query {
    char path[128];
    char host[64];
    size_t pathlen, hostlen;
} query;

static int pick_route(int nroutes, int tmpl, unsigned *seed)
{
    int per = (nroutes - tmpl + NTEMPLATES - 1) / NTEMPLATES;
    *seed = *seed * 1103515245u + 12345u;
    return tmpl + (int)((*seed >> 8) % (unsigned)per) * NTEMPLATES;
}

static void make_queries(const kind *k, int nroutes, query *q)
{
    unsigned seed = 42;
    for (int i = 0; i < NPATHS; i++) {
        int r = pick_route(nroutes, k->tmpl, &seed);
        if (k->tmpl == 0)
            snprintf(q[i].path, sizeof(q[i].path), k->fmt, 1 + r % 3, r);
        else
            snprintf(q[i].path, sizeof(q[i].path), k->fmt, r);
        q[i].hostlen = 0;
        if (k->host)
            q[i].hostlen = (size_t)snprintf(q[i].host, sizeof(q[i].host),
                                            "tenant%d.example.com", r);
        q[i].pathlen = strlen(q[i].path);
    }
}

static pc_trie *build(int n, char (*pats)[96], char (*hosts)[40], double *ms)
{
    uint64_t t0 = pc_now_ns();
    pc_trie *t = pc_trie_new();
    for (int i = 0; i < n; i++) {
        pc_trie_route r;
        int exact;
        uint32_t methods;
        make_pattern(i, pats[i], 96, hosts[i], 40, &exact, &methods);
        r.pattern = pats[i];
        r.exact = exact;
        r.host = hosts[i][0] ? hosts[i] : NULL;
        r.methods = methods;
        r.data = (void *)(intptr_t)(i + 1);
        char err[128];
        if (pc_trie_insert(t, &r, err, sizeof(err)) < 0) {
            fprintf(stderr, "insert %s: %s\n", pats[i], err);
            exit(1);
        }
    }
    *ms = (double)(pc_now_ns() - t0) / 1e6;
    return t;
}

/* Returns ns per lookup; checks every answer so the work cannot be
 * optimised away and a wrong table cannot produce a fast number. */
static double measure(const pc_trie *t, const kind *k, const query *q,
                      long iters)
{
    pc_trie_match m;
    unsigned long bad = 0;
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < iters; i++) {
        const query *x = &q[i & (NPATHS - 1)];
        pc_trie_status st =
            pc_trie_lookup(t, x->hostlen ? x->host : NULL, x->hostlen, x->path,
                           x->pathlen, k->method, &m);
        bad += st != k->want;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (bad) {
        fprintf(stderr, "%s: %lu unexpected answers\n", k->name, bad);
        exit(1);
    }
    double ns =
        (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    return ns / (double)iters;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    const int sizes[] = {10, 10000};
    static char pats[10000][96], hosts[10000][40];
    query *q = pc_xmalloc(NPATHS * sizeof(query));
    double res[2][NKINDS];

    for (int s = 0; s < 2; s++) {
        double ms;
        pc_trie *t = build(sizes[s], pats, hosts, &ms);
        printf("built %5d routes in %8.3f ms\n", sizes[s], ms);
        for (size_t k = 0; k < NKINDS; k++) {
            make_queries(&kinds[k], sizes[s], q);
            measure(t, &kinds[k], q, iters / 10); /* warm-up */
            res[s][k] = measure(t, &kinds[k], q, iters);
        }
        pc_trie_free(t);
    }
    printf("\n%-24s %14s %14s\n", "lookup (ns/op)", "10 routes",
           "10000 routes");
    for (size_t k = 0; k < NKINDS; k++)
        printf("%-24s %14.1f %14.1f\n", kinds[k].name, res[0][k], res[1][k]);
    printf("\n%ld lookups per cell, %d distinct paths cycled\n", iters, NPATHS);
    free(q);
    return 0;
}
