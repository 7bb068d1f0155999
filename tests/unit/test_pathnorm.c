/* test_pathnorm.c: request path normalisation and Host validation
 * (lib/pathnorm.c), the guard against traversal past a route prefix and
 * against paths or hosts an upstream reads differently from the gateway.
 * Mostly tables: what is accepted (and what it becomes), what is refused
 * (and with which status or reason). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/pathnorm.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void norm_eq(const char *in, const char *want)
{
    size_t inlen = strlen(in), outlen = 9999;
    char *out = malloc(inlen + 1); /* exactly the room the header promises */
    pc_path_status st = pc_path_normalize(in, inlen, out, &outlen);
    cr_assert_eq(st, PC_PATH_OK, "'%s' gave status %d (%s)", in, st,
                 pc_path_status_message(st));
    cr_expect_str_eq(out, want, "'%s' normalised to '%s', want '%s'", in, out,
                     want);
    cr_expect_eq(outlen, strlen(want), "outlen of '%s'", in);
    free(out);
}

static void norm_status(const char *in, size_t inlen, pc_path_status want)
{
    size_t outlen = 0;
    char *out = malloc(inlen + 1);
    pc_path_status st = pc_path_normalize(in, inlen, out, &outlen);
    cr_expect_eq(st, want, "'%.*s' gave status %d (%s), want %d (%s)",
                 (int)inlen, in, st, pc_path_status_message(st), want,
                 pc_path_status_message(want));
    free(out);
}

typedef struct {
    const char *in, *want;
} path_ok;

typedef struct {
    const char *in;
    pc_path_status want;
} path_bad;

