/* acl.c: the allow/deny stage (CONTRACT §3 step 3): the client address
 * (after trusted_proxies) against the route's `acl` block, or the global
 * one. Deny always wins; a non-empty allow list must match. Lookups are a
 * radix walk (lib/cidr.c): cost independent of the list's length. Owns its
 * policy; never does I/O. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "portcullis/chain.h"
#include "portcullis/util.h"

typedef struct acl_policy {
    pc_cidr_set *allow, *deny;
    size_t nallow, ndeny;
    json_t *text; /* {"allow": [...], "deny": [...]} as written */
} acl_policy;

static void acl_free(void *p)
{
    acl_policy *a = p;
    pc_cidr_set_free(a->allow);
    pc_cidr_set_free(a->deny);
    json_decref(a->text);
    free(a);
}

static json_t *acl_json(const void *p)
{
    return json_deep_copy(((const acl_policy *)p)->text);
}

static size_t read_list(const pc_node *n, const char *name, pc_cidr_set *set,
                        json_t *text, pc_errors *err)
{
    size_t count = 0;
    if (pc_node_expect_seq(n, name, err) < 0)
        return 0;
    for (size_t i = 0; i < n->n; i++) {
        const pc_node *e = n->vals[i];
        pc_ip ip;
        int prefix;
        char msg[128];
        if (e->kind != PC_NODE_SCALAR || e->is_null) {
            pc_errors_add(err, e, "'%s' entries must be CIDR strings", name);
            continue;
        }
        if (pc_cidr_parse(e->value, &ip, &prefix, msg, sizeof msg) != 0) {
            pc_errors_add(err, e, "invalid CIDR '%s' in '%s': %s", e->value,
                          name, msg);
            continue;
        }
        pc_cidr_set_add(set, &ip, prefix);
        json_array_append_new(text, json_string(e->value));
        count++;
    }
    return count;
}

static void *acl_configure(const pc_node *n, pc_config *c, pc_errors *err)
{
    static const char *const keys[] = {"allow", "deny", NULL};
    (void)c;
    size_t before = err->n;
    if (pc_node_expect_map(n, "acl", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "acl", err);
    acl_policy *a = pc_xcalloc(1, sizeof *a);
    a->allow = pc_cidr_set_new();
    a->deny = pc_cidr_set_new();
    json_t *allow = json_array(), *deny = json_array();
    a->text = json_pack("{s:o,s:o}", "allow", allow, "deny", deny);
    const pc_node *v;
    if ((v = pc_node_get(n, "allow")))
        a->nallow = read_list(v, "allow", a->allow, allow, err);
    if ((v = pc_node_get(n, "deny")))
        a->ndeny = read_list(v, "deny", a->deny, deny, err);
    if (err->n != before) {
        acl_free(a);
        return NULL;
    }
    return a;
}

static void *acl_configure_route(const pc_node *n, pc_config *c, pc_route *r,
                                 pc_errors *err)
{
    (void)r;
    return acl_configure(n, c, err);
}

static pc_verdict acl_on_request(pc_req *req)
{
    const acl_policy *a = pc_chain_policy(req, req->stage);
    if (!a)
        return PC_NEXT;
    int denied = pc_cidr_set_contains(a->deny, &req->client) ||
                 (a->nallow && !pc_cidr_set_contains(a->allow, &req->client));
    if (!denied)
        return PC_NEXT;
    char msg[96];
    snprintf(msg, sizeof msg, "access denied for %s", req->client_text);
    req->sink->error(req, PC_ERR_FORBIDDEN, msg);
    return PC_DONE;
}

const pc_stage_ops pc_stage_acl = {
    .name = "acl",
    .global_key = "acl",
    .route_key = "acl",
    .configure_global = acl_configure,
    .configure_route = acl_configure_route,
    .free_global = acl_free,
    .free_route = acl_free,
    .global_json = acl_json,
    .route_json = acl_json,
    .on_request = acl_on_request,
};
