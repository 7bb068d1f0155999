/* jsonschema_pattern.c: compiles the `pattern` keyword with <regex.h>
 * (POSIX ERE, byte-wise in the C locale). Before regcomp sees a pattern it
 * is scanned for what would silently mean something else than in the
 * ECMA-262 dialect schema authors usually write (\d is a plain 'd' in glibc,
 * [\w] is a backslash or a 'w') and for what would make regcomp or regexec
 * expensive (back-references, huge repetition counts, deep nesting, loops
 * over the empty string, which glibc compiles in exponential time). Owns
 * nothing after it returns; must never accept a pattern it cannot explain.
 */
#include "jsonschema_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Elements a pattern may expand to once glibc has unrolled its repetition
 * counts ("(ab){3}" is 6): bounds regcomp's memory and the per-position cost
 * of regexec. Lengths belong in minLength/maxLength, not in {1,5000}. */
#define PATTERN_MAX_ELEMENTS 2000
/* Group nesting: glibc's parser recurses per level. */
#define PATTERN_MAX_NEST 32
/* Parts that can match the empty string (x*, x?, ^, (a|)): glibc computes
 * epsilon closures between them, and with anchors around that cost grows
 * like a high power of their number ("^(a*|b*)" x 80 takes 0.1 s, x 400
 * minutes). Real patterns have a handful. */
#define PATTERN_MAX_NULLABLE 100
#define UNBOUNDED UINT64_MAX

/* What the scan knows about the innermost open group (or the whole pattern
 * at depth 0). "Nullable" means: can match the empty string. */
typedef struct level {
    uint64_t size;   /* elements so far */
    uint64_t last;   /* elements of the latest atom; 0 when there is none */
    int last_null;   /* the latest atom is nullable */
    int before_null; /* the current alternative was nullable before it */
    int alt_null;    /* the current alternative is nullable so far */
    int group_null;  /* a finished alternative is nullable */
    int quantified;  /* the latest atom already carries an operator */
} level;

typedef struct scan {
    level lv[PATTERN_MAX_NEST + 1];
    int depth;
    int nullables;
    char *err;
    size_t errlen;
} scan;

