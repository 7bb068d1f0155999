/* conn.h: what the worker needs from front/conn.c: accepting, draining and
 * closing the client connections of one loop (kept in pc_loop.conns). */
#ifndef PORTCULLIS_CONN_H
#define PORTCULLIS_CONN_H

#include <event2/util.h>
#include <sys/socket.h>

#include "portcullis/config.h"
#include "portcullis/loop.h"

typedef struct pc_conn pc_conn;

/* Takes ownership of the accepted socket fd; ssl_ctx non-NULL for TLS
 * listeners; counted_ip: the peer was counted against
 * max_connections_per_ip (handed back through ops->conn_closed). */
pc_conn *pc_conn_accept(pc_loop *l, evutil_socket_t fd,
                        const struct sockaddr *sa, socklen_t salen,
                        SSL_CTX *ssl_ctx, int counted_ip);
/* Closes at once (forced stop): cancels the request, frees everything. */
void pc_conn_close_now(pc_conn *c);
/* Graceful stop: close an idle connection now; a busy one closes after its
 * response. */
void pc_conn_drain(pc_conn *c);

/* Every connection of the loop: pc_conn_drain / pc_conn_close_now. */
void pc_conns_drain(pc_loop *l);
void pc_conns_close_now(pc_loop *l);
/* TLS connections idle for a whole sweep interval give back OpenSSL's
 * record buffers (pc_sock_release_tls_buffers). The worker calls it once a
 * second: an idle TLS connection holds them for at most two seconds. */
void pc_conns_release_idle(pc_loop *l);

#endif
