/* main.c: command line, signals, start, graceful stop; nothing else.
 * Owns the process runtime and the main event loop (signals, admin). */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "portcullis/admin.h"
#include "portcullis/bucket_table.h"
#include "portcullis/cache_store.h"
#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/log.h"
#include "portcullis/breaker.h"
#include "portcullis/metrics.h"
#include "portcullis/proxy.h"
#include "portcullis/tls.h"
#include "portcullis/util.h"
#include "portcullis/webhook.h"
#include "portcullis/events.h"
#include "portcullis/worker.h"

#define DEFAULT_CONFIG "/etc/portcullis/portcullis.yaml"

typedef struct app {
    pc_runtime rt;
    struct event_base *base;
    struct event *deadline, *poll, *trim;
    struct event *reload_retry; /* a SIGHUP while workers still apply the
                                   previous generation waits for them */
    struct event *reload_wait;  /* polls until every worker applied it */
    int reload_pending;         /* handed over, not yet applied by all */
    pc_tstate_table *tstates;   /* every target's circuit and health, and
                                   pool counts, by stable name: kept
                                   across reloads (proxy/targets.c) */
    pc_health *health;          /* the health-check thread */
    pc_webhooks *webhooks;      /* the webhook delivery thread */
    const char *file;
    int stopping;
} app;

/* Every TRIM_PERIOD the main thread hands memory the workers freed back to
 * the kernel (malloc_trim walks every arena, each under its own lock, for
 * a few microseconds to a millisecond). Between trims the allocator keeps
 * freed buffers (see M_TRIM_THRESHOLD in main), so the request path does
 * not fault pages in and out; after a burst of hostile clients (each
 * holding output up to the high watermark) RSS comes back down within a
 * period instead of staying at its peak in fragmented thread arenas. */
#define TRIM_PERIOD_S 10

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    malloc_trim(0);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: portcullis [-c FILE] [-t] [--version] [-h]\n"
            "  -c, --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
            "  -t, --test         load and fully validate FILE, print \"FILE: ok\"\n"
            "                     and exit 0, or print every error as\n"
            "                     \"FILE:LINE:COL: message\" and exit 1\n"
            "      --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n");
}

static pc_config *load(const char *file)
{
    pc_errors err;
    pc_errors_init(&err, file);
    pc_config *c = pc_config_load(file, &err);
    for (size_t i = 0; i < err.n; i++)
        fprintf(stderr, "%s\n", err.msgs[i]);
    if (c && err.n) { /* warnings never exist: any message is an error */
        pc_config_unref(c);
        c = NULL;
    }
    pc_errors_free(&err);
    return c;
}

/* systemd Type=notify readiness, without linking libsystemd. */
static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t n = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    (void)n;
    close(fd);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    app *a = arg;
    (void)fd;
    (void)what;
    /* Workers exit their loops once their last connection closed. */
    int done = 0;
    for (unsigned i = 0; i < a->rt.nworkers; i++)
        if (atomic_load(&a->rt.workers[i]->done))
            done++;
    if ((unsigned)done == a->rt.nworkers)
        event_base_loopexit(a->base, NULL);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    app *a = arg;
    (void)fd;
    (void)what;
    pc_log(PC_LOG_WARN, "shutdown_timeout reached: closing remaining connections");
    for (unsigned i = 0; i < a->rt.nworkers; i++)
        pc_worker_kill(a->rt.workers[i]);
    event_base_loopexit(a->base, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    (void)what;
    if (a->stopping)
        return;
    a->stopping = 1;
    pc_log(PC_LOG_INFO, "signal %d: draining connections", (int)sig);
    sd_notify_msg("STOPPING=1");
    atomic_store(&a->rt.draining, 1);
    pc_webhooks_drain(a->webhooks,
                      pc_now_ns() + a->rt.cfg->limits.shutdown_timeout * 1000000u);
    for (unsigned i = 0; i < a->rt.nworkers; i++)
        pc_worker_stop(a->rt.workers[i]);
    uint64_t ms = a->rt.cfg->limits.shutdown_timeout;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    a->deadline = evtimer_new(a->base, deadline_cb, a);
    evtimer_add(a->deadline, &tv);
    struct timeval p = {0, 50 * 1000};
    a->poll = event_new(a->base, -1, EV_PERSIST, poll_cb, a);
    event_add(a->poll, &p);
}

