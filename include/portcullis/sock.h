/* sock.h: a non-blocking stream socket (plain or TLS) with input and output
 * evbuffers, edge-triggered readiness and lazy timeouts.
 *
 * Why not bufferevent: a bufferevent re-arms epoll (epoll_ctl) every time
 * its output goes from empty to non-empty and back, and sizes every read
 * with ioctl(FIONREAD): four to six extra system calls per proxied request.
 * A pc_sock registers its descriptor once (EV_READ|EV_WRITE|EV_ET), writes
 * as soon as the current batch of callbacks is done, and reads into
 * reserved buffer space directly.
 *
 * The callback contract mirrors bufferevent's so the connection code reads
 * the same way:
 *  - read_cb: new input arrived (or pc_sock_trigger_read was called);
 *  - write_cb: output drained to the low watermark or below after a write
 *    (or pc_sock_trigger_write was called);
 *  - event_cb: PC_SOCK_CONNECTED, or EOF / ERROR / TIMEOUT (with READING or
 *    WRITING saying which direction).
 * Any callback may call pc_sock_free on its own socket: the memory is kept
 * until the dispatch returns.
 *
 * Edge-triggered readiness is never forgotten: a socket stops reading only
 * when the kernel said EAGAIN (a short read(2) on a plain socket; on TLS
 * only SSL_ERROR_WANT_READ, since SSL_read returns one record at a time),
 * a read that stopped at the high watermark or for fairness resumes
 * without waiting for a new edge, and after a TLS handshake (or an
 * SSL_write that had to read) the socket counts as readable, since OpenSSL
 * may hold records it took from the kernel. */
#ifndef PORTCULLIS_SOCK_H
#define PORTCULLIS_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
typedef struct ssl_st SSL;
typedef struct pc_sock pc_sock;
typedef struct pc_sock_loop pc_sock_loop;

enum {
    PC_SOCK_READING = 0x01,
    PC_SOCK_WRITING = 0x02,
    PC_SOCK_EOF = 0x10,
    PC_SOCK_ERROR = 0x20,
    PC_SOCK_TIMEOUT = 0x40,
    PC_SOCK_CONNECTED = 0x80,
};

typedef void (*pc_sock_data_cb)(pc_sock *s, void *arg);
typedef void (*pc_sock_event_cb)(pc_sock *s, short what, void *arg);

/* One per event loop: the queue of sockets to flush at the end of the
 * current batch of callbacks. */
pc_sock_loop *pc_sock_loop_new(struct event_base *base);
void pc_sock_loop_free(pc_sock_loop *l);

/* Wraps an accepted socket (takes ownership of fd; ssl non-NULL for TLS,
 * then the handshake runs as the server side). NULL on failure (fd
 * closed). */
pc_sock *pc_sock_accept(pc_sock_loop *l, int fd, SSL *ssl);
/* Starts a non-blocking connect (ssl non-NULL: TLS client handshake after
 * TCP connect). CONNECTED is reported through event_cb. NULL when the
 * socket cannot even be created (errno set); ssl is freed then. */
pc_sock *pc_sock_connect(pc_sock_loop *l, const struct sockaddr *sa,
                         socklen_t len, SSL *ssl);
/* Closes the descriptor and frees everything (SSL included). */
void pc_sock_free(pc_sock *s);

void pc_sock_setcb(pc_sock *s, pc_sock_data_cb read_cb,
                   pc_sock_data_cb write_cb, pc_sock_event_cb event_cb,
                   void *arg);
struct evbuffer *pc_sock_input(pc_sock *s);
struct evbuffer *pc_sock_output(pc_sock *s);
/* Bytes written to the output and not yet taken by the kernel: the
 * output evbuffer plus, on TLS, records not yet sent. 0 means everything
 * went out (what "all written" must test; the output evbuffer alone can be
 * empty while records still wait). */
size_t pc_sock_pending(const pc_sock *s);
int pc_sock_fd(const pc_sock *s);
SSL *pc_sock_ssl(const pc_sock *s);
/* TLS: frees OpenSSL's record buffers (about 34 KiB) of a connection with
 * nothing buffered either way; 1 when freed. For idle keep-alive
 * connections (front/conn.c's sweep): busy ones keep them, so a request
 * costs no allocation, where SSL_MODE_RELEASE_BUFFERS would allocate and
 * free both buffers on every request. */
int pc_sock_release_tls_buffers(pc_sock *s);

/* Reading on or off (off: nothing is read; data waits in the kernel). */
void pc_sock_read(pc_sock *s, int on);
/* Stop reading while the input holds at least hwm bytes (0: no limit). */
void pc_sock_set_read_hwm(pc_sock *s, size_t hwm);
/* write_cb fires when a write leaves at most lwm bytes queued. */
void pc_sock_set_write_lwm(pc_sock *s, size_t lwm);
/* Inactivity timeouts in ms (0: none): reading enabled and nothing read
 * for read_ms; output pending and nothing written for write_ms. Both
 * clocks restart now. While connecting, write_ms is the connect timeout. */
void pc_sock_set_timeouts(pc_sock *s, uint64_t read_ms, uint64_t write_ms);
/* Calls read_cb / write_cb from the loop soon (never synchronously). */
void pc_sock_trigger_read(pc_sock *s);
void pc_sock_trigger_write(pc_sock *s);

#endif
