/* units.c: parsing and formatting of the config file's durations ("1m30s")
 * and sizes ("16k"), CONTRACT §2. Owns no state; must never allocate, do I/O
 * or accept a value it had to wrap or truncate to represent. */
#include "portcullis/util.h"
#include "portcullis/units.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>


static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Reads a run of decimal digits at *p. Returns 0 and advances *p, -1 when
 * there is no digit, -2 when the number does not fit in 64 bits. */
static int read_number(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

static int mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return 1;
    *out = a * b;
    return 0;
}

/* Duration units, largest first: a component's unit must come strictly
 * after the previous component's unit in this table. */
static const struct {
    const char *name;
    uint64_t ms;
} dur_units[] = {
    {"d", 86400000u}, {"h", 3600000u}, {"m", 60000u}, {"s", 1000u}, {"ms", 1u},
};
#define N_DUR_UNITS (sizeof(dur_units) / sizeof(dur_units[0]))

static int dur_unit_index(const char *u, size_t len)
{
    for (size_t i = 0; i < N_DUR_UNITS; i++)
        if (strlen(dur_units[i].name) == len &&
            memcmp(dur_units[i].name, u, len) == 0)
            return (int)i;
    return -1;
}

int pc_parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen)
{
    uint64_t total = 0;
    int last = -1;

    if (!s || !*s)
        return pc_errf(err, errlen, "empty duration");
    while (*s) {
        uint64_t v, part;
        int rc = read_number(&s, &v);
        if (rc == -1)
            return pc_errf(err, errlen, "expected a number at '%s'", s);
        if (rc == -2)
            return pc_errf(err, errlen, "overflow");
        const char *u = s;
        while (is_alpha(*s))
            s++;
        size_t ulen = (size_t)(s - u);
        if (ulen == 0) {
            if (*s == '\0')
                return pc_errf(err, errlen,
                            "missing unit (ms, s, m, h or d), e.g. 10s");
            return pc_errf(err, errlen, "unexpected character '%c'", *s);
        }
        int idx = dur_unit_index(u, ulen);
        if (idx < 0)
            return pc_errf(err, errlen, "unknown unit '%.*s'", (int)ulen, u);
        if (idx <= last)
            return pc_errf(err, errlen,
                        "unit '%s' must come before '%s' and appear once",
                        dur_units[idx].name, dur_units[last].name);
        last = idx;
        if (mul_overflows(v, dur_units[idx].ms, &part) ||
            total > UINT64_MAX - part)
            return pc_errf(err, errlen, "overflow");
        total += part;
    }
    *ms = total;
    return 0;
}

int pc_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
    uint64_t v, mult = 1;

    if (!s || !*s)
        return pc_errf(err, errlen, "empty size");
    int rc = read_number(&s, &v);
    if (rc == -1)
        return pc_errf(err, errlen, "expected a number at '%s'", s);
    if (rc == -2)
        return pc_errf(err, errlen, "overflow");
    if (*s) {
        const char *u = s;
        while (is_alpha(*s))
            s++;
        size_t ulen = (size_t)(s - u);
        if (*s)
            return pc_errf(err, errlen, "unexpected character '%c'", *s);
        if (ulen != 1)
            return pc_errf(err, errlen, "unknown unit '%.*s' (use k, m or g)",
                        (int)ulen, u);
        switch (*u) {
        case 'k':
        case 'K':
            mult = 1024u;
            break;
        case 'm':
        case 'M':
            mult = 1024u * 1024u;
            break;
        case 'g':
        case 'G':
            mult = 1024u * 1024u * 1024u;
            break;
        default:
            return pc_errf(err, errlen, "unknown unit '%c' (use k, m or g)", *u);
        }
    }
    if (mul_overflows(v, mult, bytes))
        return pc_errf(err, errlen, "overflow");
    return 0;
}

char *pc_format_duration(uint64_t ms, char *buf, size_t len)
{
    size_t off = 0;

    if (!buf || len == 0)
        return buf;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    for (size_t i = 0; i < N_DUR_UNITS && off < len; i++) {
        uint64_t n = ms / dur_units[i].ms;
        if (n == 0)
            continue;
        ms -= n * dur_units[i].ms;
        int w = snprintf(buf + off, len - off, "%llu%s", (unsigned long long)n,
                         dur_units[i].name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}
