/* config_redis.c: the top-level `redis` block (CONTRACT §2): address
 * (host:port, [v6]:port or unix:/path; a cluster node works too),
 * password, db, timeout, on_error. Reads and checks only; the client is
 * net/redis.c, started per worker by core/worker.c. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config_int.h"
#include "portcullis/redis.h"
#include "portcullis/util.h"

#define REDIS_DB_MAX                                                           \
    1000000ull /* databases is a server setting; SELECT                        \
                  reports one past it at connect time */
#define REDIS_TIMEOUT_MAX_MS 60000ull

/* A host name becomes its first address now, as upstream targets do:
 * hiredis resolves with a blocking getaddrinfo at every connect, which
 * must not happen on a worker's loop. */
static void resolve(pc_redis_opts *o, const pc_node *v, pc_errors *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)o->port);
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0 || !res ||
        getnameinfo(res->ai_addr, res->ai_addrlen, o->host, sizeof o->host,
                    NULL, 0, NI_NUMERICHOST) != 0)
        pc_errors_add(err, v,
                      "invalid redis address '%s': cannot resolve "
                      "'%s': %s",
                      o->address, o->host,
                      rc ? gai_strerror(rc) : "no address");
    if (res)
        freeaddrinfo(res);
}

static void read_address(pc_redis_opts *o, const pc_node *v, pc_errors *err)
{
    const char *why = NULL;
    if (pc_config_nonempty(v, "address", &o->address, err) < 0)
        return;
    if (pc_redis_parse_address(o->address, o->host, sizeof o->host, &o->port,
                               &o->is_unix, &why) < 0)
        pc_errors_add(err, v, "invalid redis address '%s': %s", o->address,
                      why);
    else if (!o->is_unix)
        resolve(o, v, err);
}

static void read_on_error(pc_redis_opts *o, const pc_node *v, pc_errors *err)
{
    char *s = NULL;
    if (pc_node_str(v, "on_error", &s, err) < 0)
        return;
    if (!strcmp(s, "deny"))
        o->deny = 1;
    else if (strcmp(s, "allow"))
        pc_errors_add(err, v, "invalid on_error '%s' (allow | deny)", s);
    free(s);
}

void pc_config_read_redis(pc_config *c, const pc_node *n, pc_errors *err)
{
    static const char *const keys[] = {"address", "password", "db",
                                       "timeout", "on_error", NULL};
    if (pc_node_expect_map(n, "redis", err) < 0)
        return;
    pc_config_check_block(n, keys, NULL, "redis", err);
    pc_redis_opts *o = pc_xcalloc(1, sizeof *o);
    o->timeout_ms = 50;
    c->redis = o; /* set even with errors: scope: cluster stays quiet */
    const pc_node *v;
    if ((v = pc_node_get(n, "address")))
        read_address(o, v, err);
    else
        pc_errors_add(err, n,
                      "'redis' needs 'address' (host:port or "
                      "unix:/path)");
    if ((v = pc_node_get(n, "password")) && pc_config_given(v))
        pc_config_nonempty(v, "password", &o->password, err);
    if ((v = pc_node_get(n, "db")))
        pc_node_uint(v, "db", 0, REDIS_DB_MAX, &o->db, err);
    if ((v = pc_node_get(n, "timeout")))
        pc_config_duration(v, "timeout", 1, REDIS_TIMEOUT_MAX_MS,
                           &o->timeout_ms, err);
    if ((v = pc_node_get(n, "on_error")))
        read_on_error(o, v, err);
}
