/* test_jwt.c: token verification (lib/jwt.c) against the RFC 7515 and
 * RFC 8037 examples, tokens minted here with generated keys, and every
 * rejection of CONTRACT §4's 401 list. */
#include "jwt_mint.h"
#include "jwt_vectors.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* RFC 7515 Appendix A: the examples' exp is 1300819380. */
#define RFC_NOW 1300819000
#define NOW 1700000000

static const char A_PAYLOAD[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ";
static const char A1_TOKEN[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char A1_KEY[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
                             "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char A2_TOKEN[] = RFC_A2_TOKEN;
static const char A2_JWKS[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"" RFC_A2_N "\",\"e\":\"AQAB\"}]}";
static const char A3_TOKEN[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJ"
    "qPP3-Kg6NU1Q";
static const char A3_JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
/* RFC 8037 Appendix A.4: payload "Example of Ed25519 signing". */
static const char A4_INPUT[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
static const char A4_SIG[] = "hgyY0il_MGCjP0JzlnLWG1PPOt7-"
                             "09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvp"
                             "Ar_MuM0KAg";
static const char A4_D[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char A4_JWKS[] =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";

static pc_jwt_keys *a1_keys(void)
{
    unsigned char k[64];
    cr_assert_eq(pc_b64url_decode(A1_KEY, strlen(A1_KEY), k, sizeof(k)), 64);
    return secret_keys(k, 64);
}

Test(jwt, rfc7515_a1_hs256)
{
    pc_jwt_keys *ks = a1_keys();
    json_t *claims = NULL;
    int64_t exp = 0;
    cr_assert_eq(pc_jwt_verify(A1_TOKEN, strlen(A1_TOKEN), ks, &ALL, RFC_NOW,
                               &claims, &exp),
                 PC_JWT_OK);
    cr_assert_eq(exp, 1300819380);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "iss")), "joe");
    cr_assert(
        json_is_true(json_object_get(claims, "http://example.com/is_root")));
    json_decref(claims);
    /* exp is the first instant the token is no longer valid. */
    expect(A1_TOKEN, ks, &ALL, 1300819379, PC_JWT_OK);
    expect(A1_TOKEN, ks, &ALL, 1300819380, PC_JWT_EXPIRED);
    pc_jwt_keys_free(ks);
}

Test(jwt, rfc7515_a2_rs256)
{
    pc_jwt_keys *ks = jwks(A2_JWKS);
    int64_t exp = 0;
    cr_assert_eq(pc_jwt_verify(A2_TOKEN, strlen(A2_TOKEN), ks, &ALL, RFC_NOW,
                               NULL, &exp),
                 PC_JWT_OK);
    cr_assert_eq(exp, 1300819380);
    pc_jwt_keys_free(ks);
}

Test(jwt, rfc7515_a3_es256)
{
    pc_jwt_keys *ks = jwks(A3_JWKS);
    expect(A3_TOKEN, ks, &ALL, RFC_NOW, PC_JWT_OK);
    pc_jwt_keys_free(ks);
}

static EVP_PKEY *a4_private_key(void)
{
    unsigned char d[32];
    cr_assert_eq(pc_b64url_decode(A4_D, strlen(A4_D), d, sizeof(d)), 32);
    EVP_PKEY *pk =
        EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d, sizeof(d));
    cr_assert(pk);
    return pk;
}

Test(jwt, rfc8037_a4_ed25519)
{
    pc_jwt_keys *ks = jwks(A4_JWKS);
    char *tok = malloc(strlen(A4_INPUT) + strlen(A4_SIG) + 2);
    sprintf(tok, "%s.%s", A4_INPUT, A4_SIG);
    /* The signature verifies; the payload is text, not a claims object. */
    expect(tok, ks, &ALL, NOW, PC_JWT_MALFORMED);
    char *c = tok + strlen(tok) - 10;
    *c = *c == 'A' ? 'B' : 'A';
    expect(tok, ks, &ALL, NOW, PC_JWT_BAD_SIGNATURE);

    /* Our signer reproduces the RFC's signature byte for byte... */
    signer s = {.alg = PC_JWT_EDDSA, .pk = a4_private_key()};
    unsigned char sig[64];
    cr_assert_eq(mint_sign(&s, A4_INPUT, strlen(A4_INPUT), sig), 64);
    char *enc = b64(sig, 64);
    cr_assert_str_eq(enc, A4_SIG);
    /* ...and a JWT made with the RFC key verifies. */
    char *jwt = mint(&s, NULL, "{\"sub\":\"ed\"}");
    expect(jwt, ks, &ALL, NOW, PC_JWT_OK);
    free(jwt);
    free(enc);
    free(tok);
    EVP_PKEY_free(s.pk);
    pc_jwt_keys_free(ks);
}

Test(jwt, every_algorithm_round_trip)
{
    EVP_PKEY *rsa = gen_rsa(2048), *p256 = gen_ec("P-256"),
             *p384 = gen_ec("P-384"), *ed = gen_ed25519();
    unsigned char secret[64];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (unsigned char)(i * 7 + 3);
    json_t *arr = json_array();
    json_array_append_new(arr, jwk_of(rsa, "r", NULL));
    json_array_append_new(arr, jwk_of(p256, "p256", NULL));
    json_array_append_new(arr, jwk_of(p384, "p384", NULL));
    json_array_append_new(arr, jwk_of(ed, "ed", NULL));
    pc_jwt_keys *ks = load_set(arr), *hs = secret_keys(secret, 64);
    cr_assert_eq(pc_jwt_keys_count(ks), 4);
    static const struct {
        uint32_t alg;
        const char *kid;
    } cases[] = {
        {PC_JWT_RS256, "r"},  {PC_JWT_RS384, "r"},    {PC_JWT_RS512, "r"},
        {PC_JWT_PS256, "r"},  {PC_JWT_ES256, "p256"}, {PC_JWT_ES384, "p384"},
        {PC_JWT_EDDSA, "ed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *pk = cases[i].alg == PC_JWT_ES256   ? p256
                       : cases[i].alg == PC_JWT_ES384 ? p384
                       : cases[i].alg == PC_JWT_EDDSA ? ed
                                                      : rsa;
        signer s = {.alg = cases[i].alg, .pk = pk};
        char *with_kid = mint(&s, cases[i].kid, "{\"sub\":\"a\"}");
        char *without = mint(&s, NULL, "{\"sub\":\"a\"}");
        pc_jwt_policy only = {.algorithms = cases[i].alg};
        expect(with_kid, ks, &only, NOW, PC_JWT_OK);
        expect(without, ks, &only, NOW, PC_JWT_OK);
        only.algorithms = PC_JWT_ALG_ALL & ~cases[i].alg;
        expect(with_kid, ks, &only, NOW, PC_JWT_ALG_NOT_ALLOWED);
        free(with_kid);
        free(without);
    }
    for (uint32_t alg = PC_JWT_HS256; alg <= PC_JWT_HS512; alg <<= 1) {
        signer s = {.alg = alg, .secret = secret, .secret_len = 64};
        char *tok = mint(&s, "ignored-by-secret-sets", "{}");
        expect(tok, hs, &ALL, NOW, PC_JWT_OK);
        expect(tok, ks, &ALL, NOW, PC_JWT_UNKNOWN_KID);
        free(tok);
    }
    pc_jwt_keys_free(ks);
    pc_jwt_keys_free(hs);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
}

Test(jwt, alg_none_in_any_case)
{
    pc_jwt_keys *ks = a1_keys();
    static const char *const hdrs[] = {
        "{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
        "{\"alg\":\"nOnE\"}"};
    for (size_t i = 0; i < 4; i++) {
        char *h = b64s(hdrs[i]);
        char *unsigned_tok = join3(h, A_PAYLOAD, "");
        char *with_sig =
            join3(h, A_PAYLOAD, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        expect(unsigned_tok, ks, &ALL, RFC_NOW, PC_JWT_ALG_NOT_ALLOWED);
        expect(with_sig, ks, &ALL, RFC_NOW, PC_JWT_ALG_NOT_ALLOWED);
        free(h);
        free(unsigned_tok);
        free(with_sig);
    }
    pc_jwt_keys_free(ks);
}

Test(jwt, alg_outside_policy_or_unknown)
{
    pc_jwt_keys *ks = a1_keys();
    pc_jwt_policy rs_only = {.algorithms = PC_JWT_RS256 | PC_JWT_ES256};
    expect(A1_TOKEN, ks, &rs_only, RFC_NOW, PC_JWT_ALG_NOT_ALLOWED);
    static const char *const hdrs[] = {"{\"alg\":\"HS257\"}",
                                       "{\"alg\":\"hs256\"}", "{\"alg\":\"\"}",
                                       "{\"alg\":\"ES512\"}"};
    for (size_t i = 0; i < 4; i++) {
        char *h = b64s(hdrs[i]);
        char *tok = join3(h, A_PAYLOAD, "AAAA");
        expect(tok, ks, &ALL, RFC_NOW, PC_JWT_ALG_NOT_ALLOWED);
        free(h);
        free(tok);
    }
    pc_jwt_keys_free(ks);
}

/* The classic confusion: an HS256 token whose HMAC key is the verifier's RSA
 * public key, in every form an attacker could guess. */
Test(jwt, hs256_signed_with_rsa_public_key_bytes)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    unsigned char *der = NULL, *pem;
    int der_len = i2d_PUBKEY(rsa, &der);
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert(der_len > 0 && PEM_write_bio_PUBKEY(bio, rsa) == 1);
    long pem_len = BIO_get_mem_data(bio, (char **)&pem);
    json_t *jwk = jwk_of(rsa, "k1", NULL);
    char *jwk_text = json_dumps(jwk, JSON_COMPACT);
    json_t *arr = json_array();
    json_array_append(arr, jwk);
    pc_jwt_keys *with_kid = load_set(arr);
    json_object_del(jwk, "kid");
    arr = json_array();
    json_array_append_new(arr, jwk);
    pc_jwt_keys *no_kid = load_set(arr);
    pc_jwt_policy both = {.algorithms = PC_JWT_HS256 | PC_JWT_RS256};
    struct {
        const unsigned char *p;
        size_t n;
    } secrets[] = {{der, (size_t)der_len},
                   {pem, (size_t)pem_len},
                   {(const unsigned char *)jwk_text, strlen(jwk_text)}};
    for (size_t i = 0; i < 3; i++) {
        signer s = {.alg = PC_JWT_HS256,
                    .secret = secrets[i].p,
                    .secret_len = secrets[i].n};
        char *a = mint(&s, "k1", "{\"sub\":\"admin\"}");
        char *b = mint(&s, NULL, "{\"sub\":\"admin\"}");
        expect(a, with_kid, &both, NOW, PC_JWT_KEY_MISMATCH);
        expect(b, with_kid, &both, NOW, PC_JWT_KEY_MISMATCH);
        expect(b, no_kid, &both, NOW, PC_JWT_KEY_MISMATCH);
        free(a);
        free(b);
    }
    /* The same key signing properly is accepted, so the sets do work. */
    signer good = {.alg = PC_JWT_RS256, .pk = rsa};
    char *ok = mint(&good, "k1", "{\"sub\":\"admin\"}");
    expect(ok, with_kid, &both, NOW, PC_JWT_OK);
    free(ok);
    free(jwk_text);
    OPENSSL_free(der);
    BIO_free(bio);
    pc_jwt_keys_free(with_kid);
    pc_jwt_keys_free(no_kid);
    EVP_PKEY_free(rsa);
}

Test(jwt, key_type_must_fit_alg)
{
    EVP_PKEY *rsa = gen_rsa(2048), *p256 = gen_ec("P-256");
    json_t *arr = json_array();
    json_array_append_new(arr, jwk_of(rsa, "rsa", "RS256"));
    json_array_append_new(arr, jwk_of(p256, "ec", NULL));
    pc_jwt_keys *ks = load_set(arr);
    signer rs384 = {.alg = PC_JWT_RS384, .pk = rsa};
    signer es256 = {.alg = PC_JWT_ES256, .pk = p256};
    signer es384 = {.alg = PC_JWT_ES384, .pk = p256};
    /* JWK "alg":"RS256" pins the key to RS256. */
    char *t1 = mint(&rs384, "rsa", "{}");
    expect(t1, ks, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    /* ES256 signature under the RSA key's kid. */
    char *t2 = mint(&es256, "rsa", "{}");
    expect(t2, ks, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    /* A P-256 key never verifies ES384: OpenSSL itself would accept a
     * SHA-384 digest on P-256, so the guard must be ours. */
    char *t3 = mint(&es384, "ec", "{}");
    expect(t3, ks, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    char *t4 = mint(&es384, NULL, "{}");
    expect(t4, ks, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    char *t5 = mint(&es256, NULL, "{}");
    expect(t5, ks, &ALL, NOW, PC_JWT_OK);
    /* An RSA token against a secret set. */
    pc_jwt_keys *hs = a1_keys();
    signer rs256 = {.alg = PC_JWT_RS256, .pk = rsa};
    char *t6 = mint(&rs256, NULL, "{}");
    expect(t6, hs, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
    free(t6);
    pc_jwt_keys_free(ks);
    pc_jwt_keys_free(hs);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
}

/* RFC 7518 §3.5: the PSS salt is as long as the hash; a signature with a
 * longer salt is refused, not auto-detected. */
Test(jwt, ps256_salt_length_is_the_hash_length)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    json_t *arr = json_array();
    json_array_append_new(arr, jwk_of(rsa, NULL, NULL));
    pc_jwt_keys *ks = load_set(arr);
    const char *input = "eyJhbGciOiJQUzI1NiJ9.e30";
    unsigned char sig[256];
    size_t n = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    cr_assert(EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, rsa) == 1);
    cr_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
    cr_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 64) == 1);
    cr_assert(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input,
                             strlen(input)) == 1);
    char *enc = b64(sig, n), tok[600];
    snprintf(tok, sizeof(tok), "%s.%s", input, enc);
    expect(tok, ks, &ALL, NOW, PC_JWT_BAD_SIGNATURE);
    signer good = {.alg = PC_JWT_PS256, .pk = rsa};
    char *ok = mint_raw(&good, "{\"alg\":\"PS256\"}", "{}");
    expect(ok, ks, &ALL, NOW, PC_JWT_OK);
    free(ok);
    free(enc);
    EVP_MD_CTX_free(ctx);
    pc_jwt_keys_free(ks);
    EVP_PKEY_free(rsa);
}

Test(jwt, hmac_secret_length_per_alg)
{
    unsigned char secret[64] = {1, 2, 3};
    pc_jwt_keys *k32 = secret_keys(secret, 32), *k48 = secret_keys(secret, 48);
    signer s384 = {.alg = PC_JWT_HS384, .secret = secret, .secret_len = 32};
    signer s512 = {.alg = PC_JWT_HS512, .secret = secret, .secret_len = 48};
    char *t384 = mint(&s384, NULL, "{}"), *t512 = mint(&s512, NULL, "{}");
    expect(t384, k32, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    expect(t512, k48, &ALL, NOW, PC_JWT_KEY_MISMATCH);
    free(t384);
    s384.secret_len = 48;
    t384 = mint(&s384, NULL, "{}");
    expect(t384, k48, &ALL, NOW, PC_JWT_OK);
    free(t384);
    free(t512);
    pc_jwt_keys_free(k32);
    pc_jwt_keys_free(k48);
}

Test(jwt, kid_selection)
{
    EVP_PKEY *a = gen_ec("P-256"), *b = gen_ec("P-256"), *c = gen_ec("P-256");
    json_t *arr = json_array();
    json_array_append_new(arr, jwk_of(a, "a", NULL));
    json_array_append_new(arr, jwk_of(b, "b", NULL));
    json_array_append_new(arr, jwk_of(c, NULL, NULL));
    pc_jwt_keys *ks = load_set(arr);
    signer sa = {.alg = PC_JWT_ES256, .pk = a},
           sb = {.alg = PC_JWT_ES256, .pk = b},
           sc = {.alg = PC_JWT_ES256, .pk = c};
    char *t[6] = {mint(&sa, "a", "{}"),  mint(&sb, "b", "{}"),
                  mint(&sb, "a", "{}"),  mint(&sb, "nope", "{}"),
                  mint(&sc, NULL, "{}"), mint(&sc, "c", "{}")};
    expect(t[0], ks, &ALL, NOW, PC_JWT_OK);
    expect(t[1], ks, &ALL, NOW, PC_JWT_OK);
    /* Named key a does not verify b's signature, and b is not tried. */
    expect(t[2], ks, &ALL, NOW, PC_JWT_BAD_SIGNATURE);
    expect(t[3], ks, &ALL, NOW, PC_JWT_UNKNOWN_KID);
    /* Without kid every fitting key is tried; the third one matches. */
    expect(t[4], ks, &ALL, NOW, PC_JWT_OK);
    /* A kid never falls back to an unnamed key. */
    expect(t[5], ks, &ALL, NOW, PC_JWT_UNKNOWN_KID);
    for (int i = 0; i < 6; i++)
        free(t[i]);
    pc_jwt_keys_free(ks);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(c);
}

Test(jwt, bad_base64url_segments)
{
    pc_jwt_keys *ks = a1_keys();
    static const char *const bad[] = {
        /* padding on the signature, then on the header */
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s.dBjftJeZ4CVP-"
        "mB92K27uhbUJU1p1r_wW1gFWFOEjXk=",
        "eyJhbGciOiJIUzI1NiJ9=.%s.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        /* standard alphabet */
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s.dBjftJeZ4CVP+"
        "mB92K27uhbUJU1p1r/wW1gFWFOEjXk",
        /* whitespace */
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s "
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        " eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s.dBjftJeZ4CVP-"
        "mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        /* non-canonical last character of the signature (k -> l) */
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s.dBjftJeZ4CVP-"
        "mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
    };
    char tok[600];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(tok, sizeof(tok), bad[i], A_PAYLOAD);
        expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    }
    /* The payload with '+' in place of '-' or '_' is not base64url. */
    snprintf(tok, sizeof(tok), "%s", A1_TOKEN);
    char *p = strchr(tok, '.') + 5;
    *p = '+';
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    pc_jwt_keys_free(ks);
}

Test(jwt, segment_count)
{
    pc_jwt_keys *ks = a1_keys();
    char tok[600];
    static const char *const bad[] = {
        "", ".", "..", "...", "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9..",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(bad[i], ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    snprintf(tok, sizeof(tok), "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s",
             A_PAYLOAD);
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    snprintf(tok, sizeof(tok), "%s.", A1_TOKEN);
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    snprintf(tok, sizeof(tok), "%s.AAAA", A1_TOKEN);
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    /* A JWE has five segments. */
    snprintf(tok, sizeof(tok), "%s.AAAA.AAAA", A1_TOKEN);
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_MALFORMED);
    pc_jwt_keys_free(ks);
}

Test(jwt, tampered_tokens)
{
    pc_jwt_keys *rs = jwks(A2_JWKS), *hs = a1_keys();
    const char *sig2 = strrchr(A2_TOKEN, '.') + 1;
    const char *sig1 = strrchr(A1_TOKEN, '.') + 1;
    char *eve = b64s("{\"iss\":\"eve\",\r\n \"exp\":1300819380,\r\n "
                     "\"http://example.com/is_root\":true}");
    char *t1 = join3("eyJhbGciOiJSUzI1NiJ9", eve, sig2);
    char *t2 = join3("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9", eve, sig1);
    expect(t1, rs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    expect(t2, hs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    /* A different (equivalent) header changes the signing input. */
    char *hdr = b64s("{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    char *t3 = join3(hdr, A_PAYLOAD, sig2);
    expect(t3, rs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    /* Signature truncated, emptied, one bit flipped. */
    char *t4 = strdup(A2_TOKEN);
    t4[strlen(t4) - 2] = '\0'; /* 340 characters: 255 bytes */
    expect(t4, rs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    char *t5 = join3("eyJhbGciOiJSUzI1NiJ9", A_PAYLOAD, "");
    expect(t5, rs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    char *t6 = strdup(A1_TOKEN);
    t6[strlen(t6) - 3] = t6[strlen(t6) - 3] == 'A' ? 'B' : 'A';
    expect(t6, hs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    free(eve);
    free(hdr);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
    free(t6);
    pc_jwt_keys_free(rs);
    pc_jwt_keys_free(hs);
}

Test(jwt, ecdsa_signature_length_and_form)
{
    pc_jwt_keys *ks = jwks(A3_JWKS);
    const char *sig = strrchr(A3_TOKEN, '.') + 1;
    unsigned char raw[80];
    long n = pc_b64url_decode(sig, strlen(sig), raw, sizeof(raw));
    cr_assert_eq(n, 64);
    char input[sizeof(A3_TOKEN)];
    snprintf(input, sizeof(input), "%.*s", (int)(sig - 1 - A3_TOKEN), A3_TOKEN);
    /* One byte short, one byte long, and the same R, S in DER form. */
    char *short_sig = b64(raw, 63);
    raw[64] = 0;
    char *long_sig = b64(raw, 65);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *der = NULL;
    int dlen = i2d_ECDSA_SIG(es, &der);
    char *der_sig = b64(der, (size_t)dlen);
    const char *sigs[] = {short_sig, long_sig, der_sig};
    for (int i = 0; i < 3; i++) {
        char tok[400];
        snprintf(tok, sizeof(tok), "%s.%s", input, sigs[i]);
        expect(tok, ks, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    }
    /* R and S swapped. */
    unsigned char swapped[64];
    memcpy(swapped, raw + 32, 32);
    memcpy(swapped + 32, raw, 32);
    char *sw = b64(swapped, 64), tok[400];
    snprintf(tok, sizeof(tok), "%s.%s", input, sw);
    expect(tok, ks, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    free(sw);
    free(short_sig);
    free(long_sig);
    free(der_sig);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    pc_jwt_keys_free(ks);
}

Test(jwt, token_need_not_be_terminated)
{
    pc_jwt_keys *ks = a1_keys();
    size_t n = strlen(A1_TOKEN);
    char *copy = malloc(n);
    memcpy(copy, A1_TOKEN, n);
    cr_assert_eq(pc_jwt_verify(copy, n, ks, &ALL, RFC_NOW, NULL, NULL),
                 PC_JWT_OK);
    /* 40 signature characters: decodes, to a MAC 2 bytes short. */
    cr_assert_eq(pc_jwt_verify(copy, n - 3, ks, &ALL, RFC_NOW, NULL, NULL),
                 PC_JWT_BAD_SIGNATURE);
    free(copy);
    pc_jwt_keys_free(ks);
}

Test(jwt, alg_names_and_messages)
{
    for (uint32_t bit = 1; bit & PC_JWT_ALG_ALL; bit <<= 1) {
        uint32_t back = 0;
        const char *name = pc_jwt_alg_name(bit);
        cr_assert(name);
        cr_assert_eq(pc_jwt_alg_parse(name, &back), 0);
        cr_assert_eq(back, bit);
    }
    uint32_t untouched = 99;
    cr_assert_eq(pc_jwt_alg_parse("none", &untouched), -1);
    cr_assert_eq(pc_jwt_alg_parse("rs256", &untouched), -1);
    cr_assert_eq(pc_jwt_alg_parse("EDDSA", &untouched), -1);
    cr_assert_eq(untouched, 99);
    cr_assert_null(pc_jwt_alg_name(3));
    cr_assert_str_eq(pc_jwt_status_message(PC_JWT_EXPIRED), "token expired");
    for (int a = PC_JWT_OK; a <= PC_JWT_BAD_AUDIENCE; a++)
        for (int b = a + 1; b <= PC_JWT_BAD_AUDIENCE; b++)
            cr_assert_str_neq(pc_jwt_status_message(a),
                              pc_jwt_status_message(b));
}

/* Failed verifications must not leave errors on the thread's OpenSSL queue,
 * where the worker's next TLS call would find them. */
Test(jwt, openssl_error_queue_left_clean)
{
    pc_jwt_keys *rs = jwks(A2_JWKS), *ec = jwks(A3_JWKS), *ed = jwks(A4_JWKS);
    char *bad_rs = strdup(A2_TOKEN), *bad_ec = strdup(A3_TOKEN);
    bad_rs[strlen(bad_rs) - 5] = bad_rs[strlen(bad_rs) - 5] == 'A' ? 'B' : 'A';
    bad_ec[strlen(bad_ec) - 5] = bad_ec[strlen(bad_ec) - 5] == 'A' ? 'B' : 'A';
    char *zero_ec = join3("eyJhbGciOiJFUzI1NiJ9", "e30",
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    char *bad_ed = join3("eyJhbGciOiJFZERTQSJ9", "e30",
                         "____________________________________________________"
                         "__________________________________g");
    ERR_clear_error();
    expect(bad_rs, rs, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    expect(bad_ec, ec, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    expect(zero_ec, ec, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    expect(bad_ed, ed, &ALL, RFC_NOW, PC_JWT_BAD_SIGNATURE);
    cr_assert_eq(ERR_peek_error(), 0, "left: %s",
                 ERR_error_string(ERR_peek_error(), NULL));
    const char *off_curve =
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4\"}]}";
    cr_assert_null(
        pc_jwt_keys_from_jwks(off_curve, strlen(off_curve), NULL, 0));
    cr_assert_eq(ERR_peek_error(), 0, "left after load: %s",
                 ERR_error_string(ERR_peek_error(), NULL));
    free(bad_rs);
    free(bad_ec);
    free(zero_ec);
    free(bad_ed);
    pc_jwt_keys_free(rs);
    pc_jwt_keys_free(ec);
    pc_jwt_keys_free(ed);
}
