/* config_json.c: the loaded configuration as JSON for GET /admin/config,
 * shaped like the YAML (durations as strings such as "10s", sizes as byte
 * counts). It must never reveal a secret. Replaced by "***": every value
 * that came from ${ENV} (CONTRACT §2: any scalar may hold one, and what an
 * operator keeps out of the file is what must not be shown), every
 * token / secret / password key, and headers.*.set values whose name says
 * they carry a credential.
 *
 * DESIGN: the loader keeps no node tree, so at load pc_config_env_mask
 * records where the env-derived scalars sat, as a skeleton shaped like the
 * document, and their texts:
 *
 *     YAML                              env_mask
 *     upstreams:                        {"at": {"upstreams": {"a":
 *       a: {targets: [{url: ${U}}]}         {"targets": [{"url": true}]}}},
 *                                        "text": ["http://10.0.0.5:80"]}
 *
 * The JSON view is laid over "at": a `true` hides the value there, whatever
 * its type (a duration, a number, a string), a "key" hides an env-derived
 * key and its value; where the two shapes differ, every scalar below is
 * hidden. Then any string value equal to one of the texts (or, for texts of
 * CONTAINED_MIN bytes or more, containing one) is hidden wherever it
 * appears: a copy shown in another place (a sorted list, a name referred
 * to) does not leak either. */
#include <jansson.h>
#include <openssl/tls1.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "portcullis/events.h"
#include "portcullis/redis.h"
#include "portcullis/units.h"
#include "portcullis/util.h"

#define MASK "***"
/* Shorter env texts (a port, "GET", "true") are hidden only where they are
 * the whole value: inside longer strings they would hide unrelated ones. */
#define CONTAINED_MIN 8

static json_t *dur(uint64_t ms)
{
    char buf[64];
    return json_string(pc_format_duration(ms, buf, sizeof buf));
}

/* Values may hold bytes from ${ENV} that are not UTF-8, which jansson
 * refuses: such bytes are shown as '?' rather than losing the field. */
static json_t *str_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = pc_xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *listens_json(const pc_config *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->nlistens; i++) {
        const pc_listen *l = &c->listens[i];
        json_t *o = json_object(), *tls = json_null();
        json_object_set_new(o, "address", str_or_null(l->address));
        if (l->tls) {
            json_t *certs = json_array();
            for (size_t j = 0; j < l->ncerts; j++)
                json_array_append_new(
                    certs, json_pack("{s:o,s:o}", "cert",
                                     str_or_null(l->certs[j].cert), "key",
                                     str_or_null(l->certs[j].key)));
            tls = json_pack("{s:o,s:s}", "certificates", certs, "min_version",
                            l->min_version == TLS1_3_VERSION ? "TLSv1.3"
                                                             : "TLSv1.2");
        }
        json_object_set_new(o, "tls", tls);
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *limits_json(const pc_limits *l)
{
    json_t *o = json_object();
    json_object_set_new(o, "max_header_bytes",
                        json_integer((json_int_t)l->max_header_bytes));
    json_object_set_new(o, "max_headers",
                        json_integer((json_int_t)l->max_headers));
    json_object_set_new(o, "max_body_bytes",
                        json_integer((json_int_t)l->max_body_bytes));
    json_object_set_new(o, "client_header_timeout",
                        dur(l->client_header_timeout));
    json_object_set_new(o, "client_body_timeout", dur(l->client_body_timeout));
    json_object_set_new(o, "keepalive_timeout", dur(l->keepalive_timeout));
    json_object_set_new(o, "max_connections",
                        json_integer((json_int_t)l->max_connections));
    json_object_set_new(o, "max_connections_per_ip",
                        json_integer((json_int_t)l->max_connections_per_ip));
    json_object_set_new(o, "shutdown_timeout", dur(l->shutdown_timeout));
    json_object_set_new(o, "max_upstream_header_bytes",
                        json_integer((json_int_t)l->max_upstream_header_bytes));
    return o;
}

static json_t *log_json(const pc_log_conf *l)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    return json_pack("{s:o,s:I,s:s}", "access", str_or_null(l->access),
                     "ring_entries", (json_int_t)l->ring_entries, "level",
                     levels[l->level]);
}

