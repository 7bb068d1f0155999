/* headers.h: header rules of CONTRACT §3 (hop-by-hop removal, Connection
 * tokens, X-Request-Id syntax, headers.request/response transforms). */
#ifndef PORTCULLIS_HEADERS_H
#define PORTCULLIS_HEADERS_H

#include "portcullis/http.h"

/* 1 for Connection, Keep-Alive, TE, Trailer, Upgrade, Transfer-Encoding,
 * Proxy-* (Proxy-Connection, Proxy-Authorization, ...). */
int pc_header_is_hop_by_hop(const char *name, size_t len);
/* 1 when the comma-separated list contains tok (case-insensitive). */
int pc_header_list_has(const char *list, const char *tok, size_t toklen);
/* Removes hop-by-hop headers and every header named in Connection. */
void pc_headers_strip_hop_by_hop(pc_headers *h);
/* 1 when s is 1..128 characters of A-Z a-z 0-9 - _ . : */
int pc_request_id_valid(const char *s, size_t len);
/* remove first, then set (each set replaces every header of its name). */
void pc_headers_apply_rules(pc_headers *h, pc_arena *a,
                            const pc_header_rules *r);

#endif
