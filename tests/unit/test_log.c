/* test_log.c: the access-log line (core/log.c): JSON string escaping and
 * cutting (pc_log_jstr), and whole lines that always fit one ring entry
 * (pc_log_format_access, issue 8 task 13: a line over 4 KiB was dropped,
 * so a long path hid a 401/403). Then the writer thread (issue 9): lines
 * of several producers all arrive whole and in order, an idle writer
 * sleeps and wakes at once for a line, full rings drop and count, reopen,
 * and worker error lines go through a ring (a worker never blocks on a
 * stuck stderr) while other threads write synchronously. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "portcullis/log.h"

static char out[PC_LOG_LINE_MAX + 1];

static const char *jstr(const char *s, size_t max, int *cut)
{
    *cut = 0;
    memset(out, 'X', sizeof out);
    size_t n = pc_log_jstr(out, max, s, cut);
    cr_assert_leq(n, max, "literal of %zu bytes for max %zu", n, max);
    out[n] = '\0';
    return out;
}

/* The literal parses as a JSON string; returns its decoded value (freed by
 * the caller). */
static char *decoded(const char *lit)
{
    json_error_t err;
    json_t *v = json_loads(lit, JSON_DECODE_ANY, &err);
    cr_assert(v != NULL, "not JSON: %s (%s)", lit, err.text);
    cr_assert(json_is_string(v), "not a string: %s", lit);
    char *s = strdup(json_string_value(v));
    json_decref(v);
    return s;
}

Test(log_jstr, plain_and_null)
{
    int cut;
    cr_assert_str_eq(jstr("/api/orders", 100, &cut), "\"/api/orders\"");
    cr_assert_eq(cut, 0);
    cr_assert_str_eq(jstr(NULL, 100, &cut), "null");
    cr_assert_str_eq(jstr("", 100, &cut), "\"\"");
    /* exactly fits: not cut */
    cr_assert_str_eq(jstr("abcd", 6, &cut), "\"abcd\"");
    cr_assert_eq(cut, 0);
}

