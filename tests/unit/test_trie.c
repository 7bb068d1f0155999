/* test_trie.c: the route table (lib/trie.c): matching, precedence
 * (CONTRACT §2 "Route precedence", trie.h), params, hosts, 405. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "portcullis/trie.h"

#define ID(n) ((void *)(intptr_t)(n))

static void add(pc_trie *t, int id, const char *pattern, int exact,
                const char *host, uint32_t methods)
{
    pc_trie_route r = {pattern, exact, host, methods, ID(id)};
    char err[128] = "";
    cr_assert_eq(pc_trie_insert(t, &r, err, sizeof(err)), 0,
                 "insert '%s' failed: %s", pattern, err);
}

static pc_trie_status look(const pc_trie *t, const char *host, const char *path,
                           uint32_t method, pc_trie_match *m)
{
    return pc_trie_lookup(t, host, host ? strlen(host) : 0, path, strlen(path),
                          method, m);
}

/* The id of the route chosen for host+path+method, 0 when 404, -1 when
 * 405. */
static int route_for(const pc_trie *t, const char *host, const char *path,
                     uint32_t method)
{
    pc_trie_match m;
    pc_trie_status st = look(t, host, path, method, &m);
    if (st == PC_TRIE_FOUND)
        return (int)(intptr_t)m.data;
    return st == PC_TRIE_NOT_FOUND ? 0 : -1;
}

#define EXPECT_ROUTE(t, host, path, method, want)                              \
    do {                                                                       \
        int got_ = route_for(t, host, path, method);                           \
        cr_expect_eq(got_, want, "%s %s: route %d, want %d",                   \
                     (host) ? (const char *)(host) : "(no host)",              \
                     (const char *)(path), got_, want);                        \
    } while (0)

Test(trie, prefix_on_segment_boundaries)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/x", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/x/y/z", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api//x", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/apix", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/ap", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/API", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "//api", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/x/api", PC_M_GET, 0);
    pc_trie_free(t);
}

Test(trie, exact_means_whole_path)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api/orders", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/orders/", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders/1", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/api", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/api/ordersx", PC_M_GET, 0);
    add(t, 2, "/api/orders/", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders/", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/api/orders", PC_M_GET, 1);
    pc_trie_free(t);
}

Test(trie, root_patterns)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/anything/at/all", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "//", PC_M_GET, 1);
    add(t, 2, "/", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "//", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/x", PC_M_GET, 1);
    /* Not a path: never matched, not even by "/". */
    EXPECT_ROUTE(t, NULL, "x", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "*", PC_M_GET, 0);
    pc_trie_match m;
    cr_expect_eq(pc_trie_lookup(t, NULL, 0, "/", 0, PC_M_GET, &m),
                 PC_TRIE_NOT_FOUND);
    pc_trie_free(t);
}

Test(trie, prefix_with_trailing_slash)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api/", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/x", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/apix", PC_M_GET, 0);
    add(t, 2, "/api", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/api/x", PC_M_GET, 1);
    add(t, 3, "/api/{id}", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/x", PC_M_GET, 3);
    EXPECT_ROUTE(t, NULL, "/api/", PC_M_GET, 1);
    pc_trie_free(t);
}

Test(trie, precedence_exact_before_prefix)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api/orders", 0, NULL, 0);
    add(t, 2, "/api/orders", 1, NULL, 0);
    add(t, 3, "/api/orders/{id}", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/api/orders/", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/orders/5", PC_M_GET, 3);
    /* An exact route beats even a longer, host-specific prefix route. */
    add(t, 4, "/api/orders", 0, "api.example.com", 0);
    EXPECT_ROUTE(t, "api.example.com", "/api/orders", PC_M_GET, 2);
    EXPECT_ROUTE(t, "api.example.com", "/api/orders/", PC_M_GET, 4);
    pc_trie_free(t);
}

