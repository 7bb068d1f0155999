/* test_jwt_claims.c: the claim, header and size rules of pc_jwt_verify
 * (lib/jwt.c), with HS256 tokens minted here: exp / nbf / iat with and
 * without leeway, iss, aud, the payload's and header's shape, 8 KiB. */
#include "jwt_mint.h"

#define NOW 1700000000

/* HS256 tokens with a fixed secret, for the claim checks. */
static const unsigned char SECRET[32] = "0123456789abcdef0123456789abcdef";

static char *hs(const char *payload)
{
    signer s = {.alg = PC_JWT_HS256, .secret = SECRET, .secret_len = 32};
    return mint(&s, NULL, payload);
}

static void claims_case(const char *payload, const pc_jwt_policy *pol,
                        pc_jwt_status want)
{
    pc_jwt_keys *ks = secret_keys(SECRET, 32);
    char *tok = hs(payload);
    json_t *claims = NULL;
    pc_jwt_status got =
        pc_jwt_verify(tok, strlen(tok), ks, pol, NOW, &claims, NULL);
    cr_assert_eq(got, want, "%s: got '%s', want '%s'", payload,
                 pc_jwt_status_message(got), pc_jwt_status_message(want));
    json_decref(claims);
    free(tok);
    pc_jwt_keys_free(ks);
}

Test(jwt, expiry_with_and_without_leeway)
{
    pc_jwt_policy strict = {.algorithms = PC_JWT_HS256};
    pc_jwt_policy lenient = {.algorithms = PC_JWT_HS256, .leeway = 30};
    claims_case("{\"exp\":1700000001}", &strict, PC_JWT_OK);
    claims_case("{\"exp\":1700000000}", &strict, PC_JWT_EXPIRED);
    claims_case("{\"exp\":1699999999}", &strict, PC_JWT_EXPIRED);
    claims_case("{\"exp\":1699999971}", &lenient, PC_JWT_OK);
    claims_case("{\"exp\":1699999970}", &lenient, PC_JWT_EXPIRED);
    /* Fractions: exp rounds down. */
    claims_case("{\"exp\":1700000000.9}", &strict, PC_JWT_EXPIRED);
    claims_case("{\"exp\":1700000001.5}", &strict, PC_JWT_OK);
    claims_case("{\"exp\":-5}", &lenient, PC_JWT_EXPIRED);
    claims_case("{\"exp\":1e300}", &strict, PC_JWT_OK);
    /* A negative leeway counts as none. */
    pc_jwt_policy neg = {.algorithms = PC_JWT_HS256, .leeway = -100};
    claims_case("{\"exp\":1700000001}", &neg, PC_JWT_OK);
}

Test(jwt, exp_output)
{
    pc_jwt_keys *ks = secret_keys(SECRET, 32);
    char *a = hs("{\"exp\":1700000100}"), *b = hs("{\"sub\":\"x\"}");
    int64_t exp = 0;
    cr_assert_eq(pc_jwt_verify(a, strlen(a), ks, &ALL, NOW, NULL, &exp),
                 PC_JWT_OK);
    cr_assert_eq(exp, 1700000100);
    cr_assert_eq(pc_jwt_verify(b, strlen(b), ks, &ALL, NOW, NULL, &exp),
                 PC_JWT_OK);
    cr_assert_eq(exp, INT64_MAX);
    free(a);
    free(b);
    pc_jwt_keys_free(ks);
}

Test(jwt, not_before_and_issued_at)
{
    pc_jwt_policy strict = {.algorithms = PC_JWT_HS256};
    pc_jwt_policy lenient = {.algorithms = PC_JWT_HS256, .leeway = 30};
    claims_case("{\"nbf\":1700000000}", &strict, PC_JWT_OK);
    claims_case("{\"nbf\":1700000001}", &strict, PC_JWT_NOT_YET_VALID);
    claims_case("{\"nbf\":1700000000.2}", &strict, PC_JWT_NOT_YET_VALID);
    claims_case("{\"nbf\":1700000030}", &lenient, PC_JWT_OK);
    claims_case("{\"nbf\":1700000031}", &lenient, PC_JWT_NOT_YET_VALID);
    claims_case("{\"iat\":1700000000}", &strict, PC_JWT_OK);
    claims_case("{\"iat\":1700000001}", &strict, PC_JWT_ISSUED_IN_FUTURE);
    claims_case("{\"iat\":1700000030}", &lenient, PC_JWT_OK);
    claims_case("{\"iat\":1700000031}", &lenient, PC_JWT_ISSUED_IN_FUTURE);
    claims_case("{\"iat\":1e300}", &lenient, PC_JWT_ISSUED_IN_FUTURE);
    /* exp is checked first. */
    claims_case("{\"exp\":1,\"nbf\":1800000000}", &strict, PC_JWT_EXPIRED);
}

Test(jwt, time_claims_must_be_numbers)
{
    pc_jwt_policy pol = {.algorithms = PC_JWT_HS256};
    claims_case("{\"exp\":\"1800000000\"}", &pol, PC_JWT_MALFORMED);
    claims_case("{\"exp\":null}", &pol, PC_JWT_MALFORMED);
    claims_case("{\"nbf\":true}", &pol, PC_JWT_MALFORMED);
    claims_case("{\"iat\":[1]}", &pol, PC_JWT_MALFORMED);
    claims_case("{\"iat\":{}}", &pol, PC_JWT_MALFORMED);
}

