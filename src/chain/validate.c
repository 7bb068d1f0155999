/* validate.c: the validate stage (CONTRACT §3 step 2): the route's (or the
 * global) `validate` block: max_body_bytes (413 against Content-Length
 * before reading, and while streaming through req->max_body),
 * content_types (415 for requests with a body), json_schema (400
 * invalid_body naming the JSON pointer of the first failure). Schemas are
 * compiled once at load (lib/jsonschema.c). Only routes with a schema
 * buffer the body. Never does I/O. */
#include <ctype.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/chain.h"
#include "portcullis/framing.h"
#include "portcullis/jsonschema.h"
#include "portcullis/util.h"

typedef struct validate_policy {
    char **types; /* lower-case media types; "type/x" wildcards allowed */
    size_t ntypes;
    uint64_t max_body; /* 0: only limits.max_body_bytes */
    pc_schema *schema;
    char *schema_path;
} validate_policy;

static void validate_free(void *p)
{
    validate_policy *v = p;
    for (size_t i = 0; i < v->ntypes; i++)
        free(v->types[i]);
    free(v->types);
    pc_schema_free(v->schema);
    free(v->schema_path);
    free(v);
}

static json_t *validate_json(const void *p)
{
    const validate_policy *v = p;
    json_t *types = json_array();
    for (size_t i = 0; i < v->ntypes; i++)
        json_array_append_new(types, json_string(v->types[i]));
    return json_pack("{s:o,s:o,s:o}", "content_types", types, "max_body_bytes",
                     v->max_body ? json_integer((json_int_t)v->max_body) : json_null(),
                     "json_schema",
                     v->schema_path ? json_string(v->schema_path) : json_null());
}

static int valid_media_type(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"[]?={}", *p))
            return 0;
    return 1;
}

static void read_types(validate_policy *v, const pc_node *n, pc_errors *err)
{
    if (pc_node_expect_seq(n, "content_types", err) < 0)
        return;
    v->types = pc_xcalloc(n->n ? n->n : 1, sizeof *v->types);
    for (size_t i = 0; i < n->n; i++) {
        char *t = NULL;
        if (pc_node_str(n->vals[i], "content_types", &t, err) < 0)
            continue;
        for (char *p = t; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!valid_media_type(t)) {
            pc_errors_add(err, n->vals[i], "invalid media type '%s'", t);
            free(t);
            continue;
        }
        v->types[v->ntypes++] = t;
    }
}

static void read_schema(validate_policy *v, pc_config *c, const pc_node *n,
                        pc_errors *err)
{
    char *path = NULL;
    if (pc_node_str(n, "json_schema", &path, err) < 0)
        return;
    v->schema_path = pc_config_abspath(c, path);
    free(path);
    json_error_t je;
    char why[256];
    size_t len;
    /* Regular files only, opened without blocking (a FIFO would hang). */
    char *text =
        pc_read_regular(v->schema_path, 16u << 20, &len, why, sizeof why);
    if (!text) {
        pc_errors_add(err, n, "json_schema '%s': %s", v->schema_path, why);
        return;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!doc) {
        pc_errors_add(err, n, "json_schema '%s': %s (line %d, column %d)",
                      v->schema_path, je.text, je.line, je.column);
        return;
    }
    char msg[256], where[256];
    v->schema = pc_schema_compile(doc, msg, sizeof msg, where, sizeof where);
    if (!v->schema)
        pc_errors_add(err, n, "json_schema '%s': %s at '%s'", v->schema_path,
                      msg, where[0] ? where : "#");
    json_decref(doc);
}

