/* sock.c: non-blocking plain/TLS stream sockets for the event loops (see
 * sock.h for why and for the callback contract). Owns the descriptor, the
 * SSL object, both evbuffers and the two embedded events; never parses a
 * byte of what it carries.
 *
 * DESIGN:
 *   epoll (ET, registered once) ─► io_cb ─► read loop ─► read_cb
 *                                      └─► write (writev / SSL_write)
 *   evbuffer_add(output) ─► out_cb ─► loop queue ─► flush event (same loop
 *                                     iteration, after current callbacks)
 *   timer: armed lazily at the earliest deadline; when it fires it checks
 *   the activity marks and re-arms instead of being moved on every I/O.
 *   The marks come from the coarse clock (pc_now_mark_ns: an upper bound
 *   of now, a few ns instead of a clock-source read on every read and
 *   write); the timer compares them with the precise clock, so a timeout
 *   never fires early, at most one tick late.
 * Freeing inside a callback only marks the socket dead; the struct is
 * released when the outermost dispatch frame (or the queue) lets go. */
#include "portcullis/sock.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portcullis/errlog.h"
#include "portcullis/sendbatch.h"
#include "portcullis/util.h"

#define READ_CHUNK 16384 /* asked of evbuffer_reserve_space */
/* A read takes all the space the reserved chain has, up to this: libevent
 * rounds a chain up to a power of two, so a 16 KiB reservation comes with
 * about 32 KiB of room, and a 16 KiB body behind its head arrives in one
 * read(2) instead of two. */
#define READ_MAX 32768
#define TLS_RECORD 16384
/* TLS: plaintext encrypted ahead of one send(2): a 16 KiB body and its
 * head are two records, sent together. */
#define TLS_FILL 65536
#define MAX_ROUNDS 8
#define READ_BURST 16 /* reads per round: 512 KiB at most */
/* The send timeout is measured on progress, not on any byte: the write
 * deadline moves only when the peer has taken SEND_PROGRESS bytes since it
 * last moved, or everything queued. A client that reads a byte now and
 * then cannot hold a connection (and its buffered response) forever: it
 * must take at least SEND_PROGRESS bytes per write timeout. */
#define SEND_PROGRESS 16384

/* The sends of one flush (plain bytes, TLS records) go to the kernel
 * together (see sendbatch.h), up to this many per system call. */
#define BATCH_MAX 64

struct pc_sock_loop {
    struct event_base *base;
    struct event *ev;
    pc_sock *head, *tail;
    int active;
    pc_sendbatch *batch; /* NULL: one send(2) per socket */
    pc_sock *bsock[BATCH_MAX];
    ssize_t bres[BATCH_MAX];
};

struct pc_sock {
    pc_sock_loop *loop;
    int fd;
    SSL *ssl;
    struct event io, timer;
    struct evbuffer *in, *out;
    /* TLS: OpenSSL writes records here (a memory BIO, see wbio_write), and
     * the loop sends them, so that TLS sockets join the send batch. */
    struct evbuffer *tls_out;
    pc_sock_data_cb rcb, wcb;
    pc_sock_event_cb ecb;
    void *arg;
    size_t rhwm, wlwm;
    uint64_t rto, wto;     /* ns; 0 = none */
    uint64_t rmark, wmark; /* ns of the last progress */
    size_t wsent;          /* bytes written since wmark moved */
    uint64_t timer_at;     /* ns; 0 = not pending */
    int in_cb;
    int pending_errno;
    pc_sock *qnext;
    unsigned reading : 1, readable : 1, writable : 1, connecting : 1,
        handshaking : 1, eof : 1, dead : 1, queued : 1, want_flush : 1,
        want_rcb : 1, want_wcb : 1, want_err : 1, read_wants_write : 1,
        write_wants_read : 1, write_retry : 1, rdhup : 1,
        tls_short : 1,  /* the last read(2) under SSL_read was short */
        batch_seen : 1, /* looked at by the current send batch */
        batch_wrote : 1; /* the batch sent bytes do_write has not seen */
};

