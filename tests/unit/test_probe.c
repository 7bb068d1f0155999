/* proxy/probe.c: the status line of the gateway's own exchanges (health
 * checks, webhook deliveries). */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>

#include "portcullis/probe.h"

static int status_of(const char *bytes, const char **why)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, bytes, strlen(bytes));
    int st = pc_probe_status(b, why);
    evbuffer_free(b);
    return st;
}

Test(probe, status_lines)
{
    const char *why = NULL;
    cr_assert_eq(status_of("HTTP/1.1 200 OK\r\n", &why), 200);
    cr_assert_eq(status_of("HTTP/1.0 503 x", &why), 503);
    cr_assert_eq(status_of("HTTP/1.1 204", &why), 204);
    cr_assert_eq(status_of("HTTP/1.1 20", &why), -1, "more bytes needed");
    cr_assert_eq(status_of("", &why), -1);
    why = NULL;
    cr_assert_eq(status_of("HTTP/2.0 200 OK\r\n", &why), 0);
    cr_assert_str_eq(why, "not an HTTP/1.x status line");
    cr_assert_eq(status_of("HTTP/1.1 600 no\r\n", &why), 0);
    cr_assert_eq(status_of("HTTP/1.1 2x0 no\r\n", &why), 0);
    cr_assert_eq(status_of("HTTP/1.1-200 no\r\n", &why), 0);
    cr_assert_eq(status_of("SSH-2.0-OpenSSH\r\n", &why), 0);
}

Test(probe, classes)
{
    cr_assert_str_eq(pc_probe_class(404), "status 4xx");
    cr_assert_str_eq(pc_probe_class(100), "status 1xx");
    cr_assert_str_eq(pc_probe_class(599), "status 5xx");
    cr_assert_str_eq(pc_probe_class(0), "unexpected status");
    cr_assert_str_eq(pc_probe_class(600), "unexpected status");
}
