/* metrics_text.c: the Prometheus text exposition (format 0.0.4) of
 * GET /metrics: the text buffer, label-value escaping, exact decimal
 * seconds, and the families that need no registry (they are shown even
 * in a `make METRICS=0` build). Pure text: never reads a shard itself
 * (metrics.c renders the registry's families). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/metrics.h"
#include "portcullis/trie.h"
#include "portcullis/util.h"

static void grow(pc_mbuf *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->n)
        abort(); /* the exposition is a few KiB per route: never here */
    if (b->n + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    b->p = pc_xrealloc(b->p, cap);
    b->cap = cap;
}

void pc_mbuf_add(pc_mbuf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void pc_mbuf_printf(pc_mbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0)
        return; /* an encoding error: nothing sensible to append */
    grow(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

size_t pc_metrics_escape(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            out[n++] = '\\';
            out[n++] = *s;
        } else if (*s == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    return n;
}

void pc_metrics_fmt_seconds(char *out, size_t outlen, uint64_t ns)
{
    uint64_t sec = ns / 1000000000u, frac = ns % 1000000000u;
    if (!frac) {
        snprintf(out, outlen, "%" PRIu64, sec);
        return;
    }
    char f[10];
    snprintf(f, sizeof f, "%09" PRIu64, frac);
    size_t len = 9;
    while (len > 1 && f[len - 1] == '0')
        len--;
    f[len] = '\0';
    snprintf(out, outlen, "%" PRIu64 ".%s", sec, f);
}

static const char *const method_names[PC_METRICS_NMETHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
    "OTHER",
};

const char *pc_metrics_method_name(unsigned idx)
{
    return idx < PC_METRICS_NMETHODS ? method_names[idx]
                                     : method_names[PC_METRICS_METHOD_OTHER];
}

unsigned pc_metrics_method_index(uint32_t bit)
{
    static const uint32_t bits[] = {PC_M_GET,    PC_M_HEAD,   PC_M_POST,
                                    PC_M_PUT,    PC_M_DELETE, PC_M_PATCH,
                                    PC_M_OPTIONS, PC_M_TRACE};
    for (unsigned i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (bit == bits[i])
            return i;
    return PC_METRICS_METHOD_OTHER;
}

char *pc_metrics_render(const pc_metrics_gauges *g, size_t *len)
{
    pc_mbuf b = {0};
    grow(&b, 0);
    b.p[0] = '\0';
#ifndef PC_NO_METRICS
    pc_metrics_render_registry(&b);
#endif
    pc_mbuf_printf(&b,
                   "# HELP portcullis_connections_active Open client "
                   "connections.\n"
                   "# TYPE portcullis_connections_active gauge\n"
                   "portcullis_connections_active %ld\n"
                   "# HELP portcullis_log_dropped_total Access-log entries "
                   "dropped because a worker's ring was full.\n"
                   "# TYPE portcullis_log_dropped_total counter\n"
                   "portcullis_log_dropped_total %" PRIu64 "\n",
                   g->connections_active, g->log_dropped);
    if (g->ncircuits)
        pc_mbuf_printf(&b, "# HELP portcullis_circuit_state Circuit of each "
                           "upstream target: 0 closed, 1 half-open, 2 open.\n"
                           "# TYPE portcullis_circuit_state gauge\n");
    for (size_t i = 0; i < g->ncircuits; i++) {
        const pc_metrics_circuit *c = &g->circuits[i];
        char *u = pc_xmalloc(2 * strlen(c->upstream) + 1);
        char *t = pc_xmalloc(2 * strlen(c->target) + 1);
        pc_metrics_escape(u, c->upstream);
        pc_metrics_escape(t, c->target);
        pc_mbuf_printf(&b,
                       "portcullis_circuit_state{upstream=\"%s\",target=\"%s\"} "
                       "%d\n",
                       u, t, c->state);
        free(u);
        free(t);
    }
    *len = b.n;
    return b.p;
}
