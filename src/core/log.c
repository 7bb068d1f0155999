/* log.c: the error log (stderr) and the access log (CONTRACT §7). Owns the
 * writer thread and its rings; must never make a worker wait: no lock, no
 * syscall per line on the worker side in the common case.
 *
 * DESIGN: each worker owns two single-producer/single-consumer rings of
 * line pointers: one for its access-log lines, one for its error-log lines
 * (pc_log on a thread attached with pc_log_attach_thread). The worker
 * formats a line, stores its pointer in the next slot and publishes it with
 * a release store of `head`; the writer thread takes lines with an acquire
 * load of `head`, hands the slots back at once (release store of `tail`),
 * writes the lines in batches (one writev for up to BATCH lines, across
 * rings), then hands the buffers of short lines back to their worker
 * through the ring's `spares` (the other way round), so that a steady
 * worker neither mallocs per line nor has its buffers freed by another
 * thread. A full ring drops the line and counts it.
 *
 *   worker 0 ─► [access 0] [error 0] ─┐            ┌─► writev(access fd)
 *   worker 1 ─► [access 1] [error 1] ─┼─► writer ──┤
 *   main, others ─► write(stderr), under err_lock  └─► writev(stderr), under
 *                                                       err_lock
 *
 * Waking the writer: it blocks in poll() on an eventfd. Before blocking it
 * sets `sleeping`, then (after a seq_cst fence) looks at every ring once
 * more; a producer, after publishing (and a seq_cst fence), reads
 * `sleeping` and only when it is set does it clear it and write the
 * eventfd. The two fences make it impossible for both to miss the other's
 * store, so no line is left waiting while the writer sleeps, and a worker
 * makes a syscall only for the first line after an idle spell. Once awake
 * the writer lingers LINGER_MS (not sleeping: producers stay silent) and
 * drains again, so under load lines go out in large batches, ~500 wake-ups
 * a second at most; an idle writer sleeps until a line, reopen or stop.
 * Reopen and stop write the eventfd themselves.
 *
 * Error lines: stderr is written by the writer (worker lines) and directly
 * by every other thread (main: start-up, -t, signals, stop). err_lock keeps
 * each write whole; no worker ever takes it.
 */
#include "portcullis/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "portcullis/http.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

enum {
    BATCH = 256,             /* lines per writev (IOV_MAX is 1024) */
    ERR_RING_ENTRIES = 1024, /* per worker: error lines are rare */
    LINGER_MS = 2,           /* awake writer: time between drains */
    ERR_LINE_MAX = PC_ERRLOG_LINE_MAX, /* an error-log line, newline included */
    SMALL = 1024,            /* line buffer size the writer hands back */
    SPARES = 512,            /* buffers an access ring can hand back */
};

/* A ring, and beside it the way back for line buffers: the writer hands
 * the buffers of short lines (SMALL bytes each) back through `spares`, a
 * second SPSC ring in the other direction, so that a busy worker reuses
 * them instead of a malloc per line and a free on another thread (which
 * would contend for the worker's malloc arena). */
typedef struct ring {
    _Alignas(64) atomic_size_t head;    /* written by the producer */
    atomic_size_t spare_tail;           /* written by the producer */
    size_t tail_seen;                   /* the producer's last view of tail */
    int kicked;                         /* producer: woke the writer when full */
    _Alignas(64) atomic_size_t tail;    /* written by the writer */
    atomic_size_t spare_head;           /* written by the writer */
    _Alignas(64) atomic_uint_fast64_t dropped;
    char **slots;  /* NUL-terminated lines, owned by the ring while queued */
    size_t mask;
    char **spares; /* SPARES slots; NULL: no way back (error rings) */
} ring;

struct pc_logger {
    ring *access; /* n rings; NULL when the access log is off */
    ring *errors; /* n rings */
    unsigned n;
    int fd;       /* access log; -1 when off */
    int own_fd;
    char *path;
    int efd;      /* eventfd that wakes the writer */
    int started;
    pthread_t thread;
    struct batch *batch; /* the writer's (16 KiB: off its stack) */
    _Alignas(64) atomic_int sleeping; /* the writer is (about to be) blocked */
    _Alignas(64) atomic_int stop;
    atomic_int reopen;
    atomic_uint_fast64_t wakeups;
};

pc_logger *pc_access_logger;
/* Set on a worker thread by pc_log_attach_thread: where its pc_log goes
 * (through the sink below, installed in errlog.c). */
