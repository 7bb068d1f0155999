/* worker.c: one event-loop thread with its own SO_REUSEPORT listening
 * sockets, client connections and upstream pools. Owns the accept path
 * (max_connections, max_connections_per_ip, resting when accept fails for
 * want of descriptors) and the graceful drain; never parses HTTP.
 * Cross-thread calls (stop, kill) go through event_active, which libevent
 * makes thread-safe (evthread_use_pthreads in main). */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "portcullis/arena.h"
#include "portcullis/chain.h"
#include "portcullis/conn.h"
#include "portcullis/log.h"
#include "portcullis/metrics.h"
#include "portcullis/proxy.h"
#include "portcullis/redis.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"
#include "portcullis/worker.h"

typedef struct pc_lctx {
    pc_worker *w;
    pc_listen *l; /* in the worker's current generation */
} lctx;

/* Accepting rests this long after accept(2) failed for want of a
 * descriptor or of kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the
 * connection stays in the kernel's queue, so the level-triggered listener
 * would wake at once only to fail again, at 100% CPU (nginx rests 500 ms
 * too). Connections that close meanwhile free descriptors; accepting
 * resumes by itself. */
#define ACCEPT_BACKOFF_MS 500
/* Request-arena chunks (4 KiB) a worker keeps for reuse: 128 KiB at most. */
#define PC_WORKER_ARENA_CACHE 32
/* At most one accept error line per worker per second; the next line
 * counts those left out. */
#define ACCEPT_LOG_NS 1000000000ull
#define STR_(x) #x
#define STR(x) STR_(x)

/* The first socket bound on an address (worker 0's) binds without
 * SO_REUSEPORT: the kernel then refuses the bind (EADDRINUSE) when any
 * socket listens there, including the SO_REUSEPORT sockets of a second
 * portcullis of the same user, which would otherwise share the port in
 * silence. SO_REUSEPORT is set after the bind and before listen(2), so the
 * other workers' sockets, bound with it, join this one. */
