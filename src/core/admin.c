/* admin.c: the admin listener (CONTRACT §5): /healthz, /readyz,
 * /admin/routes, /admin/config, with admin.token checked in constant time.
 * Runs on the main thread's event loop with libevent's evhttp (admin
 * traffic is small and never on the proxy's hot path); reads the current
 * generation under the runtime's lock. */
#include "portcullis/admin.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <errno.h>

#include "portcullis/errors.h"
#include "portcullis/log.h"
#include "portcullis/util.h"

struct pc_admin {
    struct evhttp *http;
    pc_runtime *rt;
    uint64_t rng;
};

static void reply_json(struct evhttp_request *req, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, status, pc_http_reason(status), b);
    evbuffer_free(b);
    free(s);
    json_decref(body);
}

static void reply_error(pc_admin *a, struct evhttp_request *req, pc_errcode e,
                        const char *msg)
{
    char id[33], body[512];
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        a->rng ^= a->rng << 13;
        a->rng ^= a->rng >> 7;
        a->rng ^= a->rng << 17;
        id[i] = hex[a->rng & 15];
    }
    id[32] = '\0';
    size_t n = pc_err_body(e, msg, id, body, sizeof body);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "X-Request-Id", id);
    if (e == PC_ERR_UNAUTHORIZED)
        evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"portcullis\"");
    if (e == PC_ERR_METHOD_NOT_ALLOWED)
        evhttp_add_header(h, "Allow", "GET");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, n);
    evhttp_send_reply(req, pc_err_info(e)->status, pc_err_info(e)->reason, b);
    evbuffer_free(b);
}

static pc_config *current(pc_runtime *rt)
{
    pthread_mutex_lock(&rt->cfg_lock);
    pc_config *c = pc_config_ref(rt->cfg);
    pthread_mutex_unlock(&rt->cfg_lock);
    return c;
}

static int authorized(const pc_config *c, struct evhttp_request *req)
{
    if (!c->admin_token)
        return 1;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *tok = h + 7;
    size_t a = strlen(tok), b = strlen(c->admin_token);
    /* Constant time in the token's content; the length is not secret. */
    return a == b && CRYPTO_memcmp(tok, c->admin_token, a) == 0;
}

static void add_route(void *data, void *ctx)
{
    const pc_route *r = data;
    json_t *arr = ctx;
    char buf[128];
    json_t *methods = json_array();
    if (r->methods) {
        pc_methods_format(r->methods, buf, sizeof buf);
        for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", "))
            json_array_append_new(methods, json_string(tok));
    }
    json_t *m = json_pack("{s:s, s:s, s:o, s:o}", "path", r->path, "type",
                          r->exact ? "exact" : "prefix", "methods", methods,
                          "host", r->host ? json_string(r->host) : json_null());
    json_t *o = json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", r->name, "match",
                          m, "upstream", r->upstream->name, "strip_prefix",
                          r->strip_prefix ? json_string(r->strip_prefix) : json_null(),
                          "rewrite",
                          r->rewrite ? json_string(r->rewrite) : json_null());
    json_array_append_new(arr, o);
}

static void handle(struct evhttp_request *req, void *arg)
{
    pc_admin *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        path = "/";
    int get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    pc_config *c = current(a->rt);

    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (!get) {
            reply_error(a, req, PC_ERR_METHOD_NOT_ALLOWED, NULL);
        } else if (path[1] == 'h') {
            reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
        } else if (atomic_load(&a->rt->draining)) {
            reply_json(req, 503, json_pack("{s:s}", "status", "draining"));
        } else {
            reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
        }
    } else if (strncmp(path, "/admin/", 7) == 0) {
        if (!authorized(c, req)) {
            reply_error(a, req, PC_ERR_UNAUTHORIZED, "admin token required");
        } else if (strcmp(path, "/admin/routes") == 0 ||
                   strcmp(path, "/admin/config") == 0) {
            if (!get) {
                reply_error(a, req, PC_ERR_METHOD_NOT_ALLOWED, NULL);
            } else if (path[7] == 'r') {
                json_t *arr = json_array();
                pc_trie_foreach(c->trie, add_route, arr);
                reply_json(req, 200, json_pack("{s:o}", "routes", arr));
            } else {
                reply_json(req, 200, pc_config_to_json(c));
            }
        } else {
            reply_error(a, req, PC_ERR_ROUTE_NOT_FOUND, "no such admin endpoint");
        }
    } else {
        reply_error(a, req, PC_ERR_ROUTE_NOT_FOUND, "no such admin endpoint");
    }
    pc_config_unref(c);
}

pc_admin *pc_admin_start(struct event_base *base, pc_runtime *rt)
{
    pc_admin *a = pc_xcalloc(1, sizeof *a);
    a->rt = rt;
    a->rng = pc_now_ns() | 1;
    if (!rt->cfg->admin_listen)
        return a;
    a->http = evhttp_new(base);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(a->http, 16384);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_gencb(a->http, handle, a);
    int fd = socket(rt->cfg->admin_addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 ||
        bind(fd, (const struct sockaddr *)&rt->cfg->admin_addr,
             rt->cfg->admin_addrlen) != 0 ||
        listen(fd, 128) != 0 || !evhttp_accept_socket_with_handle(a->http, fd)) {
        pc_log(PC_LOG_ERROR, "cannot listen on admin address %s: %s",
               rt->cfg->admin_listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        pc_admin_free(a);
        return NULL;
    }
    return a;
}

void pc_admin_free(pc_admin *a)
{
    if (!a)
        return;
    if (a->http)
        evhttp_free(a->http);
    free(a);
}
