/* health.c: active health checks (CONTRACT §2 upstreams.*.health_check).
 * One thread with its own event_base runs every check, so a slow or dead
 * target never delays a worker's requests nor the admin listener. Each
 * check is a GET of `path` on a new connection (TLS for https targets,
 * with the upstream's client context and verification, pool.c's
 * pc_target_ssl), judged by its status line alone (2xx and 3xx pass) and
 * bounded by `timeout`; the connection is then closed.
 *
 * DESIGN: the thread holds one reference to the generation it checks and
 * one job per target of an upstream with a health_check block. A reload
 * hands it the new generation (pc_health_reconfigure: a mutex and an
 * event_active, never a wait); it drops every job, in-flight checks
 * included, and builds the new ones, which check at once. What a target's
 * checks concluded lives in its per-process state (pc_tstate: healthy and
 * the consecutive counts), found by stable name, so it survives the
 * reload; targets of upstreams that lost their health_check are marked
 * healthy again. Only this thread writes that part of the state; workers
 * read `healthy` with one atomic load. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"
#include "portcullis/events.h"
#include "portcullis/errlog.h"
#include "portcullis/probe.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"

typedef struct hjob {
    pc_health *h;
    const pc_upstream *u;
    const pc_target *t;
    struct event *timer; /* next check, or the running check's deadline */
    pc_sock *sock;       /* the running check's connection */
    uint64_t started;    /* ns, when the running (or last) check began */
} hjob;

struct pc_health {
    pthread_t thread;
    struct event_base *base;
    pc_sock_loop *sl;
    struct event *wake;
    pthread_mutex_t lock;
    pc_config *pending; /* handed over, one reference (lock) */
    int stop;           /* lock */
    pc_config *cfg;     /* the generation checked (thread's reference) */
    hjob *jobs;
    size_t njobs;
};

static void arm(hjob *j, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(j->timer, &tv);
}

static void finish(hjob *j, int ok, const char *why)
{
    const pc_upstream *u = j->u;
    if (j->sock) {
        pc_sock_free(j->sock);
        j->sock = NULL;
    }
    evtimer_del(j->timer);
    if (!ok)
        pc_log(PC_LOG_DEBUG, "health check of %s (upstream %s) failed: %s",
               j->t->url, u->name, why);
    pc_transition tr = pc_health_record(j->t->state, u->health.healthy_after,
                                        u->health.unhealthy_after, ok);
    if (tr != PC_TR_NONE) {
        char d[160];
        if (tr == PC_TR_UNHEALTHY)
            snprintf(d, sizeof d, "%llu consecutive failed checks of %s (%s)",
                     (unsigned long long)u->health.unhealthy_after,
                     u->health.path, why);
        else
            snprintf(d, sizeof d, "%llu consecutive passed checks of %s",
                     (unsigned long long)u->health.healthy_after,
                     u->health.path);
        pc_event_emit(pc_event_of(tr), u->name, j->t->url, d);
    }
    /* The next check starts `interval` after this one started. */
    uint64_t el_ms = (pc_now_ns() - j->started) / 1000000u;
    arm(j, el_ms >= u->health.interval ? 0 : u->health.interval - el_ms);
}

/* 2xx and 3xx pass (probe.c reads the status line). */
static void verdict(hjob *j, int status, const char *why)
{
    int ok = status >= 200 && status < 400;
    finish(j, ok, status ? pc_probe_class(status) : why);
}

static void check_read_cb(pc_sock *s, void *arg)
{
    const char *why = "?";
    int st = pc_probe_status(pc_sock_input(s), &why);
    if (st >= 0)
        verdict(arg, st, why);
}

static void check_event_cb(pc_sock *s, short what, void *arg)
{
    const char *why = "?";
    int st = pc_probe_event(s, what, &why);
    if (st >= 0)
        verdict(arg, st, why);
}

