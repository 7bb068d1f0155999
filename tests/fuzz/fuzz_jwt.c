/* fuzz_jwt.c: libFuzzer target for pc_jwt_verify, the function the JWT stage
 * runs on every bearer token. The input bytes are the token; it is verified
 * against a fixed JWK Set (RSA, EC P-256 and OKP Ed25519 keys of RFC 7515 A.2,
 * A.3 and RFC 8037) and against an HMAC secret (RFC 7515 A.1's key), under an
 * open and a strict policy, so the seed corpus's RFC tokens reach OK and
 * every claim check. Invariants (abort on failure): claims are returned only
 * with PC_JWT_OK and are an object; a verified token put in the cache is a
 * hit at the same instant.
 *
 * Build and run (outputs outside the repository):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Iinclude tests/fuzz/fuzz_jwt.c src/lib/jwt.c src/lib/jwks.c \
 *     src/lib/jwt_cache.c src/lib/base64url.c src/lib/util.c \
 *     -lcrypto -ljansson -o /tmp/fuzz_jwt
 *   cp -r tests/fuzz/corpus/jwt /tmp/jwt_corpus
 *   /tmp/fuzz_jwt -max_total_time=60 -max_len=9000 /tmp/jwt_corpus */
#include "portcullis/base64url.h"
#include "portcullis/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RFC_NOW 1300819000

static const char JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"e\":\"AQAB\",\"n\":"
    "\"ofgWCuLjybRlzo0tZWJj"
    "NiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4"
    "QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf6"
    "3kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZl"
    "xvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91"
    "kzk2PAcDTW9gb54h4FRWyuXpoQ\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
static const char SECRET_B64[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_"
                                 "T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

static pc_jwt_keys *jwks, *secret;
static pc_jwt_cache *cache;
static const char *const audiences[] = {"orders-api", "joe"};
static const pc_jwt_policy open_policy = {.algorithms = PC_JWT_ALG_ALL};
static const pc_jwt_policy strict_policy = {.algorithms = PC_JWT_ALG_ALL,
                                            .issuer = "joe",
                                            .audiences = audiences,
                                            .naudiences = 2,
                                            .leeway = 30};

static void die(const char *what)
{
    fprintf(stderr, "fuzz_jwt: invariant broken: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char key[64];
    char err[256];

    (void)argc;
    (void)argv;
    jwks = pc_jwt_keys_from_jwks(JWKS, strlen(JWKS), err, sizeof(err));
    if (!jwks || pc_jwt_keys_count(jwks) != 3)
        die(err);
    if (pc_b64url_decode(SECRET_B64, strlen(SECRET_B64), key, sizeof(key)) !=
        64)
        die("secret decode");
    secret = pc_jwt_keys_from_secret(key, sizeof(key), err, sizeof(err));
    if (!secret)
        die(err);
    cache = pc_jwt_cache_new(4);
    return 0;
}

static void run(const char *tok, size_t len, const pc_jwt_keys *keys,
                const pc_jwt_policy *pol)
{
    json_t *claims = NULL;
    int64_t exp = 7;
    pc_jwt_status st =
        pc_jwt_verify(tok, len, keys, pol, RFC_NOW, &claims, &exp);

    if (st > PC_JWT_BAD_AUDIENCE || !pc_jwt_status_message(st))
        die("status out of range");
    if (st != PC_JWT_OK) {
        if (claims || exp != 7)
            die("outputs written on failure");
        return;
    }
    if (!json_is_object(claims))
        die("claims not an object");
    if (exp <= RFC_NOW - (pol->leeway > 0 ? pol->leeway : 0))
        die("expired token accepted");
    /* The stage caches with the exp verify returned; with no leeway the
     * same instant must hit. */
    pc_jwt_cache_put(cache, (uintptr_t)pol, tok, len, claims, exp);
    if (pol->leeway == 0 && exp > RFC_NOW &&
        pc_jwt_cache_get(cache, (uintptr_t)pol, tok, len, RFC_NOW) != claims)
        die("verified token missed the cache");
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *tok = (const char *)data;

    run(tok, size, jwks, &open_policy);
    run(tok, size, jwks, &strict_policy);
    run(tok, size, secret, &open_policy);
    run(tok, size, secret, &strict_policy);
    return 0;
}
