/* headscan.c: line discipline of a message head (see headscan.h). A byte
 * loop with three bytes of state (the bytes inside a line are skipped in a
 * tight loop: only CR, LF, a line's first byte and the status line need
 * the checks); never allocates, never does I/O. */
#include "portcullis/headscan.h"

#include <string.h>

void pc_headscan_init(pc_headscan *s, int response)
{
    memset(s, 0, sizeof *s);
    s->response = (unsigned char)(response != 0);
}

/* "HTTP/1.x DDD" then SP or CR: byte i of the status line. */
static int status_byte(size_t i, unsigned char ch)
{
    static const char pre[] = "HTTP/1.";
    if (i < 7)
        return ch == (unsigned char)pre[i];
    if (i == 7)
        return ch == '0' || ch == '1';
    if (i == 8)
        return ch == ' ';
    if (i < 12)
        return ch >= '0' && ch <= '9';
    return ch == ' ' || ch == '\r';
}

static pc_headscan_status bad(size_t i, size_t *used, const char **why,
                              const char *msg)
{
    *used = i;
    if (why)
        *why = msg;
    return PC_HEADSCAN_ERROR;
}

/* The inside of a line, past its first byte and past the status-line
 * check: only CR and LF need the state machine, every other byte just
 * extends the line. Returns the index of the next CR or LF (or n). */
static size_t skip_plain(pc_headscan *s, const char *in, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && in[j] != '\r' && in[j] != '\n')
        j++;
    if (j > i) {
        s->linelen += (uint32_t)(j - i);
        s->prev = (unsigned char)in[j - 1];
    }
    return j;
}

pc_headscan_status pc_headscan_feed(pc_headscan *s, const char *in, size_t n,
                                    size_t *used, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        if (s->linelen > 0 && s->prev != '\r' &&
            !(s->response && s->lines == 0 && s->linelen <= 12)) {
            i = skip_plain(s, in, i, n);
            if (i == n)
                break;
        }
        unsigned char ch = (unsigned char)in[i];
        if (s->prev == '\r' && ch != '\n')
            return bad(i, used, why, "bare CR in the message head");
        if (ch == '\n') {
            if (s->prev != '\r')
                return bad(i, used, why, "bare LF in the message head");
            if (s->response && s->lines == 0 && s->linelen < 12)
                return bad(i, used, why, "invalid status line");
            s->prev = ch;
            if (s->linelen == 0 && s->lines > 0) {
                *used = i + 1;
                return PC_HEADSCAN_DONE;
            }
            if (s->linelen > 0)
                s->lines++;
            else if (++s->empty > PC_HEADSCAN_MAX_EMPTY)
                return bad(i, used, why, "too many empty lines before the request");
            s->linelen = 0;
            continue;
        }
        if (s->response && s->lines == 0 && s->linelen <= 12 &&
            !status_byte(s->linelen, ch))
            return bad(i, used, why, "invalid status line");
        if (ch != '\r') {
            if (s->linelen == 0 && s->lines > 0 && (ch == ' ' || ch == '\t'))
                return bad(i, used, why, "obs-fold in the message head");
            s->linelen++;
        }
        s->prev = ch;
    }
    *used = n;
    return PC_HEADSCAN_MORE;
}

pc_headscan_status pc_headscan_window(pc_headscan *s, const char *in, size_t n,
                                      uint64_t head_bytes, uint64_t max,
                                      size_t *feed, const char **why)
{
    uint64_t room = head_bytes <= max ? max + 1 - head_bytes : 0;
    size_t len = (uint64_t)n > room ? (size_t)room : n;
    *feed = len;
    if (s->done)
        return PC_HEADSCAN_MORE;
    size_t end = 0;
    pc_headscan_status st = pc_headscan_feed(s, in, len, &end, why);
    if (st == PC_HEADSCAN_DONE) {
        s->done = 1;
        *feed = end;
    }
    return st;
}
