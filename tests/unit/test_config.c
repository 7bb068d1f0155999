/* test_config.c: the configuration loader (src/config/config*.c): a full valid
 * file read back, defaults, every class of error with its exact
 * "FILE:LINE:COL: message", TLS hooks, and the masked JSON view. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portcullis/config.h"
#include "portcullis/events.h"
#include "portcullis/loader.h"
#include "portcullis/tls.h"

static char path[256];
static pc_errors errs;

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

/* Writes text to a fresh file (in dir, or /tmp) and loads it. */
static pc_config *load_in(const char *dir, const char *text)
{
    snprintf(path, sizeof path, "%s/pc_config_XXXXXX", dir ? dir : "/tmp");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_file(path, text);
    pc_errors_init(&errs, path);
    pc_config *c = pc_config_load(path, &errs);
    unlink(path);
    return c;
}

static pc_config *load(const char *text)
{
    return load_in(NULL, text);
}

/* Each wanted string is "LINE:COL: message"; the file name is prefixed.
 * A trailing '*' compares only what comes before it (for the parts of a
 * message that come from the system: resolver and OpenSSL texts). */
static void expect_errors(const char *const *want, size_t n)
{
    char full[1024];
    for (size_t i = 0; i < errs.n && i < n; i++) {
        snprintf(full, sizeof full, "%s:%s", path, want[i]);
        size_t len = strlen(full);
        if (full[len - 1] == '*')
            cr_expect(strncmp(errs.msgs[i], full, len - 1) == 0,
                      "got: %s\nwant: %s", errs.msgs[i], full);
        else
            cr_expect_str_eq(errs.msgs[i], full);
    }
    for (size_t i = n; i < errs.n; i++)
        cr_log_error("extra error: %s", errs.msgs[i]);
    cr_assert_eq(errs.n, n, "expected %zu errors, got %zu", n, errs.n);
}

#define EXPECT(...)                                                            \
    do {                                                                       \
        static const char *const want_[] = {__VA_ARGS__};                      \
        expect_errors(want_, sizeof want_ / sizeof want_[0]);                  \
    } while (0)

static void load_fails(const char *text)
{
    pc_config *c = load(text);
    cr_assert_null(c, "load should have failed");
}

#define MIN_LISTEN "listen: [{address: 127.0.0.1:8080}]\n"
#define MIN_UP "upstreams: {u: {targets: [{url: http://127.0.0.1:1}]}}\n"

static const char full_yaml[] =
    "workers: 3\n"
    "listen:\n"
    "  - address: 127.0.0.1:18080\n"
    "  - address: \"[::1]:18081\"\n"
    "admin:\n"
    "  listen: 127.0.0.1:19901\n"
    "  token: ${PC_T_ADMIN_TOKEN}\n"
    "trusted_proxies: [10.0.0.0/8, \"2001:db8::/32\", 192.168.1.1]\n"
    "limits:\n"
    "  max_header_bytes: 32k\n"
    "  max_headers: 50\n"
    "  max_body_bytes: 2m\n"
    "  client_header_timeout: 5s\n"
    "  client_body_timeout: 1m30s\n"
    "  keepalive_timeout: 250ms\n"
    "  max_connections: 500\n"
    "  max_connections_per_ip: 20\n"
    "  shutdown_timeout: 0s\n"
    "log:\n"
    "  access: logs/access.log\n"
    "  ring_entries: 1000\n"
    "  level: debug\n"
    "upstreams:\n"
    "  orders:\n"
    "    targets:\n"
    "      - url: http://127.0.0.1:9001\n"
    "        weight: 3\n"
    "      - url: http://localhost\n"
    "    balance: least_conn\n"
    "    keepalive: 8\n"
    "    idle_timeout: 30s\n"
    "    connect_timeout: 500ms\n"
    "    read_timeout: 2m\n"
    "    retries: 2\n"
    "    preserve_host: true\n"
    "    tls_verify: false\n"
    "  users:\n"
    "    targets:\n"
    "      - url: \"http://[::1]:9002/\"\n"
    "routes:\n"
    "  - name: orders\n"
    "    match:\n"
    "      path: /api/orders\n"
    "      methods: [GET, POST]\n"
    "    upstream: orders\n"
    "    strip_prefix: /api\n"
    "    headers:\n"
    "      request:\n"
    "        set: {X-Api-Version: \"2\", Authorization: \"Bearer s3cret\"}\n"
    "        remove: [Cookie]\n"
    "      response:\n"
    "        set: {Strict-Transport-Security: \"max-age=31536000\"}\n"
    "        remove: [Server]\n"
    "  - match:\n"
    "      path: /users/{id}\n"
    "      type: exact\n"
    "      host: \"*.example.com\"\n"
    "    upstream: users\n"
    "    rewrite: /v2/users/{id}\n"
    "    strip_prefix: ~\n";

