/* test_cidr.c: address parsing and CIDR sets (lib/cidr.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "portcullis/cidr.h"
#include "portcullis/util.h"

static pc_ip ip(const char *s)
{
    pc_ip out;
    cr_assert_eq(pc_ip_parse(s, strlen(s), &out), 0, "'%s' rejected", s);
    return out;
}

static void add(pc_cidr_set *set, const char *cidr)
{
    pc_ip a;
    int p;
    char err[128] = "";
    cr_assert_eq(pc_cidr_parse(cidr, &a, &p, err, sizeof(err)), 0,
                 "'%s' rejected: %s", cidr, err);
    pc_cidr_set_add(set, &a, p);
}

static int has(const pc_cidr_set *set, const char *addr)
{
    pc_ip a = ip(addr);
    return pc_cidr_set_contains(set, &a);
}

static void cidr_is(const char *s, int family, const char *addr, int prefix)
{
    pc_ip a;
    int p = -1;
    char err[128] = "", buf[64];
    cr_assert_eq(pc_cidr_parse(s, &a, &p, err, sizeof(err)), 0,
                 "'%s' rejected: %s", s, err);
    cr_expect_eq(a.family, family, "family of '%s'", s);
    cr_expect_str_eq(pc_ip_format(&a, buf, sizeof(buf)), addr, "addr of %s", s);
    cr_expect_eq(p, prefix, "prefix of '%s'", s);
}

static void cidr_bad(const char *s)
{
    pc_ip a;
    int p;
    char err[128] = "";
    cr_expect_eq(pc_cidr_parse(s, &a, &p, err, sizeof(err)), -1,
                 "'%s' accepted", s);
    cr_expect_neq(err[0], '\0', "no message for '%s'", s);
}

Test(cidr, ip_parse)
{
    pc_ip a = ip("10.1.2.3");
    cr_expect_eq(a.family, 4);
    cr_expect(memcmp(a.b, "\x0a\x01\x02\x03", 4) == 0);
    a = ip("2001:db8::1");
    cr_expect_eq(a.family, 6);
    cr_expect_eq(a.b[0], 0x20);
    cr_expect_eq(a.b[15], 1);
    a = ip("::ffff:10.1.2.3");
    cr_expect_eq(a.family, 4, "v4-mapped becomes IPv4");
    cr_expect(memcmp(a.b, "\x0a\x01\x02\x03", 4) == 0);
    a = ip("::FFFF:a01:203");
    cr_expect_eq(a.family, 4);
    cr_expect(memcmp(a.b, "\x0a\x01\x02\x03", 4) == 0);
    /* The length given counts, not a NUL. */
    cr_expect_eq(pc_ip_parse("10.0.0.1junk", 8, &a), 0);
    cr_expect(memcmp(a.b, "\x0a\x00\x00\x01", 4) == 0);
}

Test(cidr, ip_parse_rejects)
{
    const char *bad[] = {
        "",         "1.2.3",    "1.2.3.4.5",   "256.1.1.1", "1.2.3.4/8",
        "[::1]",    "::1%eth0", "10.0.0.1:80", "gggg::",    "1:2:3:4:5:6:7:8:9",
        " 1.2.3.4", "localhost"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_ip a;
        cr_expect_eq(pc_ip_parse(bad[i], strlen(bad[i]), &a), -1,
                     "'%s' accepted", bad[i]);
    }
    pc_ip a;
    cr_expect_eq(pc_ip_parse("1.2.3.4\0", 8, &a), -1, "embedded NUL");
    cr_expect_eq(pc_ip_parse(NULL, 0, &a), -1);
}

Test(cidr, ip_format)
{
    char buf[64];
    pc_ip a = ip("2001:0db8:0000:0000:0000:0000:0000:0001");
    cr_expect_str_eq(pc_ip_format(&a, buf, sizeof(buf)), "2001:db8::1");
    a = ip("2001:db8:0:1:1:1:1:1");
    cr_expect_str_eq(pc_ip_format(&a, buf, sizeof(buf)),
                     "2001:db8:0:1:1:1:1:1");
    a = ip("192.0.2.33");
    cr_expect_str_eq(pc_ip_format(&a, buf, sizeof(buf)), "192.0.2.33");
    char small[4];
    cr_expect_str_eq(pc_ip_format(&a, small, sizeof(small)), "");
}