static json_t *upstream_json(const pc_upstream *u)
{
    static const char *const bal[] = {"round_robin", "least_conn", "ip_hash"};
    json_t *targets = json_array();
    for (size_t i = 0; i < u->ntargets; i++)
        json_array_append_new(
            targets,
            json_pack("{s:o,s:I}", "url", str_or_null(u->targets[i].url),
                      "weight", (json_int_t)u->targets[i].weight));
    json_t *o = json_object();
    json_object_set_new(o, "targets", targets);
    json_object_set_new(o, "balance", json_string(bal[u->balance]));
    json_object_set_new(o, "keepalive", json_integer((json_int_t)u->keepalive));
    json_object_set_new(o, "idle_timeout", dur(u->idle_timeout));
    json_object_set_new(o, "connect_timeout", dur(u->connect_timeout));
    json_object_set_new(o, "read_timeout", dur(u->read_timeout));
    json_object_set_new(o, "retries", json_integer((json_int_t)u->retries));
    json_object_set_new(o, "preserve_host", json_boolean(u->preserve_host));
    json_object_set_new(o, "tls_verify", json_boolean(u->tls_verify));
    json_object_set_new(o, "ca_file", str_or_null(u->ca_file));
    if (u->health.enabled)
        json_object_set_new(
            o, "health_check",
            json_pack("{s:s,s:o,s:o,s:I,s:I}", "path", u->health.path,
                      "interval", dur(u->health.interval), "timeout",
                      dur(u->health.timeout), "healthy_after",
                      (json_int_t)u->health.healthy_after, "unhealthy_after",
                      (json_int_t)u->health.unhealthy_after));
    if (u->breaker.enabled) {
        json_t *st = json_array();
        for (int code = 100; code < 600; code++)
            if (pc_breaker_status_fails(&u->breaker, code))
                json_array_append_new(st, json_integer(code));
        json_object_set_new(
            o, "circuit_breaker",
            json_pack("{s:I,s:o,s:o,s:I}", "failures",
                      (json_int_t)u->breaker.failures, "failure_statuses", st,
                      "open_for", dur(u->breaker.open_for),
                      "half_open_requests",
                      (json_int_t)u->breaker.half_open_requests));
    }
    return o;
}

/* Header values that carry credentials: the well-known ones, and any name
 * that says what it holds. */
static int secret_header(const char *name)
{
    static const char *const exact[] = {"Authorization", "Proxy-Authorization",
                                        "Cookie", "Set-Cookie", NULL};
    static const char *const parts[] = {"token",    "secret", "key",
                                        "password", "auth",   "signature",
                                        "session",  NULL};
    for (size_t i = 0; exact[i]; i++)
        if (!strcasecmp(exact[i], name))
            return 1;
    for (size_t i = 0; parts[i]; i++)
        if (strcasestr(name, parts[i]))
            return 1;
    return 0;
}

static json_t *rules_json(const pc_header_rules *h)
{
    json_t *set = json_object(), *rm = json_array();
    for (size_t i = 0; i < h->nset; i++)
        json_object_set_new(set, h->set[i].name,
                            secret_header(h->set[i].name)
                                ? json_string(MASK)
                                : str_or_null(h->set[i].value));
    for (size_t i = 0; i < h->nremove; i++)
        json_array_append_new(rm, str_or_null(h->remove[i]));
    return json_pack("{s:o,s:o}", "set", set, "remove", rm);
}