static void check_full_top(pc_config *c)
{
    cr_assert_eq(c->workers, 3);
    cr_assert_eq(c->workers_auto, 0);
    cr_assert_eq(c->generation, 1);
    cr_assert_eq(c->nlistens, 2);
    cr_assert_str_eq(c->listens[0].address, "127.0.0.1:18080");
    const struct sockaddr_in *v4 = (const void *)&c->listens[0].addr;
    cr_assert_eq(v4->sin_family, AF_INET);
    cr_assert_eq(ntohs(v4->sin_port), 18080);
    cr_assert_eq(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
    cr_assert_eq(c->listens[1].addr.ss_family, AF_INET6);
    cr_assert_eq(c->listens[1].addrlen, sizeof(struct sockaddr_in6));
    cr_assert_eq(c->listens[0].tls, 0);
    cr_assert_str_eq(c->admin_listen, "127.0.0.1:19901");
    cr_assert_str_eq(c->admin_token, "tok-123");
    cr_assert_eq(c->ntrusted_proxies, 3);
    cr_assert_str_eq(c->trusted_proxies_text[1], "2001:db8::/32");
    pc_ip ip;
    cr_assert_eq(pc_ip_parse("10.9.8.7", 8, &ip), 0);
    cr_assert(pc_cidr_set_contains(c->trusted_proxies, &ip));
    cr_assert_eq(pc_ip_parse("11.0.0.1", 8, &ip), 0);
    cr_assert(!pc_cidr_set_contains(c->trusted_proxies, &ip));
    cr_assert_eq(c->limits.max_header_bytes, 32 * 1024);
    cr_assert_eq(c->limits.max_headers, 50);
    cr_assert_eq(c->limits.max_body_bytes, 2 * 1024 * 1024);
    cr_assert_eq(c->limits.client_header_timeout, 5000);
    cr_assert_eq(c->limits.client_body_timeout, 90000);
    cr_assert_eq(c->limits.keepalive_timeout, 250);
    cr_assert_eq(c->limits.max_connections, 500);
    cr_assert_eq(c->limits.max_connections_per_ip, 20);
    cr_assert_eq(c->limits.shutdown_timeout, 0);
    cr_assert_str_eq(c->log.access, "/tmp/logs/access.log");
    cr_assert_eq(c->log.ring_entries, 1024);
    cr_assert_eq(c->log.level, PC_LOG_DEBUG);
}

static void check_full_upstreams(pc_config *c)
{
    cr_assert_eq(c->nupstreams, 2);
    pc_upstream *o = pc_config_upstream(c, "orders");
    cr_assert_not_null(o);
    cr_assert_null(pc_config_upstream(c, "nope"));
    cr_assert_eq(o->ntargets, 2);
    cr_assert_str_eq(o->targets[0].url, "http://127.0.0.1:9001");
    cr_assert_str_eq(o->targets[0].host, "127.0.0.1");
    cr_assert_eq(o->targets[0].port, 9001);
    cr_assert_str_eq(o->targets[0].hostport, "127.0.0.1:9001");
    cr_assert_eq(o->targets[0].weight, 3);
    const struct sockaddr_in *a = (const void *)&o->targets[0].addr;
    cr_assert_eq(a->sin_family, AF_INET);
    cr_assert_eq(ntohs(a->sin_port), 9001);
    cr_assert_eq(o->targets[1].port, 80);
    cr_assert_str_eq(o->targets[1].hostport, "localhost");
    cr_assert_eq(o->targets[1].weight, 1);
    cr_assert_eq(o->targets[1].index, 1);
    cr_assert_gt(o->targets[1].addrlen, 0);
    cr_assert_eq(o->balance, PC_BAL_LEAST_CONN);
    cr_assert_eq(o->keepalive, 8);
    cr_assert_eq(o->idle_timeout, 30000);
    cr_assert_eq(o->connect_timeout, 500);
    cr_assert_eq(o->read_timeout, 120000);
    cr_assert_eq(o->retries, 2);
    cr_assert_eq(o->preserve_host, 1);
    cr_assert_eq(o->tls_verify, 0);
    cr_assert_null(o->ssl_ctx);
    pc_upstream *u = pc_config_upstream(c, "users");
    cr_assert_eq(u->index, 1);
    cr_assert_str_eq(u->targets[0].host, "::1");
    cr_assert_str_eq(u->targets[0].hostport, "[::1]:9002");
    cr_assert_eq(u->targets[0].addr.ss_family, AF_INET6);
    /* defaults */
    cr_assert_eq(u->balance, PC_BAL_ROUND_ROBIN);
    cr_assert_eq(u->keepalive, 64);
    cr_assert_eq(u->idle_timeout, 60000);
    cr_assert_eq(u->connect_timeout, 2000);
    cr_assert_eq(u->read_timeout, 30000);
    cr_assert_eq(u->retries, 1);
    cr_assert_eq(u->preserve_host, 0);
    cr_assert_eq(u->tls_verify, 1);
}

static void check_full_routes(pc_config *c)
{
    cr_assert_eq(c->nroutes, 2);
    pc_route *r = &c->routes[0];
    cr_assert_str_eq(r->name, "orders");
    cr_assert_str_eq(r->path, "/api/orders");
    cr_assert_eq(r->exact, 0);
    cr_assert_eq(r->methods, PC_M_GET | PC_M_POST);
    cr_assert_null(r->host);
    cr_assert_eq(r->upstream, pc_config_upstream(c, "orders"));
    cr_assert_str_eq(r->strip_prefix, "/api");
    cr_assert_null(r->rewrite);
    cr_assert_eq(r->req_headers.nset, 2);
    cr_assert_str_eq(r->req_headers.set[0].name, "X-Api-Version");
    cr_assert_str_eq(r->req_headers.set[0].value, "2");
    cr_assert_eq(r->req_headers.nremove, 1);
    cr_assert_str_eq(r->req_headers.remove[0], "Cookie");
    cr_assert_str_eq(r->resp_headers.remove[0], "Server");
    pc_route *r2 = &c->routes[1];
    cr_assert_str_eq(r2->name, "route2");
    cr_assert_eq(r2->exact, 1);
    cr_assert_eq(r2->methods, 0);
    cr_assert_str_eq(r2->host, "*.example.com");
    cr_assert_str_eq(r2->rewrite, "/v2/users/{id}");
    cr_assert_null(r2->strip_prefix); /* `~` is the same as absent */
    cr_assert_eq(r2->index, 1);

    pc_trie_match m;
    const char *p = "/api/orders/42";
    cr_assert_eq(pc_trie_lookup(c->trie, NULL, 0, p, strlen(p), PC_M_GET, &m),
                 PC_TRIE_FOUND);
    cr_assert_eq(m.data, r);
    cr_assert_eq(
        pc_trie_lookup(c->trie, NULL, 0, p, strlen(p), PC_M_DELETE, &m),
        PC_TRIE_BAD_METHOD);
    cr_assert_eq(m.allow, PC_M_GET | PC_M_POST);
    p = "/users/7";
    cr_assert_eq(pc_trie_lookup(c->trie, "a.example.com", 13, p, strlen(p),
                                PC_M_GET, &m),
                 PC_TRIE_FOUND);
    cr_assert_eq(m.data, r2);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(
        pc_trie_lookup(c->trie, "example.org", 11, p, strlen(p), PC_M_GET, &m),
        PC_TRIE_NOT_FOUND);
}

Test(config, full_valid_config)
{
    setenv("PC_T_ADMIN_TOKEN", "tok-123", 1);
    pc_config *c = load(full_yaml);
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_eq(errs.n, 0);
    check_full_top(c);
    check_full_upstreams(c);
    check_full_routes(c);
    pc_config_unref(c);
    pc_errors_free(&errs);
}

Test(config, to_json_masks_secrets)
{
    setenv("PC_T_ADMIN_TOKEN", "tok-123", 1);
    pc_config *c = load(full_yaml);
    cr_assert_not_null(c);
    json_t *j = pc_config_to_json(c);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_object_get(j, "admin"), "token")),
                     "***");
    cr_assert_eq(json_integer_value(json_object_get(j, "workers")), 3);
    json_t *lim = json_object_get(j, "limits");
    cr_assert_str_eq(
        json_string_value(json_object_get(lim, "client_body_timeout")),
        "1m30s");
    cr_assert_str_eq(
        json_string_value(json_object_get(lim, "shutdown_timeout")), "0s");
    cr_assert_eq(json_integer_value(json_object_get(lim, "max_body_bytes")),
                 2097152);
    json_t *r0 = json_array_get(json_object_get(j, "routes"), 0);
    json_t *set = json_object_get(
        json_object_get(json_object_get(r0, "headers"), "request"), "set");
    cr_assert_str_eq(json_string_value(json_object_get(set, "Authorization")),
                     "***");
    cr_assert_str_eq(json_string_value(json_object_get(set, "X-Api-Version")),
                     "2");
    json_t *methods = json_object_get(json_object_get(r0, "match"), "methods");
    cr_assert_eq(json_array_size(methods), 2);
    cr_assert_str_eq(json_string_value(json_array_get(methods, 1)), "POST");
    json_t *ord = json_object_get(json_object_get(j, "upstreams"), "orders");
    cr_assert_str_eq(json_string_value(json_object_get(ord, "read_timeout")),
                     "2m");
    cr_assert_str_eq(json_string_value(json_object_get(ord, "balance")),
                     "least_conn");
    char *text = json_dumps(j, JSON_COMPACT);
    cr_assert_null(strstr(text, "tok-123"));
    cr_assert_null(strstr(text, "s3cret"));
    cr_assert_not_null(strstr(text, "\"strip_prefix\":\"/api\""));
    free(text);
    json_decref(j);
    pc_config_unref(c);
    pc_errors_free(&errs);
}