static void do_write(pc_sock *s);
static void arm(pc_sock *s);
static void enqueue(pc_sock *s);

/* Bytes accepted for sending and not yet taken by the kernel: plaintext
 * not yet encrypted plus records not yet sent. */
static size_t queued(const pc_sock *s)
{
    return evbuffer_get_length(s->out) +
           (s->tls_out ? evbuffer_get_length(s->tls_out) : 0);
}

/* An SSL call that is not SSL_write may still have produced records (a
 * handshake flight, a session ticket, a KeyUpdate answer, an alert): they
 * go out with the loop's flush. */
static void tls_schedule(pc_sock *s)
{
    if (s->tls_out && evbuffer_get_length(s->tls_out) > 0 && !s->dead) {
        s->want_flush = 1;
        enqueue(s);
    }
}

/* Counts written bytes against the send-progress rule above. */
static void sent(size_t n, pc_sock *s)
{
    s->wsent += n;
    if (s->wsent >= SEND_PROGRESS || queued(s) == 0) {
        s->wmark = pc_now_mark_ns();
        s->wsent = 0;
    }
}

static void release(pc_sock *s)
{
    if (s->dead && s->in_cb == 0 && !s->queued)
        free(s);
}

static void enqueue(pc_sock *s)
{
    pc_sock_loop *l = s->loop;
    if (s->dead || s->queued)
        return;
    s->queued = 1;
    s->qnext = NULL;
    if (l->tail)
        l->tail->qnext = s;
    else
        l->head = s;
    l->tail = s;
    if (!l->active) {
        l->active = 1;
        event_active(l->ev, EV_WRITE, 0);
    }
}

static void emit(pc_sock *s, short what)
{
    if (!s->dead && s->ecb)
        s->ecb(s, what, s->arg);
}

/* One read into reserved input space: plain read(2) or SSL_read. Returns
 * the byte count (> 0), or 0 when reading must stop for now; then it has
 * set readable = 0 (EAGAIN, SSL_ERROR_WANT_READ), read_wants_write, eof,
 * or *err. */
static ssize_t read_once(pc_sock *s, void *buf, size_t want, int *err)
{
    if (!s->ssl) {
        ssize_t n = read(s->fd, buf, want);
        if (n > 0)
            return n;
        if (n == 0)
            s->eof = 1;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            s->readable = 0;
        else if (errno != EINTR)
            *err = 1;
        return 0;
    }
    ERR_clear_error();
    s->tls_short = 0; /* set by bio_cb if this SSL_read reads the kernel */
    int r = SSL_read(s->ssl, buf, (int)want);
    tls_schedule(s);
    if (r > 0)
        return r;
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        s->readable = 0; /* the kernel said EAGAIN: a new edge will come */
    } else if (e == SSL_ERROR_WANT_WRITE) {
        s->read_wants_write = 1; /* readable stays set: go on at EV_WRITE */
        s->writable = 0;
    } else if (e == SSL_ERROR_ZERO_RETURN ||
               (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
                (errno == 0 || errno == ECONNRESET))) {
        s->eof = 1;
    } else {
        *err = 1;
    }
    return 0;
}

/* Reads what the kernel (or OpenSSL) has, up to the high watermark, then
 * hands it to read_cb; repeats while the callback makes room.
 *
 * When may a read stop without losing data? Readiness is edge-triggered:
 * bytes already in the kernel raise no new edge, so `readable` is cleared
 * only when the kernel said so. On a plain socket a short read(2) says so
 * (the receive queue was drained; the next arrival raises an edge). On TLS
 * it never does: SSL_read returns one record at a time, and OpenSSL tops a
 * partial record up by reading exactly the bytes it misses, so a short
 * SSL_read with nothing buffered still leaves whole records in the kernel
 * (a peer writing 8 KiB records stalled after the third one). TLS reads go
 * on until SSL_ERROR_WANT_READ. Stopping for fairness (READ_BURST reads
 * per round, MAX_ROUNDS rounds) or at the high watermark keeps `readable`
 * set: the socket is requeued, or resumed when the callback made room. */
