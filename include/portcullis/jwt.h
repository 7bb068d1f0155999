/* jwt.h: verification of compact JWS tokens (RFC 7515, 7518, 7519, 8037)
 * for the JWT authentication stage (CONTRACT §2 jwt.providers, §4 401).
 * Key sets are immutable after load and may be shared by every worker; the
 * verified-token cache is per worker. No I/O: files are read by the caller.
 * docs/jwt.md describes every rule below for operators. */
#ifndef PORTCULLIS_JWT_H
#define PORTCULLIS_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted, in bytes (CONTRACT §4: "token over 8 KiB"). */
#define PC_JWT_MAX_TOKEN 8192

/* Signature algorithms (RFC 7518 §3, RFC 8037 §3.1), as bits of a mask. */
typedef enum pc_jwt_alg {
    PC_JWT_HS256 = 1u << 0,
    PC_JWT_HS384 = 1u << 1,
    PC_JWT_HS512 = 1u << 2,
    PC_JWT_RS256 = 1u << 3,
    PC_JWT_RS384 = 1u << 4,
    PC_JWT_RS512 = 1u << 5,
    PC_JWT_PS256 = 1u << 6,
    PC_JWT_ES256 = 1u << 7,
    PC_JWT_ES384 = 1u << 8,
    PC_JWT_EDDSA = 1u << 9,
} pc_jwt_alg;

#define PC_JWT_ALG_ALL 0x3ffu

/* Maps a JOSE "alg" name ("RS256", "EdDSA"; case-sensitive, as RFC 7515
 * §4.1.1 says) to its bit. Returns 0, or -1 for a name not in the list above
 * ("none" included), leaving *bit untouched. */
int pc_jwt_alg_parse(const char *name, uint32_t *bit);

/* The JOSE name of one alg bit, or NULL when bit is not exactly one of them. */
const char *pc_jwt_alg_name(uint32_t bit);

/* A set of verification keys. Immutable once returned: any number of threads
 * may verify against it at once. Owned by whoever loaded it (the config
 * generation); freed with pc_jwt_keys_free. */
typedef struct pc_jwt_keys pc_jwt_keys;

/* Loads a JWK Set (RFC 7517 §5): a JSON object whose "keys" member is an
 * array of JWKs. Accepted: kty "RSA" (n, e; modulus 2048 to 8192 bits, e odd
 * and at most 64 bits), "EC" (crv "P-256" or "P-384", x and y of exactly the
 * coordinate size, a point on the curve), "OKP" (crv "Ed25519", x of 32
 * bytes). Optional members: "kid" (string), "alg" (a supported name that
 * fits the key type: the key then verifies only that alg), "use" and
 * "key_ops". Skipped, as RFC 7517 §5 asks: keys whose kty, crv or alg this
 * build does not support, keys with "use" other than "sig", keys whose
 * "key_ops" lack "verify". Private members (d, p, q, ...) are ignored: only
 * the public key is kept. Returns NULL when the text is not a JWK Set, when a
 * supported key has a missing or invalid member (the message names both, as
 * "keys[2].x: ..."), or when no usable key remains; err (when given) then
 * holds the reason. */
pc_jwt_keys *pc_jwt_keys_from_jwks(const char *json, size_t len, char *err,
                                   size_t errlen);

/* A set holding one HMAC secret (HS256/384/512) of len bytes, copied. RFC 7518
 * §3.2 wants a key at least as long as the hash: a secret under 32 bytes is
 * refused here (NULL, with the reason in err), and HS384 / HS512 tokens need
 * 48 / 64 bytes, else they fail with PC_JWT_KEY_MISMATCH (pc_jwt_keys_check
 * reports it at load time). Such a set ignores a token's "kid": it has one
 * key and no names. */
pc_jwt_keys *pc_jwt_keys_from_secret(const unsigned char *secret, size_t len,
                                     char *err, size_t errlen);

/* Checks that every algorithm in the mask has at least one key of the set
 * able to verify it, so that a provider cannot be configured to accept an
 * alg it would then refuse on every request. Returns 0, or -1 naming the
 * first alg that has none ("HS512 needs a secret of at least 64 bytes", "no
 * key of the set can verify ES384"). */
int pc_jwt_keys_check(const pc_jwt_keys *keys, uint32_t algorithms, char *err,
                      size_t errlen);

/* Number of keys kept (after skipping). */
size_t pc_jwt_keys_count(const pc_jwt_keys *keys);

/* Frees the set; NULL is accepted. No verification may be running on it. */
void pc_jwt_keys_free(pc_jwt_keys *keys);

