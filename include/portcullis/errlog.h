/* errlog.h: the error log (stderr, by level), usable from every layer.
 *
 * pc_log formats one line ("TS [level] message\n", at most
 * PC_ERRLOG_LINE_MAX bytes) and writes it to the error fd (stderr) under a
 * process-wide lock, so lines from different threads never interleave. A
 * thread may install a sink instead (core/log.c does so on every worker
 * thread): its lines then go to the sink, which queues them for a writer
 * thread, so an event loop never blocks on stderr. The sink is a callback
 * table, so this low layer never includes the logger's header. */
#ifndef PORTCULLIS_ERRLOG_H
#define PORTCULLIS_ERRLOG_H

#include <stddef.h>
#include <sys/uio.h>

typedef enum { PC_LOG_ERROR, PC_LOG_WARN, PC_LOG_INFO, PC_LOG_DEBUG } pc_log_level;

#define PC_ERRLOG_LINE_MAX 1024 /* newline included */

void pc_log_set_level(pc_log_level l);
void pc_log(pc_log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A thread's sink: reserve() says whether a line can be taken (0: drop it,
 * counted by the sink) before any formatting; put() takes the formatted
 * line (copied by the sink). */
typedef struct pc_log_sink {
    int (*reserve)(void *ctx, size_t *token);
    void (*put)(void *ctx, size_t token, const char *line, size_t len);
    void *ctx;
} pc_log_sink;

/* Installs (or with NULL removes) the calling thread's sink. */
void pc_log_set_thread_sink(const pc_log_sink *sink);

/* Where error lines go without a sink (tests inject a pipe; default 2). */
void pc_log_set_error_fd(int fd);
/* Writes iov[0..k) to the error fd under the error-log lock (the writer
 * thread flushing queued lines). The entries are consumed. */
void pc_errlog_write(struct iovec *iov, int k);
/* Writes every byte of iov[0..k) to fd, retrying short writes and EINTR,
 * waiting up to a second for a non-blocking fd; any other error loses the
 * rest (a failing disk must not stop the log). The entries are consumed. */
void pc_write_all(int fd, struct iovec *iov, int k);

#endif
