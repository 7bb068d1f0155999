/* signature.c: inbound webhook signatures (CONTRACT §2 verify_signature,
 * §3 step 4): the HMAC of the raw body, in the configured header, compared
 * in constant time before anything is forwarded. Schemes: "hmac" (header =
 * prefix + hex, GitHub's X-Hub-Signature-256) and "stripe" (header
 * "t=TS,v1=HEX[,v1=HEX]" over "TS.body", TS within tolerance). Buffers the
 * body (chain/body.c); never does I/O itself.
 * It must never let a request through on a failure of its own: every
 * OpenSSL call is checked, a MAC that could not be computed or is not
 * exactly the digest's size is never compared, an empty or wrong-length
 * signature never matches, and the stripe timestamp is parsed and compared
 * without any arithmetic that can overflow (a bad one is a plain 401). */
#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/chain.h"
#include "portcullis/units.h"
#include "portcullis/util.h"

typedef struct sig_policy {
    int stripe;             /* 0: hmac scheme, 1: stripe scheme */
    char *header;
    char *prefix;           /* hmac scheme */
    unsigned char *secret;
    size_t secretlen;
    EVP_MAC *hmac;          /* OpenSSL's HMAC, fetched once at load */
    const char *digest;     /* OpenSSL digest name: "SHA256", ... */
    size_t maclen;          /* the digest's size: every MAC is this long */
    char *algorithm;
    uint64_t tolerance_ms;  /* stripe scheme */
} sig_policy;

static void sig_free(void *p)
{
    sig_policy *s = p;
    free(s->header);
    free(s->prefix);
    if (s->secret)
        OPENSSL_cleanse(s->secret, s->secretlen);
    free(s->secret);
    free(s->algorithm);
    EVP_MAC_free(s->hmac);
    free(s);
}

static json_t *sig_json(const void *p)
{
    const sig_policy *s = p;
    char d[32];
    return json_pack("{s:s,s:s,s:o,s:s,s:s,s:o}", "scheme",
                     s->stripe ? "stripe" : "hmac", "header", s->header, "prefix",
                     s->prefix ? json_string(s->prefix) : json_null(), "secret",
                     "***", "algorithm", s->algorithm, "tolerance",
                     s->stripe ? json_string(pc_format_duration(s->tolerance_ms, d,
                                                                sizeof d))
                               : json_null());
}

/* Fetches HMAC and learns the digest's size once, at load: a build whose
 * OpenSSL lacks either is a configuration error, not a request failure. */
static void setup_mac(sig_policy *s, const pc_node *at, pc_errors *err)
{
    s->digest = !strcmp(s->algorithm, "sha512") ? "SHA512"
                : !strcmp(s->algorithm, "sha1") ? "SHA1"
                                                : "SHA256";
    EVP_MD *md = EVP_MD_fetch(NULL, s->digest, NULL);
    int size = md ? EVP_MD_get_size(md) : -1;
    EVP_MD_free(md);
    s->hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (!s->hmac || size <= 0 || size > EVP_MAX_MD_SIZE) {
        pc_errors_add(err, at, "algorithm '%s' is not available from OpenSSL",
                      s->algorithm);
        return;
    }
    s->maclen = (size_t)size;
}

