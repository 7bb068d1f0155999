/* config.h: one loaded configuration generation (CONTRACT §2).
 *
 * A pc_config is built completely by pc_config_load (YAML read, every value
 * checked, routes compiled into the trie, TLS contexts built, upstream
 * addresses resolved) before anyone sees it, and is immutable afterwards.
 * It is reference-counted: the process holds one reference to the current
 * generation, every request holds one to the generation it started with.
 * A reload builds a new generation beside the old one and swaps a pointer;
 * the old one is freed by its last pc_config_unref. State that must survive
 * a reload (pools, counters) lives outside, keyed by stable names. */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portcullis/breaker.h"
#include "portcullis/cidr.h"
#include "portcullis/errlog.h"
#include "portcullis/loop.h"
#include "portcullis/node.h"
#include "portcullis/trie.h"

typedef struct ssl_ctx_st SSL_CTX;

typedef struct json_t json_t;

typedef struct pc_tls_cert {
    char *cert, *key; /* absolute paths (relative ones resolved against the
                         config file's directory) */
} pc_tls_cert;

typedef struct pc_listen {
    char *address;                 /* as written: "0.0.0.0:8443" */
    struct sockaddr_storage addr;  /* parsed, numeric only */
    socklen_t addrlen;
    int tls;                       /* 1 when a tls block is present */
    pc_tls_cert *certs;
    size_t ncerts;
    int min_version;               /* TLS1_2_VERSION or TLS1_3_VERSION */
    SSL_CTX *ssl_ctx;              /* built by pc_tls_server_ctx_new */
    void *tls_state;               /* owned by net/tls.c (SNI table) */
} pc_listen;

typedef struct pc_limits {
    uint64_t max_header_bytes;      /* default 16k */
    uint64_t max_headers;           /* default 100 */
    uint64_t max_body_bytes;        /* default 1m */
    uint64_t client_header_timeout; /* ms, default 10s */
    uint64_t client_body_timeout;   /* ms, default 30s */
    uint64_t keepalive_timeout;     /* ms, default 60s */
    uint64_t max_connections;       /* default 10000 */
    uint64_t max_connections_per_ip;/* default 0 = unlimited */
    uint64_t shutdown_timeout;      /* ms, default 30s */
    uint64_t max_upstream_header_bytes; /* default 64k: every head of one
                                           response, interim ones included */
} pc_limits;


typedef struct pc_log_conf {
    char *access;          /* path, "stdout" or "off"; default "stdout" */
    uint64_t ring_entries; /* default 65536, power of two enforced (rounded up) */
    pc_log_level level;    /* default info */
} pc_log_conf;

typedef struct pc_target {
    char *url;                    /* as written */
    int tls;                      /* https:// */
    char *host;                   /* host part, without brackets */
    uint16_t port;                /* default 80 / 443 */
    char *hostport;               /* Host header value: host[:port], port
                                     omitted when it is the default */
    struct sockaddr_storage addr; /* resolved at load (first address) */
    socklen_t addrlen;
    uint32_t weight;              /* default 1, 1..1000 */
    size_t index;                 /* position within its upstream */
    char *pool_key;               /* names this target's connection pools:
                                     the URL plus everything that changes
                                     the connection made (resolved address;
                                     for https tls_verify and the CA file's
                                     SHA-256), so upstreams that differ in
                                     any of these never share a pooled
                                     connection; stable across reloads
                                     that keep them (config_upstream.c) */
    pc_tstate *state;             /* circuit and health, per process, by
                                     "UPSTREAM URL"; pool_stat: connection
                                     counts, all workers, by pool_key.
                                     Set by pc_targets_bind (proxy/) before
                                     the generation is published, one
                                     reference each; NULL in generations
                                     never bound (-t, tests): no breaker,
                                     always healthy */
    pc_tstate *pool_stat;
} pc_target;

