/* node.c: the only code that talks to libyaml. Turns one YAML document into
 * a pc_node tree where every node keeps its 1-based line and column, expands
 * ${NAME} in every scalar, and offers the typed readers that every config
 * block uses. It collects errors and never stops at the first one it can
 * recover from; it must never print, exit, or keep state between calls. */
#include "portcullis/node.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "portcullis/units.h"
#include "portcullis/util.h"

/* Deep nesting only happens in hostile input; the limit keeps the recursive
 * builder and pc_node_free far from the end of the C stack. */
#define MAX_DEPTH 64
/* A configuration is a few KiB; anything this large is a mistake. */
#define MAX_FILE_BYTES (16u << 20)

/* ---- errors ------------------------------------------------------------ */

void pc_errors_init(pc_errors *e, const char *file)
{
    memset(e, 0, sizeof *e);
    e->file = file;
}

void pc_errors_free(pc_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = e->cap = 0;
}

static void errors_push(pc_errors *e, char *raw)
{
    /* Every message is printed as one line of plain text, whatever the
     * file name, a key or a value held: control characters (a forged
     * second error line, a terminal escape) are escaped here, in the one
     * place all of them pass. */
    char *s = pc_xescape(raw, strlen(raw));
    free(raw);
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->msgs = pc_xrealloc(e->msgs, e->cap * sizeof *e->msgs);
    }
    e->msgs[e->n++] = s;
}

/* "FILE:LINE:COL: message", or "FILE: message" when !at_pos. */
static void errors_vadd(pc_errors *e, int at_pos, int line, int col,
                        const char *fmt, va_list ap)
{
    const char *file = e->file ? e->file : "<config>";
    va_list copy;
    va_copy(copy, ap);
    int mlen = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    int plen = at_pos ? snprintf(NULL, 0, "%s:%d:%d: ", file, line, col)
                      : snprintf(NULL, 0, "%s: ", file);
    if (mlen < 0)
        mlen = 0;
    char *s = pc_xmalloc((size_t)plen + (size_t)mlen + 1);
    if (at_pos)
        snprintf(s, (size_t)plen + 1, "%s:%d:%d: ", file, line, col);
    else
        snprintf(s, (size_t)plen + 1, "%s: ", file);
    vsnprintf(s + plen, (size_t)mlen + 1, fmt, ap);
    errors_push(e, s);
}

void pc_errors_add(pc_errors *e, const pc_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(e, 1, at ? at->line : 1, at ? at->col : 1, fmt, ap);
    va_end(ap);
}

void pc_errors_add_at(pc_errors *e, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(e, 1, line, col, fmt, ap);
    va_end(ap);
}

void pc_errors_add_file(pc_errors *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(e, 0, 0, 0, fmt, ap);
    va_end(ap);
}

/* ---- ${NAME} expansion ------------------------------------------------- */

static int name_char(char c, int first)
{
    if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    return !first && c >= '0' && c <= '9';
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = pc_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Expands every ${NAME}; a '$' not followed by '{' is kept as it is, and
 * a scalar that had a reference is marked from_env (its whole value may be
 * a secret). On an unset or malformed reference, records the error at the
 * scalar, marks it bad and keeps the raw text so later readers stay quiet. */
static void expand_env(pc_node *n, pc_errors *err)
{
    const char *s = n->value;
    if (!strstr(s, "${"))
        return;
    sbuf b = {0};
    sbuf_add(&b, "", 0);
    while (*s) {
        const char *d = strstr(s, "${");
        if (!d) {
            sbuf_add(&b, s, strlen(s));
            break;
        }
        sbuf_add(&b, s, (size_t)(d - s));
        const char *name = d + 2, *end = strchr(name, '}');
        if (!end) {
            pc_errors_add(err, n, "unterminated '${' (expected ${NAME})");
            goto bad;
        }
        size_t len = (size_t)(end - name);
        int ok = len > 0;
        for (size_t i = 0; ok && i < len; i++)
            ok = name_char(name[i], i == 0);
        if (!ok) {
            pc_errors_add(err, n,
                          "invalid environment variable reference '${%.*s}'",
                          (int)len, name);
            goto bad;
        }
        char *key = pc_xstrndup(name, len);
        const char *v = getenv(key);
        if (!v) {
            pc_errors_add(err, n, "environment variable '%s' is not set", key);
            free(key);
            goto bad;
        }
        free(key);
        sbuf_add(&b, v, strlen(v));
        s = end + 1;
    }
    free(n->value);
    n->value = b.p;
    n->from_env = 1;
    return;
bad:
    free(b.p);
    n->bad = 1;
}

/* ---- tree building ----------------------------------------------------- */

typedef struct builder {
    yaml_parser_t parser;
    pc_errors *err;
    const char *text; /* the whole input, to place reader errors */
    size_t len;
    int failed; /* a syntax error: the tree is unusable */
} builder;

static pc_node *node_new(pc_node_kind kind, const yaml_mark_t *m)
{
    pc_node *n = pc_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

void pc_node_free(pc_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == PC_NODE_MAP)
            pc_node_free(n->keys[i]);
        pc_node_free(n->vals[i]);
    }
    free(n->keys);
    free(n->vals);
    free(n->value);
    free(n);
}