static _Thread_local pc_logger *tl_logger;
static _Thread_local ring *tl_errors;

static void wake(pc_logger *lg)
{
    uint64_t one = 1;
    ssize_t w = write(lg->efd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero */
}

/* Producer side of a ring. ring_room says whether the next slot is free
 * (counting a drop when not) and gives its index; ring_publish fills it
 * and wakes the writer when it sleeps. A ring found full also wakes the
 * writer, once per full spell, in case it is lingering: that costs a
 * syscall only when lines are being dropped anyway. */
static int ring_room(pc_logger *lg, ring *rg, size_t *head)
{
    size_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);
    if (h - rg->tail_seen > rg->mask) {
        rg->tail_seen = atomic_load_explicit(&rg->tail, memory_order_acquire);
        if (h - rg->tail_seen > rg->mask) {
            atomic_fetch_add_explicit(&rg->dropped, 1, memory_order_relaxed);
            if (!rg->kicked) {
                rg->kicked = 1;
                wake(lg);
            }
            return 0;
        }
        rg->kicked = 0;
    }
    *head = h;
    return 1;
}

/* A NUL-terminated copy of s[0..n) for rg: a spare buffer when n is
 * short and one is free, else a new one. */
static char *line_copy(ring *rg, const char *s, size_t n)
{
    if (n >= SMALL)
        return pc_xstrndup(s, n);
    char *b = NULL;
    if (rg->spares) {
        size_t t = atomic_load_explicit(&rg->spare_tail, memory_order_relaxed);
        if (t != atomic_load_explicit(&rg->spare_head, memory_order_acquire)) {
            b = rg->spares[t & (SPARES - 1)];
            atomic_store_explicit(&rg->spare_tail, t + 1,
                                  memory_order_release);
        }
    }
    if (!b)
        b = pc_xmalloc(SMALL);
    memcpy(b, s, n);
    b[n] = '\0';
    return b;
}

/* Writer side: gives a written line's buffer back to rg, or frees it. */
static void line_done(ring *rg, char *line, size_t len)
{
    if (rg->spares && len < SMALL) {
        size_t h = atomic_load_explicit(&rg->spare_head, memory_order_relaxed);
        if (h - atomic_load_explicit(&rg->spare_tail, memory_order_acquire) <
            SPARES) {
            rg->spares[h & (SPARES - 1)] = line;
            atomic_store_explicit(&rg->spare_head, h + 1,
                                  memory_order_release);
            return;
        }
    }
    free(line);
}

static void ring_publish(pc_logger *lg, ring *rg, size_t head, char *line)
{
    rg->slots[head & rg->mask] = line;
    atomic_store_explicit(&rg->head, head + 1, memory_order_release);
    /* pairs with the fence in writer_sleep (see DESIGN) */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&lg->sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&lg->sleeping, 0, memory_order_relaxed))
        wake(lg);
}

static int sink_reserve(void *ctx, size_t *head)
{
    (void)ctx;
    return ring_room(tl_logger, tl_errors, head);
}

static void sink_put(void *ctx, size_t head, const char *line, size_t len)
{
    (void)ctx;
    ring_publish(tl_logger, tl_errors, head, line_copy(tl_errors, line, len));
}

static const pc_log_sink ring_sink = {sink_reserve, sink_put, NULL};

