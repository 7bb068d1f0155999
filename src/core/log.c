/* log.c: the error log (stderr) and the access log (CONTRACT §7).
 *
 * DESIGN: each worker owns one single-producer/single-consumer ring of
 * line pointers. The worker formats its JSON line, then publishes it with
 * a release store of `head`; the writer thread takes lines with an acquire
 * load, writes them in batches with writev, and frees them. A full ring
 * drops the line and counts it: a worker never blocks on the disk.
 *
 *   worker 0 ─► [ring 0] ─┐
 *   worker 1 ─► [ring 1] ─┼─► writer thread ─► writev(file)
 *                         ┘
 */
#include "portcullis/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "portcullis/http.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

typedef struct ring {
    _Alignas(64) atomic_size_t head; /* written by the worker */
    _Alignas(64) atomic_size_t tail; /* written by the writer */
    _Alignas(64) atomic_uint_fast64_t dropped;
    char **slots;
    size_t mask;
} ring;

struct pc_logger {
    ring *rings;
    unsigned n;
    int fd;
    int own_fd;
    char *path;
    pthread_t thread;
    atomic_int stop;
    atomic_int reopen;
};

pc_logger *pc_access_logger;
static atomic_int log_level = PC_LOG_INFO;

void pc_log_set_level(pc_log_level l)
{
    atomic_store(&log_level, (int)l);
}

void pc_log(pc_log_level l, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)l > atomic_load(&log_level))
        return;
    char buf[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[l]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}

static int open_file(pc_logger *lg)
{
    if (strcmp(lg->path, "stdout") == 0) {
        lg->fd = 1;
        lg->own_fd = 0;
        return 0;
    }
    int fd = open(lg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        pc_log(PC_LOG_ERROR, "cannot open access log %s: %s", lg->path,
               strerror(errno));
        return -1;
    }
    lg->fd = fd;
    lg->own_fd = 1;
    return 0;
}

static size_t drain(pc_logger *lg)
{
    struct iovec iov[64];
    char *lines[64];
    size_t total = 0;
    for (unsigned r = 0; r < lg->n; r++) {
        ring *rg = &lg->rings[r];
        for (;;) {
            size_t tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
            size_t head = atomic_load_explicit(&rg->head, memory_order_acquire);
            int k = 0;
            while (tail != head && k < 64) {
                lines[k] = rg->slots[tail & rg->mask];
                iov[k].iov_base = lines[k];
                iov[k].iov_len = strlen(lines[k]);
                k++;
                tail++;
            }
            if (k == 0)
                break;
            ssize_t w = writev(lg->fd, iov, k);
            (void)w; /* a failing disk loses lines; the workers go on */
            for (int i = 0; i < k; i++)
                free(lines[i]);
            atomic_store_explicit(&rg->tail, tail, memory_order_release);
            total += (size_t)k;
        }
    }
    return total;
}

