/* tls.c: OpenSSL contexts of one config generation.
 *
 * Server side: one SSL_CTX per configured certificate; connections are
 * created from the first (the default). A ClientHello callback, which runs
 * before OpenSSL looks for a session to resume, reads the server name,
 * switches the SSL to the context whose certificate names (SAN dNSName,
 * else CN; "*.example.com" wildcards) match it, and sets the session-id
 * context to SHA-256(certificate entry, lower-cased name).
 *
 * Sessions never resume across server names (RFC 6066 section 3). OpenSSL
 * keeps the session cache, and asks for ticket keys, on the context an SSL
 * was created from (the default one) whatever context it switched to; so
 * what binds a session is (1) that session-id context, which OpenSSL
 * compares for cached sessions and tickets alike, TLS 1.2 and 1.3, and
 * (2) the ticket keys, which belong to each certificate: the ticket key
 * callback uses those of the context selected and refuses (full handshake)
 * a ticket made with another certificate's. The SNI callback only checks
 * that the name OpenSSL accepted selects the context in use.
 * Client side: one SSL_CTX per upstream with https targets.
 * This file never touches sockets or bufferevents. */
#include "portcullis/tls.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "portcullis/util.h"

#define SID_LEN 32 /* SHA-256 */
_Static_assert(SID_LEN <= SSL_MAX_SID_CTX_LENGTH, "session-id context size");

typedef struct ticket_keys {
    unsigned char name[16], hmac[32], aes[32];
} ticket_keys;

typedef struct sni_entry {
    SSL_CTX *ctx;
    char **names; /* lower-case DNS names, maybe "*.x.y" */
    size_t nnames;
    unsigned char id[SID_LEN]; /* SHA-256 of position and certificate */
    ticket_keys tk;            /* random, this certificate's only */
} sni_entry;

typedef struct tls_state {
    sni_entry *entries;
    size_t n;
} tls_state;

static const unsigned char alpn_h11[] = "\x08http/1.1";

void pc_tls_global_init(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
                     NULL);
}

static void ssl_errors(pc_errors *err, const pc_node *at, const char *what,
                       const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    pc_errors_add(err, at, "%s '%s': %s", what, path, buf);
}

/* 1 unless path is a FIFO, socket or device (error added at `at`); a
 * file that cannot be opened is left to the OpenSSL loader to report. */
static int regular(const char *path, const pc_node *at, const char *what,
                   pc_errors *err)
{
    int fd = pc_open_regular(path);
    if (fd >= 0)
        close(fd);
    if (fd != -2)
        return 1;
    pc_errors_add(err, at, "%s '%s': not a regular file", what, path);
    return 0;
}

static int name_matches(const char *pattern, const char *host)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        /* The wildcard covers exactly one non-empty label. */
        return dot && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

/* out = SHA-256(a || b). Returns 0, or -1 when OpenSSL fails. */
static int sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                    unsigned char out[SID_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, a, alen) == 1 &&
             EVP_DigestUpdate(md, b, blen) == 1 &&
             EVP_DigestFinal_ex(md, out, &n) == 1 && n == SID_LEN;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* The entry serving `name` (NULL: no SNI): the first whose names match,
 * else the default (first) one. */
static const sni_entry *entry_for(const tls_state *st, const char *name)
{
    for (size_t i = 0; name && i < st->n; i++)
        for (size_t j = 0; j < st->entries[i].nnames; j++)
            if (name_matches(st->entries[i].names[j], name))
                return &st->entries[i];
    return &st->entries[0];
}

/* The host name of the ClientHello's server_name extension, checked as
 * OpenSSL checks it (exactly one host_name entry, at most 255 bytes, no
 * NUL): 1 with name set, 0 when there is none, -1 when malformed. */
static int hello_name(SSL *ssl, char name[TLSEXT_MAXLEN_host_name + 1])
{
    const unsigned char *p;
    size_t len, n;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1)
        return 0;
    if (len < 5 || ((size_t)p[0] << 8 | p[1]) != len - 2 ||
        p[2] != TLSEXT_NAMETYPE_host_name)
        return -1;
    n = (size_t)p[3] << 8 | p[4];
    if (n != len - 5 || n > TLSEXT_MAXLEN_host_name || memchr(p + 5, 0, n))
        return -1;
    memcpy(name, p + 5, n);
    name[n] = '\0';
    return 1;
}

/* The session-id context of a handshake for `name` (NULL: no SNI) served
 * by e: SHA-256(e->id, presence flag, lower-cased name). */
