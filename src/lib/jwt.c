/* jwt.c: verification of compact JWS tokens against a pc_jwt_keys set and a
 * provider policy (RFC 7515 §5.2, RFC 7519 §7.2), and the per-worker cache of
 * verified tokens. Owns nothing beyond one call, except the cache's entries.
 * Must never trust the token's header to pick a key type or algorithm the
 * policy did not allow, never use a key the token carries (jwk, jku, x5u,
 * x5c are ignored), never compare MACs in variable time, and never leave
 * errors on the thread's OpenSSL error queue.
 *
 * DESIGN: the checks run cheapest and most syntactic first, and nothing of
 * the payload is interpreted before a signature verified:
 *
 *   size -> split in 3 -> base64url x3 -> header JSON -> alg vs policy
 *        -> key selection (kid, key type) -> signature -> payload JSON
 *        -> exp, nbf, iat -> iss -> aud
 *
 * The decoded segments live in one stack buffer sized for the largest token,
 * so a verification allocates only what jansson needs for the two objects. */
#include "portcullis/jwt.h"
#include "portcullis/base64url.h"
#include "portcullis/util.h"
#include "jwt_int.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <math.h>
#include <string.h>

#define HS_ALGS (PC_JWT_HS256 | PC_JWT_HS384 | PC_JWT_HS512)
#define ES_ALGS (PC_JWT_ES256 | PC_JWT_ES384)

const char *pc_jwt_status_message(pc_jwt_status s)
{
    switch (s) {
    case PC_JWT_OK:
        return "token valid";
    case PC_JWT_MALFORMED:
        return "malformed token";
    case PC_JWT_TOO_LARGE:
        return "token too large";
    case PC_JWT_ALG_NOT_ALLOWED:
        return "algorithm not allowed";
    case PC_JWT_UNKNOWN_KID:
        return "unknown key id";
    case PC_JWT_KEY_MISMATCH:
        return "no key fits the token's algorithm";
    case PC_JWT_BAD_SIGNATURE:
        return "invalid signature";
    case PC_JWT_EXPIRED:
        return "token expired";
    case PC_JWT_NOT_YET_VALID:
        return "token not yet valid";
    case PC_JWT_ISSUED_IN_FUTURE:
        return "token issued in the future";
    case PC_JWT_BAD_ISSUER:
        return "wrong issuer";
    case PC_JWT_BAD_AUDIENCE:
        return "wrong audience";
    }
    return "unknown status";
}

static const EVP_MD *alg_md(uint32_t alg)
{
    if (alg & (PC_JWT_HS384 | PC_JWT_RS384 | PC_JWT_ES384))
        return EVP_sha384();
    if (alg & (PC_JWT_HS512 | PC_JWT_RS512))
        return EVP_sha512();
    return EVP_sha256();
}

