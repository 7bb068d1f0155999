/* probe.c: status-line verdicts of the gateway's own HTTP exchanges
 * (health checks, webhook deliveries); see probe.h. */
#include "portcullis/probe.h"

#include <event2/buffer.h>
#include <string.h>

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

int pc_probe_status(struct evbuffer *in, const char **why)
{
    if (evbuffer_get_length(in) < 12)
        return -1;
    const char *p = (const char *)evbuffer_pullup(in, 12);
    if (!p || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || !digit(p[10]) ||
        !digit(p[11])) {
        *why = "not an HTTP/1.x status line";
        return 0;
    }
    return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

int pc_probe_event(pc_sock *s, short what, const char **why)
{
    if (what & PC_SOCK_CONNECTED)
        return -1;
    *why = "connection closed before a status line";
    if (what & PC_SOCK_EOF) {
        int st = pc_probe_status(pc_sock_input(s), why);
        if (st >= 0)
            return st;
    }
    if (what & PC_SOCK_TIMEOUT)
        *why = "timeout";
    else if (what & PC_SOCK_ERROR)
        *why = "connection failed or reset";
    return 0;
}

const char *pc_probe_class(int status)
{
    static const char *const c[] = {"status 1xx", "status 2xx", "status 3xx",
                                     "status 4xx", "status 5xx"};
    return status >= 100 && status <= 599 ? c[status / 100 - 1]
                                          : "unexpected status";
}
