/* http.h: the request and response objects shared by http/ (the client
 * side), chain/ and proxy/, the header list, and the two callback tables
 * that let data flow back without calling up the chain.
 *
 * DESIGN: front/conn owns every pc_req. It fills the request head, runs the
 * chain, and gives the request a response sink (pc_sink_ops). Whoever
 * answers (a stage, or proxy/) writes the response through the sink and
 * never includes conn.c's header. In the other direction the answering
 * module installs a pc_handler_ops on the request so conn can hand it body
 * bytes, tell it the client drained, or cancel it when the client is gone.
 *
 *      conn ──chain──► stage / proxy        (calls forward)
 *      conn ◄──sink─── stage / proxy        (response head, body, end)
 *      conn ──handler► proxy                (request body, resume, cancel)
 *
 * Response side (the stage interface of chain.h, nginx header/body
 * filters, HAProxy filters): every response head, proxied (sink->head) or
 * made by the gateway (sink->error, errors.c's pc_err_response), goes
 * through ONE place before it is serialised: the sink calls
 * pc_chain_response_head(req, resp), which appends req->resp_extra, runs
 * the stages' on_response hooks in reverse order and fixes the framing for
 * body filters. Body bytes go through the stages' body filters when any
 * is installed (req->ext != NULL): the sink hands them to pc_chain_body,
 * and what comes out of the last filter returns through sink->filtered.
 * Without filters the sink writes the bytes itself (one NULL check).
 *
 *      producer ─sink->head──► pc_chain_response_head ─► serialise
 *      producer ─sink->body──► [pc_chain_body ─► filters ─► sink->filtered]
 *                                                  ─► frame, queue
 *
 * Rules that keep this free of use-after-free:
 *  - sink->end / sink->error / sink->abort are the handler's LAST action on
 *    the request: it must have freed or detached its own state before, and
 *    must not touch the request after (conn may free it inside the call);
 *  - handler->cancel means the request is being freed: the handler frees
 *    its state and never calls the sink again;
 *  - sink->start_body never calls back into the handler synchronously;
 *  - an asynchronous stage never keeps a bare pc_req pointer across event
 *    loop turns: it keeps a pc_wait token (chain.h) and gets the request
 *    back only through pc_wait_take / pc_wait_resume, which return
 *    nothing once the request was freed or its memory reused;
 *  - the request's own release (pc_chain_req_free, called by whoever owns
 *    the request, right before its arena is freed) cancels a pending wait
 *    and releases body filters; nothing in req->ext outlives it.
 */
#ifndef PORTCULLIS_HTTP_H
#define PORTCULLIS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/arena.h"
#include "portcullis/cidr.h"
#include "portcullis/config.h"
#include "portcullis/errors.h"
#include "portcullis/framing_t.h"
#include "portcullis/trie.h"

struct evbuffer;

typedef struct pc_header {
    const char *name, *value; /* arena strings, NUL-terminated */
    uint32_t nlen, vlen;
} pc_header;

typedef struct pc_headers {
    pc_header *v;
    uint32_t n, cap;
} pc_headers;

/* Header list helpers: the list's array lives in the arena. */
void pc_headers_add(pc_headers *h, pc_arena *a, const char *name,
                    size_t nlen, const char *value, size_t vlen);
/* First header of that name (case-insensitive), or NULL. */
const pc_header *pc_headers_get(const pc_headers *h, const char *name);
/* Number of headers of that name. */
unsigned pc_headers_count(const pc_headers *h, const char *name);
/* Removes every header of that name; returns how many. */
unsigned pc_headers_remove(pc_headers *h, const char *name);

typedef struct pc_req pc_req;
typedef struct pc_resp pc_resp;

/* Ready-made content codings of a response body, offered with the head
 * by the stage that produces the body from stored bytes (the cache) to
 * the stage that content-codes bodies (compress), which runs its
 * on_response later. coding: a pc_enc of encoding.h. */
typedef struct pc_body_codings {
    /* The whole body already in `coding` (*len bytes, valid until the
     * response ends), or NULL. A non-NULL answer is taken: the producer
     * sends those bytes instead of its own, and the caller frames and
     * labels them (Content-Length, Content-Encoding). */
    const char *(*take)(pc_req *req, void *ctx, unsigned coding,
                        size_t *len);
    /* The whole body as the caller encoded it in `coding`, handed over
     * at its end (borrowed for the call) to be kept for the next time. */
    void (*keep)(pc_req *req, void *ctx, unsigned coding, const char *data,
                 size_t len);
    size_t keep_max; /* larger encoded bodies are not worth handing over */
    void *ctx;
} pc_body_codings;

struct pc_resp {
    int status;
    int http_minor;      /* of the upstream response */
    const char *reason;  /* arena or static */
    pc_headers headers;  /* end-to-end headers only (hop-by-hop removed) */
    pc_framing framing;  /* how the upstream delimited the body (framing.h);
                            conn frames it towards the client itself */
    const pc_body_codings *codings; /* NULL: none offered */
};

