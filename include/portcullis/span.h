/* span.h: a piece of a message head (request target, header name or
 * value) gathered from llhttp's span callbacks without copying it when it
 * can be helped. llhttp hands each piece as pointers into the buffer it
 * is executing, in one call when the piece lies inside that buffer (the
 * usual case: a whole head in one read), in several when it crosses the
 * end of a read. So a span first borrows llhttp's bytes; a second piece,
 * or pc_span_keep() called after llhttp_execute returns and before its
 * input is drained, copies it into a buffer of its own (malloc, kept for
 * the next piece until pc_span_free). Header-only, no I/O. */
#ifndef PORTCULLIS_SPAN_H
#define PORTCULLIS_SPAN_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/util.h"

typedef struct pc_span {
    const char *p; /* len bytes: borrowed from llhttp's input, or own */
    size_t len;
    char *own;     /* NUL-terminated copy when the piece had to be kept */
    size_t ownlen, owncap;
} pc_span;

/* Appends n bytes to the span's own buffer (grows it; aborts on OOM). */
static inline void pc_span_own_add(pc_span *s, const char *at, size_t n)
{
    if (s->ownlen + n + 1 > s->owncap) {
        size_t cap = s->owncap ? s->owncap : 128;
        while (cap < s->ownlen + n + 1)
            cap *= 2;
        s->own = pc_xrealloc(s->own, cap);
        s->owncap = cap;
    }
    memcpy(s->own + s->ownlen, at, n);
    s->ownlen += n;
    s->own[s->ownlen] = '\0';
}

static inline int pc_span_borrowed(const pc_span *s)
{
    return s->len > 0 && s->p != s->own;
}

/* A piece from llhttp: borrowed when it is the first, else appended to
 * the own copy (made now if the first piece was borrowed). */
static inline void pc_span_add(pc_span *s, const char *at, size_t n)
{
    if (s->len == 0) {
        s->p = at;
        s->len = n;
        return;
    }
    if (pc_span_borrowed(s)) {
        s->ownlen = 0;
        pc_span_own_add(s, s->p, s->len);
    }
    pc_span_own_add(s, at, n);
    s->p = s->own;
    s->len = s->ownlen;
}

/* The input llhttp executed is about to be drained: copy a borrowed
 * piece. */
static inline void pc_span_keep(pc_span *s)
{
    if (!pc_span_borrowed(s))
        return;
    s->ownlen = 0;
    pc_span_own_add(s, s->p, s->len);
    s->p = s->own;
}

/* Empty again (the own buffer stays for the next piece). */
static inline void pc_span_reset(pc_span *s)
{
    s->p = NULL;
    s->len = 0;
    s->ownlen = 0;
}

static inline void pc_span_free(pc_span *s)
{
    free(s->own);
    memset(s, 0, sizeof *s);
}

#endif
