/* pathnorm.c: request path normalisation (CONTRACT §3 "Paths"), the step
 * that stops "/api/../admin" style traversal past a route prefix. Owns no
 * state and never allocates. It must never decode a reserved character
 * (%2F stays "%2F" and so never becomes a separator) and must never let a
 * ".." climb above "/" silently: that is reported as PC_PATH_CLIMB.
 *
 * One pass, segment by segment. Each segment is decoded into out right
 * where it will stay; only then is it compared with "." and "..", so that
 * "%2e", ".%2E" and "%2e%2e" are dot segments exactly like "." and "..",
 * while "..%2F" is an ordinary segment. The write index never passes the
 * read index, so out may be the same buffer as in. */
#include "portcullis/pathnorm.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 §2.3: ALPHA DIGIT - . _ ~ */
static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int is_forbidden(unsigned char c)
{
    return c < 0x21 || c == 0x7F || c == '#';
}

/* Decodes the segment starting at in[*ip] (up to the next '/' or the end)
 * into out[*op..]. Returns 0, or -1 on a bad byte or a bad %XX. */
static int copy_segment(const char *in, size_t inlen, size_t *ip, char *out,
                        size_t *op)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = *ip, o = *op;

    while (i < inlen && in[i] != '/') {
        unsigned char c = (unsigned char)in[i];
        if (is_forbidden(c))
            return -1;
        if (c != '%') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (inlen - i < 3)
            return -1;
        int hi = hexval((unsigned char)in[i + 1]);
        int lo = hexval((unsigned char)in[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        unsigned char v = (unsigned char)(hi << 4 | lo);
        i += 3;
        if (is_unreserved(v)) {
            out[o++] = (char)v;
        } else {
            out[o++] = '%';
            out[o++] = hex[hi];
            out[o++] = hex[lo];
        }
    }
    *ip = i;
    *op = o;
    return 0;
}

pc_path_status pc_path_normalize(const char *in, size_t inlen, char *out,
                                 size_t *outlen)
{
    size_t i = 0, o = 0;

    if (inlen == 0 || in[0] != '/')
        return PC_PATH_BAD;
    /* Invariant: out[0..o) is the normalised path so far, "" or "/seg..."
     * with no trailing '/' pending; each loop turn consumes "/" + segment. */
    while (i < inlen) {
        size_t seg_out = o + 1;
        i++; /* the '/' */
        out[o] = '/';
        size_t s = seg_out;
        if (copy_segment(in, inlen, &i, out, &s) < 0)
            return PC_PATH_BAD;
        size_t seglen = s - seg_out;
        int last = i >= inlen;
        if (seglen == 1 && out[seg_out] == '.') {
            /* "." vanishes; as the last segment it leaves the '/' before
             * it, so "/a/." is "/a/" (RFC 3986 §5.2.4 step 2B). */
            if (last)
                o++;
            continue;
        }
        if (seglen == 2 && out[seg_out] == '.' && out[seg_out + 1] == '.') {
            if (o == 0)
                return PC_PATH_CLIMB;
            while (o > 0 && out[o - 1] != '/')
                o--;
            o--; /* the '/' that began the removed segment */
            if (last) {
                out[o] = '/';
                o++;
            }
            continue;
        }
        o = s;
    }
    out[o] = '\0';
    *outlen = o;
    return PC_PATH_OK;
}
