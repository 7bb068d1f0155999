/* base64url.c: strict unpadded base64url (RFC 7515 §2) for JWS segments and
 * JWK members. Owns no state; must never allocate, never accept two spellings
 * of one byte string (signatures are over the text, so a lenient decoder
 * would let one token have many valid forms), never read past len. */
#include "portcullis/base64url.h"

#include <limits.h>
#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of one base64url character, or -1. A switch on ranges rather than a
 * 256-entry table keeps the accepted set readable in one place. */
static int value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long pc_b64url_decode(const char *in, size_t len, unsigned char *out,
                      size_t outcap)
{
    size_t rem = len % 4, need, o = 0, i = 0;
    uint32_t acc;

    if (rem == 1 || len / 4 > (SIZE_MAX - 2) / 3)
        return -1;
    need = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > outcap || need > LONG_MAX)
        return -1;
    for (; i + 4 <= len; i += 4) {
        int a = value((unsigned char)in[i]),
            b = value((unsigned char)in[i + 1]),
            c = value((unsigned char)in[i + 2]),
            d = value((unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        acc = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
              (uint32_t)d;
        out[o++] = (unsigned char)(acc >> 16);
        out[o++] = (unsigned char)(acc >> 8);
        out[o++] = (unsigned char)acc;
    }
    if (rem) {
        int a = value((unsigned char)in[i]),
            b = value((unsigned char)in[i + 1]);
        int c = rem == 3 ? value((unsigned char)in[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        /* Non-canonical trailing bits would give a second spelling. */
        if (rem == 2 ? (b & 0x0f) != 0 : (c & 0x03) != 0)
            return -1;
        acc = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (unsigned char)(acc >> 16);
        if (rem == 3)
            out[o++] = (unsigned char)(acc >> 8);
    }
    return (long)o;
}

size_t pc_b64url_encode(const unsigned char *in, size_t len, char *out,
                        size_t outcap)
{
    size_t o = 0, i = 0;

    if (len > (SIZE_MAX - 4) / 4 * 3 || outcap < PC_B64URL_ENCODED_LEN(len) + 1)
        return 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t acc = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                       (uint32_t)in[i + 2];
        out[o++] = alphabet[acc >> 18 & 63];
        out[o++] = alphabet[acc >> 12 & 63];
        out[o++] = alphabet[acc >> 6 & 63];
        out[o++] = alphabet[acc & 63];
    }
    if (len - i == 1) {
        uint32_t acc = (uint32_t)in[i] << 16;
        out[o++] = alphabet[acc >> 18 & 63];
        out[o++] = alphabet[acc >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t acc = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[acc >> 18 & 63];
        out[o++] = alphabet[acc >> 12 & 63];
        out[o++] = alphabet[acc >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}