int pc_listen_bind(const pc_listen *l, int first)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!first)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0 ||
        (first &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Enables or disables every listener to match the worker's state: off
 * while draining, at max_connections, or resting after an accept error. */
static void update_listeners(pc_worker *w)
{
    int on = !w->loop.draining && !w->listeners_paused && !w->accept_backoff;
    if (on == w->listeners_on)
        return;
    for (unsigned i = 0; i < w->nlisteners; i++) {
        if (!w->listeners[i])
            continue;
        if (on)
            evconnlistener_enable(w->listeners[i]);
        else
            evconnlistener_disable(w->listeners[i]);
    }
    w->listeners_on = on;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_worker *w = arg;
    (void)fd;
    (void)what;
    w->accept_backoff = 0;
    update_listeners(w);
}

/* accept(2) errors that belong to one connection (Linux passes pending
 * network errors of the new socket through accept): the next accept can
 * succeed, so there is nothing to rest for. */
static int per_connection_error(int e)
{
    switch (e) {
    case ENETDOWN:
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
    case ECONNRESET:
    case EPERM:
        return 1;
    default:
        return 0;
    }
}

/* libevent calls this for every accept error it does not retry itself
 * (EAGAIN, EINTR, ECONNABORTED); without it, it logs each one, and with
 * EMFILE that was millions of lines a second from a spinning loop. */
static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    lctx *x = arg;
    pc_worker *w = x->w;
    int e = EVUTIL_SOCKET_ERROR();
    int rest = !per_connection_error(e);
    (void)lis;
    if (rest) {
        struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
        w->accept_backoff = 1;
        update_listeners(w);
        evtimer_add(w->backoff_ev, &tv);
    }
    uint64_t now = pc_now_ns();
    if (w->accept_err_ns && now - w->accept_err_ns < ACCEPT_LOG_NS) {
        w->accept_err_quiet++;
        return;
    }
    char more[64] = "";
    if (w->accept_err_quiet)
        snprintf(more, sizeof more, " (%lu more since the last message)",
                 w->accept_err_quiet);
    pc_log(PC_LOG_ERROR, "worker %u: accept on %s failed: %s%s%s", w->loop.id,
           x->l->address, strerror(e),
           rest ? "; not accepting for " STR(ACCEPT_BACKOFF_MS) " ms" : "",
           more);
    w->accept_err_ns = now;
    w->accept_err_quiet = 0;
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    lctx *x = arg;
    pc_worker *w = x->w;
    pc_runtime *rt = w->rt;
    const pc_limits *lim = &w->loop.cfg->limits;
    (void)lis;
    if (w->loop.draining) {
        close(fd);
        return;
    }
    /* Counted by the address conn.c records (IPv4-mapped IPv6 as IPv4). */
    uint8_t a_ip[16];
    size_t a_len = 16;
    if (sa->sa_family == AF_INET) {
        memcpy(a_ip, &((struct sockaddr_in *)sa)->sin_addr, 4);
        a_len = 4;
    } else {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(a_ip, &((struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(a_ip, mapped, 12) == 0) {
            memmove(a_ip, a_ip + 12, 4);
            a_len = 4;
        }
    }
    if (lim->max_connections_per_ip) {
        if (pc_ipcount_inc(rt->per_ip, a_ip, a_len) > lim->max_connections_per_ip) {
            pc_ipcount_dec(rt->per_ip, a_ip, a_len);
            close(fd);
            return;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long n = atomic_fetch_add(&rt->connections, 1) + 1;
    pc_conn *c = pc_conn_accept(&w->loop, fd, sa, (socklen_t)salen,
                                x->l->tls ? x->l->ssl_ctx : NULL,
                                lim->max_connections_per_ip != 0);
    if (!c) {
        atomic_fetch_sub(&rt->connections, 1);
        if (lim->max_connections_per_ip)
            pc_ipcount_dec(rt->per_ip, a_ip, a_len);
        return;
    }
    if ((uint64_t)n >= lim->max_connections && !w->listeners_paused) {
        /* "Further accepts wait": leave them in the kernel's queue. */
        w->listeners_paused = 1;
        update_listeners(w);
    }
}

/* Listener i on fd (taken over, closed on failure), for listen l. */
static int add_listener(pc_worker *w, size_t i, pc_listen *l, int fd)
{
    lctx *x = pc_xcalloc(1, sizeof *x);
    x->w = w;
    x->l = l;
    w->lctx[i] = x;
    w->listeners[i] = evconnlistener_new(w->loop.base, accept_cb, x,
                                         LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!w->listeners[i]) {
        close(fd);
        pc_log(PC_LOG_ERROR, "cannot listen on %s", l->address);
        return -1;
    }
    evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
    if (!w->listeners_on)
        evconnlistener_disable(w->listeners[i]);
    return 0;
}

static void maybe_resume_listeners(pc_worker *w)
{
    if (!w->listeners_paused || w->loop.draining)
        return;
    if ((uint64_t)atomic_load(&w->rt->connections) < w->loop.cfg->limits.max_connections) {
        w->listeners_paused = 0;
        update_listeners(w);
    }
}

/* loop ops: a client connection of this worker closed (front/conn.c). */
static void loop_conn_closed(pc_loop *l, const pc_ip *peer, int counted_ip)
{
    pc_worker *w = (pc_worker *)l; /* the loop is the worker's first member */
    atomic_fetch_sub(&w->rt->connections, 1);
    if (counted_ip)
        pc_ipcount_dec(w->rt->per_ip, peer->b, peer->family == 4 ? 4 : 16);
    maybe_resume_listeners(w);
    if (w->loop.draining && w->loop.nconns == 0)
        event_base_loopexit(w->loop.base, NULL);
}

/* loop ops: a request is finished: count it, then log it. */
static void loop_request_done(pc_loop *l, pc_req *req)
{
    const pc_route *r = req->route;
    unsigned m = req->method ? pc_metrics_method_index(req->method_bit)
                             : PC_METRICS_METHOD_OTHER;
    uint64_t now = pc_now_ns(); /* one clock read for metrics and log */
    uint64_t took = now > req->start_ns ? now - req->start_ns : 0;
    /* upstream_ns stays 0 when the attempt was cancelled before it ended
     * (the client timed out or sent too much): no upstream time to show */
    int upstream = req->upstream_target && req->upstream_ns && r && r->upstream;
    pc_metrics_request(l->metrics, r ? r->metrics_id : PC_METRICS_ID_NONE, m,
                       req->status, took,
                       upstream ? r->upstream->metrics_id : PC_METRICS_ID_NONE,
                       upstream ? req->upstream_ns : 0);
    pc_log_access((pc_worker *)l, req, took);
}

static const pc_loop_ops loop_ops = {
    .conn_closed = loop_conn_closed,
    .request_done = loop_request_done,
};

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    maybe_resume_listeners(arg);
    pc_conns_release_idle(&((pc_worker *)arg)->loop);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_worker *w = arg;
    (void)fd;
    (void)what;
    w->loop.draining = 1;
    for (unsigned i = 0; i < w->nlisteners; i++) {
        evconnlistener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    pc_conns_drain(&w->loop);
    if (w->loop.nconns == 0)
        event_base_loopexit(w->loop.base, NULL);
}

int pc_listen_same(const pc_listen *a, const pc_listen *b)
{
    return a->addrlen == b->addrlen &&
           memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Applies the generation handed over by pc_worker_reload (see worker.h). */
static void reload_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_worker *w = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->reload_lock);
    pc_config *nc = w->reload_cfg;
    int *fds = w->reload_fds;
    w->reload_cfg = NULL;
    w->reload_fds = NULL;
    pthread_mutex_unlock(&w->reload_lock);
    if (!nc)
        return;
    pc_config *old = w->loop.cfg;
    size_t n = nc->nlistens;
    struct evconnlistener **ls = pc_xcalloc(n ? n : 1, sizeof *ls);
    lctx **xs = pc_xcalloc(n ? n : 1, sizeof *xs);
    struct evconnlistener **old_ls = w->listeners;
    lctx **old_xs = w->lctx;
    unsigned old_n = w->nlisteners;
    w->listeners = ls;
    w->lctx = xs;
    w->nlisteners = (unsigned)n;
    /* New sockets first: the address keeps accepting throughout. */
    for (size_t i = 0; i < n; i++) {
        pc_listen *l = &nc->listens[i];
        size_t j;
        for (j = 0; j < old_n; j++)
            if (old_xs[j] && pc_listen_same(old_xs[j]->l, l))
                break;
        if (j < old_n) { /* kept: same socket, new settings */
            ls[i] = old_ls[j];
            xs[i] = old_xs[j];
            xs[i]->l = l;
            old_ls[j] = NULL;
            old_xs[j] = NULL;
            if (fds[i] >= 0)
                close(fds[i]);
        } else if (fds[i] < 0) {
            pc_log(PC_LOG_ERROR, "worker %u: no socket for %s after reload",
                   w->loop.id, l->address);
        } else if (w->loop.draining) {
            close(fds[i]);
        } else if (add_listener(w, i, l, fds[i]) != 0) {
            free(xs[i]);
            xs[i] = NULL;
        }
    }
    /* Then the addresses the new generation dropped. */
    for (unsigned j = 0; j < old_n; j++) {
        if (old_ls[j])
            evconnlistener_free(old_ls[j]);
        free(old_xs[j]);
    }
    free(old_ls);
    free(old_xs);
    free(fds);
    w->loop.cfg = nc;
    if (!pc_redis_opts_same(old->redis, nc->redis)) {
        /* A changed redis block reconnects: the old client's pending
         * commands answer DOWN (on_error) as it goes. */
        pc_redis *gone = w->loop.redis;
        w->loop.redis =
            nc->redis ? pc_redis_new(w->loop.base, nc->redis) : NULL;
        pc_redis_free(gone);
    }
    pc_config_unref(old);
    pc_pools_prune(w->loop.pools, nc);
    maybe_resume_listeners(w);
    atomic_store(&w->applied_generation, nc->generation);
}

void pc_worker_reload(pc_worker *w, pc_config *cfg, int *fds)
{
    pthread_mutex_lock(&w->reload_lock);
    w->reload_cfg = cfg;
    w->reload_fds = fds;
    pthread_mutex_unlock(&w->reload_lock);
    event_active(w->reload_ev, EV_TIMEOUT, 1);
}

static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_worker *w = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(w->loop.base);
}

pc_worker *pc_worker_new(pc_runtime *rt, unsigned id, pc_config *cfg)
{
    pc_worker *w = pc_xcalloc(1, sizeof *w);
    w->loop.id = id;
    w->rt = rt;
    w->loop.cfg = pc_config_ref(cfg);
    w->loop.base = event_base_new();
    if (!w->loop.base) {
        pc_log(PC_LOG_ERROR, "cannot create event loop");
        goto fail;
    }
    w->loop.ops = &loop_ops;
    pc_loop_seed(&w->loop);
    if (id == 0) /* before any worker thread runs or anyone scrapes */
        pc_metrics_set_stages(pc_chain_stage_names(), pc_chain_nstages());
    w->listeners_on = 1; /* evconnlistener_new enables them */
    w->backoff_ev = evtimer_new(w->loop.base, backoff_cb, w);
    w->listeners = pc_xcalloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *w->listeners);
    w->lctx = pc_xcalloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *w->lctx);
    pthread_mutex_init(&w->reload_lock, NULL);
    atomic_init(&w->applied_generation, cfg->generation);
    for (size_t i = 0; i < cfg->nlistens; i++) {
        pc_listen *l = &cfg->listens[i];
        int fd = pc_listen_bind(l, id == 0);
        if (fd < 0) {
            int e = errno;
            pc_log(PC_LOG_ERROR, "cannot listen on %s: %s%s", l->address,
                   strerror(e),
                   e == EADDRINUSE ? " (another process listens there: "
                                     "is portcullis already running?)"
                                   : "");
            goto fail;
        }
        w->nlisteners++;
        if (add_listener(w, i, l, fd) != 0)
            goto fail;
    }
    w->loop.sockloop = pc_sock_loop_new(w->loop.base);
    w->loop.buckets = rt->buckets;
    if (cfg->redis) /* connects in the background; down is not fatal */
        w->loop.redis = pc_redis_new(w->loop.base, cfg->redis);
    pc_chain_worker_init(&w->loop);
    w->loop.metrics = pc_metrics_shard_new();
    w->loop.arenas = pc_arena_cache_new(PC_WORKER_ARENA_CACHE);
    w->loop.pools = pc_pools_new(w->loop.sockloop);
    w->stop_ev = event_new(w->loop.base, -1, 0, stop_cb, w);
    w->kill_ev = event_new(w->loop.base, -1, 0, kill_cb, w);
    w->tick_ev = event_new(w->loop.base, -1, EV_PERSIST, tick_cb, w);
    w->reload_ev = event_new(w->loop.base, -1, 0, reload_cb, w);
    struct timeval sec = {1, 0};
    event_add(w->tick_ev, &sec);
    return w;
fail:
    pc_worker_join_free(w);
    return NULL;
}

