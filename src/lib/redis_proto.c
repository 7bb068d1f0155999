/* redis_proto.c: key slots, redirections and addresses for the Redis
 * client (see redis_proto.h). Pure: never allocates, never does I/O. */
#include "portcullis/redis_proto.h"

#include <string.h>

uint16_t pc_redis_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned pc_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from)
            return pc_redis_crc16(key + from, (size_t)(close - key) - from) &
                   (PC_REDIS_SLOTS - 1);
    }
    return pc_redis_crc16(key, len) & (PC_REDIS_SLOTS - 1);
}

/* A decimal number of at most 5 digits in [lo, hi] at s[0..n); -1 if not. */
static long small_number(const char *s, size_t n, long lo, long hi)
{
    if (n == 0 || n > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
}

/* host:port or [v6]:port at s[0..n) into host / port; an empty host only
 * when empty_ok. */
static int host_port(const char *s, size_t n, char *host, size_t hostcap,
                     uint16_t *port, int empty_ok)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hlen;
    if (n && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end || end + 1 >= s + n || end[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        for (size_t i = n; i-- > 0;)
            if (s[i] == ':') {
                colon = s + i;
                break;
            }
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if ((hlen == 0 && !empty_ok) || hlen >= hostcap || memchr(h, ' ', hlen) ||
        memchr(h, '\0', hlen))
        return -1;
    long p = small_number(colon + 1, (size_t)(s + n - colon - 1), 1, 65535);
    if (p < 0)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

pc_redis_redirect_kind pc_redis_parse_redirect(const char *s, size_t len,
                                               pc_redis_redirect *out)
{
    pc_redis_redirect_kind k;
    size_t skip;
    if (len > 6 && !memcmp(s, "MOVED ", 6)) {
        k = PC_REDIS_REDIRECT_MOVED;
        skip = 6;
    } else if (len > 4 && !memcmp(s, "ASK ", 4)) {
        k = PC_REDIS_REDIRECT_ASK;
        skip = 4;
    } else {
        return PC_REDIS_REDIRECT_NONE;
    }
    const char *p = s + skip, *end = s + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp)
        return PC_REDIS_REDIRECT_NONE;
    long slot = small_number(p, (size_t)(sp - p), 0, PC_REDIS_SLOTS - 1);
    /* an empty host ("MOVED 3999 :6380") is the node that answered */
    if (slot < 0 || host_port(sp + 1, (size_t)(end - sp - 1), out->host,
                              sizeof out->host, &out->port, 1) < 0)
        return PC_REDIS_REDIRECT_NONE;
    out->slot = (unsigned)slot;
    out->kind = k;
    return k;
}

int pc_redis_parse_address(const char *s, char *host, size_t hostcap,
                           uint16_t *port, int *is_unix, const char **why)
{
    size_t n = strlen(s);
    if (n >= 5 && !memcmp(s, "unix:", 5)) {
        if (s[5] != '/') {
            *why = "a unix socket path must be absolute (unix:/path)";
            return -1;
        }
        if (n - 5 >= hostcap || n - 5 >= 108) {
            *why = "unix socket path too long (at most 107 bytes)";
            return -1;
        }
        memcpy(host, s + 5, n - 4);
        *port = 0;
        *is_unix = 1;
        return 0;
    }
    if (host_port(s, n, host, hostcap, port, 0) < 0) {
        *why = "expected host:port, [v6]:port or unix:/path (port 1..65535)";
        return -1;
    }
    *is_unix = 0;
    return 0;
}