/* 1 when every worker serves the current generation. */
static int workers_caught_up(const app *a)
{
    for (unsigned i = 0; i < a->rt.nworkers; i++)
        if (atomic_load(&a->rt.workers[i]->applied_generation) !=
            a->rt.cfg->generation)
            return 0;
    return 1;
}

static void close_fds(int **fds, unsigned nworkers, size_t nlistens)
{
    for (unsigned k = 0; k < nworkers; k++) {
        if (!fds[k])
            continue;
        for (size_t i = 0; i < nlistens; i++)
            if (fds[k][i] >= 0)
                close(fds[k][i]);
        free(fds[k]);
    }
    free(fds);
}

/* Sockets for the addresses nc listens on and old does not, one per
 * worker (worker 0's bound first, without SO_REUSEPORT: an address some
 * other process holds fails here, before anything changed). NULL after
 * logging the error. */
static int **bind_new_listeners(const app *a, const pc_config *old,
                                const pc_config *nc)
{
    unsigned nw = a->rt.nworkers;
    int **fds = pc_xcalloc(nw, sizeof *fds);
    for (unsigned k = 0; k < nw; k++) {
        fds[k] = pc_xcalloc(nc->nlistens ? nc->nlistens : 1, sizeof **fds);
        for (size_t i = 0; i < nc->nlistens; i++)
            fds[k][i] = -1;
    }
    for (size_t i = 0; i < nc->nlistens; i++) {
        const pc_listen *l = &nc->listens[i];
        int kept = 0;
        for (size_t j = 0; j < old->nlistens && !kept; j++)
            kept = pc_listen_same(&old->listens[j], l);
        for (unsigned k = 0; k < nw && !kept; k++) {
            fds[k][i] = pc_listen_bind(l, k == 0);
            if (fds[k][i] < 0) {
                int e = errno;
                pc_log(PC_LOG_ERROR, "reload: cannot listen on %s: %s", l->address,
                       strerror(e));
                close_fds(fds, nw, nc->nlistens);
                return NULL;
            }
        }
    }
    return fds;
}

/* SIGHUP (CONTRACT §1): loads and checks the file here, off the workers'
 * path (upstream names are resolved here too); on any error nothing
 * changes. Otherwise binds the new addresses, swaps the process's
 * generation and hands it to every worker, which switches between two
 * events; requests in flight finish on the generation they pinned. */
static int reload_apply(app *a);

/* A reload counts, is logged as done and READY=1 goes to systemd only
 * once every worker serves the new generation (listeners included). */
static void reload_confirm(app *a)
{
    if (!workers_caught_up(a)) {
        struct timeval tv = {0, 2 * 1000};
        evtimer_add(a->reload_wait, &tv);
        return;
    }
    a->reload_pending = 0;
    pc_metrics_count_reload(1);
    pc_log(PC_LOG_INFO, "configuration reloaded (generation %llu)",
           (unsigned long long)a->rt.cfg->generation);
    char d[64];
    snprintf(d, sizeof d, "generation %llu",
             (unsigned long long)a->rt.cfg->generation);
    pc_event_emit(PC_EV_CONFIG_RELOADED, NULL, NULL, d);
    sd_notify_msg("READY=1");
}

static void reload(app *a)
{
    if (a->stopping)
        return;
    if (a->reload_pending || !workers_caught_up(a)) {
        struct timeval tv = {0, 20 * 1000};
        evtimer_add(a->reload_retry, &tv);
        return;
    }
    sd_notify_msg("RELOADING=1");
    if (reload_apply(a)) {
        a->reload_pending = 1;
        reload_confirm(a);
    } else {
        sd_notify_msg("READY=1");
    }
}

/* 1 when a new generation was handed to the workers, 0 when nothing
 * changed (errors logged and counted). */
