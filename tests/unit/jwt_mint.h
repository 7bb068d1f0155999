/* jwt_mint.h: test-only token minting with OpenSSL EVP, shared by the JWT
 * unit tests. Keys are generated in the tests; nothing here verifies, so a
 * verifier bug cannot hide behind a matching signer bug (the RFC vectors in
 * test_jwt.c check this signer against published signatures). */
#ifndef PORTCULLIS_TEST_JWT_MINT_H
#define PORTCULLIS_TEST_JWT_MINT_H

#include <criterion/criterion.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/base64url.h"
#include "portcullis/jwt.h"

#define MINT_UNUSED __attribute__((unused))

typedef struct signer {
    uint32_t alg;
    EVP_PKEY *pk;                /* private key for RS/PS/ES/EdDSA */
    const unsigned char *secret; /* for HS */
    size_t secret_len;
} signer;

MINT_UNUSED static char *b64(const void *in, size_t len)
{
    size_t cap = PC_B64URL_ENCODED_LEN(len) + 1;
    char *out = malloc(cap);
    cr_assert(out);
    pc_b64url_encode(in, len, out, cap);
    return out;
}

MINT_UNUSED static char *b64s(const char *s)
{
    return b64(s, strlen(s));
}

MINT_UNUSED static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *out = malloc(n);
    cr_assert(out);
    snprintf(out, n, "%s.%s.%s", a, b, c);
    return out;
}

MINT_UNUSED static const EVP_MD *mint_md(uint32_t alg)
{
    if (alg & (PC_JWT_HS384 | PC_JWT_RS384 | PC_JWT_ES384))
        return EVP_sha384();
    if (alg & (PC_JWT_HS512 | PC_JWT_RS512))
        return EVP_sha512();
    return EVP_sha256();
}

/* Signs in the JOSE form: HMAC, PKCS#1 v1.5, PSS, raw R || S, Ed25519. */
MINT_UNUSED static size_t mint_sign(const signer *s, const char *in,
                                    size_t inlen, unsigned char *out)
{
    unsigned char der[1100];
    size_t dlen = sizeof(der);
    EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *pctx = NULL;

    if (s->alg & (PC_JWT_HS256 | PC_JWT_HS384 | PC_JWT_HS512)) {
        unsigned int n = 0;
        cr_assert(HMAC(mint_md(s->alg), s->secret, (int)s->secret_len,
                       (const unsigned char *)in, inlen, out, &n));
        return n;
    }
    ctx = EVP_MD_CTX_new();
    cr_assert(EVP_DigestSignInit(
                  ctx, &pctx, s->alg == PC_JWT_EDDSA ? NULL : mint_md(s->alg),
                  NULL, s->pk) == 1);
    if (s->alg == PC_JWT_PS256) {
        cr_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING));
        cr_assert(
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST));
    }
    cr_assert(
        EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)in, inlen) == 1);
    EVP_MD_CTX_free(ctx);
    if (!(s->alg & (PC_JWT_ES256 | PC_JWT_ES384))) {
        memcpy(out, der, dlen);
        return dlen;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    const BIGNUM *r, *sv;
    int half = s->alg == PC_JWT_ES256 ? 32 : 48;
    cr_assert(es);
    ECDSA_SIG_get0(es, &r, &sv);
    BN_bn2binpad(r, out, half);
    BN_bn2binpad(sv, out + half, half);
    ECDSA_SIG_free(es);
    return (size_t)(2 * half);
}

/* A token of the given header and payload texts (malloc'd). */
MINT_UNUSED static char *mint_raw(const signer *s, const char *header,
                                  const char *payload)
{
    char *h = b64s(header), *p = b64s(payload);
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1), *sig, *tok;
    unsigned char raw[1100];
    size_t n;

    snprintf(input, inlen + 1, "%s.%s", h, p);
    n = mint_sign(s, input, inlen, raw);
    sig = b64(raw, n);
    tok = join3(h, p, sig);
    free(h);
    free(p);
    free(input);
    free(sig);
    return tok;
}