Test(log_jstr, escapes)
{
    int cut;
    cr_assert_str_eq(jstr("a\"b\\c", 100, &cut), "\"a\\\"b\\\\c\"");
    cr_assert_str_eq(jstr("\n\x01\x7f", 100, &cut),
                     "\"\\u000a\\u0001\\u007f\"");
    /* well-formed UTF-8 is kept, C1 controls escaped */
    cr_assert_str_eq(jstr("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 100, &cut),
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    cr_assert_str_eq(jstr("\xc2\x85", 100, &cut), "\"\\u0085\"");
    /* bytes that are not UTF-8: overlong, surrogate, lone continuation,
     * truncated sequence, beyond U+10FFFF */
    cr_assert_str_eq(jstr("\xc0\xaf", 100, &cut), "\"\\u00c0\\u00af\"");
    cr_assert_str_eq(jstr("\xed\xa0\x80", 100, &cut),
                     "\"\\u00ed\\u00a0\\u0080\"");
    cr_assert_str_eq(jstr("\x80x", 100, &cut), "\"\\u0080x\"");
    cr_assert_str_eq(jstr("\xe2\x82", 100, &cut), "\"\\u00e2\\u0082\"");
    cr_assert_str_eq(jstr("\xf4\x90\x80\x80", 100, &cut),
                     "\"\\u00f4\\u0090\\u0080\\u0080\"");
    cr_assert_eq(cut, 0);
}

Test(log_jstr, cut_at_character_boundaries)
{
    int cut;
    /* room for "ab" only */
    cr_assert_str_eq(jstr("abcdef", 4, &cut), "\"ab\"");
    cr_assert_eq(cut, 1);
    /* an escape is never split: one byte short of a second \" */
    cr_assert_str_eq(jstr("a\"\"\"", 6, &cut), "\"a\\\"\"");
    cr_assert_eq(cut, 1);
    cr_assert_str_eq(jstr("\x01\x01", 9, &cut), "\"\\u0001\"");
    cr_assert_eq(cut, 1);
    /* a UTF-8 sequence is never split */
    cr_assert_str_eq(jstr("a\xf0\x9f\x98\x80", 6, &cut), "\"a\"");
    cr_assert_eq(cut, 1);
    cr_assert_str_eq(jstr("\xc3\xa9\xc3\xa9", 5, &cut), "\"\xc3\xa9\"");
    cr_assert_eq(cut, 1);
}

Test(log_jstr, every_cut_is_valid_json_and_a_prefix)
{
    const char *s = "/p\"\\\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff/x";
    char *full = decoded(jstr(s, 200, &(int){0}));
    for (size_t max = 6; max < 60; max++) {
        int cut;
        char *got = decoded(jstr(s, max, &cut));
        cr_assert_eq(strncmp(full, got, strlen(got)), 0,
                     "max %zu: %s is not a prefix of %s", max, got, full);
        cr_assert_eq(cut, strlen(got) < strlen(full), "max %zu", max);
        free(got);
    }
    free(full);
}

static json_t *parse_line(const char *line, size_t n)
{
    cr_assert_leq(n, PC_LOG_LINE_MAX);
    cr_assert_eq(strlen(line), n);
    cr_assert_eq(line[n - 1], '\n');
    cr_assert_null(memchr(line, '\n', n - 1), "a line break inside the line");
    json_error_t err;
    json_t *o = json_loadb(line, n - 1, 0, &err);
    cr_assert(o != NULL, "invalid JSON line (%s): %s", err.text, line);
    static const char *const keys[] = {"ts",
                                       "request_id",
                                       "client_ip",
                                       "method",
                                       "path",
                                       "status",
                                       "bytes_in",
                                       "bytes_out",
                                       "duration_ms",
                                       "route",
                                       "upstream_target",
                                       "upstream_ms",
                                       "cache",
                                       "user",
                                       "tls",
                                       "error",
                                       "truncated"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(json_object_get(o, keys[i]) != NULL, "no %s in %s", keys[i],
                  line);
    cr_assert_eq(json_object_size(o), sizeof keys / sizeof *keys);
    return o;
}

static char *repeat(const char *unit, size_t times, const char *prefix)
{
    size_t u = strlen(unit), p = strlen(prefix);
    char *s = malloc(p + u * times + 1);
    memcpy(s, prefix, p);
    for (size_t i = 0; i < times; i++)
        memcpy(s + p + i * u, unit, u);
    s[p + u * times] = '\0';
    return s;
}

static pc_access_fields fields(void)
{
    pc_access_fields f = {
        .ts_ms = 1795447168123LL, /* 2026-11-23T15:19:28.123Z */
        .request_id = "0123456789abcdef0123456789abcdef",
        .client_ip = "203.0.113.7",
        .method = "GET",
        .path = "/api/orders",
        .status = 403,
        .bytes_in = 120,
        .bytes_out = 140,
        .duration_ms = 1.25,
        .route = "orders",
        .upstream_target = NULL,
        .upstream_ms = 0,
        .user = NULL,
        .tls = "TLSv1.3",
        .error = "forbidden",
    };
    return f;
}

Test(log_line, short_line_is_whole)
{
    pc_access_fields f = fields();
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    cr_assert_str_eq(json_string_value(json_object_get(o, "ts")),
                     "2026-11-23T15:19:28.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")),
                     "/api/orders");
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 403);
    cr_assert(json_is_false(json_object_get(o, "truncated")));
    cr_assert(json_is_null(json_object_get(o, "upstream_ms")));
    cr_assert(json_is_null(json_object_get(o, "user")));
    cr_assert(json_is_null(json_object_get(o, "cache")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")),
                     "forbidden");
    json_decref(o);
}

/* The line is written without printf: its numbers and date are those
 * printf and gmtime give (durations as %.3f away from the half-microsecond
 * ties, where the two may round differently), for values across their
 * ranges, the seconds changing from line to line (the date cache). */
Test(log_line, numbers_and_dates_as_printf)
{
    static const int64_t ts[] = {0, 999, 1000, 1764689999999LL,
                                 1764690000000LL, 253402300799999LL, -1};
    static const double ms[] = {0, 0.0004, 0.0006, 1.2344, 1.2346, 999.9996,
                                12345678.9, 1e15, 1e18, -3};
    static const int st[] = {0, 200, 404, 999, -1};
    static const uint64_t by[] = {0, 9, 10, 12345, 1ULL << 62}; /* jansson: int64 */
    for (size_t i = 0; i < 7 * 10; i++) {
        pc_access_fields f = fields();
        f.ts_ms = ts[i % 7];
        f.duration_ms = ms[i % 10];
        f.upstream_target = "http://10.0.0.1:80";
        f.upstream_ms = ms[(i + 3) % 10];
        f.status = st[i % 5];
        f.bytes_in = by[i % 5];
        f.bytes_out = by[(i + 2) % 5];
        size_t n = pc_log_format_access(out, &f);
        json_t *o = parse_line(out, n);
        cr_assert_not_null(o, "not JSON: %s", out);
        int64_t sec = f.ts_ms / 1000, frac = f.ts_ms % 1000;
        if (frac < 0)
            sec--, frac += 1000;
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        char want[64];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)frac);
        cr_assert_str_eq(json_string_value(json_object_get(o, "ts")), want);
        cr_assert_eq(json_integer_value(json_object_get(o, "status")),
                     f.status);
        char num[64];
        snprintf(num, sizeof num, "\"bytes_in\":%llu,",
                 (unsigned long long)f.bytes_in);
        cr_assert(strstr(out, num), "%s in %s", num, out);
        snprintf(num, sizeof num, "\"bytes_out\":%llu,",
                 (unsigned long long)f.bytes_out);
        cr_assert(strstr(out, num), "%s in %s", num, out);
        double d = f.duration_ms > 0 ? (f.duration_ms < 1e15 ? f.duration_ms
                                                              : 1e15)
                                     : 0;
        snprintf(num, sizeof num, "\"duration_ms\":%.3f,", d);
        cr_assert(strstr(out, num), "%s in %s", num, out);
        d = f.upstream_ms > 0 ? (f.upstream_ms < 1e15 ? f.upstream_ms : 1e15)
                              : 0;
        snprintf(num, sizeof num, "\"upstream_ms\":%.3f,", d);
        cr_assert(strstr(out, num), "%s in %s", num, out);
        json_decref(o);
    }
}