static void do_read(pc_sock *s, int force)
{
    for (int round = 0; round < MAX_ROUNDS && !s->dead; round++) {
        int got = 0, err = 0, burst = 0, tried = 0;
        while (s->reading && s->readable && !s->eof && !s->read_wants_write &&
               burst < READ_BURST &&
               (!s->rhwm || evbuffer_get_length(s->in) < s->rhwm)) {
            struct evbuffer_iovec v;
            if (evbuffer_reserve_space(s->in, READ_CHUNK, &v, 1) < 1)
                break;
            size_t want = v.iov_len > READ_MAX ? READ_MAX : v.iov_len;
            ssize_t n = read_once(s, v.iov_base, want, &err);
            tried = 1;
            if (n <= 0) {
                evbuffer_commit_space(s->in, &v, 0);
                break;
            }
            v.iov_len = (size_t)n;
            evbuffer_commit_space(s->in, &v, 1);
            got = 1;
            burst++;
            s->rmark = pc_now_mark_ns();
            int drained = s->ssl ? s->tls_short && !SSL_has_pending(s->ssl)
                                 : (size_t)n < want;
            if (drained && !s->rdhup) {
                /* A short read(2) drained the socket: the next arrival
                 * raises a new edge, so skip the read that would say
                 * EAGAIN. Not once the peer's FIN is in (EV_CLOSED): it
                 * raises no further edge, so read on to the 0. On TLS a
                 * short SSL_read proves nothing (see above): only the
                 * read(2) OpenSSL made during this SSL_read, seen by
                 * bio_cb, and only when it was short and OpenSSL holds
                 * no byte it has not returned (read-ahead asks the kernel
                 * for all its buffer can take). */
                s->readable = 0;
            }
        }
        if (tried && s->write_wants_read) {
            /* SSL_write waited for bytes that SSL_read may just have
             * consumed: try the write again from the loop. */
            s->write_wants_read = 0;
            s->write_retry = 1;
            s->want_flush = 1;
            enqueue(s);
        }
        if ((got || force) && s->rcb)
            s->rcb(s, s->arg);
        force = 0;
        if (s->dead)
            return;
        if (err) {
            s->reading = 0;
            emit(s, PC_SOCK_ERROR | PC_SOCK_READING);
            return;
        }
        if (s->eof && s->reading) {
            s->reading = 0;
            emit(s, PC_SOCK_EOF | PC_SOCK_READING);
            return;
        }
        /* Go on while the kernel may hold more and there is room again,
         * even when this round read nothing (the input sat at the high
         * watermark until the callback drained it): with edge-triggered
         * readiness no new edge would come for bytes already waiting. */
        if (!s->reading || !s->readable || s->read_wants_write ||
            (s->rhwm && evbuffer_get_length(s->in) >= s->rhwm))
            return;
    }
    if (!s->dead && s->reading && s->readable && !s->read_wants_write) {
        s->want_rcb = 1; /* fairness: let other sockets run */
        enqueue(s);
    }
}

/* Sends b (the plaintext of a plain socket, or the records OpenSSL
 * produced) until it is empty or the kernel says EAGAIN. evbuffer_write
 * hands at most 128 chains to one writev, so a short count does not prove
 * the send buffer is full. 1: all sent; 0: EAGAIN (writable cleared);
 * -1: error (errno). *n counts the bytes sent. */
static int send_buf(pc_sock *s, struct evbuffer *b, size_t *n)
{
    while (evbuffer_get_length(b) > 0) {
        int k = evbuffer_write(b, s->fd);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                s->writable = 0;
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        *n += (size_t)k;
        sent((size_t)k, s);
    }
    return 1;
}

