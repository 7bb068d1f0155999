/* gw_harness.h: the in-process test bench shared by fuzz_http.c and
 * fuzz_response.c: one real gateway worker (the same pc_worker, conn,
 * chain and proxy code main.c runs), a client socket, and a scripted
 * upstream server, all on 127.0.0.1 and all driven from the fuzzer's own
 * thread, so that every input runs the same way:
 *
 *   client fd ──► [our listener] ──pc_conn_accept──► worker (event_base)
 *                                                     │ pools, forward.c
 *   fz_up (non-blocking sockets, polled) ◄────────────┘
 *
 * fz_round() runs the worker's loop once without blocking, then serves
 * the upstream (accept, read, the target's callback, write) and reads
 * what the client got; fz_settle() repeats rounds until nothing moves.
 * Loopback delivery is synchronous, so a few idle rounds mean quiet.
 * Everything is static inline (no unused-function warnings). */
#ifndef FUZZ_GW_HARNESS_H
#define FUZZ_GW_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/conn.h"
#include "portcullis/log.h"
#include "portcullis/node.h"
#include "portcullis/proxy.h"
#include "portcullis/tls.h"
#include "portcullis/worker.h"

#define FZ_QUIET_ROUNDS 4 /* idle rounds in a row that mean "quiet" */

/* Prints a violation with the target's context and aborts, so that
 * libFuzzer saves the input. */
static inline void fz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static inline void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\n*** oracle violation: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static inline void fz_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        abort();
}

/* A listening socket on 127.0.0.1, any port. */
static inline int fz_listen(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 64) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    fz_nonblock(fd);
    if (port)
        *port = ntohs(sa.sin_port);
    return fd;
}

static inline int fz_free_port(void)
{
    int port, fd = fz_listen(&port);
    close(fd);
    return port;
}

/* Growable byte buffer. */
typedef struct fz_buf {
    unsigned char *p;
    size_t len, cap;
} fz_buf;

