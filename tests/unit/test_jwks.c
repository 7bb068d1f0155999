/* test_jwks.c: loading key sets (lib/jwks.c): the JWK members accepted, the
 * keys skipped, every load error naming its key and field, the HMAC secret
 * length rule and pc_jwt_keys_check. */
#include "jwt_mint.h"
#include "jwt_vectors.h"

#define RFC_NOW 1300819000

static const char A2_N[] = RFC_A2_N;
static const char A2_TOKEN[] = RFC_A2_TOKEN;
#define EC_X "\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\""
#define EC_Y "\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\""
#define ED_X "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\""

static char *fmt(const char *f, const char *a)
{
    size_t n = strlen(f) + (a ? strlen(a) : 0) + 1;
    char *out = malloc(n);
    snprintf(out, n, f, a);
    return out;
}

static void load_fails(const char *text, const char *msg_part)
{
    char err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert_null(ks, "accepted: %s", text);
    cr_assert(strstr(err, msg_part), "message '%s' lacks '%s' for %s", err,
              msg_part, text);
}

static size_t load_count(const char *text)
{
    char err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert(ks, "refused (%s): %s", err, text);
    size_t n = pc_jwt_keys_count(ks);
    pc_jwt_keys_free(ks);
    return n;
}

Test(jwks, private_members_are_accepted_and_ignored)
{
    /* RFC 7515 A.2's full private JWK. */
    char *text =
        fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\","
            "\"d\":"
            "\"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_"
            "GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-"
            "pWJ1O0BkTGoVEn2bKVRUCgu-"
            "GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_"
            "V51gfpRLI9JYanrC4D4qAdGcopV_"
            "0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1Zdi"
            "YoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_"
            "RQyGWSeWjnczT0QU91p1DhOVRuOopznQ\","
            "\"p\":\"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_"
            "5IB3jw3bcxGn6QLvnEtfdUdiYrqBd"
            "ss1l58BQ3KhooKeQTa9AB0Hw_"
            "Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1"
            "VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc\","
            "\"q\":\"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-"
            "7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgH"
            "AjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-"
            "njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc\","
            "\"alg\":\"RS256\",\"use\":\"sig\",\"key_ops\":[\"sign\","
            "\"verify\"]}]}",
            A2_N);
    char err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert(ks, "%s", err);
    pc_jwt_policy pol = {.algorithms = PC_JWT_RS256};
    cr_assert_eq(pc_jwt_verify(A2_TOKEN, strlen(A2_TOKEN), ks, &pol, RFC_NOW,
                               NULL, NULL),
                 PC_JWT_OK);
    pc_jwt_keys_free(ks);
    free(text);
}

Test(jwks, document_shape_errors)
{
    load_fails("not json", "JWKS line 1");
    load_fails("{\"keys\":[]", "JWKS line 1");
    load_fails("{\"keys\":[],\"keys\":[]}", "duplicate");
    load_fails("[]", "not a JWK Set");
    load_fails("{}", "not a JWK Set");
    load_fails("{\"keys\":{}}", "not a JWK Set");
    load_fails("{\"keys\":[]}", "no usable signing key");
    load_fails("{\"keys\":[5]}", "keys[0]: must be an object");
    load_fails("{\"keys\":[{\"crv\":\"P-256\",\"x\":" EC_X ",\"y\":" EC_Y "}]}",
               "keys[0].kty: missing");
}

Test(jwks, rsa_member_errors)
{
    char *t;
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", NULL);
    load_fails(t, "keys[0].n: missing");
    free(t);
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s=\",\"e\":\"AQAB\"}]}",
            A2_N);
    load_fails(t, "keys[0].n: not unpadded base64url");
    free(t);
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":65537}]}", A2_N);
    load_fails(t, "keys[0].e: must be a string");
    free(t);
    /* e = 65536 (even) and e = 1. */
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}]}", A2_N);
    load_fails(t, "keys[0].e: must be odd");
    free(t);
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ\"}]}", A2_N);
    load_fails(t, "keys[0].e: must be odd");
    free(t);
    t = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\","
            "\"e\":\"AQAAAAAAAAAAAQ\"}]}",
            A2_N);
    load_fails(t, "keys[0].e: must be odd, 3 or more, 64 bits at most");
    free(t);
}

Test(jwks, rsa_under_2048_bits_refused)
{
    EVP_PKEY *small = gen_rsa(1024), *ok = gen_rsa(2048);
    json_t *arr = json_array();
    json_array_append_new(arr, jwk_of(ok, "ok", NULL));
    json_array_append_new(arr, jwk_of(small, "small", NULL));
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *text = json_dumps(doc, 0);
    load_fails(text, "keys[1].n: RSA modulus of 1024 bits, must be 2048 to");
    free(text);
    json_decref(doc);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ok);
}

Test(jwks, ec_member_errors)
{
    load_fails("{\"keys\":[{\"kty\":\"EC\",\"x\":" EC_X ",\"y\":" EC_Y "}]}",
               "keys[0].crv: missing");
    load_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":" EC_X "}]}",
               "keys[0].y: missing");
    /* 31-byte x, as from a producer that strips leading zeros. */
    load_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
               "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVA\","
               "\"y\":" EC_Y "}]}",
               "keys[0].x: must be 32 bytes for P-256");
    /* The RFC point with y changed: off the curve. */
    load_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":" EC_X ","
               "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4\"}]}",
               "keys[0]: x, y is not a point of P-256");
    /* A P-256 point declared as P-384. */
    load_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":" EC_X
               ",\"y\":" EC_Y "}]}",
               "keys[0].x: must be 48 bytes for P-384");
}

