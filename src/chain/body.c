/* body.c: buffers a whole request body for the stages the contract lets
 * see it (validate.json_schema, verify_signature). Bounded by
 * req->max_body, which conn enforces while streaming (413). The buffered
 * body is sent upstream with a Content-Length by proxy/forward.c.
 * Two separate mechanisms: the body streams in through a handler
 * (pc_handler_ops, cancelled by conn), and the waiting stage holds a
 * pc_wait token that its done callback redeems. */
#include <event2/buffer.h>
#include <stdlib.h>

#include "portcullis/chain.h"
#include "portcullis/framing.h"
#include "portcullis/util.h"

typedef struct buffering { /* request arena */
    void (*done)(pc_wait w);
    pc_wait w;
} buffering;

static void b_body(pc_req *req, const char *data, size_t len)
{
    evbuffer_add(req->body, data, len);
}

static void b_body_move(pc_req *req, struct evbuffer *src, size_t n)
{
    evbuffer_remove_buffer(src, req->body, n);
}

static void b_body_end(pc_req *req)
{
    buffering *b = req->handler_ctx;
    req->handler = NULL;
    req->handler_ctx = NULL;
    /* The whole body is here: from now on it has a known length. */
    req->framing = (pc_framing){.kind = PC_FRAME_LENGTH,
                                .length = evbuffer_get_length(req->body),
                                .has_length = 1,
                                .close_after = req->framing.close_after};
    b->done(b->w);
}

static size_t b_backlog(pc_req *req)
{
    (void)req;
    return 0; /* bounded by max_body; never pause the client */
}

static void b_cancel(pc_req *req)
{
    req->handler_ctx = NULL; /* the state is in the arena; the wait is
                                cancelled by the chain */
}

static const pc_handler_ops buffering_ops = {
    .body = b_body,
    .body_move = b_body_move,
    .body_end = b_body_end,
    .backlog = b_backlog,
    .cancel = b_cancel,
};

pc_verdict pc_chain_buffer_body(pc_req *req, void (*done)(pc_wait w))
{
    if (req->body || !pc_framing_has_body(&req->framing))
        return PC_NEXT;
    req->body = evbuffer_new();
    buffering *b = pc_arena_alloc(req->arena, sizeof *b);
    b->done = done;
    b->w = pc_wait_begin(req, NULL);
    req->handler = &buffering_ops;
    req->handler_ctx = b;
    req->sink->start_body(req);
    return PC_WAIT;
}