/* An upstream's health_check block (CONTRACT §2). */
typedef struct pc_health_conf {
    int enabled;              /* the block is present */
    char *path;               /* default "/healthz" */
    uint64_t interval;        /* ms, default 5s */
    uint64_t timeout;         /* ms, default 1s, at most interval */
    uint64_t healthy_after;   /* 1..100, default 2 */
    uint64_t unhealthy_after; /* 1..100, default 3 */
} pc_health_conf;

/* Most targets per upstream (balancing keeps tried/skipped targets in one
 * 64-bit mask). */
#define PC_MAX_TARGETS 64

typedef enum { PC_BAL_ROUND_ROBIN, PC_BAL_LEAST_CONN, PC_BAL_IP_HASH } pc_balance;

typedef struct pc_upstream {
    char *name;
    pc_target *targets;
    size_t ntargets;
    pc_balance balance;       /* default round_robin */
    uint64_t keepalive;       /* default 64, 0..65535 */
    uint64_t idle_timeout;    /* ms, default 60s */
    uint64_t connect_timeout; /* ms, default 2s */
    uint64_t read_timeout;    /* ms, default 30s */
    uint64_t retries;         /* default 1, 0..10 */
    int preserve_host;        /* default 0 */
    int tls_verify;           /* default 1 */
    char *ca_file;            /* NULL = system default store */
    SSL_CTX *ssl_ctx;         /* client context, NULL when no https target */
    pc_health_conf health;
    pc_breaker_conf breaker;
    size_t index;             /* position in pc_config.upstreams */
    uint32_t metrics_id;      /* stable label id (lib/metrics.c) */
} pc_upstream;

typedef struct pc_kv {
    char *name, *value;
} pc_kv;

typedef struct pc_header_rules {
    pc_kv *set;     /* set: replaces every existing header of that name */
    size_t nset;
    char **remove;  /* names, case-insensitive */
    size_t nremove;
} pc_header_rules;

typedef struct pc_route {
    char *name;           /* default "route<N>" (1-based file position) */
    char *path;           /* match.path */
    int exact;            /* match.type: exact=1, prefix=0 (default) */
    uint32_t methods;     /* match.methods as PC_M_* mask; 0 = all */
    char *host;           /* match.host or NULL */
    pc_upstream *upstream;/* borrowed from the same generation */
    char *strip_prefix;   /* NULL or a prefix of path on a segment boundary */
    char *rewrite;        /* NULL or template using {params} of path */
    pc_header_rules req_headers, resp_headers;
    void *stage_policy[PC_STAGE_MAX]; /* per stage: its route block, owned */
    size_t index;         /* file order */
    uint32_t metrics_id;  /* stable label id (lib/metrics.c) */
} pc_route;

/* One receiver of the top-level `webhooks` list (CONTRACT §2, §6):
 * config_webhooks.c. `up` is a one-target upstream named by the URL, so
 * that the delivery thread (proxy/webhook.c) connects and verifies TLS
 * exactly as for an https upstream (tls_verify 1, system CA store). */
typedef struct pc_webhook {
    char *url;             /* as written */
    char *path;            /* path and query sent, "/" when none */
    pc_upstream up;        /* name = url, targets = &target, ssl_ctx */
    pc_target target;      /* scheme, host, port, resolved address */
    uint32_t events;       /* bit (1u << pc_event_type) per event named */
    char *secret;          /* HMAC-SHA256 key */
    uint64_t timeout;      /* ms per attempt, default 5 s */
    uint64_t max_attempts; /* default 8 */
} pc_webhook;