typedef struct pc_sink_ops {
    /* The response head; body bytes follow through body(), then end(). */
    void (*head)(pc_req *req, pc_resp *resp);
    void (*body)(pc_req *req, const char *data, size_t len);
    /* Same as body(), but moves n bytes out of src without copying where
     * it can (whole evbuffer chains change hands). */
    void (*body_move)(pc_req *req, struct evbuffer *src, size_t n);
    void (*end)(pc_req *req);
    /* A gateway error (CONTRACT §4) instead of a response; only before
     * head(). msg may be NULL (the table's default). */
    void (*error)(pc_req *req, pc_errcode code, const char *msg);
    /* The response cannot be completed (upstream failed mid-body): the
     * client connection is closed. */
    void (*abort)(pc_req *req);
    /* Bytes queued towards the client and not yet written. */
    size_t (*backlog)(pc_req *req);
    /* The handler can take the request body now (sends 100 Continue when
     * the client asked for it); body bytes arrive via handler->body. */
    void (*start_body)(pc_req *req);
    /* The handler's request-body backlog drained below its low watermark:
     * conn reads the client again if it had paused. */
    void (*resume_body)(pc_req *req);
    /* The end of the body-filter pipeline: bytes that went through every
     * body filter of the request (chain.c calls it, only when the request
     * has filters); framed and queued like body(). */
    void (*filtered)(pc_req *req, const char *data, size_t len);
} pc_sink_ops;

/* Backpressure marks shared by conn and handlers (bytes). */
#define PC_BODY_HWM (256 * 1024)
#define PC_OUT_HWM (256 * 1024)
#define PC_OUT_LWM (64 * 1024)

typedef struct pc_handler_ops {
    void (*body)(pc_req *req, const char *data, size_t len);
    /* Content-Length bodies: n bytes moved out of src (conn's input). */
    void (*body_move)(pc_req *req, struct evbuffer *src, size_t n);
    void (*body_end)(pc_req *req);
    /* Bytes of request body queued towards the handler's peer. */
    size_t (*backlog)(pc_req *req);
    /* The client drained below the low watermark: read more response. */
    void (*resume)(pc_req *req);
    void (*cancel)(pc_req *req);
} pc_handler_ops;

struct pc_req {
    pc_loop *loop;         /* the event loop serving it (loop.h) */
    pc_config *cfg;        /* pinned generation (one reference) */
    pc_arena *arena;
    uint64_t start_ns;

    /* request head, arena strings */
    const char *method;
    uint32_t method_bit;
    int http_minor;        /* 0 or 1 */
    const char *path;      /* normalised, NUL-terminated */
    size_t pathlen;
    const char *query;     /* after '?', or NULL */
    const char *host;      /* authority (Host or absolute-form), with port */
    const char *hostname;  /* host without port, lower-case */
    pc_headers headers;    /* as the client sent them (validated) */
    pc_headers gw_headers; /* headers the gateway adds upstream from a stage
                              (forwarded claims): never subject to the
                              client's Connection or to route rules */
    pc_framing framing;    /* request body framing (framing.h): NONE,
                              LENGTH or CHUNKED */
    int expect_continue;
    int keepalive;         /* client wants to keep the connection */
    int tls;               /* arrived over TLS */
    const char *tls_version;
    char request_id[129];
    pc_ip peer, client;
    char client_text[48], peer_text[48];

    uint64_t max_body;     /* body limit in force (limits, or the route's
                              validate.max_body_bytes when lower) */
    struct evbuffer *body; /* whole body, when a stage buffered it (owned) */

    /* routing */
    const pc_route *route;
    pc_trie_match match;
    int match_status;      /* pc_trie_status of the lookup */

    /* Extra response headers a stage adds (pc_req_add_resp_header):
     * WWW-Authenticate, Retry-After, RateLimit-*. Emitted on whatever
     * response the request gets, gateway-made or proxied (appended after
     * the route's headers.response rules, before on_response hooks). */
    pc_headers resp_extra;
    const char *user;      /* JWT "sub", for the access log */
    const char *cache;     /* "HIT" | "MISS" | "BYPASS" on routes with
                              cache (chain/cache.c), else NULL: the access
                              log's `cache` field */

    /* chain (owned by chain.c) */
    unsigned stage;        /* cursor: index of the running stage */
    uint64_t stage_ns;     /* when the running stage started (metrics) */
    unsigned nran;         /* stages entered so far (0..nran-1): the ones
                              whose on_response hooks run */
    const struct pc_stage_ops *const *stages; /* table run (NULL: the
                              default one; tests give their own) */
    unsigned nstages;
    struct pc_chain_ext *ext; /* slots, body filters, pending wait: NULL
                              until a stage uses one (request arena) */

    /* response side */
    const pc_sink_ops *sink;
    void *sink_ctx;        /* the connection, opaque to handlers */
    const pc_handler_ops *handler;
    void *handler_ctx;
    int status;            /* final status sent, for logs */
    uint64_t bytes_in, bytes_out;
    const char *upstream_target; /* for logs */
    uint64_t upstream_ns;
    pc_errcode error;      /* PC_ERR_NONE unless a gateway error was sent */
};

/* Finds the request's header value, NULL when absent. */
const char *pc_req_header(const pc_req *req, const char *name);

/* Adds a header to every response the request gets (req->resp_extra);
 * name and value are copied into the request arena. Several may be added,
 * by any stage; a name is not replaced (the caller removes first with
 * pc_headers_remove(&req->resp_extra, name) when it must be unique). */
void pc_req_add_resp_header(pc_req *req, const char *name, const char *value);

/* The head and JSON body of a gateway error (CONTRACT §4, errors.c):
 * status and reason from the table, Content-Type, Allow for 405, framing
 * with the body's length (none sent for HEAD). resp's headers live in the
 * request arena; the body goes to buf (cap bytes). Returns the body's
 * length. The sink then treats resp like a proxied head (on_response
 * hooks, extra headers, body filters). */
size_t pc_err_response(pc_req *req, pc_errcode e, const char *msg,
                       pc_resp *resp, char *buf, size_t cap);

#endif
