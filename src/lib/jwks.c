/* jwks.c: turns a JWK Set (RFC 7517, 7518 §6, RFC 8037 §2) or an HMAC secret
 * into an immutable pc_jwt_keys, and names the algorithms. Owns the keys it
 * builds. Must never keep private key material (only public parameters are
 * read from a JWK), never use a key type the alg table below does not list,
 * and never do I/O: the caller reads the file. */
#include "portcullis/jwt.h"
#include "portcullis/base64url.h"
#include "portcullis/util.h"
#include "jwt_int.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define RSA_MAX_E_BITS 64
#define HMAC_MIN_SECRET 32

static const struct {
    const char *name;
    uint32_t bit;
} alg_names[] = {
    {"HS256", PC_JWT_HS256}, {"HS384", PC_JWT_HS384}, {"HS512", PC_JWT_HS512},
    {"RS256", PC_JWT_RS256}, {"RS384", PC_JWT_RS384}, {"RS512", PC_JWT_RS512},
    {"PS256", PC_JWT_PS256}, {"ES256", PC_JWT_ES256}, {"ES384", PC_JWT_ES384},
    {"EdDSA", PC_JWT_EDDSA},
};

#define RSA_ALGS (PC_JWT_RS256 | PC_JWT_RS384 | PC_JWT_RS512 | PC_JWT_PS256)

int pc_jwt_alg_parse(const char *name, uint32_t *bit)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (strcmp(name, alg_names[i].name) == 0) {
            *bit = alg_names[i].bit;
            return 0;
        }
    }
    return -1;
}

const char *pc_jwt_alg_name(uint32_t bit)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (alg_names[i].bit == bit)
            return alg_names[i].name;
    }
    return NULL;
}


/* Reads the base64url member `field` of a JWK into out (at most cap bytes).
 * Returns 0, or -1 with "keys[i].field: ..." in err. */
static int get_b64(const json_t *jwk, size_t idx, const char *field,
                   unsigned char *out, size_t cap, size_t *outlen, char *err,
                   size_t errlen)
{
    const json_t *v = json_object_get(jwk, field);
    long n;

    if (!v)
        return pc_errf(err, errlen, "keys[%zu].%s: missing", idx, field);
    if (!json_is_string(v))
        return pc_errf(err, errlen, "keys[%zu].%s: must be a string", idx, field);
    if (json_string_length(v) > PC_B64URL_ENCODED_LEN(cap))
        return pc_errf(err, errlen, "keys[%zu].%s: too long", idx, field);
    n = pc_b64url_decode(json_string_value(v), json_string_length(v), out, cap);
    if (n < 0)
        return pc_errf(err, errlen,
                    "keys[%zu].%s: not unpadded base64url (RFC 7515 §2)", idx,
                    field);
    *outlen = (size_t)n;
    return 0;
}

/* Builds a public EVP_PKEY of the given OpenSSL type from bld's parameters.
 * NULL when OpenSSL refuses them. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* Checks an RSA public exponent: odd, at least 3, at most 64 bits (OpenSSL
 * refuses larger ones for big moduli at verify time; better to say so now). */
static int rsa_e_ok(const BIGNUM *e)
{
    return BN_is_odd(e) && BN_num_bits(e) >= 2 &&
           BN_num_bits(e) <= RSA_MAX_E_BITS;
}

