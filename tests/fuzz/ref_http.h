/* ref_http.h: a small strict HTTP/1.1 message parser used as the fuzz
 * targets' oracle (fuzz_http.c, fuzz_response.c). It shares no code with
 * the gateway (no llhttp, no http/framing.c, no lib/chunked.c): it is the
 * independent reading of RFC 9112 the gateway's own reading is compared
 * with, so it stays small and obviously strict rather than fast.
 *
 *   head:    start line, field lines, empty line; every line ends in CRLF
 *            (no bare LF or CR, no obs-fold, no space before the colon);
 *            status line "HTTP/1.0" or "HTTP/1.1", SP, exactly 3 digits
 *   framing: one Content-Length of 1*DIGIT fitting a u64, or one
 *            Transfer-Encoding that is exactly "chunked", never both;
 *            responses: 1xx end at their head, 101 and status outside
 *            100..599 are invalid, HEAD/204/304 have no body, otherwise a
 *            response without framing fields is delimited by close
 *   chunked: 1*HEXDIG size (<= 16 digits), optional ;extension, CRLF,
 *            data, CRLF; trailer field lines after the last chunk
 *
 * Everything is static inline so that each target includes it without
 * unused-function warnings. Bodies are decoded into malloc'd memory owned
 * by the ref_msg (ref_msg_free). */
#ifndef FUZZ_REF_HTTP_H
#define FUZZ_REF_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum { REF_OK = 0, REF_MORE = 1, REF_BAD = -1 } ref_status;

typedef enum {
    REF_FRAME_NONE = 0, /* no body */
    REF_FRAME_LENGTH,   /* Content-Length */
    REF_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
    REF_FRAME_CLOSE,    /* until the connection closes (responses) */
} ref_frame;

typedef struct ref_field {
    const unsigned char *name, *value; /* point into the parsed input */
    size_t nlen, vlen;                 /* value without surrounding OWS */
} ref_field;

typedef struct ref_msg {
    /* request line */
    const unsigned char *method, *target;
    size_t mlen, tlen;
    /* status line */
    int status;
    int minor;           /* HTTP/1.minor */
    ref_field *f;        /* header fields (malloc) */
    size_t nf, fcap;
    size_t head_len;     /* bytes of the head, final CRLF included */
    ref_frame frame;
    uint64_t length;     /* REF_FRAME_LENGTH */
    int interim;         /* a 1xx response head */
    int close_after;     /* HTTP/1.0 request with Transfer-Encoding */
    int keepalive;       /* the connection may carry another message */
    unsigned char *body; /* decoded body (malloc), blen bytes */
    size_t blen, bcap;
    size_t len;          /* bytes of the whole message (head + body) */
    const char *why;     /* REF_BAD: the rule that was broken */
} ref_msg;

static inline void ref_msg_free(ref_msg *m)
{
    free(m->f);
    free(m->body);
    memset(m, 0, sizeof *m);
}

