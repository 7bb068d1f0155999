/* test_pathnorm.c: request path normalisation (lib/pathnorm.c), the guard
 * against traversal past a route prefix. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "portcullis/pathnorm.h"

static void norm_eq(const char *in, const char *want)
{
    size_t inlen = strlen(in), outlen = 9999;
    char *out = malloc(inlen + 1); /* exactly the room the header promises */
    pc_path_status st = pc_path_normalize(in, inlen, out, &outlen);
    cr_assert_eq(st, PC_PATH_OK, "'%s' gave status %d", in, st);
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
    cr_expect_eq(st, want, "'%.*s' gave status %d, want %d", (int)inlen, in, st,
                 want);
    free(out);
}

static void climb(const char *in)
{
    norm_status(in, strlen(in), PC_PATH_CLIMB);
}

static void bad(const char *in)
{
    norm_status(in, strlen(in), PC_PATH_BAD);
}

Test(pathnorm, plain_paths_unchanged)
{
    norm_eq("/", "/");
    norm_eq("/api/orders", "/api/orders");
    norm_eq("/api/orders/", "/api/orders/");
    norm_eq("/a-b_c~d.e", "/a-b_c~d.e");
    norm_eq("/a;b=c/d,e", "/a;b=c/d,e");
    norm_eq("/...", "/...");
    norm_eq("/a/.../b", "/a/.../b");
    norm_eq("/.a/..b/c..", "/.a/..b/c..");
}

Test(pathnorm, contract_examples)
{
    norm_eq("/api/../admin", "/admin");
    norm_eq("/api/%2e%2e/admin", "/admin");
    norm_eq("/a/%2F/b", "/a/%2F/b");
    norm_eq("/a/./b/", "/a/b/");
    norm_eq("/a/..", "/");
    climb("/../x");
}

Test(pathnorm, decodes_only_unreserved)
{
    norm_eq("/%7Euser", "/~user");
    norm_eq("/%7euser", "/~user");
    norm_eq("/%41%42%43%61%30%2D%5F%2E", "/ABCa0-_.");
    norm_eq("/a%2fb", "/a%2Fb");
    norm_eq("/a%2Fb", "/a%2Fb");
    norm_eq("/%3f%23%25%20", "/%3F%23%25%20");
    norm_eq("/%25", "/%25");
    norm_eq("/%252e%252e/x", "/%252e%252e/x");
    norm_eq("/%00", "/%00");
    norm_eq("/%c3%a9", "/%C3%A9");
    norm_eq("/%5c", "/%5C");
}

Test(pathnorm, encoded_dot_segments)
{
    norm_eq("/api/%2E%2E/admin", "/admin");
    norm_eq("/api/%2e%2E/admin", "/admin");
    norm_eq("/api/.%2e/admin", "/admin");
    norm_eq("/api/%2e./admin", "/admin");
    norm_eq("/api/%2e/admin", "/api/admin");
    norm_eq("/api/%2E", "/api/");
    norm_eq("/api/x/%2e%2e", "/api/");
    climb("/%2e%2e");
    climb("/%2e%2e/etc/passwd");
    climb("/api/%2e%2e/%2e%2e/etc");
}

Test(pathnorm, encoded_slash_is_not_a_separator)
{
    /* "..%2F" is a three-byte-longer segment, never ".." then "/". */
    norm_eq("/api/..%2Fadmin", "/api/..%2Fadmin");
    norm_eq("/api/..%2fadmin", "/api/..%2Fadmin");
    norm_eq("/api/%2e%2e%2fadmin", "/api/..%2Fadmin");
    norm_eq("/..%2F..%2Fetc", "/..%2F..%2Fetc");
    norm_eq("/api/..%5C..%5Cadmin", "/api/..%5C..%5Cadmin");
}

Test(pathnorm, rfc3986_dot_removal)
{
    norm_eq("/a/b/c/./../../g", "/a/g");
    norm_eq("/mid/content=5/../6", "/mid/6");
    norm_eq("/a/b/..", "/a/");
    norm_eq("/a/b/../", "/a/");
    norm_eq("/a/b/.", "/a/b/");
    norm_eq("/a/b/./", "/a/b/");
    norm_eq("/.", "/");
    norm_eq("/./", "/");
    norm_eq("/./a", "/a");
    norm_eq("/a/../b/../c", "/c");
    norm_eq("/a/./././b", "/a/b");
    norm_eq("/a/../", "/");
}

Test(pathnorm, empty_segments_are_data)
{
    norm_eq("//", "//");
    norm_eq("/a//b", "/a//b");
    norm_eq("/a//b//", "/a//b//");
    /* ".." removes the empty segment just as it would a named one. */
    norm_eq("/a//../b", "/a/b");
    norm_eq("//..", "/");
    norm_eq("//../x", "/x");
    norm_eq("/a/.//b", "/a//b");
}

Test(pathnorm, climbing_above_root)
{
    climb("/..");
    climb("/../");
    climb("/../x");
    climb("/a/../..");
    climb("/a/../../b");
    climb("/./../a");
    climb("/a/b/../../../c");
    climb("//../..");
    climb("/.%2E");
}

Test(pathnorm, bad_input)
{
    bad("");
    bad("a/b");
    bad("./a");
    bad("%2Fa");
    bad("/a b");
    bad("/a\tb");
    bad("/a\x7f");
    bad("/a#frag");
    bad("/a\x01");
    bad("/%");
    bad("/%2");
    bad("/%zz");
    bad("/%2g");
    bad("/%g2");
    bad("/a%");
    /* An embedded NUL is a byte < 0x21, never an early end of the path. */
    norm_status("/a\0/../..", 9, PC_PATH_BAD);
    norm_status("/", 0, PC_PATH_BAD);
}

Test(pathnorm, uses_given_length_not_nul)
{
    const char *in = "/a/b/../c/and/more";
    char out[16];
    size_t outlen = 0;
    cr_assert_eq(pc_path_normalize(in, 9, out, &outlen), PC_PATH_OK);
    cr_expect_str_eq(out, "/a/c");
    cr_expect_eq(outlen, 4);
}

Test(pathnorm, in_place)
{
    char buf[] = "/x/%2e%2e/a/%7e/./%2f%2E%2e/../b";
    size_t outlen = 0;
    cr_assert_eq(pc_path_normalize(buf, strlen(buf), buf, &outlen), PC_PATH_OK);
    cr_expect_str_eq(buf, "/a/~/b");
    cr_expect_eq(outlen, 6);
}

Test(pathnorm, high_bytes_pass_through)
{
    norm_eq("/caf\xc3\xa9", "/caf\xc3\xa9");
}

Test(pathnorm, result_is_a_fixed_point)
{
    /* Normalising twice must not change anything: otherwise the upstream,
     * which may normalise again, could see a different path than we
     * matched. */
    const char *cases[] = {
        "/a/%2e%2e/b",   "/%252e%252e/x", "/a/..%2F/b",  "/a//./b/",
        "/%7e/%2f/%2E/", "/x/%25%32%65",  "/a/b/c/../.", "/.%2e%2fx/../y",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char a[64], b[64];
        size_t alen, blen;
        cr_assert_eq(pc_path_normalize(cases[i], strlen(cases[i]), a, &alen),
                     PC_PATH_OK);
        cr_assert_eq(pc_path_normalize(a, alen, b, &blen), PC_PATH_OK);
        cr_expect_str_eq(a, b, "'%s' -> '%s' -> '%s'", cases[i], a, b);
    }
}