static void *sig_configure(const pc_node *n, pc_config *c, pc_route *r,
                           pc_errors *err)
{
    static const char *const keys[] = {"scheme", "header", "prefix", "secret",
                                       "algorithm", "tolerance", NULL};
    (void)c;
    (void)r;
    size_t before = err->n;
    if (pc_node_expect_map(n, "verify_signature", err) < 0)
        return NULL;
    pc_node_check_keys(n, keys, "verify_signature", err);
    sig_policy *s = pc_xcalloc(1, sizeof *s);
    const pc_node *v;
    char *scheme = NULL;
    if ((v = pc_node_get(n, "scheme")) && pc_node_str(v, "scheme", &scheme, err) == 0) {
        if (!strcmp(scheme, "stripe"))
            s->stripe = 1;
        else if (strcmp(scheme, "hmac") != 0)
            pc_errors_add(err, v, "scheme must be hmac or stripe, not '%s'", scheme);
    }
    free(scheme);
    if ((v = pc_node_get(n, "header")))
        pc_node_str(v, "header", &s->header, err);
    else
        s->header = pc_xstrdup(s->stripe ? "Stripe-Signature" : "X-Hub-Signature-256");
    if ((v = pc_node_get(n, "prefix"))) {
        pc_node_str(v, "prefix", &s->prefix, err);
        if (s->stripe)
            pc_errors_add(err, v, "'prefix' applies to the hmac scheme only");
    } else if (!s->stripe) {
        s->prefix = pc_xstrdup("sha256=");
    }
    if ((v = pc_node_get(n, "secret"))) {
        char *sec = NULL;
        if (pc_node_str(v, "secret", &sec, err) == 0) {
            if (!*sec)
                pc_errors_add(err, v, "'secret' must not be empty");
            s->secret = (unsigned char *)sec;
            s->secretlen = strlen(sec);
        }
    } else {
        pc_errors_add(err, n, "verify_signature needs 'secret'");
    }
    s->algorithm = pc_xstrdup("sha256");
    if ((v = pc_node_get(n, "algorithm"))) {
        free(s->algorithm);
        s->algorithm = NULL;
        if (pc_node_str(v, "algorithm", &s->algorithm, err) == 0 &&
            strcmp(s->algorithm, "sha256") && strcmp(s->algorithm, "sha512") &&
            strcmp(s->algorithm, "sha1"))
            pc_errors_add(err, v, "algorithm must be sha256, sha512 or sha1");
    }
    if (s->algorithm) {
        const pc_node *at = pc_node_get(n, "algorithm");
        setup_mac(s, at ? at : n, err);
    }
    s->tolerance_ms = 5 * 60 * 1000;
    if ((v = pc_node_get(n, "tolerance"))) {
        if (pc_node_duration(v, "tolerance", &s->tolerance_ms, err) == 0 && !s->stripe)
            pc_errors_add(err, v, "'tolerance' applies to the stripe scheme only");
    }
    if (err->n != before) {
        sig_free(s);
        return NULL;
    }
    return s;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decodes exactly mdlen bytes of hex (either case); -1 on anything else. */
static int unhex(const char *s, size_t len, unsigned char *out, size_t mdlen)
{
    if (len != mdlen * 2)
        return -1;
    for (size_t i = 0; i < mdlen; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (unsigned char)(a << 4 | b);
    }
    return 0;
}

typedef struct span {
    const void *p;
    size_t len;
} span;

/* HMAC over the parts, one after the other, into mac (EVP_MAX_MD_SIZE
 * bytes). Returns 0 only when every OpenSSL call succeeded and the MAC is
 * exactly the digest's size; otherwise -1 with mac zeroed, and the caller
 * refuses the request: a failed or short MAC must never be compared. */
static int compute_mac(const sig_policy *s, const span *parts, size_t n,
                       unsigned char *mac)
{
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                         (char *)s->digest, 0),
        OSSL_PARAM_construct_end()};
    size_t outl = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(s->hmac);
    int ok = ctx && EVP_MAC_init(ctx, s->secret, s->secretlen, params) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = parts[i].len == 0 ||
             EVP_MAC_update(ctx, parts[i].p, parts[i].len) == 1;
    ok = ok && EVP_MAC_final(ctx, mac, &outl, EVP_MAX_MD_SIZE) == 1 &&
         outl == s->maclen;
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        OPENSSL_cleanse(mac, EVP_MAX_MD_SIZE);
    return ok ? 0 : -1;
}

/* 1 when hex is the hex form of mac (s->maclen bytes, never 0): an empty,
 * short or long signature never matches. Constant time over the MAC. */
static int mac_matches(const sig_policy *s, const unsigned char *mac,
                       const char *hex, size_t hexlen)
{
    unsigned char given[EVP_MAX_MD_SIZE];
    if (s->maclen == 0 || s->maclen > sizeof given ||
        hexlen != 2 * s->maclen || unhex(hex, hexlen, given, s->maclen) != 0)
        return 0;
    return CRYPTO_memcmp(given, mac, s->maclen) == 0;
}

