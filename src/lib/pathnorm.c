/* pathnorm.c: the request target's path and Host checks (CONTRACT §3
 * "Paths"), the step that stops "/api/../admin" style traversal past a
 * route prefix and every path or host an upstream could read differently
 * from the gateway. Owns no state and never allocates.
 *
 * Paths. It must never decode a reserved character (%2F stays "%2F" and so
 * never becomes a separator) and must never let a ".." climb above "/"
 * silently: that is PC_PATH_CLIMB. It also refuses what upstreams disagree
 * on, the way Spring Security's StrictHttpFirewall does: "//" (nginx merges
 * it), ';' (Tomcat and Spring drop path parameters, so "/..;/" is a dot
 * segment to them), encoded control characters, and segments ending in '.'
 * or an encoded space (Windows drops those).
 *
 * One pass, segment by segment. Each segment is decoded into out right
 * where it will stay; only then is it compared with "." and "..", so that
 * "%2e", ".%2E" and "%2e%2e" are dot segments exactly like "." and "..",
 * while "..%2F" is an ordinary segment. The write index never passes the
 * read index, so out may be the same buffer as in.
 *
 * Hosts. A hand-written RFC 3986 §3.2.2 parser narrowed to what DNS and the
 * IP stacks accept, so that the host the routes match on is the host the
 * upstream will see. */
#include "portcullis/pathnorm.h"

#define MAX_LABEL 63
#define MAX_NAME 253

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

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);
}

/* RFC 3986 §2.3: ALPHA DIGIT - . _ ~ */
static int is_unreserved(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_forbidden(unsigned char c)
{
    return c < 0x21 || c == 0x7F || c == '#';
}

/* Decodes the segment starting at in[*ip] (up to the next '/' or the end)
 * into out[*op..]. *lastc gets the segment's last byte after decoding (so
 * ' ' only from %20, raw spaces being refused), -1 when it is empty. */
static pc_path_status copy_segment(const char *in, size_t inlen, size_t *ip,
                                   char *out, size_t *op, int *lastc)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = *ip, o = *op;

    *lastc = -1;
    while (i < inlen && in[i] != '/') {
        unsigned char c = (unsigned char)in[i];
        if (is_forbidden(c))
            return PC_PATH_BAD;
        if (c == ';')
            return PC_PATH_PARAM;
        *lastc = c;
        if (c != '%') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (inlen - i < 3)
            return PC_PATH_BAD;
        int hi = hexval((unsigned char)in[i + 1]);
        int lo = hexval((unsigned char)in[i + 2]);
        if (hi < 0 || lo < 0)
            return PC_PATH_BAD;
        unsigned char v = (unsigned char)(hi << 4 | lo);
        if (v < 0x20 || v == 0x7F)
            return PC_PATH_CONTROL;
        *lastc = v;
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
    return PC_PATH_OK;
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
        if (i < inlen && in[i] == '/')
            return PC_PATH_EMPTY_SEGMENT; /* only the last may be empty */
        out[o] = '/';
        size_t s = seg_out;
        int lastc;
        pc_path_status st = copy_segment(in, inlen, &i, out, &s, &lastc);
        if (st != PC_PATH_OK)
            return st;
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
        if (lastc == '.')
            return PC_PATH_TRAILING_DOT;
        if (lastc == ' ')
            return PC_PATH_TRAILING_SPACE;
        o = s;
    }
    out[o] = '\0';
    *outlen = o;
    return PC_PATH_OK;
}

const char *pc_path_status_message(pc_path_status st)
{
    switch (st) {
    case PC_PATH_OK:
        return "ok";
    case PC_PATH_BAD:
        return "invalid character or escape in path";
    case PC_PATH_CLIMB:
        return "path climbs above the root";
    case PC_PATH_EMPTY_SEGMENT:
        return "empty path segment";
    case PC_PATH_PARAM:
        return "';' in path";
    case PC_PATH_CONTROL:
        return "encoded control character in path";
    case PC_PATH_TRAILING_DOT:
        return "path segment ends in '.'";
    case PC_PATH_TRAILING_SPACE:
        return "path segment ends in an encoded space";
    }
    return "invalid path";
}

/* RFC 3986 dec-octet x4: 0-255 each, 1-3 digits, no leading zero. */
static int ipv4_ok(const char *s, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && i - start < 3 && is_digit((unsigned char)s[i]))
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t len = i - start;
        if (len == 0 || v > 255 || (len > 1 && s[start] == '0'))
            return 0;
    }
    return i == n;
}

/* RFC 3986 IPv6address: h16 groups of 1-4 hex digits separated by ':', at
 * most one "::" standing for one or more zero groups, an optional dotted
 * quad as the last two groups; 8 groups in all without "::", 7 at most
 * with it. */
