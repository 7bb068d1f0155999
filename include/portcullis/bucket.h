/* bucket.h: token-bucket arithmetic (CONTRACT §2 rate_limit, §3 step 5).
 * Pure: no allocation, no clock of its own (the caller passes "now" in
 * microseconds of a monotonic clock), no locking (the caller serialises
 * access to one bucket: lib/bucket_table.c).
 *
 * DESIGN: exact integer fixed point. One token is `per_us` units; the
 * bucket refills `rate` units per microsecond, so `per_us` microseconds
 * add rate * per_us units = `rate` tokens, with no rounding anywhere: the
 * only quantum is the microsecond of the clock, and a refill advances the
 * bucket's time by exactly the whole microseconds it credited. The state
 * is the deficit (units missing to be full) at the bucket's last update;
 * deficit 0 is a full bucket, which is indistinguishable from a bucket
 * that does not exist yet (so a full bucket can be forgotten at any time
 * without changing any later decision).
 *
 *   tokens(now) = (cap - max(0, deficit - (now - last) * rate)) / per_us
 *   cap = burst * per_us   (range-checked: <= PC_BUCKET_MAX_CAP)
 *
 * Every product and sum saturates or is bounded by the checks of
 * pc_bucket_rate_init, so a long idle time, a huge rate or a clock that
 * goes backwards (treated as no time passing) never wraps. */
#ifndef PORTCULLIS_BUCKET_H
#define PORTCULLIS_BUCKET_H

#include <stdint.h>

/* Ranges accepted by pc_bucket_rate_init (the config loader reports the
 * same ones). */
#define PC_BUCKET_MAX_RATE 1000000000ull    /* tokens per `per` */
#define PC_BUCKET_MAX_BURST 1000000000ull   /* tokens */
#define PC_BUCKET_MIN_PER_US 1000ull        /* 1ms */
#define PC_BUCKET_MAX_PER_US 86400000000ull /* 24h */
/* burst * per_us must stay below this (2^62): sums never overflow. */
#define PC_BUCKET_MAX_CAP (1ull << 62)

typedef struct pc_bucket_rate {
    uint64_t rate;   /* tokens per `per`; also refill units per microsecond */
    uint64_t per_us; /* microseconds; also units per token */
    uint64_t burst;  /* capacity in tokens (RateLimit-Limit) */
    uint64_t cap;    /* burst * per_us: capacity in units */
} pc_bucket_rate;

typedef struct pc_bucket {
    uint64_t deficit; /* units missing at `last` (0: full) */
    uint64_t last;    /* microseconds: when deficit was computed */
} pc_bucket;

typedef struct pc_bucket_decision {
    int allowed;        /* 1: a token was taken; 0: refused, nothing taken */
    uint64_t limit;     /* burst */
    uint64_t remaining; /* whole tokens left after this decision */
    uint64_t reset_s;   /* seconds, rounded up, until the bucket is full */
    uint64_t retry_s;   /* refused: seconds, rounded up, at least 1, until
                           one token is available; 0 when allowed */
} pc_bucket_decision;

/* Fills r for `rate` tokens per `per_us` microseconds with capacity
 * `burst` (0: burst = rate). Returns 0, or -1 with *why set to a static
 * message when a value is out of the ranges above or burst * per is too
 * large. */
int pc_bucket_rate_init(pc_bucket_rate *r, uint64_t rate, uint64_t per_us,
                        uint64_t burst, const char **why);

/* A full bucket as of now. */
void pc_bucket_init(pc_bucket *b, uint64_t now_us);

/* Refills b up to now_us, then takes one token when a whole one is there.
 * A refused request takes nothing. d gets the outcome. */
void pc_bucket_take(pc_bucket *b, const pc_bucket_rate *r, uint64_t now_us,
                    pc_bucket_decision *d);

/* The decision for a bucket left with `deficit` units after a take that
 * took a token (allowed = 1) or refused (0): the same header values
 * pc_bucket_take gives. Used for decisions made elsewhere (the Redis
 * script of `scope: cluster` returns the deficit it left). Returns 0, or
 * -1 (d untouched or partial) when the pair is not a state the rate can
 * reach: deficit over cap, allowed not 0/1, allowed with less than one
 * token of deficit, or refused with a whole token available. */
int pc_bucket_decide(const pc_bucket_rate *r, uint64_t deficit, int allowed,
                     pc_bucket_decision *d);

/* Microseconds from now_us until b, refilling at `rate` units per
 * microsecond, is full (0: full already). Saturating; reads b only. */
uint64_t pc_bucket_full_in(const pc_bucket *b, uint64_t rate, uint64_t now_us);

#endif