static int check_hmac(const sig_policy *s, const char *hv, const void *body,
                      size_t len)
{
    size_t pl = s->prefix ? strlen(s->prefix) : 0;
    if (strlen(hv) < pl || strncmp(hv, s->prefix, pl) != 0)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    span part = {body, len};
    if (compute_mac(s, &part, 1, mac) != 0)
        return 0;
    int ok = mac_matches(s, mac, hv + pl, strlen(hv + pl));
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* The stripe timestamp: 1..19 decimal digits whose value fits int64_t.
 * -1 for anything else (a sign, a space, a value that does not fit). */
static int parse_ts(const char *p, size_t len, int64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = (int64_t)v;
    return 0;
}

/* 1 when ts is at most tol seconds away from now, either way. The distance
 * is taken in unsigned arithmetic (it always fits in 64 bits), so neither a
 * far timestamp nor a huge tolerance can overflow. */
static int within(int64_t ts, int64_t now, uint64_t tol)
{
    uint64_t d = ts >= now ? (uint64_t)ts - (uint64_t)now
                           : (uint64_t)now - (uint64_t)ts;
    return d <= tol;
}

/* The one "t=" element of a stripe header; -1 when there is none or more
 * than one (ambiguous: never verified). */
static int find_ts(const char *hv, const char **ts, size_t *tslen)
{
    int found = 0;
    for (const char *p = hv; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l >= 2 && p[0] == 't' && p[1] == '=') {
            *ts = p + 2;
            *tslen = l - 2;
            found++;
        }
        p += l + (e ? 1 : 0);
    }
    return found == 1 ? 0 : -1;
}

static int check_stripe(const sig_policy *s, const char *hv, const void *body,
                        size_t len)
{
    const char *ts = NULL;
    size_t tslen = 0;
    int64_t t;
    if (find_ts(hv, &ts, &tslen) != 0 || parse_ts(ts, tslen, &t) != 0 ||
        !within(t, pc_unix_now(), s->tolerance_ms / 1000))
        return 0;
    /* "TS.body": the timestamp as sent, a dot, then the raw body. */
    unsigned char mac[EVP_MAX_MD_SIZE];
    span parts[3] = {{ts, tslen}, {".", 1}, {body, len}};
    if (compute_mac(s, parts, 3, mac) != 0)
        return 0;
    int ok = 0;
    for (const char *p = hv; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l >= 3 && p[0] == 'v' && p[1] == '1' && p[2] == '=')
            ok |= mac_matches(s, mac, p + 3, l - 3);
        p += l + (e ? 1 : 0);
    }
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* Checks the signature of the (buffered, maybe empty) body; on failure
 * answers 401 and returns 0. */
static int verified(pc_req *req, const sig_policy *s)
{
    const char *hv = pc_req_header(req, s->header);
    size_t len = req->body ? evbuffer_get_length(req->body) : 0;
    const void *body = "";
    if (len)
        body = evbuffer_pullup(req->body, -1);
    if (hv && (s->stripe ? check_stripe(s, hv, body, len)
                         : check_hmac(s, hv, body, len)))
        return 1;
    req->sink->error(req, PC_ERR_UNAUTHORIZED,
                     hv ? "webhook signature does not match"
                        : "webhook signature header missing");
    return 0;
}

static void sig_body_done(pc_wait w)
{
    pc_req *req = pc_wait_take(w);
    if (!req)
        return;
    if (verified(req, pc_chain_route_policy(req, req->stage)))
        pc_chain_resume(req, PC_NEXT);
}

static pc_verdict sig_on_request(pc_req *req)
{
    const sig_policy *s = pc_chain_route_policy(req, req->stage);
    if (!s)
        return PC_NEXT;
    if (pc_chain_buffer_body(req, sig_body_done) == PC_WAIT)
        return PC_WAIT;
    /* No body, or already buffered by validate: check now. */
    return verified(req, s) ? PC_NEXT : PC_DONE;
}

const pc_stage_ops pc_stage_signature = {
    .name = "verify_signature",
    .route_key = "verify_signature",
    .configure_route = sig_configure,
    .free_route = sig_free,
    .route_json = sig_json,
    .on_request = sig_on_request,
};