/* Encrypts queued plaintext into records, one TLS record of up to 16 KiB
 * per SSL_write (a response head and a small body share one), until
 * TLS_FILL bytes of records wait or the plaintext is gone. With the
 * memory BIO SSL_write never waits for the socket; it may wait for the
 * peer (SSL_ERROR_WANT_READ: write_wants_read). -1 on a TLS error. */
static int tls_encrypt(pc_sock *s)
{
    while (evbuffer_get_length(s->out) > 0 && !s->write_wants_read &&
           evbuffer_get_length(s->tls_out) < TLS_FILL) {
        size_t chunk = evbuffer_get_length(s->out);
        if (chunk > TLS_RECORD)
            chunk = TLS_RECORD;
        unsigned char *p = evbuffer_pullup(s->out, (ssize_t)chunk);
        if (!p)
            return -1;
        ERR_clear_error();
        int r = SSL_write(s->ssl, p, (int)chunk);
        if (r <= 0) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                s->write_wants_read = 1;
                return 0;
            }
            if (e == SSL_ERROR_WANT_WRITE)
                return 0; /* not from the memory BIO; retried at flush */
            return -1;
        }
        evbuffer_drain(s->out, (size_t)r);
    }
    return 0;
}

static void do_write(pc_sock *s)
{
    int wrote = s->batch_wrote;
    s->batch_wrote = 0;
    if (s->connecting || s->handshaking || s->fd < 0)
        return;
    /* TLS: records first (they are older than any plaintext), then more
     * plaintext once they are gone. */
    for (;;) {
        size_t n = 0;
        int r = send_buf(s, s->ssl ? s->tls_out : s->out, &n);
        if (n > 0)
            wrote = 1;
        if (r < 0) {
            emit(s, PC_SOCK_ERROR | PC_SOCK_WRITING);
            return;
        }
        if (!s->ssl || r == 0 || evbuffer_get_length(s->out) == 0 ||
            s->write_wants_read)
            break;
        if (tls_encrypt(s) < 0) {
            emit(s, PC_SOCK_ERROR | PC_SOCK_WRITING);
            return;
        }
        if (evbuffer_get_length(s->tls_out) == 0)
            break; /* SSL_write waits for the peer */
    }
    if (s->write_retry && !s->write_wants_read) {
        /* An SSL_write that had to read got what it waited for and may
         * have taken records behind it from the kernel into OpenSSL's
         * buffer: no edge will announce them. (Wanting to read again, it
         * saw EAGAIN: nothing to look for.) */
        s->readable = 1;
        if (s->reading) {
            s->want_rcb = 1;
            enqueue(s);
        }
    }
    s->write_retry = 0;
    if (wrote && queued(s) <= s->wlwm && s->wcb) {
        s->wcb(s, s->arg);
        if (s->dead)
            return;
    }
    if (queued(s) > 0 && s->wto)
        arm(s);
}

static void connected(pc_sock *s)
{
    s->connecting = 0;
    if (s->ssl) {
        s->handshaking = 1;
        return;
    }
    s->wmark = s->rmark = pc_now_mark_ns();
    emit(s, PC_SOCK_CONNECTED);
}