static json_t *methods_json(uint32_t mask)
{
    static const char *const names[] = {"GET",     "HEAD",   "POST",
                                        "PUT",     "DELETE", "PATCH",
                                        "OPTIONS", "TRACE",  "CONNECT"};
    if (!mask)
        return json_null(); /* every method */
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (mask & (1u << i))
            json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *route_json(const pc_config *c, const pc_route *r)
{
    json_t *match =
        json_pack("{s:o,s:s,s:o,s:o}", "path", str_or_null(r->path), "type",
                  r->exact ? "exact" : "prefix", "methods",
                  methods_json(r->methods), "host", str_or_null(r->host));
    json_t *o = json_object();
    json_object_set_new(o, "name", str_or_null(r->name));
    json_object_set_new(o, "match", match);
    json_object_set_new(o, "upstream",
                        str_or_null(r->upstream ? r->upstream->name : NULL));
    json_object_set_new(o, "strip_prefix", str_or_null(r->strip_prefix));
    json_object_set_new(o, "rewrite", str_or_null(r->rewrite));
    json_object_set_new(o, "headers",
                        json_pack("{s:o,s:o}", "request",
                                  rules_json(&r->req_headers), "response",
                                  rules_json(&r->resp_headers)));
    if (c->hooks->route_json)
        c->hooks->route_json(r, o);
    return o;
}

/* ---- values from ${ENV} ------------------------------------------------ */

static void add_text(json_t *texts, const char *v)
{
    json_t *t = str_or_null(v); /* the same text the view would show */
    if (*v && json_is_string(t))
        json_array_append(texts, t);
    json_decref(t);
}

/* The skeleton of n: true for an env-derived scalar, "key" for the value
 * of an env-derived key (both are hidden), a container for one holding
 * such, NULL when clean. */
static json_t *env_tree(const pc_node *n, json_t *texts)
{
    if (n->kind == PC_NODE_SCALAR) {
        if (!n->from_env)
            return NULL;
        add_text(texts, n->value);
        return json_true();
    }
    json_t *m = n->kind == PC_NODE_MAP ? json_object() : json_array();
    int any = 0;
    for (size_t i = 0; i < n->n; i++) {
        json_t *sub = env_tree(n->vals[i], texts);
        if (n->kind == PC_NODE_SEQ) {
            json_array_append_new(m, sub ? sub : json_null());
            any |= sub != NULL;
            continue;
        }
        const pc_node *k = n->keys[i];
        if (k->kind == PC_NODE_SCALAR && k->from_env) {
            add_text(texts, k->value);
            json_decref(sub);
            sub = json_string("key");
        }
        if (sub && k->kind == PC_NODE_SCALAR)
            any |= json_object_set_new(m, k->value, sub) == 0;
        else
            json_decref(sub);
    }
    if (!any) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *pc_config_env_mask(const pc_node *root)
{
    json_t *texts = json_array(), *at = env_tree(root, texts);
    if (!at) {
        json_decref(texts);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "at", at, "text", texts);
}

static int is_leaf(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

/* Every scalar below v (containers kept) becomes "***". */
static void hide_all(json_t *v)
{
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            json_t *x = json_object_iter_value(it);
            if (is_leaf(x))
                json_object_iter_set_new(v, it, json_string(MASK));
            else
                hide_all(x);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (is_leaf(x))
                json_array_set_new(v, i, json_string(MASK));
            else
                hide_all(x);
        }
    }
}

/* Replaces obj's key k (its value too) by "***", "***2", ... */
static void hide_key(json_t *obj, const char *k)
{
    char name[32] = MASK;
    for (size_t n = 2; json_object_get(obj, name); n++)
        snprintf(name, sizeof name, MASK "%zu", n);
    json_object_set_new(obj, name, json_string(MASK));
    json_object_del(obj, k);
}

/* Lays the skeleton `at` over out (a container): see DESIGN above. */
static void overlay(const json_t *at, json_t *out)
{
    if (json_is_object(at) && json_is_object(out)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)at, k, m) {
            json_t *x = json_object_get(out, k);
            if (!x)
                continue;
            if (json_is_string(m))
                hide_key(out, k);
            else if (json_is_true(m) || is_leaf(x))
                json_object_set_new(out, k, json_string(MASK));
            else
                overlay(m, x);
        }
    } else if (json_is_array(at) && json_is_array(out) &&
               json_array_size(at) == json_array_size(out)) {
        for (size_t i = 0; i < json_array_size(out); i++) {
            json_t *m = json_array_get(at, i), *x = json_array_get(out, i);
            if (json_is_null(m))
                continue;
            if (json_is_true(m) || is_leaf(x))
                json_array_set_new(out, i, json_string(MASK));
            else
                overlay(m, x);
        }
    } else {
        hide_all(out);
    }
}

/* 1 when s is one of the env texts, or contains a long one. */
static int env_text(const json_t *texts, const char *s)
{
    size_t i;
    json_t *t;
    json_array_foreach(texts, i, t) {
        const char *v = json_string_value(t);
        if (!strcasecmp(s, v) ||
            (strlen(v) >= CONTAINED_MIN && strcasestr(s, v)))
            return 1;
    }
    return 0;
}

