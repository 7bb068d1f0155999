/* hwrite.h: assembling a message head in a stack buffer and handing it to
 * an evbuffer in one piece. One evbuffer_add per head instead of one per
 * header: the socket's output callback runs once, and the head lands in
 * one chain (one iovec for writev, one TLS record). */
#ifndef PORTCULLIS_HWRITE_H
#define PORTCULLIS_HWRITE_H

#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

typedef struct pc_hwrite {
    struct evbuffer *out;
    size_t n;
    char buf[4096];
} pc_hwrite;

static inline void pc_hw_init(pc_hwrite *w, struct evbuffer *out)
{
    w->out = out;
    w->n = 0;
}

static inline void pc_hw_flush(pc_hwrite *w)
{
    if (w->n)
        evbuffer_add(w->out, w->buf, w->n);
    w->n = 0;
}

static inline void pc_hw_add(pc_hwrite *w, const void *d, size_t len)
{
    if (w->n + len > sizeof w->buf) {
        pc_hw_flush(w);
        if (len > sizeof w->buf) {
            evbuffer_add(w->out, d, len);
            return;
        }
    }
    memcpy(w->buf + w->n, d, len);
    w->n += len;
}

static inline void pc_hw_str(pc_hwrite *w, const char *s)
{
    pc_hw_add(w, s, strlen(s));
}

/* Decimal digits of v. */
static inline void pc_hw_u64(pc_hwrite *w, uint64_t v)
{
    char t[24];
    size_t i = sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    pc_hw_add(w, t + i, sizeof t - i);
}

/* "Name: value\r\n" */
static inline void pc_hw_header(pc_hwrite *w, const char *n, size_t nl,
                                const char *v, size_t vl)
{
    pc_hw_add(w, n, nl);
    pc_hw_add(w, ": ", 2);
    pc_hw_add(w, v, vl);
    pc_hw_add(w, "\r\n", 2);
}

#endif
