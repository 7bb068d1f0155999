/* cidr.c: address parsing and sets of CIDR blocks (ACLs, trusted_proxies).
 * Owns the set's node array. Must never do I/O, never block, and never let
 * a lookup cost depend on the number of blocks in the set.
 *
 * DESIGN: one path-compressed binary trie per family. A node stands for a
 * prefix (key, bits) and has two children, for the next bit 0 and 1. A node
 * is "term" when its prefix was added as a block. Lookup walks from the
 * root, checking at each node that the address still agrees with the node's
 * prefix; the first term node met contains the address. Each step goes at
 * least one bit deeper, so a lookup takes at most 33 (IPv4) or 129 (IPv6)
 * steps, whatever the number of blocks. Nodes live in one array and refer
 * to each other by index (0 = none), so a set of 100,000 blocks is a few
 * large allocations, not 200,000 small ones.
 *
 *        root (10.0.0.0/8, term)          an address under 10/8 stops here;
 *        /                  \             192.168.1.7 fails the prefix
 *   (none)          ...                   check at the first node. */
#include "portcullis/cidr.h"
#include "portcullis/util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cnode {
    uint8_t key[16]; /* prefix bits, everything past `bits` zero */
    uint8_t bits;
    uint8_t term;
    uint32_t child[2];
} cnode;

struct pc_cidr_set {
    cnode *nodes; /* nodes[0] unused: index 0 means "no node" */
    uint32_t n, cap;
    uint32_t root4, root6;
    size_t count; /* distinct blocks */
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};