static void handshake(pc_sock *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    size_t n = 0;
    if (send_buf(s, s->tls_out, &n) < 0) { /* the flight it just wrote */
        emit(s, PC_SOCK_ERROR | PC_SOCK_WRITING);
        return;
    }
    if (r == 1) {
        s->handshaking = 0;
        /* The last step can run on a wake-up without EV_READ (readable
         * still 0 from the previous WANT_READ) and, read-ahead, take from
         * the kernel both the peer's Finished and what follows it at once
         * (a client's first request): those bytes wait in OpenSSL's buffer
         * and no edge will announce them. do_read finds out (one EAGAIN
         * at worst). */
        s->readable = 1;
        s->wmark = s->rmark = pc_now_mark_ns();
        if (!SSL_is_server(s->ssl))
            emit(s, PC_SOCK_CONNECTED);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        s->readable = 0;
    else if (e == SSL_ERROR_WANT_WRITE)
        s->writable = 0;
    else
        emit(s, PC_SOCK_ERROR | (SSL_is_server(s->ssl) ? PC_SOCK_READING
                                                       : PC_SOCK_WRITING));
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_sock *s = arg;
    (void)fd;
    s->in_cb++;
    if (what & EV_READ)
        s->readable = 1;
    if (what & EV_CLOSED)
        s->readable = s->rdhup = 1;
    if (what & EV_WRITE)
        s->writable = 1;
    if (s->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS || err == EALREADY)
            goto out;
        if (err) {
            errno = err;
            emit(s, PC_SOCK_ERROR | PC_SOCK_WRITING);
            goto out;
        }
        connected(s);
    }
    if (!s->dead && s->handshaking && (s->readable || s->writable)) {
        handshake(s);
        if (s->dead || s->handshaking)
            goto out;
    }
    /* TLS crossovers: an SSL_read that had to write goes on once the
     * socket is writable again, an SSL_write that had to read once it is
     * readable (do_read also retries it after any read). */
    if (s->writable && s->read_wants_write)
        s->read_wants_write = 0;
    if (!s->dead && s->writable && queued(s))
        do_write(s);
    if (!s->dead && s->write_wants_read && s->readable) {
        s->write_wants_read = 0;
        s->write_retry = 1;
        do_write(s);
    }
    if (!s->dead && s->reading && s->readable)
        do_read(s, 0);
out:
    s->in_cb--;
    release(s);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_sock *s = arg;
    (void)fd;
    (void)what;
    uint64_t now = pc_now_ns();
    s->timer_at = 0;
    s->in_cb++;
    int busy_write = queued(s) > 0 || s->connecting ||
                     (s->handshaking && s->ssl && !SSL_is_server(s->ssl));
    int read_armed = s->reading &&
                     !(s->rhwm && evbuffer_get_length(s->in) >= s->rhwm);
    if (s->rto && read_armed && now >= s->rmark + s->rto) {
        s->reading = 0;
        emit(s, PC_SOCK_TIMEOUT | PC_SOCK_READING);
    } else if (s->wto && busy_write && now >= s->wmark + s->wto) {
        emit(s, PC_SOCK_TIMEOUT | PC_SOCK_WRITING);
    } else {
        arm(s);
    }
    s->in_cb--;
    release(s);
}

static void arm(pc_sock *s)
{
    uint64_t dl = 0;
    if (s->dead)
        return;
    if (s->rto && s->reading)
        dl = s->rmark + s->rto;
    if (s->wto && (queued(s) > 0 || s->connecting ||
                   s->handshaking)) {
        uint64_t w = s->wmark + s->wto;
        if (!dl || w < dl)
            dl = w;
    }
    if (!dl || (s->timer_at && s->timer_at <= dl))
        return; /* a pending earlier timer re-checks and re-arms */
    uint64_t now = pc_now_ns();
    uint64_t d = dl > now ? dl - now : 0;
    struct timeval tv = {(time_t)(d / 1000000000u),
                         (suseconds_t)((d % 1000000000u) / 1000) + 1};
    s->timer_at = dl;
    event_add(&s->timer, &tv);
}

static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info,
                   void *arg)
{
    pc_sock *s = arg;
    (void)b;
    if (info->n_added == 0)
        return;
    if (info->orig_size == 0) {
        s->wmark = pc_now_mark_ns();
        s->wsent = 0;
        if (s->wto)
            arm(s);
    }
    s->want_flush = 1;
    enqueue(s);
}

/* Applies the results of one send batch: what went out is drained and
 * counted (batch_wrote tells do_write, which runs next for these sockets
 * and does everything else: the rest of a short send, the write callback,
 * the timer); EAGAIN clears writable as a send(2) would; anything else
 * (an error, a send the kernel never saw) is left for do_write to repeat
 * and report itself. */
