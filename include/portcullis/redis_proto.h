/* redis_proto.h: the pure parts of talking to Redis and Redis Cluster
 * (net/redis.c does the I/O): the cluster key slot (CRC16 with hash
 * tags), MOVED / ASK error replies, and the `redis.address` syntax.
 * No allocation, no I/O, no clock. */
#ifndef PORTCULLIS_REDIS_PROTO_H
#define PORTCULLIS_REDIS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PC_REDIS_SLOTS 16384
#define PC_REDIS_HOST_MAX 256 /* host name or unix socket path, NUL included   \
                               */

/* CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots. */
uint16_t pc_redis_crc16(const void *buf, size_t len);

/* The cluster slot (0..16383) of key: the CRC16 of the first `{...}`
 * with at least one byte inside, else of the whole key. */
unsigned pc_redis_key_slot(const char *key, size_t len);

typedef enum {
    PC_REDIS_REDIRECT_NONE = 0, /* not a redirection */
    PC_REDIS_REDIRECT_MOVED,
    PC_REDIS_REDIRECT_ASK,
} pc_redis_redirect_kind;

typedef struct pc_redis_redirect {
    pc_redis_redirect_kind kind;
    unsigned slot;                /* 0..16383 */
    char host[PC_REDIS_HOST_MAX]; /* without brackets; "" when Redis left
                                     it out (the node that answered) */
    uint16_t port;                /* 1..65535 */
} pc_redis_redirect;

/* Reads an error reply's text ("MOVED 3999 127.0.0.1:6381", "ASK 3999
 * [::1]:6381"). Returns the kind (NONE for any other error, or for a
 * redirection whose slot, host or port is malformed or out of range:
 * those are treated as plain errors). */
pc_redis_redirect_kind pc_redis_parse_redirect(const char *s, size_t len,
                                               pc_redis_redirect *out);

/* `redis.address`: "host:port", "[v6]:port" or "unix:/path". Fills host
 * (or the path, with *is_unix = 1) and port. Returns 0, or -1 with *why
 * set to a static message. */
int pc_redis_parse_address(const char *s, char *host, size_t hostcap,
                           uint16_t *port, int *is_unix, const char **why);

#endif
