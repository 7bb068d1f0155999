/* route.c: the route stage (CONTRACT §3 step 6): reports the outcome of the
 * lookup match.c did: 404 route_not_found, or 405 with Allow. */
#include "portcullis/chain.h"

static pc_verdict route_on_request(pc_req *req)
{
    if (req->match_status == PC_TRIE_FOUND)
        return PC_NEXT;
    req->sink->error(req, req->match_status == PC_TRIE_BAD_METHOD
                              ? PC_ERR_METHOD_NOT_ALLOWED
                              : PC_ERR_ROUTE_NOT_FOUND,
                     NULL);
    return PC_DONE;
}

const pc_stage_ops pc_stage_route = {
    .name = "route",
    .on_request = route_on_request,
};
