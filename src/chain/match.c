/* match.c: looks the route up first (CONTRACT §3 step 6 note), so that the
 * stages of steps 2-5 can read the matched route's policy. It never
 * answers: its 404/405 outcome is reported by route.c at step 6. */
#include <string.h>

#include "portcullis/chain.h"

static pc_verdict match_on_request(pc_req *req)
{
    const char *host = req->hostname ? req->hostname : "";
    req->match_status =
        pc_trie_lookup(req->cfg->trie, host, strlen(host), req->path,
                       req->pathlen, req->method_bit, &req->match);
    if (req->match_status == PC_TRIE_FOUND)
        req->route = req->match.data;
    return PC_NEXT;
}

const pc_stage_ops pc_stage_match = {
    .name = "match",
    .on_request = match_on_request,
};