void pc_log_attach_thread(pc_logger *lg, unsigned worker_id)
{
    tl_logger = lg && worker_id < lg->n ? lg : NULL;
    tl_errors = tl_logger ? &lg->errors[worker_id] : NULL;
    pc_log_set_thread_sink(tl_errors ? &ring_sink : NULL);
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

/* One batch of lines taken from the rings, to be written with one writev;
 * iov is consumed by the write, so lens keeps each line's length. */
typedef struct batch {
    char *lines[BATCH];
    ring *from[BATCH];
    size_t lens[BATCH];
    struct iovec iov[BATCH];
    int k;
} batch;

static size_t flush(int fd, int locked, batch *b)
{
    int k = b->k;
    if (k == 0)
        return 0;
    if (locked)
        pc_errlog_write(b->iov, k);
    else if (fd >= 0)
        pc_write_all(fd, b->iov, k);
    for (int i = 0; i < k; i++)
        line_done(b->from[i], b->lines[i], b->lens[i]);
    b->k = 0;
    return (size_t)k;
}

/* Takes every line queued in rings[0..n) (as seen once per ring) and writes
 * them to fd (to the error fd under err_lock when `locked`) in batches.
 * Returns the number of lines taken. */
static size_t drain(batch *b, ring *rings, unsigned n, int fd, int locked)
{
    size_t total = 0;
    for (unsigned r = 0; rings && r < n; r++) {
        ring *rg = &rings[r];
        size_t tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
        size_t head = atomic_load_explicit(&rg->head, memory_order_acquire);
        while (tail != head) {
            while (tail != head && b->k < BATCH) {
                char *line = rg->slots[tail & rg->mask];
                b->lines[b->k] = line;
                b->from[b->k] = rg;
                b->lens[b->k] = strlen(line);
                b->iov[b->k].iov_base = line;
                b->iov[b->k].iov_len = b->lens[b->k];
                b->k++;
                tail++;
            }
            /* the pointers are ours now: hand the slots back at once */
            atomic_store_explicit(&rg->tail, tail, memory_order_release);
            if (b->k == BATCH)
                total += flush(fd, locked, b);
        }
    }
    return total + flush(fd, locked, b);
}

static size_t drain_all(pc_logger *lg)
{
    return drain(lg->batch, lg->errors, lg->n, -1, 1) +
           drain(lg->batch, lg->access, lg->n, lg->fd, 0);
}

static int pending(pc_logger *lg)
{
    for (unsigned r = 0; r < lg->n; r++) {
        ring *rg = &lg->errors[r];
        if (atomic_load_explicit(&rg->head, memory_order_relaxed) !=
            atomic_load_explicit(&rg->tail, memory_order_relaxed))
            return 1;
        rg = lg->access ? &lg->access[r] : NULL;
        if (rg && atomic_load_explicit(&rg->head, memory_order_relaxed) !=
                      atomic_load_explicit(&rg->tail, memory_order_relaxed))
            return 1;
    }
    return atomic_load(&lg->stop) || atomic_load(&lg->reopen);
}

/* Blocks on the eventfd for up to timeout_ms (-1: until woken). */
static void wait_efd(pc_logger *lg, int timeout_ms)
{
    struct pollfd p = {lg->efd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) > 0) {
        uint64_t v;
        ssize_t r = read(lg->efd, &v, sizeof v);
        (void)r;
    }
    atomic_fetch_add_explicit(&lg->wakeups, 1, memory_order_relaxed);
}

static void writer_sleep(pc_logger *lg)
{
    atomic_store(&lg->sleeping, 1);
    /* pairs with the fence in ring_publish (see DESIGN) */
    atomic_thread_fence(memory_order_seq_cst);
    if (!pending(lg))
        wait_efd(lg, -1);
    atomic_store(&lg->sleeping, 0);
}

static void reopen_file(pc_logger *lg)
{
    if (!lg->own_fd)
        return;
    int old = lg->fd;
    if (open_file(lg) == 0)
        close(old);
    else
        lg->fd = old;
}

static void *writer_main(void *arg)
{
    pc_logger *lg = arg;
    for (;;) {
        if (atomic_exchange(&lg->reopen, 0))
            reopen_file(lg);
        int stopping = atomic_load(&lg->stop);
        if (drain_all(lg) > 0)
            wait_efd(lg, LINGER_MS);
        else if (stopping)
            break;
        else
            writer_sleep(lg);
    }
    return NULL;
}

static ring *rings_new(unsigned n, size_t entries, int spares)
{
    ring *rings = pc_xcalloc(n ? n : 1, sizeof *rings);
    for (unsigned i = 0; i < n; i++) {
        rings[i].slots = pc_xcalloc(entries, sizeof(char *));
        rings[i].mask = entries - 1;
        if (spares)
            rings[i].spares = pc_xcalloc(SPARES, sizeof(char *));
    }
    return rings;
}

/* After the last drain: the rings are empty, the spares are not. */
static void rings_free(ring *rings, unsigned n)
{
    for (unsigned i = 0; rings && i < n; i++) {
        ring *rg = &rings[i];
        for (size_t t = rg->spare_tail; rg->spares && t != rg->spare_head; t++)
            free(rg->spares[t & (SPARES - 1)]);
        free(rg->spares);
        free(rg->slots);
    }
    free(rings);
}

