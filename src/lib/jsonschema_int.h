/* jsonschema_int.h: what the jsonschema*.c files share among themselves and
 * with nobody else (the public face is include/portcullis/jsonschema.h):
 * the compiled node, number and JSON helpers, the pattern compiler. */
#ifndef PORTCULLIS_JSONSCHEMA_INT_H
#define PORTCULLIS_JSONSCHEMA_INT_H

#include "portcullis/jsonschema.h"

#include <regex.h>

/* Bits of the `type` keyword. An integer instance carries both NUMBER and
 * INTEGER, so "number" accepts it. */
enum {
    PC_SCHEMA_T_NULL = 1u << 0,
    PC_SCHEMA_T_BOOLEAN = 1u << 1,
    PC_SCHEMA_T_OBJECT = 1u << 2,
    PC_SCHEMA_T_ARRAY = 1u << 3,
    PC_SCHEMA_T_NUMBER = 1u << 4,
    PC_SCHEMA_T_STRING = 1u << 5,
    PC_SCHEMA_T_INTEGER = 1u << 6,
};

/* A JSON number kept exactly as jansson holds it: comparing an integer
 * bound with an integer instance must not go through double (2^53). */
typedef struct pc_schema_num {
    int set;       /* the keyword is present */
    int is_int;    /* i is the value; else d */
    json_int_t i;  /* when is_int */
    double d;      /* when !is_int */
    char text[32]; /* shortest round-trip text, for messages */
} pc_schema_num;

typedef struct pc_schema_node pc_schema_node;

/* A list of subschemas (allOf, anyOf, oneOf, prefixItems). */
typedef struct pc_schema_list {
    pc_schema_node **v;
    size_t n;
} pc_schema_list;

/* A property name (length-aware: keys may hold NUL) and, for `properties`,
 * its subschema. */
typedef struct pc_schema_prop {
    char *name;
    size_t len;
    pc_schema_node *schema; /* NULL in `required` */
} pc_schema_prop;

/* One compiled (sub)schema. Owned by pc_schema.nodes; the pointers below
 * between nodes are borrowed (ref may point anywhere, even at an ancestor). */
struct pc_schema_node {
    int boolean;       /* 1: `true`, 0: `false`, -1: an object schema */
    int resource;      /* 0 root, 1.. $defs entry, -1 inner node */
    unsigned types;    /* PC_SCHEMA_T_* of `type`; 0 when absent */
    char *types_text;  /* "string or null" */
    json_t *enum_vals; /* owned reference, or NULL */
    char *enum_msg;
    json_t *const_val; /* owned reference, or NULL (JSON null is not NULL) */
    char *const_msg;
    pc_schema_num minimum, maximum, xminimum, xmaximum, multiple;
    long long min_len, max_len, min_items, max_items; /* -1 when absent */
    int unique;
    regex_t *re;           /* owned, or NULL */
    char *pattern;         /* source text, for messages */
    pc_schema_prop *props; /* sorted by (bytes, length) for bsearch */
    size_t nprops;
    pc_schema_prop *required; /* schema order */
    size_t nrequired;
    pc_schema_node *additional; /* NULL: any additional property is fine */
    pc_schema_list prefix;
    pc_schema_node *items; /* after prefixItems; NULL: anything */
    pc_schema_list all_of, any_of, one_of;
    pc_schema_node *not_;
    pc_schema_node *ref;
    char *ref_where; /* schema pointer of the $ref, for compile errors */
};

struct pc_schema {
    pc_schema_node *root;
    pc_schema_node **nodes; /* every node, owned */
    size_t nnodes, cap;
};

/* Fills out from a JSON number; -1 when v is not a number. */
int pc_schema_num_get(const json_t *v, pc_schema_num *out);
/* <0, 0, >0 as a is below, equal to, above b, exactly (1 == 1.0). */
int pc_schema_num_cmp(const pc_schema_num *a, const pc_schema_num *b);
/* 1 when v is an integer multiple of m (m > 0), with a tolerance of a few
 * ulps of the quotient when either is not an integer (0.07 / 0.01). */
int pc_schema_num_multiple(const pc_schema_num *v, const pc_schema_num *m);
/* 1 when v is a number with no fractional part (3, 3.0, 1e300). */
int pc_schema_is_integral(const json_t *v);
/* "null" "boolean" "object" "array" "integer" "number" "string". */
const char *pc_schema_type_name(const json_t *v);
/* JSON equality where numbers compare by value (1 == 1.0) and objects
 * regardless of key order; 1 when equal. */
int pc_schema_json_equal(const json_t *a, const json_t *b);
/* Unicode code points in a UTF-8 string of n bytes. */
size_t pc_schema_utf8_len(const char *s, size_t n);
/* For uniqueItems: the lowest index j such that item j equals an earlier
 * item (whose index goes to *first), or -1 when all items are distinct.
 * O(n log n) comparisons of canonical encodings, O(size) memory. */
long pc_schema_first_duplicate(const json_t *array, size_t *first);

/* Compiles a `pattern` (POSIX ERE, see docs/json-schema.md) into *re. Returns
 * 0, or -1 with a message in err (nothing to free then). */
int pc_schema_pattern_compile(const char *pat, size_t len, regex_t *re,
                              char *err, size_t errlen);

#endif
