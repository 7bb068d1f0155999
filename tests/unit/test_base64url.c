/* test_base64url.c: strict unpadded base64url (lib/base64url.c). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "portcullis/base64url.h"

static void enc_is(const char *in, const char *want)
{
    char out[64];
    size_t n = pc_b64url_encode((const unsigned char *)in, strlen(in), out,
                                sizeof(out));
    cr_assert_eq(n, strlen(want), "encode '%s': %zu chars", in, n);
    cr_assert_str_eq(out, want);
    cr_assert_eq(PC_B64URL_ENCODED_LEN(strlen(in)), strlen(want));
}

static void dec_is(const char *in, const char *want)
{
    unsigned char out[64];
    long n = pc_b64url_decode(in, strlen(in), out, sizeof(out));
    cr_assert_eq(n, (long)strlen(want), "decode '%s' gave %ld", in, n);
    cr_assert(memcmp(out, want, (size_t)n) == 0, "decode '%s'", in);
    cr_assert_leq((size_t)n, PC_B64URL_DECODED_MAX(strlen(in)));
}

static void dec_bad(const char *in, size_t len)
{
    unsigned char out[64];
    cr_assert_eq(pc_b64url_decode(in, len, out, sizeof(out)), -1,
                 "'%.*s' (%zu bytes) was accepted", (int)len, in, len);
}

Test(base64url, rfc4648_vectors_without_padding)
{
    static const char *const v[][2] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        enc_is(v[i][0], v[i][1]);
        dec_is(v[i][1], v[i][0]);
    }
}

Test(base64url, url_alphabet)
{
    /* 0xfb 0xff is "+/8=" in standard base64. */
    enc_is("\xfb\xff", "-_8");
    dec_is("-_8", "\xfb\xff");
    enc_is("\xff\xff\xff", "____");
    enc_is("\xf8", "-A");
}

Test(base64url, round_trip_all_lengths)
{
    unsigned char in[200], back[200];
    char text[300];
    srand(7);
    for (size_t len = 0; len < sizeof(in); len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)rand();
        size_t n = pc_b64url_encode(in, len, text, sizeof(text));
        cr_assert_eq(n, PC_B64URL_ENCODED_LEN(len));
        cr_assert_eq(strlen(text), n);
        cr_assert_eq(pc_b64url_decode(text, n, back, sizeof(back)), (long)len);
        cr_assert(memcmp(in, back, len) == 0, "length %zu", len);
    }
}

Test(base64url, rejects_padding_and_standard_alphabet)
{
    dec_bad("Zg==", 4);
    dec_bad("Zg=", 3);
    dec_bad("Zm8=", 4);
    dec_bad("+_8", 3);
    dec_bad("-/8", 3);
    dec_bad("Zm9v\n", 5);
    dec_bad("Zm 9v", 5);
    dec_bad(" Zm9v", 5);
    dec_bad("Zm9v.", 5);
    dec_bad("Zm\09v", 5);
    dec_bad("Zm9\x80", 4);
}

Test(base64url, rejects_impossible_length)
{
    dec_bad("Z", 1);
    dec_bad("Zm9vY", 5);
}

Test(base64url, rejects_non_canonical_trailing_bits)
{
    /* "Zg" is the only spelling of "f": 'h' sets a bit that is not there. */
    dec_bad("Zh", 2);
    dec_bad("Zv", 2);
    dec_bad("Zm9", 3); /* canonical is "Zm8" */
    dec_bad("Zm-", 3);
    dec_is("Zm8", "fo");
}

Test(base64url, output_capacity)
{
    unsigned char out[8];
    char text[8];
    cr_assert_eq(pc_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    cr_assert_eq(pc_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    cr_assert_eq(pc_b64url_decode("Zm9vYg", 6, out, 3), -1);
    cr_assert_eq(pc_b64url_decode("Zm9vYg", 6, out, 4), 4);

    memset(text, 'x', sizeof(text));
    cr_assert_eq(pc_b64url_encode((const unsigned char *)"foob", 4, text, 6),
                 0);
    cr_assert_eq(text[0], 'x', "nothing is written when it does not fit");
    cr_assert_eq(pc_b64url_encode((const unsigned char *)"foob", 4, text, 7),
                 6);
    cr_assert_str_eq(text, "Zm9vYg");
    cr_assert_eq(pc_b64url_encode((const unsigned char *)"", 0, text, 1), 0);
    cr_assert_str_eq(text, "");
}
