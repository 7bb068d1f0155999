/* breaker.c: the circuit-breaker state machine and the health counts of
 * one target, and the process-wide table that keeps them by stable name
 * across reloads (design and diagram in breaker.h). Pure: no I/O, no
 * clock of its own (every `now` comes from the caller). */
#include "portcullis/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"

#define W_STATE(w) ((unsigned)((w) & 3u))
#define W_PROBES(w) ((uint64_t)((w) >> 8))
#define W_MAKE(st, probes) ((uint64_t)(st) | ((uint64_t)(probes) << 8))

/* now + ms, saturating. */
static uint64_t after(uint64_t now, uint64_t ms)
{
    uint64_t ns = ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
    return now > UINT64_MAX - ns ? UINT64_MAX : now + ns;
}

pc_circuit pc_breaker_state(const pc_tstate *s)
{
    return (pc_circuit)W_STATE(atomic_load_explicit(&s->word, memory_order_acquire));
}

int pc_breaker_status_fails(const pc_breaker_conf *c, int status)
{
    if (status < 0 || status >= PC_STATUS_BITS)
        return 0;
    return (int)((c->statuses[status / 64] >> (status % 64)) & 1u);
}

void pc_breaker_status_set(pc_breaker_conf *c, unsigned status)
{
    if (status < PC_STATUS_BITS)
        c->statuses[status / 64] |= 1ull << (status % 64);
}

int pc_breaker_available(const pc_tstate *s, const pc_breaker_conf *c,
                         uint64_t now)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    switch (W_STATE(w)) {
    case PC_CIRCUIT_CLOSED:
        return 1;
    case PC_CIRCUIT_OPEN:
        return now >= atomic_load_explicit(&s->until_ns, memory_order_acquire);
    default:
        return W_PROBES(w) < c->half_open_requests ||
               now >= atomic_load_explicit(&s->until_ns, memory_order_acquire);
    }
}

int pc_breaker_admit(pc_tstate *s, const pc_breaker_conf *c, uint64_t now,
                     pc_transition *tr)
{
    *tr = PC_TR_NONE;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    for (;;) {
        unsigned st = W_STATE(w);
        if (st == PC_CIRCUIT_CLOSED)
            return 1;
        uint64_t until = atomic_load_explicit(&s->until_ns, memory_order_acquire);
        uint64_t next;
        if (st == PC_CIRCUIT_OPEN) {
            if (now < until)
                return 0;
            next = W_MAKE(PC_CIRCUIT_HALF_OPEN, 1);
        } else if (W_PROBES(w) < c->half_open_requests) {
            next = W_MAKE(PC_CIRCUIT_HALF_OPEN, W_PROBES(w) + 1);
        } else if (now >= until) {
            /* The round's probes never reported (their clients went
             * away): a new round. */
            next = W_MAKE(PC_CIRCUIT_HALF_OPEN, 1);
        } else {
            return 0;
        }
        if (next == W_MAKE(PC_CIRCUIT_HALF_OPEN, 1))
            /* A new round: its deadline is set before it is published (a
             * loser of the race below stores a deadline as good). */
            atomic_store_explicit(&s->until_ns, after(now, c->open_for),
                                  memory_order_release);
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, next,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (st == PC_CIRCUIT_OPEN)
                *tr = PC_TR_HALF_OPENED;
            return 2;
        }
    }
}

/* Moves the circuit from `from` (whatever its probe count) to open for
 * open_for. 1 when this call made the change. */
static int open_from(pc_tstate *s, const pc_breaker_conf *c, uint64_t now,
                     unsigned from)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    while (W_STATE(w) == from) {
        atomic_store_explicit(&s->until_ns, after(now, c->open_for),
                              memory_order_release);
        if (atomic_compare_exchange_weak_explicit(
                &s->word, &w, W_MAKE(PC_CIRCUIT_OPEN, 0), memory_order_acq_rel,
                memory_order_acquire)) {
            atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
            return 1;
        }
    }
    return 0;
}

