/* errlog.c: the error log's formatting and its stderr path (errlog.h).
 * Knows nothing of the access logger: worker threads reach their ring
 * through the sink core/log.c installs. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "portcullis/errlog.h"

static atomic_int log_level = PC_LOG_INFO;
static atomic_int err_fd = 2;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const pc_log_sink *tl_sink;

void pc_log_set_level(pc_log_level l)
{
    atomic_store(&log_level, (int)l);
}

void pc_log_set_error_fd(int fd)
{
    atomic_store(&err_fd, fd);
}

void pc_log_set_thread_sink(const pc_log_sink *sink)
{
    tl_sink = sink;
}

void pc_write_all(int fd, struct iovec *iov, int k)
{
    while (k > 0) {
        ssize_t w = writev(fd, iov, k);
        if (w < 0) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (errno == EINTR ||
                (errno == EAGAIN && poll(&p, 1, 1000) > 0))
                continue;
            return;
        }
        size_t done = (size_t)w;
        while (k > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            k--;
        }
        if (k > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

void pc_errlog_write(struct iovec *iov, int k)
{
    pthread_mutex_lock(&err_lock);
    pc_write_all(atomic_load(&err_fd), iov, k);
    pthread_mutex_unlock(&err_lock);
}

void pc_log(pc_log_level l, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)l > atomic_load(&log_level) || (unsigned)l > PC_LOG_DEBUG)
        return;
    const pc_log_sink *sink = tl_sink;
    size_t token = 0;
    if (sink && !sink->reserve(sink->ctx, &token))
        return;
    char buf[PC_ERRLOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[l]);
    if (n < 0)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    if (sink) {
        sink->put(sink->ctx, token, buf, len);
        return;
    }
    struct iovec iov = {buf, len};
    pc_errlog_write(&iov, 1);
}
