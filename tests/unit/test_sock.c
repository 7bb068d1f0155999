/* test_sock.c: pc_sock (net/sock.c) reading TLS peers that write records
 * smaller than 16 KiB. SSL_read returns one record at a time and OpenSSL
 * tops a partial record up by reading exactly the bytes it misses, so a
 * short SSL_read does not mean the kernel is drained: with edge-triggered
 * readiness, records left there raise no new event. A blocking OpenSSL
 * peer in a thread writes its records in one burst (all of them waiting in
 * the kernel before pc_sock reads) and keeps the connection open (a FIN
 * would be an edge of its own); every byte must arrive, on both the
 * accepting side (a client's body) and the connecting side (an https
 * upstream's response). Also checked: a plain socket read past the
 * fairness bound with no read high watermark gets everything, and the send
 * timeout is measured on progress (a trickling reader times out). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portcullis/sock.h"

#define TOTAL (96 * 1024)

static EVP_PKEY *key;
static X509 *cert;

static void make_cert(void)
{
    key = EVP_EC_gen("P-256");
    cr_assert_not_null(key);
    cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)"sock.test", -1, -1, 0);
    X509_set_issuer_name(cert, n);
    cr_assert(X509_sign(cert, key, EVP_sha256()) > 0);
}

/* Contexts set up as src/net/tls.c sets the gateway's (read-ahead on,
 * buffers released), for both ends. */
static SSL_CTX *ctx_new(int server)
{
    SSL_CTX *c =
        SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    cr_assert_not_null(c);
    if (server) {
        cr_assert_eq(SSL_CTX_use_certificate(c, cert), 1);
        cr_assert_eq(SSL_CTX_use_PrivateKey(c, key), 1);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(c, 1);
    return c;
}

static int listener(struct sockaddr_in *sa)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *sa;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(l, (struct sockaddr *)sa, sizeof *sa), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)sa, &len), 0);
    return l;
}

/* The blocking peer: handshake, TOTAL bytes in `record`-byte SSL_writes
 * (one record each), then wait for pc_sock's side to close. */
typedef struct peer {
    int fd; /* connected socket, or -1: accept on lfd */
    int lfd;
    int server; /* TLS server side */
    size_t record;
    atomic_int written;
    pthread_t th;
} peer;

static void *peer_run(void *arg)
{
    peer *p = arg;
    int fd = p->fd >= 0 ? p->fd : accept(p->lfd, NULL, NULL);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL_CTX *ctx = ctx_new(p->server);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int ok = (p->server ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
    static unsigned char buf[16384];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 13);
    for (size_t off = 0; ok && off < TOTAL; off += p->record) {
        size_t n = TOTAL - off < p->record ? TOTAL - off : p->record;
        ok = SSL_write(ssl, buf, (int)n) == (int)n;
    }
    atomic_store(&p->written, ok ? 1 : -1);
    char c;
    while (ok && SSL_read(ssl, &c, 1) > 0) /* until the other side closes */
        ;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
}

typedef struct reader {
    struct event_base *base;
    pc_sock *s;
    peer *p;
    size_t got;
    int events;
    struct event *poll;
} reader;

static void on_read(pc_sock *s, void *arg)
{
    reader *r = arg;
    struct evbuffer *in = pc_sock_input(s);
    r->got += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (r->got >= TOTAL)
        event_base_loopbreak(r->base);
}

static void on_event(pc_sock *s, short what, void *arg)
{
    reader *r = arg;
    (void)s;
    if (!(what & PC_SOCK_CONNECTED)) {
        r->events |= what;
        event_base_loopbreak(r->base);
    }
}

/* Starts reading only once the peer has written everything: then all its
 * records wait in the kernel, the case that stalled. */
static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    reader *r = arg;
    (void)fd;
    (void)what;
    if (atomic_load(&r->p->written) != 0) {
        pc_sock_read(r->s, 1);
        return;
    }
    struct timeval tv = {0, 5000};
    evtimer_add(r->poll, &tv);
}

/* Runs the loop until TOTAL bytes were read, an event, or 3 s. */
static void run(reader *r)
{
    pc_sock_setcb(r->s, on_read, NULL, on_event, r);
    pc_sock_read(r->s, 0);
    r->poll = evtimer_new(r->base, poll_cb, r);
    struct timeval tv = {0, 5000}, limit = {3, 0};
    evtimer_add(r->poll, &tv);
    event_base_loopexit(r->base, &limit);
    event_base_dispatch(r->base);
    event_free(r->poll);
}

static void finish(reader *r, pc_sock_loop *l, SSL_CTX *ctx)
{
    pc_sock_free(r->s); /* the peer sees EOF and ends */
    pthread_join(r->p->th, NULL);
    pc_sock_loop_free(l);
    event_base_free(r->base);
    SSL_CTX_free(ctx);
    cr_assert_eq(atomic_load(&r->p->written), 1, "the peer failed");
    cr_assert_eq(r->events, 0, "socket event 0x%x", (unsigned)r->events);
    cr_assert_eq(r->got, TOTAL, "%zu of %d bytes read (%zu-byte records)",
                 r->got, TOTAL, r->p->record);
}

