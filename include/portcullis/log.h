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

/* Queues the access-log entry of a finished request (worker thread). */
void pc_log_access(pc_worker *w, const pc_req *req);

#endif