typedef struct pc_config {
    _Atomic long refs;
    char *file;                  /* path as given */
    char *dir;                   /* its directory (for relative paths) */
    uint64_t workers;            /* resolved: auto = number of online CPUs */
    int workers_auto;
    pc_listen *listens;
    size_t nlistens;
    char *admin_listen;          /* NULL = no admin listener */
    struct sockaddr_storage admin_addr;
    socklen_t admin_addrlen;
    char *admin_token;           /* NULL = open */
    pc_cidr_set *trusted_proxies;/* never NULL (maybe empty) */
    char **trusted_proxies_text; /* as written, for /admin/config */
    size_t ntrusted_proxies;
    pc_limits limits;
    pc_log_conf log;
    pc_upstream *upstreams;
    size_t nupstreams;
    pc_route *routes;
    size_t nroutes;
    pc_trie *trie;               /* routes compiled; data = pc_route* */
    pc_webhook *webhooks;        /* the `webhooks` list (may be empty) */
    size_t nwebhooks;
    void *stage_global[PC_STAGE_MAX]; /* per stage: its top-level block */
    struct pc_redis_opts *redis; /* the `redis` block, NULL when absent
                                    (owned; net/redis.h) */
    json_t *env_mask;            /* which values came from ${ENV}, so that
                                    /admin/config hides them; NULL when
                                    none (built by config_json.c, owned) */
    uint64_t generation;         /* 1 for the first load, +1 per reload
                                    (the loader sets 1; the reloader sets
                                    old->generation + 1) */
    const struct pc_stage_hooks *hooks; /* the stage blocks' owner (below) */
} pc_config;

/* What the loader needs from the request stages, as callbacks: config/
 * knows no stage; the chain (chain.c: pc_chain_config_hooks) owns the
 * top-level and route-level blocks named by its stages, configures them,
 * frees them and shows them in /admin/config. core/loader.c passes the
 * chain's table (pc_config_load); any hook may be NULL. */
typedef struct pc_stage_hooks {
    int (*owns_global_key)(const char *key);
    int (*owns_route_key)(const char *key);
    void (*configure_global)(pc_config *c, const pc_node *root, pc_errors *err);
    void (*configure_route)(pc_config *c, pc_route *r, const pc_node *n,
                            pc_errors *err);
    void (*free_global)(pc_config *c);
    void (*free_route)(pc_route *r);
    void (*global_json)(const pc_config *c, json_t *obj);
    void (*route_json)(const pc_route *r, json_t *obj);
} pc_stage_hooks;

/* Loads and fully validates FILE. On success returns a generation with one
 * reference. On failure returns NULL with every problem in err (formatted
 * "FILE:LINE:COL: message"), having freed all it built. Keys of later
 * features (redis, jwt, cache, acl, rate_limit, validate, compress,
 * verify_signature, webhooks) are rejected
 * with "'x' is not supported by this build yet" so that no security setting
 * is ever silently ignored. Errors come back sorted by line and column. */
pc_config *pc_config_load_with(const char *file, const pc_stage_hooks *hooks,
                               pc_errors *err);
/* Same from a parsed tree (tests, fuzzers). */
pc_config *pc_config_from_node_with(const pc_node *root, const char *file,
                                    const pc_stage_hooks *hooks, pc_errors *err);
/* (pc_config_load / pc_config_from_node, with the chain's hooks, are in
 * loader.h.) */

pc_config *pc_config_ref(pc_config *c);
void pc_config_unref(pc_config *c); /* frees at zero; NULL is a no-op */

/* The loaded config as JSON for GET /admin/config. Shown as "***": every
 * value that came from ${ENV} (wholly, even when the reference was part of
 * a longer string), the secrets (token, secret and password keys), and
 * headers.*.set values whose header name says they carry a credential.
 * Caller owns the result. */
json_t *pc_config_to_json(const pc_config *c);

/* p made absolute against the config file's directory; caller frees. */
char *pc_config_abspath(const pc_config *c, const char *p);

/* Finds an upstream by name, NULL when absent. */
pc_upstream *pc_config_upstream(const pc_config *c, const char *name);

/* Parses "host:port" / "[v6]:port" / "*:port" into a numeric sockaddr
 * (no DNS). Returns 0 or -1 with a message. */
int pc_parse_hostport(const char *s, struct sockaddr_storage *ss,
                      socklen_t *len, char *err, size_t errlen);

#endif