static void batch_done(pc_sock_loop *l, unsigned n)
{
    if (n == 0)
        return;
    pc_sendbatch_run(l->batch, l->bres);
    for (unsigned i = 0; i < n; i++) {
        pc_sock *s = l->bsock[i];
        ssize_t r = l->bres[i];
        if (r > 0) {
            evbuffer_drain(s->ssl ? s->tls_out : s->out, (size_t)r);
            sent((size_t)r, s);
            s->batch_wrote = 1;
        } else if (r == -EAGAIN || r == -EWOULDBLOCK) {
            s->writable = 0;
        }
    }
    if (!pc_sendbatch_live(l->batch)) {
        pc_log(PC_LOG_WARN, "io_uring refused a send batch: sending one "
                            "socket at a time from now on");
        pc_sendbatch_free(l->batch);
        l->batch = NULL;
    }
}

/* One pass over the queue before any of it is flushed one by one: every
 * socket with output and room goes into the batch (a TLS one with the
 * records of its plaintext). */
static void batch_sends(pc_sock_loop *l)
{
    unsigned n = 0;
    for (pc_sock *s = l->head; s; s = s->qnext) {
        s->batch_seen = 1;
        if (s->dead || !s->want_flush || !s->writable || s->connecting ||
            s->handshaking || s->fd < 0 || s->want_err)
            continue;
        struct evbuffer *q = s->out;
        if (s->ssl) {
            /* Encrypt now (only into memory) so that the records join the
             * batch; a TLS error is left for do_write to meet and report. */
            if (evbuffer_get_length(s->tls_out) == 0 && tls_encrypt(s) < 0)
                continue;
            q = s->tls_out;
        }
        struct evbuffer_iovec v[PC_SENDBATCH_IOV];
        int k = evbuffer_peek(q, -1, NULL, v, PC_SENDBATCH_IOV);
        if (k <= 0)
            continue;
        if (k > PC_SENDBATCH_IOV)
            k = PC_SENDBATCH_IOV;
        struct iovec iov[PC_SENDBATCH_IOV];
        for (int j = 0; j < k; j++) {
            iov[j].iov_base = v[j].iov_base;
            iov[j].iov_len = v[j].iov_len;
        }
        if (n == BATCH_MAX) {
            batch_done(l, n);
            n = 0;
            if (!l->batch)
                return;
        }
        if (pc_sendbatch_add(l->batch, s->fd, iov, k) < 0)
            continue;
        l->bsock[n++] = s;
    }
    batch_done(l, n);
}

static void loop_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_sock_loop *l = arg;
    (void)fd;
    (void)what;
    l->active = 0;
    while (l->head) {
        if (l->batch && !l->head->batch_seen)
            batch_sends(l);
        pc_sock *s = l->head;
        s->batch_seen = 0;
        l->head = s->qnext;
        if (!l->head)
            l->tail = NULL;
        s->queued = 0;
        if (s->dead) {
            release(s);
            continue;
        }
        s->in_cb++;
        if (s->want_err) {
            s->want_err = 0;
            errno = s->pending_errno;
            emit(s, PC_SOCK_ERROR | PC_SOCK_WRITING);
        }
        if (!s->dead && s->want_flush) {
            s->want_flush = 0;
            if (s->writable)
                do_write(s);
        }
        if (!s->dead && s->want_rcb) {
            s->want_rcb = 0;
            do_read(s, 1);
        }
        if (!s->dead && s->want_wcb) {
            s->want_wcb = 0;
            if (s->wcb)
                s->wcb(s, s->arg);
        }
        s->in_cb--;
        release(s);
    }
}