/* Issue 7 E.18: every value that came from ${ENV}, wherever it sits and
 * whatever its type, is "***" in the JSON view, and so is every secret key;
 * literal non-secret values stay readable. */
static const char env_yaml[] =
    "listen: [{address: \"${PC_T_E_LISTEN}\"}]\n"
    "admin: {listen: 127.0.0.1:19955, token: literal-admin-token}\n"
    "acl: {allow: [\"${PC_T_E_CIDR}\", 127.0.0.0/8]}\n"
    "jwt:\n"
    "  providers:\n"
    "    - name: main\n"
    "      algorithms: [HS256]\n"
    "      secret: literal-jwt-secret-0123456789abcdef0123456789abcdef\n"
    "      forward_claims: {sub: \"${PC_T_E_CLAIMHDR}\"}\n"
    "upstreams:\n"
    "  envup:\n"
    "    targets: [{url: \"${PC_T_E_URL}\", weight: \"${PC_T_E_WEIGHT}\"}]\n"
    "    connect_timeout: ${PC_T_E_TIMEOUT}\n"
    "    preserve_host: ${PC_T_E_BOOL}\n"
    "routes:\n"
    "  - name: r1\n"
    "    match: {path: \"${PC_T_E_PATH}\", methods: [\"${PC_T_E_METHOD}\", GET]}\n"
    "    upstream: envup\n"
    "    validate: {content_types: [\"${PC_T_E_CTYPE}\"]}\n"
    "    headers:\n"
    "      request:\n"
    "        set:\n"
    "          X-Api-Credential: \"${PC_T_E_CRED}\"\n"
    "          X-Client-Ident: \"Bearer ${PC_T_E_BEARER}\"\n"
    "          X-Note: plain-note\n"
    "          \"${PC_T_E_HNAME}\": fixed\n"
    "        remove: [\"${PC_T_E_RM}\"]\n"
    "  - name: r2\n"
    "    match: {path: /literal}\n"
    "    upstream: envup\n"
    "    auth: {jwt: main}\n"
    "    verify_signature: {secret: literal-sig-secret}\n";

static const char *const env_vals[][2] = {
    {"PC_T_E_LISTEN", "127.0.0.1:18555"},
    {"PC_T_E_CIDR", "10.11.12.0/24"},
    {"PC_T_E_CLAIMHDR", "X-Env-Claim-Hdr"},
    {"PC_T_E_URL", "http://127.0.0.1:9123"},
    {"PC_T_E_WEIGHT", "7"},
    {"PC_T_E_TIMEOUT", "1500ms"},
    {"PC_T_E_BOOL", "true"},
    {"PC_T_E_PATH", "/envpath-unit"},
    {"PC_T_E_METHOD", "POST"},
    {"PC_T_E_CTYPE", "Application/Vnd.Env+JSON"},
    {"PC_T_E_CRED", "cred-from-env-0451"},
    {"PC_T_E_BEARER", "bearer-part-9f0e"},
    {"PC_T_E_HNAME", "X-Env-Named-Hdr"},
    {"PC_T_E_RM", "X-Remove-Me-Env"},
};

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert_not_null(v, "no key '%s'", k);
    return json_is_string(v) ? json_string_value(v) : "(not a string)";
}

static void check_env_routes(json_t *j)
{
    json_t *r1 = json_array_get(json_object_get(j, "routes"), 0);
    json_t *match = json_object_get(r1, "match");
    cr_assert_str_eq(jstr(match, "path"), "***");
    json_t *methods = json_object_get(match, "methods");
    for (size_t i = 0; i < json_array_size(methods); i++)
        cr_assert_str_neq(json_string_value(json_array_get(methods, i)), "POST");
    cr_assert_str_eq(jstr(r1, "upstream"), "envup");
    json_t *ct = json_object_get(json_object_get(r1, "validate"), "content_types");
    cr_assert_str_eq(json_string_value(json_array_get(ct, 0)), "***");
    json_t *req = json_object_get(json_object_get(r1, "headers"), "request");
    json_t *set = json_object_get(req, "set");
    cr_assert_str_eq(jstr(set, "X-Api-Credential"), "***");
    cr_assert_str_eq(jstr(set, "X-Client-Ident"), "***");
    cr_assert_str_eq(jstr(set, "X-Note"), "plain-note");
    cr_assert_str_eq(jstr(set, "***"), "***"); /* the name came from ${ENV} */
    cr_assert_eq(json_object_size(set), 4);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(req, "remove"), 0)),
                     "***");
    json_t *r2 = json_array_get(json_object_get(j, "routes"), 1);
    cr_assert_str_eq(jstr(json_object_get(r2, "match"), "path"), "/literal");
    cr_assert_str_eq(jstr(json_object_get(r2, "verify_signature"), "secret"), "***");
    cr_assert_str_eq(jstr(json_object_get(r2, "auth"), "jwt"), "main");
}

static void check_env_top(json_t *j)
{
    json_t *l0 = json_array_get(json_object_get(j, "listen"), 0);
    cr_assert_str_eq(jstr(l0, "address"), "***");
    json_t *admin = json_object_get(j, "admin");
    cr_assert_str_eq(jstr(admin, "token"), "***");
    cr_assert_str_eq(jstr(admin, "listen"), "127.0.0.1:19955");
    json_t *allow = json_object_get(json_object_get(j, "acl"), "allow");
    cr_assert_str_eq(json_string_value(json_array_get(allow, 0)), "***");
    cr_assert_str_eq(json_string_value(json_array_get(allow, 1)), "127.0.0.0/8");
    json_t *p = json_array_get(json_object_get(json_object_get(j, "jwt"), "providers"), 0);
    cr_assert_str_eq(jstr(p, "secret"), "***");
    cr_assert_str_eq(jstr(json_object_get(p, "forward_claims"), "sub"), "***");
    json_t *up = json_object_get(json_object_get(j, "upstreams"), "envup");
    json_t *t0 = json_array_get(json_object_get(up, "targets"), 0);
    cr_assert_str_eq(jstr(t0, "url"), "***");
    cr_assert_str_eq(jstr(t0, "weight"), "***");   /* a number */
    cr_assert_str_eq(jstr(up, "connect_timeout"), "***"); /* a duration */
    cr_assert_str_eq(jstr(up, "preserve_host"), "***");   /* a boolean */
    cr_assert_str_eq(jstr(up, "read_timeout"), "30s");
}

