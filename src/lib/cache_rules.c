/* cache_rules.c: the RFC 9111 arithmetic and parsing of cache_store.h, pure
 * (no clock: every time is an argument, so tests inject it). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "portcullis/cache_store.h"
#include "portcullis/util.h"

void pc_cc_init(pc_cc *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = cc->swr =
        cc->sie = PC_CC_ABSENT;
}

long long pc_cc_delta(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') { /* quoted-string form */
        s++;
        n -= 2;
    }
    if (n == 0)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v < PC_CC_DELTA_MAX) /* saturate: §1.2.2 */
            v = v * 10 + (s[i] - '0');
        if (v > PC_CC_DELTA_MAX)
            v = PC_CC_DELTA_MAX;
    }
    return v;
}

static int word(const char *s, size_t n, const char *w)
{
    return pc_strieq(s, n, w, strlen(w));
}

/* A duration directive: the first occurrence wins (§4.2.1). */
static void set_delta(pc_cc *cc, long long *dst, const char *v, size_t vn,
                      int has_value)
{
    if (*dst != PC_CC_ABSENT)
        return;
    long long d = has_value ? pc_cc_delta(v, vn) : -1;
    if (d < 0) {
        cc->invalid = 1;
        d = 0;
    }
    *dst = d;
}

void pc_cc_parse(pc_cc *cc, const char *v, size_t n)
{
    const char *p = v, *e = v + n;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= e)
            break;
        const char *ns = p;
        while (p < e && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t nn = (size_t)(p - ns);
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *vs = NULL;
        size_t vn = 0;
        int has_value = 0;
        if (p < e && *p == '=') {
            p++;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            vs = p;
            has_value = 1;
            if (p < e && *p == '"') { /* quoted: up to the closing quote */
                p++;
                while (p < e && *p != '"') {
                    if (*p == '\\' && p + 1 < e)
                        p++;
                    p++;
                }
                if (p < e)
                    p++;
            } else {
                while (p < e && *p != ',' && *p != ' ' && *p != '\t')
                    p++;
            }
            vn = (size_t)(p - vs);
        }
        while (p < e && *p != ',')
            p++; /* junk after a directive is ignored */
        if (word(ns, nn, "no-store"))
            cc->no_store = 1;
        else if (word(ns, nn, "no-cache"))
            cc->no_cache = 1; /* qualified form treated as unqualified */
        else if (word(ns, nn, "private"))
            cc->private_ = 1; /* qualified form treated as unqualified */
        else if (word(ns, nn, "public"))
            cc->public_ = 1;
        else if (word(ns, nn, "must-revalidate"))
            cc->must_revalidate = 1;
        else if (word(ns, nn, "proxy-revalidate"))
            cc->proxy_revalidate = 1;
        else if (word(ns, nn, "only-if-cached"))
            cc->only_if_cached = 1;
        else if (word(ns, nn, "no-transform"))
            cc->no_transform = 1;
        else if (word(ns, nn, "max-age"))
            set_delta(cc, &cc->max_age, vs, vn, has_value);
        else if (word(ns, nn, "s-maxage"))
            set_delta(cc, &cc->s_maxage, vs, vn, has_value);
        else if (word(ns, nn, "min-fresh"))
            set_delta(cc, &cc->min_fresh, vs, vn, has_value);
        else if (word(ns, nn, "stale-while-revalidate"))
            set_delta(cc, &cc->swr, vs, vn, has_value);
        else if (word(ns, nn, "stale-if-error"))
            set_delta(cc, &cc->sie, vs, vn, has_value);
        else if (word(ns, nn, "max-stale")) {
            /* §5.2.1.2: without a value, any staleness is accepted */
            if (!has_value) {
                cc->max_stale_any = 1;
            } else if (cc->max_stale == PC_CC_ABSENT) {
                long long d = pc_cc_delta(vs, vn);
                cc->max_stale = d < 0 ? 0 : d;
            }
        }
    }
}

/* ---- dates ---------------------------------------------------------------- */

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                     "May", "Jun", "Jul", "Aug",
                                     "Sep", "Oct", "Nov", "Dec"};
static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};

static int month_of(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (strncmp(m, months[i], 3) == 0)
            return i;
    return -1;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 0..11). */
static long long days_from_civil(long long y, int m, int d)
{
    m += 1;
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static long long mk(int y, int mon, int d, int h, int mi, int s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || mon < 0 || d < 1 || d > mdays[mon] || h > 23 ||
        mi > 59 || s > 60 || h < 0 || mi < 0 || s < 0)
        return -1;
    long long t = days_from_civil(y, mon, d) * 86400LL + h * 3600LL +
                  mi * 60LL + s;
    return t < 0 ? -1 : t;
}

