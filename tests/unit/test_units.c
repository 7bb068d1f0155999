/* test_units.c: durations and sizes of the config file (lib/units.c). */
#include <criterion/criterion.h>

#include <string.h>

#include "portcullis/units.h"

static uint64_t dur_ok(const char *s)
{
    uint64_t ms = 12345;
    char err[128] = "";
    int rc = pc_parse_duration(s, &ms, err, sizeof(err));
    cr_assert_eq(rc, 0, "duration '%s' rejected: %s", s, err);
    return ms;
}

static void dur_bad(const char *s, const char *msg_part)
{
    uint64_t ms = 777;
    char err[128] = "";
    int rc = pc_parse_duration(s, &ms, err, sizeof(err));
    cr_assert_eq(rc, -1, "duration '%s' accepted as %llu", s,
                 (unsigned long long)ms);
    cr_expect_eq(ms, 777, "output written on failure for '%s'", s);
    cr_expect(strstr(err, msg_part) != NULL,
              "message for '%s' is '%s', expected it to contain '%s'", s, err,
              msg_part);
}

static uint64_t size_ok(const char *s)
{
    uint64_t b = 12345;
    char err[128] = "";
    int rc = pc_parse_size(s, &b, err, sizeof(err));
    cr_assert_eq(rc, 0, "size '%s' rejected: %s", s, err);
    return b;
}

static void size_bad(const char *s, const char *msg_part)
{
    uint64_t b = 777;
    char err[128] = "";
    int rc = pc_parse_size(s, &b, err, sizeof(err));
    cr_assert_eq(rc, -1, "size '%s' accepted as %llu", s,
                 (unsigned long long)b);
    cr_expect(strstr(err, msg_part) != NULL,
              "message for '%s' is '%s', expected it to contain '%s'", s, err,
              msg_part);
}

Test(units, duration_single_units)
{
    cr_expect_eq(dur_ok("250ms"), 250);
    cr_expect_eq(dur_ok("10s"), 10000);
    cr_expect_eq(dur_ok("5m"), 300000);
    cr_expect_eq(dur_ok("1h"), 3600000);
    cr_expect_eq(dur_ok("2d"), 2ull * 86400000);
    cr_expect_eq(dur_ok("0s"), 0);
    cr_expect_eq(dur_ok("0ms"), 0);
    cr_expect_eq(dur_ok("007s"), 7000);
}

Test(units, duration_combined)
{
    cr_expect_eq(dur_ok("1m30s"), 90000);
    cr_expect_eq(dur_ok("1h2m3s4ms"), 3723004);
    cr_expect_eq(dur_ok("1d1ms"), 86400001);
    cr_expect_eq(dur_ok("1s500ms"), 1500);
    cr_expect_eq(dur_ok("1m5ms"), 60005);
    /* A component may exceed the next unit's range ("90m" is fine). */
    cr_expect_eq(dur_ok("1h90m"), 9000000);
}

Test(units, duration_rejects_bare_numbers_and_junk)
{
    dur_bad("10", "missing unit");
    dur_bad("0", "missing unit");
    dur_bad("1m30", "missing unit");
    dur_bad("5x", "unknown unit 'x'");
    dur_bad("5sec", "unknown unit 'sec'");
    dur_bad("5us", "unknown unit 'us'");
    dur_bad("5S", "unknown unit 'S'");
    dur_bad("", "empty");
    dur_bad(NULL, "empty");
    dur_bad("s", "expected a number");
    dur_bad("-1s", "expected a number");
    dur_bad("1.5s", "unexpected character '.'");
    dur_bad("10 s", "unexpected character ' '");
    dur_bad(" 10s", "expected a number");
    dur_bad("10s ", "expected a number");
}

Test(units, duration_rejects_wrong_order_and_repeats)
{
    dur_bad("1s1m", "must come before");
    dur_bad("1ms1s", "must come before");
    dur_bad("1s1s", "must come before");
    dur_bad("1m1h", "must come before");
}