pc_sock_loop *pc_sock_loop_new(struct event_base *base)
{
    pc_sock_loop *l = pc_xcalloc(1, sizeof *l);
    l->base = base;
    l->ev = event_new(base, -1, 0, loop_cb, l);
    const char *why = NULL;
    l->batch = pc_sendbatch_new(BATCH_MAX, &why);
    if (!l->batch)
        pc_log(PC_LOG_INFO, "send batching off (%s): one send(2) per socket",
               why ? why : "io_uring unavailable");
    return l;
}

void pc_sock_loop_free(pc_sock_loop *l)
{
    if (!l)
        return;
    while (l->head) {
        pc_sock *s = l->head;
        l->head = s->qnext;
        s->queued = 0;
        release(s);
    }
    event_free(l->ev);
    pc_sendbatch_free(l->batch);
    free(l);
}

/* Watches the socket BIO's reads (OpenSSL's read(2) calls) so that
 * do_read knows when one of them left the kernel's queue empty. */
static long bio_cb(BIO *b, int oper, const char *argp, size_t len, int argi,
                   long argl, int ret, size_t *processed)
{
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        pc_sock *s = (pc_sock *)(void *)BIO_get_callback_arg(b);
        if (s)
            s->tls_short = ret > 0 && processed && *processed < len;
    }
    return ret;
}

/* The write side of a TLS socket's BIO pair: appends records to
 * tls_out; never a short write, never a retry. */
static int wbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    pc_sock *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!s || !s->tls_out || evbuffer_add(s->tls_out, data, len) != 0)
        return 0;
    *written = len;
    return 1;
}

static long wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *wmeth;

static void wbio_init(void)
{
    int type = BIO_get_new_index();
    wmeth = type > 0 ? BIO_meth_new(type | BIO_TYPE_SOURCE_SINK,
                                    "portcullis records out")
                     : NULL;
    if (!wmeth || BIO_meth_set_write_ex(wmeth, wbio_write) != 1 ||
        BIO_meth_set_ctrl(wmeth, wbio_ctrl) != 1)
        pc_oom("TLS BIO method");
}

static const BIO_METHOD *wbio_method(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, wbio_init);
    return wmeth;
}

static pc_sock *sock_new(pc_sock_loop *l, int fd, SSL *ssl)
{
    pc_sock *s = pc_xcalloc(1, sizeof *s);
    s->loop = l;
    s->fd = fd;
    s->ssl = ssl;
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    evbuffer_add_cb(s->out, out_cb, s);
    s->reading = 1;
    s->rmark = s->wmark = pc_now_mark_ns();
    /* EV_CLOSED (EPOLLRDHUP) tells a FIN that came with the last data apart
     * from data alone. */
    event_assign(&s->io, l->base, fd,
                 EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET, io_cb, s);
    evtimer_assign(&s->timer, l->base, timer_cb, s);
    if (ssl) {
        /* Reads straight from the socket (bio_cb watches them); records
         * written go to tls_out. */
        BIO *rb = BIO_new_socket(fd, BIO_NOCLOSE);
        BIO *wb = BIO_new(wbio_method());
        s->tls_out = evbuffer_new();
        if (!rb || !wb || !s->tls_out)
            pc_oom("TLS socket");
        BIO_set_data(wb, s);
        BIO_set_init(wb, 1);
        BIO_set_callback_arg(rb, (char *)(void *)s);
        BIO_set_callback_ex(rb, bio_cb);
        SSL_set_bio(ssl, rb, wb);
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    return s;
}

pc_sock *pc_sock_accept(pc_sock_loop *l, int fd, SSL *ssl)
{
    evutil_make_socket_nonblocking(fd);
    pc_sock *s = sock_new(l, fd, ssl);
    if (ssl) {
        SSL_set_accept_state(ssl);
        s->handshaking = 1;
    }
    if (event_add(&s->io, NULL) != 0) {
        pc_sock_free(s);
        return NULL;
    }
    return s;
}

pc_sock *pc_sock_connect(pc_sock_loop *l, const struct sockaddr *sa,
                         socklen_t len, SSL *ssl)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pc_sock *s = sock_new(l, fd, ssl);
    if (ssl)
        SSL_set_connect_state(ssl);
    s->connecting = 1;
    if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
        /* Reported from the loop, like any other connect failure. */
        s->pending_errno = errno;
        s->want_err = 1;
        enqueue(s);
        return s;
    }
    if (event_add(&s->io, NULL) != 0) {
        s->pending_errno = errno;
        s->want_err = 1;
        enqueue(s);
    }
    return s;
}