/* libyaml's reader errors carry a byte offset only; turn it into a
 * line:column the way the scanner counts them. */
static void offset_pos(const builder *b, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < b->len; i++) {
        if (b->text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)b->text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static void syntax_error(builder *b)
{
    yaml_parser_t *p = &b->parser;
    int line = (int)p->problem_mark.line + 1,
        col = (int)p->problem_mark.column + 1;
    const char *problem = p->problem ? p->problem : "unknown error";
    b->failed = 1;
    if (p->error == YAML_READER_ERROR) {
        offset_pos(b, p->problem_offset, &line, &col);
        pc_errors_add_at(b->err, line, col, "invalid YAML: %s", problem);
    } else if (p->context) {
        pc_errors_add_at(b->err, line, col,
                         "invalid YAML: %s (%s at line %d, column %d)", problem,
                         p->context, (int)p->context_mark.line + 1,
                         (int)p->context_mark.column + 1);
    } else {
        pc_errors_add_at(b->err, line, col, "invalid YAML: %s", problem);
    }
}

static int next_event(builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        syntax_error(b);
        return -1;
    }
    return 0;
}

/* Anchors and tags would let one node stand for another or change its type
 * behind the reader's back: both are refused so the file means what it
 * shows. */
static void check_props(builder *b, const pc_node *n, const yaml_char_t *anchor,
                        const yaml_char_t *tag)
{
    if (anchor)
        pc_errors_add(b->err, n, "YAML anchors are not supported ('&%s')",
                      (const char *)anchor);
    if (tag) {
        const char *t = (const char *)tag, *std = "tag:yaml.org,2002:";
        int short_form = !strncmp(t, std, strlen(std));
        pc_errors_add(b->err, n, "YAML tags are not supported ('%s%s')",
                      short_form ? "!!" : "", short_form ? t + strlen(std) : t);
    }
}