static void mask_bits(uint8_t *b, int nbytes, int prefix)
{
    for (int i = 0; i < nbytes; i++) {
        int keep = prefix - i * 8;
        if (keep >= 8)
            continue;
        b[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

int pc_ip_parse(const char *s, size_t len, pc_ip *out)
{
    char buf[64];

    if (!s || len == 0 || len >= sizeof(buf) || memchr(s, '\0', len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->b) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->b) != 1)
        return -1;
    out->family = 6;
    if (memcmp(out->b, v4mapped_prefix, 12) == 0) {
        /* Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d: they are
         * the same client as a.b.c.d and must meet the same rules. */
        memmove(out->b, out->b + 12, 4);
        memset(out->b + 4, 0, 12);
        out->family = 4;
    }
    return 0;
}

/* Reads the decimal prefix length after '/'; -1 when not 1-3 digits. */
static int parse_prefix(const char *p)
{
    int v = 0, n = 0;

    for (; *p; p++, n++) {
        if (*p < '0' || *p > '9' || n >= 3)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return n == 0 ? -1 : v;
}

int pc_cidr_parse(const char *s, pc_ip *addr, int *prefix, char *err,
                  size_t errlen)
{
    if (!s || !*s)
        return pc_errf(err, errlen, "empty address");
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    pc_ip ip;
    char buf[64];

    if (alen == 0 || alen >= sizeof(buf))
        return pc_errf(err, errlen, "invalid address in '%s'", s);
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(&ip, 0, sizeof(ip));
    int mapped = 0;
    if (inet_pton(AF_INET, buf, ip.b) == 1) {
        ip.family = 4;
    } else if (inet_pton(AF_INET6, buf, ip.b) == 1) {
        ip.family = 6;
        mapped = memcmp(ip.b, v4mapped_prefix, 12) == 0;
    } else {
        return pc_errf(err, errlen, "invalid address '%s'", buf);
    }
    int maxbits = ip.family == 4 ? 32 : 128;
    int p = maxbits;
    if (slash) {
        p = parse_prefix(slash + 1);
        if (p < 0 || p > maxbits)
            return pc_errf(err, errlen, "invalid prefix length '%s' (0..%d)",
                        slash + 1, maxbits);
    }
    if (mapped && p >= 96) {
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8: the same clients. */
        memmove(ip.b, ip.b + 12, 4);
        memset(ip.b + 4, 0, 12);
        ip.family = 4;
        p -= 96;
    }
    mask_bits(ip.b, ip.family == 4 ? 4 : 16, p);
    *addr = ip;
    *prefix = p;
    return 0;
}

/* Dotted quad without inet_ntop: glibc formats IPv4 with sprintf, and
 * every request formats its peer (and client) address. */
static int format_v4(const uint8_t *b, char *buf, size_t len)
{
    char t[16];
    size_t n = 0;
    for (int k = 0; k < 4; k++) {
        unsigned v = b[k];
        if (v >= 100)
            t[n++] = (char)('0' + v / 100);
        if (v >= 10)
            t[n++] = (char)('0' + v / 10 % 10);
        t[n++] = (char)('0' + v % 10);
        t[n++] = k < 3 ? '.' : '\0';
    }
    if (n > len)
        return -1;
    memcpy(buf, t, n);
    return 0;
}

char *pc_ip_format(const pc_ip *ip, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    if (ip->family == 4) {
        if (format_v4(ip->b, buf, len) != 0)
            buf[0] = '\0';
        return buf;
    }
    int af = ip->family == 4 ? AF_INET : AF_INET6;
    if (!inet_ntop(af, ip->b, buf, (socklen_t)len))
        buf[0] = '\0';
    return buf;
}

pc_cidr_set *pc_cidr_set_new(void)
{
    pc_cidr_set *set = pc_xcalloc(1, sizeof(*set));
    set->cap = 16;
    set->nodes = pc_xmalloc(set->cap * sizeof(cnode));
    set->n = 1;
    return set;
}

void pc_cidr_set_free(pc_cidr_set *set)
{
    if (!set)
        return;
    free(set->nodes);
    free(set);
}

size_t pc_cidr_set_count(const pc_cidr_set *set)
{
    return set ? set->count : 0;
}

static int bit_at(const uint8_t *key, int i)
{
    return (key[i >> 3] >> (7 - (i & 7))) & 1;
}

/* Length of the common prefix of a and b, at most limit bits. */
static int common_bits(const uint8_t *a, const uint8_t *b, int limit)
{
    int n = 0;

    for (int i = 0; n < limit; i++, n += 8) {
        uint8_t x = a[i] ^ b[i];
        if (x) {
            n += __builtin_clz((unsigned)x) - 24;
            break;
        }
    }
    return n < limit ? n : limit;
}

static uint32_t new_node(pc_cidr_set *set, const uint8_t *key, int nbytes,
                         int bits, int term)
{
    cnode *c = &set->nodes[set->n];

    memset(c, 0, sizeof(*c));
    memcpy(c->key, key, (size_t)nbytes);
    mask_bits(c->key, nbytes, bits);
    c->bits = (uint8_t)bits;
    c->term = (uint8_t)term;
    if (term)
        set->count++;
    return set->n++;
}

void pc_cidr_set_add(pc_cidr_set *set, const pc_ip *addr, int prefix)
{
    int nbytes = addr->family == 4 ? 4 : 16;
    uint32_t *link = addr->family == 4 ? &set->root4 : &set->root6;
    uint8_t key[16] = {0};

    if (prefix < 0 || prefix > nbytes * 8)
        return;
    memcpy(key, addr->b, (size_t)nbytes);
    mask_bits(key, nbytes, prefix);
    /* An insert creates at most two nodes; growing first keeps `link`
     * (which may point into the array) valid for the whole walk. */
    if (set->n + 2 > set->cap) {
        set->cap *= 2;
        set->nodes = pc_xrealloc(set->nodes, set->cap * sizeof(cnode));
    }
    for (;;) {
        if (*link == 0) {
            *link = new_node(set, key, nbytes, prefix, 1);
            return;
        }
        uint32_t cur = *link;
        cnode *c = &set->nodes[cur];
        int limit = c->bits < prefix ? c->bits : prefix;
        int common = common_bits(key, c->key, limit);
        if (common == c->bits) {
            if (c->bits == prefix) {
                if (!c->term) {
                    c->term = 1;
                    set->count++;
                }
                return;
            }
            link = &c->child[bit_at(key, c->bits)];
            continue;
        }
        /* The new block and this node part ways at `common`: a node for
         * the shared prefix goes in between (the new block itself when
         * it is that prefix). */
        int old_side = bit_at(c->key, common);
        uint32_t mid = new_node(set, key, nbytes, common, common == prefix);
        set->nodes[mid].child[old_side] = cur;
        if (common != prefix) {
            uint32_t leaf = new_node(set, key, nbytes, prefix, 1);
            set->nodes[mid].child[!old_side] = leaf;
        }
        *link = mid;
        return;
    }
}

int pc_cidr_set_contains(const pc_cidr_set *set, const pc_ip *ip)
{
    if (!set || !ip || (ip->family != 4 && ip->family != 6))
        return 0;
    int maxbits = ip->family == 4 ? 32 : 128;
    uint32_t cur = ip->family == 4 ? set->root4 : set->root6;

    while (cur) {
        const cnode *c = &set->nodes[cur];
        if (common_bits(ip->b, c->key, c->bits) < c->bits)
            return 0;
        if (c->term)
            return 1;
        if (c->bits >= maxbits)
            return 0;
        cur = c->child[bit_at(ip->b, c->bits)];
    }
    return 0;
}