/* IPv4 is formatted by hand (not inet_ntop): the same text for every
 * byte value at every position, and "" whenever the buffer is short. */
Test(cidr, ip_format_v4_matches_inet_ntop)
{
    static const uint8_t vals[] = {0, 1, 9, 10, 11, 99, 100, 101, 199, 200, 249, 250, 255};
    const size_t nv = sizeof vals;
    for (size_t i = 0; i < nv * nv * nv * nv; i++) {
        pc_ip a = {.family = 4};
        size_t k = i;
        for (int j = 0; j < 4; j++, k /= nv)
            a.b[j] = vals[k % nv];
        char want[INET_ADDRSTRLEN], got[64];
        cr_assert(inet_ntop(AF_INET, a.b, want, sizeof want));
        cr_assert_str_eq(pc_ip_format(&a, got, sizeof got), want);
        size_t need = strlen(want) + 1;
        cr_assert_str_eq(pc_ip_format(&a, got, need), want);
        memset(got, 'x', sizeof got);
        cr_assert_str_eq(pc_ip_format(&a, got, need - 1), "");
    }
}

Test(cidr, parse_blocks)
{
    cidr_is("10.0.0.0/8", 4, "10.0.0.0", 8);
    cidr_is("10.1.2.3/8", 4, "10.0.0.0", 8);
    cidr_is("192.168.1.77/26", 4, "192.168.1.64", 26);
    cidr_is("0.0.0.0/0", 4, "0.0.0.0", 0);
    cidr_is("255.255.255.255/1", 4, "128.0.0.0", 1);
    cidr_is("1.2.3.4", 4, "1.2.3.4", 32);
    cidr_is("1.2.3.4/32", 4, "1.2.3.4", 32);
    cidr_is("2001:db8::/32", 6, "2001:db8::", 32);
    cidr_is("2001:db8:ffff::1/33", 6, "2001:db8:8000::", 33);
    cidr_is("::/0", 6, "::", 0);
    cidr_is("::1", 6, "::1", 128);
    cidr_is("fe80::1/10", 6, "fe80::", 10);
    cidr_is("::ffff:10.0.0.0/104", 4, "10.0.0.0", 8);
    cidr_is("::ffff:10.1.2.3", 4, "10.1.2.3", 32);
    cidr_is("::ffff:0.0.0.0/96", 4, "0.0.0.0", 0);
    cidr_is("10.0.0.0/008", 4, "10.0.0.0", 8);
}

Test(cidr, parse_rejects_malformed)
{
    cidr_bad("10.0.0.0/33");
    cidr_bad("2001:db8::/129");
    cidr_bad("1.2.3");
    cidr_bad("1.2.3/24");
    cidr_bad("10.0.0.0/");
    cidr_bad("10.0.0.0/-1");
    cidr_bad("10.0.0.0/8/8");
    cidr_bad("10.0.0.0/ 8");
    cidr_bad("10.0.0.0/8 ");
    cidr_bad("10.0.0.0/1000");
    cidr_bad("/8");
    cidr_bad("");
    cidr_bad("300.0.0.0/8");
    cidr_bad("example.com/24");
    cidr_bad("::ffff:10.0.0.0/129");
    /* Leading zeros read as octal by some tools (010 = 8): ambiguous. */
    cidr_bad("010.0.0.0/8");
}

Test(cidr, v4_membership)
{
    pc_cidr_set *s = pc_cidr_set_new();
    add(s, "10.0.0.0/8");
    add(s, "192.168.1.0/24");
    add(s, "203.0.113.7");
    cr_expect(has(s, "10.0.0.0"));
    cr_expect(has(s, "10.255.255.255"));
    cr_expect(!has(s, "11.0.0.0"));
    cr_expect(!has(s, "9.255.255.255"));
    cr_expect(has(s, "192.168.1.1"));
    cr_expect(!has(s, "192.168.2.1"));
    cr_expect(has(s, "203.0.113.7"));
    cr_expect(!has(s, "203.0.113.6"));
    cr_expect(!has(s, "203.0.113.8"));
    cr_expect(has(s, "::ffff:10.1.2.3"), "v4-mapped client matches 10/8");
    cr_expect(!has(s, "::ffff:11.1.2.3"));
    cr_expect(!has(s, "::a01:203"), "v4-compatible is not v4-mapped");
    cr_expect_eq(pc_cidr_set_count(s), 3);
    pc_cidr_set_free(s);
}