static int reload_apply(app *a)
{
    pc_config *old = a->rt.cfg;
    pc_errors err;
    pc_errors_init(&err, a->file);
    pc_config *nc = pc_config_load(a->file, &err);
    if (!nc || err.n) {
        for (size_t i = 0; i < err.n; i++)
            pc_log(PC_LOG_ERROR, "%s", err.msgs[i]);
        pc_log(PC_LOG_ERROR,
               "reload failed (%zu error%s): configuration unchanged "
               "(generation %llu)",
               err.n, err.n == 1 ? "" : "s", (unsigned long long)old->generation);
        pc_event_emit(PC_EV_CONFIG_RELOAD_FAILED, NULL, NULL,
                      err.n ? err.msgs[0] : "cannot load the configuration");
        pc_errors_free(&err);
        pc_config_unref(nc);
        pc_metrics_count_reload(0);
        return 0;
    }
    pc_errors_free(&err);
    int **fds = bind_new_listeners(a, old, nc);
    if (!fds) {
        pc_log(PC_LOG_ERROR, "reload failed: configuration unchanged "
                             "(generation %llu)",
               (unsigned long long)old->generation);
        pc_event_emit(PC_EV_CONFIG_RELOAD_FAILED, NULL, NULL,
                      "cannot listen on a new address");
        pc_config_unref(nc);
        pc_metrics_count_reload(0);
        return 0;
    }
    nc->generation = old->generation + 1;
    pc_targets_bind(a->tstates, nc);
    if (nc->workers != old->workers)
        pc_log(PC_LOG_WARN, "reload: workers changed from %llu to %llu: "
                            "applies at the next start",
               (unsigned long long)old->workers, (unsigned long long)nc->workers);
    if ((old->admin_listen == NULL) != (nc->admin_listen == NULL) ||
        (old->admin_listen && strcmp(old->admin_listen, nc->admin_listen) != 0))
        pc_log(PC_LOG_WARN, "reload: admin.listen changed: applies at the "
                            "next start");
    if (strcmp(old->log.access ? old->log.access : "",
               nc->log.access ? nc->log.access : "") != 0 ||
        old->log.ring_entries != nc->log.ring_entries)
        pc_log(PC_LOG_WARN, "reload: log.access / log.ring_entries changed: "
                            "apply at the next start");
    pc_log_set_level(nc->log.level);
    pthread_mutex_lock(&a->rt.cfg_lock);
    a->rt.cfg = nc;
    pthread_mutex_unlock(&a->rt.cfg_lock);
    for (unsigned k = 0; k < a->rt.nworkers; k++) {
        pc_worker_reload(a->rt.workers[k], pc_config_ref(nc), fds[k]);
        fds[k] = NULL;
    }
    free(fds);
    pc_health_reconfigure(a->health, nc);
    pc_webhooks_reconfigure(a->webhooks, nc);
    pc_config_unref(old);
    return 1;
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    reload(arg);
}

static void reload_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload(arg);
}

static void reload_wait_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload_confirm(arg);
}

static void usr1_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    pc_logger_reopen(pc_access_logger);
}