static inline int ref_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* field-vchar, SP, HTAB (RFC 9110 §5.5) */
static inline int ref_vchar_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static inline int ref_ieq(const unsigned char *a, size_t n, const char *b)
{
    if (strlen(b) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

static inline size_t ref_count(const ref_msg *m, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < m->nf; i++)
        c += ref_ieq(m->f[i].name, m->f[i].nlen, name);
    return c;
}

static inline const ref_field *ref_get(const ref_msg *m, const char *name)
{
    for (size_t i = 0; i < m->nf; i++)
        if (ref_ieq(m->f[i].name, m->f[i].nlen, name))
            return &m->f[i];
    return NULL;
}

/* Does a comma-separated list value contain tok (case-insensitive)? */
static inline int ref_list_has(const ref_field *f, const char *tok)
{
    size_t i = 0;
    while (i < f->vlen) {
        while (i < f->vlen && (f->value[i] == ' ' || f->value[i] == '\t' ||
                               f->value[i] == ','))
            i++;
        size_t s = i;
        while (i < f->vlen && f->value[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (f->value[e - 1] == ' ' || f->value[e - 1] == '\t'))
            e--;
        if (e > s && ref_ieq(f->value + s, e - s, tok))
            return 1;
    }
    return 0;
}

static inline int ref_any_list_has(const ref_msg *m, const char *name,
                                   const char *tok)
{
    for (size_t i = 0; i < m->nf; i++)
        if (ref_ieq(m->f[i].name, m->f[i].nlen, name) &&
            ref_list_has(&m->f[i], tok))
            return 1;
    return 0;
}

static inline ref_status ref_bad(ref_msg *m, const char *why)
{
    m->why = why;
    return REF_BAD;
}

/* Finds the CRLF ending the line that starts at off: 1 with *eol at the
 * CR and *next after the LF, 0 when more input is needed, -1 for a bare
 * LF or a CR not followed by LF. */
static inline int ref_line(const unsigned char *p, size_t n, size_t off,
                           size_t *eol, size_t *next)
{
    for (size_t i = off; i < n; i++) {
        if (p[i] == '\n')
            return -1;
        if (p[i] == '\r') {
            if (i + 1 == n)
                return 0;
            if (p[i + 1] != '\n')
                return -1;
            *eol = i;
            *next = i + 2;
            return 1;
        }
    }
    return 0;
}

static inline void ref_add_field(ref_msg *m, const unsigned char *name,
                                 size_t nlen, const unsigned char *v,
                                 size_t vlen)
{
    if (m->nf == m->fcap) {
        m->fcap = m->fcap ? m->fcap * 2 : 16;
        m->f = realloc(m->f, m->fcap * sizeof *m->f);
        if (!m->f)
            abort();
    }
    m->f[m->nf++] = (ref_field){name, v, nlen, vlen};
}

static inline void ref_body_add(ref_msg *m, const unsigned char *p, size_t n)
{
    if (m->blen + n > m->bcap) {
        size_t cap = m->bcap ? m->bcap : 256;
        while (cap < m->blen + n)
            cap *= 2;
        m->body = realloc(m->body, cap);
        if (!m->body)
            abort();
        m->bcap = cap;
    }
    if (n)
        memcpy(m->body + m->blen, p, n);
    m->blen += n;
}

/* "HTTP/1.d" at p (8 bytes available): the minor digit, or -1. */
static inline int ref_version(const unsigned char *p)
{
    if (memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return -1;
    return p[7] - '0';
}

/* FUZZ_KNOWN is a comma-separated list of open findings a run may look
 * past while they are being fixed; unset (the default, and `make fuzz`),
 * every rule applies. The names are listed where they are used. */
static inline int ref_known(const char *name)
{
    const char *k = getenv("FUZZ_KNOWN");
    size_t n = strlen(name);
    for (const char *p = k; p && (p = strstr(p, name)); p += n)
        if ((p == k || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* "tab-in-target": a request-target may hold HTAB and FF, the two
 * controls llhttp 8.1.0 takes inside a URL and the gateway forwards in
 * the query. */
static inline int ref_target_ctl_ok(unsigned char c)
{
    static int known = -1;
    if (known < 0)
        known = ref_known("tab-in-target");
    return known && (c == '\t' || c == '\f');
}

static inline ref_status ref_request_line(ref_msg *m, const unsigned char *p,
                                          size_t n)
{
    size_t i = 0;
    while (i < n && ref_tchar(p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return ref_bad(m, "request line: method");
    m->method = p;
    m->mlen = i;
    /* RFC 9112 §3 lets a recipient split on runs of SP (llhttp does):
     * where the parts are does not change where the message ends. */
    while (i < n && p[i] == ' ')
        i++;
    size_t t = i;
    /* VCHAR and obs-text: bytes above 0x7F are pathnorm's business (it
     * keeps them, as nginx does); they never change where a message ends. */
    while (i < n && ((p[i] >= 0x21 && p[i] != 0x7f) || ref_target_ctl_ok(p[i])))
        i++;
    if (i == t || i == n || p[i] != ' ')
        return ref_bad(m, "request line: target");
    m->target = p + t;
    m->tlen = i - t;
    while (i < n && p[i] == ' ')
        i++;
    if (n - i != 8 || (m->minor = ref_version(p + i)) < 0 || m->minor > 1)
        return ref_bad(m, "request line: version");
    return REF_OK;
}

static inline ref_status ref_status_line(ref_msg *m, const unsigned char *p,
                                         size_t n)
{
    if (n < 12 || (m->minor = ref_version(p)) < 0 || m->minor > 1 ||
        p[8] != ' ')
        return ref_bad(m, "status line: version");
    for (int k = 9; k < 12; k++)
        if (p[k] < '0' || p[k] > '9')
            return ref_bad(m, "status line: status code");
    m->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (n > 12 && p[12] != ' ')
        return ref_bad(m, "status line: after status code");
    /* The reason phrase (its SP is commonly left out when empty) is never
     * forwarded: the gateway writes its own. */
    return REF_OK;
}

/* Parses the head at p[0..n). REF_OK with m->head_len set, REF_MORE, or
 * REF_BAD with m->why. */
static inline ref_status ref_head(const unsigned char *p, size_t n,
                                  int is_request, ref_msg *m)
{
    size_t eol = 0, off = 0;
    int r = ref_line(p, n, 0, &eol, &off);
    if (r < 0)
        return ref_bad(m, "start line: bare CR or LF");
    if (r == 0)
        return REF_MORE;
    ref_status st = is_request ? ref_request_line(m, p, eol)
                               : ref_status_line(m, p, eol);
    if (st != REF_OK)
        return st;
    for (;;) {
        size_t next = 0;
        r = ref_line(p, n, off, &eol, &next);
        if (r < 0)
            return ref_bad(m, "field line: bare CR or LF");
        if (r == 0)
            return REF_MORE;
        if (eol == off) {
            m->head_len = next;
            return REF_OK;
        }
        const unsigned char *l = p + off;
        size_t len = eol - off, i = 0;
        if (l[0] == ' ' || l[0] == '\t')
            return ref_bad(m, "field line: obs-fold");
        while (i < len && ref_tchar(l[i]))
            i++;
        if (i == 0 || i == len || l[i] != ':')
            return ref_bad(m, "field line: name");
        size_t vs = i + 1, ve = len;
        while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
            vs++;
        while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
            ve--;
        for (size_t k = vs; k < ve; k++)
            if (!ref_vchar_ws(l[k]))
                return ref_bad(m, "field line: value");
        ref_add_field(m, l, i, l + vs, ve - vs);
        off = next;
    }
}

static inline int ref_parse_u64(const unsigned char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Content-Length / Transfer-Encoding, common to both directions. */
static inline ref_status ref_fields_framing(ref_msg *m)
{
    size_t ncl = ref_count(m, "content-length");
    size_t nte = ref_count(m, "transfer-encoding");
    m->frame = REF_FRAME_NONE;
    if (ncl && nte)
        return ref_bad(m, "both Content-Length and Transfer-Encoding");
    if (nte) {
        const ref_field *te = ref_get(m, "transfer-encoding");
        if (nte > 1 || !ref_ieq(te->value, te->vlen, "chunked"))
            return ref_bad(m, "Transfer-Encoding other than one chunked");
        m->frame = REF_FRAME_CHUNKED;
        return REF_OK;
    }
    if (ncl > 1)
        return ref_bad(m, "more than one Content-Length");
    if (ncl) {
        const ref_field *cl = ref_get(m, "content-length");
        if (ref_parse_u64(cl->value, cl->vlen, &m->length) != 0)
            return ref_bad(m, "invalid Content-Length");
        m->frame = REF_FRAME_LENGTH;
    }
    return REF_OK;
}

static inline ref_status ref_request_framing(ref_msg *m)
{
    if (ref_fields_framing(m) != REF_OK)
        return REF_BAD;
    m->close_after = m->frame == REF_FRAME_CHUNKED && m->minor == 0;
    int close = ref_any_list_has(m, "connection", "close");
    int ka = ref_any_list_has(m, "connection", "keep-alive");
    m->keepalive = !close && !m->close_after && (m->minor == 1 || ka);
    return REF_OK;
}

static inline ref_status ref_response_framing(ref_msg *m, int head_request)
{
    if (m->status < 100 || m->status > 599)
        return ref_bad(m, "status outside 100..599");
    if (m->status == 101)
        return ref_bad(m, "101 without an upgrade");
    if (m->status < 200) {
        m->interim = 1;
        m->frame = REF_FRAME_NONE;
        return REF_OK;
    }
    if (ref_fields_framing(m) != REF_OK)
        return REF_BAD;
    if (head_request || m->status == 204 || m->status == 304)
        m->frame = REF_FRAME_NONE;
    else if (m->frame == REF_FRAME_NONE)
        m->frame = REF_FRAME_CLOSE;
    m->keepalive = !ref_any_list_has(m, "connection", "close") &&
                   (m->minor == 1 || ref_any_list_has(m, "connection", "keep-alive")) &&
                   m->frame != REF_FRAME_CLOSE;
    return REF_OK;
}

static inline int ref_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Chunked body from p[off..n): decoded into m->body; *end after the final
 * CRLF. On REF_MORE, m->body holds the data decoded so far. */
/* bws: a response body, where RFC 9112 §7.1.1 whitespace is accepted
 * (BWS before ';' and HTAB in extensions: they are dropped, never
 * forwarded); request bodies keep the strict grammar. */
static inline ref_status ref_chunked(const unsigned char *p, size_t n,
                                     size_t off, ref_msg *m, size_t *end,
                                     int bws)
{
    size_t i = off, eol = 0, next = 0;
    for (;;) {
        int r = ref_line(p, n, i, &eol, &next);
        if (r < 0)
            return ref_bad(m, "chunk size line: bare CR or LF");
        /* an unfinished line is checked up to its possible CR */
        size_t stop = r ? eol : n - (n > i && p[n - 1] == '\r'), k = i;
        uint64_t size = 0;
        while (k < stop && ref_hex(p[k]) >= 0) {
            if (k - i == 16)
                return ref_bad(m, "chunk size too long");
            size = size << 4 | (uint64_t)ref_hex(p[k]);
            k++;
        }
        size_t ext = k;
        while (bws && k > i && ext < stop && (p[ext] == ' ' || p[ext] == '\t'))
            ext++;
        if (k < stop) {
            if (k == i)
                return ref_bad(m, "chunk size");
            if (ext == stop && !r)
                return REF_MORE; /* whitespace so far: ';' may follow */
            if (ext == stop || p[ext] != ';')
                return ref_bad(m, "chunk size");
        }
        for (size_t x = ext; x < stop; x++)
            if ((p[x] < 0x20 && !(bws && p[x] == '\t')) || p[x] == 0x7f)
                return ref_bad(m, "chunk extension");
        if (!r)
            return REF_MORE;
        if (k == i)
            return ref_bad(m, "empty chunk size");
        i = next;
        if (size == 0)
            break;
        size_t have = n - i;
        if ((uint64_t)have < size) {
            ref_body_add(m, p + i, have);
            return REF_MORE;
        }
        ref_body_add(m, p + i, (size_t)size);
        i += (size_t)size;
        if (n - i < 2)
            return (n - i == 1 && p[i] != '\r') ? ref_bad(m, "chunk data end")
                                               : REF_MORE;
        if (p[i] != '\r' || p[i + 1] != '\n')
            return ref_bad(m, "chunk data not followed by CRLF");
        i += 2;
    }
    for (;;) { /* trailer section */
        int r = ref_line(p, n, i, &eol, &next);
        if (r < 0)
            return ref_bad(m, "trailer: bare CR or LF");
        size_t stop = r ? eol : n - (n > i && p[n - 1] == '\r'), k = i;
        if (stop > i && (p[i] == ' ' || p[i] == '\t'))
            return ref_bad(m, "trailer: obs-fold");
        while (k < stop && ref_tchar(p[k]))
            k++;
        if (k < stop && (k == i || p[k] != ':'))
            return ref_bad(m, "trailer: name");
        for (size_t x = k + 1; x < stop; x++)
            if (!ref_vchar_ws(p[x]))
                return ref_bad(m, "trailer: value");
        if (!r)
            return REF_MORE;
        if (eol == i) {
            *end = next;
            return REF_OK;
        }
        if (k == stop)
            return ref_bad(m, "trailer: line without a colon");
        i = next;
    }
}

/* One whole message at p[0..n): head, framing, body. at_eof: the peer
 * closed after these bytes (ends a close-delimited body). head_request:
 * a response to HEAD. On REF_OK, m->len is the message's size; a REF_MORE
 * after the head leaves head_len, frame and the partial body set. */
static inline ref_status ref_message_at(const unsigned char *p, size_t n,
                                        int is_request, int head_request,
                                        int at_eof, ref_msg *m)
{
    ref_status st = ref_head(p, n, is_request, m);
    if (st != REF_OK)
        return st;
    st = is_request ? ref_request_framing(m)
                    : ref_response_framing(m, head_request);
    if (st != REF_OK)
        return st;
    size_t h = m->head_len, have = n - h;
    switch (m->frame) {
    case REF_FRAME_NONE:
        m->len = h;
        return REF_OK;
    case REF_FRAME_LENGTH:
        if ((uint64_t)have < m->length) {
            ref_body_add(m, p + h, have);
            return REF_MORE;
        }
        ref_body_add(m, p + h, (size_t)m->length);
        m->len = h + (size_t)m->length;
        return REF_OK;
    case REF_FRAME_CHUNKED:
        return ref_chunked(p, n, h, m, &m->len, !is_request);
    case REF_FRAME_CLOSE:
        ref_body_add(m, p + h, have);
        m->len = n;
        return at_eof ? REF_OK : REF_MORE;
    }
    return REF_BAD;
}

/* RFC 9112 §2.2: empty lines before a request line are ignored (they
 * count in m->len); a response starts at its status line. */
static inline ref_status ref_message(const unsigned char *p, size_t n,
                                     int is_request, int head_request,
                                     int at_eof, ref_msg *m)
{
    size_t skip = 0;
    while (is_request && n - skip >= 2 && p[skip] == '\r' && p[skip + 1] == '\n')
        skip += 2;
    ref_status st = ref_message_at(p + skip, n - skip, is_request, head_request,
                                   at_eof, m);
    m->len += skip;
    return st;
}

/* The path and query of a request target (origin-form or absolute-form
 * http(s)://authority/...): 0, or -1 for another form. */
static inline int ref_target_split(const ref_msg *m, const unsigned char **path,
                                   size_t *plen, const unsigned char **query,
                                   size_t *qlen)
{
    const unsigned char *t = m->target, *end = m->target + m->tlen;
    if (m->tlen == 0)
        return -1;
    if (t[0] != '/') {
        size_t skip = m->tlen > 7 && ref_ieq(t, 7, "http://")    ? 7
                      : m->tlen > 8 && ref_ieq(t, 8, "https://") ? 8
                                                                 : 0;
        if (!skip)
            return -1;
        t += skip;
        while (t < end && *t != '/' && *t != '?')
            t++;
    }
    const unsigned char *q = memchr(t, '?', (size_t)(end - t));
    *path = t;
    *plen = (size_t)((q ? q : end) - t);
    *query = q ? q + 1 : NULL;
    *qlen = q ? (size_t)(end - q - 1) : 0;
    return 0;
}

#endif
