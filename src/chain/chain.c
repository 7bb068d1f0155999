/* chain.c: runs the fixed list of request stages (CONTRACT §3) over a
 * request, keeping the cursor on the request so an asynchronous stage can
 * resume the chain after itself. Owns the stage table; never does I/O.
 *
 * DESIGN:
 *   pc_chain_start ─► stage[0] ─NEXT─► stage[1] ─ ... ─► proxy (DONE)
 *                        │WAIT                 ▲
 *                        └─ callback ─ pc_chain_resume(req, NEXT)
 * A stage is never re-entered: resume continues at cursor + 1. */
#include "portcullis/chain.h"

static const pc_stage_ops *const stages[] = {
    &pc_stage_route,
    &pc_stage_proxy,
};

#define NSTAGES (sizeof stages / sizeof stages[0])

static void run(pc_req *req, unsigned from)
{
    for (unsigned i = from; i < NSTAGES; i++) {
        req->stage = i;
        pc_verdict v = stages[i]->on_request(req);
        if (v != PC_NEXT)
            return; /* DONE: answered; WAIT: a callback resumes us */
    }
    /* The last stage (proxy) always answers; reaching here is a bug in a
     * stage table edit, answered rather than left hanging. */
    req->sink->error(req, PC_ERR_BAD_GATEWAY, "no stage answered");
}

void pc_chain_start(pc_req *req)
{
    run(req, 0);
}

void pc_chain_resume(pc_req *req, pc_verdict v)
{
    if (v == PC_NEXT)
        run(req, req->stage + 1);
}