Test(config, to_json_hides_env_values)
{
    for (size_t i = 0; i < sizeof env_vals / sizeof env_vals[0]; i++)
        setenv(env_vals[i][0], env_vals[i][1], 1);
    pc_config *c = load(env_yaml);
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_eq(c->upstreams[0].targets[0].weight, 7); /* the real values */
    cr_assert_str_eq(c->routes[0].req_headers.set[1].value, "Bearer bearer-part-9f0e");
    json_t *j = pc_config_to_json(c);
    cr_assert_not_null(j);
    check_env_top(j);
    check_env_routes(j);
    char *text = json_dumps(j, JSON_COMPACT);
    for (size_t i = 0; i < sizeof env_vals / sizeof env_vals[0]; i++)
        if (strlen(env_vals[i][1]) > 4) /* "7", "true": too common to grep */
            cr_assert_null(strcasestr(text, env_vals[i][1]), "%s leaked: %s",
                           env_vals[i][0], text);
    cr_assert_null(strstr(text, "literal-admin-token"));
    cr_assert_null(strstr(text, "literal-jwt-secret"));
    cr_assert_null(strstr(text, "literal-sig-secret"));
    free(text);
    json_decref(j);
    pc_config_unref(c);
    pc_errors_free(&errs);
}

Test(config, defaults)
{
    pc_config *c = load(MIN_LISTEN);
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_eq(c->workers_auto, 1);
    cr_assert_eq(c->workers, (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_null(c->admin_listen);
    cr_assert_null(c->admin_token);
    cr_assert_not_null(c->trusted_proxies);
    cr_assert_eq(pc_cidr_set_count(c->trusted_proxies), 0);
    cr_assert_eq(c->limits.max_header_bytes, 16384);
    cr_assert_eq(c->limits.max_headers, 100);
    cr_assert_eq(c->limits.max_body_bytes, 1048576);
    cr_assert_eq(c->limits.client_header_timeout, 10000);
    cr_assert_eq(c->limits.client_body_timeout, 30000);
    cr_assert_eq(c->limits.keepalive_timeout, 60000);
    cr_assert_eq(c->limits.max_connections, 10000);
    cr_assert_eq(c->limits.max_connections_per_ip, 0);
    cr_assert_eq(c->limits.shutdown_timeout, 30000);
    cr_assert_str_eq(c->log.access, "stdout");
    cr_assert_eq(c->log.ring_entries, 65536);
    cr_assert_eq(c->log.level, PC_LOG_INFO);
    cr_assert_eq(c->nroutes, 0);
    cr_assert_not_null(c->trie);
    json_t *j = pc_config_to_json(c);
    cr_assert_str_eq(json_string_value(json_object_get(j, "workers")), "auto");
    cr_assert(json_is_null(json_object_get(j, "admin")));
    json_decref(j);
    pc_config_ref(c);
    cr_assert_eq(atomic_load(&c->refs), 2);
    pc_config_unref(c);
    pc_config_unref(c);
    pc_config_unref(NULL);
    pc_errors_free(&errs);
}

Test(config, missing_file)
{
    pc_errors_init(&errs, "/nonexistent/pc.yaml");
    cr_assert_null(pc_config_load("/nonexistent/pc.yaml", &errs));
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.msgs[0], "/nonexistent/pc.yaml:1:1: cannot open: No "
                                   "such file or directory");
    pc_errors_free(&errs);
}

Test(config, empty_and_not_a_mapping)
{
    load_fails("");
    EXPECT("1:1: the configuration is empty");
    pc_errors_free(&errs);
    load_fails("- a\n");
    EXPECT("1:1: the configuration must be a mapping");
    pc_errors_free(&errs);
    load_fails("workers: 2\n");
    EXPECT("1:1: missing 'listen': at least one listener is required");
    pc_errors_free(&errs);
    load_fails("listen: []\n");
    EXPECT("1:9: 'listen' needs at least one entry");
    pc_errors_free(&errs);
}

Test(config, yaml_level_errors_fail_the_load)
{
    load_fails(MIN_LISTEN "workers: 2\nworkers: 3\n");
    EXPECT("3:1: duplicate key 'workers' (first at line 2)");
    pc_errors_free(&errs);
    load_fails(MIN_LISTEN "workers: [1\n");
    cr_assert_eq(errs.n, 1);
    pc_errors_free(&errs);
}

Test(config, unknown_keys)
{
    load_fails("listen:\n"
               "  - address: 127.0.0.1:8080\n"
               "    tsl: {}\n"
               "limts: {}\n"
               "upstreams:\n"
               "  u:\n"
               "    targets: [{url: http://127.0.0.1:1, wieght: 2}]\n"
               "    balanse: x\n"
               "routes:\n"
               "  - match: {path: /, typ: exact}\n"
               "    upstream: u\n"
               "    nmae: r\n");
    EXPECT("3:5: unknown key 'tsl' in listen entry (did you mean 'tls'?)",
           "4:1: unknown key 'limts' (did you mean 'limits'?)",
           "7:41: unknown key 'wieght' in target (did you mean 'weight'?)",
           "8:5: unknown key 'balanse' in upstream (did you mean 'balance'?)",
           "10:22: unknown key 'typ' in match (did you mean 'type'?)",
           "12:5: unknown key 'nmae' in route (did you mean 'name'?)");
    pc_errors_free(&errs);
}

Test(config, later_features_rejected)
{
    load_fails(MIN_LISTEN "cache: {}\n"
                          "upstreams:\n"
                          "  u:\n"
                          "    targets: [{url: http://127.0.0.1:1}]\n"
                          "    health_check: {path: /}\n"
                          "    circuit_breaker: {failures: 0}\n"
                          "routes:\n"
                          "  - match: {path: /}\n"
                          "    upstream: u\n"
                          "    compress: {}\n"
                          "    rate_limit: {rate: 1, scope: cluster}\n"
                          "    cache: {}\n"
                          "webhooks: {}\n");
    EXPECT("7:33: value 0 for 'failures' out of range 1..1000",
           "12:34: 'scope: cluster' needs the top-level 'redis' block "
           "(address of the shared Redis)",
           "14:11: expected a list for 'webhooks', got a mapping");
    pc_errors_free(&errs);
}

/* The cache blocks (CONTRACT §2): defaults, ranges, store: redis accepted
 * with a redis block and refused at its position without one. */
Test(config, cache_blocks)
{
    pc_config *c = load(MIN_LISTEN "cache: {memory: 8m}\n" MIN_UP
                                   "routes:\n"
                                   "  - match: {path: /}\n"
                                   "    upstream: u\n"
                                   "    cache: {ttl: 30s, methods: [GET]}\n");
    cr_assert_not_null(c);
    json_t *j = pc_config_to_json(c);
    json_t *g = json_object_get(j, "cache");
    cr_assert_eq(json_integer_value(json_object_get(g, "memory")), 8 << 20);
    json_t *r = json_object_get(json_array_get(json_object_get(j, "routes"), 0),
                                "cache");
    cr_assert_str_eq(json_string_value(json_object_get(r, "ttl")), "30s");
    cr_assert_eq(json_integer_value(json_object_get(r, "max_object_bytes")),
                 1 << 20);
    cr_assert_eq(json_array_size(json_object_get(r, "methods")), 1);
    json_decref(j);
    pc_config_unref(c);

    c = load(MIN_LISTEN "redis: {address: 127.0.0.1:6379}\n"
                        "cache: {store: redis}\n" MIN_UP
                        "routes:\n"
                        "  - match: {path: /}\n"
                        "    upstream: u\n"
                        "    cache: {}\n");
    cr_assert_not_null(c);
    j = pc_config_to_json(c);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "cache"), "store")),
                     "redis");
    json_decref(j);
    pc_config_unref(c);

    load_fails(MIN_LISTEN "cache: {memory: 1k, store: redis}\n" MIN_UP
                          "routes:\n"
                          "  - match: {path: /}\n"
                          "    upstream: u\n"
                          "    cache: {ttl: 1500ms, methods: [POST], "
                          "max_object_bytes: 0, x: 1}\n");
    EXPECT("2:17: cache: 'memory' out of range 64k..1t",
           "2:28: cache: 'store: redis' needs the top-level 'redis' block",
           "7:18: cache: 'ttl' must be whole seconds, at most 3650d",
           "7:36: cache: method 'POST' is not cacheable here (GET, HEAD)",
           "7:61: cache: 'max_object_bytes' out of range 1..1g",
           "7:64: unknown key 'x' in cache");
    pc_errors_free(&errs);
}

