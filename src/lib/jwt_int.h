/* jwt_int.h: the key set's layout, shared by jwks.c (which builds it) and
 * jwt.c (which verifies with it). Nothing outside src/lib/ includes this. */
#ifndef PORTCULLIS_JWT_INT_H
#define PORTCULLIS_JWT_INT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pc_jwt_key_kind {
    PC_JWT_KEY_HMAC,
    PC_JWT_KEY_RSA,
    PC_JWT_KEY_P256,
    PC_JWT_KEY_P384,
    PC_JWT_KEY_ED25519,
} pc_jwt_key_kind;

/* One verification key. Exactly one of pkey (asymmetric kinds) and secret
 * (HMAC) is set. algs is every alg this key may verify: what its type and
 * size allow, narrowed by the JWK's "alg" member when it had one. */
typedef struct pc_jwt_key {
    pc_jwt_key_kind kind;
    uint32_t algs;
    char *kid;             /* NULL when the JWK had none */
    EVP_PKEY *pkey;        /* owned */
    unsigned char *secret; /* owned */
    size_t secret_len;
} pc_jwt_key;

struct pc_jwt_keys {
    pc_jwt_key *v;
    size_t n;
    int from_secret; /* a secret set has one unnamed key: "kid" is ignored */
};

#endif