static int session_context(const sni_entry *e, const char *name,
                           unsigned char out[SID_LEN])
{
    char buf[TLSEXT_MAXLEN_host_name + 2];
    size_t n = 0;
    buf[n++] = name ? 1 : 0;
    for (; name && *name && n < sizeof buf; name++)
        buf[n++] = (*name >= 'A' && *name <= 'Z') ? (char)(*name + 32) : *name;
    return sha256_2(e->id, sizeof e->id, buf, n, out);
}

/* Runs for every ClientHello before session resumption is considered:
 * selects the certificate and the session-id context. */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
    const tls_state *st = arg;
    char name[TLSEXT_MAXLEN_host_name + 1];
    unsigned char sid[SID_LEN];
    int have = hello_name(ssl, name);
    if (have < 0) {
        *al = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    const sni_entry *e = entry_for(st, have ? name : NULL);
    if (SSL_set_SSL_CTX(ssl, e->ctx) == NULL ||
        session_context(e, have ? name : NULL, sid) < 0 ||
        SSL_set_session_id_context(ssl, sid, sizeof sid) != 1) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Acknowledges the server name. hello_cb already chose the context; the
 * name OpenSSL parsed (on a TLS 1.2 resumption: the session's) must select
 * the same one, or the handshake fails rather than serve a mismatch. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    const tls_state *st = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (SSL_get_SSL_CTX(ssl) != entry_for(st, name)->ctx) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Session tickets are sealed with the keys of the certificate selected for
 * the handshake; a ticket under another key name (another certificate's,
 * or an older generation's) is not decrypted: full handshake. */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    const sni_entry *e = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    OSSL_PARAM params[3];
    if (!e)
        return -1;
    if (!enc && CRYPTO_memcmp(key_name, e->tk.name, sizeof e->tk.name) != 0)
        return 0;
    params[0] = OSSL_PARAM_construct_octet_string(
        OSSL_MAC_PARAM_KEY, (void *)e->tk.hmac, sizeof e->tk.hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    if (!enc)
        return EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, e->tk.aes,
                                  iv) == 1 ? 1 : -1;
    memcpy(key_name, e->tk.name, sizeof e->tk.name);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
        EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, e->tk.aes, iv) != 1)
        return -1;
    return 1;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, alpn_h11, sizeof alpn_h11 - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no http/1.1 offered */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void add_name(sni_entry *e, const char *s, size_t len)
{
    char *n = pc_xstrndup(s, len);
    for (char *p = n; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    e->names = pc_xrealloc(e->names, (e->nnames + 1) * sizeof *e->names);
    e->names[e->nnames++] = n;
}

static void collect_names(sni_entry *e, X509 *x)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type == GEN_DNS)
                add_name(e, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                         (size_t)ASN1_STRING_length(g->d.dNSName));
        }
        GENERAL_NAMES_free(sans);
    }
    if (e->nnames == 0) {
        X509_NAME *subj = X509_get_subject_name(x);
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (idx >= 0) {
            ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
            add_name(e, (const char *)ASN1_STRING_get0_data(cn),
                     (size_t)ASN1_STRING_length(cn));
        }
    }
}

