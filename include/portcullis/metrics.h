/* metrics.h: the metrics registry behind GET /metrics (CONTRACT §5) and the
 * Prometheus text exposition (format 0.0.4).
 *
 * DESIGN: every worker owns a shard (w->metrics) and is its only writer:
 * a counter is bumped with a relaxed atomic load and a relaxed store (two
 * plain movs on x86), never a read-modify-write, never a lock. The scraper
 * (the admin listener, main thread) reads every shard with relaxed loads
 * and sums them. A shard freed with its worker is first added into a
 * "retired" shard, so totals never go down.
 *
 *   worker 0 ─► shard 0 ─┐
 *   worker 1 ─► shard 1 ─┼─ summed at scrape ─► text 0.0.4
 *   (freed)  ─► retired ─┘       (main thread)
 *
 * Label values are bounded and stable across reloads. Route and upstream
 * names are interned into small integer ids, process-wide, when a
 * configuration loads successfully (pc_metrics_intern_config: a mutex
 * there, never on the request path); the id is stored in pc_route /
 * pc_upstream, so a name keeps its id (and its series) in every later
 * generation. Ids are never freed. At most PC_METRICS_MAX_IDS names per
 * kind: id 0 is "" (no route matched), the last id is the shared overflow
 * label "(other)" for names beyond the cap (logged once per kind).
 *
 * A shard keeps per id one entry (a histogram and a small table of sparse
 * counters) in a fixed table of lazily allocated fixed-size chunks: the
 * writer allocates a chunk the first time one of its ids is used and
 * publishes it with a release store; the scraper loads the pointer with
 * acquire, so nothing is ever reallocated under a reader.
 *
 * Adding a metric:
 *  - a counter family keyed by route or upstream (with up to two more
 *    labels of bounded values): add a PC_MC_* value below, a row in
 *    counter_families[] in metrics.c (name, help, key kind, label names
 *    and a label formatter), and call
 *    pc_metrics_count(w->metrics, PC_MC_X, id, a, b) where it happens
 *    (a < 1024, b < 65536: e.g. a result index, a status code);
 *  - a histogram over a new key kind: add a PC_MKEY_* kind and a row in
 *    kinds[] in metrics.c (label name, family name, help, bucket bounds);
 *  - a value owned elsewhere (a gauge of a per-process state, a counter
 *    kept by another thread): add it to pc_metrics_gauges (filled by the
 *    admin listener at scrape time) and to pc_metrics_render.
 *
 * `make METRICS=0` defines PC_NO_METRICS: every recording call below is an
 * empty inline function (chain.c then reads no clock either), the shard
 * is never allocated, and /metrics shows only what needs no registry
 * (portcullis_connections_active, portcullis_log_dropped_total,
 * portcullis_circuit_state). */
#ifndef PORTCULLIS_METRICS_H
#define PORTCULLIS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/util.h"

typedef struct pc_metrics_shard pc_metrics_shard;

/* Names interned per kind, "" and the overflow label included. */
#define PC_METRICS_MAX_IDS 4096
#define PC_METRICS_ID_NONE 0u
#define PC_METRICS_ID_OVERFLOW (PC_METRICS_MAX_IDS - 1u)
#define PC_METRICS_OVERFLOW_LABEL "(other)"

/* The `error` label of portcullis_rate_limit_redis_errors_total. */
enum {
    PC_METRICS_REDIS_TIMEOUT, /* no answer within redis.timeout */
    PC_METRICS_REDIS_DOWN,    /* no connection (down, reconnecting) */
    PC_METRICS_REDIS_ERROR,   /* an error reply, or a reply not understood */
    PC_METRICS_REDIS_N
};

/* Key kinds: each has its own id space and one histogram family. */
typedef enum {
    PC_MKEY_ROUTE,    /* portcullis_request_duration_seconds{route} */
    PC_MKEY_UPSTREAM, /* portcullis_upstream_duration_seconds{upstream} */
    PC_MKEY_STAGE,    /* portcullis_stage_duration_seconds{stage}; id =
                         index in the chain's stage table */
    PC_MKEY_N
} pc_metrics_key;

/* Counter families kept in the per-id sparse tables. */
typedef enum {
    PC_MC_REQUESTS, /* portcullis_requests_total{route,method,status}:
                       a = method index (PC_METRICS_METHOD_*), b = status */
    PC_MC_RATE_LIMITED, /* portcullis_rate_limited_total{route}: a = b = 0
                           (chain/ratelimit.c, one per 429) */
    PC_MC_REDIS_ERRORS, /* portcullis_rate_limit_redis_errors_total
                           {route,error}: a = PC_METRICS_REDIS_* (chain/
                           ratelimit.c, scope: cluster, one per decision
                           Redis did not make: on_error applied) */
    PC_MC_CACHE_REQUESTS, /* portcullis_cache_requests_total{route,result}:
                             a = 1 hit, 2 miss, 3 bypass (chain/cache.c) */
    PC_MC_N
} pc_metrics_counter;