Test(log_line, long_path_is_cut_not_dropped)
{
    pc_access_fields f = fields();
    char *path = repeat("a", 7 * 1024, "/deny/");
    f.path = path;
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    const char *p = json_string_value(json_object_get(o, "path"));
    cr_assert_gt(strlen(p), 3000, "path cut to %zu bytes", strlen(p));
    cr_assert_eq(strncmp(p, path, strlen(p)), 0);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 403);
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")),
                     "forbidden");
    json_decref(o);
    free(path);
}

Test(log_line, every_field_long_and_escaped_still_fits)
{
    pc_access_fields f = fields();
    char *path = repeat("\"\x01\xc3\xa9", 3000, "/");
    char *user = repeat("\xf0\x9f\x98\x80\\", 3000, "u");
    char *route = repeat("r\"", 3000, "");
    char *target = repeat("\x02", 3000, "http://");
    char *rid = repeat("i", 5000, "");
    f.path = path;
    f.user = user;
    f.route = route;
    f.upstream_target = target;
    f.upstream_ms = 1e300;
    f.duration_ms = 1e300;
    f.request_id = rid;
    f.method = route;
    f.client_ip = route;
    f.tls = route;
    f.error = route;
    f.cache = route;
    f.bytes_in = f.bytes_out = INT64_MAX; /* jansson reads int64 at most */
    f.status = -2147483647 - 1;
    size_t n = pc_log_format_access(out, &f);
    json_t *o = parse_line(out, n);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    const char *up = json_string_value(json_object_get(o, "upstream_target"));
    cr_assert_eq(strncmp(up, target, strlen(up)), 0);
    cr_assert_gt(strlen(json_string_value(json_object_get(o, "path"))), 100);
    cr_assert_gt(strlen(json_string_value(json_object_get(o, "user"))), 100);
    json_decref(o);
    free(path);
    free(user);
    free(route);
    free(target);
    free(rid);
}