static int is_null_text(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static pc_node *build_scalar(builder *b, yaml_event_t *ev)
{
    pc_node *n = node_new(PC_NODE_SCALAR, &ev->start_mark);
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    check_props(b, n, ev->data.scalar.anchor, ev->data.scalar.tag);
    n->value = pc_xstrndup(v, len);
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    n->is_null = !n->quoted && is_null_text(n->value);
    if (strlen(n->value) != len) {
        /* A "\0" escape would silently cut the C string short. */
        pc_errors_add(b->err, n, "NUL character in a value");
        n->bad = 1;
        return n;
    }
    expand_env(n, b->err);
    return n;
}

static pc_node *build_node(builder *b, yaml_event_t *ev, int depth);

static void push(pc_node *n, pc_node *key, pc_node *val)
{
    if ((n->n & (n->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = n->n ? n->n * 2 : 4;
        if (n->kind == PC_NODE_MAP)
            n->keys = pc_xrealloc(n->keys, cap * sizeof *n->keys);
        n->vals = pc_xrealloc(n->vals, cap * sizeof *n->vals);
    }
    if (n->kind == PC_NODE_MAP)
        n->keys[n->n] = key;
    n->vals[n->n++] = val;
}

/* Reads the next event and builds the node it starts; NULL at `end_type`
 * (the end of the enclosing collection) or on a syntax error. */
static pc_node *build_next(builder *b, int depth, yaml_event_type_t end_type,
                           int *ended)
{
    yaml_event_t ev;
    *ended = 0;
    if (next_event(b, &ev) < 0)
        return NULL;
    if (ev.type == end_type) {
        *ended = 1;
        yaml_event_delete(&ev);
        return NULL;
    }
    pc_node *n = build_node(b, &ev, depth);
    yaml_event_delete(&ev);
    return n;
}

static int key_cmp(const void *a, const void *b)
{
    const pc_node *x = *(pc_node *const *)a, *y = *(pc_node *const *)b;
    int c = strcmp(x->value, y->value);
    if (c)
        return c;
    return x->line != y->line ? x->line - y->line : x->col - y->col;
}

/* Reports every repeated key at its second (and later) occurrence and drops
 * those pairs, so that callers walking the map see each key once. Sorting a
 * copy keeps this O(n log n) for hostile, very wide maps. */
static void drop_duplicate_keys(builder *b, pc_node *map)
{
    if (map->n < 2)
        return;
    pc_node **sorted = pc_xmalloc(map->n * sizeof *sorted);
    memcpy(sorted, map->keys, map->n * sizeof *sorted);
    qsort(sorted, map->n, sizeof *sorted, key_cmp);
    int dups = 0;
    size_t first = 0; /* start of the current run of equal keys */
    for (size_t i = 1; i < map->n; i++) {
        if (strcmp(sorted[first]->value, sorted[i]->value) != 0) {
            first = i;
            continue;
        }
        pc_errors_add(b->err, sorted[i],
                      "duplicate key '%s' (first at line %d)", sorted[i]->value,
                      sorted[first]->line);
        sorted[i]->bad = 2; /* marker: drop below */
        dups = 1;
    }
    free(sorted);
    if (!dups)
        return;
    size_t out = 0;
    for (size_t i = 0; i < map->n; i++) {
        if (map->keys[i]->bad == 2) {
            pc_node_free(map->keys[i]);
            pc_node_free(map->vals[i]);
            continue;
        }
        map->keys[out] = map->keys[i];
        map->vals[out++] = map->vals[i];
    }
    map->n = out;
}

static pc_node *build_map(builder *b, yaml_event_t *ev, int depth)
{
    pc_node *map = node_new(PC_NODE_MAP, &ev->start_mark);
    check_props(b, map, ev->data.mapping_start.anchor,
                ev->data.mapping_start.tag);
    for (;;) {
        int ended;
        pc_node *key = build_next(b, depth + 1, YAML_MAPPING_END_EVENT, &ended);
        if (ended)
            break;
        if (!key)
            goto fail;
        pc_node *val = build_next(b, depth + 1, YAML_MAPPING_END_EVENT, &ended);
        if (!val) {
            pc_node_free(key);
            goto fail;
        }
        if (key->kind != PC_NODE_SCALAR) {
            pc_errors_add(b->err, key, "mapping keys must be plain strings");
            pc_node_free(key);
            pc_node_free(val);
            continue;
        }
        push(map, key, val);
    }
    drop_duplicate_keys(b, map);
    return map;
fail:
    pc_node_free(map);
    return NULL;
}

static pc_node *build_seq(builder *b, yaml_event_t *ev, int depth)
{
    pc_node *seq = node_new(PC_NODE_SEQ, &ev->start_mark);
    check_props(b, seq, ev->data.sequence_start.anchor,
                ev->data.sequence_start.tag);
    for (;;) {
        int ended;
        pc_node *item =
            build_next(b, depth + 1, YAML_SEQUENCE_END_EVENT, &ended);
        if (ended)
            return seq;
        if (!item) {
            pc_node_free(seq);
            return NULL;
        }
        push(seq, NULL, item);
    }
}

static pc_node *build_node(builder *b, yaml_event_t *ev, int depth)
{
    if (depth > MAX_DEPTH) {
        pc_errors_add_at(b->err, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1,
                         "nesting deeper than %d levels", MAX_DEPTH);
        b->failed = 1;
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(b, ev);
    case YAML_MAPPING_START_EVENT:
        return build_map(b, ev, depth);
    case YAML_SEQUENCE_START_EVENT:
        return build_seq(b, ev, depth);
    case YAML_ALIAS_EVENT: {
        /* Keep a quiet placeholder so parsing goes on and finds more. */
        pc_node *n = node_new(PC_NODE_SCALAR, &ev->start_mark);
        pc_errors_add(b->err, n, "YAML aliases are not supported ('*%s')",
                      (const char *)ev->data.alias.anchor);
        n->value = pc_xstrdup("");
        n->bad = 1;
        return n;
    }
    default:
        pc_errors_add_at(b->err, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1,
                         "invalid YAML: unexpected event");
        b->failed = 1;
        return NULL;
    }
}

/* Stream: STREAM-START, then zero or one DOCUMENT-START .. DOCUMENT-END,
 * then STREAM-END. A second document is an error. An empty stream is a
 * document holding a single null scalar at 1:1. */
static pc_node *build_stream(builder *b)
{
    yaml_event_t ev;
    pc_node *root = NULL;
    int ended;
    if (next_event(b, &ev) < 0)
        return NULL;
    yaml_event_delete(&ev); /* STREAM-START */
    if (next_event(b, &ev) < 0)
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = node_new(PC_NODE_SCALAR, &(yaml_mark_t){0, 0, 0});
        root->value = pc_xstrdup("");
        root->is_null = 1;
        return root;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    root = build_next(b, 0, YAML_DOCUMENT_END_EVENT, &ended);
    if (!root)
        return NULL;
    if (next_event(b, &ev) < 0) /* DOCUMENT-END */
        goto fail;
    yaml_event_delete(&ev);
    if (next_event(b, &ev) < 0)
        goto fail;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        pc_errors_add_at(b->err, (int)ev.start_mark.line + 1,
                         (int)ev.start_mark.column + 1,
                         "multiple YAML documents are not supported");
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
    return root;
fail:
    pc_node_free(root);
    return NULL;
}

pc_node *pc_node_load_string(const char *text, size_t len, pc_errors *err)
{
    builder b = {.err = err, .text = text, .len = len};
    if (!yaml_parser_initialize(&b.parser)) {
        pc_errors_add_at(err, 1, 1, "cannot initialise the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    pc_node *root = build_stream(&b);
    yaml_parser_delete(&b.parser);
    if (b.failed) {
        pc_node_free(root);
        return NULL;
    }
    return root;
}

static char *read_file(const char *path, size_t *len, pc_errors *err)
{
    int fd = pc_open_regular(path);
    char *buf = NULL;
    if (fd == -2) {
        /* A FIFO or a device: reading it would block -t and start-up. */
        pc_errors_add_file(err, "not a regular file");
        return NULL;
    }
    if (fd < 0)
        goto fail;
    size_t cap = 4096, n = 0;
    buf = pc_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                pc_errors_add_at(err, 1, 1, "file larger than %u bytes",
                                 MAX_FILE_BYTES);
                free(buf);
                close(fd);
                return NULL;
            }
            cap *= 2;
            buf = pc_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
fail:;
    int e = errno;
    free(buf);
    if (fd >= 0)
        close(fd);
    pc_errors_add_at(err, 1, 1, "cannot open: %s", strerror(e));
    return NULL;
}

pc_node *pc_node_load_file(const char *path, pc_errors *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text)
        return NULL;
    pc_node *root = pc_node_load_string(text, len, err);
    free(text);
    return root;
}

/* ---- access and typed readers ------------------------------------------ */

pc_node *pc_node_get(const pc_node *map, const char *key)
{
    if (!map || map->kind != PC_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->value, key))
            return map->vals[i];
    return NULL;
}

/* Edit distance of two short strings, capped: enough to suggest the key
 * meant by a typo ("adress" -> "address"). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *suggest(const char *key, const char *const *allowed)
{
    const char *best = NULL;
    size_t bestd = 3; /* at most two edits away */
    for (size_t i = 0; allowed[i]; i++) {
        size_t d = distance(key, allowed[i]);
        if (d < bestd) {
            bestd = d;
            best = allowed[i];
        }
    }
    return best;
}

int pc_node_check_keys(const pc_node *map, const char *const *allowed,
                       const char *where, pc_errors *err)
{
    int unknown = 0;
    if (!map || map->kind != PC_NODE_MAP)
        return 0;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->value;
        size_t j = 0;
        while (allowed[j] && strcmp(allowed[j], k) != 0)
            j++;
        if (allowed[j])
            continue;
        unknown++;
        const char *hint = suggest(k, allowed);
        pc_errors_add(err, map->keys[i], "unknown key '%s'%s%s%s%s%s", k,
                      where ? " in " : "", where ? where : "",
                      hint ? " (did you mean '" : "", hint ? hint : "",
                      hint ? "'?)" : "");
    }
    return unknown;
}