static int rsa_key(const json_t *jwk, size_t idx, pc_jwt_key *k, char *err,
                   size_t errlen)
{
    unsigned char nb[RSA_MAX_BITS / 8 + 8], eb[16];
    size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc = -1;

    if (get_b64(jwk, idx, "n", nb, sizeof(nb), &nlen, err, errlen) < 0 ||
        get_b64(jwk, idx, "e", eb, sizeof(eb), &elen, err, errlen) < 0)
        return -1;
    n = BN_bin2bn(nb, (int)nlen, NULL);
    e = BN_bin2bn(eb, (int)elen, NULL);
    if (!n || !e)
        goto done;
    if (BN_num_bits(n) < RSA_MIN_BITS || BN_num_bits(n) > RSA_MAX_BITS) {
        pc_errf(err, errlen,
             "keys[%zu].n: RSA modulus of %d bits, must be %d to %d", idx,
             BN_num_bits(n), RSA_MIN_BITS, RSA_MAX_BITS);
        goto done;
    }
    if (!BN_is_odd(n)) {
        pc_errf(err, errlen, "keys[%zu].n: not an RSA modulus (even)", idx);
        goto done;
    }
    if (!rsa_e_ok(e)) {
        pc_errf(err, errlen,
             "keys[%zu].e: must be odd, 3 or more, 64 bits at most", idx);
        goto done;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        k->pkey = pkey_from("RSA", bld);
    if (!k->pkey) {
        pc_errf(err, errlen, "keys[%zu]: OpenSSL refused the RSA key", idx);
        goto done;
    }
    k->kind = PC_JWT_KEY_RSA;
    k->algs = RSA_ALGS;
    rc = 0;
done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rc;
}

/* Returns 0 built, 1 skipped (a curve this build does not verify), -1. */
static int ec_key(const json_t *jwk, size_t idx, pc_jwt_key *k, char *err,
                  size_t errlen)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char pub[1 + 2 * 48], x[48], y[48];
    size_t size, xlen, ylen;
    const char *group;
    OSSL_PARAM_BLD *bld;

    if (!crv)
        return pc_errf(err, errlen, "keys[%zu].crv: missing or not a string", idx);
    if (strcmp(crv, "P-256") == 0) {
        size = 32, group = "prime256v1", k->kind = PC_JWT_KEY_P256;
        k->algs = PC_JWT_ES256;
    } else if (strcmp(crv, "P-384") == 0) {
        size = 48, group = "secp384r1", k->kind = PC_JWT_KEY_P384;
        k->algs = PC_JWT_ES384;
    } else {
        return 1;
    }
    if (get_b64(jwk, idx, "x", x, sizeof(x), &xlen, err, errlen) < 0 ||
        get_b64(jwk, idx, "y", y, sizeof(y), &ylen, err, errlen) < 0)
        return -1;
    /* RFC 7518 §6.2.1.2/3: full-length coordinates, no zero stripping. */
    if (xlen != size || ylen != size)
        return pc_errf(err, errlen, "keys[%zu].%s: must be %zu bytes for %s", idx,
                    xlen != size ? "x" : "y", size, crv);
    pub[0] = 0x04;
    memcpy(pub + 1, x, size);
    memcpy(pub + 1 + size, y, size);
    bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                        0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                         1 + 2 * size) == 1)
        k->pkey = pkey_from("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    /* EVP_PKEY_fromdata refuses a point off the curve (EC_POINT_oct2point
     * checks it): RFC 7518 §6.2.1 invalid-curve attacks stop here. */
    if (!k->pkey)
        return pc_errf(err, errlen, "keys[%zu]: x, y is not a point of %s", idx,
                    crv);
    return 0;
}

/* Returns 0 built, 1 skipped (Ed448, X25519: not signature keys we use), -1. */
static int okp_key(const json_t *jwk, size_t idx, pc_jwt_key *k, char *err,
                   size_t errlen)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char x[32];
    size_t xlen;
    OSSL_PARAM_BLD *bld;

    if (!crv)
        return pc_errf(err, errlen, "keys[%zu].crv: missing or not a string", idx);
    if (strcmp(crv, "Ed25519") != 0)
        return 1;
    if (get_b64(jwk, idx, "x", x, sizeof(x), &xlen, err, errlen) < 0)
        return -1;
    if (xlen != sizeof(x))
        return pc_errf(err, errlen, "keys[%zu].x: must be 32 bytes for Ed25519",
                    idx);
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x,
                                                sizeof(x)) == 1)
        k->pkey = pkey_from("ED25519", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!k->pkey)
        return pc_errf(err, errlen, "keys[%zu].x: not an Ed25519 public key", idx);
    k->kind = PC_JWT_KEY_ED25519;
    k->algs = PC_JWT_EDDSA;
    return 0;
}

