/* util.h: out-of-memory policy and tiny helpers shared by every module.
 * pc_x* allocators never return NULL: on exhaustion they print a message and
 * abort (the h2o / Redis policy). Return codes elsewhere are for I/O, parse
 * and policy failures only. */
#ifndef PORTCULLIS_UTIL_H
#define PORTCULLIS_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *pc_xmalloc(size_t n);
void *pc_xcalloc(size_t nmemb, size_t size);
void *pc_xrealloc(void *p, size_t n);
char *pc_xstrdup(const char *s);
char *pc_xstrndup(const char *s, size_t n);
/* The same policy for a library allocation that failed (what: a few words
 * saying what was being allocated). */
void pc_oom(const char *what) __attribute__((noreturn));

/* Case-insensitive ASCII comparison of two byte ranges; 1 when equal. */
int pc_strieq(const char *a, size_t alen, const char *b, size_t blen);

/* The next element of a comma-separated field value (RFC 9110 §5.6.1)
 * in [*p, end): its first byte, *len its length without the whitespace
 * around it (empty elements are skipped), *p moved past it; NULL when no
 * element is left. Commas inside quoted strings are not special here. */
const char *pc_list_next(const char **p, const char *end, size_t *len);

/* RFC 9110 §5.6.2: 1 when c is a tchar (a byte of a token: header names,
 * methods, transfer codings). */
int pc_is_tchar(unsigned char c);
/* 1 when s[0..n) is a token (1*tchar). */
int pc_is_token(const char *s, size_t n);

/* Formats a message into err (when err and errlen are given) and returns
 * -1: the one-line error path of the pure parsers. */
int pc_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Seconds since the Unix epoch from the precise wall clock. Not time(2):
 * glibc serves it from the coarse clock, which can lag a second boundary by
 * a tick, so a token issued "now" by a precise clock would look issued in
 * the future. */
int64_t pc_unix_now(void);

/* Monotonic clock in nanoseconds. */
uint64_t pc_now_ns(void);

/* A cheap upper bound of pc_now_ns(): the coarse monotonic clock (the
 * same timeline, updated once per kernel tick: a memory read in the vDSO
 * instead of a clock-source read) plus its resolution, so that it is
 * never earlier than pc_now_ns() read at the same moment and at most one
 * tick later. For activity marks that timeouts are measured from: a
 * deadline computed from it never fires early, at most one tick late. */
uint64_t pc_now_mark_ns(void);

/* Opens a file named in the configuration, for reading, only when it is a
 * regular file (or a link to one). open(2) itself never blocks: a FIFO
 * would wait there for a writer, so the file is opened with O_NONBLOCK,
 * checked with fstat, and O_NONBLOCK is cleared before it is returned.
 * Returns the descriptor (O_CLOEXEC); -1 with errno set when it cannot be
 * opened (EISDIR for a directory); -2 when it is something else that is
 * not a regular file (FIFO, socket, device). */
int pc_open_regular(const char *path);

/* Reads a whole regular file (pc_open_regular) of at most `max` bytes into
 * a NUL-terminated buffer the caller frees; *len gets the size. NULL on
 * failure, with why set to "cannot open: <reason>", "not a regular file",
 * "file larger than N bytes" or "cannot read: <reason>". */
char *pc_read_regular(const char *path, size_t max, size_t *len, char *why,
                      size_t wl);

/* A copy of s[0..n) that prints as one line of plain text: \n \r \t and
 * \e for those controls, \xNN for every other control byte (C0, DEL), for
 * C1 controls (U+0080..U+009F) and for bytes that are not well-formed
 * UTF-8; everything else (backslash included) is kept. Caller frees. */
char *pc_xescape(const char *s, size_t n);

#endif
