/* cache_store.h: the HTTP cache (CONTRACT §2 `cache`, §3 step 8, §4) — the
 * RFC 9111 rules as pure functions (lib/cache_rules.c: Cache-Control
 * parsing, HTTP dates, freshness and age arithmetic, Vary normalisation)
 * and the process-wide memory store (lib/cache_store.c). The chain stage
 * that uses them is chain/cache.c.
 *
 * DESIGN of the store: one store per process, shared by every worker and
 * kept across reloads (like the rate-limit buckets). PC_CACHE_SHARDS
 * shards, each a mutex, a chained hash index and two LRU lists (segmented
 * LRU): a new object enters the probationary segment; a hit on a
 * probationary object promotes it to the protected segment (at most 80% of
 * the shard's share of the budget; its tail is demoted back). Eviction
 * takes the probationary tail first, so a scan of objects requested once
 * never pushes out objects that were hit. The byte budget is one atomic
 * counter for the whole process; an insert that pushes it over evicts
 * from its own shard first, then from the others in turn, holding one
 * shard lock at a time. A hit takes only its shard's lock.
 *
 * Objects are immutable once inserted and reference counted (atomic): a
 * lookup returns a reference, so an object being served is never freed
 * under the server even when it is evicted or purged meanwhile. The body
 * is a separate reference-counted block, so a 304 that refreshes an
 * object's headers (RFC 9111 §4.3.4) makes a new object that shares the
 * body: bodies are stored once.
 *
 * Per-object overhead beyond the body: sizeof(pc_cobj) + sizeof(pc_cbody)
 * (272 bytes on x86-64) plus the key, route name, path, the stored header
 * fields (names, values, one pc_chdr each) and the Vary values: the
 * object's charge (pc_cobj.charge) counts all of it, so the budget bounds
 * real memory, not just bodies. */
#ifndef PORTCULLIS_CACHE_STORE_H
#define PORTCULLIS_CACHE_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Cache-Control (RFC 9111 §5.2) ------------------------------------ */

/* delta-seconds saturate at 2^31 (RFC 9111 §1.2.2). */
#define PC_CC_DELTA_MAX 2147483648LL
#define PC_CC_ABSENT (-1LL)

typedef struct pc_cc {
    unsigned no_store : 1, no_cache : 1, private_ : 1, public_ : 1,
        must_revalidate : 1, proxy_revalidate : 1, only_if_cached : 1,
        no_transform : 1, max_stale_any : 1, invalid : 1;
    /* seconds, or PC_CC_ABSENT */
    long long max_age, s_maxage, max_stale, min_fresh, swr, sie;
} pc_cc;

void pc_cc_init(pc_cc *cc);
/* Adds the directives of one Cache-Control field value (call once per
 * field line; a directive seen again keeps its first value, RFC 9111
 * §4.2.1). Unknown directives are ignored (§5.2.3). A duration that is
 * not delta-seconds sets the directive to 0 (the response is then
 * stale: the conservative reading of §4.2.1) and `invalid`. */
void pc_cc_parse(pc_cc *cc, const char *v, size_t n);
/* delta-seconds (RFC 9111 §1.2.2): 1*DIGIT, optionally quoted; larger
 * values saturate at PC_CC_DELTA_MAX. -1 when not delta-seconds. */
long long pc_cc_delta(const char *s, size_t n);

/* ---- HTTP dates (RFC 9110 §5.6.7) ------------------------------------- */

/* IMF-fixdate, obsolete RFC 850 and asctime forms; seconds since the
 * epoch, or -1 when invalid. */
long long pc_http_date_parse(const char *s, size_t n);
/* IMF-fixdate into out (at least 30 bytes). */
void pc_http_date_format(long long t, char *out);

/* ---- freshness and age (RFC 9111 §4.2) -------------------------------- */

typedef struct pc_cache_times {
    long long request_time;  /* when the request went upstream */
    long long response_time; /* when the response head arrived */
    long long date_value;    /* Date, or response_time when absent */
    long long age_value;     /* Age, 0 when absent */
} pc_cache_times;

/* §4.2.3 current_age at now (seconds, saturating, never negative). */
long long pc_cache_current_age(const pc_cache_times *t, long long now);

/* Freshness lifetime for a shared cache (§4.2.1): s-maxage, else
 * max-age, else Expires - Date (expires: -1 absent, -2 invalid → 0), else
 * the heuristic default_ttl (§4.2.2, only when `heuristic_ok`), else 0.
 * *explicit_ set when the origin gave one. */
