/* tls.h: OpenSSL contexts for the client side (listeners: several
 * certificates chosen by SNI, min_version, ALPN http/1.1, session resumption
 * bound to the certificate and server name) and the upstream side
 * (verification, CA file). Contexts belong to a config generation and are
 * freed with it. */
#ifndef PORTCULLIS_TLS_H
#define PORTCULLIS_TLS_H

#include "portcullis/config.h"

/* Builds l->ssl_ctx (and l->tls_state) from l->certs and l->min_version.
 * Every certificate and key is loaded and checked to match. Each
 * certificate gets its own session-ticket keys, and every handshake a
 * session-id context derived from the certificate chosen and the server
 * name asked for, so a session never resumes under another name (RFC 6066
 * section 3). Returns 0, or -1 after adding errors at `at` (the listen
 * entry's node) to err. */
int pc_tls_server_ctx_new(pc_listen *l, const pc_node *at, pc_errors *err);
void pc_tls_server_ctx_free(pc_listen *l);

/* Builds u->ssl_ctx for https targets (verify peer unless tls_verify is 0,
 * CA from u->ca_file or the system default). Returns 0 or -1 with errors. */
int pc_tls_client_ctx_new(pc_upstream *u, const pc_node *at, pc_errors *err);
void pc_tls_client_ctx_free(pc_upstream *u);

/* Lower-case hex SHA-256 of the bytes of the file at path into hex (65
 * bytes with the NUL). Returns 0, or -1 with errno set (EIO when OpenSSL
 * failed). Identifies a CA file's contents (pool keys). */
int pc_tls_file_sha256(const char *path, char hex[65]);

/* Process-wide OpenSSL set-up; call once before loading a config. */
void pc_tls_global_init(void);

#endif
