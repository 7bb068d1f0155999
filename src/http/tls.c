/* tls.c: OpenSSL contexts of one config generation.
 *
 * Server side: one SSL_CTX per configured certificate. The first is the
 * default; an SNI callback on it switches the handshake to the context whose
 * certificate names (SAN dNSName, else CN; "*.example.com" wildcards) match
 * the requested server name. All contexts of a listener share one set of
 * session-ticket keys so resumption works whichever certificate was used.
 * Client side: one SSL_CTX per upstream with https targets.
 * This file never touches sockets or bufferevents. */
#include "portcullis/tls.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <strings.h>

#include "portcullis/util.h"

typedef struct sni_entry {
    SSL_CTX *ctx;
    char **names; /* lower-case DNS names, maybe "*.x.y" */
    size_t nnames;
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

static int name_matches(const char *pattern, const char *host)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        /* The wildcard covers exactly one non-empty label. */
        return dot && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    tls_state *st = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)alert;
    if (!name)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < st->n; i++) {
        for (size_t j = 0; j < st->entries[i].nnames; j++) {
            if (name_matches(st->entries[i].names[j], name)) {
                if (i != 0)
                    SSL_set_SSL_CTX(ssl, st->entries[i].ctx);
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_OK; /* unknown name: default certificate */
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
                           const unsigned char *ticket_keys, const pc_node *at,
                           pc_errors *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_errors(err, at, "cannot create TLS context for", c->cert);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, l->min_version ? l->min_version
                                                      : TLS1_2_VERSION);
    /* Idle keep-alive connections must stay cheap: drop the read/write
     * buffers while nothing is in flight. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Read whole records (and what follows) in one read(2) instead of a
     * 5-byte header read plus a body read. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"portcullis", 10);
    SSL_CTX_set_tlsext_ticket_keys(ctx, (void *)ticket_keys, 80);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
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

int pc_tls_server_ctx_new(pc_listen *l, const pc_node *at, pc_errors *err)
{
    tls_state *st = pc_xcalloc(1, sizeof *st);
    unsigned char keys[80];
    int ok = 1;

    if (RAND_bytes(keys, sizeof keys) != 1) {
        pc_errors_add(err, at, "cannot generate session ticket keys");
        free(st);
        return -1;
    }
    st->entries = pc_xcalloc(l->ncerts ? l->ncerts : 1, sizeof *st->entries);
    for (size_t i = 0; i < l->ncerts; i++) {
        SSL_CTX *ctx = server_ctx(l, &l->certs[i], keys, at, err);
        if (!ctx) {
            ok = 0;
            continue;
        }
        sni_entry *e = &st->entries[st->n++];
        e->ctx = ctx;
        collect_names(e, SSL_CTX_get0_certificate(ctx));
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
    /* Every context answers SNI, since OpenSSL runs the callback of the
     * context the SSL was created from: the default (first) one. */
    for (size_t i = 0; i < st->n; i++) {
        SSL_CTX_set_tlsext_servername_callback(st->entries[i].ctx, sni_cb);
        SSL_CTX_set_tlsext_servername_arg(st->entries[i].ctx, st);
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
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_alpn_protos(ctx, alpn_h11, sizeof alpn_h11 - 1);
    if (u->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
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