Test(jwks, okp_and_common_member_errors)
{
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
               "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUQ\"}]}",
               "keys[0].x: must be 32 bytes for Ed25519");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"x\":" ED_X "}]}",
               "keys[0].crv: missing");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
               ",\"kid\":7}]}",
               "keys[0].kid: must be a string");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
               ",\"use\":1}]}",
               "keys[0].use: must be a string");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
               ",\"key_ops\":\"verify\"}]}",
               "keys[0].key_ops: must be an array");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
               ",\"alg\":false}]}",
               "keys[0].alg: must be a string");
    load_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
               "},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":" EC_X ",\"y\":" EC_Y
               ",\"alg\":\"EdDSA\"}]}",
               "keys[1].alg: EdDSA does not fit kty EC");
}

Test(jwks, keys_not_for_us_are_skipped)
{
    const char *ed = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X "}";
    static const char *const skipped[] = {
        "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":" ED_X "}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AA\"}",
        "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AA\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\",\"n\":\"AA\",\"e\":\"AQAB\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
        ",\"key_ops\":[\"sign\"]}",
        "{\"kty\":\"future\"}",
    };
    char text[512];
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
        snprintf(text, sizeof(text), "{\"keys\":[%s,%s]}", skipped[i], ed);
        cr_assert_eq(load_count(text), 1, "%s", text);
        snprintf(text, sizeof(text), "{\"keys\":[%s]}", skipped[i]);
        load_fails(text, "no usable signing key");
    }
    snprintf(text, sizeof(text),
             "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X
             ",\"use\":\"sig\",\"key_ops\":[\"verify\"]},%s]}",
             ed);
    cr_assert_eq(load_count(text), 2);
}

Test(jwks, skipped_key_never_verifies)
{
    /* The RFC 7515 A.3 key marked for encryption: its kid is unknown. */
    const char *text =
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\","
        "\"use\":\"enc\",\"x\":" EC_X ",\"y\":" EC_Y "},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" ED_X "}]}";
    const char *tok =
        "eyJhbGciOiJFUzI1NiIsImtpZCI6ImUifQ.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    char err[256] = "";
    pc_jwt_keys *ks =
        pc_jwt_keys_from_jwks(text, strlen(text), err, sizeof(err));
    cr_assert(ks, "%s", err);
    pc_jwt_policy pol = {.algorithms = PC_JWT_ALG_ALL};
    cr_assert_eq(pc_jwt_verify(tok, strlen(tok), ks, &pol, 0, NULL, NULL),
                 PC_JWT_UNKNOWN_KID);
    pc_jwt_keys_free(ks);
}

Test(jwks, hmac_secret_length)
{
    unsigned char s[64] = {0};
    char err[128] = "";
    cr_assert_null(pc_jwt_keys_from_secret(s, 31, err, sizeof(err)));
    cr_assert(strstr(err, "secret of 31 bytes is too short"), "%s", err);
    cr_assert_null(pc_jwt_keys_from_secret(s, 0, NULL, 0));
    pc_jwt_keys *ks = pc_jwt_keys_from_secret(s, 32, err, sizeof(err));
    cr_assert(ks);
    cr_assert_eq(pc_jwt_keys_count(ks), 1);
    pc_jwt_keys_free(ks);
}

static void check_is(const pc_jwt_keys *ks, uint32_t algs, const char *msg)
{
    char err[128] = "";
    int rc = pc_jwt_keys_check(ks, algs, err, sizeof(err));
    if (!msg) {
        cr_assert_eq(rc, 0, "refused: %s", err);
        return;
    }
    cr_assert_eq(rc, -1, "accepted, expected '%s'", msg);
    cr_assert(strstr(err, msg), "message '%s' lacks '%s'", err, msg);
}

Test(jwks, check_algorithms_against_keys)
{
    unsigned char s[64] = {0};
    pc_jwt_keys *k32 = pc_jwt_keys_from_secret(s, 32, NULL, 0);
    pc_jwt_keys *k48 = pc_jwt_keys_from_secret(s, 48, NULL, 0);
    pc_jwt_keys *k64 = pc_jwt_keys_from_secret(s, 64, NULL, 0);
    check_is(k32, PC_JWT_HS256, NULL);
    check_is(k32, PC_JWT_HS256 | PC_JWT_HS384,
             "HS384 needs a secret of at least 48 bytes (have 32)");
    check_is(k48, PC_JWT_HS384 | PC_JWT_HS512,
             "HS512 needs a secret of at least 64 bytes (have 48)");
    check_is(k64, PC_JWT_HS256 | PC_JWT_HS384 | PC_JWT_HS512, NULL);
    check_is(k64, PC_JWT_RS256, "no key of the set can verify RS256");

    char *text = fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\","
                     "\"alg\":\"RS256\"}]}",
                     A2_N);
    pc_jwt_keys *rsa = pc_jwt_keys_from_jwks(text, strlen(text), NULL, 0);
    cr_assert(rsa);
    check_is(rsa, PC_JWT_RS256, NULL);
    check_is(rsa, PC_JWT_RS256 | PC_JWT_ES256,
             "no key of the set can verify ES256");
    check_is(rsa, PC_JWT_RS384, "no key of the set can verify RS384");
    check_is(rsa, PC_JWT_HS256, "no key of the set can verify HS256");
    free(text);
    text =
        fmt("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", A2_N);
    pc_jwt_keys *any = pc_jwt_keys_from_jwks(text, strlen(text), NULL, 0);
    cr_assert(any);
    check_is(any, PC_JWT_RS256 | PC_JWT_RS384 | PC_JWT_RS512 | PC_JWT_PS256,
             NULL);
    free(text);
    pc_jwt_keys_free(k32);
    pc_jwt_keys_free(k48);
    pc_jwt_keys_free(k64);
    pc_jwt_keys_free(rsa);
    pc_jwt_keys_free(any);
}