static void start_check(hjob *j)
{
    const pc_upstream *u = j->u;
    const pc_target *t = j->t;
    j->started = pc_now_ns();
    SSL *ssl = NULL;
    if (t->tls && !(ssl = pc_target_ssl(u, t))) {
        finish(j, 0, "cannot set up TLS");
        return;
    }
    j->sock = pc_sock_connect(j->h->sl, (const struct sockaddr *)&t->addr,
                              t->addrlen, ssl);
    if (!j->sock) {
        finish(j, 0, "cannot create a socket");
        return;
    }
    pc_sock_setcb(j->sock, check_read_cb, NULL, check_event_cb, j);
    pc_sock_set_read_hwm(j->sock, 4096);
    /* The deadline timer covers the whole check; the socket's own
     * timeouts are a backstop. */
    pc_sock_set_timeouts(j->sock, u->health.timeout, u->health.timeout);
    evbuffer_add_printf(pc_sock_output(j->sock),
                        "GET %s HTTP/1.1\r\nHost: %s\r\n"
                        "User-Agent: portcullis-health-check\r\n"
                        "Accept: */*\r\nConnection: close\r\n\r\n",
                        u->health.path, t->hostport);
    pc_sock_read(j->sock, 1);
    arm(j, u->health.timeout);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    hjob *j = arg;
    (void)fd;
    (void)what;
    if (j->sock)
        finish(j, 0, "timeout");
    else
        start_check(j);
}

static void drop_jobs(pc_health *h)
{
    for (size_t i = 0; i < h->njobs; i++) {
        if (h->jobs[i].sock)
            pc_sock_free(h->jobs[i].sock);
        event_free(h->jobs[i].timer);
    }
    free(h->jobs);
    h->jobs = NULL;
    h->njobs = 0;
}

static void apply(pc_health *h, pc_config *cfg)
{
    drop_jobs(h);
    pc_config_unref(h->cfg);
    h->cfg = cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].health.enabled)
            n += cfg->upstreams[i].ntargets;
    h->jobs = pc_xcalloc(n ? n : 1, sizeof *h->jobs);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const pc_upstream *u = &cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++) {
            const pc_target *t = &u->targets[k];
            if (!t->state)
                continue;
            if (!u->health.enabled) {
                if (!pc_health_ok(t->state))
                    pc_event_emit(PC_EV_TARGET_HEALTHY, u->name, t->url,
                                  "health_check removed");
                pc_health_reset(t->state);
                continue;
            }
            hjob *j = &h->jobs[h->njobs++];
            j->h = h;
            j->u = u;
            j->t = t;
            j->timer = evtimer_new(h->base, timer_cb, j);
            arm(j, 0);
        }
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_health *h = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&h->lock);
    pc_config *cfg = h->pending;
    int stop = h->stop;
    h->pending = NULL;
    pthread_mutex_unlock(&h->lock);
    if (stop) {
        pc_config_unref(cfg);
        event_base_loopbreak(h->base);
        return;
    }
    if (cfg)
        apply(h, cfg);
}

static void *thread_main(void *arg)
{
    pc_health *h = arg;
    /* Without any health_check block there is no event at all until the
     * next reload: the loop must wait for the wake-up all the same. */
    event_base_loop(h->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

pc_health *pc_health_start(pc_config *cfg)
{
    pc_health *h = pc_xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    h->base = event_base_new();
    if (!h->base) {
        pc_log(PC_LOG_ERROR, "health checks: cannot create an event loop");
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    h->sl = pc_sock_loop_new(h->base);
    h->wake = event_new(h->base, -1, 0, wake_cb, h);
    h->pending = pc_config_ref(cfg);
    event_active(h->wake, EV_READ, 0);
    if (pthread_create(&h->thread, NULL, thread_main, h) != 0) {
        pc_log(PC_LOG_ERROR, "health checks: cannot start their thread");
        pc_config_unref(h->pending);
        event_free(h->wake);
        pc_sock_loop_free(h->sl);
        event_base_free(h->base);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

void pc_health_reconfigure(pc_health *h, pc_config *cfg)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    pc_config_unref(h->pending);
    h->pending = pc_config_ref(cfg);
    pthread_mutex_unlock(&h->lock);
    event_active(h->wake, EV_READ, 0);
}

void pc_health_stop(pc_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_mutex_unlock(&h->lock);
    event_active(h->wake, EV_READ, 0);
    pthread_join(h->thread, NULL);
    drop_jobs(h);
    pc_config_unref(h->cfg);
    pc_config_unref(h->pending);
    event_free(h->wake);
    pc_sock_loop_free(h->sl);
    event_base_free(h->base);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
