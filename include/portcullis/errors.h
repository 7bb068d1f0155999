/* errors.h: the one table of gateway-made responses (CONTRACT §4). */
#ifndef PORTCULLIS_ERRORS_H
#define PORTCULLIS_ERRORS_H

#include <stddef.h>

typedef enum {
    PC_ERR_NONE = 0,
    PC_ERR_BAD_REQUEST,
    PC_ERR_INVALID_BODY,
    PC_ERR_UNAUTHORIZED,
    PC_ERR_FORBIDDEN,
    PC_ERR_ROUTE_NOT_FOUND,
    PC_ERR_METHOD_NOT_ALLOWED,
    PC_ERR_REQUEST_TIMEOUT,
    PC_ERR_PAYLOAD_TOO_LARGE,
    PC_ERR_URI_TOO_LONG,
    PC_ERR_UNSUPPORTED_MEDIA_TYPE,
    PC_ERR_RATE_LIMITED,
    PC_ERR_HEADERS_TOO_LARGE,
    PC_ERR_HTTP_VERSION,
    PC_ERR_BAD_GATEWAY,
    PC_ERR_UPSTREAM_UNAVAILABLE,
    PC_ERR_GATEWAY_TIMEOUT,
    PC_ERR__COUNT
} pc_errcode;

typedef struct pc_errinfo {
    int status;
    const char *code;    /* "rate_limited" */
    const char *reason;  /* "Too Many Requests" */
    const char *message; /* default message */
} pc_errinfo;

const pc_errinfo *pc_err_info(pc_errcode e);

/* Writes the JSON body {"error","message","status","request_id"} into buf
 * (escaping message and request_id); returns its length, or 0 when buf is
 * too small. */
size_t pc_err_body(pc_errcode e, const char *message, const char *request_id,
                   char *buf, size_t len);

/* Reason phrase of a status code ("OK", "Not Found"; "Unknown" else). */
const char *pc_http_reason(int status);

#endif