/* Blocks owned by chain stages are read by the stage: their errors carry
 * the stage's messages at the offending node. */
Test(config, stage_blocks_checked)
{
    load_fails(MIN_LISTEN "acl: {deny: [10.0.0.0/33]}\n"
                          "upstreams:\n"
                          "  u:\n"
                          "    targets: [{url: http://127.0.0.1:1}]\n"
                          "routes:\n"
                          "  - match: {path: /}\n"
                          "    upstream: u\n"
                          "    auth: {jwt: nobody}\n"
                          "    verify_signature: {header: X-Sig}\n"
                          "    validate: {content_types: [json], typo: 1}\n");
    EXPECT("2:14: invalid CIDR '10.0.0.0/33' in 'deny': invalid prefix length '33' (0..32)",
           "9:17: unknown jwt provider 'nobody'",
           "10:23: verify_signature needs 'secret'",
           "11:32: invalid media type 'json'",
           "11:39: unknown key 'typo' in validate");
    pc_errors_free(&errs);
}

Test(config, wrong_types_and_ranges)
{
    load_fails("workers: 0\n"
               "listen: {address: 127.0.0.1:8080}\n"
               "limits:\n"
               "  max_headers: many\n"
               "  max_header_bytes: 10\n"
               "  keepalive_timeout: 0s\n"
               "  max_body_bytes: 1x\n"
               "  client_body_timeout: 30\n"
               "log: {level: loud, ring_entries: [1]}\n");
    EXPECT("1:10: value 0 for 'workers' out of range 1..256",
           "2:9: expected a list for 'listen', got a mapping",
           "4:16: expected an integer for 'max_headers', got 'many'",
           "5:21: value 10 for 'max_header_bytes' out of range 1024..1048576",
           "6:22: value 0s for 'keepalive_timeout' out of range 1ms..1d",
           "7:19: invalid size '1x' for 'max_body_bytes': unknown unit 'x' "
           "(use k, m or g)",
           "8:24: invalid duration '30' for 'client_body_timeout': missing "
           "unit (ms, s, m, h or d), e.g. 10s",
           "9:14: level must be error, warn, info or debug, got 'loud'",
           "9:34: expected an integer for 'ring_entries', got a list");
    pc_errors_free(&errs);
    load_fails(MIN_LISTEN "workers: 1.5\n");
    EXPECT("2:10: expected 'auto' or an integer 1..256 for 'workers', got "
           "'1.5'");
    pc_errors_free(&errs);
    load_fails(MIN_LISTEN "workers: 257\n");
    EXPECT("2:10: value 257 for 'workers' out of range 1..256");
    pc_errors_free(&errs);
}

Test(config, bad_cidr)
{
    load_fails(MIN_LISTEN
               "trusted_proxies: [10.0.0.0/33, banana, 10.0.0.0/8, {a: 1}]\n");
    EXPECT("2:19: invalid CIDR '10.0.0.0/33' in 'trusted_proxies': invalid "
           "prefix length '33' (0..32)",
           "2:32: invalid CIDR 'banana' in 'trusted_proxies': invalid address "
           "'banana'",
           "2:52: expected a string for 'trusted_proxies', got a mapping");
    pc_errors_free(&errs);
}

Test(config, unset_env_is_one_error)
{
    unsetenv("PC_T_UNSET_TOKEN");
    load_fails(MIN_LISTEN "admin:\n"
                          "  listen: 127.0.0.1:9901\n"
                          "  token: ${PC_T_UNSET_TOKEN}\n");
    EXPECT("4:10: environment variable 'PC_T_UNSET_TOKEN' is not set");
    pc_errors_free(&errs);
}

/* Found by fuzz_config: a route path with an unset ${NAME} crashed the
 * unreachable-route check (NULL path sorted with strcmp). */
Test(config, unset_env_in_route_path)
{
    unsetenv("id");
    load_fails(MIN_LISTEN MIN_UP "routes:\n"
                                 "  - {match: {path: /a}, upstream: u}\n"
                                 "  - {match: {path: \"/b/${id}\"}, upstream: u}\n");
    EXPECT("5:20: environment variable 'id' is not set");
    pc_errors_free(&errs);
}