static int verify_hmac(const pc_jwt_key *k, uint32_t alg,
                       const unsigned char *in, size_t inlen,
                       const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (k->secret_len > INT32_MAX ||
        !HMAC(alg_md(alg), k->secret, (int)k->secret_len, in, inlen, mac,
              &maclen))
        return 0;
    /* The length is public (it follows from alg); the bytes are not. */
    return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

/* Re-encodes a JOSE ECDSA signature (R || S, each exactly the coordinate
 * size, RFC 7518 §3.4) as the DER that OpenSSL verifies. Returns the DER
 * length, or 0 when sig has the wrong length. */
static size_t ecdsa_to_der(const unsigned char *sig, size_t siglen, size_t half,
                           unsigned char *der, size_t cap)
{
    ECDSA_SIG *es;
    BIGNUM *r, *s;
    int dlen = 0;

    if (siglen != 2 * half)
        return 0;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, (int)half, NULL);
    s = BN_bin2bn(sig + half, (int)half, NULL);
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        dlen = i2d_ECDSA_SIG(es, NULL);
        if (dlen > 0 && (size_t)dlen <= cap) {
            unsigned char *p = der;
            dlen = i2d_ECDSA_SIG(es, &p);
        } else {
            dlen = 0;
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return dlen > 0 ? (size_t)dlen : 0;
}

static int verify_pkey(const pc_jwt_key *k, uint32_t alg,
                       const unsigned char *in, size_t inlen,
                       const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[2 * (48 + 3) + 8];
    const EVP_MD *md = alg == PC_JWT_EDDSA ? NULL : alg_md(alg);
    int ok = 0;

    if (alg & ES_ALGS) {
        siglen = ecdsa_to_der(sig, siglen, alg == PC_JWT_ES256 ? 32 : 48, der,
                              sizeof(der));
        sig = der;
        if (siglen == 0)
            goto done;
    }
    if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey) != 1)
        goto done;
    /* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. */
    if (alg == PC_JWT_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto done;
    ok = EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
done:
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* The parts of a token, once split and decoded. */
typedef struct parts {
    const char *input; /* signing input: header '.' payload, as sent */
    size_t input_len;
    json_t *header;
    uint32_t alg;
    const char *kid; /* borrowed from header; NULL without one */
    unsigned char *payload, *sig;
    size_t payload_len, sig_len;
} parts;

static long decode_into(const char *s, size_t len, unsigned char **cur,
                        unsigned char *end)
{
    long n = pc_b64url_decode(s, len, *cur, (size_t)(end - *cur));
    if (n >= 0)
        *cur += n;
    return n;
}

/* Splits token into exactly three segments and decodes them into buf.
 * Returns PC_JWT_OK or PC_JWT_MALFORMED. */
static pc_jwt_status split(const char *tok, size_t len, unsigned char *buf,
                           size_t cap, parts *p, unsigned char **hdr,
                           size_t *hdr_len)
{
    const char *d1 = memchr(tok, '.', len), *d2;
    unsigned char *cur = buf, *end = buf + cap;
    long n;

    if (!d1)
        return PC_JWT_MALFORMED;
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return PC_JWT_MALFORMED;
    p->input = tok;
    p->input_len = (size_t)(d2 - tok);
    *hdr = cur;
    if ((n = decode_into(tok, (size_t)(d1 - tok), &cur, end)) <= 0)
        return PC_JWT_MALFORMED;
    *hdr_len = (size_t)n;
    p->payload = cur;
    if ((n = decode_into(d1 + 1, (size_t)(d2 - d1 - 1), &cur, end)) <= 0)
        return PC_JWT_MALFORMED;
    p->payload_len = (size_t)n;
    p->sig = cur;
    if ((n = decode_into(d2 + 1, len - (size_t)(d2 + 1 - tok), &cur, end)) < 0)
        return PC_JWT_MALFORMED;
    p->sig_len = (size_t)n;
    return PC_JWT_OK;
}

/* Parses the JOSE header and checks alg against the policy. */
static pc_jwt_status read_header(const unsigned char *h, size_t hlen,
                                 const pc_jwt_policy *pol, parts *p)
{
    const json_t *alg, *kid, *typ;

    p->header = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(p->header))
        return PC_JWT_MALFORMED;
    alg = json_object_get(p->header, "alg");
    if (!json_is_string(alg))
        return PC_JWT_MALFORMED;
    /* "none" is refused whatever the policy says, in any letter case, before
     * anything else could be read from an unsigned token. */
    if (pc_strieq(json_string_value(alg), json_string_length(alg), "none", 4) ||
        pc_jwt_alg_parse(json_string_value(alg), &p->alg) < 0 ||
        !(pol->algorithms & p->alg))
        return PC_JWT_ALG_NOT_ALLOWED;
    /* RFC 7515 §4.1.11: we understand no extension, so any "crit" fails. */
    if (json_object_get(p->header, "crit"))
        return PC_JWT_MALFORMED;
    kid = json_object_get(p->header, "kid");
    typ = json_object_get(p->header, "typ");
    if ((kid && !json_is_string(kid)) || (typ && !json_is_string(typ)))
        return PC_JWT_MALFORMED;
    p->kid = kid ? json_string_value(kid) : NULL;
    return PC_JWT_OK;
}

/* Finds the keys the token may be verified with and tries each that fits
 * the alg. Several are tried only when the token names none (or names one
 * several keys share): an attacker cannot make us try more keys than that. */
static pc_jwt_status check_signature(const pc_jwt_keys *ks, const parts *p)
{
    int named = 0, fitting = 0;

    for (size_t i = 0; i < ks->n; i++) {
        const pc_jwt_key *k = &ks->v[i];
        int ok;
        if (p->kid && !ks->from_secret &&
            (!k->kid || strcmp(k->kid, p->kid) != 0))
            continue;
        named++;
        if (!(k->algs & p->alg))
            continue;
        fitting++;
        if (k->kind == PC_JWT_KEY_HMAC)
            ok = verify_hmac(k, p->alg, (const unsigned char *)p->input,
                             p->input_len, p->sig, p->sig_len);
        else
            ok = verify_pkey(k, p->alg, (const unsigned char *)p->input,
                             p->input_len, p->sig, p->sig_len);
        ERR_clear_error();
        if (ok)
            return PC_JWT_OK;
    }
    if (!named)
        return p->kid ? PC_JWT_UNKNOWN_KID : PC_JWT_KEY_MISMATCH;
    return fitting ? PC_JWT_BAD_SIGNATURE : PC_JWT_KEY_MISMATCH;
}