static void *validate_configure(const pc_node *n, pc_config *c, pc_errors *err)
{
    static const char *const keys[] = {"content_types", "max_body_bytes",
                                       "json_schema", NULL};
    size_t before = err->n;
    if (pc_node_expect_map(n, "validate", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "validate", err);
    validate_policy *v = pc_xcalloc(1, sizeof *v);
    const pc_node *x;
    if ((x = pc_node_get(n, "content_types")))
        read_types(v, x, err);
    if ((x = pc_node_get(n, "max_body_bytes")) &&
        pc_node_size(x, "max_body_bytes", &v->max_body, err) == 0 &&
        v->max_body == 0)
        pc_errors_add(err, x, "max_body_bytes must be at least 1");
    if ((x = pc_node_get(n, "json_schema")))
        read_schema(v, c, x, err);
    if (err->n != before) {
        validate_free(v);
        return NULL;
    }
    return v;
}

static void *validate_configure_route(const pc_node *n, pc_config *c,
                                      pc_route *r, pc_errors *err)
{
    (void)r;
    return validate_configure(n, c, err);
}

/* Content-Type without parameters, trimmed, compared case-insensitively. */
static int type_allowed(const validate_policy *v, const char *ct)
{
    const char *end = strchr(ct, ';');
    size_t len = end ? (size_t)(end - ct) : strlen(ct);
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    while (len && (*ct == ' ' || *ct == '\t'))
        ct++, len--;
    for (size_t i = 0; i < v->ntypes; i++) {
        const char *t = v->types[i];
        size_t tl = strlen(t);
        if (tl >= 2 && t[tl - 1] == '*' && t[tl - 2] == '/') {
            if (len > tl - 1 && pc_strieq(ct, tl - 1, t, tl - 1))
                return 1;
        } else if (pc_strieq(ct, len, t, tl)) {
            return 1;
        }
    }
    return 0;
}

/* Checks the buffered body against the schema; 0 when valid, else the
 * 400 has been sent. */
static int body_valid(pc_req *req, const validate_policy *v)
{
    size_t len = req->body ? evbuffer_get_length(req->body) : 0;
    const char *data = "";
    if (len)
        data = (const char *)evbuffer_pullup(req->body, -1);
    json_error_t je;
    json_t *doc = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                             &je);
    char msg[512];
    if (!doc) {
        snprintf(msg, sizeof msg, "body is not valid JSON: %.200s at line %d, column %d",
                 je.text, je.line, je.column);
        req->sink->error(req, PC_ERR_INVALID_BODY, msg);
        return -1;
    }
    char ptr[256], why[256];
    int rc = pc_schema_validate(v->schema, doc, ptr, sizeof ptr, why, sizeof why);
    json_decref(doc);
    if (rc == 0)
        return 0;
    snprintf(msg, sizeof msg, "body does not match the schema at '%.200s': %.250s",
             ptr[0] ? ptr : "(root)", why);
    req->sink->error(req, PC_ERR_INVALID_BODY, msg);
    return -1;
}

static void validate_body_done(pc_wait w)
{
    pc_req *req = pc_wait_take(w);
    if (!req)
        return;
    const validate_policy *v = pc_chain_policy(req, req->stage);
    if (body_valid(req, v) == 0)
        pc_chain_resume(req, PC_NEXT);
}

static pc_verdict validate_on_request(pc_req *req)
{
    const validate_policy *v = pc_chain_policy(req, req->stage);
    if (!v)
        return PC_NEXT;
    int has_body = pc_framing_has_body(&req->framing);
    if (v->max_body) {
        if (req->framing.kind == PC_FRAME_LENGTH && req->framing.length > v->max_body) {
            req->sink->error(req, PC_ERR_PAYLOAD_TOO_LARGE, NULL);
            return PC_DONE;
        }
        if (v->max_body < req->max_body)
            req->max_body = v->max_body;
    }
    if (has_body && v->ntypes) {
        const char *ct = pc_req_header(req, "content-type");
        if (!ct || !type_allowed(v, ct)) {
            char msg[160];
            snprintf(msg, sizeof msg, "content type '%.100s' is not accepted",
                     ct ? ct : "(none)");
            req->sink->error(req, PC_ERR_UNSUPPORTED_MEDIA_TYPE,
                             ct ? msg : "a request body needs a Content-Type");
            return PC_DONE;
        }
    }
    if (!v->schema || !has_body)
        return PC_NEXT;
    if (pc_chain_buffer_body(req, validate_body_done) == PC_WAIT)
        return PC_WAIT;
    return body_valid(req, v) == 0 ? PC_NEXT : PC_DONE;
}

const pc_stage_ops pc_stage_validate = {
    .name = "validate",
    .global_key = "validate",
    .route_key = "validate",
    .configure_global = validate_configure,
    .configure_route = validate_configure_route,
    .free_global = validate_free,
    .free_route = validate_free,
    .global_json = validate_json,
    .route_json = validate_json,
    .on_request = validate_on_request,
};