Test(config, route_references_and_rewrites)
{
    load_fails(MIN_LISTEN MIN_UP "routes:\n"
                                 "  - match: {path: /api/orders}\n"
                                 "    upstream: nope\n"
                                 "  - match: {path: '/api/orders/{id}'}\n"
                                 "    upstream: u\n"
                                 "    strip_prefix: /api/ord\n"
                                 "  - match: {path: /api/x}\n"
                                 "    upstream: u\n"
                                 "    strip_prefix: /api/{v}\n"
                                 "  - match: {path: '/api/y/{id}'}\n"
                                 "    upstream: u\n"
                                 "    rewrite: /v2/{ident}\n"
                                 "  - match: {path: /api/z}\n"
                                 "    upstream: u\n"
                                 "    strip_prefix: /api/\n"
                                 "  - match: {path: '/api/w/{id}'}\n"
                                 "    upstream: u\n"
                                 "    rewrite: v2/{id\n"
                                 "  - match: {path: '/api/v/{id}'}\n"
                                 "    upstream: u\n"
                                 "    rewrite: /v2/{id\n");
    EXPECT("5:15: unknown upstream 'nope'",
           "8:19: strip_prefix '/api/ord' is not a prefix of match.path "
           "'/api/orders/{id}' on a segment boundary",
           "11:19: strip_prefix '/api/{v}' must be a literal path starting "
           "with '/', without {params}",
           "14:14: rewrite uses '{ident}', which is not a parameter of "
           "match.path '/api/y/{id}'",
           "17:19: strip_prefix '/api/' must not end with '/'",
           "20:14: rewrite 'v2/{id' must start with '/'",
           "23:14: rewrite '/v2/{id' has a malformed {param}");
    pc_errors_free(&errs);
}

Test(config, good_strip_prefixes)
{
    pc_config *c =
        load(MIN_LISTEN MIN_UP
             "routes:\n"
             "  - {match: {path: /api/orders}, upstream: u, "
             "strip_prefix: /api/orders}\n"
             "  - {match: {path: '/api/x/{id}'}, upstream: u, "
             "strip_prefix: /api}\n"
             "  - {match: {path: /b}, upstream: u, strip_prefix: /}\n"
             "  - {match: {path: '/c/{a}/{b}'}, upstream: u, "
             "rewrite: '/x/{b}-{a}'}\n");
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_eq(c->nroutes, 4);
    pc_config_unref(c);
    pc_errors_free(&errs);
}

Test(config, route_match_errors)
{
    load_fails(MIN_LISTEN MIN_UP
               "routes:\n"
               "  - name: a\n"
               "    match: {path: /a, methods: [get, FETCH, GET]}\n"
               "    upstream: u\n"
               "  - name: a\n"
               "    match: {path: /b, methods: [], type: fuzzy}\n"
               "    upstream: u\n"
               "  - name: 'bad name'\n"
               "    match: {path: /c/../d, host: 'api.example.com:80'}\n"
               "    upstream: u\n"
               "  - match: {path: 'x/{}'}\n"
               "    upstream: u\n"
               "  - upstream: u\n");
    EXPECT("5:33: unknown method 'get' (expected upper-case GET, HEAD, POST, "
           "PUT, DELETE, PATCH, OPTIONS, TRACE or CONNECT)",
           "5:38: unknown method 'FETCH' (expected upper-case GET, HEAD, "
           "POST, PUT, DELETE, PATCH, OPTIONS, TRACE or CONNECT)",
           "7:11: duplicate route name 'a' (first at line 4)",
           "8:32: 'methods' must not be empty (leave it out to allow every "
           "method)",
           "8:42: type must be prefix or exact, got 'fuzzy'",
           "10:11: invalid route name 'bad name' (1..128 characters of A-Z a-z "
           "0-9 _ . -)",
           "11:19: invalid match.path '/c/../d': dot segment '..' in pattern "
           "(request paths are normalised and never contain one)",
           "11:34: invalid match.host 'api.example.com:80': expected a host "
           "name like api.example.com or *.example.com, without port",
           "13:19: invalid match.path 'x/{}': must start with '/'",
           "15:5: route 'route5' needs 'match'");
    pc_errors_free(&errs);
}

Test(config, unreachable_route)
{
    load_fails(
        MIN_LISTEN MIN_UP
        "routes:\n"
        "  - {name: a, match: {path: /x, methods: [GET]}, upstream: u}\n"
        "  - {name: b, match: {path: /x, methods: [POST]}, upstream: u}\n"
        "  - {name: c, match: {path: /x, methods: [POST, GET]}, "
        "upstream: u}\n"
        "  - {name: d, match: {path: /x, methods: [PUT]}, upstream: u}\n"
        "  - {name: e, match: {path: /x, type: exact}, upstream: u}\n"
        "  - {name: f, match: {path: /x, host: a.b}, upstream: u}\n"
        "  - {name: g, match: {path: /y}, upstream: u}\n"
        "  - {name: h, match: {path: /y, methods: [GET]}, upstream: "
        "u}\n");
    EXPECT("6:29: route 'c' can never be selected: earlier routes with the "
           "same match (first 'a' at line 4) take all its methods",
           "11:29: route 'h' can never be selected: earlier routes with the "
           "same match (first 'g' at line 10) take all its methods");
    pc_errors_free(&errs);
}

Test(config, header_rules)
{
    load_fails(MIN_LISTEN MIN_UP
               "routes:\n"
               "  - match: {path: /}\n"
               "    upstream: u\n"
               "    headers:\n"
               "      request:\n"
               "        set:\n"
               "          Host: x\n"
               "          X-Ok: \"a\\r\\nInjected: 1\"\n"
               "          Bad Name: v\n"
               "          transfer-encoding: chunked\n"
               "          X-Dup: 1\n"
               "          x-dup: 2\n"
               "        remove: [Content-Length, X-Dup, 'a:b']\n"
               "      response:\n"
               "        set: {Connection: close, Proxy-Authenticate: x}\n"
               "        put: {}\n");
    EXPECT("9:11: header 'Host' cannot be set: it is a hop-by-hop or framing "
           "header managed by the gateway",
           "10:17: value of header 'X-Ok' must not contain CR, LF or other "
           "control characters",
           "11:11: invalid header name 'Bad Name'",
           "12:11: header 'transfer-encoding' cannot be set: it is a "
           "hop-by-hop or framing header managed by the gateway",
           "14:11: header 'x-dup' is set twice",
           "15:18: header 'Content-Length' cannot be removed: the gateway "
           "needs it to frame or route the message",
           "15:34: header 'X-Dup' is both set and removed",
           "15:41: invalid header name 'a:b'",
           "17:15: header 'Connection' cannot be set: it is a hop-by-hop or "
           "framing header managed by the gateway",
           "17:34: header 'Proxy-Authenticate' cannot be set: it is a "
           "hop-by-hop or framing header managed by the gateway",
           "18:9: unknown key 'put' in headers.response (did you mean "
           "'set'?)");
    pc_errors_free(&errs);
}

Test(config, listen_and_admin_errors)
{
    load_fails("listen:\n"
               "  - address: 0.0.0.0:8080\n"
               "  - address: '*:8080'\n"
               "  - address: example.com:80\n"
               "  - address: '::1:80'\n"
               "  - address: 127.0.0.1:0\n"
               "  - {}\n"
               "  - address: :9000\n"
               "admin:\n"
               "  listen: 0.0.0.0:9000\n"
               "  token: ''\n");
    EXPECT("3:14: duplicate listen address '*:8080' (also at line 2)",
           "4:14: invalid address 'example.com:80' for 'address': host "
           "'example.com' must be a numeric address, [IPv6], * or localhost",
           "5:14: invalid address '::1:80' for 'address': an IPv6 address "
           "needs brackets: [addr]:port",
           "6:14: invalid address '127.0.0.1:0' for 'address': invalid port "
           "'0' (expected 1..65535)",
           "7:5: listen entry needs 'address'",
           "10:11: admin listen address '0.0.0.0:9000' is also a 'listen' "
           "address",
           "11:10: 'token' must not be empty");
    pc_errors_free(&errs);
}

