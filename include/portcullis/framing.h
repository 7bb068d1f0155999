/* framing.h: how an HTTP/1.1 message body is delimited (RFC 9112 §6), for
 * requests and responses, as one typed value. The only module that reads
 * Content-Length and Transfer-Encoding and the only one that writes them.
 *
 * DESIGN: llhttp parses heads only. Once a head is complete, its header
 * list goes through pc_framing_request / pc_framing_response, which decide
 * from the fields themselves (not from llhttp's flags or its signed casts)
 * how the body is delimited, or refuse the message:
 *
 *   head ─► pc_framing_{request,response} ─► NONE | LENGTH n | CHUNKED
 *                                             | CLOSE | INTERIM
 *        ─► conn / forward read the body by that value (lib/chunked for
 *           CHUNKED, raw moves for LENGTH, until EOF for CLOSE)
 *        ─► pc_framing_out + pc_framing_write_header frame the other side
 *
 * A length that does not fit is an error, never "absent". Pure: no
 * I/O, no allocation. */
#ifndef PORTCULLIS_FRAMING_H
#define PORTCULLIS_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/http.h"

typedef struct pc_hwrite pc_hwrite;

/* Request: NONE or LENGTH (0 included) or CHUNKED. Response: any. */
int pc_framing_request(const pc_headers *h, int http_minor, pc_framing *out,
                       const char **why);

/* status: the parsed status code (any int; outside 100..599 is an error);
 * head_request: the request was HEAD. 101 is refused (no upgrade is ever
 * asked for). Returns 0, or -1 with *why for an invalid response (502). */
int pc_framing_response(const pc_headers *h, int status, int head_request,
                        pc_framing *out, const char **why);

/* The largest Content-Length accepted on either side: 2^63 - 1. Beyond
 * it, a request gets 400 (CONTRACT §4 "overflows") and a response is
 * invalid (502), never a length read as negative or absent. */
#define PC_FRAMING_MAX_LENGTH ((uint64_t)INT64_MAX)

/* Content-Length value: 1*DIGIT (optional surrounding whitespace is the
 * header parser's business, not accepted here), at most
 * PC_FRAMING_MAX_LENGTH. 0 / -1. */
int pc_framing_parse_length(const char *v, size_t n, uint64_t *out);

/* How a body read with framing `in` is framed towards a peer speaking
 * HTTP/1.peer_minor: LENGTH stays LENGTH, CHUNKED and CLOSE become CHUNKED
 * (HTTP/1.1 peer) or CLOSE (HTTP/1.0 peer), NONE stays NONE. */
pc_framing pc_framing_out(const pc_framing *in, int peer_minor);

/* Writes the framing field of an outgoing head: "Content-Length: n" for
 * LENGTH (and for NONE with a known representation length, HEAD/304,
 * unless status is 204), "Transfer-Encoding: chunked" for CHUNKED, nothing
 * otherwise. status is 0 for requests. */
void pc_framing_write_header(const pc_framing *f, int status, pc_hwrite *w);

/* 1 when a body follows the head (LENGTH > 0, CHUNKED, CLOSE). */
int pc_framing_has_body(const pc_framing *f);

#endif
