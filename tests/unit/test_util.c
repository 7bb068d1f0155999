/* test_util.c: the helpers of src/lib/util.c that guard what the gateway
 * prints and reads: pc_xescape (one line of plain text) and the regular
 * file reader (never blocks on a FIFO, refuses devices). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portcullis/util.h"

static void esc_is(const char *in, size_t n, const char *want)
{
    char *got = pc_xescape(in, n);
    cr_expect_str_eq(got, want, "escape of %zu bytes", n);
    free(got);
}

Test(util, escape_controls)
{
    esc_is("plain text: 'x' \\ ok", 20, "plain text: 'x' \\ ok");
    esc_is("a\nb\rc\td\x1b[31m", 12, "a\\nb\\rc\\td\\e[31m");
    esc_is("\x01\x7f\x00z", 4, "\\x01\\x7f\\x00z");
    esc_is("", 0, "");
}

Test(util, escape_utf8)
{
    /* Well-formed UTF-8 stays (é, €, 😀); C1 controls, overlong forms,
     * surrogates, stray continuation and truncated sequences do not. */
    esc_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    esc_is("\xc2\x9b", 2, "\\xc2\\x9b");
    esc_is("\xc0\xaf", 2, "\\xc0\\xaf");
    esc_is("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");
    esc_is("\x9b", 1, "\\x9b");
    esc_is("\xe2\x82", 2, "\\xe2\\x82");
    esc_is("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80");
}

static char dir[] = "/tmp/pc_util_XXXXXX";

static const char *tmp(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    unlink(tmp("f"));
    unlink(tmp("p"));
    rmdir(dir);
}

Test(util, read_regular, .init = setup, .fini = teardown)
{
    char why[128] = "";
    size_t len = 0;
    FILE *f = fopen(tmp("f"), "w");
    cr_assert_not_null(f);
    fputs("hello", f);
    fclose(f);
    char *s = pc_read_regular(tmp("f"), 100, &len, why, sizeof why);
    cr_assert_not_null(s, "%s", why);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(s, "hello");
    free(s);

    cr_assert_null(pc_read_regular(tmp("f"), 4, &len, why, sizeof why));
    cr_assert_str_eq(why, "file larger than 4 bytes");

    cr_assert_eq(mkfifo(tmp("p"), 0600), 0);
    cr_assert_null(pc_read_regular(tmp("p"), 100, &len, why, sizeof why));
    cr_assert_str_eq(why, "not a regular file");
    cr_assert_null(pc_read_regular("/dev/zero", 100, &len, why, sizeof why));
    cr_assert_str_eq(why, "not a regular file");
    cr_assert_null(pc_read_regular(dir, 100, &len, why, sizeof why));
    cr_assert_str_eq(why, "cannot open: Is a directory");
    cr_assert_null(pc_read_regular(tmp("absent"), 100, &len, why, sizeof why));
    cr_assert_str_eq(why, "cannot open: No such file or directory");
}

Test(util, open_regular, .init = setup, .fini = teardown)
{
    FILE *f = fopen(tmp("f"), "w");
    cr_assert_not_null(f);
    fclose(f);
    int fd = pc_open_regular(tmp("f"));
    cr_assert(fd >= 0);
    /* Returned blocking, close-on-exec. */
    cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    cr_assert_eq(mkfifo(tmp("p"), 0600), 0);
    cr_assert_eq(pc_open_regular(tmp("p")), -2);
    errno = 0;
    cr_assert_eq(pc_open_regular(dir), -1);
    cr_assert_eq(errno, EISDIR);
}

/* Elements of a comma-separated value: whitespace around them and empty
 * elements dropped, inner whitespace kept. */
Test(util, list_next)
{
    static const char v[] = " ,gzip, br ;q=0.5 ,, \t zstd\t,";
    const char *p = v, *end = v + sizeof v - 1, *s;
    size_t len;
    const char *want[] = {"gzip", "br ;q=0.5", "zstd"};
    for (int i = 0; i < 3; i++) {
        s = pc_list_next(&p, end, &len);
        cr_assert_not_null(s);
        cr_assert_eq(len, strlen(want[i]));
        cr_assert(memcmp(s, want[i], len) == 0, "element %d", i);
    }
    cr_assert_null(pc_list_next(&p, end, &len));
    p = end;
    cr_assert_null(pc_list_next(&p, end, &len));
    static const char one[] = "x";
    p = one;
    s = pc_list_next(&p, one + 1, &len);
    cr_assert(s == one && len == 1 && p == one + 1);
}
