/* framing.c: message framing (see framing.h). Owns the reading of
 * Content-Length and Transfer-Encoding on both sides and the writing of the
 * framing field of every head we send. Never does I/O, never allocates.
 *
 * The rules are stricter than RFC 9112 allows a recipient to be, because a
 * gateway that frames a message differently from the next hop is the whole
 * of request smuggling and response desync:
 *  - one Content-Length field at most, 1*DIGIT, at most 2^63 - 1 (a larger
 *    value is one that peers storing lengths in a signed 64-bit integer,
 *    as most do, would read as negative or "absent");
 *  - Transfer-Encoding only as one field whose value is exactly `chunked`
 *    (any other coding, list or repetition is refused: we would have to
 *    forward a coding we do not decode);
 *  - never both;
 *  - a response status outside 100..599, or 101 (no upgrade is ever asked
 *    for), is invalid; a 1xx ends at its header section (RFC 9110 §15.2). */
#include "portcullis/framing.h"

#include "portcullis/hwrite.h"
#include "portcullis/util.h"

int pc_framing_parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < '0' || ch > '9')
            return -1;
        unsigned d = ch - '0';
        if (x > (PC_FRAMING_MAX_LENGTH - d) / 10)
            return -1; /* does not fit: an error, never "absent" */
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* The framing fields of a header section, counted and checked. */
typedef struct fields {
    unsigned ncl, nte;
    const pc_header *cl, *te;
} fields;

static void collect(const pc_headers *h, fields *f)
{
    f->ncl = f->nte = 0;
    f->cl = f->te = NULL;
    for (uint32_t i = 0; i < h->n; i++) {
        const pc_header *x = &h->v[i];
        if (pc_strieq(x->name, x->nlen, "content-length", 14)) {
            f->ncl++;
            f->cl = x;
        } else if (pc_strieq(x->name, x->nlen, "transfer-encoding", 17)) {
            f->nte++;
            f->te = x;
        }
    }
}

/* Shared by both directions: the framing the fields describe when the
 * message has a body at all. */
static int from_fields(const fields *f, pc_framing *out, const char **why)
{
    if (f->nte && f->ncl) {
        *why = "both Content-Length and Transfer-Encoding";
        return -1;
    }
    if (f->nte) {
        if (f->nte > 1 || !pc_strieq(f->te->value, f->te->vlen, "chunked", 7)) {
            *why = "transfer coding other than a lone chunked";
            return -1;
        }
        out->kind = PC_FRAME_CHUNKED;
        return 0;
    }
    if (f->ncl > 1) {
        *why = "more than one Content-Length";
        return -1;
    }
    if (f->ncl) {
        if (pc_framing_parse_length(f->cl->value, f->cl->vlen, &out->length) != 0) {
            *why = "invalid Content-Length";
            return -1;
        }
        out->kind = PC_FRAME_LENGTH;
        out->has_length = 1;
    }
    return 0;
}

int pc_framing_request(const pc_headers *h, int http_minor, pc_framing *out,
                       const char **why)
{
    fields f;
    *out = (pc_framing){.kind = PC_FRAME_NONE};
    collect(h, &f);
    if (from_fields(&f, out, why) != 0)
        return -1;
    /* RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding: framing
     * cannot be trusted beyond this message. */
    if (f.nte && http_minor == 0)
        out->close_after = 1;
    return 0;
}

int pc_framing_response(const pc_headers *h, int status, int head_request,
                        pc_framing *out, const char **why)
{
    fields f;
    *out = (pc_framing){.kind = PC_FRAME_NONE};
    if (status < 100 || status > 599) {
        *why = "status code outside 100..599";
        return -1;
    }
    if (status == 101) {
        *why = "101 Switching Protocols without an upgrade request";
        return -1;
    }
    if (status < 200) {
        out->kind = PC_FRAME_INTERIM;
        return 0;
    }
    collect(h, &f);
    if (from_fields(&f, out, why) != 0)
        return -1;
    if (head_request || status == 204 || status == 304) {
        /* No body follows; a Content-Length describes the representation
         * (never for 204, RFC 9110 §8.6). */
        out->kind = PC_FRAME_NONE;
        if (status == 204)
            out->has_length = 0, out->length = 0;
        return 0;
    }
    if (out->kind == PC_FRAME_NONE)
        out->kind = PC_FRAME_CLOSE;
    return 0;
}

pc_framing pc_framing_out(const pc_framing *in, int peer_minor)
{
    pc_framing o = *in;
    if (in->kind == PC_FRAME_CHUNKED || in->kind == PC_FRAME_CLOSE) {
        o.kind = peer_minor >= 1 ? PC_FRAME_CHUNKED : PC_FRAME_CLOSE;
        o.has_length = 0;
        o.length = 0;
    }
    return o;
}

void pc_framing_write_header(const pc_framing *f, int status, pc_hwrite *w)
{
    if (f->kind == PC_FRAME_CHUNKED) {
        pc_hw_header(w, "Transfer-Encoding", 17, "chunked", 7);
        return;
    }
    if (status == 204)
        return;
    if (f->kind == PC_FRAME_LENGTH ||
        (f->kind == PC_FRAME_NONE && f->has_length)) {
        pc_hw_add(w, "Content-Length: ", 16);
        pc_hw_u64(w, f->length);
        pc_hw_add(w, "\r\n", 2);
    }
}

int pc_framing_has_body(const pc_framing *f)
{
    return (f->kind == PC_FRAME_LENGTH && f->length > 0) ||
           f->kind == PC_FRAME_CHUNKED || f->kind == PC_FRAME_CLOSE;
}