/* Decides from "use" and "key_ops" whether the JWK is meant for verifying
 * signatures. Returns 0 yes, 1 skip it, -1 on a member of the wrong type. */
static int meant_for_verify(const json_t *jwk, size_t idx, char *err,
                            size_t errlen)
{
    const json_t *use = json_object_get(jwk, "use");
    const json_t *ops = json_object_get(jwk, "key_ops");
    size_t i;
    const json_t *op;

    if (use && !json_is_string(use))
        return pc_errf(err, errlen, "keys[%zu].use: must be a string", idx);
    if (use && strcmp(json_string_value(use), "sig") != 0)
        return 1;
    if (!ops)
        return 0;
    if (!json_is_array(ops))
        return pc_errf(err, errlen, "keys[%zu].key_ops: must be an array", idx);
    json_array_foreach(ops, i, op)
    {
        if (!json_is_string(op))
            return pc_errf(err, errlen, "keys[%zu].key_ops: must hold strings",
                        idx);
        if (strcmp(json_string_value(op), "verify") == 0)
            return 0;
    }
    return 1;
}

static void key_clear(pc_jwt_key *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret)
        OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
    free(k->kid);
    memset(k, 0, sizeof(*k));
}

/* Parses keys[idx]. Returns 0 with *k filled, 1 when the key is skipped
 * (RFC 7517 §5: ignore what is not understood), -1 with err filled. */
static int parse_jwk(const json_t *jwk, size_t idx, pc_jwt_key *k, char *err,
                     size_t errlen)
{
    const json_t *kty = json_object_get(jwk, "kty");
    const json_t *kid = json_object_get(jwk, "kid");
    const json_t *alg = json_object_get(jwk, "alg");
    uint32_t alg_bit = 0;
    int rc;

    memset(k, 0, sizeof(*k));
    if (!json_is_object(jwk))
        return pc_errf(err, errlen, "keys[%zu]: must be an object", idx);
    if (!json_is_string(kty))
        return pc_errf(err, errlen, "keys[%zu].kty: missing or not a string", idx);
    if (kid && !json_is_string(kid))
        return pc_errf(err, errlen, "keys[%zu].kid: must be a string", idx);
    if (alg && !json_is_string(alg))
        return pc_errf(err, errlen, "keys[%zu].alg: must be a string", idx);
    rc = meant_for_verify(jwk, idx, err, errlen);
    if (rc != 0)
        return rc;
    if (alg && pc_jwt_alg_parse(json_string_value(alg), &alg_bit) < 0)
        return 1; /* RSA-OAEP, ES512, ...: not a key for an alg we verify */
    if (strcmp(json_string_value(kty), "RSA") == 0)
        rc = rsa_key(jwk, idx, k, err, errlen);
    else if (strcmp(json_string_value(kty), "EC") == 0)
        rc = ec_key(jwk, idx, k, err, errlen);
    else if (strcmp(json_string_value(kty), "OKP") == 0)
        rc = okp_key(jwk, idx, k, err, errlen);
    else
        return 1;
    if (rc != 0) {
        key_clear(k);
        return rc;
    }
    if (alg_bit && !(k->algs & alg_bit)) {
        pc_errf(err, errlen, "keys[%zu].alg: %s does not fit kty %s", idx,
             json_string_value(alg), json_string_value(kty));
        key_clear(k);
        return -1;
    }
    if (alg_bit)
        k->algs = alg_bit;
    if (kid)
        k->kid = pc_xstrdup(json_string_value(kid));
    return 0;
}