long long pc_cache_freshness(const pc_cc *cc, long long expires,
                             long long date_value, long long default_ttl,
                             int heuristic_ok, int *explicit_);

/* §4.2.2: status codes heuristically cacheable (RFC 9110 §15.1). */
int pc_cache_status_heuristic(int status);

/* ---- Vary (RFC 9111 §4.1) --------------------------------------------- */

/* Normalises one request header's value(s) for a Vary match: the field
 * lines joined with ",", optional whitespace around each element dropped,
 * runs of whitespace inside collapsed to one space; for Accept-Encoding,
 * Accept-Language and Accept-Charset elements also lower-cased (their
 * tokens are case-insensitive). out gets at most cap-1 bytes + NUL;
 * returns the length, or -1 when it does not fit. vals/lens: the field
 * lines, n of them (0: absent, normalised to ""). */
int pc_cache_vary_norm(const char *name, const char *const *vals,
                       const size_t *lens, size_t n, char *out, size_t cap);

/* ---- the store (lib/cache_store.c) ------------------------------------ */

#define PC_CACHE_SHARDS 16
#define PC_CACHE_CODINGS 4

typedef struct pc_cbody {
    _Atomic uint32_t refs;
    size_t len;
    char data[];
} pc_cbody;

typedef struct pc_chdr {
    const char *name, *value;
    uint32_t nlen, vlen;
} pc_chdr;

typedef struct pc_cobj pc_cobj;
struct pc_cobj {
    _Atomic uint32_t refs;
    uint64_t hash;         /* of key */
    const char *key;       /* "host path?query" */
    size_t klen;
    const char *route;     /* route name (purge) */
    const char *path;      /* path without query (purge) */
    /* Vary: nvary (name, normalised value) pairs; vary names lower case */
    const char *const *vary_names;
    const char *const *vary_vals;
    uint32_t nvary;
    int status;
    const pc_chdr *hdrs;
    uint32_t nhdrs;
    pc_cbody *body;
    pc_cache_times t;
    long long lifetime;    /* freshness lifetime, seconds */
    long long swr, sie;    /* RFC 5861 windows, -1 when absent */
    unsigned no_cache : 1;        /* always revalidate (§5.2.2.4) */
    unsigned must_revalidate : 1; /* must-revalidate / proxy-revalidate /
                                     s-maxage: never served stale */
    const char *etag, *last_modified; /* validators, or NULL */
    /* The body in each content coding (index: pc_enc of encoding.h; 0,
     * identity, unused), made once by the compress stage from a hit or
     * the miss that stored the object and served as they are afterwards:
     * set once (never replaced) and freed with the object. */
    _Atomic(pc_cbody *) coded[PC_CACHE_CODINGS];
    size_t charge;         /* bytes counted against the budget */
    _Atomic int revalidating; /* stale-while-revalidate: one at a time */
    /* store linkage, under the shard lock */
    pc_cobj *hnext, *prev, *next;
    uint8_t seg;           /* 0 none, 1 probation, 2 protected */
    uint8_t shard;
    _Alignas(16) char mem[]; /* arrays, then strings */
};

uint64_t pc_cache_hash(const char *key, size_t klen);

/* A new object: copies everything given into one allocation (the body is
 * attached later with pc_cache_obj_set_body, or shared). refs = 1. */
pc_cobj *pc_cache_obj_new(const char *key, size_t klen, const char *route,
                          const char *path, const char *const *vary_names,
                          const char *const *vary_vals, uint32_t nvary,
                          int status, const pc_chdr *hdrs, uint32_t nhdrs);
/* Takes a reference to body (NULL: no body). */
void pc_cache_obj_set_body(pc_cobj *o, pc_cbody *body);
pc_cbody *pc_cache_body_new(const char *data, size_t len);
void pc_cache_body_unref(pc_cbody *b);
/* The body of o in content coding `coding` (1..PC_CACHE_CODINGS-1), or
 * NULL; valid while o is referenced. */
const pc_cbody *pc_cache_obj_coded(const pc_cobj *o, unsigned coding);
/* Attaches b (the store takes a reference) as o's body in `coding` when
 * o is in the store and has none yet; its bytes are charged to o and the
 * budget enforced. 1 when attached. */
int pc_cache_obj_add_coded(pc_cobj *o, unsigned coding, pc_cbody *b,
                           uint64_t budget);
