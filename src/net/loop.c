/* loop.c: the per-loop request-id generator (loop.h). */
#include <sys/random.h>
#include <unistd.h>

#include "portcullis/loop.h"
#include "portcullis/util.h"

void pc_loop_seed(pc_loop *l)
{
    if (getrandom(l->rng, sizeof l->rng, 0) != sizeof l->rng) {
        l->rng[0] = pc_now_ns() ^ ((uint64_t)l->id << 32);
        l->rng[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    }
    l->rng[0] |= 1;
}

void pc_loop_request_id(pc_loop *l, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int k = 0; k < 2; k++) {
        /* xorshift128+ */
        uint64_t s1 = l->rng[0];
        const uint64_t s0 = l->rng[1];
        l->rng[0] = s0;
        s1 ^= s1 << 23;
        l->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        uint64_t v = l->rng[1] + s0;
        for (int i = 0; i < 16; i++)
            out[k * 16 + i] = hex[(v >> (i * 4)) & 15];
    }
    out[32] = '\0';
}
