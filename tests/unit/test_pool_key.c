/* test_pool_key.c: pc_target.pool_key (config/config_upstream.c), the name
 * of a target's connection pools: targets share pooled connections only
 * when their keys are equal, so the key must differ whenever the connection
 * made would (URL, address, tls_verify, CA file contents) and stay the same
 * across loads of an unchanged configuration (pools survive reloads). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/tls.h"

static char dir[] = "/tmp/pc_pool_key_XXXXXX";
static char conf[300];
static pc_errors errs;

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

/* A self-signed certificate, usable as a CA file, at dir/name.crt. */
static void make_ca(const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 2 -subj /CN=%s -keyout %s/%s.key -out %s/%s.crt "
             ">/dev/null 2>&1",
             name, dir, name, dir, name);
    cr_assert_eq(system(cmd), 0, "openssl failed");
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/gw.yaml", dir);
    pc_tls_global_init();
    make_ca("ca1");
    make_ca("ca2");
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static pc_config *load(const char *yaml)
{
    write_file(conf, yaml);
    pc_errors_init(&errs, conf);
    pc_config *c = pc_config_load(conf, &errs);
    cr_assert_not_null(c, "%s", errs.n ? errs.msgs[0] : "");
    pc_errors_free(&errs);
    return c;
}

static const char *key(const pc_config *c, const char *up, size_t i)
{
    const pc_upstream *u = pc_config_upstream(c, up);
    cr_assert_not_null(u, "no upstream %s", up);
    cr_assert(i < u->ntargets);
    cr_assert_not_null(u->targets[i].pool_key);
    return u->targets[i].pool_key;
}

#define LISTEN "listen: [{address: 127.0.0.1:8080}]\n"
#define S "https://127.0.0.1:8443"

static const char yaml[] =
    LISTEN "upstreams:\n"
    "  ca1:    {targets: [{url: " S "}], ca_file: ca1.crt}\n"
    "  ca1b:   {targets: [{url: " S "}], ca_file: ca1.crt, keepalive: 3,\n"
    "           connect_timeout: 5s, retries: 0, preserve_host: true}\n"
    "  ca2:    {targets: [{url: " S "}], ca_file: ca2.crt}\n"
    "  system: {targets: [{url: " S "}]}\n"
    "  off1:   {targets: [{url: " S "}], tls_verify: false}\n"
    "  off2:   {targets: [{url: " S "}], tls_verify: false, ca_file: ca2.crt}\n"
    "  plain1: {targets: [{url: http://127.0.0.1:8443}, {url: " S "}]}\n"
    "  plain2: {targets: [{url: http://127.0.0.1:8443}], tls_verify: false,\n"
    "           ca_file: ca1.crt}\n";

TestSuite(pool_key, .init = setup, .fini = teardown);

Test(pool_key, differs_with_every_connection_setting)
{
    pc_config *c = load(yaml);
    /* another CA, the system store, no verification: never shared */
    const char *ups[] = {"ca1", "ca2", "system", "off1", "plain1"};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++)
            cr_expect_str_neq(key(c, ups[i], 0), key(c, ups[j], 0), "%s vs %s",
                              ups[i], ups[j]);
    /* http and https to the same port differ */
    cr_expect_str_neq(key(c, "plain1", 0), key(c, "plain1", 1));
    cr_expect_str_eq(key(c, "plain1", 1), key(c, "system", 0));
    pc_config_unref(c);
}

Test(pool_key, same_for_settings_that_do_not_change_the_connection)
{
    pc_config *c = load(yaml);
    /* pool size, timeouts, retries, Host policy: the connection is the same */
    cr_expect_str_eq(key(c, "ca1", 0), key(c, "ca1b", 0));
    /* without verification the CA file is never read */
    cr_expect_str_eq(key(c, "off1", 0), key(c, "off2", 0));
    /* plain http: TLS settings do not apply */
    cr_expect_str_eq(key(c, "plain1", 0), key(c, "plain2", 0));
    cr_expect_str_eq(key(c, "plain1", 0),
                     "http://127.0.0.1:8443 [127.0.0.1]:8443");
    cr_expect_str_eq(key(c, "off1", 0), S " [127.0.0.1]:8443 verify=0");
    cr_expect_str_eq(key(c, "system", 0), S " [127.0.0.1]:8443 verify=1 ca=system");
    static const char ca1[] = S " [127.0.0.1]:8443 verify=1 ca=sha256:";
    cr_expect(strncmp(key(c, "ca1", 0), ca1, strlen(ca1)) == 0 &&
                  strlen(key(c, "ca1", 0)) == strlen(ca1) + 64,
              "%s", key(c, "ca1", 0));
    pc_config_unref(c);
}

Test(pool_key, stable_across_loads_until_the_ca_file_changes)
{
    pc_config *a = load(yaml), *b = load(yaml);
    const char *ups[] = {"ca1", "ca2", "system", "off1", "plain1"};
    for (size_t i = 0; i < 5; i++)
        cr_expect_str_eq(key(a, ups[i], 0), key(b, ups[i], 0), "%s", ups[i]);
    pc_config_unref(b);

    /* ca1.crt now holds ca2's certificate: same path, other trust */
    char from[300], to[300], cmd[700];
    snprintf(from, sizeof from, "%s/ca2.crt", dir);
    snprintf(to, sizeof to, "%s/ca1.crt", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", from, to);
    cr_assert_eq(system(cmd), 0);
    b = load(yaml);
    cr_expect_str_neq(key(a, "ca1", 0), key(b, "ca1", 0));
    cr_expect_str_eq(key(b, "ca1", 0), key(b, "ca2", 0));
    cr_expect_str_eq(key(a, "ca2", 0), key(b, "ca2", 0));
    pc_config_unref(a);
    pc_config_unref(b);
}

Test(pool_key, file_sha256)
{
    char p[300], hex[65];
    snprintf(p, sizeof p, "%s/abc", dir);
    write_file(p, "abc");
    cr_assert_eq(pc_tls_file_sha256(p, hex), 0);
    cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                          "b00361a396177a9cb410ff61f20015ad");
    snprintf(p, sizeof p, "%s/missing", dir);
    cr_expect_eq(pc_tls_file_sha256(p, hex), -1);
}