pc_logger *pc_logger_start(const pc_log_conf *conf, unsigned nworkers)
{
    pc_logger *lg = pc_xcalloc(1, sizeof *lg);
    lg->fd = -1;
    lg->n = nworkers;
    lg->batch = pc_xcalloc(1, sizeof *lg->batch);
    lg->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lg->efd < 0) {
        pc_log(PC_LOG_ERROR, "cannot create the log eventfd: %s",
               strerror(errno));
        goto fail;
    }
    if (conf->access && strcmp(conf->access, "off") != 0) {
        lg->path = pc_xstrdup(conf->access);
        if (open_file(lg) != 0)
            goto fail;
        size_t entries = 1;
        while (entries < conf->ring_entries)
            entries <<= 1;
        lg->access = rings_new(nworkers, entries, 1);
    }
    lg->errors = rings_new(nworkers, ERR_RING_ENTRIES, 0);
    if (pthread_create(&lg->thread, NULL, writer_main, lg) != 0) {
        pc_log(PC_LOG_ERROR, "cannot start the log writer thread");
        goto fail;
    }
    lg->started = 1;
    pthread_setname_np(lg->thread, "pc-log");
    return lg;
fail:
    pc_logger_stop(lg);
    return NULL;
}

void pc_logger_stop(pc_logger *lg)
{
    if (!lg)
        return;
    if (lg->started) {
        atomic_store(&lg->stop, 1);
        wake(lg);
        pthread_join(lg->thread, NULL);
    }
    drain_all(lg); /* nothing left unless the thread never ran */
    rings_free(lg->access, lg->n);
    rings_free(lg->errors, lg->n);
    free(lg->batch);
    if (lg->own_fd)
        close(lg->fd);
    if (lg->efd >= 0)
        close(lg->efd);
    free(lg->path);
    free(lg);
}

void pc_logger_reopen(pc_logger *lg)
{
    if (!lg)
        return;
    atomic_store(&lg->reopen, 1);
    wake(lg);
}

static uint64_t dropped(const ring *rings, unsigned n)
{
    uint64_t d = 0;
    for (unsigned i = 0; rings && i < n; i++)
        d += atomic_load(&rings[i].dropped);
    return d;
}

uint64_t pc_logger_dropped(const pc_logger *lg)
{
    return lg ? dropped(lg->access, lg->n) : 0;
}

uint64_t pc_logger_errors_dropped(const pc_logger *lg)
{
    return lg ? dropped(lg->errors, lg->n) : 0;
}

uint64_t pc_logger_wakeups(const pc_logger *lg)
{
    return lg ? atomic_load(&lg->wakeups) : 0;
}

int pc_logger_push(pc_logger *lg, unsigned worker_id, const char *line,
                   size_t len)
{
    size_t head;
    if (!lg || !lg->access || worker_id >= lg->n ||
        !ring_room(lg, &lg->access[worker_id], &head))
        return -1;
    ring *rg = &lg->access[worker_id];
    ring_publish(lg, rg, head, line_copy(rg, line, len));
    return 0;
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

/* Bytes copied as they are inside a JSON string: printable ASCII but the
 * quote and the backslash. */
static int plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
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
        /* a run of plain bytes in one copy (the common case: all of it) */
        const unsigned char *q = p;
        while (plain_byte(*q))
            q++;
        if (q > p) {
            size_t run = (size_t)(q - p);
            size_t room = max > n + 1 ? max - n - 1 : 0;
            if (run > room) {
                memcpy(out + n, p, room);
                n += room;
                *cut = 1;
                break;
            }
            memcpy(out + n, p, run);
            n += run;
            p = q;
            continue;
        }
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
 * shares below); `room` is only a backstop. No printf: a line is written
 * for every request, on the worker's thread. */
typedef struct lbuf {
    char *p;
    size_t n, cap;
    int cut;
} lbuf;