/* A token with header {"alg": s->alg, "kid": kid} (kid when not NULL). */
MINT_UNUSED static char *mint(const signer *s, const char *kid,
                              const char *payload)
{
    char header[256];
    if (kid)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}",
                 pc_jwt_alg_name(s->alg), kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\"}",
                 pc_jwt_alg_name(s->alg));
    return mint_raw(s, header, payload);
}

MINT_UNUSED static json_t *b64_json(const unsigned char *in, size_t len)
{
    char *s = b64(in, len);
    json_t *v = json_string(s);
    free(s);
    return v;
}

MINT_UNUSED static json_t *bn_json(EVP_PKEY *pk, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1100];
    int n;
    cr_assert(EVP_PKEY_get_bn_param(pk, name, &bn) == 1, "param %s", name);
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64_json(buf, (size_t)n);
}

/* The public JWK of a generated key; kid and alg are added when given. */
MINT_UNUSED static json_t *jwk_of(EVP_PKEY *pk, const char *kid,
                                  const char *alg)
{
    json_t *j = json_object();
    if (EVP_PKEY_is_a(pk, "RSA")) {
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "n", bn_json(pk, OSSL_PKEY_PARAM_RSA_N, 0));
        json_object_set_new(j, "e", bn_json(pk, OSSL_PKEY_PARAM_RSA_E, 0));
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        int size = (EVP_PKEY_get_bits(pk) + 7) / 8;
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv",
                            json_string(size == 32 ? "P-256" : "P-384"));
        json_object_set_new(j, "x",
                            bn_json(pk, OSSL_PKEY_PARAM_EC_PUB_X, size));
        json_object_set_new(j, "y",
                            bn_json(pk, OSSL_PKEY_PARAM_EC_PUB_Y, size));
    } else {
        unsigned char raw[32];
        size_t n = sizeof(raw);
        cr_assert(EVP_PKEY_get_raw_public_key(pk, raw, &n) == 1);
        json_object_set_new(j, "kty", json_string("OKP"));
        json_object_set_new(j, "crv", json_string("Ed25519"));
        json_object_set_new(j, "x", b64_json(raw, n));
    }
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg)
        json_object_set_new(j, "alg", json_string(alg));
    return j;
}

/* Loads {"keys": arr} (arr is consumed) and asserts it loads. */
MINT_UNUSED static pc_jwt_keys *load_set(json_t *arr)
{
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *text = json_dumps(doc, 0), err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert(ks, "JWKS refused: %s\n%s", err, text);
    free(text);
    json_decref(doc);
    return ks;
}

MINT_UNUSED static EVP_PKEY *gen_rsa(unsigned bits)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    cr_assert(pk);
    return pk;
}

MINT_UNUSED static EVP_PKEY *gen_ec(const char *curve)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    cr_assert(pk);
    return pk;
}

MINT_UNUSED static EVP_PKEY *gen_ed25519(void)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    cr_assert(pk);
    return pk;
}

MINT_UNUSED static pc_jwt_keys *jwks(const char *text)
{
    char err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert(ks, "JWKS refused: %s", err);
    return ks;
}

MINT_UNUSED static pc_jwt_keys *secret_keys(const unsigned char *s, size_t len)
{
    char err[256] = "";
    pc_jwt_keys *ks = pc_jwt_keys_from_secret(s, len, err, sizeof(err));
    cr_assert(ks, "secret refused: %s", err);
    return ks;
}

MINT_UNUSED static const pc_jwt_policy ALL = {.algorithms = PC_JWT_ALG_ALL};

MINT_UNUSED static void expect(const char *tok, const pc_jwt_keys *ks,
                               const pc_jwt_policy *pol, int64_t now,
                               pc_jwt_status want)
{
    json_t *claims = NULL;
    int64_t exp = 42;
    pc_jwt_status got =
        pc_jwt_verify(tok, strlen(tok), ks, pol, now, &claims, &exp);
    cr_assert_eq(got, want, "got '%s', want '%s' for %.120s",
                 pc_jwt_status_message(got), pc_jwt_status_message(want), tok);
    if (want == PC_JWT_OK) {
        cr_assert(json_is_object(claims));
        json_decref(claims);
    } else {
        cr_assert_null(claims, "claims set on failure");
        cr_assert_eq(exp, 42, "exp set on failure");
    }
}

#endif