static SSL_CTX *server_ctx(const pc_listen *l, const pc_tls_cert *c,
                           const pc_node *at, pc_errors *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_errors(err, at, "cannot create TLS context for", c->cert);
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, l->min_version ? l->min_version
                                                          : TLS1_2_VERSION) != 1) {
        ssl_errors(err, at, "cannot set the TLS minimum version for", c->cert);
        goto fail;
    }
    /* Idle keep-alive connections must stay cheap, but not by
     * SSL_MODE_RELEASE_BUFFERS, which frees and allocates both record
     * buffers around every request: front/conn.c frees them once a
     * connection has been idle for a second (pc_sock_release_tls_buffers). */
    /* Read whole records (and what follows) in one read(2) instead of a
     * 5-byte header read plus a body read. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.3: the same three suites as OpenSSL's default, AES-128-GCM
     * first (Mozilla's order; OpenSSL puts AES-256 first): as strong for
     * this use and 10 AES rounds instead of 14 on every byte, for the
     * client as for us. TLS 1.2 keeps OpenSSL's list. */
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                      "TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256") != 1) {
        ssl_errors(err, at, "cannot set the TLS 1.3 cipher suites for",
                   c->cert);
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* OpenSSL opens these by name, blocking: a FIFO would hang -t and
     * start-up (the config reader checked them; this covers a swap since). */
    if (!regular(c->cert, at, "certificate", err) ||
        !regular(c->key, at, "private key", err))
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        ssl_errors(err, at, "cannot load certificate", c->cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        ssl_errors(err, at, "cannot load private key", c->key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        pc_errors_add(err, at, "private key '%s' does not match certificate '%s'",
                      c->key, c->cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Gives entry e (certificate number `index`) its identity, SHA-256 of the
 * position and the certificate, its own ticket keys, and the callbacks.
 * Returns 0, or -1 when OpenSSL fails. */
static int entry_init(sni_entry *e, size_t index, tls_state *st)
{
    unsigned char fpr[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    uint64_t pos = index;
    X509 *x = SSL_CTX_get0_certificate(e->ctx);
    if (!x || X509_digest(x, EVP_sha256(), fpr, &n) != 1 ||
        sha256_2(&pos, sizeof pos, fpr, n, e->id) < 0 ||
        RAND_bytes((unsigned char *)&e->tk, sizeof e->tk) != 1 ||
        SSL_CTX_set_session_id_context(e->ctx, e->id, sizeof e->id) != 1 ||
        SSL_CTX_set_app_data(e->ctx, e) != 1 ||
        SSL_CTX_set_tlsext_ticket_key_evp_cb(e->ctx, ticket_cb) != 1 ||
        SSL_CTX_set_tlsext_servername_callback(e->ctx, sni_cb) != 1 ||
        SSL_CTX_set_tlsext_servername_arg(e->ctx, st) != 1)
        return -1;
    /* On every context: after a HelloRetryRequest the second ClientHello
     * runs the callback of the context already switched to. */
    SSL_CTX_set_client_hello_cb(e->ctx, hello_cb, st);
    return 0;
}

int pc_tls_server_ctx_new(pc_listen *l, const pc_node *at, pc_errors *err)
{
    tls_state *st = pc_xcalloc(1, sizeof *st);
    int ok = 1;

    st->entries = pc_xcalloc(l->ncerts ? l->ncerts : 1, sizeof *st->entries);
    for (size_t i = 0; i < l->ncerts; i++) {
        SSL_CTX *ctx = server_ctx(l, &l->certs[i], at, err);
        if (!ctx) {
            ok = 0;
            continue;
        }
        sni_entry *e = &st->entries[st->n++];
        e->ctx = ctx;
        collect_names(e, SSL_CTX_get0_certificate(ctx));
        if (entry_init(e, i, st) < 0) {
            ssl_errors(err, at, "cannot set up TLS sessions for", l->certs[i].cert);
            ok = 0;
        }
    }
    if (l->ncerts == 0) {
        pc_errors_add(err, at, "tls needs at least one certificate");
        ok = 0;
    }
    l->tls_state = st;
    if (!ok) {
        pc_tls_server_ctx_free(l);
        return -1;
    }
    l->ssl_ctx = st->entries[0].ctx;
    return 0;
}

void pc_tls_server_ctx_free(pc_listen *l)
{
    tls_state *st = l->tls_state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        SSL_CTX_free(st->entries[i].ctx);
        for (size_t j = 0; j < st->entries[i].nnames; j++)
            free(st->entries[i].names[j]);
        free(st->entries[i].names);
    }
    free(st->entries);
    free(st);
    l->tls_state = NULL;
    l->ssl_ctx = NULL;
}

int pc_tls_client_ctx_new(pc_upstream *u, const pc_node *at, pc_errors *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_errors(err, at, "cannot create TLS client context for", u->name);
        return -1;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn_h11, sizeof alpn_h11 - 1) != 0) {
        ssl_errors(err, at, "cannot set up TLS client context for", u->name);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (u->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (u->ca_file && !regular(u->ca_file, at, "CA file", err)) {
            SSL_CTX_free(ctx);
            return -1;
        }
        int rc = u->ca_file ? SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (rc != 1) {
            ssl_errors(err, at, "cannot load CA file",
                       u->ca_file ? u->ca_file : "(system default)");
            SSL_CTX_free(ctx);
            return -1;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    u->ssl_ctx = ctx;
    return 0;
}

void pc_tls_client_ctx_free(pc_upstream *u)
{
    SSL_CTX_free(u->ssl_ctx);
    u->ssl_ctx = NULL;
}

int pc_tls_file_sha256(const char *path, char hex[65])
{
    unsigned char buf[8192], md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t got;
    int fd = pc_open_regular(path);
    if (fd == -2)
        errno = EINVAL;
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    EVP_MD_CTX *mdc = EVP_MD_CTX_new();
    int ok = mdc && EVP_DigestInit_ex(mdc, EVP_sha256(), NULL) == 1;
    while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(mdc, buf, got) == 1;
    ok = ok && !ferror(f);
    fclose(f);
    ok = ok && EVP_DigestFinal_ex(mdc, md, &n) == 1 && n == 32;
    EVP_MD_CTX_free(mdc);
    if (!ok) {
        errno = EIO;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}