Test(log_line, path_just_fitting_is_not_cut)
{
    pc_access_fields f = fields();
    char probe[PC_LOG_LINE_MAX + 1];
    f.path = "";
    size_t base = pc_log_format_access(probe, &f);
    /* the empty-path line with "false" is base bytes: the path may take
     * exactly the rest */
    char *path = repeat("b", PC_LOG_LINE_MAX - base, "");
    f.path = path;
    size_t n = pc_log_format_access(out, &f);
    cr_assert_eq(n, PC_LOG_LINE_MAX);
    json_t *o = parse_line(out, n);
    cr_assert(json_is_false(json_object_get(o, "truncated")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")), path);
    json_decref(o);
    free(path);
    path = repeat("b", PC_LOG_LINE_MAX - base + 1, "");
    f.path = path;
    n = pc_log_format_access(out, &f);
    o = parse_line(out, n);
    cr_assert(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    free(path);
}

/* ---- the writer thread ---- */

static char tmpdir[64];

static char *tmp_path(const char *name)
{
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/pc_log_test.XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
    }
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The whole file, NUL-terminated (NULL if it does not exist). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    for (size_t r; (r = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n < 2)
            s = realloc(s, cap *= 2);
    }
    fclose(f);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

/* Waits up to timeout_ms for needle to appear in the file; returns the
 * milliseconds it took, or -1. */
static long wait_for(const char *path, const char *needle, long timeout_ms)
{
    uint64_t t0 = now_ms();
    for (;;) {
        char *s = slurp(path, NULL);
        int found = s && strstr(s, needle);
        free(s);
        long el = (long)(now_ms() - t0);
        if (found)
            return el;
        if (el > timeout_ms)
            return -1;
        sleep_ms(1);
    }
}

static pc_logger *start(const char *access, uint64_t entries, unsigned n)
{
    pc_log_conf c = {.access = (char *)access, .ring_entries = entries,
                     .level = PC_LOG_INFO};
    pc_logger *lg = pc_logger_start(&c, n);
    cr_assert_not_null(lg);
    return lg;
}

typedef struct producer {
    pc_logger *lg;
    unsigned id;
    int lines;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    char line[1300], xs[1200];
    memset(xs, 'x', sizeof xs);
    for (int i = 0; i < p->lines; i++) {
        /* lengths vary (some over the writer's 1 KiB recycled buffers), so
         * batches split lines at every offset */
        int pad = (i * 37 + (int)p->id * 11) % 1200;
        int n = snprintf(line, sizeof line, "p%u %d %.*s|\n", p->id, i, pad,
                         xs);
        while (pc_logger_push(p->lg, p->id, line, (size_t)n) != 0)
            sched_yield(); /* this test wants every line: retry */
    }
    return NULL;
}

/* Checks "p<id> <seq> x...x|" lines: whole, and each producer's in order
 * from 0; returns how many lines producer id wrote. */
static void check_lines(char *s, unsigned nprod, int *count)
{
    for (unsigned i = 0; i < nprod; i++)
        count[i] = 0;
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        unsigned id;
        int seq, off = 0;
        cr_assert_eq(sscanf(l, "p%u %d %n", &id, &seq, &off), 2,
                     "broken line: %.80s", l);
        cr_assert_lt(id, nprod);
        cr_assert_eq(seq, count[id], "producer %u: line %d after %d", id, seq,
                     count[id] - 1);
        size_t x = strspn(l + off, "x");
        cr_assert_str_eq(l + off + x, "|", "line cut: %.80s", l);
        count[id]++;
    }
}

Test(log_writer, producers_lines_arrive_whole_and_in_order)
{
    enum { NPROD = 4, LINES = 5000 };
    char *path = tmp_path("access.log");
    pc_logger *lg = start(path, 256, NPROD);
    pthread_t th[NPROD];
    producer p[NPROD];
    for (unsigned i = 0; i < NPROD; i++) {
        p[i] = (producer){lg, i, LINES};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (unsigned i = 0; i < NPROD; i++)
        pthread_join(th[i], NULL);
    pc_logger_stop(lg); /* writes out what is queued */
    char *s = slurp(path, NULL);
    cr_assert_not_null(s);
    int count[NPROD];
    check_lines(s, NPROD, count);
    for (unsigned i = 0; i < NPROD; i++)
        cr_assert_eq(count[i], LINES, "producer %u: %d lines", i, count[i]);
    free(s);
    free(path);
}

/* utime + stime (clock ticks) of this process's thread named comm. */
static long thread_ticks(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    long ticks = -1;
    for (struct dirent *e; (e = readdir(d)) && ticks < 0;) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], buf[1024];
        snprintf(p, sizeof p, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close ||
            strncmp(open + 1, comm, (size_t)(close - open - 1)) != 0 ||
            strlen(comm) != (size_t)(close - open - 1))
            continue;
        /* after ") ": state(3) ... utime(14) stime(15) */
        char *q = close + 2;
        for (int field = 3; field < 14 && q; field++)
            q = strchr(q, ' ') ? strchr(q, ' ') + 1 : NULL;
        long ut, st;
        cr_assert(q && sscanf(q, "%ld %ld", &ut, &st) == 2);
        ticks = ut + st;
    }
    closedir(d);
    cr_assert_geq(ticks, 0, "no thread named %s", comm);
    return ticks;
}

Test(log_writer, idle_writer_sleeps_and_wakes_at_once)
{
    char *path = tmp_path("idle.log");
    pc_logger *lg = start(path, 64, 1);
    cr_assert_eq(pc_logger_push(lg, 0, "first\n", 6), 0);
    cr_assert_geq(wait_for(path, "first\n", 2000), 0);
    sleep_ms(50); /* the writer lingers a little, then sleeps */
    uint64_t w0 = pc_logger_wakeups(lg);
    long t0 = thread_ticks("pc-log");
    sleep_ms(600);
    cr_assert_eq(pc_logger_wakeups(lg), w0, "an idle writer woke %llu times",
                 (unsigned long long)(pc_logger_wakeups(lg) - w0));
    cr_assert_leq(thread_ticks("pc-log") - t0, 1, "an idle writer used CPU");
    /* asleep, it wakes for a line (a 5 ms poll would take ~5 ms; an
     * eventfd wake-up well under that, but allow for a loaded host) */
    cr_assert_eq(pc_logger_push(lg, 0, "second\n", 7), 0);
    long took = wait_for(path, "second\n", 2000);
    cr_assert_geq(took, 0);
    cr_assert_lt(took, 500, "the line took %ld ms", took);
    cr_assert_gt(pc_logger_wakeups(lg), w0);
    /* and wakes for stop at once */
    uint64_t t = now_ms();
    pc_logger_stop(lg);
    cr_assert_lt(now_ms() - t, 500);
    free(path);
}

/* Reads from a non-blocking fd into buf (grown) until nlines '\n' have
 * arrived or timeout_ms passed with nothing new; returns total lines. */
static int read_lines(int fd, char **buf, size_t *len, size_t *cap,
                      int nlines, int timeout_ms)
{
    int lines = 0;
    for (size_t i = 0; i < *len; i++)
        lines += (*buf)[i] == '\n';
    while (lines < nlines) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        if (*cap - *len < 65536)
            *buf = realloc(*buf, *cap = *cap * 2 + 65536);
        ssize_t r = read(fd, *buf + *len, *cap - *len - 1);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            lines += (*buf)[*len + (size_t)i] == '\n';
        *len += (size_t)r;
    }
    (*buf)[*len] = '\0';
    return lines;
}