/* What a provider accepts. Borrowed by pc_jwt_verify for the call only. */
typedef struct pc_jwt_policy {
    uint32_t algorithms;          /* allowed pc_jwt_alg bits */
    const char *issuer;           /* NULL: "iss" not checked */
    const char *const *audiences; /* "aud" must contain one of them */
    size_t naudiences;            /* 0: "aud" not checked */
    int64_t leeway;               /* seconds of clock skew; < 0 means 0 */
} pc_jwt_policy;

typedef enum pc_jwt_status {
    PC_JWT_OK = 0,
    PC_JWT_MALFORMED,        /* not a well-formed JWS or JWT */
    PC_JWT_TOO_LARGE,        /* over PC_JWT_MAX_TOKEN bytes */
    PC_JWT_ALG_NOT_ALLOWED,  /* "none", unknown, or not in the policy */
    PC_JWT_UNKNOWN_KID,      /* "kid" names no key of the set */
    PC_JWT_KEY_MISMATCH,     /* no selected key can verify this alg */
    PC_JWT_BAD_SIGNATURE,    /* no selected key verifies the signature */
    PC_JWT_EXPIRED,          /* exp <= now - leeway */
    PC_JWT_NOT_YET_VALID,    /* nbf > now + leeway */
    PC_JWT_ISSUED_IN_FUTURE, /* iat > now + leeway */
    PC_JWT_BAD_ISSUER,       /* iss missing or not the policy's issuer */
    PC_JWT_BAD_AUDIENCE,     /* aud missing or none of the policy's */
} pc_jwt_status;

/* A short lower-case English phrase for logs ("token expired"); never NULL. */
const char *pc_jwt_status_message(pc_jwt_status s);

/* Verifies a compact JWS (token, len bytes; need not be NUL-terminated)
 * against keys and pol at time now (seconds since the Unix epoch). Checks,
 * in this order: size; exactly three strict base64url segments; the header
 * (a JSON object with a string "alg", no "crit", "kid" a string when present);
 * alg "none" in any letter case, an unknown alg or one outside
 * pol->algorithms; key selection by "kid" (a secret set ignores it) or,
 * without one, every key whose type fits the alg; the signature; the payload
 * (a JSON object; exp, nbf and iat numbers when present); then exp, nbf, iat,
 * iss and aud. Returns the first failure. On PC_JWT_OK, *claims (when claims
 * is not NULL) receives a new reference to the payload object, which the
 * caller releases with json_decref, and *exp (when not NULL) the exp claim,
 * or INT64_MAX without one. Both are untouched on failure. */
pc_jwt_status pc_jwt_verify(const char *token, size_t len,
                            const pc_jwt_keys *keys, const pc_jwt_policy *pol,
                            int64_t now, json_t **claims, int64_t *exp);

/* A bounded cache of verified tokens for one worker: capacity entries, least
 * recently used evicted first. Keyed by SHA-256 over a provider id and the
 * whole token, so one token is cached separately per provider. The id must
 * never be reused for another provider in the process's life, reloads
 * included: e.g. (config generation number << 16) | provider index. An
 * address is not enough, as a reload may free a provider and allocate its
 * successor, with other keys, at the same address. Not thread-safe. */
typedef struct pc_jwt_cache pc_jwt_cache;

/* A cache of at most capacity entries (clamped to 1<<22); 0 makes a cache
 * that stores nothing. Never NULL (pc_xmalloc policy). */
pc_jwt_cache *pc_jwt_cache_new(size_t capacity);

/* Frees the cache and drops its references to cached claims; NULL is ok. */
void pc_jwt_cache_free(pc_jwt_cache *c);

/* The claims of a token put earlier for the same provider, or NULL. A hit
 * needs now < the exp given to put, and the cached claims' nbf and iat (when
 * present) <= now, without leeway: a hit is never accepted where
 * pc_jwt_verify would refuse. An entry found at or past its exp is evicted.
 * The pointer is borrowed: valid until the next put, free, or get of the
 * same token on this cache; json_incref it to keep it longer. */
json_t *pc_jwt_cache_get(pc_jwt_cache *c, uint64_t provider, const char *token,
                         size_t len, int64_t now);

/* Stores claims (the cache takes its own reference; the caller keeps its
 * one) for the token until exp, replacing an entry for the same token and
 * provider, evicting the least recently used entry when full. Only tokens
 * for which pc_jwt_verify returned PC_JWT_OK may be put, with the exp it
 * returned. */
void pc_jwt_cache_put(pc_jwt_cache *c, uint64_t provider, const char *token,
                      size_t len, json_t *claims, int64_t exp);

/* Entries currently held (expired ones count until met or evicted). */
size_t pc_jwt_cache_count(const pc_jwt_cache *c);

#endif