static int run(const char *file)
{
    app a;
    memset(&a, 0, sizeof a);
    a.file = file;
    pc_config *cfg = load(file);
    if (!cfg)
        return 1;
    pc_log_set_level(cfg->log.level);
    a.rt.cfg = cfg;
    pthread_mutex_init(&a.rt.cfg_lock, NULL);
    a.rt.per_ip = pc_ipcount_new();
    a.rt.buckets = pc_bucket_table_new(0);
    a.tstates = pc_tstate_table_new();
    pc_targets_bind(a.tstates, cfg);
    a.base = event_base_new();
    int rc = 2;
    pc_admin *admin = NULL;
    a.rt.nworkers = (unsigned)cfg->workers;
    a.rt.workers = pc_xcalloc(a.rt.nworkers, sizeof *a.rt.workers);
    for (unsigned i = 0; i < a.rt.nworkers; i++) {
        a.rt.workers[i] = pc_worker_new(&a.rt, i, cfg);
        if (!a.rt.workers[i])
            goto out;
    }
    admin = pc_admin_start(a.base, &a.rt);
    if (!admin)
        goto out;
    /* Before the health checks: their first events are delivered. */
    a.webhooks = pc_webhooks_start(cfg);
    if (!a.webhooks)
        goto out;
    a.health = pc_health_start(cfg);
    if (!a.health)
        goto out;
    pc_access_logger = pc_logger_start(&cfg->log, a.rt.nworkers);
    if (!pc_access_logger && cfg->log.access && strcmp(cfg->log.access, "off") != 0)
        goto out;
    struct event *sigs[4] = {
        evsignal_new(a.base, SIGTERM, stop_cb, &a),
        evsignal_new(a.base, SIGINT, stop_cb, &a),
        evsignal_new(a.base, SIGHUP, hup_cb, &a),
        evsignal_new(a.base, SIGUSR1, usr1_cb, &a),
    };
    for (int i = 0; i < 4; i++)
        event_add(sigs[i], NULL);
    a.reload_retry = evtimer_new(a.base, reload_retry_cb, &a);
    a.reload_wait = evtimer_new(a.base, reload_wait_cb, &a);
    a.trim = event_new(a.base, -1, EV_PERSIST, trim_cb, &a);
    struct timeval trim_tv = {TRIM_PERIOD_S, 0};
    event_add(a.trim, &trim_tv);
    for (unsigned i = 0; i < a.rt.nworkers; i++)
        if (pc_worker_start(a.rt.workers[i]) != 0) {
            for (unsigned k = 0; k < i; k++)
                pc_worker_kill(a.rt.workers[k]);
            goto out_sigs_fail;
        }
    pc_log(PC_LOG_INFO, "portcullis %s started: %u workers, %zu listeners",
           PC_VERSION, a.rt.nworkers, cfg->nlistens);
    sd_notify_msg("READY=1");
    event_base_dispatch(a.base);
    rc = 0;
    goto out_sigs;
out_sigs_fail:
    rc = 2;
out_sigs:
    for (int i = 0; i < 4; i++)
        event_free(sigs[i]);
out:
    for (unsigned i = 0; i < a.rt.nworkers; i++)
        pc_worker_join_free(a.rt.workers[i]);
    free(a.rt.workers);
    pc_admin_free(admin);
    pc_health_stop(a.health);
    pc_webhooks_stop(a.webhooks); /* after every emitter is gone */
    pc_logger_stop(pc_access_logger);
    pc_access_logger = NULL;
    if (a.deadline)
        event_free(a.deadline);
    if (a.poll)
        event_free(a.poll);
    if (a.trim)
        event_free(a.trim);
    if (a.reload_retry)
        event_free(a.reload_retry);
    if (a.reload_wait)
        event_free(a.reload_wait);
    event_base_free(a.base);
    pc_ipcount_free(a.rt.per_ip);
    pc_bucket_table_free(a.rt.buckets);
    pc_cache_shutdown(); /* every worker is gone */
    pc_config_unref(a.rt.cfg);
    pc_tstate_table_free(a.tstates);
    pthread_mutex_destroy(&a.rt.cfg_lock);
    if (rc == 0)
        pc_log(PC_LOG_INFO, "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = DEFAULT_CONFIG;
    int test = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            file = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'V':
            printf("portcullis %s\n", PC_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        char *arg = pc_xescape(argv[optind], strlen(argv[optind]));
        fprintf(stderr, "portcullis: unexpected argument '%s'\n", arg);
        free(arg);
        usage(stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Buffers of a few to 64 KiB come and go with every request: keep
     * freed memory in the allocator instead of returning it to the kernel
     * (madvise) and faulting it back in on the next request. RSS stays
     * bounded by the backpressure watermarks either way. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    evthread_use_pthreads();
    pc_tls_global_init();
    if (test) {
        pc_config *c = load(file);
        if (!c)
            return 1;
        char *shown = pc_xescape(file, strlen(file));
        printf("%s: ok\n", shown);
        free(shown);
        pc_config_unref(c);
        return 0;
    }
    return run(file);
}
