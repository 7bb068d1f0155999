/* cidr.h: sets of IPv4/IPv6 CIDR blocks with lookup cost independent of the
 * number of entries (a binary radix trie, one bit per level, path-compressed
 * or not: at most 128 steps). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
 * are looked up, and inserted, as IPv4. No I/O, no libevent. */
#ifndef PORTCULLIS_CIDR_H
#define PORTCULLIS_CIDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_cidr_set pc_cidr_set;

/* A parsed address: family 4 or 6, bytes in network order (4 or 16 used). */
typedef struct pc_ip {
    int family;
    uint8_t b[16];
} pc_ip;

/* Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (host route: /32
 * or /128). Bits below the prefix that are set (10.0.0.1/8) are accepted and
 * masked off. Returns 0, or -1 with a message in err. */
int pc_cidr_parse(const char *s, pc_ip *addr, int *prefix, char *err,
                  size_t errlen);

/* Parses a bare IPv4 or IPv6 address (no prefix, no brackets, no port).
 * IPv4-mapped IPv6 is turned into family 4. Returns 0 or -1. */
int pc_ip_parse(const char *s, size_t len, pc_ip *out);

/* Formats an address as text (IPv4 dotted, IPv6 RFC 5952); returns buf. */
char *pc_ip_format(const pc_ip *ip, char *buf, size_t len);

pc_cidr_set *pc_cidr_set_new(void);
void pc_cidr_set_free(pc_cidr_set *set);
/* Adds a block (after pc_cidr_parse). Duplicates are harmless. */
void pc_cidr_set_add(pc_cidr_set *set, const pc_ip *addr, int prefix);
/* 1 when ip is inside any block of the set, else 0. NULL set: 0. */
int pc_cidr_set_contains(const pc_cidr_set *set, const pc_ip *ip);
size_t pc_cidr_set_count(const pc_cidr_set *set);

#endif