pc_transition pc_breaker_record(pc_tstate *s, const pc_breaker_conf *c,
                                uint64_t now, int ok, int probe)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    unsigned st = W_STATE(w);
    if (ok) {
        if (st == PC_CIRCUIT_CLOSED) {
            if (atomic_load_explicit(&s->failures, memory_order_relaxed))
                atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
            return PC_TR_NONE;
        }
        /* Only a probe speaks for a half-open circuit; a late answer to a
         * request admitted before the circuit opened changes nothing. */
        while (probe && W_STATE(w) == PC_CIRCUIT_HALF_OPEN) {
            if (atomic_compare_exchange_weak_explicit(
                    &s->word, &w, W_MAKE(PC_CIRCUIT_CLOSED, 0),
                    memory_order_acq_rel, memory_order_acquire)) {
                atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
                return PC_TR_CLOSED;
            }
        }
        return PC_TR_NONE;
    }
    if (st == PC_CIRCUIT_CLOSED) {
        uint32_t f = atomic_fetch_add_explicit(&s->failures, 1,
                                               memory_order_relaxed);
        if (f < UINT32_MAX - 1 && (uint64_t)f + 1 >= c->failures &&
            open_from(s, c, now, PC_CIRCUIT_CLOSED))
            return PC_TR_OPENED;
        return PC_TR_NONE;
    }
    if (st == PC_CIRCUIT_HALF_OPEN && probe &&
        open_from(s, c, now, PC_CIRCUIT_HALF_OPEN))
        return PC_TR_REOPENED;
    return PC_TR_NONE;
}

uint64_t pc_breaker_wait_ns(const pc_tstate *s, uint64_t now)
{
    if (pc_breaker_state(s) != PC_CIRCUIT_OPEN)
        return 0;
    uint64_t until = atomic_load_explicit(&s->until_ns, memory_order_acquire);
    return until > now ? until - now : 0;
}

void pc_breaker_reset(pc_tstate *s)
{
    atomic_store(&s->word, W_MAKE(PC_CIRCUIT_CLOSED, 0));
    atomic_store(&s->failures, 0);
}

int pc_health_ok(const pc_tstate *s)
{
    return atomic_load_explicit(&s->healthy, memory_order_acquire);
}

pc_transition pc_health_record(pc_tstate *s, uint64_t healthy_after,
                               uint64_t unhealthy_after, int ok)
{
    int healthy = pc_health_ok(s);
    if (ok) {
        s->hc_fail = 0;
        if (s->hc_ok < UINT32_MAX)
            s->hc_ok++;
        if (!healthy && s->hc_ok >= healthy_after) {
            atomic_store_explicit(&s->healthy, 1, memory_order_release);
            return PC_TR_HEALTHY;
        }
        return PC_TR_NONE;
    }
    s->hc_ok = 0;
    if (s->hc_fail < UINT32_MAX)
        s->hc_fail++;
    if (healthy && s->hc_fail >= unhealthy_after) {
        atomic_store_explicit(&s->healthy, 0, memory_order_release);
        return PC_TR_UNHEALTHY;
    }
    return PC_TR_NONE;
}

void pc_health_reset(pc_tstate *s)
{
    s->hc_ok = s->hc_fail = 0;
    atomic_store(&s->healthy, 1);
}

/* ---- table ---- */

#define NBUCKETS 256

struct pc_tstate_table {
    pthread_mutex_t lock;
    pc_tstate *buckets[NBUCKETS];
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % NBUCKETS;
}

pc_tstate_table *pc_tstate_table_new(void)
{
    pc_tstate_table *t = pc_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void pc_tstate_table_free(pc_tstate_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        while (t->buckets[i]) {
            pc_tstate *s = t->buckets[i];
            t->buckets[i] = s->next;
            pc_tstate_unref(s);
        }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

pc_tstate *pc_tstate_get(pc_tstate_table *t, const char *key)
{
    unsigned h = hash(key);
    pthread_mutex_lock(&t->lock);
    pc_tstate *s;
    for (s = t->buckets[h]; s; s = s->next)
        if (strcmp(s->key, key) == 0)
            break;
    if (!s) {
        s = pc_xcalloc(1, sizeof *s);
        s->key = pc_xstrdup(key);
        atomic_init(&s->healthy, 1);
        atomic_init(&s->refs, 1); /* the table's */
        s->next = t->buckets[h];
        t->buckets[h] = s;
    }
    s->marked = 1;
    pc_tstate_ref(s);
    pthread_mutex_unlock(&t->lock);
    return s;
}

void pc_tstate_sweep_begin(pc_tstate_table *t)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < NBUCKETS; i++)
        for (pc_tstate *s = t->buckets[i]; s; s = s->next)
            s->marked = 0;
    pthread_mutex_unlock(&t->lock);
}

size_t pc_tstate_sweep_end(pc_tstate_table *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < NBUCKETS; i++) {
        pc_tstate **pp = &t->buckets[i];
        while (*pp) {
            pc_tstate *s = *pp;
            if (s->marked) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            s->next = NULL;
            pc_tstate_unref(s);
            n++;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t pc_tstate_count(pc_tstate_table *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < NBUCKETS; i++)
        for (pc_tstate *s = t->buckets[i]; s; s = s->next)
            n++;
    pthread_mutex_unlock(&t->lock);
    return n;
}

pc_tstate *pc_tstate_ref(pc_tstate *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void pc_tstate_unref(pc_tstate *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(s->key);
    free(s);
}