static void lput(lbuf *b, const char *s, size_t len)
{
    size_t room = b->cap - b->n - 1;
    if (len > room)
        len = room;
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

#define LIT(b, s) lput((b), (s), sizeof(s) - 1)

static void lu64(lbuf *b, uint64_t v)
{
    char t[20], *p = t + sizeof t;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    lput(b, p, (size_t)(t + sizeof t - p));
}

static void lint(lbuf *b, int v)
{
    if (v < 0) {
        LIT(b, "-");
        lu64(b, (uint64_t)(-(int64_t)v));
    } else {
        lu64(b, (uint64_t)v);
    }
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

/* Durations come from 64-bit nanosecond counts; the clamp bounds the
 * value for any input. */
static double ms_clamp(double v)
{
    return v > 0 && v < 1e15 ? v : v >= 1e15 ? 1e15 : 0;
}

/* A millisecond count with three decimals (as "%.3f": rounded to the
 * nearest microsecond), in integer arithmetic. */
static void lms(lbuf *b, double ms)
{
    uint64_t us = (uint64_t)(ms_clamp(ms) * 1000.0 + 0.5);
    lu64(b, us / 1000);
    char f[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                 (char)('0' + us % 10)};
    lput(b, f, sizeof f);
}

/* "YYYY-MM-DDTHH:MM:SS" of a second, remembered per thread: a line's
 * date changes once a second. */
static size_t date_of(int64_t sec, const char **out)
{
    static _Thread_local int64_t last = INT64_MIN;
    static _Thread_local char txt[48];
    static _Thread_local size_t len;
    if (sec != last) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            memset(&tm, 0, sizeof tm);
        int m = snprintf(txt, sizeof txt, "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec);
        len = m > 0 && (size_t)m < sizeof txt ? (size_t)m : 0;
        last = sec;
    }
    *out = txt;
    return len;
}

size_t pc_log_format_access(char *buf, const pc_access_fields *f)
{
    static const char end_true[] = ",\"truncated\":true}\n";
    static const char end_false[] = ",\"truncated\":false}\n";
    char tail_buf[PC_LOG_LINE_MAX];
    lbuf head = {buf, 0, PC_LOG_LINE_MAX + 1, 0};
    lbuf tail = {tail_buf, 0, sizeof tail_buf, 0};
    int64_t ms = f->ts_ms, sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) { /* before 1970: floor, as gmtime wants */
        sec--;
        frac += 1000;
    }
    const char *date;
    size_t dlen = date_of(sec, &date);
    char msec[5] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                    (char)('0' + frac % 10), 'Z'};

    LIT(&head, "{\"ts\":\"");
    lput(&head, date, dlen);
    lput(&head, msec, sizeof msec);
    LIT(&head, "\",\"request_id\":");
    lstr(&head, f->request_id, SHARE_ID);
    LIT(&head, ",\"client_ip\":");
    lstr(&head, f->client_ip, SHARE_IP);
    LIT(&head, ",\"method\":");
    lstr(&head, f->method, SHARE_METHOD);
    LIT(&head, ",\"path\":");

    LIT(&tail, ",\"status\":");
    lint(&tail, f->status);
    LIT(&tail, ",\"bytes_in\":");
    lu64(&tail, f->bytes_in);
    LIT(&tail, ",\"bytes_out\":");
    lu64(&tail, f->bytes_out);
    LIT(&tail, ",\"duration_ms\":");
    lms(&tail, f->duration_ms);
    LIT(&tail, ",\"route\":");
    lstr(&tail, f->route, SHARE_ROUTE);
    LIT(&tail, ",\"upstream_target\":");
    lstr(&tail, f->upstream_target, SHARE_TARGET);
    LIT(&tail, ",\"upstream_ms\":");
    if (f->upstream_target)
        lms(&tail, f->upstream_ms);
    else
        LIT(&tail, "null");
    LIT(&tail, ",\"cache\":");
    lstr(&tail, f->cache, SHARE_CACHE);
    LIT(&tail, ",\"user\":");
    lstr(&tail, f->user, SHARE_USER);
    LIT(&tail, ",\"tls\":");
    lstr(&tail, f->tls, SHARE_TLS);
    LIT(&tail, ",\"error\":");
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

void pc_log_access(pc_worker *w, const pc_req *r, uint64_t duration_ns)
{
    pc_logger *lg = pc_access_logger;
    size_t head;
    if (!lg || !lg->access || w->loop.id >= lg->n)
        return;
    ring *rg = &lg->access[w->loop.id];
    if (!ring_room(lg, rg, &head))
        return;
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
        .duration_ms = (double)duration_ns / 1e6,
        .route = r->route ? r->route->name : NULL,
        .upstream_target = r->upstream_target,
        .upstream_ms = (double)r->upstream_ns / 1e6,
        .cache = r->cache,
        .user = r->user,
        .tls = r->tls_version,
        .error = r->error != PC_ERR_NONE ? pc_err_info(r->error)->code : NULL,
    };
    char buf[PC_LOG_LINE_MAX + 1];
    size_t n = pc_log_format_access(buf, &f);
    ring_publish(lg, rg, head, line_copy(rg, buf, n));
}
