/* proxy.c: the proxy stage (CONTRACT §3 step 9): hands the routed request
 * to proxy/forward.c, which answers through the sink. */
#include "portcullis/chain.h"
#include "portcullis/proxy.h"

static pc_verdict proxy_on_request(pc_req *req)
{
    pc_proxy_start(req);
    return PC_DONE;
}

const pc_stage_ops pc_stage_proxy = {
    .name = "proxy",
    .on_request = proxy_on_request,
};
