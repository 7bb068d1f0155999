/* signature.c: inbound webhook signatures (CONTRACT §2 verify_signature,
 * §3 step 4): the HMAC of the raw body, in the configured header, compared
 * in constant time before anything is forwarded. Schemes: "hmac" (header =
 * prefix + hex, GitHub's X-Hub-Signature-256) and "stripe" (header
 * "t=TS,v1=HEX[,v1=HEX]" over "TS.body", TS within tolerance). Buffers the
 * body (chain/body.c); never does I/O itself. */
#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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
    const EVP_MD *md;
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
    if (s->algorithm)
        s->md = !strcmp(s->algorithm, "sha512") ? EVP_sha512()
                : !strcmp(s->algorithm, "sha1") ? EVP_sha1()
                                                : EVP_sha256();
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

static int mac_matches(const sig_policy *s, const unsigned char *mac,
                       unsigned maclen, const char *hex, size_t hexlen)
{
    unsigned char given[EVP_MAX_MD_SIZE];
    if (unhex(hex, hexlen, given, maclen) != 0)
        return 0;
    return CRYPTO_memcmp(given, mac, maclen) == 0;
}

static int check_hmac(const sig_policy *s, const char *hv, const void *body,
                      size_t len)
{
    size_t pl = s->prefix ? strlen(s->prefix) : 0;
    if (strlen(hv) < pl || strncmp(hv, s->prefix, pl) != 0)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    HMAC(s->md, s->secret, (int)s->secretlen, body, len, mac, &maclen);
    return mac_matches(s, mac, maclen, hv + pl, strlen(hv + pl));
}

static int check_stripe(const sig_policy *s, const char *hv, const void *body,
                        size_t len)
{
    const char *ts = NULL;
    size_t tslen = 0;
    for (const char *p = hv; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > 2 && p[0] == 't' && p[1] == '=') {
            ts = p + 2;
            tslen = l - 2;
        }
        p += l + (e ? 1 : 0);
    }
    if (!ts || tslen == 0 || tslen > 19)
        return 0;
    long long t = 0;
    for (size_t i = 0; i < tslen; i++) {
        if (ts[i] < '0' || ts[i] > '9')
            return 0;
        t = t * 10 + (ts[i] - '0');
    }
    long long now = (long long)pc_unix_now();
    long long tol = (long long)(s->tolerance_ms / 1000);
    if (t < now - tol || t > now + tol)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    /* "TS.body": the timestamp, a dot, then the raw body. */
    size_t total = tslen + 1 + len;
    unsigned char *msg = pc_xmalloc(total ? total : 1);
    memcpy(msg, ts, tslen);
    msg[tslen] = '.';
    if (len)
        memcpy(msg + tslen + 1, body, len);
    HMAC(s->md, s->secret, (int)s->secretlen, msg, total, mac, &maclen);
    free(msg);
    int ok = 0;
    for (const char *p = hv; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > 3 && p[0] == 'v' && p[1] == '1' && p[2] == '=')
            ok |= mac_matches(s, mac, maclen, p + 3, l - 3);
        p += l + (e ? 1 : 0);
    }
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

static void sig_body_done(pc_req *req)
{
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