Test(units, duration_overflow)
{
    /* UINT64_MAX ms is the largest value: fine as plain ms. */
    cr_expect_eq(dur_ok("18446744073709551615ms"), UINT64_MAX);
    dur_bad("18446744073709551616ms", "overflow");
    dur_bad("18446744073709551615s", "overflow");
    dur_bad("213503982335d", "overflow");
    /* Each component fits; their sum does not. */
    dur_bad("213503982334d86400000ms", "overflow");
    cr_expect_eq(dur_ok("213503982334d"), 213503982334ull * 86400000ull);
}

Test(units, duration_error_buffer_optional)
{
    uint64_t ms;
    cr_expect_eq(pc_parse_duration("5x", &ms, NULL, 0), -1);
    cr_expect_eq(pc_parse_duration("5s", &ms, NULL, 0), 0);
    cr_expect_eq(ms, 5000);
    char tiny[4];
    cr_expect_eq(pc_parse_duration("5x", &ms, tiny, sizeof(tiny)), -1);
    cr_expect_eq(strlen(tiny), 3, "message must be truncated, terminated");
}

Test(units, format_duration)
{
    char buf[64];
    cr_expect_str_eq(pc_format_duration(0, buf, sizeof(buf)), "0s");
    cr_expect_str_eq(pc_format_duration(250, buf, sizeof(buf)), "250ms");
    cr_expect_str_eq(pc_format_duration(90000, buf, sizeof(buf)), "1m30s");
    cr_expect_str_eq(pc_format_duration(3600000, buf, sizeof(buf)), "1h");
    cr_expect_str_eq(pc_format_duration(1500, buf, sizeof(buf)), "1s500ms");
    cr_expect_str_eq(pc_format_duration(90061001, buf, sizeof(buf)),
                     "1d1h1m1s1ms");
    char small[4];
    pc_format_duration(90061001, small, sizeof(small));
    cr_expect_eq(strlen(small), 3, "truncated output stays terminated");
}

Test(units, format_then_parse_round_trips)
{
    const uint64_t vals[] = {0,        1,          999,        1000,
                             59999,    60000,      3599999,    86399999,
                             86400000, 1234567890, UINT64_MAX, 5000};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char buf[64];
        pc_format_duration(vals[i], buf, sizeof(buf));
        cr_expect_eq(dur_ok(buf), vals[i], "round trip of %llu via '%s'",
                     (unsigned long long)vals[i], buf);
    }
}

Test(units, sizes)
{
    cr_expect_eq(size_ok("0"), 0);
    cr_expect_eq(size_ok("1024"), 1024);
    cr_expect_eq(size_ok("16k"), 16384);
    cr_expect_eq(size_ok("16K"), 16384);
    cr_expect_eq(size_ok("1m"), 1048576);
    cr_expect_eq(size_ok("64M"), 64ull << 20);
    cr_expect_eq(size_ok("1g"), 1073741824ull);
    cr_expect_eq(size_ok("3G"), 3ull << 30);
    cr_expect_eq(size_ok("18446744073709551615"), UINT64_MAX);
    cr_expect_eq(size_ok("17179869183g"), 17179869183ull << 30);
}

Test(units, sizes_rejected)
{
    size_bad("12kb", "unknown unit 'kb'");
    size_bad("1KiB", "unknown unit 'KiB'");
    size_bad("5t", "unknown unit 't'");
    size_bad("5x", "unknown unit 'x'");
    size_bad("k", "expected a number");
    size_bad("", "empty");
    size_bad(NULL, "empty");
    size_bad("-1", "expected a number");
    size_bad("1.5m", "unexpected character '.'");
    size_bad("16 k", "unexpected character ' '");
    size_bad("16k1", "unexpected character '1'");
    size_bad("10s", "unknown unit 's'");
}

Test(units, sizes_overflow)
{
    size_bad("18446744073709551616", "overflow");
    size_bad("99999999999999999999999", "overflow");
    size_bad("17179869184g", "overflow");
    size_bad("18014398509481984k", "overflow");
    cr_expect_eq(size_ok("18014398509481983k"), 18014398509481983ull << 10);
}
