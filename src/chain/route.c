/* route.c: the route stage (CONTRACT §3 step 6): path-trie lookup by host,
 * normalised path and method; 404 route_not_found, 405 with Allow. Reads
 * the generation's trie; never does I/O. */
#include <string.h>

#include "portcullis/chain.h"

static pc_verdict route_on_request(pc_req *req)
{
    const char *host = req->hostname ? req->hostname : "";
    pc_trie_status st =
        pc_trie_lookup(req->cfg->trie, host, strlen(host), req->path,
                       req->pathlen, req->method_bit, &req->match);
    if (st == PC_TRIE_FOUND) {
        req->route = req->match.data;
        return PC_NEXT;
    }
    req->sink->error(req, st == PC_TRIE_BAD_METHOD ? PC_ERR_METHOD_NOT_ALLOWED
                                                   : PC_ERR_ROUTE_NOT_FOUND,
                     NULL);
    return PC_DONE;
}

const pc_stage_ops pc_stage_route = {
    .name = "route",
    .on_request = route_on_request,
};