/* Reads a NumericDate (RFC 7519 §2: a JSON number, fractions allowed).
 * Fractions round towards the stricter side: exp down, nbf and iat up.
 * Returns 0, 1 when absent, -1 when not a number. */
static int numeric_date(const json_t *claims, const char *name, int round_up,
                        int64_t *out)
{
    const json_t *v = json_object_get(claims, name);
    double d;

    if (!v)
        return 1;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return -1;
    d = round_up ? ceil(json_real_value(v)) : floor(json_real_value(v));
    if (d >= 9223372036854775807.0)
        *out = INT64_MAX;
    else if (d <= -9223372036854775807.0)
        *out = INT64_MIN;
    else
        *out = (int64_t)d;
    return 0;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t sub_sat(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

static pc_jwt_status check_times(const json_t *claims, const pc_jwt_policy *pol,
                                 int64_t now, int64_t *exp)
{
    int64_t leeway = pol->leeway > 0 ? pol->leeway : 0, nbf = 0, iat = 0;
    int has_exp = numeric_date(claims, "exp", 0, exp);
    int has_nbf = numeric_date(claims, "nbf", 1, &nbf);
    int has_iat = numeric_date(claims, "iat", 1, &iat);

    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return PC_JWT_MALFORMED;
    if (has_exp == 1)
        *exp = INT64_MAX;
    else if (*exp <= sub_sat(now, leeway))
        return PC_JWT_EXPIRED;
    if (has_nbf == 0 && nbf > add_sat(now, leeway))
        return PC_JWT_NOT_YET_VALID;
    if (has_iat == 0 && iat > add_sat(now, leeway))
        return PC_JWT_ISSUED_IN_FUTURE;
    return PC_JWT_OK;
}

static int audience_ok(const json_t *aud, const pc_jwt_policy *pol)
{
    for (size_t i = 0; i < pol->naudiences; i++) {
        size_t j;
        const json_t *v;
        if (json_is_string(aud) &&
            strcmp(json_string_value(aud), pol->audiences[i]) == 0)
            return 1;
        json_array_foreach(aud, j, v)
        {
            if (json_is_string(v) &&
                strcmp(json_string_value(v), pol->audiences[i]) == 0)
                return 1;
        }
    }
    return 0;
}

static pc_jwt_status check_claims(const json_t *claims,
                                  const pc_jwt_policy *pol, int64_t now,
                                  int64_t *exp)
{
    pc_jwt_status st = check_times(claims, pol, now, exp);
    const json_t *iss;

    if (st != PC_JWT_OK)
        return st;
    iss = json_object_get(claims, "iss");
    if (pol->issuer &&
        (!json_is_string(iss) || strcmp(json_string_value(iss), pol->issuer)))
        return PC_JWT_BAD_ISSUER;
    if (pol->naudiences > 0 &&
        !audience_ok(json_object_get(claims, "aud"), pol))
        return PC_JWT_BAD_AUDIENCE;
    return PC_JWT_OK;
}

pc_jwt_status pc_jwt_verify(const char *token, size_t len,
                            const pc_jwt_keys *keys, const pc_jwt_policy *pol,
                            int64_t now, json_t **claims_out, int64_t *exp_out)
{
    unsigned char buf[PC_B64URL_DECODED_MAX(PC_JWT_MAX_TOKEN)], *hdr = NULL;
    size_t hdr_len = 0;
    parts p = {0};
    json_t *claims = NULL;
    int64_t exp = INT64_MAX;
    pc_jwt_status st;

    if (len > PC_JWT_MAX_TOKEN)
        return PC_JWT_TOO_LARGE;
    st = split(token, len, buf, sizeof(buf), &p, &hdr, &hdr_len);
    if (st == PC_JWT_OK)
        st = read_header(hdr, hdr_len, pol, &p);
    if (st == PC_JWT_OK)
        st = check_signature(keys, &p);
    if (st == PC_JWT_OK) {
        claims = json_loadb((const char *)p.payload, p.payload_len,
                            JSON_REJECT_DUPLICATES, NULL);
        st = json_is_object(claims) ? check_claims(claims, pol, now, &exp)
                                    : PC_JWT_MALFORMED;
    }
    json_decref(p.header);
    if (st != PC_JWT_OK) {
        json_decref(claims);
        return st;
    }
    if (claims_out)
        *claims_out = claims;
    else
        json_decref(claims);
    if (exp_out)
        *exp_out = exp;
    return PC_JWT_OK;
}