/* Method label values: the standard methods, everything else "OTHER". */
enum {
    PC_METRICS_METHOD_GET,
    PC_METRICS_METHOD_HEAD,
    PC_METRICS_METHOD_POST,
    PC_METRICS_METHOD_PUT,
    PC_METRICS_METHOD_DELETE,
    PC_METRICS_METHOD_PATCH,
    PC_METRICS_METHOD_OPTIONS,
    PC_METRICS_METHOD_TRACE,
    PC_METRICS_METHOD_OTHER,
    PC_METRICS_NMETHODS
};
/* Index of a PC_M_* bit (trie.h); 0 or any other bit: OTHER. Pure. */
unsigned pc_metrics_method_index(uint32_t method_bit);
/* The label of a method index ("OTHER" when out of range). Pure. */
const char *pc_metrics_method_name(unsigned idx);

/* One target's circuit for portcullis_circuit_state{upstream,target}
 * (0 closed, 1 half-open, 2 open); the strings are borrowed. */
typedef struct pc_metrics_circuit {
    const char *upstream, *target;
    int state;
} pc_metrics_circuit;

/* The values the registry does not own, read by the admin listener. */
typedef struct pc_metrics_gauges {
    long connections_active; /* rt->connections */
    uint64_t log_dropped;    /* pc_logger_dropped */
    const pc_metrics_circuit *circuits; /* every target of the current
                                           generation (per-process state) */
    size_t ncircuits;
} pc_metrics_gauges;

/* The whole exposition, NUL-terminated, in a buffer the caller frees;
 * *len gets its length. Main thread (or any one thread at a time). */
char *pc_metrics_render(const pc_metrics_gauges *g, size_t *len);

/* Appends s as an exposition label value (backslash, double quote and
 * newline escaped as \\ \" \n) to out, which must have room for
 * 2 * strlen(s) + 1 bytes; returns the bytes written (NUL not counted).
 * Pure. */
size_t pc_metrics_escape(char *out, const char *s);