static inline void fz_buf_add(fz_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- the gateway ------------------------------------------------------ */

typedef struct fz_gw {
    pc_runtime rt;
    pc_worker *w;
    int lfd; /* our listener: accepted sockets go to pc_conn_accept */
} fz_gw;

/* Builds the configuration from YAML text and one worker on it (its own
 * listener is bound but never used: inputs arrive through
 * pc_conn_accept). Aborts with the loader's messages on error. */
static inline void fz_gw_init(fz_gw *g, const char *yaml)
{
    pc_errors err;
    evthread_use_pthreads();
    pc_tls_global_init();
    pc_log_set_level(PC_LOG_ERROR);
    pc_errors_init(&err, "fuzz");
    pc_node *root = pc_node_load_string(yaml, strlen(yaml), &err);
    pc_config *cfg = root ? pc_config_from_node(root, "fuzz", &err) : NULL;
    if (!cfg) {
        for (size_t i = 0; i < err.n; i++)
            fprintf(stderr, "%s\n", err.msgs[i]);
        abort();
    }
    pc_node_free(root);
    pc_errors_free(&err);
    memset(g, 0, sizeof *g);
    g->rt.cfg = cfg;
    pthread_mutex_init(&g->rt.cfg_lock, NULL);
    g->rt.per_ip = pc_ipcount_new();
    g->w = pc_worker_new(&g->rt, 0, cfg);
    if (!g->w)
        abort();
    g->lfd = fz_listen(NULL);
}

/* A new client connection accepted by the gateway; returns the client's
 * (non-blocking) end. Non-blocking from the start: libFuzzer's -timeout
 * alarm would interrupt a blocking connect (EINTR). */
static inline int fz_gw_client(fz_gw *g)
{
    struct sockaddr_in sa, peer;
    socklen_t len = sizeof sa, plen = sizeof peer;
    getsockname(g->lfd, (struct sockaddr *)&sa, &len);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0)
        fz_fail("harness: socket: %s", strerror(errno));
    fz_nonblock(cfd);
    if (connect(cfd, (struct sockaddr *)&sa, len) != 0 && errno != EINPROGRESS &&
        errno != EINTR)
        fz_fail("harness: client connect: %s", strerror(errno));
    int sfd = -1;
    for (int tries = 0; sfd < 0 && tries < 1000; tries++) {
        struct pollfd pl = {.fd = g->lfd, .events = POLLIN};
        poll(&pl, 1, 10);
        sfd = accept(g->lfd, (struct sockaddr *)&peer, &plen);
    }
    if (sfd < 0)
        fz_fail("harness: accept: %s", strerror(errno));
    struct pollfd pc = {.fd = cfd, .events = POLLOUT};
    int err = 0;
    socklen_t elen = sizeof err;
    for (int tries = 0; tries < 1000 && poll(&pc, 1, 10) < 1; tries++)
        ;
    if (getsockopt(cfd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
        fz_fail("harness: client connect: %s", strerror(err));
    atomic_fetch_add(&g->rt.connections, 1);
    if (!pc_conn_accept(&g->w->loop, sfd, (struct sockaddr *)&peer, plen, NULL, 0))
        abort();
    return cfd;
}

/* Idle pooled upstream connections of the first upstream's first target. */
static inline unsigned fz_gw_pool_idle(fz_gw *g)
{
    unsigned active = 0, idle = 0;
    const pc_target *t = &g->rt.cfg->upstreams[0].targets[0];
    pc_pools_counts(g->w->loop.pools, t->pool_key, &active, &idle);
    return idle;
}

/* ---- the scripted upstream ------------------------------------------ */

typedef struct fz_upconn {
    int fd;         /* -1 once closed */
    int id;         /* accept order within the current input */
    fz_buf in;      /* everything received */
    size_t used;    /* bytes of `in` consumed as complete requests */
    fz_buf out;     /* queued answer */
    size_t outoff;
    size_t piece;   /* at most this many bytes written per round (0: all) */
    int close_when_written;
    int eof;        /* the gateway closed its end */
    void *state;    /* the target's */
} fz_upconn;

typedef struct fz_up fz_up;
/* Called after new bytes (or EOF) arrived on c. */
typedef void (*fz_up_cb)(fz_up *u, fz_upconn *c, void *ctx);

struct fz_up {
    int lfd, port;
    fz_upconn **c;
    size_t n, cap;
    fz_up_cb on_input;
    void *ctx;
};

static inline void fz_up_init(fz_up *u, fz_up_cb cb, void *ctx)
{
    memset(u, 0, sizeof *u);
    u->lfd = fz_listen(&u->port);
    u->on_input = cb;
    u->ctx = ctx;
}

static inline void fz_upconn_close(fz_upconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Forgets every connection of the previous input (closing those still
 * open). */
static inline void fz_up_reset(fz_up *u)
{
    for (size_t i = 0; i < u->n; i++) {
        fz_upconn_close(u->c[i]);
        free(u->c[i]->in.p);
        free(u->c[i]->out.p);
        free(u->c[i]->state);
        free(u->c[i]);
    }
    u->n = 0;
}

static inline void fz_up_send(fz_upconn *c, const void *p, size_t n)
{
    fz_buf_add(&c->out, p, n);
}

/* Serves the upstream once; returns 1 when anything moved. */
static inline int fz_up_pump(fz_up *u)
{
    int moved = 0;
    for (;;) {
        int fd = accept(u->lfd, NULL, NULL);
        if (fd < 0)
            break;
        fz_nonblock(fd);
        if (u->n == u->cap) {
            u->cap = u->cap ? u->cap * 2 : 8;
            u->c = realloc(u->c, u->cap * sizeof *u->c);
            if (!u->c)
                abort();
        }
        fz_upconn *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->fd = fd;
        c->id = (int)u->n;
        u->c[u->n++] = c;
        moved = 1;
    }
    for (size_t i = 0; i < u->n; i++) {
        fz_upconn *c = u->c[i];
        if (c->fd < 0)
            continue;
        unsigned char buf[16384];
        int got = 0;
        for (;;) {
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r > 0) {
                fz_buf_add(&c->in, buf, (size_t)r);
                got = 1;
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR))
                c->eof = 1;
            break;
        }
        if (got || c->eof) {
            moved = 1;
            u->on_input(u, c, u->ctx);
        }
        if (c->fd >= 0 && c->outoff < c->out.len) {
            size_t n = c->out.len - c->outoff;
            if (c->piece && n > c->piece)
                n = c->piece;
            ssize_t w = send(c->fd, c->out.p + c->outoff, n, MSG_NOSIGNAL);
            if (w > 0) {
                c->outoff += (size_t)w;
                moved = 1;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                c->outoff = c->out.len; /* the gateway is gone */
            }
        }
        if (c->fd >= 0 && (c->eof || (c->close_when_written &&
                                      c->outoff == c->out.len))) {
            fz_upconn_close(c);
            moved = 1;
        }
    }
    return moved;
}

/* Closes every upstream connection still open; 1 when there was one. */
static inline int fz_up_close_all(fz_up *u)
{
    int any = 0;
    for (size_t i = 0; i < u->n; i++)
        if (u->c[i]->fd >= 0) {
            fz_upconn_close(u->c[i]);
            any = 1;
        }
    return any;
}

/* ---- the client -------------------------------------------------------- */

typedef struct fz_client {
    int fd;
    fz_buf got;   /* everything the gateway sent */
    int eof;      /* the gateway closed (or reset) */
} fz_client;

static inline int fz_client_read(fz_client *cl)
{
    int moved = 0;
    unsigned char buf[16384];
    while (cl->fd >= 0 && !cl->eof) {
        ssize_t r = read(cl->fd, buf, sizeof buf);
        if (r > 0) {
            fz_buf_add(&cl->got, buf, (size_t)r);
            moved = 1;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            cl->eof = 1;
            moved = 1;
        }
        break;
    }
    return moved;
}

/* Writes all of p (pumping while the socket is full); 0, or -1 when the
 * gateway closed first. */
static inline int fz_client_write(fz_client *cl, fz_gw *g, fz_up *u,
                                  const unsigned char *p, size_t n)
{
    size_t off = 0;
    int stuck = 0;
    while (off < n) {
        ssize_t w = send(cl->fd, p + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            stuck = 0;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        } else if (++stuck > 10000) {
            return -1; /* the gateway stopped reading for good */
        }
        event_base_loop(g->w->loop.base, EVLOOP_NONBLOCK);
        fz_up_pump(u);
        fz_client_read(cl);
    }
    return 0;
}

/* One round of everything; 1 when anything moved. */
static inline int fz_round(fz_gw *g, fz_up *u, fz_client *cl)
{
    long before = g->w->loop.nconns;
    event_base_loop(g->w->loop.base, EVLOOP_NONBLOCK);
    int moved = fz_up_pump(u);
    moved |= fz_client_read(cl);
    return moved || g->w->loop.nconns != before;
}

/* Rounds until FZ_QUIET_ROUNDS in a row moved nothing (and, with
 * until_closed, the gateway has no client connection left), at most
 * max_rounds; returns 1 when it got there. */
static inline int fz_settle(fz_gw *g, fz_up *u, fz_client *cl, int until_closed,
                            int max_rounds)
{
    int idle = 0;
    for (int r = 0; r < max_rounds; r++) {
        idle = fz_round(g, u, cl) ? 0 : idle + 1;
        if (idle >= FZ_QUIET_ROUNDS && (!until_closed || g->w->loop.nconns == 0))
            return 1;
    }
    return 0;
}

/* End of an input: no client connection may survive, and the pooled
 * upstream connections go too (the upstream closes them), so the next
 * input starts from the same state. */
static inline void fz_teardown(fz_gw *g, fz_up *u, fz_client *cl)
{
    while (g->w->loop.conns)
        pc_conn_close_now(g->w->loop.conns);
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
    fz_up_close_all(u);
    for (int r = 0; r < 1000 && fz_gw_pool_idle(g) > 0; r++) {
        event_base_loop(g->w->loop.base, EVLOOP_NONBLOCK);
        fz_up_pump(u);
    }
    if (fz_gw_pool_idle(g) > 0)
        fz_fail("an idle pooled upstream connection survived its upstream's close");
    fz_up_reset(u);
    free(cl->got.p);
    memset(&cl->got, 0, sizeof cl->got);
    cl->eof = 0;
}

/* FUZZ_HTTP_PRINT=1: both targets print both sides of each input. */
static int fz_printing(void)
{
    static int p = -1;
    if (p < 0)
        p = getenv("FUZZ_HTTP_PRINT") != NULL;
    return p;
}

static void fz_dump(const char *what, const unsigned char *p, size_t n)
{
    fprintf(stderr, "---- %s (%zu bytes)\n", what, n);
    fwrite(p, 1, n, stderr);
    fprintf(stderr, "\n");
}

#endif