static int ipv6_ok(const char *s, size_t n)
{
    size_t i = 0;
    int groups = 0, dcolon = 0;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        dcolon = 1;
        i = 2;
    }
    while (i < n) {
        size_t start = i;
        while (i < n && i - start < 5 && hexval((unsigned char)s[i]) >= 0)
            i++;
        if (i < n && s[i] == '.') {
            if (!ipv4_ok(s + start, n - start))
                return 0;
            groups += 2;
            break;
        }
        if (i == start || i - start > 4)
            return 0;
        groups++;
        if (i == n)
            break;
        if (s[i] != ':' || ++i == n)
            return 0; /* not a separator, or a lone ':' at the end */
        if (s[i] == ':') {
            if (dcolon)
                return 0;
            dcolon = 1;
            i++;
        }
    }
    return dcolon ? groups <= 7 : groups == 8;
}

/* True when the label s[0..n) is a number to an address parser that takes
 * shorthand forms (inet_aton, WHATWG URL): decimal, or 0x and hex. */
static int numeric_label(const char *s, size_t n)
{
    size_t i = 0;

    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        for (i = 2; i < n && hexval((unsigned char)s[i]) >= 0; i++)
            ;
    else
        for (; i < n && is_digit((unsigned char)s[i]); i++)
            ;
    return n > 0 && i == n;
}

/* Labels of s[0..n) (trailing dot already removed). Returns NULL when they
 * are all valid, else the reason; *last_label gets the last one's start. */
static const char *check_labels(const char *s, size_t n, size_t *last_label)
{
    size_t start = 0;

    if (n > MAX_NAME)
        return "host name longer than 253 bytes";
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : '.';
        if (c == '.') {
            if (i == start)
                return "empty label in host";
            if (i - start > MAX_LABEL)
                return "host label longer than 63 bytes";
            if (i < n)
                start = i + 1;
            continue;
        }
        if (c == '%')
            return "percent-encoding in host";
        if (c == '@')
            return "userinfo in host";
        if (!is_alnum(c) && c != '-' && c != '_')
            return "invalid character in host";
    }
    *last_label = start;
    return NULL;
}

/* A reg-name or dotted quad s[0..n), n > 0. Fills hostlen, namelen, kind. */
static const char *parse_name(const char *s, size_t n, pc_host *out)
{
    size_t last = 0;

    out->hostlen = n;
    out->namelen = n > 0 && s[n - 1] == '.' ? n - 1 : n;
    const char *why = check_labels(s, out->namelen, &last);
    if (why)
        return why;
    if (!numeric_label(s + last, out->namelen - last))
        return NULL;
    if (out->namelen != n || !ipv4_ok(s, n))
        return "numeric host that is not a dotted-quad IPv4 address";
    out->kind = PC_HOST_IPV4;
    return NULL;
}

/* "[IPv6address]" at s[0..n), s[0] == '['. Fills hostlen, namelen, kind. */
static const char *parse_literal(const char *s, size_t n, pc_host *out)
{
    size_t rb = 1;

    while (rb < n && s[rb] != ']')
        rb++;
    if (rb == n)
        return "unterminated IP literal in host";
    if (!ipv6_ok(s + 1, rb - 1))
        return "invalid IPv6 address in host";
    out->hostlen = out->namelen = rb + 1;
    out->kind = PC_HOST_IPV6;
    return NULL;
}

/* The port after ':', s[0..n): 1-5 digits, 0..65535. */
static const char *parse_port(const char *s, size_t n, pc_host *out)
{
    uint32_t v = 0;

    if (n == 0 || n > 5)
        return "invalid port";
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return "invalid port";
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return "port out of range";
    out->has_port = 1;
    out->port = (uint16_t)v;
    return NULL;
}

int pc_host_parse(const char *s, size_t n, pc_host *out, const char **why)
{
    const char *err = NULL;
    size_t h = 0;

    *out = (pc_host){0, 0, PC_HOST_NAME, 0, 0};
    if (n == 0) {
        err = "empty host";
    } else if (s[0] == '[') {
        err = parse_literal(s, n, out);
        h = out->hostlen;
    } else {
        while (h < n && s[h] != ':')
            h++;
        err = h == 0 ? "empty host" : parse_name(s, h, out);
    }
    if (!err && h < n)
        err = s[h] == ':' ? parse_port(s + h + 1, n - h - 1, out)
                          : "invalid character after IP literal";
    if (err) {
        *out = (pc_host){0, 0, PC_HOST_NAME, 0, 0};
        if (why)
            *why = err;
        return -1;
    }
    return 0;
}