Test(config, target_errors)
{
    load_fails(MIN_LISTEN "upstreams:\n"
                          "  a:\n"
                          "    targets:\n"
                          "      - url: ftp://127.0.0.1\n"
                          "      - url: http://127.0.0.1:1/base\n"
                          "      - url: http://nonexistent.invalid\n"
                          "      - url: http://127.0.0.1:70000\n"
                          "      - {url: http://127.0.0.1:1, weight: 0}\n"
                          "      - url: http://127.0.0.1:2\n"
                          "      - url: HTTP://127.0.0.1:2\n"
                          "      - weight: 2\n"
                          "  b: {targets: []}\n"
                          "  c: {}\n"
                          "  d e: {targets: [{url: 'http://u@127.0.0.1'}]}\n");
    EXPECT("5:14: invalid target url 'ftp://127.0.0.1': must start with "
           "http:// or https://",
           "6:14: invalid target url 'http://127.0.0.1:1/base': must not have "
           "a path, query or fragment ('/base')",
           "7:14: invalid target url 'http://nonexistent.invalid': cannot "
           "resolve 'nonexistent.invalid': *",
           "8:14: invalid target url 'http://127.0.0.1:70000': invalid port "
           "'70000' (expected 1..65535)",
           "9:43: value 0 for 'weight' out of range 1..1000",
           "11:14: duplicate target 'HTTP://127.0.0.1:2' in upstream 'a'",
           "12:9: target needs 'url'",
           "13:16: upstream 'b' needs at least one target",
           "14:6: upstream 'c' needs 'targets'",
           "15:3: invalid upstream name 'd e' (1..128 characters of A-Z a-z "
           "0-9 _ . -)",
           "15:25: invalid target url 'http://u@127.0.0.1': must not contain "
           "user information");
    pc_errors_free(&errs);
}

Test(config, multiple_errors_in_file_order)
{
    load_fails("routes:\n"
               "  - match: {path: /a}\n"
               "    upstream: missing\n"
               "listen:\n"
               "  - address: 127.0.0.1:99999\n"
               "upstreams:\n"
               "  u:\n"
               "    targets: []\n"
               "    retries: 11\n"
               "workers: auto\n"
               "log: {access: ''}\n");
    EXPECT("3:15: unknown upstream 'missing'",
           "5:14: invalid address '127.0.0.1:99999' for 'address': invalid "
           "port '99999' (expected 1..65535)",
           "8:14: upstream 'u' needs at least one target",
           "9:14: value 11 for 'retries' out of range 0..10",
           "11:15: 'access' must not be empty");
    pc_errors_free(&errs);
}

Test(config, parse_hostport)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char why[128];
    const struct sockaddr_in *v4 = (const void *)&ss;
    const struct sockaddr_in6 *v6 = (const void *)&ss;
    cr_assert_eq(pc_parse_hostport("10.1.2.3:443", &ss, &len, why, sizeof why),
                 0);
    cr_assert_eq(ntohl(v4->sin_addr.s_addr), 0x0a010203);
    cr_assert_eq(ntohs(v4->sin_port), 443);
    cr_assert_eq(len, sizeof *v4);
    cr_assert_eq(pc_parse_hostport("*:80", &ss, &len, why, sizeof why), 0);
    cr_assert_eq(v4->sin_addr.s_addr, htonl(INADDR_ANY));
    cr_assert_eq(pc_parse_hostport(":81", &ss, &len, why, sizeof why), 0);
    cr_assert_eq(v4->sin_addr.s_addr, htonl(INADDR_ANY));
    cr_assert_eq(ntohs(v4->sin_port), 81);
    cr_assert_eq(pc_parse_hostport("localhost:82", &ss, &len, why, sizeof why),
                 0);
    cr_assert_eq(v4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cr_assert_eq(pc_parse_hostport("[::1]:8443", &ss, &len, why, sizeof why),
                 0);
    cr_assert_eq(v6->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(v6->sin6_port), 8443);
    cr_assert(IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr));
    cr_assert_eq(len, sizeof *v6);
    const char *bad[] = {"127.0.0.1",   "127.0.0.1:", "127.0.0.1:65536",
                         "[::1]8080",   "[zz]:1",     "1.2.3.4:+80",
                         "host.x:80",   "[::1]",      "1.2.3:80",
                         "127.0.0.1:8a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(pc_parse_hostport(bad[i], &ss, &len, why, sizeof why), -1,
                     "%s", bad[i]);
    pc_parse_hostport("[::1]8080", &ss, &len, why, sizeof why);
    cr_assert_str_eq(why, "expected [IPv6]:port");
}

/* Makes a self-signed EC certificate for CN in dir; 0 on success. */
static int make_cert(const char *dir, const char *name, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 2 -subj /CN=%s -keyout %s/%s.key -out %s/%s.crt "
             ">/dev/null 2>&1",
             cn, dir, name, dir, name);
    return system(cmd);
}

