/* fuzz_cidr.c: libFuzzer target for the CIDR parser and set (lib/cidr.c),
 * as the acl and trusted_proxies code uses them. The input is split at
 * newlines: every line is parsed as a CIDR and as a bare address; parsed
 * blocks go into a set, and every parsed address is looked up. Invariants
 * (abort on failure): a block's own address is always inside the set; an
 * address formatted and parsed again gives the same address. */
#include <stdlib.h>
#include <string.h>

#include "portcullis/cidr.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    pc_cidr_set *set = pc_cidr_set_new();
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[128];
        if (len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            pc_ip ip;
            int prefix;
            char err[128];
            if (pc_cidr_parse(line, &ip, &prefix, err, sizeof err) == 0) {
                pc_cidr_set_add(set, &ip, prefix);
                if (!pc_cidr_set_contains(set, &ip))
                    abort();
            }
            pc_ip a, b;
            if (pc_ip_parse(line, len, &a) == 0) {
                char text[64];
                pc_ip_format(&a, text, sizeof text);
                if (pc_ip_parse(text, strlen(text), &b) != 0 ||
                    a.family != b.family ||
                    memcmp(a.b, b.b, a.family == 4 ? 4 : 16) != 0)
                    abort();
                (void)pc_cidr_set_contains(set, &a);
            }
        }
        p += len + 1;
    }
    pc_cidr_set_free(set);
    return 0;
}