Test(log_writer, full_ring_drops_and_counts_never_blocks)
{
    /* the file is a FIFO nobody reads yet: the writer blocks once the
     * pipe is full, then the ring fills */
    char *path = tmp_path("fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(rd, 0);
    pc_logger *lg = start(path, 8, 1);
    enum { N = 300 };
    char line[1000];
    memset(line, 'x', sizeof line);
    int dropped = 0;
    uint64_t t = now_ms();
    for (int i = 0; i < N; i++) {
        int n = snprintf(line, 40, "p0 %d ", i);
        line[n] = 'x';
        line[sizeof line - 2] = '|';
        line[sizeof line - 1] = '\n';
        dropped += pc_logger_push(lg, 0, line, sizeof line) != 0;
    }
    cr_assert_lt(now_ms() - t, 1000, "the producer waited");
    /* 64 KiB of pipe, 8 slots, one batch in flight: at most ~90 lines */
    cr_assert_gt(dropped, N - 100, "only %d dropped", dropped);
    cr_assert_eq(pc_logger_dropped(lg), (uint64_t)dropped);
    size_t len = 0, cap = 0;
    char *buf = NULL;
    buf = realloc(buf, cap = 65536);
    int got = read_lines(rd, &buf, &len, &cap, N - dropped, 2000);
    cr_assert_eq(got, N - dropped);
    pc_logger_stop(lg);
    got = read_lines(rd, &buf, &len, &cap, N, 200);
    cr_assert_eq(got, N - dropped, "%d lines, %d dropped", got, dropped);
    /* whole lines, in order (with gaps where lines were dropped) */
    int last = -1;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        int seq, off = 0;
        cr_assert_eq(sscanf(l, "p0 %d %n", &seq, &off), 1);
        cr_assert_gt(seq, last);
        last = seq;
        cr_assert_eq(strlen(l), sizeof line - 1);
    }
    close(rd);
    free(buf);
    free(path);
}