static pc_jwt_keys *parse_set(const json_t *doc, char *err, size_t errlen)
{
    const json_t *arr = json_object_get(doc, "keys");
    pc_jwt_keys *ks;
    size_t i;

    if (!json_is_object(doc) || !json_is_array(arr)) {
        pc_errf(err, errlen, "not a JWK Set: expected {\"keys\": [...]}");
        return NULL;
    }
    ks = pc_xcalloc(1, sizeof(*ks));
    ks->v = pc_xcalloc(json_array_size(arr) + 1, sizeof(*ks->v));
    for (i = 0; i < json_array_size(arr); i++) {
        int rc =
            parse_jwk(json_array_get(arr, i), i, &ks->v[ks->n], err, errlen);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            ks->n++;
    }
    if (ks->n == 0) {
        pc_errf(err, errlen,
             "no usable signing key (RSA, EC P-256/P-384, OKP Ed25519)");
        goto fail;
    }
    return ks;
fail:
    pc_jwt_keys_free(ks);
    return NULL;
}

pc_jwt_keys *pc_jwt_keys_from_jwks(const char *json, size_t len, char *err,
                                   size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    pc_jwt_keys *ks;

    if (!doc) {
        pc_errf(err, errlen, "JWKS line %d column %d: %s", jerr.line, jerr.column,
             jerr.text);
        return NULL;
    }
    ks = parse_set(doc, err, errlen);
    json_decref(doc);
    /* Refused keys leave reasons on this thread's OpenSSL error queue, where
     * the next TLS call would find them. */
    ERR_clear_error();
    return ks;
}

/* The HS algs a secret of len bytes may verify: RFC 7518 §3.2 wants a key
 * at least as long as the hash output. */
static uint32_t hmac_algs(size_t len)
{
    return (len >= 32 ? PC_JWT_HS256 : 0) | (len >= 48 ? PC_JWT_HS384 : 0) |
           (len >= 64 ? PC_JWT_HS512 : 0);
}

pc_jwt_keys *pc_jwt_keys_from_secret(const unsigned char *secret, size_t len,
                                     char *err, size_t errlen)
{
    pc_jwt_keys *ks;

    if (len < HMAC_MIN_SECRET) {
        pc_errf(err, errlen,
             "secret of %zu bytes is too short: HS256 needs at least %d "
             "(RFC 7518 §3.2)",
             len, HMAC_MIN_SECRET);
        return NULL;
    }
    ks = pc_xcalloc(1, sizeof(*ks));
    ks->v = pc_xcalloc(1, sizeof(*ks->v));
    ks->n = 1;
    ks->from_secret = 1;
    ks->v[0].kind = PC_JWT_KEY_HMAC;
    ks->v[0].algs = hmac_algs(len);
    ks->v[0].secret = pc_xmalloc(len);
    memcpy(ks->v[0].secret, secret, len);
    ks->v[0].secret_len = len;
    return ks;
}

int pc_jwt_keys_check(const pc_jwt_keys *keys, uint32_t algorithms, char *err,
                      size_t errlen)
{
    for (size_t a = 0; a < sizeof(alg_names) / sizeof(alg_names[0]); a++) {
        uint32_t bit = alg_names[a].bit;
        int found = 0;
        if (!(algorithms & bit))
            continue;
        for (size_t i = 0; i < keys->n && !found; i++)
            found = (keys->v[i].algs & bit) != 0;
        if (found)
            continue;
        if (keys->from_secret && (bit & (PC_JWT_HS384 | PC_JWT_HS512)))
            return pc_errf(err, errlen,
                        "%s needs a secret of at least %d bytes (have %zu)",
                        alg_names[a].name, bit == PC_JWT_HS384 ? 48 : 64,
                        keys->v[0].secret_len);
        return pc_errf(err, errlen, "no key of the set can verify %s",
                    alg_names[a].name);
    }
    return 0;
}

size_t pc_jwt_keys_count(const pc_jwt_keys *keys)
{
    return keys->n;
}

void pc_jwt_keys_free(pc_jwt_keys *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++)
        key_clear(&keys->v[i]);
    free(keys->v);
    free(keys);
}
