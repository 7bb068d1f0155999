/* headscan.h: the line discipline of an HTTP/1.1 head, checked before
 * llhttp sees the bytes, on both sides (client requests in front/conn.c,
 * upstream responses in proxy/forward.c). llhttp accepts a bare CR as a
 * line end ("X-A: a\rContent-Length: 39" is two fields to it, one to many
 * other parsers) and reads a status code of any length ("0200" is 200):
 * whatever two parsers could split differently is refused here.
 *
 * Rules: every line ends in CRLF (no bare LF, no bare CR), no obs-fold (a
 * field line starting with SP or HTAB), the head ends at the first empty
 * line; at most PC_HEADSCAN_MAX_EMPTY empty lines before a request line
 * are skipped (RFC 9112 §2.2), more are an error (a flood of CRLF is not
 * a request). In
 * response mode the first line must start "HTTP/1.0 " or "HTTP/1.1 ",
 * then exactly three digits, then SP or the line end. Pure: no I/O, no
 * allocation; the state survives across reads. */
#ifndef PORTCULLIS_HEADSCAN_H
#define PORTCULLIS_HEADSCAN_H

#include <stddef.h>
#include <stdint.h>

#define PC_HEADSCAN_MAX_EMPTY 4

typedef struct pc_headscan {
    uint32_t lines;      /* non-empty lines seen */
    uint32_t linelen;    /* bytes of the current line (CR excluded) */
    unsigned char prev;  /* previous byte */
    unsigned char response;
    unsigned char empty; /* empty lines before the first line */
    unsigned char done;  /* the head's end was seen (pc_headscan_window) */
} pc_headscan;

typedef enum {
    PC_HEADSCAN_MORE = 0,   /* all input scanned, the head goes on */
    PC_HEADSCAN_DONE = 1,   /* the head ended: *used is just past its LF */
    PC_HEADSCAN_ERROR = -1, /* *why says what */
} pc_headscan_status;

/* response: 1 to check a status line, 0 for a request head. */
void pc_headscan_init(pc_headscan *s, int response);

/* Scans in[0..n). *used: n for MORE, the end of the head for DONE, the
 * offending byte for ERROR. */
pc_headscan_status pc_headscan_feed(pc_headscan *s, const char *in, size_t n,
                                    size_t *used, const char **why);

/* One read of a request head, for the servers (front/conn.c, core/admin.c):
 * of in[0..n), at most max + 1 - head_bytes bytes count (one past the
 * limit, so that the caller sees it exceeded); they are scanned unless the
 * head's end was seen already (s->done), and *feed gets how many of them
 * the HTTP parser may take: up to the head's end and not a byte more.
 * Returns ERROR with *why, DONE when this read ended the head, else MORE.
 * head_bytes <= max + 1. */
pc_headscan_status pc_headscan_window(pc_headscan *s, const char *in, size_t n,
                                      uint64_t head_bytes, uint64_t max,
                                      size_t *feed, const char **why);

#endif
