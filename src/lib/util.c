/* util.c: the out-of-memory policy (abort with a message) and small string
 * and clock helpers, plus the one safe way to read a file named in the
 * configuration (regular files only, never blocking in open). Owns
 * nothing; no other I/O beyond the abort message. */
#include "portcullis/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "portcullis: out of memory allocating %zu bytes\n", n);
    abort();
}

void pc_oom(const char *what)
{
    fprintf(stderr, "portcullis: out of memory allocating %s\n", what);
    abort();
}

void *pc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *pc_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *pc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *pc_xstrdup(const char *s)
{
    return pc_xstrndup(s, strlen(s));
}

char *pc_xstrndup(const char *s, size_t n)
{
    char *p = pc_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int pc_is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int pc_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!pc_is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

const char *pc_list_next(const char **pp, const char *end, size_t *len)
{
    const char *p = *pp;
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
        p++;
    if (p >= end) {
        *pp = p;
        return NULL;
    }
    const char *s = p; /* neither whitespace nor a comma */
    while (p < end && *p != ',')
        p++;
    const char *t = p;
    while (t[-1] == ' ' || t[-1] == '\t')
        t--;
    *pp = p;
    *len = (size_t)(t - s);
    return s;
}

int pc_strieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

int64_t pc_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

uint64_t pc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pc_now_mark_ns(void)
{
    struct timespec ts, res;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0 ||
        clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return pc_now_ns();
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
           (uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec;
}

int pc_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int pc_open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -2;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

char *pc_read_regular(const char *path, size_t max, size_t *len, char *why,
                      size_t wl)
{
    int fd = pc_open_regular(path);
    if (fd == -2) {
        snprintf(why, wl, "not a regular file");
        return NULL;
    }
    if (fd < 0) {
        snprintf(why, wl, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = pc_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max) {
                snprintf(why, wl, "file larger than %zu bytes", max);
                goto fail;
            }
            cap *= 2;
            buf = pc_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, wl, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        snprintf(why, wl, "file larger than %zu bytes", max);
        goto fail;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF) that is not a C1 control;
 * 0 when the byte at s must be escaped. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp <= 0x9F)
        return 0;
    return need;
}

char *pc_xescape(const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    char *out = pc_xmalloc(n * 4 + 1), *o = out;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F) {
            *o++ = (char)c;
            i++;
            continue;
        }
        size_t u = c >= 0x80 ? utf8_printable(p + i, n - i) : 0;
        if (u) {
            memcpy(o, p + i, u);
            o += u;
            i += u;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case 0x1B:
            *o++ = 'e';
            break;
        default:
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        i++;
    }
    *o = '\0';
    return out;
}