static int refuse(scan *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse(scan *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_limits(scan *s, int new_nullable)
{
    if (new_nullable && ++s->nullables > PATTERN_MAX_NULLABLE)
        return refuse(s,
                      "pattern too complex: more than %d parts that can "
                      "match the empty string",
                      PATTERN_MAX_NULLABLE);
    if (s->lv[s->depth].size > PATTERN_MAX_ELEMENTS)
        return refuse(s,
                      "pattern too complex: its repetitions expand to "
                      "more than %d elements (use minLength/maxLength "
                      "for lengths)",
                      PATTERN_MAX_ELEMENTS);
    return 0;
}

static int atom(scan *s, uint64_t size, int nullable)
{
    level *l = &s->lv[s->depth];
    l->before_null = l->alt_null;
    l->last = size ? size : 1;
    l->last_null = nullable;
    l->quantified = 0;
    l->alt_null = l->alt_null && nullable;
    l->size += l->last;
    return check_limits(s, nullable);
}

/* A repetition of the latest atom, at least min and at most max times. */
static int quantify(scan *s, uint64_t min, uint64_t max)
{
    level *l = &s->lv[s->depth];
    if (!l->last)
        return 0; /* nothing to repeat: regcomp names the error */
    /* ECMA-262 reads x+? as a lazy x+, POSIX as (x+)?, which also matches
     * "": the same text would accept different strings. */
    if (l->quantified)
        return refuse(s, "two repetition operators in a row (like x+?, .*? "
                         "or x**): POSIX ERE has no lazy quantifiers and "
                         "reads x+? as (x+)?; write x+ or use a group");
    /* (a*)*, (a|)+, (x?){2}: glibc's closure computation is exponential in
     * the number of such nested loops over the empty string. */
    if (l->last_null)
        return refuse(s, "pattern repeats something that can match the "
                         "empty string (like (a*)* or (a|)+): repeat only "
                         "the part that cannot be empty");
    /* glibc unrolls x{m,n} into n copies, x{m,} into m + 1, x+ into xx*. */
    uint64_t times = max == UNBOUNDED ? min + 1 : max;
    if (times > PATTERN_MAX_ELEMENTS + 1)
        times = PATTERN_MAX_ELEMENTS + 1;
    if (times < 1)
        times = 1;
    l->size -= l->last;
    l->last *= times;
    l->size += l->last;
    if (min == 0)
        l->last_null = 1;
    l->quantified = 1;
    l->alt_null = l->before_null && l->last_null;
    return check_limits(s, min == 0);
}

static const char *escape_hint(char c)
{
    switch (c) {
    case 'd':
        return "write [0-9]";
    case 'D':
        return "write [^0-9]";
    case 'w':
        return "write [A-Za-z0-9_]";
    case 'W':
        return "write [^A-Za-z0-9_]";
    case 's':
        return "write [[:space:]]";
    case 'S':
        return "write [^[:space:]]";
    case 'b':
    case 'B':
    case '<':
    case '>':
        return "word boundaries are not supported";
    case '`':
    case '\'':
        return "use ^ and $ to anchor";
    case 'n':
    case 't':
    case 'r':
    case 'u':
    case 'x':
        return "put the character itself in the pattern";
    default:
        if (c >= '0' && c <= '9')
            return "back-references are not supported";
        return "only punctuation may be escaped";
    }
}

/* A backslash escape outside brackets. glibc reads \d as 'd' and \< as a
 * word boundary, so only punctuation that means itself is let through. */
static int scan_escape(scan *s, const char *p, size_t n, size_t *i)
{
    if (*i + 1 >= n)
        return atom(s, 1, 0); /* trailing backslash: regcomp names it */
    char c = p[*i + 1];
    int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                (c >= 'A' && c <= 'Z');
    if (alnum || strchr("<>`'", c))
        return refuse(s, "'\\%c' is not POSIX ERE: %s", c, escape_hint(c));
    *i += 1;
    return atom(s, 1, 0);
}

/* Finds the ']' that closes the bracket expression opening at p[i]; returns
 * its index, n when unterminated (regcomp reports it), -1 when refused. */
static long bracket_end(scan *s, const char *p, size_t n, size_t i)
{
    size_t k = i + 1;
    if (k < n && p[k] == '^')
        k++;
    if (k < n && p[k] == ']')
        k++; /* a leading ']' is a literal */
    while (k < n) {
        char c = p[k];
        if (c == '[' && k + 1 < n && strchr(":.=", p[k + 1])) {
            const char *close = NULL;
            for (size_t j = k + 2; j + 1 < n && !close; j++)
                if (p[j] == p[k + 1] && p[j + 1] == ']')
                    close = p + j;
            if (!close)
                return (long)n;
            k = (size_t)(close - p) + 2;
            continue;
        }
        if (c == ']')
            return (long)k;
        if (c == '\\')
            return refuse(s, "a backslash inside [...] is a literal "
                             "backslash in POSIX ERE, not an escape; write "
                             "[0-9], [[:space:]], ... and escape outside "
                             "brackets");
        if ((unsigned char)c >= 0x80)
            return refuse(s, "non-ASCII characters inside [...] match "
                             "single bytes; write alternatives (é|è) "
                             "instead");
        k++;
    }
    return (long)n;
}

/* "{m}", "{m,}", "{m,n}", "{,n}" at p[i]: 1 with the bounds and i on the
 * '}', or 0 when it is not an interval (regcomp then judges it). */
static int interval(const char *p, size_t n, size_t *i, uint64_t *min,
                    uint64_t *max)
{
    uint64_t a = 0, b = 0;
    size_t k = *i + 1;
    int digits = 0, comma = 0, bdigits = 0;
    while (k < n && p[k] >= '0' && p[k] <= '9') {
        a = a < 100000 ? a * 10 + (uint64_t)(p[k] - '0') : a;
        k++, digits++;
    }
    if (k < n && p[k] == ',') {
        comma = 1;
        k++;
        while (k < n && p[k] >= '0' && p[k] <= '9') {
            b = b < 100000 ? b * 10 + (uint64_t)(p[k] - '0') : b;
            k++, bdigits++;
        }
    }
    if (k >= n || p[k] != '}' || !(digits + bdigits))
        return 0;
    *i = k;
    *min = a;
    *max = !comma ? a : bdigits ? b : UNBOUNDED;
    return 1;
}

static int scan_group(scan *s, const char *p, size_t n, size_t i, int open)
{
    if (open) {
        if (i + 1 < n && p[i + 1] == '?')
            return refuse(s, "'(?' groups (non-capturing, lookaround) are "
                             "not POSIX ERE: use plain (...)");
        if (s->depth >= PATTERN_MAX_NEST)
            return refuse(s, "pattern nests groups deeper than %d",
                          PATTERN_MAX_NEST);
        s->depth++;
        memset(&s->lv[s->depth], 0, sizeof(s->lv[s->depth]));
        s->lv[s->depth].alt_null = 1;
        return 0;
    }
    if (s->depth == 0)
        return atom(s, 1, 0); /* an unmatched ')' is an ordinary character */
    level *l = &s->lv[s->depth];
    uint64_t inner = l->size;
    int nullable = l->group_null || l->alt_null;
    s->depth--;
    return atom(s, inner, nullable);
}

static int scan_pattern(scan *s, const char *p, size_t n)
{
    s->lv[0].alt_null = 1;
    for (size_t i = 0; i < n; i++) {
        int rc = 0;
        uint64_t min, max;
        long end;
        switch (p[i]) {
        case '\\':
            rc = scan_escape(s, p, n, &i);
            break;
        case '[':
            end = bracket_end(s, p, n, i);
            if (end < 0)
                return -1;
            if ((size_t)end >= n)
                return 0;
            i = (size_t)end;
            rc = atom(s, 1, 0);
            break;
        case '(':
        case ')':
            rc = scan_group(s, p, n, i, p[i] == '(');
            break;
        case '|':
            s->lv[s->depth].group_null |= s->lv[s->depth].alt_null;
            s->lv[s->depth].alt_null = 1;
            s->lv[s->depth].last = 0;
            break;
        case '^':
        case '$':
            rc = atom(s, 1, 1);
            break;
        case '*':
            rc = quantify(s, 0, UNBOUNDED);
            break;
        case '+':
            rc = quantify(s, 1, UNBOUNDED);
            break;
        case '?':
            rc = quantify(s, 0, 1);
            break;
        case '{':
            if (interval(p, n, &i, &min, &max))
                rc = quantify(s, min, max);
            else
                rc = atom(s, 1, 0);
            break;
        default:
            rc = atom(s, 1, 0);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int pc_schema_pattern_compile(const char *pat, size_t len, regex_t *re,
                              char *err, size_t errlen)
{
    scan s = {.err = err, .errlen = errlen};
    if (memchr(pat, '\0', len))
        return refuse(&s, "pattern contains a NUL character");
    if (scan_pattern(&s, pat, len))
        return -1;
    int rc = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char why[128];
        regerror(rc, re, why, sizeof(why));
        return refuse(&s, "invalid pattern: %s", why);
    }
    return 0;
}