/* The accepting side (a TLS client of the gateway writing its body). */
static void accept_side(size_t record)
{
    make_cert();
    struct sockaddr_in sa;
    int l = listener(&sa);
    peer p = {.fd = socket(AF_INET, SOCK_STREAM, 0),
              .lfd = -1,
              .server = 0,
              .record = record};
    cr_assert_eq(connect(p.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int fd = accept(l, NULL, NULL);
    close(l);
    reader r = {.base = event_base_new(), .p = &p};
    pc_sock_loop *lp = pc_sock_loop_new(r.base);
    SSL_CTX *ctx = ctx_new(1);
    r.s = pc_sock_accept(lp, fd, SSL_new(ctx));
    cr_assert_not_null(r.s);
    pthread_create(&p.th, NULL, peer_run, &p);
    run(&r);
    finish(&r, lp, ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* The connecting side (the gateway reading an https upstream). */
static void connect_side(size_t record)
{
    make_cert();
    struct sockaddr_in sa;
    int l = listener(&sa);
    peer p = {.fd = -1, .lfd = l, .server = 1, .record = record};
    pthread_create(&p.th, NULL, peer_run, &p);
    reader r = {.base = event_base_new(), .p = &p};
    pc_sock_loop *lp = pc_sock_loop_new(r.base);
    SSL_CTX *ctx = ctx_new(0);
    r.s = pc_sock_connect(lp, (struct sockaddr *)&sa, sizeof sa, SSL_new(ctx));
    cr_assert_not_null(r.s);
    pc_sock_set_timeouts(r.s, 0, 3000);
    run(&r);
    finish(&r, lp, ctx);
    close(l);
    X509_free(cert);
    EVP_PKEY_free(key);
}

Test(sock_tls, accept_side_8k_records)
{
    accept_side(8192);
}
Test(sock_tls, accept_side_1k_records)
{
    accept_side(1024);
}
Test(sock_tls, accept_side_100_byte_records)
{
    accept_side(100);
}
Test(sock_tls, connect_side_8000_byte_records)
{
    connect_side(8000);
}
Test(sock_tls, connect_side_100_byte_records)
{
    connect_side(100);
}

/* Plain socket, no read high watermark: 4 MiB written at once are read
 * through the per-round burst and round bounds (requeued, never
 * forgotten). */
typedef struct plain_writer {
    int fd;
    pthread_t th;
} plain_writer;

#define PLAIN_TOTAL (4 * 1024 * 1024)

static void *plain_run(void *arg)
{
    plain_writer *w = arg;
    static char buf[65536];
    memset(buf, 'p', sizeof buf);
    for (size_t off = 0; off < PLAIN_TOTAL; off += sizeof buf)
        if (write(w->fd, buf, sizeof buf) != (ssize_t)sizeof buf)
            break;
    char c;
    while (read(w->fd, &c, 1) > 0)
        ;
    close(w->fd);
    return NULL;
}

typedef struct plain_reader {
    struct event_base *base;
    size_t got;
    unsigned calls;
} plain_reader;

static void plain_read(pc_sock *s, void *arg)
{
    plain_reader *r = arg;
    struct evbuffer *in = pc_sock_input(s);
    r->got += evbuffer_get_length(in);
    r->calls++;
    evbuffer_drain(in, evbuffer_get_length(in));
    if (r->got >= PLAIN_TOTAL)
        event_base_loopbreak(r->base);
}

Test(sock_plain, no_watermark_reads_everything)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    plain_writer w = {.fd = sv[1]};
    plain_reader r = {.base = event_base_new()};
    pc_sock_loop *lp = pc_sock_loop_new(r.base);
    pc_sock *s = pc_sock_accept(lp, sv[0], NULL);
    cr_assert_not_null(s);
    pc_sock_setcb(s, plain_read, NULL, NULL, &r);
    pthread_create(&w.th, NULL, plain_run, &w);
    struct timeval limit = {5, 0};
    event_base_loopexit(r.base, &limit);
    event_base_dispatch(r.base);
    pc_sock_free(s);
    pthread_join(w.th, NULL);
    pc_sock_loop_free(lp);
    event_base_free(r.base);
    cr_assert_eq(r.got, PLAIN_TOTAL, "%zu of %d bytes", r.got, PLAIN_TOTAL);
}

/* The send timeout is measured on progress: the peer must take 16 KiB per
 * write timeout (or everything queued), so one that reads a little now and
 * then times out although every read lets a small write through; one that
 * reads steadily, however slowly its single reads go, does not. The pc_sock
 * side has a small send buffer, so its writes follow the peer's reads. */
typedef struct trickle {
    int fd;
    size_t per_read;
    unsigned gap_ms;
    atomic_int stop;
    size_t got;
    pthread_t th;
} trickle;

static void *trickle_run(void *arg)
{
    trickle *t = arg;
    char buf[65536];
    while (!atomic_load(&t->stop)) {
        ssize_t n = read(t->fd, buf, t->per_read);
        if (n <= 0)
            break;
        t->got += (size_t)n;
        usleep(t->gap_ms * 1000);
    }
    return NULL;
}

typedef struct send_result {
    struct event_base *base;
    short what;
} send_result;

static void send_event(pc_sock *s, short what, void *arg)
{
    send_result *r = arg;
    (void)s;
    r->what = what;
    event_base_loopbreak(r->base);
}

/* Queues 1 MiB to a peer reading per_read bytes every gap_ms; returns the
 * event seen within `seconds` (0: none). */
static short send_to_reader(size_t per_read, unsigned gap_ms, double seconds,
                            size_t *got)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    cr_assert_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    trickle t = {.fd = sv[1], .per_read = per_read, .gap_ms = gap_ms};
    send_result r = {.base = event_base_new()};
    pc_sock_loop *lp = pc_sock_loop_new(r.base);
    pc_sock *s = pc_sock_accept(lp, sv[0], NULL);
    cr_assert_not_null(s);
    pc_sock_setcb(s, NULL, NULL, send_event, &r);
    pc_sock_set_timeouts(s, 0, 500);
    static char block[1 << 20];
    evbuffer_add(pc_sock_output(s), block, sizeof block);
    pthread_create(&t.th, NULL, trickle_run, &t);
    struct timeval limit = {(time_t)seconds,
                            (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    event_base_loopexit(r.base, &limit);
    event_base_dispatch(r.base);
    pc_sock_free(s);
    atomic_store(&t.stop, 1);
    pthread_join(t.th, NULL);
    close(sv[1]);
    pc_sock_loop_free(lp);
    event_base_free(r.base);
    *got = t.got;
    return r.what;
}

Test(sock_send, trickling_reader_times_out)
{
    size_t got;
    /* 4 KiB every 200 ms: 10 KiB per 500 ms timeout, under 16 KiB, each
     * read letting a write through well within the timeout */
    short what = send_to_reader(4096, 200, 4.0, &got);
    cr_assert_eq(what, PC_SOCK_TIMEOUT | PC_SOCK_WRITING,
                 "event %#x after the peer took %zu bytes", (unsigned)what, got);
    cr_assert_lt(got, 64 * 1024, "%zu", got);
}

Test(sock_send, steady_reader_does_not_time_out)
{
    size_t got;
    /* 2 KiB every 10 ms (about 200 KiB/s in small reads) */
    short what = send_to_reader(2048, 10, 2.0, &got);
    cr_assert_eq(what, 0, "event %#x after the peer took %zu bytes",
                 (unsigned)what, got);
    cr_assert_gt(got, 128 * 1024, "%zu", got);
}

/* One flush with more sockets than one send batch holds (64): all of a
 * loop turn's writes are queued before the flush runs, so the batch is
 * submitted in several pieces, and every peer must get its own bytes,
 * whole and in order (three chains per socket: three iovecs in one send).
 * The same with batching off (PORTCULLIS_NO_URING: one send per socket). */
#define MANY 150

static void many_sockets_one_flush(void)
{
    struct event_base *base = event_base_new();
    pc_sock_loop *lp = pc_sock_loop_new(base);
    pc_sock *s[MANY];
    int pfd[MANY];
    for (int i = 0; i < MANY; i++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        s[i] = pc_sock_accept(lp, sv[0], NULL);
        cr_assert_not_null(s[i]);
        pfd[i] = sv[1];
        cr_assert_eq(fcntl(pfd[i], F_SETFL, O_NONBLOCK), 0);
    }
    /* first turn: the sockets learn they are writable */
    for (int k = 0; k < 5; k++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    static const char mid[] = "-middle-";
    for (int i = 0; i < MANY; i++) {
        struct evbuffer *out = pc_sock_output(s[i]);
        evbuffer_add_printf(out, "head of %d", i);
        evbuffer_add_reference(out, mid, sizeof mid - 1, NULL, NULL);
        evbuffer_add_printf(out, "tail of %d\n", i);
    }
    for (int k = 0; k < 5; k++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    for (int i = 0; i < MANY; i++) {
        char want[64], got[128];
        int wl = snprintf(want, sizeof want, "head of %d-middle-tail of %d\n", i, i);
        ssize_t n = read(pfd[i], got, sizeof got);
        cr_assert_eq(n, wl, "socket %d: %zd bytes", i, n);
        cr_assert_eq(memcmp(got, want, (size_t)wl), 0, "socket %d", i);
        cr_assert_eq(pc_sock_pending(s[i]), 0);
        pc_sock_free(s[i]);
        close(pfd[i]);
    }
    pc_sock_loop_free(lp);
    event_base_free(base);
}

Test(sock_send, more_sockets_than_one_batch_holds)
{
    unsetenv("PORTCULLIS_NO_URING");
    many_sockets_one_flush();
}

Test(sock_send, more_sockets_one_send_each_without_batching)
{
    setenv("PORTCULLIS_NO_URING", "1", 1);
    many_sockets_one_flush();
}