Test(trie, precedence_more_static_segments_first)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/", 0, NULL, 0);
    add(t, 2, "/api", 0, NULL, 0);
    add(t, 3, "/api/orders", 0, NULL, 0);
    add(t, 4, "/api/orders/items", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders/items/9", PC_M_GET, 4);
    EXPECT_ROUTE(t, NULL, "/api/orders/9", PC_M_GET, 3);
    EXPECT_ROUTE(t, NULL, "/api/other", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/other", PC_M_GET, 1);
    pc_trie_free(t);

    /* Same routes inserted the other way round: order does not matter. */
    t = pc_trie_new();
    add(t, 4, "/api/orders/items", 0, NULL, 0);
    add(t, 3, "/api/orders", 0, NULL, 0);
    add(t, 2, "/api", 0, NULL, 0);
    add(t, 1, "/", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders/items/9", PC_M_GET, 4);
    EXPECT_ROUTE(t, NULL, "/api/orders/9", PC_M_GET, 3);
    EXPECT_ROUTE(t, NULL, "/api/other", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/other", PC_M_GET, 1);
    pc_trie_free(t);

    /* Static leading segments count before later {param}s: "/x/{b}" has
     * one, "/{a}/x/y" none, though the latter is longer. */
    t = pc_trie_new();
    add(t, 1, "/{a}/x/y", 0, NULL, 0);
    add(t, 2, "/x/{b}", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/x/x/y", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/q/x/y", PC_M_GET, 1);
    pc_trie_free(t);

    /* "/a/b/{y}" (two static) before "/a/{x}/c" (one static). */
    t = pc_trie_new();
    add(t, 1, "/a/{x}/c", 0, NULL, 0);
    add(t, 2, "/a/b/{y}", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/a/b/c", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/a/z/c", PC_M_GET, 1);
    pc_trie_free(t);
}

Test(trie, precedence_static_before_param)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/users/{id}", 1, NULL, 0);
    add(t, 2, "/users/me", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/users/me", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/users/42", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/users/", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/users", PC_M_GET, 0);
    pc_trie_free(t);

    /* Later segments decide when the leading ones agree. */
    t = pc_trie_new();
    add(t, 1, "/a/{x}/{y}/d", 1, NULL, 0);
    add(t, 2, "/a/{x}/c/{z}", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/a/1/c/d", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/a/1/q/d", PC_M_GET, 1);
    pc_trie_free(t);
}

Test(trie, precedence_longer_pattern_first)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/a/{x}", 0, NULL, 0);
    add(t, 2, "/a/{x}/c", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/a/1/c/d", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/a/1/d", PC_M_GET, 1);
    /* A static route wins over a param route matching the same path, but
     * only where it matches. */
    add(t, 3, "/a", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/a/1", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/a", PC_M_GET, 3);
    EXPECT_ROUTE(t, NULL, "/a/", PC_M_GET, 3);
    pc_trie_free(t);
}

Test(trie, precedence_host_then_file_order)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api", 0, NULL, 0);
    add(t, 2, "/api", 0, "*.example.com", 0);
    add(t, 3, "/api", 0, "api.example.com", 0);
    add(t, 4, "/api", 0, "api.example.com", 0);
    add(t, 5, "/api", 0, "*.eu.example.com", 0);
    EXPECT_ROUTE(t, "api.example.com", "/api/x", PC_M_GET, 3);
    EXPECT_ROUTE(t, "www.example.com", "/api/x", PC_M_GET, 2);
    EXPECT_ROUTE(t, "a.eu.example.com", "/api/x", PC_M_GET, 5);
    EXPECT_ROUTE(t, "eu.example.com", "/api/x", PC_M_GET, 2);
    EXPECT_ROUTE(t, "example.com", "/api/x", PC_M_GET, 1);
    EXPECT_ROUTE(t, "other.org", "/api/x", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/x", PC_M_GET, 1);
    pc_trie_free(t);

    /* Path precedence comes before host precedence. */
    t = pc_trie_new();
    add(t, 1, "/api", 0, "api.example.com", 0);
    add(t, 2, "/api/orders", 0, NULL, 0);
    EXPECT_ROUTE(t, "api.example.com", "/api/orders/1", PC_M_GET, 2);
    EXPECT_ROUTE(t, "api.example.com", "/api/users", PC_M_GET, 1);
    EXPECT_ROUTE(t, "other", "/api/users", PC_M_GET, 0);
    pc_trie_free(t);

    /* Identical routes: the first in the file wins. */
    t = pc_trie_new();
    add(t, 7, "/same/{p}", 1, NULL, 0);
    add(t, 8, "/same/{q}", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/same/x", PC_M_GET, 7);
    pc_trie_free(t);
}

Test(trie, hosts)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/", 0, "API.Example.com", 0);
    add(t, 2, "/", 0, "*.Wild.example.com", 0);
    EXPECT_ROUTE(t, "api.example.com", "/", PC_M_GET, 1);
    EXPECT_ROUTE(t, "API.EXAMPLE.COM", "/", PC_M_GET, 1);
    EXPECT_ROUTE(t, "api.example.com.", "/", PC_M_GET, 1);
    EXPECT_ROUTE(t, "api.example.co", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, "xapi.example.com", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, "a.api.example.com", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, "a.wild.example.com", "/", PC_M_GET, 2);
    EXPECT_ROUTE(t, "A.B.WILD.example.com", "/", PC_M_GET, 2);
    EXPECT_ROUTE(t, "wild.example.com", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, "xwild.example.com", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, ".wild.example.com", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, "", "/", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/", PC_M_GET, 0);
    pc_trie_match m;
    /* hostlen is what counts: "api.example.com:8080" cut before ':'. */
    cr_expect_eq(
        pc_trie_lookup(t, "api.example.com:8080", 15, "/", 1, PC_M_GET, &m),
        PC_TRIE_FOUND);
    pc_trie_free(t);
}

Test(trie, many_hosts_on_one_pattern)
{
    pc_trie *t = pc_trie_new();
    char hosts[300][32];
    for (int i = 0; i < 300; i++) {
        snprintf(hosts[i], sizeof(hosts[i]), "tenant%d.example.com", i);
        add(t, i + 1, "/", 0, hosts[i], 0);
    }
    add(t, 1000, "/", 0, NULL, 0);
    for (int i = 0; i < 300; i += 7)
        EXPECT_ROUTE(t, hosts[i], "/x", PC_M_GET, i + 1);
    EXPECT_ROUTE(t, "tenant300.example.com", "/x", PC_M_GET, 1000);
    pc_trie_free(t);
}

Test(trie, params_captured)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api/{version}/orders/{id}", 0, NULL, 0);
    add(t, 2, "/u/{id}", 1, NULL, 0);
    add(t, 3, "/u/{name}/x", 1, NULL, 0);
    const char *path = "/api/v2/orders/a%2Fb/items";
    pc_trie_match m;
    cr_assert_eq(look(t, NULL, path, PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 1);
    cr_assert_eq(m.nparams, 2);
    cr_expect_str_eq(m.param_names[0], "version");
    cr_expect_str_eq(m.param_names[1], "id");
    cr_expect_eq(m.params[0].off, 5);
    cr_expect_eq(m.params[0].len, 2);
    cr_expect_eq(m.params[1].off, 15);
    cr_expect_eq(m.params[1].len, 5, "%%2F is part of the segment");
    cr_expect(memcmp(path + m.params[1].off, "a%2Fb", 5) == 0);
    cr_expect_eq(m.matched_len, 20);

    /* One param edge, names per route. */
    cr_assert_eq(look(t, NULL, "/u/7", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 2);
    cr_expect_str_eq(m.param_names[0], "id");
    cr_assert_eq(look(t, NULL, "/u/bob/x", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 3);
    cr_expect_str_eq(m.param_names[0], "name");
    cr_expect_eq(m.params[0].off, 3);
    cr_expect_eq(m.params[0].len, 3);

    /* A param matches exactly one non-empty segment. */
    EXPECT_ROUTE(t, NULL, "/u/", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/u//x", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/u/a/b", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/api//orders/1", PC_M_GET, 0);
    pc_trie_free(t);
}

Test(trie, params_of_the_winner_not_of_a_loser)
{
    /* The winner is met first (static edge before param edge); the loser
     * met later must not overwrite its spans. */
    pc_trie *t = pc_trie_new();
    add(t, 1, "/a/{x}/{y}", 1, NULL, 0);
    add(t, 2, "/a/{z}/c", 1, NULL, 0);
    pc_trie_match m;
    cr_assert_eq(look(t, NULL, "/a/q/c", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 2);
    cr_assert_eq(m.nparams, 1);
    cr_expect_str_eq(m.param_names[0], "z");
    cr_expect_eq(m.params[0].off, 3);
    cr_expect_eq(m.params[0].len, 1);
    pc_trie_free(t);

    /* The loser is met first (a shorter prefix, on the way down); the
     * winner's spans replace its spans entirely. */
    t = pc_trie_new();
    add(t, 1, "/a/{x}", 0, NULL, 0);
    add(t, 2, "/a/{y}/{w}", 0, NULL, 0);
    cr_assert_eq(look(t, NULL, "/a/q/rr/s", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 2);
    cr_assert_eq(m.nparams, 2);
    cr_expect_str_eq(m.param_names[0], "y");
    cr_expect_str_eq(m.param_names[1], "w");
    cr_expect_eq(m.params[1].off, 5);
    cr_expect_eq(m.params[1].len, 2);
    cr_expect_eq(m.matched_len, 7);
    cr_assert_eq(look(t, NULL, "/a/q", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq((intptr_t)m.data, 1);
    cr_expect_eq(m.nparams, 1);
    cr_expect_str_eq(m.param_names[0], "x");
    pc_trie_free(t);
}

Test(trie, matched_len)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api", 0, NULL, 0);
    add(t, 2, "/web/", 0, NULL, 0);
    add(t, 3, "/", 0, NULL, 0);
    add(t, 4, "/x/y", 1, NULL, 0);
    pc_trie_match m;
    cr_assert_eq(look(t, NULL, "/api/orders", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq(m.matched_len, 4);
    cr_assert_eq(look(t, NULL, "/web/index.html", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq(m.matched_len, 5);
    cr_assert_eq(look(t, NULL, "/other", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq(m.matched_len, 1);
    cr_assert_eq(look(t, NULL, "/x/y", PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq(m.matched_len, 4);
    cr_expect_eq(m.nparams, 0);
    pc_trie_free(t);
}

Test(trie, methods_and_405)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/orders", 1, NULL, PC_M_GET | PC_M_HEAD);
    add(t, 2, "/orders", 1, NULL, PC_M_POST);
    add(t, 3, "/orders", 1, "admin.example.com", PC_M_DELETE);
    add(t, 4, "/orders", 0, NULL, PC_M_PATCH);
    EXPECT_ROUTE(t, NULL, "/orders", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/orders", PC_M_POST, 2);
    EXPECT_ROUTE(t, NULL, "/orders", PC_M_PATCH, 4);
    EXPECT_ROUTE(t, "admin.example.com", "/orders", PC_M_DELETE, 3);
    EXPECT_ROUTE(t, "admin.example.com", "/orders", PC_M_GET, 1);

    pc_trie_match m;
    cr_assert_eq(look(t, NULL, "/orders", PC_M_DELETE, &m), PC_TRIE_BAD_METHOD);
    /* The host-specific DELETE route does not match this host. */
    cr_expect_eq(m.allow, PC_M_GET | PC_M_HEAD | PC_M_POST | PC_M_PATCH);
    cr_expect_null(m.data);
    cr_assert_eq(look(t, "admin.example.com", "/orders", PC_M_PUT, &m),
                 PC_TRIE_BAD_METHOD);
    cr_expect_eq(m.allow,
                 PC_M_GET | PC_M_HEAD | PC_M_POST | PC_M_PATCH | PC_M_DELETE);
    /* Only the prefix route matches here. */
    cr_assert_eq(look(t, NULL, "/orders/1", PC_M_GET, &m), PC_TRIE_BAD_METHOD);
    cr_expect_eq(m.allow, PC_M_PATCH);
    cr_expect_eq(look(t, NULL, "/nothing", PC_M_GET, &m), PC_TRIE_NOT_FOUND);
    cr_expect_eq(m.allow, 0);
    pc_trie_free(t);
}

Test(trie, method_falls_back_to_a_lower_route)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/api/orders", 0, NULL, PC_M_GET);
    add(t, 2, "/api", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/api/orders/1", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/api/orders/1", PC_M_POST, 2);
    pc_trie_free(t);
}

Test(trie, unknown_methods_need_an_open_route)
{
    pc_trie *t = pc_trie_new();
    uint32_t all_known = (PC_M_OTHER - 1);
    add(t, 1, "/a", 0, NULL, all_known);
    add(t, 2, "/b", 0, NULL, 0);
    uint32_t purge = pc_method_bit("PURGE", 5);
    cr_assert_eq(purge, PC_M_OTHER);
    EXPECT_ROUTE(t, NULL, "/a", purge, -1);
    EXPECT_ROUTE(t, NULL, "/b", purge, 2);
    EXPECT_ROUTE(t, NULL, "/b", PC_M_CONNECT, 2);
    pc_trie_free(t);
}

Test(trie, method_bits_and_format)
{
    cr_expect_eq(pc_method_bit("GET", 3), PC_M_GET);
    cr_expect_eq(pc_method_bit("HEAD", 4), PC_M_HEAD);
    cr_expect_eq(pc_method_bit("POST", 4), PC_M_POST);
    cr_expect_eq(pc_method_bit("PUT", 3), PC_M_PUT);
    cr_expect_eq(pc_method_bit("DELETE", 6), PC_M_DELETE);
    cr_expect_eq(pc_method_bit("PATCH", 5), PC_M_PATCH);
    cr_expect_eq(pc_method_bit("OPTIONS", 7), PC_M_OPTIONS);
    cr_expect_eq(pc_method_bit("TRACE", 5), PC_M_TRACE);
    cr_expect_eq(pc_method_bit("CONNECT", 7), PC_M_CONNECT);
    cr_expect_eq(pc_method_bit("get", 3), PC_M_OTHER, "case-sensitive");
    cr_expect_eq(pc_method_bit("GETX", 4), PC_M_OTHER);
    cr_expect_eq(pc_method_bit("GETX", 3), PC_M_GET, "length counts");
    cr_expect_eq(pc_method_bit("", 0), PC_M_OTHER);

    char buf[128];
    cr_expect_str_eq(
        pc_methods_format(PC_M_POST | PC_M_GET | PC_M_HEAD, buf, sizeof(buf)),
        "GET, HEAD, POST");
    cr_expect_str_eq(pc_methods_format(PC_M_DELETE, buf, sizeof(buf)),
                     "DELETE");
    cr_expect_str_eq(pc_methods_format(0, buf, sizeof(buf)), "");
    cr_expect_str_eq(pc_methods_format(PC_M_OTHER - 1, buf, sizeof(buf)),
                     "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, "
                     "CONNECT");
    char small[12];
    cr_expect_str_eq(pc_methods_format(PC_M_GET | PC_M_HEAD | PC_M_POST, small,
                                       sizeof(small)),
                     "GET, HEAD", "never a partial name");
}

static void pattern_bad(const char *pattern, const char *msg_part)
{
    char err[128] = "";
    cr_expect_eq(pc_trie_check_pattern(pattern, err, sizeof(err)), -1,
                 "'%s' accepted", pattern ? pattern : "(null)");
    cr_expect(strstr(err, msg_part) != NULL,
              "message for '%s' is '%s', want '%s'",
              pattern ? pattern : "(null)", err, msg_part);
    pc_trie *t = pc_trie_new();
    pc_trie_route r = {pattern, 0, NULL, 0, NULL};
    cr_expect_eq(pc_trie_insert(t, &r, err, sizeof(err)), -1);
    pc_trie_free(t);
}

Test(trie, pattern_validation)
{
    char err[128];
    cr_expect_eq(pc_trie_check_pattern("/api/{id}/x", err, sizeof(err)), 0);
    cr_expect_eq(pc_trie_check_pattern("/", err, sizeof(err)), 0);
    cr_expect_eq(pc_trie_check_pattern("/a//b/", err, sizeof(err)), 0);
    cr_expect_eq(pc_trie_check_pattern("/a/.../b", err, sizeof(err)), 0);
    pattern_bad("api", "must start with '/'");
    pattern_bad("", "must start with '/'");
    pattern_bad(NULL, "must start with '/'");
    pattern_bad("/a/{}", "empty {}");
    pattern_bad("/a/{id}/b/{id}", "duplicate parameter 'id'");
    pattern_bad("/a{id}", "'{' inside a segment");
    pattern_bad("/{id}x", "'{' inside a segment");
    pattern_bad("/{a}{b}", "'{' inside a segment");
    pattern_bad("/{id", "'{' inside a segment");
    pattern_bad("/a}", "'}' without '{'");
    pattern_bad("/{a-b}", "invalid parameter name");
    pattern_bad("/a b", "invalid character");
    pattern_bad("/a?b", "invalid character");
    pattern_bad("/a#b", "invalid character");
    pattern_bad("/a/%zz", "two hex digits");
    pattern_bad("/a/%2", "two hex digits");
    pattern_bad("/a/../b", "dot segment");
    pattern_bad("/a/./b", "dot segment");
    pattern_bad("/a/%2e%2E", "dot segment");
    pattern_bad("/..", "dot segment");
}

Test(trie, param_limit)
{
    char pat[512] = "";
    for (int i = 0; i < PC_TRIE_MAX_PARAMS; i++)
        snprintf(pat + strlen(pat), sizeof(pat) - strlen(pat), "/{p%d}", i);
    char err[128];
    cr_expect_eq(pc_trie_check_pattern(pat, err, sizeof(err)), 0, "%s", err);
    pc_trie *t = pc_trie_new();
    add(t, 1, pat, 1, NULL, 0);
    char path[512] = "";
    for (int i = 0; i < PC_TRIE_MAX_PARAMS; i++)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/v%d", i);
    pc_trie_match m;
    cr_assert_eq(look(t, NULL, path, PC_M_GET, &m), PC_TRIE_FOUND);
    cr_expect_eq(m.nparams, PC_TRIE_MAX_PARAMS);
    cr_expect_str_eq(m.param_names[15], "p15");
    cr_expect(memcmp(path + m.params[15].off, "v15", 3) == 0);
    pc_trie_free(t);
    snprintf(pat + strlen(pat), sizeof(pat) - strlen(pat), "/{extra}");
    pattern_bad(pat, "too many parameters");
}

Test(trie, host_validation)
{
    const char *bad[] = {
        "*",    "*.",     "",     "a.*.com", "*x.example.com", ".example.com",
        "a..b", "*..com", "api.*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_trie *t = pc_trie_new();
        pc_trie_route r = {"/", 0, bad[i], 0, NULL};
        char err[128] = "";
        cr_expect_eq(pc_trie_insert(t, &r, err, sizeof(err)), -1,
                     "host '%s' accepted", bad[i]);
        cr_expect_neq(err[0], '\0');
        pc_trie_free(t);
    }
}

Test(trie, static_segments_are_stored_normalised)
{
    /* Request paths arrive normalised (pathnorm): unreserved characters
     * decoded, other escapes upper-case. Patterns are stored the same way
     * so that the two meet. */
    pc_trie *t = pc_trie_new();
    add(t, 1, "/%7euser", 1, NULL, 0);
    add(t, 2, "/caf%c3%a9", 1, NULL, 0);
    add(t, 3, "/a%2fb", 1, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/~user", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/caf%C3%A9", PC_M_GET, 2);
    EXPECT_ROUTE(t, NULL, "/a%2Fb", PC_M_GET, 3);
    EXPECT_ROUTE(t, NULL, "/a/b", PC_M_GET, 0);
    pc_trie_free(t);
}

Test(trie, encoded_slash_is_not_a_separator)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/files/{name}", 1, NULL, 0);
    add(t, 2, "/admin", 0, NULL, 0);
    EXPECT_ROUTE(t, NULL, "/files/a%2Fb", PC_M_GET, 1);
    EXPECT_ROUTE(t, NULL, "/files/a/b", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/files%2Fadmin", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/admin%2Fx", PC_M_GET, 0);
    pc_trie_free(t);
}

typedef struct order {
    int ids[64];
    int n;
} order;

static void collect(void *data, void *ctx)
{
    order *o = ctx;
    cr_assert_lt(o->n, 64);
    o->ids[o->n++] = (int)(intptr_t)data;
}

Test(trie, foreach_in_precedence_order)
{
    pc_trie *t = pc_trie_new();
    add(t, 1, "/", 0, NULL, 0);
    add(t, 2, "/api", 0, NULL, 0);
    add(t, 3, "/api/{v}/orders", 0, NULL, 0);
    add(t, 4, "/api/v1/orders", 0, NULL, 0);
    add(t, 5, "/api/v1/orders", 1, NULL, 0);
    add(t, 6, "/api", 0, "api.example.com", 0);
    add(t, 7, "/api", 0, "*.example.com", 0);
    add(t, 8, "/api/", 0, NULL, 0);
    add(t, 9, "/api", 0, NULL, 0);
    add(t, 10, "/api", 0, "*.eu.example.com", 0);
    order o = {{0}, 0};
    pc_trie_foreach(t, collect, &o);
    const int want[] = {5, 4, 3, 8, 6, 10, 7, 2, 9, 1};
    cr_assert_eq(o.n, 10);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(o.ids[i], want[i], "position %d: %d, want %d", i, o.ids[i],
                     want[i]);
    pc_trie_free(t);

    o.n = 0;
    t = pc_trie_new();
    pc_trie_foreach(t, collect, &o);
    cr_expect_eq(o.n, 0);
    pc_trie_free(t);
}

/* Lookups agree with the route the first matching loop would pick among
 * routes that cannot compete with each other, at 10,000 routes. */
Test(trie, ten_thousand_routes)
{
    enum { N = 10000 };
    static char pats[N][64];
    pc_trie *t = pc_trie_new();
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            snprintf(pats[i], 64, "/svc%d", i);
            break;
        case 1:
            snprintf(pats[i], 64, "/svc%d/v1/items/{id}", i);
            break;
        case 2:
            snprintf(pats[i], 64, "/org/{org}/proj%d/{p}/tasks", i);
            break;
        default:
            snprintf(pats[i], 64, "/static/%d/a/b/c/d", i);
            break;
        }
        add(t, i + 1, pats[i], i % 4 == 0 ? 0 : 1, NULL, 0);
    }
    for (int i = 0; i < N; i += 37) {
        char path[128];
        switch (i % 4) {
        case 0:
            snprintf(path, sizeof(path), "/svc%d/deep/er", i);
            break;
        case 1:
            snprintf(path, sizeof(path), "/svc%d/v1/items/xyz", i);
            break;
        case 2:
            snprintf(path, sizeof(path), "/org/acme/proj%d/7/tasks", i);
            break;
        default:
            snprintf(path, sizeof(path), "/static/%d/a/b/c/d", i);
            break;
        }
        EXPECT_ROUTE(t, NULL, path, PC_M_GET, i + 1);
    }
    EXPECT_ROUTE(t, NULL, "/svc10000", PC_M_GET, 0);
    EXPECT_ROUTE(t, NULL, "/svc1/v1/items/xyz/more", PC_M_GET, 0);
    pc_trie_free(t);
}

Test(trie, null_and_empty)
{
    pc_trie_match m;
    cr_expect_eq(pc_trie_lookup(NULL, NULL, 0, "/", 1, PC_M_GET, &m),
                 PC_TRIE_NOT_FOUND);
    pc_trie *t = pc_trie_new();
    cr_expect_eq(look(t, NULL, "/", PC_M_GET, &m), PC_TRIE_NOT_FOUND);
    pc_trie_free(t);
    pc_trie_free(NULL);
}
