/* bucket.c: token-bucket arithmetic in exact integer fixed point (see the
 * DESIGN block of include/portcullis/bucket.h). Owns nothing; never reads
 * a clock, never allocates, never locks. */
#include "portcullis/bucket.h"

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

int pc_bucket_rate_init(pc_bucket_rate *r, uint64_t rate, uint64_t per_us,
                        uint64_t burst, const char **why)
{
    if (burst == 0)
        burst = rate;
    if (rate < 1 || rate > PC_BUCKET_MAX_RATE) {
        *why = "rate out of range 1..1000000000";
        return -1;
    }
    if (per_us < PC_BUCKET_MIN_PER_US || per_us > PC_BUCKET_MAX_PER_US) {
        *why = "per out of range 1ms..24h";
        return -1;
    }
    if (burst > PC_BUCKET_MAX_BURST) {
        *why = "burst out of range 1..1000000000";
        return -1;
    }
    uint64_t cap = mul_sat(burst, per_us);
    if (cap > PC_BUCKET_MAX_CAP) {
        *why = "burst x per too large (burst x per in microseconds must "
               "stay below 2^62)";
        return -1;
    }
    r->rate = rate;
    r->per_us = per_us;
    r->burst = burst;
    r->cap = cap;
    return 0;
}

void pc_bucket_init(pc_bucket *b, uint64_t now_us)
{
    b->deficit = 0;
    b->last = now_us;
}

/* The deficit at now (saturating refill); time never goes back. */
static uint64_t deficit_at(const pc_bucket *b, uint64_t rate, uint64_t now_us)
{
    if (now_us <= b->last || b->deficit == 0)
        return b->deficit;
    uint64_t refill = mul_sat(now_us - b->last, rate);
    return refill >= b->deficit ? 0 : b->deficit - refill;
}

uint64_t pc_bucket_full_in(const pc_bucket *b, uint64_t rate, uint64_t now_us)
{
    return div_up(deficit_at(b, rate, now_us), rate ? rate : 1);
}

static uint64_t us_to_s_up(uint64_t us)
{
    return div_up(us, 1000000u);
}

int pc_bucket_decide(const pc_bucket_rate *r, uint64_t deficit, int allowed,
                     pc_bucket_decision *d)
{
    if (deficit > r->cap || (allowed != 0 && allowed != 1) ||
        (allowed && deficit < r->per_us))
        return -1; /* not a state this rate can reach */
    d->allowed = allowed;
    d->limit = r->burst;
    if (allowed) {
        d->retry_s = 0;
    } else {
        uint64_t have = r->cap - deficit;
        if (have >= r->per_us)
            return -1; /* refused with a whole token there */
        uint64_t s = us_to_s_up(div_up(r->per_us - have, r->rate));
        d->retry_s = s ? s : 1;
    }
    d->remaining = (r->cap - deficit) / r->per_us;
    d->reset_s = us_to_s_up(div_up(deficit, r->rate));
    return 0;
}

void pc_bucket_take(pc_bucket *b, const pc_bucket_rate *r, uint64_t now_us,
                    pc_bucket_decision *d)
{
    uint64_t deficit = deficit_at(b, r->rate, now_us);
    if (deficit > r->cap) /* a bucket made under another rate: clamp */
        deficit = r->cap;
    if (now_us > b->last)
        b->last = now_us;
    int allowed = r->cap - deficit >= r->per_us;
    if (allowed)
        deficit += r->per_us; /* <= cap: no overflow */
    b->deficit = deficit;
    pc_bucket_decide(r, deficit, allowed, d); /* consistent by construction */
}