static int hidden_text(const json_t *texts, const json_t *x)
{
    return texts && json_is_string(x) && env_text(texts, json_string_value(x));
}

/* Keys that hold a secret whatever their block (admin.token, jwt and
 * verify_signature secret, and the redis / webhook ones to come). */
static int secret_key(const char *k)
{
    return !strcmp(k, "token") || !strcmp(k, "secret") ||
           !strcmp(k, "password");
}

/* Hides secret keys' values and string values that are env texts below
 * v. Keys are left to overlay: names such as "prefix" or "path" are the
 * view's own and must not vanish because a value happens to match. */
static void hide_texts(json_t *v, const json_t *texts)
{
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            json_t *x = json_object_iter_value(it);
            if ((secret_key(json_object_iter_key(it)) && !json_is_null(x)) ||
                hidden_text(texts, x))
                json_object_iter_set_new(v, it, json_string(MASK));
            else
                hide_texts(x, texts);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (hidden_text(texts, x))
                json_array_set_new(v, i, json_string(MASK));
            else
                hide_texts(x, texts);
        }
    }
}

json_t *pc_config_to_json(const pc_config *c)
{
    char rto[32];
    json_t *o = json_object();
    json_object_set_new(o, "workers",
                        c->workers_auto ? json_string("auto")
                                        : json_integer((json_int_t)c->workers));
    json_object_set_new(o, "listen", listens_json(c));
    json_t *admin = json_null();
    if (c->admin_listen)
        admin = json_pack("{s:o,s:o}", "listen", str_or_null(c->admin_listen),
                          "token",
                          c->admin_token ? json_string(MASK) : json_null());
    json_object_set_new(o, "admin", admin);
    json_t *tp = json_array();
    for (size_t i = 0; i < c->ntrusted_proxies; i++)
        json_array_append_new(tp, str_or_null(c->trusted_proxies_text[i]));
    json_object_set_new(o, "trusted_proxies", tp);
    json_object_set_new(o, "limits", limits_json(&c->limits));
    json_object_set_new(o, "log", log_json(&c->log));
    json_t *ups = json_object();
    for (size_t i = 0; i < c->nupstreams; i++)
        json_object_set_new(ups, c->upstreams[i].name,
                            upstream_json(&c->upstreams[i]));
    json_object_set_new(o, "upstreams", ups);
    json_t *routes = json_array();
    for (size_t i = 0; i < c->nroutes; i++)
        json_array_append_new(routes, route_json(c, &c->routes[i]));
    json_object_set_new(o, "routes", routes);
    if (c->redis)
        json_object_set_new(
            o, "redis",
            json_pack("{s:s,s:o,s:I,s:s,s:s}", "address", c->redis->address,
                      "password",
                      c->redis->password ? json_string(MASK) : json_null(),
                      "db", (json_int_t)c->redis->db, "timeout",
                      pc_format_duration(c->redis->timeout_ms, rto, sizeof rto),
                      "on_error", c->redis->deny ? "deny" : "allow"));
    if (c->webhooks) {
        json_t *wh = json_array();
        for (size_t i = 0; i < c->nwebhooks; i++) {
            const pc_webhook *w = &c->webhooks[i];
            json_t *ev = json_array();
            for (int t = 0; t < PC_EV_N; t++)
                if (w->events & (1u << t))
                    json_array_append_new(
                        ev, json_string(pc_event_name((pc_event_type)t)));
            json_array_append_new(
                wh, json_pack("{s:o,s:o,s:s,s:o,s:I}", "url", str_or_null(w->url),
                              "events", ev, "secret", MASK, "timeout",
                              dur(w->timeout), "max_attempts",
                              (json_int_t)w->max_attempts));
        }
        json_object_set_new(o, "webhooks", wh);
    }
    if (c->hooks->global_json)
        c->hooks->global_json(c, o);
    if (c->env_mask)
        overlay(json_object_get(c->env_mask, "at"), o);
    hide_texts(o, c->env_mask ? json_object_get(c->env_mask, "text") : NULL);
    return o;
}
