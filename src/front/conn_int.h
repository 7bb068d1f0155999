/* conn_int.h: the client connection, private to http/ (conn.c, request.c).
 * Nothing outside http/ includes this; chain/ and proxy/ only see pc_req
 * and the sink table. */
#ifndef PORTCULLIS_CONN_INT_H
#define PORTCULLIS_CONN_INT_H

#include <llhttp.h>

#include "portcullis/headscan.h"
#include "portcullis/http.h"
#include "portcullis/loop.h"
#include "portcullis/span.h"

typedef struct pc_sock pc_sock;
typedef struct pc_conn pc_conn;

/* Request-target and header name/value being assembled from llhttp's
 * pieces (borrowed from the input while they lie in one read, copied
 * when they cross one: portcullis/span.h); in the request's arena from
 * the head's first byte until it is parsed, so an idle connection carries
 * none of it. */
typedef struct pc_scratch {
    pc_span url, field, value;
} pc_scratch;

struct pc_conn {
    pc_loop *loop;
    pc_sock *sock;
    pc_conn *prev, *next;      /* worker's list */
    llhttp_t parser;
    pc_ip peer;
    int tls;
    pc_config *tls_gen;        /* TLS: the generation whose contexts the
                                  connection uses (one reference) */

    pc_req *req;               /* the request being read or answered */
    pc_scratch *scr;           /* head-phase buffers; NULL while idle */
    uint64_t head_bytes;       /* bytes of the current head so far */
    uint64_t body_bytes;
    uint64_t raw_left;         /* Content-Length body bytes still to move */
    struct pc_chunked *ck;     /* chunked body decoder (request arena) */
    pc_headscan scan;          /* line discipline of the current head */
    uint64_t header_deadline;  /* ns, monotonic */
    unsigned nheaders;

    unsigned head_ready : 1;   /* head parsed; chain not started yet */
    unsigned head_done : 1;    /* chain started */
    unsigned has_body : 1;
    unsigned body_started : 1; /* handler takes the body */
    unsigned msg_done : 1;     /* whole request read */
    unsigned resp_started : 1; /* response head queued */
    unsigned resp_chunked : 1;
    unsigned keepalive : 1;    /* keep after this response */
    unsigned closing : 1;      /* close once output is flushed */
    unsigned read_paused : 1;  /* body backpressure */
    unsigned out_paused : 1;   /* output over its high watermark: not
                                  parsing the next request */
    unsigned peer_eof : 1;
    unsigned counted_ip : 1;
    unsigned recent : 1;       /* TLS: handshake or request since the last
                                  pc_conns_release_idle sweep */
    pc_errcode fail;           /* set by parser callbacks */
    const char *fail_msg;
};

/* request.c: llhttp settings and helpers building the pc_req. */
extern const llhttp_settings_t pc_request_settings;
void pc_scratch_free(pc_conn *c);
/* After each llhttp_execute of a head, before its input is drained:
 * copies what the pieces still borrow from it. */
void pc_scratch_keep(pc_conn *c);
/* Prepares a fresh request on c (arena, pinned config, ids). */
pc_req *pc_conn_new_req(pc_conn *c);

/* conn.c */
void pc_conn_free_req(pc_conn *c);

#endif