Test(log_writer, reopen_moves_to_a_new_file)
{
    char *path = tmp_path("rot.log"), *old = tmp_path("rot.log.1");
    pc_logger *lg = start(path, 64, 1);
    cr_assert_eq(pc_logger_push(lg, 0, "one\n", 4), 0);
    cr_assert_geq(wait_for(path, "one\n", 2000), 0);
    cr_assert_eq(rename(path, old), 0);
    pc_logger_reopen(lg);
    struct stat st;
    uint64_t t = now_ms();
    while (stat(path, &st) != 0 && now_ms() - t < 2000)
        sleep_ms(1);
    cr_assert_eq(stat(path, &st), 0, "not reopened");
    cr_assert_eq(pc_logger_push(lg, 0, "two\n", 4), 0);
    pc_logger_stop(lg);
    char *a = slurp(old, NULL), *b = slurp(path, NULL);
    cr_assert_str_eq(a, "one\n");
    cr_assert_str_eq(b, "two\n");
    free(a);
    free(b);
    free(path);
    free(old);
}

/* ---- error lines ---- */

typedef struct err_producer {
    pc_logger *lg;
    unsigned id;
    int lines;
    atomic_int done;
} err_producer;

static void *err_produce(void *arg)
{
    err_producer *p = arg;
    pc_log_attach_thread(p->lg, p->id);
    for (int i = 0; i < p->lines; i++)
        pc_log(PC_LOG_ERROR, "worker %u line %d", p->id, i);
    atomic_store(&p->done, 1);
    return NULL;
}

/* Fills the pipe's buffer: writes to fd block from now on (a stuck
 * stderr). Returns the bytes written. */
static size_t fill_pipe(int fd)
{
    char junk[4096];
    memset(junk, 'F', sizeof junk);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    size_t total = 0;
    for (ssize_t w; (w = write(fd, junk, sizeof junk)) != 0;) {
        if (w < 0) {
            cr_assert_eq(errno, EAGAIN);
            if (write(fd, junk, 1) != 1)
                break; /* not even one byte more */
            w = 1;
        }
        total += (size_t)w;
    }
    fcntl(fd, F_SETFL, fl);
    return total;
}

/* Checks "<ts> [error] worker <id> line <seq>" lines: whole, from worker
 * id, in order (gaps allowed: dropped lines); returns their number. */
static int check_err_lines(char *s, unsigned id)
{
    int n = 0, last = -1;
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        const char *m = strstr(l, " [error] worker ");
        cr_assert_not_null(m, "broken line: %.80s", l);
        unsigned wid;
        int seq, off = 0;
        cr_assert_eq(sscanf(m, " [error] worker %u line %d%n", &wid, &seq,
                            &off),
                     2, "broken line: %.80s", l);
        cr_assert_eq(m[off], '\0', "broken line: %.80s", l);
        cr_assert_eq(wid, id);
        cr_assert_gt(seq, last);
        last = seq;
        n++;
    }
    return n;
}