/* Before dst is inserted: dst holds src's coded bodies too (a 304 that
 * refreshes the head keeps the body, so its codings still hold). */
void pc_cache_obj_share_coded(pc_cobj *dst, const pc_cobj *src);
void pc_cache_obj_ref(pc_cobj *o);
void pc_cache_obj_unref(pc_cobj *o);

/* The process-wide store (created on first use). budget: bytes. */
/* Lookup: the object of key whose Vary values match (match(o, ctx) != 0);
 * a reference (pc_cache_obj_unref it) or NULL. Counts as a hit for the
 * eviction order. */
pc_cobj *pc_cache_lookup(const char *key, size_t klen, uint64_t hash,
                         int (*match)(const pc_cobj *o, void *ctx),
                         void *ctx);
/* Inserts o (the store takes its own reference), replacing an object of
 * the same key with the same Vary names and values; then evicts until the
 * store is within budget. An object larger than the budget is refused
 * (0); 1 when stored. */
int pc_cache_insert(pc_cobj *o, uint64_t budget);
/* Removes every object of key (every Vary variant); how many. */
size_t pc_cache_invalidate(const char *key, size_t klen, uint64_t hash);
/* Removes the objects of route (NULL: any) and path (NULL: any); how
 * many. */
size_t pc_cache_purge(const char *route, const char *path);
/* Purge rules: a purge also marks (route, path, at) — NULL: any — so
 * that an object stored elsewhere before it (a Redis entry, written by
 * any instance) is not taken back into this process: pc_cache_purged
 * says 1 for an object of route and path whose response arrived at or
 * before a matching rule. Rules older than PC_CACHE_RULE_TTL_S before
 * `now` are dropped (no Redis entry lives that long); past
 * PC_CACHE_RULES they collapse into one rule for everything at the
 * newest time (more misses, never a purged object back). */
#define PC_CACHE_RULES 256
#define PC_CACHE_RULE_TTL_S (2 * 86400LL)
void pc_cache_purge_rule_add(const char *route, const char *path,
                             long long now);
int pc_cache_purged(const char *route, const char *path, long long stored_at);
/* Bytes charged now, objects stored. */
uint64_t pc_cache_used(void);
size_t pc_cache_count(void);
/* Frees everything (process exit; no other thread may use the store). */
void pc_cache_shutdown(void);

/* ---- request collapsing (lib/cache_store.c) --------------------------- */

/* A waiter: its wake(arg) is called once, from the thread that finishes
 * the leader, unless it was removed (pc_cache_flight_leave) first. */
typedef struct pc_cache_waiter pc_cache_waiter;
struct pc_cache_waiter {
    void (*wake)(pc_cache_waiter *w);
    pc_cache_waiter *next;
    void *flight; /* set while queued (store-owned) */
};

/* 1: the caller leads (it goes upstream and must call
 * pc_cache_flight_done); 0: w was queued behind the leader of key. */
int pc_cache_flight_join(const char *key, size_t klen, uint64_t hash,
                         pc_cache_waiter *w);
/* The leader of key is done (stored or not): every queued waiter's wake
 * is called (after the lock is dropped). */
void pc_cache_flight_done(const char *key, size_t klen, uint64_t hash);
/* Removes w from its queue; 1 when it was still queued (wake will not be
 * called), 0 when it was already handed to wake. */
int pc_cache_flight_leave(pc_cache_waiter *w, uint64_t hash);

/* ---- the Redis form of an object (lib/cache_wire.c) ------------------- */

/* Bounds of what a decoded object may hold (a Redis entry is untrusted):
 * any one length, Vary pairs, Vary value length (NUL included), header
 * fields. */
#define PC_CACHE_WIRE_MAX (64ull << 20)
#define PC_CACHE_WIRE_MAX_VARY 8
#define PC_CACHE_WIRE_VARY_VALUE 512
#define PC_CACHE_WIRE_MAX_HDRS 128

/* o (status, header fields, Vary, times, freshness, body) as one string
 * (malloc, *len bytes; the key is included, not the route or path). */
char *pc_cache_obj_encode(const pc_cobj *o, size_t *len);
/* The object of a pc_cache_obj_encode string, for key (which must be the
 * one encoded), with the given route and path (purge); refs = 1. NULL
 * when the string is not well formed, a number is out of range, a header
 * field is not clean or the key differs: a corrupt entry is a miss. */
pc_cobj *pc_cache_obj_decode(const char *buf, size_t len, const char *key,
                             size_t klen, const char *route,
                             const char *path);

#endif