void pc_sock_free(pc_sock *s)
{
    if (!s || s->dead)
        return;
    s->dead = 1;
    event_del(&s->io);
    event_del(&s->timer);
    if (s->ssl) {
        if (!s->handshaking && !s->connecting && !s->eof) {
            SSL_shutdown(s->ssl); /* best effort close_notify */
            if (s->fd >= 0 && evbuffer_get_length(s->tls_out) > 0)
                (void)evbuffer_write(s->tls_out, s->fd);
        }
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->tls_out)
        evbuffer_free(s->tls_out);
    s->tls_out = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    evbuffer_free(s->in);
    evbuffer_free(s->out);
    s->in = s->out = NULL;
    release(s);
}

void pc_sock_setcb(pc_sock *s, pc_sock_data_cb read_cb, pc_sock_data_cb write_cb,
                   pc_sock_event_cb event_cb, void *arg)
{
    s->rcb = read_cb;
    s->wcb = write_cb;
    s->ecb = event_cb;
    s->arg = arg;
}

struct evbuffer *pc_sock_input(pc_sock *s)
{
    return s->in;
}

struct evbuffer *pc_sock_output(pc_sock *s)
{
    return s->out;
}

size_t pc_sock_pending(const pc_sock *s)
{
    return queued(s);
}

int pc_sock_fd(const pc_sock *s)
{
    return s->fd;
}

SSL *pc_sock_ssl(const pc_sock *s)
{
    return s->ssl;
}

int pc_sock_release_tls_buffers(pc_sock *s)
{
    /* SSL_free_buffers refuses (0) while a buffer holds bytes not yet
     * consumed or sent: then the next sweep tries again. OpenSSL allocates
     * them again by itself at the next SSL_read / SSL_write. */
    if (!s->ssl || s->dead || s->handshaking || queued(s) > 0)
        return 0;
    return SSL_free_buffers(s->ssl) == 1;
}

void pc_sock_read(pc_sock *s, int on)
{
    if (s->dead)
        return;
    if (on && !s->reading) {
        s->reading = 1;
        s->rmark = pc_now_mark_ns();
        if (s->rto)
            arm(s);
        if (s->readable || s->eof) {
            s->want_rcb = 1;
            enqueue(s);
        }
    } else if (!on) {
        s->reading = 0;
    }
}

void pc_sock_set_read_hwm(pc_sock *s, size_t hwm)
{
    s->rhwm = hwm;
}

void pc_sock_set_write_lwm(pc_sock *s, size_t lwm)
{
    s->wlwm = lwm;
}

void pc_sock_set_timeouts(pc_sock *s, uint64_t read_ms, uint64_t write_ms)
{
    if (s->dead)
        return;
    s->rto = read_ms * 1000000ull;
    s->wto = write_ms * 1000000ull;
    s->rmark = pc_now_mark_ns();
    if (queued(s) == 0) {
        /* Queued output keeps its progress mark: a new read phase (the
         * next pipelined request) does not excuse a peer that is not
         * reading. */
        s->wmark = s->rmark;
        s->wsent = 0;
    }
    arm(s);
}

void pc_sock_trigger_read(pc_sock *s)
{
    if (s->dead)
        return;
    s->want_rcb = 1;
    enqueue(s);
}

void pc_sock_trigger_write(pc_sock *s)
{
    if (s->dead)
        return;
    s->want_wcb = 1;
    enqueue(s);
}
