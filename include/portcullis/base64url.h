/* base64url.h: the unpadded base64url of JOSE (RFC 7515 §2, RFC 4648 §5).
 * Pure functions: no allocation, no I/O. */
#ifndef PORTCULLIS_BASE64URL_H
#define PORTCULLIS_BASE64URL_H

#include <stddef.h>

/* Characters pc_b64url_encode produces for n input bytes (without the NUL). */
#define PC_B64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* An upper bound of the bytes pc_b64url_decode produces for n characters. */
#define PC_B64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)

/* Decodes len characters of unpadded base64url into out. Strict: only
 * A-Z a-z 0-9 '-' '_' are accepted (no '=', '+', '/', whitespace or NUL), a
 * length of 4k+1 is rejected, and the unused low bits of the last character
 * must be zero (so every byte string has exactly one accepted encoding).
 * Returns the number of bytes written, or -1 when the input is invalid or
 * outcap is too small; out may be partly written on failure. */
long pc_b64url_decode(const char *in, size_t len, unsigned char *out,
                      size_t outcap);

/* Encodes len bytes into out without padding and NUL-terminates it. outcap
 * must be at least PC_B64URL_ENCODED_LEN(len) + 1. Returns the number of
 * characters written (not counting the NUL), or 0 with nothing written when
 * outcap is too small (len 0 also returns 0, with out = ""). */
size_t pc_b64url_encode(const unsigned char *in, size_t len, char *out,
                        size_t outcap);

#endif
