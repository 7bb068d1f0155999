/* config_int.h: what the config*.c files share among themselves and with
 * nobody else (the public face is include/portcullis/config.h). */
#ifndef PORTCULLIS_CONFIG_INT_H
#define PORTCULLIS_CONFIG_INT_H

#include "portcullis/config.h"

/* 1 when n is given and not null (`key: ~`, `key: null`, `key:`). Only the
 * optional keys whose default is "none" treat null as absent. */
int pc_config_given(const pc_node *n);

/* Rejects the keys of later features ("'acl' is not supported by this build
 * yet") and every other key not in `allowed` ("unknown key 'x' in where").
 * Either list may be NULL. Does nothing when map is not a mapping. */
void pc_config_check_block(const pc_node *map, const char *const *allowed,
                           const char *const *unsupported, const char *where,
                           pc_errors *err);

/* Like pc_config_check_block, but the keys of `later` that a chain stage
 * owns (owned(key) == 1) are allowed: the stage reads them. */
void pc_config_check_stage_block(const pc_node *map, const char *const *keys,
                                 const char *const *later,
                                 int (*owned)(const char *key),
                                 const char *where, pc_errors *err);

/* A duration within [min, max] ms; -1 after an error at n. */
int pc_config_duration(const pc_node *n, const char *name, uint64_t min,
                       uint64_t max, uint64_t *out, pc_errors *err);

/* A string that must not be empty; -1 after an error at n. */
int pc_config_nonempty(const pc_node *n, const char *name, char **out,
                       pc_errors *err);

/* For paths handed to loaders that open them by name (OpenSSL): -1 after
 * the error "<key> '<path>': not a regular file" at `at` when path is a
 * FIFO, socket or device (opening it would block -t and start-up); 0
 * otherwise, also when it cannot be opened (the loader reports that). */
int pc_config_regular_file(const pc_node *at, const char *key, const char *path,
                           pc_errors *err);

/* 1 when s is a 1..128 character name of [A-Za-z0-9_.-]. */
int pc_config_valid_name(const char *s);

/* What /admin/config must hide because it came from ${ENV} (config_json.c),
 * found from the nodes' from_env flags. NULL when the document has no
 * ${NAME}; otherwise the caller owns it (pc_config.env_mask). */
json_t *pc_config_env_mask(const pc_node *root);

/* The `upstreams:` block (config_upstream.c). Fills c->upstreams; an
 * upstream is registered under its name even when its body has errors, so
 * that routes naming it do not add a second, misleading error. */
void pc_config_read_upstreams(pc_config *c, const pc_node *map, pc_errors *err);
void pc_config_free_upstreams(pc_config *c);

/* The `routes:` block (config_routes.c). Needs c->upstreams; builds
 * c->routes and c->trie. */
void pc_config_read_routes(pc_config *c, const pc_node *seq, pc_errors *err);
void pc_config_free_routes(pc_config *c);

/* The top-level `redis:` block (config_redis.c) into c->redis (set, with
 * defaults, even when the block has errors). */
void pc_config_read_redis(pc_config *c, const pc_node *n, pc_errors *err);

/* URL pieces and address resolution shared by targets and webhook
 * receivers (config_upstream.c): "http[s]://host[:port][/]" into t->tls,
 * host, port, hostport; resolve fills t->addr. 0, or -1 with why. */
int pc_config_parse_url(const char *url, pc_target *t, char *why, size_t len);
int pc_config_resolve(pc_target *t, char *why, size_t len);

/* The top-level `webhooks:` list (config_webhooks.c). */
void pc_config_read_webhooks(pc_config *c, const pc_node *seq, pc_errors *err);
void pc_config_free_webhooks(pc_config *c);

#endif