Test(cidr, v6_membership)
{
    pc_cidr_set *s = pc_cidr_set_new();
    add(s, "2001:db8::/32");
    add(s, "fe80::/10");
    add(s, "2001:db9:1::5");
    cr_expect(has(s, "2001:db8::1"));
    cr_expect(has(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_expect(!has(s, "2001:db9::1"));
    cr_expect(!has(s, "2001:db7:ffff::"));
    cr_expect(has(s, "febf::1"));
    cr_expect(!has(s, "fec0::1"));
    cr_expect(has(s, "2001:db9:1::5"));
    cr_expect(!has(s, "2001:db9:1::4"));
    pc_cidr_set_free(s);
}

Test(cidr, families_do_not_mix)
{
    pc_cidr_set *s = pc_cidr_set_new();
    add(s, "::/0");
    cr_expect(has(s, "2001:db8::1"));
    cr_expect(!has(s, "10.0.0.1"), "::/0 is IPv6 only");
    cr_expect(!has(s, "::ffff:10.0.0.1"), "mapped addresses are IPv4");
    pc_cidr_set_free(s);

    s = pc_cidr_set_new();
    add(s, "0.0.0.0/0");
    cr_expect(has(s, "1.2.3.4"));
    cr_expect(has(s, "::ffff:1.2.3.4"));
    cr_expect(!has(s, "::1"));
    cr_expect(!has(s, "::"), ":: shares its zero bytes with 0.0.0.0");
    pc_cidr_set_free(s);
}

Test(cidr, mapped_block_inserted_as_v4)
{
    pc_cidr_set *s = pc_cidr_set_new();
    add(s, "::ffff:10.0.0.0/104");
    cr_expect(has(s, "10.9.9.9"));
    cr_expect(has(s, "::ffff:10.9.9.9"));
    cr_expect(!has(s, "11.0.0.1"));
    pc_cidr_set_free(s);
}

Test(cidr, nested_and_overlapping_blocks)
{
    pc_cidr_set *s = pc_cidr_set_new();
    /* Inserted longest first so that every split path is exercised. */
    add(s, "10.1.2.128/25");
    add(s, "10.1.2.0/25");
    add(s, "10.1.0.0/16");
    add(s, "10.1.2.0/24");
    add(s, "10.3.0.0/16");
    add(s, "10.2.0.0/15");
    cr_expect(has(s, "10.1.2.200"));
    cr_expect(has(s, "10.1.2.5"));
    cr_expect(has(s, "10.1.99.1"));
    cr_expect(has(s, "10.2.0.1"));
    cr_expect(has(s, "10.3.255.1"));
    cr_expect(!has(s, "10.0.255.255"));
    cr_expect(!has(s, "10.4.0.0"));
    cr_expect(!has(s, "10.0.0.0"));
    cr_expect_eq(pc_cidr_set_count(s), 6);
    add(s, "10.1.0.0/16");
    add(s, "10.1.5.6/16");
    cr_expect_eq(pc_cidr_set_count(s), 6, "duplicates are not counted");
    pc_cidr_set_free(s);
}

Test(cidr, sibling_host_routes)
{
    /* Blocks that share a prefix but no block on that prefix: the split
     * node is not itself a member. */
    pc_cidr_set *s = pc_cidr_set_new();
    add(s, "192.0.2.1");
    add(s, "192.0.2.2");
    add(s, "192.0.2.3");
    cr_expect(has(s, "192.0.2.1"));
    cr_expect(has(s, "192.0.2.2"));
    cr_expect(has(s, "192.0.2.3"));
    cr_expect(!has(s, "192.0.2.0"));
    cr_expect(!has(s, "192.0.2.4"));
    pc_cidr_set_free(s);
}

Test(cidr, empty_and_null_sets)
{
    pc_cidr_set *s = pc_cidr_set_new();
    cr_expect(!has(s, "10.0.0.1"));
    cr_expect(!has(s, "::1"));
    cr_expect_eq(pc_cidr_set_count(s), 0);
    pc_cidr_set_free(s);
    pc_ip a = ip("10.0.0.1");
    cr_expect_eq(pc_cidr_set_contains(NULL, &a), 0);
    cr_expect_eq(pc_cidr_set_count(NULL), 0);
    pc_cidr_set_free(NULL);
}

/* Compares the trie with a linear scan over random blocks and addresses. */
Test(cidr, agrees_with_linear_scan)
{
    enum { NB = 300, NQ = 20000 };
    static uint8_t blocks[NB][16];
    static int prefixes[NB], families[NB];
    uint64_t x = 88172645463325252ull;
    pc_cidr_set *s = pc_cidr_set_new();

    for (int i = 0; i < NB; i++) {
        pc_ip a = {0};
        a.family = i % 3 ? 4 : 6;
        for (int k = 0; k < 16; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a.b[k] = k < (a.family == 4 ? 4 : 16) ? (uint8_t)x : 0;
        }
        a.b[0] &= 0x0f; /* crowd blocks together so many nest */
        int maxb = a.family == 4 ? 32 : 128;
        int p = (int)(x % (uint64_t)(maxb + 1));
        char txt[96], buf[64];
        snprintf(txt, sizeof(txt), "%s/%d", pc_ip_format(&a, buf, 64), p);
        pc_ip m;
        char err[64];
        cr_assert_eq(pc_cidr_parse(txt, &m, &p, err, sizeof(err)), 0, "%s",
                     txt);
        memcpy(blocks[i], m.b, 16);
        prefixes[i] = p;
        families[i] = m.family;
        pc_cidr_set_add(s, &m, p);
    }
    for (int q = 0; q < NQ; q++) {
        pc_ip a = {0};
        a.family = q % 3 ? 4 : 6;
        for (int k = 0; k < (a.family == 4 ? 4 : 16); k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a.b[k] = (uint8_t)x;
        }
        a.b[0] &= 0x0f;
        int want = 0;
        for (int i = 0; i < NB && !want; i++) {
            if (families[i] != a.family)
                continue;
            int full = prefixes[i] / 8, rest = prefixes[i] % 8;
            if (memcmp(blocks[i], a.b, (size_t)full) != 0)
                continue;
            if (rest && ((blocks[i][full] ^ a.b[full]) >> (8 - rest)) != 0)
                continue;
            want = 1;
        }
        char buf[64];
        cr_assert_eq(pc_cidr_set_contains(s, &a), want, "query %s",
                     pc_ip_format(&a, buf, sizeof(buf)));
    }
    pc_cidr_set_free(s);
}

Test(cidr, hundred_thousand_entries_load_fast)
{
    enum { N = 100000 };
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint64_t t0 = pc_now_ns();
    pc_cidr_set *s = pc_cidr_set_new();
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pc_ip a = {0};
        if (i % 2) {
            a.family = 4;
            memcpy(a.b, &x, 4);
            pc_cidr_set_add(s, &a, 24 + (int)(x >> 60) % 9);
        } else {
            a.family = 6;
            memcpy(a.b, &x, 8);
            pc_cidr_set_add(s, &a, 48 + (int)(x >> 58) % 17);
        }
    }
    uint64_t t1 = pc_now_ns();
    cr_expect_gt(pc_cidr_set_count(s), N * 99 / 100);
    /* Well under a second even under ASan; a quadratic build would not. */
    cr_expect_lt(t1 - t0, 1000000000ull, "load took %llu ms",
                 (unsigned long long)((t1 - t0) / 1000000));
    pc_ip probe = ip("203.0.113.9");
    pc_cidr_set_add(s, &probe, 32);
    cr_expect(has(s, "203.0.113.9"));
    pc_cidr_set_free(s);
}