Test(jwt, issuer)
{
    pc_jwt_policy pol = {.algorithms = PC_JWT_HS256,
                         .issuer = "https://auth.example.com/"};
    claims_case("{\"iss\":\"https://auth.example.com/\"}", &pol, PC_JWT_OK);
    claims_case("{\"iss\":\"https://auth.example.com\"}", &pol,
                PC_JWT_BAD_ISSUER);
    claims_case("{\"iss\":\"https://evil.example.com/\"}", &pol,
                PC_JWT_BAD_ISSUER);
    claims_case("{\"sub\":\"x\"}", &pol, PC_JWT_BAD_ISSUER);
    claims_case("{\"iss\":[\"https://auth.example.com/\"]}", &pol,
                PC_JWT_BAD_ISSUER);
    pc_jwt_policy none = {.algorithms = PC_JWT_HS256};
    claims_case("{\"iss\":\"anyone\"}", &none, PC_JWT_OK);
}

Test(jwt, audience)
{
    static const char *const auds[] = {"orders-api", "billing"};
    pc_jwt_policy pol = {
        .algorithms = PC_JWT_HS256, .audiences = auds, .naudiences = 2};
    claims_case("{\"aud\":\"orders-api\"}", &pol, PC_JWT_OK);
    claims_case("{\"aud\":\"billing\"}", &pol, PC_JWT_OK);
    claims_case("{\"aud\":\"Orders-API\"}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"aud\":\"other\"}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"aud\":[\"x\",\"billing\"]}", &pol, PC_JWT_OK);
    claims_case("{\"aud\":[\"x\",\"y\"]}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"aud\":[]}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"aud\":[[\"billing\"]]}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"aud\":7}", &pol, PC_JWT_BAD_AUDIENCE);
    claims_case("{\"sub\":\"x\"}", &pol, PC_JWT_BAD_AUDIENCE);
    pc_jwt_policy none = {.algorithms = PC_JWT_HS256};
    claims_case("{\"aud\":\"whatever\"}", &none, PC_JWT_OK);
}

Test(jwt, payload_must_be_json_object)
{
    pc_jwt_policy pol = {.algorithms = PC_JWT_HS256};
    claims_case("[1,2]", &pol, PC_JWT_MALFORMED);
    claims_case("\"claims\"", &pol, PC_JWT_MALFORMED);
    claims_case("42", &pol, PC_JWT_MALFORMED);
    claims_case("{\"sub\":\"x\"", &pol, PC_JWT_MALFORMED);
    claims_case("{\"sub\":\"x\"} trailing", &pol, PC_JWT_MALFORMED);
    claims_case("{\"sub\":\"a\",\"sub\":\"b\"}", &pol, PC_JWT_MALFORMED);
    claims_case("{\"sub\":\"\\u0000\"}", &pol, PC_JWT_MALFORMED);
    claims_case("{}", &pol, PC_JWT_OK);
}

Test(jwt, header_rules)
{
    pc_jwt_keys *ks = secret_keys(SECRET, 32);
    signer s = {.alg = PC_JWT_HS256, .secret = SECRET, .secret_len = 32};
    static const struct {
        const char *header;
        pc_jwt_status want;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", PC_JWT_OK},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", PC_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}",
         PC_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":7}", PC_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":1}", PC_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", PC_JWT_MALFORMED},
        {"{\"typ\":\"JWT\"}", PC_JWT_MALFORMED},
        {"{\"alg\":256}", PC_JWT_MALFORMED},
        {"[\"HS256\"]", PC_JWT_MALFORMED},
        {"not json", PC_JWT_MALFORMED},
        /* A key in the header is never used. */
        {"{\"alg\":\"HS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}",
         PC_JWT_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = mint_raw(&s, cases[i].header, "{\"sub\":\"x\"}");
        expect(tok, ks, &ALL, NOW, cases[i].want);
        free(tok);
    }
    pc_jwt_keys_free(ks);
}

/* A valid token of exactly n bytes: the "pad" claim and optional "typ"
 * header adjust the length (a base64url length is never 4k+1). */
static char *token_of_length(size_t n)
{
    signer s = {.alg = PC_JWT_HS256, .secret = SECRET, .secret_len = 32};
    char *payload = malloc(n + 32), *tok;
    for (int typ = 0; typ < 2; typ++) {
        for (size_t pad = n * 3 / 4 - 200; pad < n; pad++) {
            snprintf(payload, n + 32, "{\"pad\":\"%0*d\"}", (int)pad, 0);
            tok = mint_raw(&s,
                           typ ? "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
                               : "{\"alg\":\"HS256\"}",
                           payload);
            if (strlen(tok) == n) {
                free(payload);
                return tok;
            }
            free(tok);
        }
    }
    cr_assert_fail("no token of %zu bytes", n);
    return NULL;
}

Test(jwt, size_limit)
{
    pc_jwt_keys *ks = secret_keys(SECRET, 32);
    char *max = token_of_length(PC_JWT_MAX_TOKEN);
    char *over = token_of_length(PC_JWT_MAX_TOKEN + 1);
    expect(max, ks, &ALL, NOW, PC_JWT_OK);
    expect(over, ks, &ALL, NOW, PC_JWT_TOO_LARGE);
    /* Refused on size alone: garbage that long is not even parsed. */
    char *junk = malloc(PC_JWT_MAX_TOKEN + 2);
    memset(junk, '.', PC_JWT_MAX_TOKEN + 1);
    junk[PC_JWT_MAX_TOKEN + 1] = '\0';
    expect(junk, ks, &ALL, NOW, PC_JWT_TOO_LARGE);
    free(junk);
    free(max);
    free(over);
    pc_jwt_keys_free(ks);
}