long long pc_http_date_parse(const char *s, size_t n)
{
    char buf[64], mon[4] = {0}, wd[16] = {0};
    int d, y, h, mi, sec, used = 0;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(buf, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wd,
               &d, mon, &y, &h, &mi, &sec, &used) == 7 &&
        used == (int)n) {
        int m = month_of(mon);
        return m < 0 ? -1 : mk(y, m, d, h, mi, sec);
    }
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit years: RFC 9110
     * §5.6.7, more than 50 years ahead means the previous century) */
    used = 0;
    if (sscanf(buf, "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", wd,
               &d, mon, &y, &h, &mi, &sec, &used) == 7 &&
        used == (int)n) {
        int m = month_of(mon);
        y += y < 70 ? 2000 : 1900;
        return m < 0 ? -1 : mk(y, m, d, h, mi, sec);
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    used = 0;
    if (sscanf(buf, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wd, mon,
               &d, &h, &mi, &sec, &y, &used) == 7 &&
        used == (int)n) {
        int m = month_of(mon);
        return m < 0 ? -1 : mk(y, m, d, h, mi, sec);
    }
    return -1;
}

void pc_http_date_format(long long t, char *out)
{
    time_t tt = (time_t)(t < 0 ? 0 : t);
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             wdays[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- freshness and age ----------------------------------------------------- */

static long long sat_add(long long a, long long b)
{
    long long r = a + b; /* both within [0, 2^40]: no overflow */
    return r > PC_CC_DELTA_MAX ? PC_CC_DELTA_MAX : r;
}

static long long clamp0(long long v)
{
    return v < 0 ? 0 : v > PC_CC_DELTA_MAX ? PC_CC_DELTA_MAX : v;
}

long long pc_cache_current_age(const pc_cache_times *t, long long now)
{
    /* RFC 9111 §4.2.3 */
    long long apparent_age = clamp0(t->response_time - t->date_value);
    long long response_delay = clamp0(t->response_time - t->request_time);
    long long corrected_age_value = sat_add(clamp0(t->age_value),
                                            response_delay);
    long long corrected_initial_age = apparent_age > corrected_age_value
                                          ? apparent_age
                                          : corrected_age_value;
    long long resident_time = clamp0(now - t->response_time);
    return sat_add(corrected_initial_age, resident_time);
}

int pc_cache_status_heuristic(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return 1;
    default:
        return 0;
    }
}

long long pc_cache_freshness(const pc_cc *cc, long long expires,
                             long long date_value, long long default_ttl,
                             int heuristic_ok, int *explicit_)
{
    *explicit_ = 1;
    if (cc->s_maxage != PC_CC_ABSENT) /* §4.2.1: shared caches first */
        return cc->s_maxage;
    if (cc->max_age != PC_CC_ABSENT)
        return cc->max_age;
    if (expires == -2) /* §5.3: an invalid Expires is in the past */
        return 0;
    if (expires >= 0)
        return clamp0(expires - date_value);
    *explicit_ = 0;
    return heuristic_ok ? clamp0(default_ttl) : 0;
}

/* ---- Vary ------------------------------------------------------------------- */

int pc_cache_vary_norm(const char *name, const char *const *vals,
                       const size_t *lens, size_t n, char *out, size_t cap)
{
    size_t nl = strlen(name);
    int lower = pc_strieq(name, nl, "accept-encoding", 15) ||
                pc_strieq(name, nl, "accept-language", 15) ||
                pc_strieq(name, nl, "accept-charset", 14);
    size_t o = 0;
    int first = 1;
    for (size_t k = 0; k < n; k++) {
        const char *p = vals[k], *e = vals[k] + lens[k], *s;
        size_t len;
        while ((s = pc_list_next(&p, e, &len))) {
            const char *t = s + len;
            if (!first) {
                if (o + 1 >= cap)
                    return -1;
                out[o++] = ',';
            }
            first = 0;
            int space = 0;
            for (const char *q = s; q < t; q++) {
                char c = *q;
                if (c == ' ' || c == '\t') {
                    space = 1;
                    continue;
                }
                /* "gzip;q=1" and "gzip; q=1" are the same element */
                if (space && c != ';' && (o == 0 || out[o - 1] != ';')) {
                    if (o + 1 >= cap)
                        return -1;
                    out[o++] = ' ';
                }
                space = 0;
                if (o + 1 >= cap)
                    return -1;
                out[o++] = lower ? (char)tolower((unsigned char)c) : c;
            }
        }
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}
