/* fuzz_cache_wire.c: libFuzzer target for the Redis form of a cached
 * object (lib/cache_wire.c): an entry read back from Redis is untrusted.
 * Invariants (abort on failure): decoding never reads outside the input;
 * a decoded object's header fields are clean (no CR, LF, NUL) and its
 * counts within bounds; encoding it again and decoding that gives the
 * same encoding (a fixed point). */
#include <stdlib.h>
#include <string.h>

#include "portcullis/cache_store.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char KEY[] = "h /k";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* the seed grammar with the fuzzer's bytes, and the bytes alone */
    pc_cobj *o = pc_cache_obj_decode((const char *)data, size, KEY,
                                     sizeof KEY - 1, "r", "/k");
    if (!o)
        return 0;
    if (o->nvary > PC_CACHE_WIRE_MAX_VARY ||
        o->nhdrs > PC_CACHE_WIRE_MAX_HDRS || o->status < 100 || o->status > 599)
        abort();
    for (uint32_t i = 0; i < o->nhdrs; i++)
        if (memchr(o->hdrs[i].value, '\r', o->hdrs[i].vlen) ||
            memchr(o->hdrs[i].value, '\n', o->hdrs[i].vlen) ||
            memchr(o->hdrs[i].name, ':', o->hdrs[i].nlen))
            abort();
    size_t n1, n2;
    char *e1 = pc_cache_obj_encode(o, &n1);
    pc_cobj *o2 = pc_cache_obj_decode(e1, n1, KEY, sizeof KEY - 1, "r", "/k");
    if (!o2)
        abort();
    char *e2 = pc_cache_obj_encode(o2, &n2);
    if (n1 != n2 || memcmp(e1, e2, n1) != 0)
        abort();
    free(e1);
    free(e2);
    pc_cache_obj_unref(o2);
    pc_cache_obj_unref(o);
    return 0;
}