Test(config, tls_listener_with_relative_paths)
{
    char dir[] = "/tmp/pc_tls_XXXXXX", yaml[1024];
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(make_cert(dir, "a", "a.example.com"), 0);
    cr_assert_eq(make_cert(dir, "b", "b.example.com"), 0);
    pc_tls_global_init();
    snprintf(yaml, sizeof yaml,
             "listen:\n"
             "  - address: 127.0.0.1:8443\n"
             "    tls:\n"
             "      certificates:\n"
             "        - {cert: a.crt, key: a.key}\n"
             "        - {cert: %s/b.crt, key: b.key}\n"
             "      min_version: TLSv1.3\n",
             dir);
    pc_config *c = load_in(dir, yaml);
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    pc_listen *l = &c->listens[0];
    cr_assert_eq(l->tls, 1);
    cr_assert_eq(l->ncerts, 2);
    char want[600];
    snprintf(want, sizeof want, "%s/a.crt", dir);
    cr_assert_str_eq(l->certs[0].cert, want);
    snprintf(want, sizeof want, "%s/b.key", dir);
    cr_assert_str_eq(l->certs[1].key, want);
    cr_assert_eq(l->min_version, 0x0304);
    cr_assert_not_null(l->ssl_ctx);
    json_t *j = pc_config_to_json(c);
    json_t *tls =
        json_object_get(json_array_get(json_object_get(j, "listen"), 0), "tls");
    cr_assert_str_eq(json_string_value(json_object_get(tls, "min_version")),
                     "TLSv1.3");
    json_decref(j);
    pc_config_unref(c);
    pc_errors_free(&errs);

    /* A key that does not exist is reported at the listen entry. */
    c = load_in(dir, "listen:\n"
                     "  - address: 127.0.0.1:8443\n"
                     "    tls: {certificates: [{cert: a.crt, key: nope.key}]}\n"
                     "  - address: 127.0.0.1:8444\n"
                     "    tls: {certificates: [], min_version: TLSv1.1}\n"
                     "  - address: 127.0.0.1:8445\n"
                     "    tls: {certificates: [{cert: a.crt}]}\n");
    cr_assert_null(c);
    char key_err[700];
    snprintf(key_err, sizeof key_err,
             "2:5: cannot load private key '%s/nope.key': *", dir);
    const char *want_tls[] = {
        key_err, "5:25: 'certificates' needs at least one entry",
        "5:42: min_version must be TLSv1.2 or TLSv1.3, got 'TLSv1.1'",
        "7:26: a certificates entry needs 'cert' and 'key'"};
    expect_errors(want_tls, 4);
    pc_errors_free(&errs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(config, https_upstream_gets_client_context)
{
    pc_tls_global_init();
    pc_config *c =
        load(MIN_LISTEN "upstreams:\n"
                        "  s:\n"
                        "    targets:\n"
                        "      - url: https://127.0.0.1\n"
                        "      - url: https://127.0.0.1:8443\n"
                        "  p: {targets: [{url: http://127.0.0.1}]}\n");
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    pc_upstream *s = pc_config_upstream(c, "s");
    cr_assert_not_null(s->ssl_ctx);
    cr_assert_eq(s->targets[0].tls, 1);
    cr_assert_eq(s->targets[0].port, 443);
    cr_assert_str_eq(s->targets[0].hostport, "127.0.0.1");
    cr_assert_str_eq(s->targets[1].hostport, "127.0.0.1:8443");
    cr_assert_null(pc_config_upstream(c, "p")->ssl_ctx);
    pc_config_unref(c);
    pc_errors_free(&errs);

    c = load(MIN_LISTEN "upstreams:\n"
                        "  s:\n"
                        "    targets: [{url: https://127.0.0.1}]\n"
                        "    ca_file: no-such-ca.pem\n");
    cr_assert_null(c);
    EXPECT("4:5: cannot load CA file '/tmp/no-such-ca.pem': *");
    pc_errors_free(&errs);
}

/* A forwarded claim must not take a header the gateway owns: framing would
 * smuggle, X-Forwarded-* / X-Request-Id would replace the gateway's value,
 * a bad name would inject header lines. */
Test(config, forward_claims_header_names)
{
    load_fails(MIN_LISTEN MIN_UP
               "jwt:\n"
               "  providers:\n"
               "    - name: p\n"
               "      algorithms: [HS256]\n"
               "      secret: 0123456789abcdef0123456789abcdef\n"
               "      forward_claims: {a: Content-Length, b: Transfer-Encoding,\n"
               "                       c: X-Forwarded-For, d: X-Request-Id,\n"
               "                       e: \"X A\", f: Connection, g: Authorization,\n"
               "                       h: X-User-Id}\n");
    EXPECT("8:27: forward_claims: header 'Content-Length' cannot carry a claim: it is not a header name or the gateway manages it",
           "8:46: forward_claims: header 'Transfer-Encoding' cannot carry a claim: it is not a header name or the gateway manages it",
           "9:27: forward_claims: header 'X-Forwarded-For' cannot carry a claim: it is not a header name or the gateway manages it",
           "9:47: forward_claims: header 'X-Request-Id' cannot carry a claim: it is not a header name or the gateway manages it",
           "10:27: forward_claims: header 'X A' cannot carry a claim: it is not a header name or the gateway manages it",
           "10:37: forward_claims: header 'Connection' cannot carry a claim: it is not a header name or the gateway manages it",
           "10:52: forward_claims: header 'Authorization' cannot carry a claim: it is not a header name or the gateway manages it");
    pc_errors_free(&errs);
}

/* The top-level webhooks list (CONTRACT §2): defaults, every range. */
Test(config, webhooks_block)
{
    pc_config *c = load(MIN_LISTEN MIN_UP
                        "webhooks:\n"
                        "  - url: http://127.0.0.1:9/hooks/p?x=1\n"
                        "    secret: s3\n"
                        "  - url: https://localhost\n"
                        "    events: [circuit_open, config_reloaded]\n"
                        "    secret: k\n"
                        "    timeout: 250ms\n"
                        "    max_attempts: 2\n");
    cr_assert_not_null(c);
    cr_assert_eq(c->nwebhooks, 2);
    cr_assert_str_eq(c->webhooks[0].path, "/hooks/p?x=1");
    cr_assert_eq(c->webhooks[0].timeout, 5000);
    cr_assert_eq(c->webhooks[0].max_attempts, 8);
    cr_assert_eq(c->webhooks[0].target.port, 9);
    cr_assert_str_eq(c->webhooks[1].path, "/");
    cr_assert(c->webhooks[1].target.tls);
    cr_assert_not_null(c->webhooks[1].up.ssl_ctx);
    cr_assert_eq(c->webhooks[1].timeout, 250);
    cr_assert_eq(c->webhooks[1].max_attempts, 2);
    cr_assert_eq(c->webhooks[1].events,
                 (1u << PC_EV_CIRCUIT_OPEN) | (1u << PC_EV_CONFIG_RELOADED));
    json_t *j = pc_config_to_json(c);
    char *s = json_dumps(json_object_get(j, "webhooks"), JSON_COMPACT);
    cr_assert(strstr(s, "\"secret\":\"***\""), "%s", s);
    cr_assert(!strstr(s, "s3"), "%s", s);
    free(s);
    json_decref(j);
    pc_config_unref(c);
    load_fails(MIN_LISTEN MIN_UP
               "webhooks:\n"
               "  - url: ftp://x\n"
               "    events: [circuit_open, nope]\n"
               "    timeout: 0s\n"
               "    max_attempts: 0\n"
               "    colour: red\n"
               "  - {url: 'http://127.0.0.1/a b', secret: x, events: []}\n");
    EXPECT("4:5: webhook needs 'secret' (deliveries are signed)",
           "4:10: invalid webhook url 'ftp://x': must start with http:// or "
           "https://",
           "5:28: unknown event 'nope' (expected circuit_open, circuit_closed, "
           "target_unhealthy, target_healthy, config_reloaded or "
           "config_reload_failed)",
           "6:14: value 0s for 'timeout' out of range 1ms..10m",
           "7:19: value 0 for 'max_attempts' out of range 1..100",
           "8:5: unknown key 'colour' in webhooks",
           "9:11: invalid webhook url 'http://127.0.0.1/a b': the path must be "
           "printable ASCII without spaces or a fragment",
           "9:54: 'events' must name at least one event");
    pc_errors_free(&errs);
}