/* A growing text buffer (lib/metrics_text.c; pc_x* allocation). */
typedef struct pc_mbuf {
    char *p;
    size_t n, cap;
} pc_mbuf;
void pc_mbuf_add(pc_mbuf *b, const char *s, size_t n);
void pc_mbuf_printf(pc_mbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* ns as exact decimal seconds without trailing zeros ("0.0005", "2.5",
 * "10"), NUL-terminated, into out (at least 32 bytes). Pure. */
void pc_metrics_fmt_seconds(char *out, size_t outlen, uint64_t ns);

#ifndef PC_NO_METRICS

/* Histogram bucket bounds (nanoseconds, ascending, +Inf implied). */
#define PC_METRICS_MAX_BUCKETS 24
/* The bounds of a kind's histogram; *n gets their number. */
const uint64_t *pc_metrics_bounds(pc_metrics_key kind, size_t *n);
/* Index of the bucket an observation of ns falls in: the first bound
 * >= ns ("le"), or n for +Inf. Pure. */
size_t pc_metrics_bucket(const uint64_t *bounds, size_t n, uint64_t ns);

/* Returns name's id in kind (ROUTE or UPSTREAM), interning it the first
 * time; the same name always gets the same id. Past the cap: the overflow
 * id. Thread-safe (a mutex); never call it on the request path. */
uint32_t pc_metrics_intern(pc_metrics_key kind, const char *name);
/* 1 exactly once per kind: the first time a name got the overflow id (the
 * caller warns). Thread-safe. */
int pc_metrics_overflow_first(pc_metrics_key kind);
/* The chain's stage names, in table order (stage ids index them); set once
 * before the first scrape (the names are borrowed: static strings). */
void pc_metrics_set_stages(const char *const *names, unsigned n);

/* A worker's shard: created before the worker's thread starts, freed
 * after it ended (its counts go to the retired shard). */
pc_metrics_shard *pc_metrics_shard_new(void);
void pc_metrics_shard_free(pc_metrics_shard *s); /* NULL is a no-op */

/* Writer side: only the shard's owning thread. Out-of-range ids, kinds,
 * families or labels are ignored. */
void pc_metrics_observe(pc_metrics_shard *s, pc_metrics_key kind, uint32_t id,
                        uint64_t ns);
void pc_metrics_count(pc_metrics_shard *s, pc_metrics_counter fam, uint32_t id,
                      uint32_t a, uint32_t b);
/* At the end of a request (where its access-log entry is queued):
 * requests_total{route,method,status}, request_duration{route}, and
 * upstream_duration{upstream} when upstream_ns is not 0 (the request went
 * to an upstream and the attempt ended). status out of 0..999 counts as 0. */
void pc_metrics_request(pc_metrics_shard *s, uint32_t route_id, unsigned method,
                        int status, uint64_t duration_ns, uint32_t upstream_id,
                        uint64_t upstream_ns);
/* Time spent in chain stage `stage` (see chain.c for what is measured). */
static inline void pc_metrics_stage(pc_metrics_shard *s, unsigned stage,
                                    uint64_t ns)
{
    pc_metrics_observe(s, PC_MKEY_STAGE, stage, ns);
}
/* The clock stage timings use (monotonic ns). */
static inline uint64_t pc_metrics_clock(void)
{
    return pc_now_ns();
}

/* portcullis_config_reloads_total{result}; thread-safe. */
void pc_metrics_count_reload(int success);
/* portcullis_webhook_dropped_total (proxy/webhook.c); thread-safe. */
void pc_metrics_count_webhook_dropped(uint64_t n);
uint64_t pc_metrics_webhook_dropped(void);

/* Reader side, for the renderer and tests: the sums over every shard
 * (and the retired one). */
typedef struct pc_metrics_hist_sum {
    uint64_t bucket[PC_METRICS_MAX_BUCKETS + 1]; /* not cumulative; [n] = +Inf */
    uint64_t sum_ns, count;
} pc_metrics_hist_sum;
/* Number of ids interned in kind so far (ids are 0..n-1, plus the
 * overflow id when it was used); the name of an id, NULL when unknown. */
uint32_t pc_metrics_nids(pc_metrics_key kind);
const char *pc_metrics_id_name(pc_metrics_key kind, uint32_t id);
/* 1 when the id has any observation, and then its sums. */
int pc_metrics_hist_get(pc_metrics_key kind, uint32_t id,
                        pc_metrics_hist_sum *out);
/* One counter sum; and every non-zero (a, b, value) of a family for an id
 * in (a, b) order: returns how many, *out is caller-freed (NULL if 0). */
uint64_t pc_metrics_counter_get(pc_metrics_counter fam, uint32_t id,
                                uint32_t a, uint32_t b);
typedef struct pc_metrics_cval {
    uint32_t a, b;
    uint64_t value;
} pc_metrics_cval;
size_t pc_metrics_counter_list(pc_metrics_counter fam, uint32_t id,
                               pc_metrics_cval **out);
uint64_t pc_metrics_reloads(int success);

/* Renders the registry's families (and config_reloads_total) into the
 * growing buffer pc_metrics_render hands over. */
void pc_metrics_render_registry(pc_mbuf *b);

#else /* PC_NO_METRICS: recording compiled out */

static inline uint32_t pc_metrics_intern(pc_metrics_key kind, const char *name)
{
    (void)kind;
    (void)name;
    return PC_METRICS_ID_NONE;
}
static inline int pc_metrics_overflow_first(pc_metrics_key kind)
{
    (void)kind;
    return 0;
}
static inline void pc_metrics_set_stages(const char *const *names, unsigned n)
{
    (void)names;
    (void)n;
}
static inline pc_metrics_shard *pc_metrics_shard_new(void) { return NULL; }
static inline void pc_metrics_shard_free(pc_metrics_shard *s) { (void)s; }
static inline void pc_metrics_request(pc_metrics_shard *s, uint32_t route_id,
                                      unsigned method, int status,
                                      uint64_t duration_ns, uint32_t upstream_id,
                                      uint64_t upstream_ns)
{
    (void)s;
    (void)route_id;
    (void)method;
    (void)status;
    (void)duration_ns;
    (void)upstream_id;
    (void)upstream_ns;
}
static inline void pc_metrics_stage(pc_metrics_shard *s, unsigned stage,
                                    uint64_t ns)
{
    (void)s;
    (void)stage;
    (void)ns;
}
static inline uint64_t pc_metrics_clock(void) { return 0; }
static inline void pc_metrics_observe(pc_metrics_shard *s, pc_metrics_key kind,
                                      uint32_t id, uint64_t ns)
{
    (void)s;
    (void)kind;
    (void)id;
    (void)ns;
}
static inline void pc_metrics_count(pc_metrics_shard *s, pc_metrics_counter fam,
                                    uint32_t id, uint32_t a, uint32_t b)
{
    (void)s;
    (void)fam;
    (void)id;
    (void)a;
    (void)b;
}
static inline void pc_metrics_count_reload(int success) { (void)success; }
static inline void pc_metrics_count_webhook_dropped(uint64_t n) { (void)n; }
static inline uint64_t pc_metrics_webhook_dropped(void) { return 0; }

#endif

#endif
