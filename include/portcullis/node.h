/* node.h: the YAML document as a tree that remembers every node's line and
 * column, plus the typed readers every config block uses (h2o configurator
 * style). Only node.c talks to libyaml. Errors are collected, never fatal
 * on the first one. */
#ifndef PORTCULLIS_NODE_H
#define PORTCULLIS_NODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PC_NODE_SCALAR, PC_NODE_MAP, PC_NODE_SEQ } pc_node_kind;

typedef struct pc_node pc_node;
struct pc_node {
    pc_node_kind kind;
    int line, col;  /* 1-based, of the node's first character */
    char *value;    /* SCALAR: text after ${ENV} expansion, NUL-terminated */
    int quoted;     /* SCALAR: 1 when not plain ('x', "x", | or >) */
    int is_null;    /* SCALAR: plain null / ~ / empty */
    int bad;        /* SCALAR: its error is already reported (unset ${ENV},
                       alias placeholder): readers fail without a new one */
    int from_env;   /* SCALAR: 1 when its text had a ${NAME} (even inside a
                       larger string, even an empty one): /admin/config
                       shows such a value only as "***" */
    size_t n;       /* MAP: pairs; SEQ: items */
    pc_node **keys; /* MAP: key scalars, n of them */
    pc_node **vals; /* MAP: values; SEQ: items */
};

/* One error: "FILE:LINE:COL: message" (or "FILE: message" for what is
 * wrong with the file as a whole). Each message is one line of plain text:
 * control characters and bytes that are not UTF-8, wherever they came from
 * (file name, key, value, environment), are escaped as \n \r \t \e \xNN
 * when the message is recorded (pc_xescape). */
typedef struct pc_errors {
    const char *file; /* borrowed */
    size_t n, cap;
    char **msgs;      /* formatted and escaped: one line each */
} pc_errors;

void pc_errors_init(pc_errors *e, const char *file);
void pc_errors_free(pc_errors *e);
/* Records an error at the node's position (line/col 1:1 when node is NULL). */
void pc_errors_add(pc_errors *e, const pc_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pc_errors_add_at(pc_errors *e, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records "FILE: message", without a position. */
void pc_errors_add_file(pc_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a YAML file into a tree. Scalars get ${NAME} expanded (unset NAME
 * is an error at that scalar). Anchors/aliases/tags are rejected, duplicate
 * keys in a map are errors (the later pairs are dropped), multiple documents
 * are an error. Returns NULL (with errors added) when no tree can be built:
 * missing or unreadable file, YAML syntax error with its position, second
 * document. Otherwise returns the root, possibly with errors added that the
 * tree survived (duplicates, anchors, unset ${NAME}): callers must check
 * err->n. An empty file gives a null scalar at 1:1. Only a regular file is
 * read, and opening it never blocks: a FIFO, socket or device is the error
 * "FILE: not a regular file". */
pc_node *pc_node_load_file(const char *path, pc_errors *err);
/* Same, from memory (tests and fuzzers); err->file names it in messages. */
pc_node *pc_node_load_string(const char *text, size_t len, pc_errors *err);
void pc_node_free(pc_node *n);

/* Looks up a key of a MAP node; NULL when absent or n is not a map. */
pc_node *pc_node_get(const pc_node *map, const char *key);

/* Checks that every key of map is in the NULL-terminated list `allowed`;
 * an unknown key is an error at the key: "unknown key 'x' in <where>",
 * plus " (did you mean 'y'?)" when an allowed key is within two edits;
 * where may be NULL (top level). Returns the number of unknown keys. */
int pc_node_check_keys(const pc_node *map, const char *const *allowed,
                       const char *where, pc_errors *err);

/* Typed readers: each returns 0 and stores the value, or -1 after recording
 * an error at the node ("expected a string for 'x', got a mapping",
 * "invalid duration '10' for 'x': missing unit ...", "value 0 for 'x' out
 * of range 1..65535"). `name` is the key for messages. A scalar marked
 * `bad` fails without a new error. Integers are decimal digits only
 * (quoted accepted); booleans are true/false (any of three casings). */
int pc_node_str(const pc_node *n, const char *name, char **out,
                pc_errors *err); /* out is pc_xstrdup'd */
int pc_node_bool(const pc_node *n, const char *name, int *out, pc_errors *err);
int pc_node_uint(const pc_node *n, const char *name, uint64_t min,
                 uint64_t max, uint64_t *out, pc_errors *err);
int pc_node_duration(const pc_node *n, const char *name, uint64_t *ms,
                     pc_errors *err);
int pc_node_size(const pc_node *n, const char *name, uint64_t *bytes,
                 pc_errors *err);
/* Expects a MAP / SEQ; records "expected a mapping for 'x', got a list"
 * (or "a list ... got a scalar") otherwise. */
int pc_node_expect_map(const pc_node *n, const char *name, pc_errors *err);
int pc_node_expect_seq(const pc_node *n, const char *name, pc_errors *err);

#endif
