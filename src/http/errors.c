/* errors.c: the one table of responses the gateway makes itself
 * (CONTRACT §4) and their JSON bodies. No I/O. */
#include "portcullis/errors.h"

#include <jansson.h>
#include <string.h>

#include "portcullis/http.h"
#include "portcullis/trie.h"

static const pc_errinfo table[PC_ERR__COUNT] = {
    [PC_ERR_NONE] = {200, "none", "OK", "ok"},
    [PC_ERR_BAD_REQUEST] = {400, "bad_request", "Bad Request",
                            "malformed request"},
    [PC_ERR_INVALID_BODY] = {400, "invalid_body", "Bad Request",
                             "request body is invalid"},
    [PC_ERR_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized",
                             "authentication required"},
    [PC_ERR_FORBIDDEN] = {403, "forbidden", "Forbidden", "access denied"},
    [PC_ERR_ROUTE_NOT_FOUND] = {404, "route_not_found", "Not Found",
                                "no route matches the request"},
    [PC_ERR_METHOD_NOT_ALLOWED] = {405, "method_not_allowed",
                                   "Method Not Allowed",
                                   "method not allowed on this route"},
    [PC_ERR_REQUEST_TIMEOUT] = {408, "request_timeout", "Request Timeout",
                                "request not received in time"},
    [PC_ERR_PAYLOAD_TOO_LARGE] = {413, "payload_too_large",
                                  "Payload Too Large",
                                  "request body is too large"},
    [PC_ERR_URI_TOO_LONG] = {414, "uri_too_long", "URI Too Long",
                             "request target is too long"},
    [PC_ERR_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported_media_type",
                                       "Unsupported Media Type",
                                       "unsupported content type"},
    [PC_ERR_RATE_LIMITED] = {429, "rate_limited", "Too Many Requests",
                             "rate limit exceeded"},
    [PC_ERR_HEADERS_TOO_LARGE] = {431, "headers_too_large",
                                  "Request Header Fields Too Large",
                                  "request headers are too large"},
    [PC_ERR_HTTP_VERSION] = {505, "http_version_not_supported",
                             "HTTP Version Not Supported",
                             "only HTTP/1.0 and HTTP/1.1 are supported"},
    [PC_ERR_BAD_GATEWAY] = {502, "bad_gateway", "Bad Gateway",
                            "upstream connection failed"},
    [PC_ERR_UPSTREAM_UNAVAILABLE] = {503, "upstream_unavailable",
                                     "Service Unavailable",
                                     "no upstream target available"},
    [PC_ERR_GATEWAY_TIMEOUT] = {504, "gateway_timeout", "Gateway Timeout",
                                "upstream did not answer in time"},
};

const pc_errinfo *pc_err_info(pc_errcode e)
{
    if ((unsigned)e >= PC_ERR__COUNT)
        e = PC_ERR_BAD_GATEWAY;
    return &table[e];
}

size_t pc_err_body(pc_errcode e, const char *message, const char *request_id,
                   char *buf, size_t len)
{
    const pc_errinfo *in = pc_err_info(e);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(in->code));
    json_object_set_new(o, "message",
                        json_string(message ? message : in->message));
    json_object_set_new(o, "status", json_integer(in->status));
    json_object_set_new(o, "request_id", json_string(request_id));
    size_t n = json_dumpb(o, buf, len, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return n <= len ? n : 0;
}

const char *pc_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

size_t pc_err_response(pc_req *req, pc_errcode e, const char *msg,
                       pc_resp *resp, char *buf, size_t cap)
{
    const pc_errinfo *in = pc_err_info(e);
    size_t n = pc_err_body(e, msg, req->request_id, buf, cap);
    memset(resp, 0, sizeof *resp);
    resp->status = in->status;
    resp->reason = in->reason;
    resp->http_minor = 1;
    pc_headers_add(&resp->headers, req->arena, "Content-Type", 12,
                   "application/json", 16);
    if (e == PC_ERR_METHOD_NOT_ALLOWED) {
        char allow[128];
        pc_methods_format(req->match.allow, allow, sizeof allow);
        pc_headers_add(&resp->headers, req->arena, "Allow", 5, allow,
                       strlen(allow));
    }
    /* A HEAD gets the length of the body it does not get (RFC 9110 §9.3.2). */
    int head = req->method && strcmp(req->method, "HEAD") == 0;
    resp->framing = (pc_framing){.kind = head ? PC_FRAME_NONE : PC_FRAME_LENGTH,
                                 .length = n,
                                 .has_length = 1};
    return n;
}