static const char *kind_name(const pc_node *n)
{
    if (n->kind == PC_NODE_MAP)
        return "a mapping";
    if (n->kind == PC_NODE_SEQ)
        return "a list";
    return n->is_null ? "null" : "a scalar";
}

/* A usable scalar, or -1 after reporting "expected <what> for 'name'".
 * Scalars whose expansion failed are already reported: stay quiet. */
static int want_scalar(const pc_node *n, const char *name, const char *what,
                       pc_errors *err)
{
    if (n->kind == PC_NODE_SCALAR && n->bad)
        return -1;
    if (n->kind == PC_NODE_SCALAR && !n->is_null)
        return 0;
    pc_errors_add(err, n, "expected %s for '%s', got %s", what, name,
                  kind_name(n));
    return -1;
}

int pc_node_str(const pc_node *n, const char *name, char **out, pc_errors *err)
{
    if (want_scalar(n, name, "a string", err) < 0)
        return -1;
    *out = pc_xstrdup(n->value);
    return 0;
}

int pc_node_bool(const pc_node *n, const char *name, int *out, pc_errors *err)
{
    static const char *const yes[] = {"true", "True", "TRUE", NULL};
    static const char *const no[] = {"false", "False", "FALSE", NULL};
    if (want_scalar(n, name, "true or false", err) < 0)
        return -1;
    for (int i = 0; yes[i]; i++) {
        if (!strcmp(n->value, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcmp(n->value, no[i])) {
            *out = 0;
            return 0;
        }
    }
    pc_errors_add(err, n, "expected true or false for '%s', got '%s'", name,
                  n->value);
    return -1;
}

int pc_node_uint(const pc_node *n, const char *name, uint64_t min, uint64_t max,
                 uint64_t *out, pc_errors *err)
{
    if (want_scalar(n, name, "an integer", err) < 0)
        return -1;
    const char *s = n->value;
    uint64_t v = 0;
    int overflow = 0;
    if (!*s)
        goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            goto bad;
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    if (overflow || v < min || v > max) {
        pc_errors_add(err, n, "value %s for '%s' out of range %llu..%llu",
                      n->value, name, (unsigned long long)min,
                      (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
bad:
    pc_errors_add(err, n, "expected an integer for '%s', got '%s'", name,
                  n->value);
    return -1;
}

int pc_node_duration(const pc_node *n, const char *name, uint64_t *ms,
                     pc_errors *err)
{
    char why[128] = "";
    if (want_scalar(n, name, "a duration like 10s", err) < 0)
        return -1;
    if (pc_parse_duration(n->value, ms, why, sizeof why) < 0) {
        pc_errors_add(err, n, "invalid duration '%s' for '%s': %s", n->value,
                      name, why[0] ? why : "expected a duration like 10s");
        return -1;
    }
    return 0;
}

int pc_node_size(const pc_node *n, const char *name, uint64_t *bytes,
                 pc_errors *err)
{
    char why[128] = "";
    if (want_scalar(n, name, "a size like 16k", err) < 0)
        return -1;
    if (pc_parse_size(n->value, bytes, why, sizeof why) < 0) {
        pc_errors_add(err, n, "invalid size '%s' for '%s': %s", n->value, name,
                      why[0] ? why : "expected bytes or a size like 16k");
        return -1;
    }
    return 0;
}

static int expect_kind(const pc_node *n, pc_node_kind kind, const char *what,
                       const char *name, pc_errors *err)
{
    if (n->kind == kind)
        return 0;
    if (n->kind == PC_NODE_SCALAR && n->bad)
        return -1;
    pc_errors_add(err, n, "expected %s for '%s', got %s", what, name,
                  kind_name(n));
    return -1;
}

int pc_node_expect_map(const pc_node *n, const char *name, pc_errors *err)
{
    return expect_kind(n, PC_NODE_MAP, "a mapping", name, err);
}

int pc_node_expect_seq(const pc_node *n, const char *name, pc_errors *err)
{
    return expect_kind(n, PC_NODE_SEQ, "a list", name, err);
}
