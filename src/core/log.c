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
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
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

/* JSON string: quotes, backslash, control and non-ASCII bytes escaped. */
static size_t jstr(char *o, size_t room, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (!s) {
        if (room > 4)
            memcpy(o, "null", 4);
        return 4;
    }
    if (n < room)
        o[n] = '"';
    n++;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[6];
        size_t el = 0;
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            el = 2;
        } else if (*p < 0x20 || *p >= 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            el = 6;
        } else {
            e[0] = (char)*p;
            el = 1;
        }
        if (n + el < room)
            memcpy(o + n, e, el);
        n += el;
    }
    if (n < room)
        o[n] = '"';
    return n + 1;
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
    char buf[4096];
    size_t n = 0, room = sizeof buf - 2;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    uint64_t dur = pc_now_ns() - r->start_ns;
#define PUT(...) n += (size_t)snprintf(buf + n, n < room ? room - n : 0, __VA_ARGS__)
#define STR(s) n += jstr(buf + n, n < room ? room - n : 0, (s))
    PUT("{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"request_id\":",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, ts.tv_nsec / 1000000);
    STR(r->request_id);
    PUT(",\"client_ip\":");
    STR(r->client_text[0] ? r->client_text : r->peer_text);
    PUT(",\"method\":");
    STR(r->method);
    PUT(",\"path\":");
    STR(r->path);
    PUT(",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,"
        "\"route\":",
        r->status, (unsigned long long)r->bytes_in,
        (unsigned long long)r->bytes_out, (double)dur / 1e6);
    STR(r->route ? r->route->name : NULL);
    PUT(",\"upstream_target\":");
    STR(r->upstream_target);
    if (r->upstream_target)
        PUT(",\"upstream_ms\":%.3f", (double)r->upstream_ns / 1e6);
    else
        PUT(",\"upstream_ms\":null");
    PUT(",\"cache\":null,\"user\":");
    STR(r->user);
    PUT(",\"tls\":");
    STR(r->tls_version);
    PUT(",\"error\":");
    STR(r->error != PC_ERR_NONE ? pc_err_info(r->error)->code : NULL);
    PUT("}\n");
#undef PUT
#undef STR
    if (n >= room) {
        /* Never write a truncated JSON line: count it as dropped. */
        atomic_fetch_add_explicit(&rg->dropped, 1, memory_order_relaxed);
        return;
    }
    char *line = pc_xstrndup(buf, n);
    rg->slots[head & rg->mask] = line;
    atomic_store_explicit(&rg->head, head + 1, memory_order_release);
}
