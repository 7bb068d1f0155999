/* log.h: the error log (stderr, by level) and the access log (CONTRACT §7).
 *
 * One writer thread (named "pc-log") owns all slow output. Each worker has
 * two single-producer rings drained by it: its access-log lines and, once
 * the worker thread called pc_log_attach_thread, its error-log lines. A
 * worker never takes a lock and never makes a syscall per line in the
 * common case (it writes the writer's eventfd only when the writer sleeps),
 * so it never waits on the disk or on stderr. A full ring drops the line
 * and counts it: access lines in pc_logger_dropped, error lines in
 * pc_logger_errors_dropped. Every other thread (main: start-up, -t,
 * signals, stop) and any thread before the logger starts or after it
 * stops writes its error lines to stderr itself, synchronously; every
 * write is whole lines, never interleaved. pc_logger_stop writes out
 * everything queued before it returns. */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdint.h>

#include "portcullis/config.h"

typedef struct pc_req pc_req;
typedef struct pc_worker pc_worker;
typedef struct pc_logger pc_logger;


/* Starts the writer thread with, for each of nworkers workers, an error
 * ring (1024 lines) and, unless conf->access is "off" (or NULL), an access
 * ring of conf->ring_entries lines (rounded up to a power of two) written
 * to conf->access ("stdout" or a file path opened in append mode). The
 * logger runs even when the access log is off: it carries the workers'
 * error lines. Returns NULL and logs on failure (cannot open the file,
 * create the eventfd or start the thread). */
pc_logger *pc_logger_start(const pc_log_conf *conf, unsigned nworkers);
/* Writes out everything queued, stops the thread, closes the file and
 * frees l (NULL is a no-op). Every thread attached to l must have ended
 * (or stopped logging) before. */
void pc_logger_stop(pc_logger *l);
/* Reopens the file (SIGUSR1); thread-safe, returns at once (the writer
 * thread reopens; on failure it logs and keeps the old file). */
void pc_logger_reopen(pc_logger *l);
/* Access-log lines dropped because a ring was full (0 for NULL). */
uint64_t pc_logger_dropped(const pc_logger *l);
/* Error-log lines of workers dropped because their ring was full. */
uint64_t pc_logger_errors_dropped(const pc_logger *l);

/* Called once by a worker thread before it logs (worker.c thread_main):
 * from then on, pc_log on this thread queues its lines on worker_id's error
 * ring of l instead of writing stderr. l NULL (no logger) or worker_id out
 * of range: this thread keeps writing stderr directly. */
void pc_log_attach_thread(pc_logger *l, unsigned worker_id);

/* The process's logger (set once by main before workers start). */
extern pc_logger *pc_access_logger;

/* Queues the access-log entry of a finished request (worker thread) that
 * took duration_ns (measured once by the caller, also for the metrics).
 * Never drops a line for its size: see pc_log_format_access. */
void pc_log_access(pc_worker *w, const pc_req *req, uint64_t duration_ns);

/* The longest access-log line, newline included (one ring entry). */
#define PC_LOG_LINE_MAX 4096

/* The fields of one access-log line (CONTRACT §7). Strings are borrowed,
 * NUL-terminated, NULL for a JSON null; upstream_ms is null when
 * upstream_target is NULL. */
typedef struct pc_access_fields {
    int64_t ts_ms; /* Unix time, milliseconds */
    const char *request_id, *client_ip, *method, *path;
    int status;
    uint64_t bytes_in, bytes_out;
    double duration_ms;
    const char *route, *upstream_target;
    double upstream_ms;
    const char *cache, *user, *tls, *error;
} pc_access_fields;

/* Formats one access-log line, "{...}\n", into buf (PC_LOG_LINE_MAX + 1
 * bytes: the line and a NUL) and returns its length, never more than
 * PC_LOG_LINE_MAX. Every field is always written; a string too long for
 * the line is cut (path gets what the other fields leave, each other
 * string has a fixed share) and the line then says "truncated":true
 * (false otherwise). Pure. */
size_t pc_log_format_access(char *buf, const pc_access_fields *f);

/* Writes s as a JSON string literal, or null for NULL, of at most max
 * bytes (max >= 6) into out, and returns its length. Well-formed UTF-8
 * is copied as is except C1 controls; '"', '\\', C0 controls, DEL, C1
 * controls are escaped, and a byte that is not part of well-formed UTF-8
 * is written as \u00XX. When the literal would not fit, it ends after the
 * last whole character (never inside an escape or a UTF-8 sequence) that
 * fits, and *cut is set to 1 (left alone otherwise). Pure. */
size_t pc_log_jstr(char *out, size_t max, const char *s, int *cut);

/* For tests and tools (pc_log_set_error_fd is in errlog.h). pc_logger_push: queues a line
 * of len bytes (copied; it should end with '\n') on worker_id's access ring,
 * the caller being that ring's only producer; returns 0, or -1 when it is
 * dropped (full ring: counted) or there is no such ring (access off).
 * pc_logger_wakeups: how many times the writer thread has woken (idle, it
 * must not grow). */
int pc_logger_push(pc_logger *l, unsigned worker_id, const char *line,
                   size_t len);
uint64_t pc_logger_wakeups(const pc_logger *l);

#endif