Test(log_errors, worker_lines_go_through_the_ring)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pc_log_set_error_fd(p[1]);
    /* a thread that is no worker writes at once */
    pc_log(PC_LOG_WARN, "direct %d", 7);
    char buf[256];
    ssize_t r = read(p[0], buf, sizeof buf - 1);
    cr_assert_gt(r, 0);
    buf[r] = '\0';
    cr_assert(strstr(buf, " [warn] direct 7\n") != NULL, "%s", buf);
    size_t filler = fill_pipe(p[1]);

    pc_logger *lg = start("off", 64, 2);
    enum { N = 1500 }; /* more than the error ring holds */
    err_producer ep = {lg, 1, N, 0};
    pthread_t th;
    pthread_create(&th, NULL, err_produce, &ep);
    uint64_t t = now_ms();
    while (!atomic_load(&ep.done) && now_ms() - t < 3000)
        sleep_ms(5);
    cr_assert(atomic_load(&ep.done), "the worker blocked on a stuck stderr");
    pthread_join(th, NULL);
    uint64_t dropped = pc_logger_errors_dropped(lg);
    cr_assert_gt(dropped, 0);
    cr_assert_eq(pc_logger_dropped(lg), 0);

    /* unstick stderr: every queued line comes out, whole and in order */
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    size_t len = 0, cap = 65536;
    char *out_buf = malloc(cap);
    int got = read_lines(p[0], &out_buf, &len, &cap, INT32_MAX, 300);
    pc_logger_stop(lg);
    pc_log(PC_LOG_INFO, "stopped");
    close(p[1]);
    got = read_lines(p[0], &out_buf, &len, &cap, INT32_MAX, 1000);
    (void)got;
    cr_assert_gt(len, filler);
    for (size_t i = 0; i < filler; i++)
        cr_assert_eq(out_buf[i], 'F');
    char *last = strrchr(out_buf + filler, '[');
    cr_assert_str_eq(last, "[info] stopped\n", "not last: %s", last);
    last[-1] = '\0'; /* drop the "stopped" line */
    *strrchr(out_buf + filler, '\n') = '\0';
    int lines = check_err_lines(out_buf + filler, 1);
    cr_assert_eq((uint64_t)lines + dropped, N, "%d lines, %llu dropped",
                 lines, (unsigned long long)dropped);
    free(out_buf);
    close(p[0]);
    pc_log_set_error_fd(2);
}

Test(log_errors, stop_writes_out_queued_lines_before_stopped)
{
    char *path = tmp_path("stderr.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert_geq(fd, 0);
    pc_log_set_error_fd(fd);
    pc_logger *lg = start("off", 64, 3);
    err_producer ep[3];
    pthread_t th[3];
    for (unsigned i = 0; i < 3; i++) {
        ep[i] = (err_producer){lg, i, 300, 0};
        pthread_create(&th[i], NULL, err_produce, &ep[i]);
    }
    for (unsigned i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(pc_logger_errors_dropped(lg), 0);
    pc_logger_stop(lg);
    pc_log(PC_LOG_INFO, "stopped");
    pc_log_set_error_fd(2);
    close(fd);
    char *s = slurp(path, NULL);
    cr_assert_not_null(s);
    size_t n = strlen(s);
    static const char tail[] = " [info] stopped\n";
    cr_assert(n > sizeof tail && strcmp(s + n - (sizeof tail - 1), tail) == 0,
              "\"stopped\" is not last");
    int count[3] = {0};
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        unsigned wid;
        int seq;
        const char *m = strstr(l, " [error] worker ");
        if (!m) {
            cr_assert(strstr(l, " [info] stopped") != NULL, "%s", l);
            continue;
        }
        cr_assert_eq(sscanf(m, " [error] worker %u line %d", &wid, &seq), 2);
        cr_assert_lt(wid, 3);
        cr_assert_eq(seq, count[wid]);
        count[wid]++;
    }
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(count[i], 300);
    free(s);
    free(path);
}