static void *thread_main(void *arg)
{
    pc_worker *w = arg;
    pc_log_attach_thread(pc_access_logger, w->loop.id);
    event_base_dispatch(w->loop.base);
    atomic_store(&w->done, 1);
    return NULL;
}

int pc_worker_start(pc_worker *w)
{
    if (pthread_create(&w->thread, NULL, thread_main, w) != 0) {
        pc_log(PC_LOG_ERROR, "cannot start worker thread %u", w->loop.id);
        return -1;
    }
    return 0;
}

void pc_worker_stop(pc_worker *w)
{
    event_active(w->stop_ev, EV_TIMEOUT, 1);
}

void pc_worker_kill(pc_worker *w)
{
    event_active(w->kill_ev, EV_TIMEOUT, 1);
}

void pc_worker_join_free(pc_worker *w)
{
    if (!w)
        return;
    if (w->thread)
        pthread_join(w->thread, NULL);
    for (unsigned i = 0; i < w->nlisteners; i++)
        if (w->listeners[i])
            evconnlistener_free(w->listeners[i]);
    /* Connections still open after a forced stop (shutdown_timeout). */
    pc_conns_close_now(&w->loop);
    if (w->lctx)
        for (unsigned i = 0; i < w->nlisteners; i++)
            free(w->lctx[i]);
    free(w->lctx);
    if (w->reload_cfg) { /* handed over, never applied (stopping) */
        for (size_t i = 0; i < w->reload_cfg->nlistens; i++)
            if (w->reload_fds[i] >= 0)
                close(w->reload_fds[i]);
        free(w->reload_fds);
        pc_config_unref(w->reload_cfg);
    }
    if (w->reload_ev)
        event_free(w->reload_ev);
    pthread_mutex_destroy(&w->reload_lock);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->kill_ev)
        event_free(w->kill_ev);
    if (w->tick_ev)
        event_free(w->tick_ev);
    if (w->backoff_ev)
        event_free(w->backoff_ev);
    pc_cache_worker_stop(&w->loop); /* its requests use the pools */
    pc_pools_free(w->loop.pools);
    pc_redis_free(w->loop.redis); /* no request is left to answer */
    pc_chain_worker_free(&w->loop);
    pc_metrics_shard_free(w->loop.metrics);
    pc_sock_loop_free(w->loop.sockloop);
    free(w->listeners);
    pc_config_unref(w->loop.cfg);
    if (w->loop.base)
        event_base_free(w->loop.base);
    pc_arena_cache_free(w->loop.arenas); /* after every request's arena */
    free(w);
}
