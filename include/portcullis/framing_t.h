/* framing_t.h: the framing value (types only, see framing.h). */
#ifndef PORTCULLIS_FRAMING_T_H
#define PORTCULLIS_FRAMING_T_H

#include <stdint.h>

typedef enum {
    PC_FRAME_NONE = 0, /* no body follows the head */
    PC_FRAME_LENGTH,   /* exactly `length` bytes */
    PC_FRAME_CHUNKED,  /* chunked transfer coding, ends with the last chunk */
    PC_FRAME_CLOSE,    /* until the connection closes (responses only) */
    PC_FRAME_INTERIM,  /* 1xx: the head only; the final response follows */
} pc_frame_kind;

typedef struct pc_framing {
    pc_frame_kind kind;
    uint64_t length;          /* LENGTH: body bytes; NONE: has_length */
    unsigned has_length : 1;  /* a valid Content-Length was present (a HEAD
                                 or 304 response describes a length it
                                 does not send) */
    unsigned close_after : 1; /* the connection closes after this exchange
                                 (HTTP/1.0 with Transfer-Encoding,
                                 RFC 9112 §6.1) */
} pc_framing;

#endif