static void *writer_main(void *arg)
{
    pc_logger *lg = arg;
    for (;;) {
        if (atomic_exchange(&lg->reopen, 0) && lg->own_fd) {
            int old = lg->fd;
            if (open_file(lg) == 0)
                close(old);
            else
                lg->fd = old;
        }
        int stopping = atomic_load(&lg->stop);
        if (drain(lg) == 0) {
            if (stopping)
                break;
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

pc_logger *pc_logger_start(const pc_log_conf *conf, unsigned nworkers)
{
    if (!conf->access || strcmp(conf->access, "off") == 0)
        return NULL;
    pc_logger *lg = pc_xcalloc(1, sizeof *lg);
    lg->path = pc_xstrdup(conf->access);
    if (open_file(lg) != 0) {
        free(lg->path);
        free(lg);
        return NULL;
    }
    size_t entries = 1;
    while (entries < conf->ring_entries)
        entries <<= 1;
    lg->n = nworkers;
    lg->rings = pc_xcalloc(nworkers, sizeof *lg->rings);
    for (unsigned i = 0; i < nworkers; i++) {
        lg->rings[i].slots = pc_xcalloc(entries, sizeof(char *));
        lg->rings[i].mask = entries - 1;
    }
    if (pthread_create(&lg->thread, NULL, writer_main, lg) != 0) {
        pc_log(PC_LOG_ERROR, "cannot start the access log thread");
        lg->stop = 1;
        pc_logger_stop(lg);
        return NULL;
    }
    return lg;
}

void pc_logger_stop(pc_logger *lg)
{
    if (!lg)
        return;
    if (lg->thread) {
        atomic_store(&lg->stop, 1);
        pthread_join(lg->thread, NULL);
    }
    drain(lg);
    for (unsigned i = 0; i < lg->n; i++)
        free(lg->rings[i].slots);
    free(lg->rings);
    if (lg->own_fd)
        close(lg->fd);
    free(lg->path);
    free(lg);
}

void pc_logger_reopen(pc_logger *lg)
{
    if (lg)
        atomic_store(&lg->reopen, 1);
}

uint64_t pc_logger_dropped(const pc_logger *lg)
{
    uint64_t d = 0;
    if (!lg)
        return 0;
    for (unsigned i = 0; i < lg->n; i++)
        d += atomic_load(&lg->rings[i].dropped);
    return d;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlong form,
 * no surrogate, at most U+10FFFF) starting at p, 0 when there is none. p
 * is NUL-terminated: a NUL is never a continuation byte, so nothing past
 * it is read. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
                       (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

/* One character of s as JSON string content into e (at most 6 bytes);
 * returns its length and sets *in to the input bytes it stands for. */
static size_t junit(const unsigned char *p, char e[6], size_t *in)
{
    static const char hex[] = "0123456789abcdef";
    unsigned cp = p[0];
    size_t n = utf8_len(p);
    *in = n ? n : 1;
    if (n == 2)
        cp = ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
    if (cp == '"' || cp == '\\') {
        e[0] = '\\';
        e[1] = (char)cp;
        return 2;
    }
    /* C0, DEL, C1 controls, and bytes that are not UTF-8 (as U+00XX) */
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || n == 0) {
        memcpy(e, "\\u00", 4);
        e[4] = hex[(cp >> 4) & 15];
        e[5] = hex[cp & 15];
        return 6;
    }
    memcpy(e, p, n);
    return n;
}

size_t pc_log_jstr(char *out, size_t max, const char *s, int *cut)
{
    if (!s) {
        memcpy(out, "null", 4);
        return 4;
    }
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char e[6];
        size_t in;
        size_t el = junit(p, e, &in);
        if (n + el + 1 > max) {
            *cut = 1;
            break;
        }
        memcpy(out + n, e, el);
        n += el;
        p += in;
    }
    out[n++] = '"';
    return n;
}

/* A bounded writer: the caller sizes every piece so that it fits (fixed
 * shares below); `room` is only a backstop. */
typedef struct lbuf {
    char *p;
    size_t n, cap;
    int cut;
} lbuf;

static void lput(lbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void lput(lbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (m > 0)
        b->n += (size_t)m < b->cap - b->n ? (size_t)m : b->cap - b->n - 1;
}

/* Share of the line each string field but path may take (literal bytes,
 * quotes included); path gets the rest. Their sum with the fixed text
 * (about 330 bytes) leaves path at least 1,800 bytes. */
enum {
    SHARE_ID = 260, /* a valid request id is at most 128 bytes */
    SHARE_IP = 64,
    SHARE_METHOD = 64,
    SHARE_ROUTE = 256,
    SHARE_TARGET = 512,
    SHARE_CACHE = 32,
    SHARE_USER = 512,
    SHARE_TLS = 32,
    SHARE_ERROR = 64,
};

static void lstr(lbuf *b, const char *s, size_t share)
{
    size_t room = b->cap - b->n - 1;
    b->n += pc_log_jstr(b->p + b->n, share < room ? share : room, s, &b->cut);
}

/* Durations come from 64-bit nanosecond counts; the clamp only bounds the
 * width of "%.3f" for any input. */
static double ms_clamp(double v)
{
    return v > 0 && v < 1e15 ? v : v >= 1e15 ? 1e15 : 0;
}

size_t pc_log_format_access(char *buf, const pc_access_fields *f)
{
    static const char end_true[] = ",\"truncated\":true}\n";
    static const char end_false[] = ",\"truncated\":false}\n";
    char tail_buf[PC_LOG_LINE_MAX];
    lbuf head = {buf, 0, PC_LOG_LINE_MAX + 1, 0};
    lbuf tail = {tail_buf, 0, sizeof tail_buf, 0};
    time_t sec = (time_t)(f->ts_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);

    lput(&head,
         "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"request_id\":",
         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
         tm.tm_sec, (int)(f->ts_ms % 1000));
    lstr(&head, f->request_id, SHARE_ID);
    lput(&head, ",\"client_ip\":");
    lstr(&head, f->client_ip, SHARE_IP);
    lput(&head, ",\"method\":");
    lstr(&head, f->method, SHARE_METHOD);
    lput(&head, ",\"path\":");

    lput(&tail,
         ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
         "\"duration_ms\":%.3f,\"route\":",
         f->status, (unsigned long long)f->bytes_in,
         (unsigned long long)f->bytes_out, ms_clamp(f->duration_ms));
    lstr(&tail, f->route, SHARE_ROUTE);
    lput(&tail, ",\"upstream_target\":");
    lstr(&tail, f->upstream_target, SHARE_TARGET);
    if (f->upstream_target)
        lput(&tail, ",\"upstream_ms\":%.3f", ms_clamp(f->upstream_ms));
    else
        lput(&tail, ",\"upstream_ms\":null");
    lput(&tail, ",\"cache\":");
    lstr(&tail, f->cache, SHARE_CACHE);
    lput(&tail, ",\"user\":");
    lstr(&tail, f->user, SHARE_USER);
    lput(&tail, ",\"tls\":");
    lstr(&tail, f->tls, SHARE_TLS);
    lput(&tail, ",\"error\":");
    lstr(&tail, f->error, SHARE_ERROR);

    size_t used = head.n + tail.n + sizeof end_false - 1;
    lstr(&head, f->path, used < PC_LOG_LINE_MAX ? PC_LOG_LINE_MAX - used : 0);
    int cut = head.cut || tail.cut;
    const char *end = cut ? end_true : end_false;
    size_t endlen = cut ? sizeof end_true - 1 : sizeof end_false - 1;
    memcpy(buf + head.n, tail_buf, tail.n);
    memcpy(buf + head.n + tail.n, end, endlen + 1);
    return head.n + tail.n + endlen;
}

void pc_log_access(pc_worker *w, const pc_req *r)
{
    pc_logger *lg = pc_access_logger;
    if (!lg || w->id >= lg->n)
        return;
    ring *rg = &lg->rings[w->id];
    size_t head = atomic_load_explicit(&rg->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&rg->tail, memory_order_acquire);
    if (head - tail > rg->mask) {
        atomic_fetch_add_explicit(&rg->dropped, 1, memory_order_relaxed);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pc_access_fields f = {
        .ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
        .request_id = r->request_id,
        .client_ip = r->client_text[0] ? r->client_text : r->peer_text,
        .method = r->method,
        .path = r->path,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration_ms = (double)(pc_now_ns() - r->start_ns) / 1e6,
        .route = r->route ? r->route->name : NULL,
        .upstream_target = r->upstream_target,
        .upstream_ms = (double)r->upstream_ns / 1e6,
        .user = r->user,
        .tls = r->tls_version,
        .error = r->error != PC_ERR_NONE ? pc_err_info(r->error)->code : NULL,
    };
    char buf[PC_LOG_LINE_MAX + 1];
    size_t n = pc_log_format_access(buf, &f);
    char *line = pc_xstrndup(buf, n);
    rg->slots[head & rg->mask] = line;
    atomic_store_explicit(&rg->head, head + 1, memory_order_release);
}
