/* chain.h: the fixed, ordered list of request stages (CONTRACT §3).
 *
 * Contract of a stage's on_request hook:
 *  - PC_NEXT: the stage is done with the request; the chain moves on.
 *  - PC_DONE: the stage has answered (through req->sink) or handed the
 *    request to a handler that will; the chain stops.
 *  - PC_WAIT: the stage started something asynchronous; its callback will
 *    call pc_chain_resume(req, verdict) exactly once, unless the request is
 *    cancelled first (req->handler->cancel, installed by the stage). The
 *    chain continues AFTER the waiting stage: a stage is never re-entered.
 */
#ifndef PORTCULLIS_CHAIN_H
#define PORTCULLIS_CHAIN_H

#include "portcullis/http.h"

typedef enum { PC_NEXT, PC_DONE, PC_WAIT } pc_verdict;

typedef struct pc_stage_ops {
    const char *name;
    pc_verdict (*on_request)(pc_req *req);
} pc_stage_ops;

/* From http/conn once the request head is complete and valid. */
void pc_chain_start(pc_req *req);
/* From an async callback of the stage at req->stage. */
void pc_chain_resume(pc_req *req, pc_verdict v);

/* The stages (one file each in src/chain/). */
extern const pc_stage_ops pc_stage_route;
extern const pc_stage_ops pc_stage_proxy;

#endif
