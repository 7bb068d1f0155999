/* worker.h: the process (pc_runtime, shared by every thread, created by
 * main.c) and the event-loop workers (one thread + one event_base each,
 * with their own SO_REUSEPORT listening sockets and upstream pools). */
#ifndef PORTCULLIS_WORKER_H
#define PORTCULLIS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "portcullis/config.h"

struct event_base;
struct event;
struct evconnlistener;
typedef struct pc_pools pc_pools;
typedef struct pc_conn pc_conn;
typedef struct pc_ipcount pc_ipcount;

typedef struct pc_runtime {
    pc_config *cfg;             /* current generation; main thread's ref */
    pthread_mutex_t cfg_lock;   /* guards cfg swaps against worker pins */
    atomic_long connections;    /* open client connections, whole process */
    atomic_int draining;        /* SIGTERM received */
    pc_ipcount *per_ip;         /* max_connections_per_ip accounting */
    struct pc_bucket_table *buckets; /* local rate-limit buckets, shared by
                                   every worker and kept across reloads */
    struct pc_worker **workers;
    unsigned nworkers;
} pc_runtime;

typedef struct pc_worker {
    pc_loop loop;               /* what the layers below see: id, base, the
                                   generation (one reference), pools,
                                   connections, stage state (loop.h) */
    pthread_t thread;
    pc_runtime *rt;
    int *fds;                   /* listening sockets, one per cfg listen */
    struct evconnlistener **listeners;
    unsigned nlisteners;
    int listeners_paused;       /* max_connections reached */
    int accept_backoff;         /* accept(2) failed (EMFILE...): resting */
    int listeners_on;           /* the listeners' events are enabled */
    struct event *backoff_ev;   /* ends accept_backoff */
    uint64_t accept_err_ns;     /* when the last accept error was logged */
    unsigned long accept_err_quiet; /* accept errors not logged since */
    struct pc_lctx **lctx;      /* per-listener accept context (each its
                                   own allocation: a listener kept across
                                   a reload keeps its pointer) */
    /* SIGHUP reload, handed over by the main thread (pc_worker_reload)
     * and applied on the worker's thread between events. */
    pthread_mutex_t reload_lock;
    pc_config *reload_cfg;      /* pending generation (one reference) */
    int *reload_fds;            /* per listen of reload_cfg: a socket bound
                                   for a new address, -1 for a kept one */
    struct event *reload_ev;
    atomic_ullong applied_generation; /* generation this worker serves */
    struct event *stop_ev;      /* activated from the main thread */
    struct event *kill_ev;
    struct event *tick_ev;      /* 1 s housekeeping */
    atomic_int done;            /* the loop has returned */
} pc_worker;

/* Creates the worker and binds its listening sockets (SO_REUSEPORT).
 * Worker 0 must be created first: it binds each address without
 * SO_REUSEPORT (and sets it only then, for the other workers to join), so
 * that an address another process listens on, a second portcullis on the
 * same configuration included, fails with EADDRINUSE instead of being
 * shared. Returns NULL after logging the bind error naming the address
 * (exit code 2 territory). */
pc_worker *pc_worker_new(pc_runtime *rt, unsigned id, pc_config *cfg);
int pc_worker_start(pc_worker *w);    /* spawns the thread; 0 or -1 */
void pc_worker_stop(pc_worker *w);    /* thread-safe: begin graceful drain */
void pc_worker_kill(pc_worker *w);    /* thread-safe: break the loop now */
void pc_worker_join_free(pc_worker *w);

/* Binds one listening socket for l (see pc_worker_new on `first`).
 * Returns the socket or -1 with errno set. */
int pc_listen_bind(const pc_listen *l, int first);
/* 1 when the two listens name the same socket address. */
int pc_listen_same(const pc_listen *a, const pc_listen *b);
/* Thread-safe: hands the worker a new generation (takes over one
 * reference of cfg) and, per listen of cfg, a socket bound for an address
 * the worker does not listen on yet or -1 (fds is taken over too). The
 * worker applies it between two events: listeners on new addresses start
 * accepting before those on removed addresses close, kept listeners keep
 * their sockets and take the new settings (TLS contexts), new requests
 * pin cfg while in-flight ones finish on their own generation, and pools
 * of targets cfg no longer has close their idle connections. Afterwards
 * applied_generation == cfg->generation. The caller hands over the next
 * generation only once every worker has applied this one. */
void pc_worker_reload(pc_worker *w, pc_config *cfg, int *fds);


/* Per-IP connection counting (process-wide, mutex-sharded; only taken at
 * accept and close, never per request). */
pc_ipcount *pc_ipcount_new(void);
void pc_ipcount_free(pc_ipcount *c);
/* Increments; returns the new count. */
unsigned long pc_ipcount_inc(pc_ipcount *c, const void *addr, size_t len);
void pc_ipcount_dec(pc_ipcount *c, const void *addr, size_t len);

#endif
