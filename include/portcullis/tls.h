/* tls.h: OpenSSL contexts for the client side (listeners: several
 * certificates chosen by SNI, min_version, ALPN http/1.1, session tickets)
 * and the upstream side (verification, CA file). Contexts belong to a config
 * generation and are freed with it. */
#ifndef PORTCULLIS_TLS_H
#define PORTCULLIS_TLS_H

#include "portcullis/config.h"

/* Builds l->ssl_ctx (and l->tls_state) from l->certs and l->min_version.
 * Every certificate and key is loaded and checked to match. Returns 0, or
 * -1 after adding errors at `at` (the listen entry's node) to err. */
int pc_tls_server_ctx_new(pc_listen *l, const pc_node *at, pc_errors *err);
void pc_tls_server_ctx_free(pc_listen *l);

/* Builds u->ssl_ctx for https targets (verify peer unless tls_verify is 0,
 * CA from u->ca_file or the system default). Returns 0 or -1 with errors. */
int pc_tls_client_ctx_new(pc_upstream *u, const pc_node *at, pc_errors *err);
void pc_tls_client_ctx_free(pc_upstream *u);

/* Process-wide OpenSSL set-up; call once before loading a config. */
void pc_tls_global_init(void);

#endif
