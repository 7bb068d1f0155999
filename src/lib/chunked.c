/* chunked.c: strict chunked transfer-coding decoder (see chunked.h). A
 * state machine over bytes; data runs are handed out by pointer, never
 * copied. Never allocates, never does I/O. */
#include "portcullis/chunked.h"
#include "portcullis/util.h"

enum {
    S_SIZE,        /* hex digits of the chunk size */
    S_SIZE_WS,     /* BWS between the size and ';' (bws mode) */
    S_EXT,         /* ;extension up to CR */
    S_SIZE_LF,     /* LF after the size line's CR */
    S_DATA,        /* chunk data */
    S_DATA_CR,     /* CR after the data */
    S_DATA_LF,     /* LF after the data */
    S_TRAILER,     /* a trailer line, or the empty line that ends */
    S_TRAILER_LF,  /* LF after a trailer line's CR */
    S_END_LF,      /* LF of the final empty line */
    S_DONE,
};

#define MAX_DIGITS 16
#define MAX_EXT 4096

void pc_chunked_init(pc_chunked *c, size_t max_trailer, unsigned max_fields)
{
    c->fields = 0;
    c->max_fields = max_fields;
    c->colon = 0;
    c->bws = 0;
    c->state = S_SIZE;
    c->left = 0;
    c->digits = 0;
    c->line = 0;
    c->trailer = 0;
    c->max_trailer = max_trailer;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* One byte of a trailer field line (RFC 9110 §5.1, §5.5): a token up to
 * the colon, then a field value (VCHAR, obs-text, SP, HTAB). */
static int trailer_byte(pc_chunked *c, unsigned char ch)
{
    if (c->colon)
        return (ch < 0x20 && ch != '\t') || ch == 0x7f ? -1 : 0;
    if (ch == ':') {
        if (c->line == 0)
            return -1; /* empty field name */
        c->colon = 1;
        return 0;
    }
    return pc_is_tchar(ch) ? 0 : -1;
}

void pc_chunked_allow_bws(pc_chunked *c)
{
    c->bws = 1;
}

static pc_chunked_status bad(size_t i, size_t *used, const char **err,
                             const char *why)
{
    *used = i;
    if (err)
        *err = why;
    return PC_CHUNKED_ERROR;
}

pc_chunked_status pc_chunked_decode(pc_chunked *c, const char *in, size_t len,
                                    size_t *used,
                                    void (*data)(void *ctx, const char *p,
                                                 size_t n),
                                    void *ctx, const char **err)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case S_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > MAX_DIGITS)
                    return bad(i, used, err, "chunk size too long");
                c->left = c->left << 4 | (uint64_t)v;
                i++;
                break;
            }
            if (c->digits == 0)
                return bad(i, used, err, "invalid chunk size");
            if (ch == ';') {
                c->state = S_EXT;
                c->line = 0;
            } else if (c->bws && (ch == ' ' || ch == '\t')) {
                c->state = S_SIZE_WS;
                c->line = 0;
            } else if (ch == '\r') {
                c->state = S_SIZE_LF;
            } else {
                return bad(i, used, err, "invalid character after chunk size");
            }
            i++;
            break;
        }
        case S_SIZE_WS:
            if (ch == ';') {
                c->state = S_EXT;
                c->line = 0;
            } else if (ch != ' ' && ch != '\t') {
                return bad(i, used, err, "invalid character after chunk size");
            } else if (++c->line > MAX_EXT) {
                return bad(i, used, err, "chunk extension too long");
            }
            i++;
            break;
        case S_EXT:
            if (ch == '\r') {
                c->state = S_SIZE_LF;
            } else if (ch == '\t' && c->bws) {
                if (++c->line > MAX_EXT)
                    return bad(i, used, err, "chunk extension too long");
            } else if (ch < 0x20 || ch == 0x7f) {
                /* includes bare LF and NUL */
                return bad(i, used, err, "invalid chunk extension");
            } else if (++c->line > MAX_EXT) {
                return bad(i, used, err, "chunk extension too long");
            }
            i++;
            break;
        case S_SIZE_LF:
            if (ch != '\n')
                return bad(i, used, err, "expected LF after chunk size");
            i++;
            c->digits = 0;
            if (c->left == 0) {
                c->state = S_TRAILER;
                c->line = 0;
            } else {
                c->state = S_DATA;
            }
            break;
        case S_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->left)
                n = (size_t)c->left;
            if (data)
                data(ctx, in + i, n);
            c->left -= n;
            i += n;
            if (c->left == 0)
                c->state = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
            if (ch != '\r')
                return bad(i, used, err, "chunk data not followed by CRLF");
            c->state = S_DATA_LF;
            i++;
            break;
        case S_DATA_LF:
            if (ch != '\n')
                return bad(i, used, err, "chunk data not followed by CRLF");
            c->state = S_SIZE;
            c->left = 0;
            i++;
            break;
        case S_TRAILER:
            if (++c->trailer > c->max_trailer)
                return bad(i, used, err, "trailer section too large");
            if (ch == '\r') {
                if (c->line > 0 && !c->colon)
                    return bad(i, used, err, "trailer line without a colon");
                c->state = c->line == 0 ? S_END_LF : S_TRAILER_LF;
            } else if (c->line == 0 && (ch == ' ' || ch == '\t')) {
                return bad(i, used, err, "obs-fold in trailer");
            } else if (trailer_byte(c, ch) != 0) {
                return bad(i, used, err, "invalid trailer line");
            } else if (c->line++ == 0 && ++c->fields > c->max_fields) {
                return bad(i, used, err, "too many trailer fields");
            }
            i++;
            break;
        case S_TRAILER_LF:
            if (ch != '\n')
                return bad(i, used, err, "expected LF after trailer line");
            c->state = S_TRAILER;
            c->line = 0;
            c->colon = 0;
            i++;
            break;
        case S_END_LF:
            if (ch != '\n')
                return bad(i, used, err, "expected LF after last chunk");
            c->state = S_DONE;
            i++;
            *used = i;
            return PC_CHUNKED_DONE;
        default:
            *used = i;
            return PC_CHUNKED_DONE;
        }
    }
    *used = i;
    return c->state == S_DONE ? PC_CHUNKED_DONE : PC_CHUNKED_MORE;
}
