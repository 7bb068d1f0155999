/* probe.h: the verdict of a one-shot HTTP exchange the gateway makes on
 * its own behalf (proxy/health.c's checks, proxy/webhook.c's deliveries):
 * only the status line "HTTP/1.x DDD" is read, the rest is ignored. */
#ifndef PORTCULLIS_PROBE_H
#define PORTCULLIS_PROBE_H

#include "portcullis/sock.h"

struct evbuffer;

/* The status (100..599) once the status line's first 12 bytes are in;
 * 0 when they are not a status line (*why set); -1 when more bytes are
 * needed. */
int pc_probe_status(struct evbuffer *in, const char **why);
/* For an event of the exchange's socket: -1 to ignore it (connected);
 * the status when the peer closed after a status line; else 0 with *why
 * ("timeout", "connection failed or reset", ...). */
int pc_probe_event(pc_sock *s, short what, const char **why);
/* "status 1xx" .. "status 5xx" (a failure's description). */
const char *pc_probe_class(int status);

#endif
