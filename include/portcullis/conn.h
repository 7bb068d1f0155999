/* conn.h: what the worker needs from http/conn.c. */
#ifndef PORTCULLIS_CONN_H
#define PORTCULLIS_CONN_H

#include <event2/util.h>
#include <sys/socket.h>

#include "portcullis/worker.h"

/* Takes ownership of the accepted socket fd; ssl_ctx non-NULL for TLS
 * listeners. */
pc_conn *pc_conn_accept(pc_worker *w, evutil_socket_t fd,
                        const struct sockaddr *sa, socklen_t salen,
                        SSL_CTX *ssl_ctx);
/* Closes at once (forced stop): cancels the request, frees everything. */
void pc_conn_close_now(pc_conn *c);
/* Graceful stop: close an idle connection now; a busy one closes after its
 * response. */
void pc_conn_drain(pc_conn *c);

/* worker.c keeps the list: called from conn.c. */
void pc_worker_conn_opened(pc_worker *w, pc_conn *c);

#endif
