/* Head pieces gathered from llhttp's callbacks (portcullis/span.h):
 * borrowed while in one buffer, copied when kept across a drain or when a
 * second piece comes. */
#include <criterion/criterion.h>
#include <string.h>

#include "portcullis/span.h"

Test(span, borrows_one_piece)
{
    char in[] = "Host: example";
    pc_span s = {0};
    pc_span_add(&s, in + 6, 7);
    cr_assert_eq(s.p, in + 6, "no copy for a piece inside one buffer");
    cr_assert_eq(s.len, 7);
    cr_assert_null(s.own);
    pc_span_free(&s);
}

Test(span, keep_copies_before_the_drain)
{
    char in[] = "exam";
    pc_span s = {0};
    pc_span_add(&s, in, 4);
    pc_span_keep(&s);
    memset(in, 'X', 4); /* the input buffer is reused */
    cr_assert_eq(s.len, 4);
    cr_assert(memcmp(s.p, "exam", 4) == 0);
    pc_span_keep(&s); /* already owned: unchanged */
    cr_assert(memcmp(s.p, "exam", 4) == 0);
    char in2[] = "ple.org";
    pc_span_add(&s, in2, 7);
    cr_assert_eq(s.len, 11);
    cr_assert_str_eq(s.p, "example.org");
    pc_span_free(&s);
    cr_assert_null(s.own);
    cr_assert_eq(s.len, 0);
}

Test(span, second_piece_copies_the_first)
{
    char a[] = "ab", b[] = "cd";
    pc_span s = {0};
    pc_span_add(&s, a, 2);
    pc_span_add(&s, b, 2);
    a[0] = b[0] = 'X';
    cr_assert_str_eq(s.p, "abcd");
    pc_span_reset(&s);
    cr_assert_eq(s.len, 0);
    char c[] = "long piece of a value that grows the buffer past 128 bytes "
               "long piece of a value that grows the buffer past 128 bytes";
    pc_span_add(&s, c, 5);
    cr_assert_eq(s.p, c, "borrowed again after a reset");
    for (int i = 0; i < 3; i++)
        pc_span_add(&s, c, strlen(c));
    cr_assert_eq(s.len, 5 + 3 * strlen(c));
    cr_assert(memcmp(s.p, "long ", 5) == 0);
    cr_assert(memcmp(s.p + 5 + strlen(c), c, strlen(c)) == 0);
    pc_span_free(&s);
}
