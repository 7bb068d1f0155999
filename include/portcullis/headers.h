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

/* RFC 9110 §5.1: a field name is a token (1*tchar). */
int pc_header_name_valid(const char *s, size_t n);
/* RFC 9110 §5.5: a field value holds VCHAR, obs-text, SP and HTAB only (no
 * CR, LF, NUL or other control characters), without leading or trailing
 * whitespace (the parsers trim it). */
int pc_header_value_valid(const char *s, size_t n);

/* CONTRACT §3 "Header order upstream", the one place it is decided. Fills
 * out (arena list) with the end-to-end headers sent upstream, in order:
 *  1. hop-by-hop headers and those the client named in Connection removed;
 *  2. client copies of names the gateway manages removed: framing
 *     (Content-Length, Transfer-Encoding), Host, Expect, X-Forwarded-For,
 *     -Proto, -Host, X-Request-Id, every name in req->gw_headers; and from
 *     a peer that is not a trusted proxy, Forwarded and every other
 *     X-Forwarded-* (untrusted: peer_trusted == 0);
 *  3. the route's headers.request rules (rules may be NULL);
 *  4. the gateway's own: X-Forwarded-For (the client's values, then the
 *     peer), X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, then
 *     req->gw_headers (forwarded claims).
 * Host and the framing field are not in the list: they depend on the
 * attempt (target, body) and are written by the head builder. */
void pc_headers_upstream(const pc_req *r, int peer_trusted,
                         const pc_header_rules *rules, pc_headers *out,
                         pc_arena *a);

/* The response side of the same rule: hop-by-hop, Connection-nominated,
 * framing fields and the upstream's X-Request-Id removed, then the route's
 * headers.response rules (may be NULL). The gateway then writes
 * X-Request-Id, the framing field and Connection itself. */
void pc_headers_downstream(pc_headers *h, pc_arena *a,
                           const pc_header_rules *rules);

#endif
