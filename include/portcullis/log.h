/* log.h: the error log (stderr, by level) and the access log (CONTRACT §7):
 * one single-producer ring per worker drained by a writer thread, so that
 * event loops never wait on a disk; a full ring drops and counts. */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdint.h>

#include "portcullis/config.h"

typedef struct pc_req pc_req;
typedef struct pc_worker pc_worker;
typedef struct pc_logger pc_logger;

void pc_log_set_level(pc_log_level l);
void pc_log(pc_log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts the writer thread for nworkers rings of `entries` slots each,
 * writing to conf->access ("stdout", "off", or a file path opened in append
 * mode). Returns NULL and logs on failure (cannot open the file). */
pc_logger *pc_logger_start(const pc_log_conf *conf, unsigned nworkers);
/* Flushes what is queued, stops the thread, closes the file. */
void pc_logger_stop(pc_logger *l);
/* Reopens the file (SIGUSR1); thread-safe. */
void pc_logger_reopen(pc_logger *l);
uint64_t pc_logger_dropped(const pc_logger *l);

/* The process's logger (set once by main before workers start). */
extern pc_logger *pc_access_logger;

/* Queues the access-log entry of a finished request (worker thread).
 * Never drops a line for its size: see pc_log_format_access. */
void pc_log_access(pc_worker *w, const pc_req *req);

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

#endif