Test(pathnorm, accepted_paths)
{
    static const path_ok cases[] = {
        /* must keep working */
        {"/", "/"},
        {"/api/", "/api/"},
        {"/api/orders", "/api/orders"},
        {"/a/b.json", "/a/b.json"},
        {"/v1.2/x", "/v1.2/x"},
        {"/a/%2F/b", "/a/%2F/b"},
        {"/~user", "/~user"},
        {"/a/./b", "/a/b"},
        {"/a/b/..", "/a/"},
        {"/a-b_c~d.e", "/a-b_c~d.e"},
        {"/a,b/c=d/e:f/@g/h!$&'()*+", "/a,b/c=d/e:f/@g/h!$&'()*+"},
        {"/.a/..b/.c.d", "/.a/..b/.c.d"},
        {"/.well-known/x", "/.well-known/x"},
        /* encoded spaces and dots inside a segment are data */
        {"/a%20b", "/a%20b"},
        {"/%20a", "/%20a"},
        {"/a%2eb", "/a.b"},
        {"/x%2e%2ey", "/x..y"},
        /* encoded ';' is data, never a parameter */
        {"/a%3Bb", "/a%3Bb"},
        {"/a%3b", "/a%3B"},
        /* high bytes, encoded or not */
        {"/caf\xc3\xa9", "/caf\xc3\xa9"},
        {"/%80%ff", "/%80%FF"},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        norm_eq(cases[i].in, cases[i].want);
}

Test(pathnorm, contract_examples)
{
    norm_eq("/api/../admin", "/admin");
    norm_eq("/api/%2e%2e/admin", "/admin");
    norm_eq("/a/%2F/b", "/a/%2F/b");
    norm_eq("/a/./b/", "/a/b/");
    norm_eq("/a/..", "/");
    norm_status("/../x", 5, PC_PATH_CLIMB);
}

Test(pathnorm, decodes_only_unreserved)
{
    static const path_ok cases[] = {
        {"/%7Euser", "/~user"},
        {"/%7euser", "/~user"},
        {"/%41%42%43%61%30%2D%5F%2E%7e", "/ABCa0-_.~"},
        {"/a%2fb", "/a%2Fb"},
        {"/a%2Fb", "/a%2Fb"},
        {"/%3f%23%25", "/%3F%23%25"},
        {"/%25", "/%25"},
        {"/%2500", "/%2500"},
        {"/%252e%252e/x", "/%252e%252e/x"},
        {"/%c3%a9", "/%C3%A9"},
        {"/%5c", "/%5C"},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        norm_eq(cases[i].in, cases[i].want);
}

Test(pathnorm, dot_segments)
{
    static const path_ok cases[] = {
        /* RFC 3986 §5.2.4 */
        {"/a/b/c/./../../g", "/a/g"},
        {"/mid/content=5/../6", "/mid/6"},
        {"/a/b/..", "/a/"},
        {"/a/b/../", "/a/"},
        {"/a/b/.", "/a/b/"},
        {"/a/b/./", "/a/b/"},
        {"/.", "/"},
        {"/./", "/"},
        {"/./a", "/a"},
        {"/a/../b/../c", "/c"},
        {"/a/./././b", "/a/b"},
        {"/a/../", "/"},
        /* encoded dots make dot segments too */
        {"/api/%2E%2E/admin", "/admin"},
        {"/api/%2e%2E/admin", "/admin"},
        {"/api/.%2e/admin", "/admin"},
        {"/api/%2e./admin", "/admin"},
        {"/api/%2e/admin", "/api/admin"},
        {"/api/%2E", "/api/"},
        {"/api/x/%2e%2e", "/api/"},
        /* "..%2F" is a longer segment, never ".." then "/" */
        {"/api/..%2Fadmin", "/api/..%2Fadmin"},
        {"/api/..%2fadmin", "/api/..%2Fadmin"},
        {"/api/%2e%2e%2fadmin", "/api/..%2Fadmin"},
        {"/..%2F..%2Fetc", "/..%2F..%2Fetc"},
        {"/api/..%5C..%5Cadmin", "/api/..%5C..%5Cadmin"},
        {"/a/..%2F/b", "/a/..%2F/b"},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        norm_eq(cases[i].in, cases[i].want);
}

Test(pathnorm, refused_paths)
{
    static const path_bad cases[] = {
        /* empty segments, checked on the input as sent */
        {"//", PC_PATH_EMPTY_SEGMENT},
        {"///", PC_PATH_EMPTY_SEGMENT},
        {"//admin/x", PC_PATH_EMPTY_SEGMENT},
        {"/a//b", PC_PATH_EMPTY_SEGMENT},
        {"/a/.//b", PC_PATH_EMPTY_SEGMENT},
        {"/a//../b", PC_PATH_EMPTY_SEGMENT},
        {"/a//", PC_PATH_EMPTY_SEGMENT},
        {"/api//", PC_PATH_EMPTY_SEGMENT},
        {"//..", PC_PATH_EMPTY_SEGMENT},
        {"//../x", PC_PATH_EMPTY_SEGMENT},
        {"/a/b//c/d", PC_PATH_EMPTY_SEGMENT},
        /* path parameters */
        {"/a;b", PC_PATH_PARAM},
        {"/a;b=c/d,e", PC_PATH_PARAM},
        {"/..;/admin", PC_PATH_PARAM},
        {"/api/..;/admin", PC_PATH_PARAM},
        {"/api/.;/admin", PC_PATH_PARAM},
        {"/api/..;x=y/admin", PC_PATH_PARAM},
        {"/admin;", PC_PATH_PARAM},
        {"/;", PC_PATH_PARAM},
        {"/a/x;jsessionid=0123", PC_PATH_PARAM},
        /* encoded control characters */
        {"/%00", PC_PATH_CONTROL},
        {"/a%00b", PC_PATH_CONTROL},
        {"/admin%00.json", PC_PATH_CONTROL},
        {"/%01", PC_PATH_CONTROL},
        {"/%09", PC_PATH_CONTROL},
        {"/%0a", PC_PATH_CONTROL},
        {"/a%0d%0aX-Injected:%20x", PC_PATH_CONTROL},
        {"/%1f", PC_PATH_CONTROL},
        {"/%1F", PC_PATH_CONTROL},
        {"/%7f", PC_PATH_CONTROL},
        {"/%7F", PC_PATH_CONTROL},
        {"/x/%2e%00", PC_PATH_CONTROL},
        /* segments ending in '.' that are not dot segments */
        {"/admin.", PC_PATH_TRAILING_DOT},
        {"/admin%2e", PC_PATH_TRAILING_DOT},
        {"/admin%2E", PC_PATH_TRAILING_DOT},
        {"/admin%2e/x", PC_PATH_TRAILING_DOT},
        {"/admin..", PC_PATH_TRAILING_DOT},
        {"/admin%2e%2e", PC_PATH_TRAILING_DOT},
        {"/a.../b", PC_PATH_TRAILING_DOT},
        {"/...", PC_PATH_TRAILING_DOT},
        {"/.../x", PC_PATH_TRAILING_DOT},
        {"/%2e%2e%2e", PC_PATH_TRAILING_DOT},
        {"/a./b", PC_PATH_TRAILING_DOT},
        {"/c..", PC_PATH_TRAILING_DOT},
        {"/admin%20.", PC_PATH_TRAILING_DOT},
        /* segments ending in an encoded space */
        {"/admin%20", PC_PATH_TRAILING_SPACE},
        {"/admin%20/x", PC_PATH_TRAILING_SPACE},
        {"/%20", PC_PATH_TRAILING_SPACE},
        {"/a%20%20", PC_PATH_TRAILING_SPACE},
        {"/admin.%20", PC_PATH_TRAILING_SPACE},
        {"/.%20/x", PC_PATH_TRAILING_SPACE},
        {"/%3f%23%25%20", PC_PATH_TRAILING_SPACE},
        /* climbing above "/" */
        {"/..", PC_PATH_CLIMB},
        {"/../", PC_PATH_CLIMB},
        {"/../x", PC_PATH_CLIMB},
        {"/a/../..", PC_PATH_CLIMB},
        {"/a/../../b", PC_PATH_CLIMB},
        {"/./../a", PC_PATH_CLIMB},
        {"/a/b/../../../c", PC_PATH_CLIMB},
        {"/.%2E", PC_PATH_CLIMB},
        {"/%2e%2e", PC_PATH_CLIMB},
        {"/%2e%2e/etc/passwd", PC_PATH_CLIMB},
        {"/api/%2e%2e/%2e%2e/etc", PC_PATH_CLIMB},
        /* not a path, bad bytes, bad escapes */
        {"", PC_PATH_BAD},
        {"a/b", PC_PATH_BAD},
        {"./a", PC_PATH_BAD},
        {"%2Fa", PC_PATH_BAD},
        {"/a b", PC_PATH_BAD},
        {"/a\tb", PC_PATH_BAD},
        {"/a\x7f", PC_PATH_BAD},
        {"/a\x01", PC_PATH_BAD},
        {"/a#frag", PC_PATH_BAD},
        {"/%", PC_PATH_BAD},
        {"/%2", PC_PATH_BAD},
        {"/%zz", PC_PATH_BAD},
        {"/%2g", PC_PATH_BAD},
        {"/%g2", PC_PATH_BAD},
        {"/a%", PC_PATH_BAD},
        {"/%%30%30", PC_PATH_BAD},
        /* several problems: the first one met, left to right, wins */
        {"/a;/../..", PC_PATH_PARAM},
        {"/../a;", PC_PATH_CLIMB},
        {"/a%00;", PC_PATH_CONTROL},
        {"/a;%00", PC_PATH_PARAM},
        {"/a./b//c", PC_PATH_TRAILING_DOT},
        {"/a//b.", PC_PATH_EMPTY_SEGMENT},
        {"/a b;", PC_PATH_BAD},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        norm_status(cases[i].in, strlen(cases[i].in), cases[i].want);
}

Test(pathnorm, embedded_nul_and_length)
{
    /* An embedded NUL is a bad byte, never an early end of the path. */
    norm_status("/a\0/../..", 9, PC_PATH_BAD);
    norm_status("/", 0, PC_PATH_BAD);
}

Test(pathnorm, status_messages)
{
    static const struct {
        pc_path_status st;
        const char *msg;
    } cases[] = {
        {PC_PATH_OK, "ok"},
        {PC_PATH_BAD, "invalid character or escape in path"},
        {PC_PATH_CLIMB, "path climbs above the root"},
        {PC_PATH_EMPTY_SEGMENT, "empty path segment"},
        {PC_PATH_PARAM, "';' in path"},
        {PC_PATH_CONTROL, "encoded control character in path"},
        {PC_PATH_TRAILING_DOT, "path segment ends in '.'"},
        {PC_PATH_TRAILING_SPACE, "path segment ends in an encoded space"},
        {(pc_path_status)-99, "invalid path"},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        cr_expect_str_eq(pc_path_status_message(cases[i].st), cases[i].msg);
}

Test(pathnorm, uses_given_length_not_nul)
{
    const char *in = "/a/b/../c/and/more";
    char out[16];
    size_t outlen = 0;
    cr_assert_eq(pc_path_normalize(in, 9, out, &outlen), PC_PATH_OK);
    cr_expect_str_eq(out, "/a/c");
    cr_expect_eq(outlen, 4);
    /* "/admin./x" cut after "/admin": the '.' is not part of it */
    cr_assert_eq(pc_path_normalize("/admin./x", 6, out, &outlen), PC_PATH_OK);
    cr_expect_str_eq(out, "/admin");
}

Test(pathnorm, in_place)
{
    char buf[] = "/x/%2e%2e/a/%7e/./%2f%2E%2ex/../b";
    size_t outlen = 0;
    cr_assert_eq(pc_path_normalize(buf, strlen(buf), buf, &outlen), PC_PATH_OK);
    cr_expect_str_eq(buf, "/a/~/b");
    cr_expect_eq(outlen, 6);
}

/* What an accepted path's result must look like: none of the refused forms,
 * and normalising it again changes nothing (otherwise an upstream that
 * normalises again could see another path than the one we matched). */
static void check_result(const char *in, const char *out, size_t outlen)
{
    char again[128];
    size_t alen = 0;
    cr_assert_lt(outlen, sizeof(again));
    cr_assert_eq(pc_path_normalize(out, outlen, again, &alen), PC_PATH_OK,
                 "'%s' -> '%s' is refused", in, out);
    cr_expect_str_eq(again, out, "'%s' -> '%s' -> '%s'", in, out, again);
    cr_expect_null(strchr(out, ';'), "'%s' -> '%s'", in, out);
    for (size_t i = 0; i < outlen; i++) {
        size_t e = i + 1; /* end of the segment starting at i */
        if (out[i] != '/')
            continue;
        while (e < outlen && out[e] != '/')
            e++;
        size_t len = e - i - 1;
        cr_expect(len > 0 || e == outlen, "'%s' -> '%s': empty", in, out);
        if (len == 0)
            continue;
        cr_expect(out[e - 1] != '.', "'%s' -> '%s': dot", in, out);
        cr_expect(len < 3 || memcmp(out + e - 3, "%20", 3) != 0,
                  "'%s' -> '%s': space", in, out);
    }
}

Test(pathnorm, results_are_fixed_points)
{
    static const char *cases[] = {
        "/a/%2e%2e/b",     "/%252e%252e/x", "/a/..%2F/b",  "/a/./b/",
        "/%7e/%2f/%2E/",   "/x/%25%32%65",  "/a/b/c/../.", "/.%2e%2fx/../y",
        "/a%2eb/%2e/../c", "/%2e/%2e/",
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char out[64];
        size_t outlen;
        cr_assert_eq(
            pc_path_normalize(cases[i], strlen(cases[i]), out, &outlen),
            PC_PATH_OK, "'%s'", cases[i]);
        check_result(cases[i], out, outlen);
    }
}

/* Every path of up to six pieces drawn from the tricky ones: whatever is
 * accepted must come out clean, in a separate buffer and in place alike. */
Test(pathnorm, exhaustive_small_paths)
{
    static const char *pieces[] = {"/",   "a",   ".",   "%2e", ";",
                                   "%20", "%00", "%2F", ".."};
    const size_t np = N_OF(pieces);
    size_t total = 1;
    for (int k = 0; k < 6; k++)
        total *= np;
    for (size_t code = 0; code < total; code++) {
        char in[64] = "/", out[64], buf[64];
        size_t x = code, outlen, buflen;
        for (int k = 0; k < 6 && x; k++, x /= np)
            strcat(in, pieces[x % np]);
        size_t inlen = strlen(in);
        pc_path_status st = pc_path_normalize(in, inlen, out, &outlen);
        memcpy(buf, in, inlen + 1);
        pc_path_status st2 = pc_path_normalize(buf, inlen, buf, &buflen);
        cr_assert_eq(st, st2, "'%s': in place differs", in);
        if (st != PC_PATH_OK)
            continue;
        cr_assert_str_eq(out, buf, "'%s': in place differs", in);
        check_result(in, out, outlen);
    }
}

typedef struct {
    const char *in;
    size_t hostlen, namelen;
    pc_host_kind kind;
    int has_port;
    unsigned port;
} host_ok;

static char *repeat(char *buf, char c, size_t n, const char *tail)
{
    memset(buf, c, n);
    strcpy(buf + n, tail);
    return buf;
}

Test(pathnorm, host_accepted)
{
    static const host_ok cases[] = {
        {"api.example.com", 15, 15, PC_HOST_NAME, 0, 0},
        {"API.Example.com:8443", 15, 15, PC_HOST_NAME, 1, 8443},
        {"127.0.0.1:80", 9, 9, PC_HOST_IPV4, 1, 80},
        {"[::1]:8080", 5, 5, PC_HOST_IPV6, 1, 8080},
        {"[2001:db8::1]", 13, 13, PC_HOST_IPV6, 0, 0},
        {"localhost", 9, 9, PC_HOST_NAME, 0, 0},
        {"a_b.internal", 12, 12, PC_HOST_NAME, 0, 0},
        {"example.com.", 12, 11, PC_HOST_NAME, 0, 0},
        {"example.com.:443", 12, 11, PC_HOST_NAME, 1, 443},
        {"x-y.z9", 6, 6, PC_HOST_NAME, 0, 0},
        {"1a.example", 10, 10, PC_HOST_NAME, 0, 0},
        {"example.123a", 12, 12, PC_HOST_NAME, 0, 0},
        {"a:0", 1, 1, PC_HOST_NAME, 1, 0},
        {"a:65535", 1, 1, PC_HOST_NAME, 1, 65535},
        {"a:00080", 1, 1, PC_HOST_NAME, 1, 80},
        {"0.0.0.0", 7, 7, PC_HOST_IPV4, 0, 0},
        {"255.255.255.255:1", 15, 15, PC_HOST_IPV4, 1, 1},
        {"[::]", 4, 4, PC_HOST_IPV6, 0, 0},
        {"[1::]", 5, 5, PC_HOST_IPV6, 0, 0},
        {"[1:2:3:4:5:6:7:8]", 17, 17, PC_HOST_IPV6, 0, 0},
        {"[1:2:3:4:5:6:7::]", 17, 17, PC_HOST_IPV6, 0, 0},
        {"[::2:3:4:5:6:7:8]", 17, 17, PC_HOST_IPV6, 0, 0},
        {"[FE80::aBcD:1]:443", 14, 14, PC_HOST_IPV6, 1, 443},
        {"[::ffff:1.2.3.4]", 16, 16, PC_HOST_IPV6, 0, 0},
        {"[1:2:3:4:5:6:1.2.3.4]", 21, 21, PC_HOST_IPV6, 0, 0},
        {"[::1.2.3.4]", 11, 11, PC_HOST_IPV6, 0, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        const host_ok *c = &cases[i];
        pc_host h;
        const char *why = NULL;
        int rc = pc_host_parse(c->in, strlen(c->in), &h, &why);
        cr_assert_eq(rc, 0, "'%s' refused: %s", c->in, why);
        cr_expect_eq(h.hostlen, c->hostlen, "'%s' hostlen", c->in);
        cr_expect_eq(h.namelen, c->namelen, "'%s' namelen", c->in);
        cr_expect_eq(h.kind, c->kind, "'%s' kind", c->in);
        cr_expect_eq(h.has_port, c->has_port, "'%s' has_port", c->in);
        cr_expect_eq(h.port, c->port, "'%s' port", c->in);
    }
}

Test(pathnorm, host_lengths)
{
    char buf[400], label[80];
    pc_host h;
    const char *why = NULL;

    repeat(label, 'a', 63, "");
    snprintf(buf, sizeof(buf), "%s.example:1", label);
    cr_expect_eq(pc_host_parse(buf, strlen(buf), &h, &why), 0, "%s", why);
    repeat(label, 'a', 64, "");
    snprintf(buf, sizeof(buf), "%s.example", label);
    cr_expect_eq(pc_host_parse(buf, strlen(buf), &h, &why), -1);
    cr_expect_str_eq(why, "host label longer than 63 bytes");
    /* 253 bytes: 63 + 63 + 63 + 61 and three dots; a trailing dot does
     * not count */
    snprintf(buf, sizeof(buf), "%s.%s.%s.%s", label + 1, label + 1, label + 1,
             label + 3);
    cr_assert_eq(strlen(buf), 253);
    cr_expect_eq(pc_host_parse(buf, 253, &h, &why), 0, "%s", why);
    strcat(buf, ".:80");
    cr_expect_eq(pc_host_parse(buf, 257, &h, &why), 0, "%s", why);
    cr_expect_eq(h.hostlen, 254);
    cr_expect_eq(h.namelen, 253);
    snprintf(buf, sizeof(buf), "%s.%s.%s.%s", label + 1, label + 1, label + 1,
             label + 2);
    cr_assert_eq(strlen(buf), 254);
    cr_expect_eq(pc_host_parse(buf, 254, &h, &why), -1);
    cr_expect_str_eq(why, "host name longer than 253 bytes");
}

typedef struct {
    const char *in;
    const char *why;
} host_bad;

Test(pathnorm, host_refused)
{
    static const host_bad cases[] = {
        {"a.example.com;x", "invalid character in host"},
        {"a,b", "invalid character in host"},
        {"*.example.com", "invalid character in host"},
        {"[a.example.com]", "invalid IPv6 address in host"},
        {"%69nternal", "percent-encoding in host"},
        {"a..", "empty label in host"},
        {".a", "empty label in host"},
        {".", "empty label in host"},
        {"a..b", "empty label in host"},
        {"example.com..", "empty label in host"},
        {"a.example.com:99999", "port out of range"},
        {"a:65536", "port out of range"},
        {"a:", "invalid port"},
        {"a:8a", "invalid port"},
        {"a:+80", "invalid port"},
        {"a:-1", "invalid port"},
        {"a: 80", "invalid port"},
        {"a:123456", "invalid port"},
        {"a:80:80", "invalid port"},
        {"a b", "invalid character in host"},
        {"a/b", "invalid character in host"},
        {"a\\b", "invalid character in host"},
        {"u@a", "userinfo in host"},
        {"u:p@a", "invalid port"},
        {"", "empty host"},
        {":80", "empty host"},
        {"::1", "empty host"},
        {"[::1", "unterminated IP literal in host"},
        {"[fe80::1%eth0]", "invalid IPv6 address in host"},
        {"[fe80::1%25eth0]", "invalid IPv6 address in host"},
        {"[v1.fe]", "invalid IPv6 address in host"},
        {"[]", "invalid IPv6 address in host"},
        {"[:1]", "invalid IPv6 address in host"},
        {"[1:]", "invalid IPv6 address in host"},
        {"[1:::2]", "invalid IPv6 address in host"},
        {"[1::2::3]", "invalid IPv6 address in host"},
        {"[12345::]", "invalid IPv6 address in host"},
        {"[1:2:3:4:5:6:7]", "invalid IPv6 address in host"},
        {"[1:2:3:4:5:6:7:8:9]", "invalid IPv6 address in host"},
        {"[1:2:3:4::5:6:7:8]", "invalid IPv6 address in host"},
        {"[::1.2.3]", "invalid IPv6 address in host"},
        {"[::1.2.3.256]", "invalid IPv6 address in host"},
        {"[::01.2.3.4]", "invalid IPv6 address in host"},
        {"[1.2.3.4]", "invalid IPv6 address in host"},
        {"[1:2:3:4:5:6:7:1.2.3.4]", "invalid IPv6 address in host"},
        {"[::1.2.3.4:1]", "invalid IPv6 address in host"},
        {"[::g]", "invalid IPv6 address in host"},
        {"[ ::1]", "invalid IPv6 address in host"},
        {"[::1]x", "invalid character after IP literal"},
        {"[::1]]", "invalid character after IP literal"},
        {"[::1]:", "invalid port"},
        {"[::1]:99999", "port out of range"},
        {"1.2.3.256", "numeric host that is not a dotted-quad IPv4 address"},
        {"127.1", "numeric host that is not a dotted-quad IPv4 address"},
        {"2130706433", "numeric host that is not a dotted-quad IPv4 address"},
        {"0x7f.1", "numeric host that is not a dotted-quad IPv4 address"},
        {"0x7f000001", "numeric host that is not a dotted-quad IPv4 address"},
        {"010.0.0.1", "numeric host that is not a dotted-quad IPv4 address"},
        {"1.2.3.4.5", "numeric host that is not a dotted-quad IPv4 address"},
        {"1.2.3.4.", "numeric host that is not a dotted-quad IPv4 address"},
        {"example.0x", "numeric host that is not a dotted-quad IPv4 address"},
        {"caf\xc3\xa9.example", "invalid character in host"},
        {"a\tb", "invalid character in host"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        pc_host h = {99, 99, PC_HOST_IPV6, 1, 1};
        const char *why = NULL;
        int rc = pc_host_parse(cases[i].in, strlen(cases[i].in), &h, &why);
        cr_expect_eq(rc, -1, "'%s' accepted", cases[i].in);
        cr_expect_str_eq(why ? why : "(null)", cases[i].why, "'%s'",
                         cases[i].in);
        cr_expect_eq(h.hostlen, 0, "'%s' left output behind", cases[i].in);
        cr_expect_eq(h.has_port, 0, "'%s' left output behind", cases[i].in);
    }
}

Test(pathnorm, host_uses_given_length)
{
    pc_host h;
    const char *why = NULL;

    /* an embedded NUL is a bad byte, never the end */
    cr_expect_eq(pc_host_parse("a\0b", 3, &h, &why), -1);
    cr_expect_eq(pc_host_parse("a.example:80", 9, &h, NULL), 0);
    cr_expect_eq(h.has_port, 0);
    cr_expect_eq(pc_host_parse("a:80800", 4, &h, NULL), 0);
    cr_expect_eq(h.port, 80);
    /* no read past n, under ASan */
    char *exact = malloc(5);
    memcpy(exact, "[::1", 4);
    cr_expect_eq(pc_host_parse(exact, 4, &h, NULL), -1);
    memcpy(exact, "a:1", 3);
    cr_expect_eq(pc_host_parse(exact, 3, &h, NULL), 0);
    memcpy(exact, "1.2.", 4);
    cr_expect_eq(pc_host_parse(exact, 4, &h, NULL), -1);
    free(exact);
}
